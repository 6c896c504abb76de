//! The AWS world a test needs on moto: a versioned state bucket, ECR repositories, images, and a
//! Convoy wired to them through the real adapters.

use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::SdkConfig;
use convoy::config::Config;
use convoy::service::Convoy;

use crate::moto::{ACCOUNT, Moto, REGION};

/// A test's own corner of moto: its names never collide with another test's.
pub struct World {
    pub sdk: SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub bucket: String,
    /// Unique suffix for this world's repository names.
    pub id: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl World {
    /// A new world on the process's moto server, its names unique to it.
    pub async fn new() -> World {
        let id = format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        Self::named(&format!("convoy-state-{id}"), &id).await
    }

    /// A world with a given bucket; repository names get `-<id>` unless `id` is empty.
    pub async fn named(bucket: &str, id: &str) -> World {
        let moto = Moto::shared();
        let sdk = moto.sdk_config().await;
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
        let ecr = aws_sdk_ecr::Client::new(&sdk);
        let (bucket, id) = (bucket.to_owned(), id.to_owned());
        s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
        s3.put_bucket_versioning()
            .bucket(&bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("enable versioning");
        World { sdk, s3, ecr, bucket, id }
    }

    /// This world's name for a repository (`app` → `app-<id>`).
    pub fn repo(&self, name: &str) -> String {
        if self.id.is_empty() { name.to_owned() } else { format!("{name}-{}", self.id) }
    }

    pub async fn create_repositories(&self, names: &[&str]) {
        for name in names {
            self.ecr.create_repository().repository_name(self.repo(name)).send().await.expect("create repository");
        }
    }

    /// Pushes an image (a distinct manifest each call) and returns the digest ECR gave it.
    pub async fn push_image(&self, name: &str, tag: &str) -> String {
        let nonce = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023,
                       "digest": format!("sha256:{nonce}{nonce}")},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654,
                        "digest": format!("sha256:{nonce}{nonce}")}]
        });
        let output = self
            .ecr
            .put_image()
            .repository_name(self.repo(name))
            .image_tag(tag)
            .image_manifest(manifest.to_string())
            .send()
            .await
            .expect("put image");
        output.image().and_then(|i| i.image_id()).and_then(|i| i.image_digest()).expect("a digest").to_owned()
    }

    /// Uploads a manifest; returns (version id, size).
    pub async fn upload(&self, key: &str, body: &str) -> (Option<String>, u64) {
        let output = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .expect("upload manifest");
        (output.version_id, body.len() as u64)
    }

    /// The image URI of `name:tag` in this world.
    pub fn uri(&self, name: &str, tag: &str) -> String {
        format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{}:{tag}", self.repo(name))
    }

    /// This world's ECS cluster name (see [`World::ecs_service`]).
    pub fn cluster(&self) -> String {
        format!("convoy-{}", if self.id.is_empty() { "sandbox" } else { &self.id })
    }

    /// Convoy's configuration for this world: its bucket, `services`, and its `repositories`.
    pub fn config(&self, services: &[&str], repositories: &[&str]) -> Config {
        self.config_with(services, repositories, None)
    }

    /// The same, with per-service settings (`CONVOY_SERVICE_SETTINGS`).
    pub fn config_with(&self, services: &[&str], repositories: &[&str], settings: Option<&str>) -> Config {
        let repos: Vec<String> = repositories.iter().map(|r| self.repo(r)).collect();
        let vars = [
            ("CONVOY_STATE_BUCKET", self.bucket.clone()),
            ("CONVOY_S3_FORCE_PATH_STYLE", "true".to_owned()),
            ("CONVOY_ALLOWED_SERVICES", services.join(",")),
            ("CONVOY_ALLOWED_REPOSITORIES", repos.join(",")),
            ("CONVOY_CLUSTER", self.cluster()),
            ("CONVOY_ACCOUNT_ID", ACCOUNT.to_owned()),
            ("CONVOY_SERVICE_SETTINGS", settings.unwrap_or_default().to_owned()),
            // As a stack whose ScheduledTaskRoleArns is set: scheduled tasks move with releases.
            ("CONVOY_MOVE_SCHEDULED_TASKS", "true".to_owned()),
        ];
        Config::from_lookup(&|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()), REGION)
            .expect("a valid test configuration")
    }

    /// Convoy on the real adapters against this world.
    pub fn convoy(&self, services: &[&str], repositories: &[&str]) -> Convoy {
        convoy::startup::wire(&self.sdk, &self.config(services, repositories)).expect("Convoy starts")
    }

    /// Convoy with per-service settings.
    pub fn convoy_with(&self, services: &[&str], repositories: &[&str], settings: &str) -> Convoy {
        convoy::startup::wire(&self.sdk, &self.config_with(services, repositories, Some(settings)))
            .expect("Convoy starts")
    }

    /// A CodeDeploy application (ECS) and a blue/green deployment group for `service` that waits
    /// for the traffic shift to be approved. Returns (application, group).
    pub async fn codedeploy(&self, service: &str) -> (String, String) {
        let stop = aws_sdk_codedeploy::types::DeploymentReadyAction::StopDeployment;
        self.codedeploy_group(service, service, stop, 60).await
    }

    /// A deployment group `group` for `service` whose ready option is `action_on_timeout` after
    /// `wait_minutes` (moto stores and returns it). Returns (application, group).
    pub async fn codedeploy_group(
        &self,
        service: &str,
        group: &str,
        action_on_timeout: aws_sdk_codedeploy::types::DeploymentReadyAction,
        wait_minutes: i32,
    ) -> (String, String) {
        let role = format!("arn:aws:iam::{}:role/codedeploy-ecs", crate::moto::ACCOUNT);
        self.codedeploy_group_with(service, group, action_on_timeout, wait_minutes, &role, None).await
    }

    /// The same group with its service role and its load balancer's target group pair and
    /// traffic routes (see `load_balancer.rs`).
    pub async fn codedeploy_group_with(
        &self,
        service: &str,
        group: &str,
        action_on_timeout: aws_sdk_codedeploy::types::DeploymentReadyAction,
        wait_minutes: i32,
        role: &str,
        load_balancer: Option<aws_sdk_codedeploy::types::LoadBalancerInfo>,
    ) -> (String, String) {
        use aws_sdk_codedeploy::types::{
            AutoRollbackConfiguration, AutoRollbackEvent, BlueGreenDeploymentConfiguration, ComputePlatform,
            DeploymentOption, DeploymentReadyOption, DeploymentStyle, DeploymentType, EcsService,
        };
        let codedeploy = aws_sdk_codedeploy::Client::new(&self.sdk);
        let application = format!("convoy-{}", if self.id.is_empty() { "sandbox" } else { &self.id });
        let created = codedeploy
            .create_application()
            .application_name(&application)
            .compute_platform(ComputePlatform::Ecs)
            .send()
            .await;
        if let Err(err) = created {
            // One application serves every service of a world.
            assert!(
                err.as_service_error().is_some_and(|e| e.is_application_already_exists_exception()),
                "application: {err:?}"
            );
        }
        codedeploy
            .create_deployment_group()
            .application_name(&application)
            .deployment_group_name(group)
            .service_role_arn(role)
            .set_load_balancer_info(load_balancer)
            .deployment_style(
                DeploymentStyle::builder()
                    .deployment_type(DeploymentType::BlueGreen)
                    .deployment_option(DeploymentOption::WithTrafficControl)
                    .build(),
            )
            .blue_green_deployment_configuration(
                BlueGreenDeploymentConfiguration::builder()
                    .deployment_ready_option(
                        DeploymentReadyOption::builder()
                            .action_on_timeout(action_on_timeout)
                            .wait_time_in_minutes(wait_minutes)
                            .build(),
                    )
                    .build(),
            )
            .ecs_services(EcsService::builder().service_name(service).cluster_name(self.cluster()).build())
            // CodeDeploy rolls a failed or stopped deployment back (a new deployment, its own id).
            .auto_rollback_configuration(
                AutoRollbackConfiguration::builder()
                    .enabled(true)
                    .events(AutoRollbackEvent::DeploymentFailure)
                    .events(AutoRollbackEvent::DeploymentStopOnRequest)
                    .build(),
            )
            .send()
            .await
            .expect("deployment group");
        (application, group.to_owned())
    }
}

/// `CONVOY_SERVICE_SETTINGS` for one service deploying with CodeDeploy and verified on `listener`.
pub fn service_settings(
    service: &str,
    application: &str,
    group: &str,
    listener: &str,
    approval: &str,
    probe: serde_json::Value,
) -> String {
    serde_json::json!({
        service: {
            "codedeploy": {"application": application, "deployment_group": group, "container": "nginx",
                           "port": 80, "verify_function": "convoy-verify"},
            "test_listener": listener,
            "approval": approval,
            "probe": probe
        }
    })
    .to_string()
}

/// The settings file (docs/reference/settings.md) holding `services`, an object of service name → that
/// service's settings (what [`service_settings`] or `convoy init` write).
pub fn settings_file(services: &serde_json::Value) -> String {
    serde_json::json!({"$schema": "./settings.schema.json", "services": services}).to_string()
}

/// `env` (from [`function_env`]) reading version `version` of the published settings file instead
/// of `CONVOY_SERVICE_SETTINGS`, as a stack whose `SettingsVersion` names it.
pub fn read_settings_version(env: &mut Vec<(String, String)>, version: &str) {
    env.retain(|(name, _)| name != convoy::config::SERVICE_SETTINGS && name != convoy::config::SETTINGS_VERSION);
    env.push((convoy::config::SETTINGS_VERSION.to_owned(), version.to_owned()));
}

/// A CodePipeline (V2) deploying `service` from a bundle in an S3 source: stage `Source` (S3,
/// no polling: Convoy starts each execution) and stage `Deploy` (`CodeDeployToECS` into the
/// service's deployment group).
pub struct PipelineWorld {
    pub name: String,
    pub bucket: String,
    pub key: String,
    pub action: String,
}

impl PipelineWorld {
    /// The `pipeline` object of the service's settings.
    pub fn settings(&self) -> serde_json::Value {
        serde_json::json!({"name": self.name, "source_bucket": self.bucket, "source_key": self.key,
                           "source_action": self.action})
    }
}

/// The pipeline variable Convoy sets to the release id (the settings' default).
pub const RELEASE_VARIABLE: &str = "CONVOY_RELEASE";

impl World {
    /// A pipeline for `service` whose source bucket keeps versions when `versioned`.
    pub async fn pipeline(&self, service: &str, application: &str, group: &str, versioned: bool) -> PipelineWorld {
        use aws_sdk_codepipeline::types::{
            ActionCategory, ActionDeclaration, ActionOwner, ActionTypeId, ArtifactStore, ArtifactStoreType,
            InputArtifact, OutputArtifact, PipelineDeclaration, PipelineType, PipelineVariableDeclaration,
            StageDeclaration,
        };
        let moto = Moto::shared();
        let suffix = if self.id.is_empty() { String::new() } else { format!("-{}", self.id) };
        let role = format!("convoy-pipeline{suffix}");
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"codepipeline.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let form = format!(
            "Action=CreateRole&Version=2010-05-08&RoleName={role}&AssumeRolePolicyDocument={}",
            percent_encoding::utf8_percent_encode(trust, percent_encoding::NON_ALPHANUMERIC)
        );
        let (status, body) = moto.raw_call("iam", None, "application/x-www-form-urlencoded", &form);
        assert_eq!(status, 200, "create the pipeline's role: {body}");
        let bucket = format!("convoy-source{suffix}");
        self.s3.create_bucket().bucket(&bucket).send().await.expect("create the source bucket");
        if versioned {
            let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build();
            self.s3
                .put_bucket_versioning()
                .bucket(&bucket)
                .versioning_configuration(enabled)
                .send()
                .await
                .expect("versioning");
        }
        let key = format!("{service}/bundle.zip");
        let action = "Bundle".to_owned();
        let type_id = |category: ActionCategory, provider: &str| {
            ActionTypeId::builder()
                .category(category)
                .owner(ActionOwner::Aws)
                .provider(provider)
                .version("1")
                .build()
                .expect("action type")
        };
        let source = ActionDeclaration::builder()
            .name(&action)
            .action_type_id(type_id(ActionCategory::Source, "S3"))
            .configuration("S3Bucket", &bucket)
            .configuration("S3ObjectKey", &key)
            .configuration("PollForSourceChanges", "false")
            .output_artifacts(OutputArtifact::builder().name("BundleArtifact").build().expect("artifact"))
            .build()
            .expect("source action");
        let deploy = ActionDeclaration::builder()
            .name("BlueGreen")
            .action_type_id(type_id(ActionCategory::Deploy, "CodeDeployToECS"))
            .configuration("ApplicationName", application)
            .configuration("DeploymentGroupName", group)
            .configuration("TaskDefinitionTemplateArtifact", "BundleArtifact")
            .configuration("TaskDefinitionTemplatePath", "taskdef.json")
            .configuration("AppSpecTemplateArtifact", "BundleArtifact")
            .configuration("AppSpecTemplatePath", "appspec.yaml")
            .input_artifacts(InputArtifact::builder().name("BundleArtifact").build().expect("artifact"))
            .build()
            .expect("deploy action");
        let stage = |name: &str, action: ActionDeclaration| {
            StageDeclaration::builder().name(name).actions(action).build().expect("stage")
        };
        let name = format!("{service}-deploy{suffix}");
        let declaration = PipelineDeclaration::builder()
            .name(&name)
            .role_arn(format!("arn:aws:iam::{}:role/{role}", crate::moto::ACCOUNT))
            .artifact_store(
                ArtifactStore::builder().r#type(ArtifactStoreType::S3).location(&bucket).build().expect("store"),
            )
            .stages(stage("Source", source))
            .stages(stage("Deploy", deploy))
            .pipeline_type(PipelineType::V2)
            .variables(
                PipelineVariableDeclaration::builder()
                    .name(RELEASE_VARIABLE)
                    .default_value("none")
                    .description("The Convoy release this execution deploys")
                    .build()
                    .expect("variable"),
            )
            .build()
            .expect("pipeline");
        aws_sdk_codepipeline::Client::new(&self.sdk)
            .create_pipeline()
            .pipeline(declaration)
            .send()
            .await
            .expect("create the pipeline");
        PipelineWorld { name, bucket, key, action }
    }
}

/// A service's ECS world on moto.
pub struct EcsWorld {
    pub cluster: String,
    pub service: String,
    pub subnet: String,
    pub security_group: String,
    pub task_definition: String,
}

impl World {
    /// An ECS cluster with a blue/green (CODE_DEPLOY) Fargate service whose task definition has
    /// `containers`, each logging to CloudWatch and carrying its own environment and secret, in a
    /// VPC where moto can run Fargate tasks (DNS hostnames on, every container with memory).
    pub async fn ecs_service(&self, service: &str, containers: &[&str]) -> EcsWorld {
        self.ecs_service_controlled(service, containers, aws_sdk_ecs::types::DeploymentControllerType::CodeDeploy).await
    }

    /// The same service under `controller` (`Ecs` for ECS native blue/green).
    pub async fn ecs_service_controlled(
        &self,
        service: &str,
        containers: &[&str],
        controller: aws_sdk_ecs::types::DeploymentControllerType,
    ) -> EcsWorld {
        self.ecs_service_balanced(service, containers, controller, Vec::new()).await
    }

    /// The same service behind `load_balancers` (see `load_balancer.rs`).
    pub async fn ecs_service_balanced(
        &self,
        service: &str,
        containers: &[&str],
        controller: aws_sdk_ecs::types::DeploymentControllerType,
        load_balancers: Vec<aws_sdk_ecs::types::LoadBalancer>,
    ) -> EcsWorld {
        use aws_sdk_ecs::types::{
            AssignPublicIp, AwsVpcConfiguration, Compatibility, ContainerDefinition, DeploymentController,
            KeyValuePair, LaunchType, LogConfiguration, LogDriver, NetworkConfiguration, NetworkMode, Secret,
        };
        let moto = Moto::shared();
        let ecs = aws_sdk_ecs::Client::new(&self.sdk);
        // EC2 through its Query API: the tests need only these four calls, not the SDK crate.
        let vpc = ec2(moto, "CreateVpc", &[("CidrBlock", "10.0.0.0/16")]);
        let vpc_id = xml_text(&vpc, "vpcId").expect("CreateVpc answers a vpcId").to_owned();
        ec2(moto, "ModifyVpcAttribute", &[("VpcId", &vpc_id), ("EnableDnsHostnames.Value", "true")]);
        let subnet = ec2(moto, "CreateSubnet", &[("VpcId", &vpc_id), ("CidrBlock", "10.0.1.0/24")]);
        let subnet = xml_text(&subnet, "subnetId").expect("CreateSubnet answers a subnetId").to_owned();
        let group = ec2(
            moto,
            "CreateSecurityGroup",
            &[
                ("GroupName", &format!("convoy-{}", self.id)),
                ("GroupDescription", "convoy test service"),
                ("VpcId", &vpc_id),
            ],
        );
        let security_group = xml_text(&group, "groupId").expect("CreateSecurityGroup answers a groupId").to_owned();

        let cluster = self.cluster();
        ecs.create_cluster().cluster_name(&cluster).send().await.expect("cluster");
        let definitions: Vec<ContainerDefinition> = containers
            .iter()
            .map(|name| {
                ContainerDefinition::builder()
                    .name(*name)
                    .image(self.uri(name, "bootstrap"))
                    .memory(256)
                    .essential(true)
                    .environment(KeyValuePair::builder().name("DB_HOST").value("db.internal").build())
                    .secrets(
                        Secret::builder()
                            .name("DB_PASSWORD")
                            .value_from(format!(
                                "arn:aws:ssm:{}:{}:parameter/{service}/db",
                                crate::moto::REGION,
                                crate::moto::ACCOUNT
                            ))
                            .build()
                            .expect("secret"),
                    )
                    .log_configuration(
                        LogConfiguration::builder()
                            .log_driver(LogDriver::Awslogs)
                            .options("awslogs-group", format!("/ecs/{service}"))
                            .options("awslogs-region", crate::moto::REGION)
                            .options("awslogs-stream-prefix", "ecs")
                            .build()
                            .expect("log configuration"),
                    )
                    .build()
            })
            .collect();
        let registered = ecs
            .register_task_definition()
            .family(if self.id.is_empty() { service.to_owned() } else { format!("{service}-{}", self.id) })
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("256")
            .memory("512")
            .execution_role_arn(format!("arn:aws:iam::{}:role/{service}-execution", crate::moto::ACCOUNT))
            .task_role_arn(format!("arn:aws:iam::{}:role/{service}-task", crate::moto::ACCOUNT))
            .set_container_definitions(Some(definitions))
            .send()
            .await
            .expect("task definition");
        let task_definition =
            registered.task_definition().and_then(|t| t.task_definition_arn()).expect("arn").to_owned();
        ecs.create_service()
            .cluster(&cluster)
            .service_name(service)
            .task_definition(&task_definition)
            .desired_count(1)
            .launch_type(LaunchType::Fargate)
            .deployment_controller(DeploymentController::builder().r#type(controller).build().expect("controller"))
            .set_load_balancers(Some(load_balancers).filter(|l| !l.is_empty()))
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(
                        AwsVpcConfiguration::builder()
                            .subnets(&subnet)
                            .security_groups(&security_group)
                            .assign_public_ip(AssignPublicIp::Disabled)
                            .build()
                            .expect("awsvpc"),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("service");
        EcsWorld { cluster, service: service.to_owned(), subnet, security_group, task_definition }
    }
}

/// One EC2 Query API call on moto (form-encoded `Action=…&Version=…`, XML answer); its body.
pub(crate) fn ec2(moto: &Moto, action: &str, params: &[(&str, &str)]) -> String {
    let mut form = format!("Action={action}&Version=2016-11-15");
    for (name, value) in params {
        let value = percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC);
        form.push_str(&format!("&{name}={value}"));
    }
    let (status, body) = moto.raw_call("ec2", None, "application/x-www-form-urlencoded", &form);
    assert_eq!(status, 200, "EC2 {action} on moto: {body}");
    body
}

/// The text of the first `<tag>…</tag>` in an XML answer.
pub(crate) fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let (_, rest) = xml.split_once(&format!("<{tag}>"))?;
    rest.split_once(&format!("</{tag}>")).map(|(text, _)| text.trim())
}

/// The environment a Convoy function gets in this world: AWS through `endpoint`, the settings.
pub fn function_env(
    world: &World,
    endpoint: &str,
    cluster: &str,
    services: &[String],
    repositories: &[String],
    settings: &str,
) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", crate::moto::REGION),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("CONVOY_STATE_BUCKET", &world.bucket),
        ("CONVOY_S3_FORCE_PATH_STYLE", "true"),
        ("CONVOY_ALLOWED_SERVICES", &services.join(",")),
        ("CONVOY_ALLOWED_REPOSITORIES", &repositories.join(",")),
        ("CONVOY_CLUSTER", cluster),
        ("CONVOY_ACCOUNT_ID", crate::moto::ACCOUNT),
        ("CONVOY_SERVICE_SETTINGS", settings),
        ("CONVOY_MOVE_SCHEDULED_TASKS", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::xml_text;

    #[test]
    fn xml_text_reads_the_first_element_of_a_name() {
        let xml = "<CreateVpcResponse><vpc><vpcId>vpc-1</vpcId><dhcpOptionsId>default</dhcpOptionsId></vpc>\
                   <vpcId>vpc-2</vpcId></CreateVpcResponse>";
        assert_eq!(xml_text(xml, "vpcId"), Some("vpc-1"));
        assert_eq!(xml_text(xml, "subnetId"), None);
    }
}
