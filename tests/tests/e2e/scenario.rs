//! A release scenario that runs the same way on moto and on the in-memory fakes: upload a
//! manifest, push images, deliver the events AWS would send.

use std::sync::Arc;

use async_trait::async_trait;
use convoy::adapters::aws::HttpProber;
use convoy::adapters::memory::{
    MemoryCodeDeploy, MemoryDocuments, MemoryLogs, MemoryObjects, MemoryPipelines, MemoryRegistry, MemoryStore,
    MemoryTasks,
};
use convoy::config::{Config, StoreSettings};
use convoy::manifest::Policy;
use convoy::names::ReleaseKey;
use convoy::ports::Tasks;
use convoy::release::{ImageKey, Release};
use convoy::service::Convoy;
use convoy_tests::fixtures;
use convoy_tests::moto::{ACCOUNT, Moto, REGION};
use convoy_tests::standin::StandIn;
use convoy_tests::world::{EcsWorld, PipelineWorld, World, service_settings};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

pub const SERVICE: &str = "web";

/// Delivers an event to a handler the way the Lambda runtime would.
pub async fn invoke_image_pushed(convoy: &Convoy, payload: Value) -> Result<Value, lambda_runtime::Diagnostic> {
    convoy::handlers::image_pushed(convoy, LambdaEvent::new(payload, Context::default())).await
}

pub async fn invoke_manifest_uploaded(convoy: &Convoy, payload: Value) -> Result<Value, lambda_runtime::Diagnostic> {
    convoy::handlers::manifest_uploaded(convoy, LambdaEvent::new(payload, Context::default())).await
}

/// The outside world of a scenario: where manifests are uploaded and images pushed.
#[async_trait]
pub trait Backend: Send + Sync {
    fn convoy(&self) -> &Convoy;
    fn uri(&self, container: &str, tag: &str) -> String;
    /// Uploads the manifest object; returns the event AWS would send: S3's "Object Created"
    /// through EventBridge, the form template.yaml's rule delivers.
    async fn upload(&self, key: &str, body: &str) -> Value;
    /// Pushes an image; returns its digest and the ECR event AWS would send.
    async fn push(&self, container: &str, tag: &str) -> (String, Value);
    async fn record(&self, key: &ReleaseKey) -> Option<Release>;
    /// How many migration tasks exist for the release (started, running or stopped).
    async fn migration_tasks(&self, key: &ReleaseKey) -> usize;
    /// How many deployments were created for the release.
    async fn deployments(&self, key: &ReleaseKey) -> usize;
    /// The release events published so far, where the backend keeps them (the in-memory fakes).
    fn published(&self) -> Option<Vec<convoy::notify::ReleaseChange>> {
        None
    }
}

pub fn manifest_v1(backend: &dyn Backend, release: &str, containers: &[String], migration: bool) -> String {
    let images: serde_json::Map<String, Value> =
        containers.iter().map(|c| (c.clone(), Value::String(backend.uri(c, release)))).collect();
    let mut manifest = serde_json::json!({"version": 1, "release": release, "service": SERVICE, "images": images});
    if migration {
        manifest["migration"] = serde_json::json!({"container": containers[0], "command": ["./migrate"]});
    }
    manifest.to_string()
}

pub fn release_key(release: &str) -> ReleaseKey {
    ReleaseKey::new(SERVICE.parse().unwrap(), release.parse().unwrap())
}

/// moto through the real adapters; CodeDeploy's missing operations through the stand-in.
pub struct MotoBackend {
    pub world: World,
    pub ecs: EcsWorld,
    pub application: String,
    pub group: String,
    pub standin: StandIn,
    pub convoy: Convoy,
    /// The service settings the backend's Convoy runs on (`CONVOY_SERVICE_SETTINGS`), for the
    /// built binaries to run on the same.
    pub settings: String,
}

impl MotoBackend {
    /// A service that deploys with CodeDeploy, verified on a listener where nothing listens.
    pub async fn new(containers: &[String]) -> Self {
        Self::with_listener(containers, &convoy_tests::http::refused_url(), "manual", serde_json::json!({})).await
    }

    /// A service whose test listener is `listener`, with an approval policy and probe settings.
    pub async fn with_listener(
        containers: &[String],
        listener: &str,
        approval: &str,
        probe: serde_json::Value,
    ) -> Self {
        Self::build(containers, listener, approval, probe, None, json!({})).await.0
    }

    /// A service whose settings also hold `gates` (`metric_checks`, `alarms`); CloudWatch is
    /// moto's, through the stand-in's bridge (the SDK speaks CBOR to CloudWatch, moto JSON).
    pub async fn with_gates(
        containers: &[String],
        listener: &str,
        approval: &str,
        probe: serde_json::Value,
        gates: serde_json::Value,
    ) -> Self {
        Self::build(containers, listener, approval, probe, None, gates).await.0
    }

    /// A service that deploys through a CodePipeline whose source bucket keeps versions when
    /// `versioned`.
    pub async fn with_pipeline(
        containers: &[String],
        listener: &str,
        approval: &str,
        probe: serde_json::Value,
        versioned: bool,
    ) -> (Self, PipelineWorld) {
        let (backend, pipeline) = Self::build(containers, listener, approval, probe, Some(versioned), json!({})).await;
        (backend, pipeline.expect("a pipeline"))
    }

    async fn build(
        containers: &[String],
        listener: &str,
        approval: &str,
        probe: serde_json::Value,
        pipeline: Option<bool>,
        gates: serde_json::Value,
    ) -> (Self, Option<PipelineWorld>) {
        let world = World::new().await;
        let names: Vec<&str> = containers.iter().map(String::as_str).collect();
        world.create_repositories(&names).await;
        let mut all = names.clone();
        if !all.contains(&"nginx") {
            all.push("nginx"); // the load balancer's container (service settings)
        }
        let ecs = world.ecs_service(SERVICE, &all).await;
        let (application, group) = world.codedeploy(SERVICE).await;
        let mut settings: Value =
            serde_json::from_str(&service_settings(SERVICE, &application, &group, listener, approval, probe)).unwrap();
        let pipeline = match pipeline {
            Some(versioned) => Some(world.pipeline(SERVICE, &application, &group, versioned).await),
            None => None,
        };
        if let Some(pipeline) = &pipeline {
            settings[SERVICE]["pipeline"] = pipeline.settings();
        }
        for (field, value) in gates.as_object().into_iter().flatten() {
            settings[SERVICE][field] = value.clone();
        }
        let mut convoy = world.convoy_with(&[SERVICE], &names, &settings.to_string());
        let standin = StandIn::for_missing_operations(&Moto::shared().endpoint).await;
        let via_standin = convoy_tests::moto::sdk_config_for(&standin.endpoint).await;
        convoy.codedeploy = std::sync::Arc::new(convoy::adapters::aws::CodeDeployer::new(
            aws_sdk_codedeploy::Client::new(&via_standin),
        ));
        convoy.service_deployments =
            std::sync::Arc::new(convoy::adapters::aws::EcsDeployments::new(aws_sdk_ecs::Client::new(&via_standin)));
        // ECS tasks too: moto runs no containers, the stand-in says how a migration's exited.
        convoy.tasks =
            std::sync::Arc::new(convoy::adapters::aws::EcsTasks::new(aws_sdk_ecs::Client::new(&via_standin)));
        let source = StoreSettings { state_bucket: world.bucket.clone(), force_path_style: true };
        convoy.pipelines = Arc::new(convoy::adapters::aws::CodePipelines::new(
            convoy::adapters::aws::s3_client(&world.sdk, &source),
            aws_sdk_codepipeline::Client::new(&via_standin),
        ));
        convoy.watch = Arc::new(convoy::adapters::aws::CloudWatch::new(aws_sdk_cloudwatch::Client::new(&via_standin)));
        // ECR's scans and signing statuses: moto's scans, and what it lacks from the stand-in.
        convoy.image_checks = Arc::new(convoy::adapters::aws::EcrRegistry::new(aws_sdk_ecr::Client::new(&via_standin)));
        // CloudTrail's event history: moto has no LookupEvents; the stand-in serves it.
        convoy.api_calls =
            Arc::new(convoy::adapters::aws::CloudTrailHistory::new(aws_sdk_cloudtrail::Client::new(&via_standin)));
        let settings = settings.to_string();
        (Self { world, ecs, application, group, standin, convoy, settings }, pipeline)
    }

    /// ECS's STOPPED event for `key`'s migration task `task` whose `app` exited 0 (nginx, stopped
    /// by ECS once app exited, listed first), told to the stand-in, which then describes the
    /// task so: the event to deliver to migration-stopped.
    pub fn migration_exited_0(&self, key: &ReleaseKey, task: &str) -> Value {
        self.migration_exited(key, task, 0)
    }

    /// [`Self::migration_exited_0`], with `app`'s exit code `exit_code`.
    pub fn migration_exited(&self, key: &ReleaseKey, task: &str, exit_code: i32) -> Value {
        let containers = [
            convoy_tests::fixtures::ContainerExit::exited("nginx", 137),
            convoy_tests::fixtures::ContainerExit::exited("app", exit_code),
        ];
        let stopped = convoy_tests::fixtures::ecs_task_stopped(&convoy_tests::fixtures::TaskStopped {
            cluster: &self.ecs.cluster,
            task,
            group: &key.tag(),
            started_by: &key.migration_started_by(),
            task_definition: &convoy_tests::fixtures::migration_task_definition("web"),
            overridden: "app",
            containers: &containers,
            stop_code: "EssentialContainerExited",
            version: 4,
        });
        self.standin.task_stops(&stopped);
        stopped
    }

    pub fn ecs_client(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.world.sdk)
    }

    /// CodeDeploy invokes the `AfterAllowTestTraffic` hook of `deployment` as `execution`: the
    /// stand-in expects that execution's answer, and the verify function runs.
    pub async fn codedeploy_hook(&self, deployment: &str, execution: &str) -> Value {
        self.standin.hook_invoked(deployment, execution);
        crate::deploy::invoke(&self.convoy, "verify", convoy_tests::fixtures::codedeploy_hook(deployment, execution))
            .await
    }

    /// CodeDeploy ends `deployment` in `state` (SUCCESS, FAILURE, STOP), unless it ended already.
    pub fn codedeploy_ends(&self, deployment: &str, state: &str) {
        use convoy_tests::standin::Phase;
        if self.standin.phase(deployment).is_some_and(|phase| !phase.ended()) {
            let phase = match state {
                "SUCCESS" => Phase::Succeeded,
                "STOP" => Phase::Stopped,
                _ => Phase::Failed,
            };
            self.standin.ended_elsewhere(deployment, phase);
        }
    }

    /// CodeDeploy reports that `deployment` (of this world's application and group) ended in
    /// `state`: the deployment-changed function gets the state-change event.
    /// CodeDeploy (the stand-in) ends it so first, unless it ended already: Convoy confirms the
    /// end with `GetDeployment`.
    pub async fn codedeploy_reports(&self, deployment: &str, state: &str) -> Value {
        self.codedeploy_ends(deployment, state);
        let event = convoy_tests::fixtures::codedeploy_state_change(&self.application, &self.group, deployment, state);
        crate::deploy::invoke(&self.convoy, "deployment-changed", event).await
    }

    /// A person with their own AWS identity: an IAM user `name-<world id>` created in moto with its own
    /// access key, and a Convoy wired as the CLI wires it, with that user's credentials (through
    /// the stand-in, which records the calls CloudTrail would). Returns the user's ARN as IAM
    /// reports it, and that Convoy.
    pub async fn person(&self, name: &str) -> (String, Convoy) {
        let (arn, sdk) = self.person_sdk(name).await;
        let mut convoy = self.convoy.clone();
        convoy.codedeploy =
            std::sync::Arc::new(convoy::adapters::aws::CodeDeployer::new(aws_sdk_codedeploy::Client::new(&sdk)));
        convoy.service_deployments =
            std::sync::Arc::new(convoy::adapters::aws::EcsDeployments::new(aws_sdk_ecs::Client::new(&sdk)));
        (arn, convoy)
    }

    /// The IAM user `name` (created in moto with its own access key): its ARN, and an SDK
    /// configuration with its credentials through the stand-in (as the console or any tool).
    pub async fn person_sdk(&self, name: &str) -> (String, aws_config::SdkConfig) {
        let moto = Moto::shared();
        // IAM user names are account-wide in moto: one per world.
        let name = format!("{name}-{}", self.world.id);
        let form = "application/x-www-form-urlencoded";
        let (_, created) =
            moto.raw_call("iam", None, form, &format!("Action=CreateUser&UserName={name}&Version=2010-05-08"));
        let (_, key) =
            moto.raw_call("iam", None, form, &format!("Action=CreateAccessKey&UserName={name}&Version=2010-05-08"));
        let element = |text: &str, tag: &str| {
            text.split(&format!("<{tag}>")).nth(1).and_then(|r| r.split(&format!("</{tag}>")).next()).map(str::to_owned)
        };
        let arn = element(&created, "Arn").expect("IAM names the user's ARN");
        let (id, secret) = (element(&key, "AccessKeyId").unwrap(), element(&key, "SecretAccessKey").unwrap());
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.standin.endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(id, secret, None, None, "person"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        (arn, sdk)
    }

    /// A person who signed in through a role (SSO, federation): a role `role` in moto, assumed
    /// with the session name `session` (STS `AssumeRole`); the session's ARN as STS names it and
    /// an SDK configuration with the session's credentials through the stand-in.
    pub async fn role_session_sdk(&self, role: &str, session: &str) -> (String, aws_config::SdkConfig) {
        let moto = Moto::shared();
        let form = "application/x-www-form-urlencoded";
        let role = format!("{role}-{}", self.world.id);
        let trust = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
        let (_, created) = moto.raw_call(
            "iam",
            None,
            form,
            &format!("Action=CreateRole&RoleName={role}&AssumeRolePolicyDocument={trust}&Version=2010-05-08"),
        );
        let element = |text: &str, tag: &str| {
            text.split(&format!("<{tag}>")).nth(1).and_then(|r| r.split(&format!("</{tag}>")).next()).map(str::to_owned)
        };
        let role_arn = element(&created, "Arn").expect("IAM names the role's ARN");
        let encoded: String = session.replace('@', "%40");
        let (_, assumed) = moto.raw_call(
            "sts",
            None,
            form,
            &format!("Action=AssumeRole&RoleArn={role_arn}&RoleSessionName={encoded}&Version=2011-06-15"),
        );
        let arn = element(&assumed, "Arn").expect("STS names the session's ARN");
        let (id, secret, token) = (
            element(&assumed, "AccessKeyId").unwrap(),
            element(&assumed, "SecretAccessKey").unwrap(),
            element(&assumed, "SessionToken").unwrap(),
        );
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.standin.endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(id, secret, Some(token), None, "session"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        (arn, sdk)
    }

    /// EventBridge delivers CloudTrail's record of the last decision call (approve or reject) to
    /// the deployment-changed function, as "AWS API Call via CloudTrail"; returns the record.
    pub async fn cloudtrail_delivers_last_call(&self) -> Value {
        let record = self.standin.trail().last().cloned().expect("CloudTrail recorded a call");
        let event = StandIn::api_call_event(&record);
        crate::deploy::invoke(&self.convoy, "deployment-changed", event).await;
        record
    }

    /// The hook answers CodeDeploy (the stand-in) took, in order; refused ones are left out.
    pub fn accepted_hook_answers(&self) -> Vec<Value> {
        let calls = self.standin.calls_of("PutLifecycleEventHookExecutionStatus");
        calls.into_iter().filter(|c| c.refused.is_none()).map(|c| c.body).collect()
    }
}

#[async_trait]
impl Backend for MotoBackend {
    fn convoy(&self) -> &Convoy {
        &self.convoy
    }
    fn uri(&self, container: &str, tag: &str) -> String {
        self.world.uri(container, tag)
    }
    async fn upload(&self, key: &str, body: &str) -> Value {
        let (version, size) = self.world.upload(key, body).await;
        fixtures::s3_eventbridge(&self.world.bucket, key, version.as_deref(), size)
    }
    async fn push(&self, container: &str, tag: &str) -> (String, Value) {
        let digest = self.world.push_image(container, tag).await;
        let event = fixtures::ecr_push(ACCOUNT, &self.world.repo(container), tag, &digest, chrono::Utc::now());
        (digest, event)
    }
    async fn record(&self, key: &ReleaseKey) -> Option<Release> {
        self.convoy.store.load(key).await.unwrap().map(|s| s.release)
    }
    async fn migration_tasks(&self, key: &ReleaseKey) -> usize {
        let listed = self
            .ecs_client()
            .list_tasks()
            .cluster(&self.ecs.cluster)
            .started_by(key.migration_started_by())
            .send()
            .await
            .expect("list tasks");
        listed.task_arns().len()
    }
    async fn deployments(&self, key: &ReleaseKey) -> usize {
        let codedeploy = aws_sdk_codedeploy::Client::new(&self.world.sdk);
        let listed = codedeploy
            .list_deployments()
            .application_name(&self.application)
            .deployment_group_name(&self.group)
            .send()
            .await
            .expect("list deployments");
        let marker = key.tag();
        let mut count = 0;
        for id in listed.deployments() {
            let info = codedeploy.get_deployment().deployment_id(id).send().await.expect("get deployment");
            if info.deployment_info().and_then(|d| d.description()).is_some_and(|d| d.contains(&marker)) {
                count += 1;
            }
        }
        count
    }
}

/// The in-memory fakes: the same contracts, no I/O.
pub struct MemoryBackend {
    pub tasks: Arc<MemoryTasks>,
    pub deployer: Arc<MemoryCodeDeploy>,
    pub pipelines: Arc<MemoryPipelines>,
    pub registry: Arc<MemoryRegistry>,
    pub objects: Arc<MemoryObjects>,
    pub events: Arc<convoy::adapters::memory::MemoryEvents>,
    pub convoy: Convoy,
}

pub const MEMORY_BUCKET: &str = "convoy-state";

impl MemoryBackend {
    pub fn new(containers: &[String]) -> Self {
        Self::build(containers, None)
    }

    /// A service that deploys through a pipeline (`pipeline` is the settings' `pipeline` object).
    pub fn with_pipeline(containers: &[String], pipeline: Value) -> Self {
        Self::build(containers, Some(pipeline))
    }

    fn build(containers: &[String], pipeline: Option<Value>) -> Self {
        let store = Arc::new(MemoryStore::default());
        let registry = Arc::new(MemoryRegistry::default());
        let objects = Arc::new(MemoryObjects::default());
        let tasks = Arc::new(MemoryTasks::default());
        let shape = convoy::ports::ServiceShape {
            task_definition: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1".into(),
            since: None,
            network: Some(convoy::ports::AwsVpc {
                subnets: vec!["subnet-1".into()],
                security_groups: vec!["sg-1".into()],
                assign_public_ip: false,
            }),
            launch: convoy::ports::Launch::Type("FARGATE".into()),
            platform_version: None,
        };
        let mut names: Vec<&str> = containers.iter().map(String::as_str).collect();
        names.push("nginx");
        tasks.add_service(SERVICE, shape, &names);
        let deployer = Arc::new(MemoryCodeDeploy::default());
        let documents = Arc::new(MemoryDocuments::default());
        let settings = service_settings(
            SERVICE,
            "convoy",
            SERVICE,
            &convoy_tests::http::refused_url(),
            "manual",
            serde_json::json!({}),
        );
        let mut settings: Value = serde_json::from_str(&settings).unwrap();
        if let Some(pipeline) = pipeline {
            settings[SERVICE]["pipeline"] = pipeline;
        }
        let settings = settings.to_string();
        let pipelines = Arc::new(MemoryPipelines::default());
        let events = Arc::new(convoy::adapters::memory::MemoryEvents::default());
        let convoy = Convoy {
            store: store.clone(),
            waits: store.clone(),
            active: store.clone(),
            records: store.clone(),
            manifests: objects.clone(),
            registry: registry.clone(),
            image_checks: Arc::new(convoy::adapters::memory::MemoryImageChecks::default()),
            tasks: tasks.clone(),
            definitions: tasks.clone(),
            codedeploy: deployer.clone(),
            service_deployments: Arc::new(convoy::adapters::memory::MemoryServiceDeployments::default()),
            pipelines: pipelines.clone(),
            locks: documents,
            deployments: store.clone(),
            prober: Arc::new(HttpProber::new().expect("prober")),
            events: events.clone(),
            logs: Arc::new(MemoryLogs::default()),
            watch: Arc::new(convoy::adapters::memory::MemoryWatch::default()),
            api_calls: Arc::new(convoy::adapters::memory::MemoryApiCalls::default()),
            scheduled_tasks: Arc::new(convoy::adapters::memory::MemoryScheduledTasks::default()),
            upload_trail: Arc::new(convoy::adapters::memory::MemoryUploadTrail::new(ACCOUNT, REGION)),
            config: Config {
                store: StoreSettings { state_bucket: MEMORY_BUCKET.into(), force_path_style: false },
                manifest_prefix: "releases/".into(),
                policy: Policy {
                    allowed_services: [SERVICE.parse().unwrap()].into(),
                    allowed_repositories: containers.iter().map(|c| c.parse().unwrap()).collect(),
                    region: REGION.into(),
                    registries: [convoy_tests::moto::ACCOUNT.parse().unwrap()].into(),
                    account: Some(convoy_tests::moto::ACCOUNT.parse().unwrap()),
                },
                cluster: "memory".into(),
                migration_timeout_seconds: 1800,
                collecting_deadline_seconds: 3600,
                manifest_lookback_seconds: 86_400,
                claim_lease: convoy::config::CLAIM_LEASE,
                event_bus: "default".into(),
                move_scheduled_tasks: true,
                manifest_trail: None,
                services: convoy::settings::parse(&settings).expect("settings"),
                release_groups: Default::default(),
                settings_object_version: None,
                settings_version: None,
            },
        };
        Self { tasks, deployer, pipelines, registry, objects, events, convoy }
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn convoy(&self) -> &Convoy {
        &self.convoy
    }
    fn uri(&self, container: &str, tag: &str) -> String {
        format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{container}:{tag}")
    }
    async fn upload(&self, key: &str, body: &str) -> Value {
        let version = self.objects.put(MEMORY_BUCKET, key, body);
        fixtures::s3_eventbridge(MEMORY_BUCKET, key, Some(&version), body.len() as u64)
    }
    async fn push(&self, container: &str, tag: &str) -> (String, Value) {
        let digest = format!(
            "sha256:{:016x}{:016x}{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..),
            fastrand::u64(..),
            fastrand::u64(..)
        );
        let image = ImageKey::tagged(ACCOUNT.parse().unwrap(), container.parse().unwrap(), tag.parse().unwrap());
        self.registry.push(image, digest.parse().unwrap());
        let event = fixtures::ecr_push(ACCOUNT, container, tag, &digest, chrono::Utc::now());
        (digest, event)
    }
    async fn record(&self, key: &ReleaseKey) -> Option<Release> {
        self.convoy.store.load(key).await.unwrap().map(|s| s.release)
    }
    async fn migration_tasks(&self, key: &ReleaseKey) -> usize {
        self.tasks.find("memory", &key.migration_started_by()).await.unwrap().len()
    }
    async fn deployments(&self, key: &ReleaseKey) -> usize {
        let marker = key.tag();
        let created = self.deployer.calls().into_iter().filter(
            |c| matches!(c, convoy::adapters::memory::DeployCall::Create(r) if r.description.contains(&marker)),
        );
        created.count()
    }
    fn published(&self) -> Option<Vec<convoy::notify::ReleaseChange>> {
        Some(self.events.published())
    }
}
