use async_trait::async_trait;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, ContainerOverride, DesiredStatus, LaunchType,
    NetworkConfiguration, TaskOverride,
};
use chrono::{DateTime, Utc};

use crate::error::TasksError;
use crate::ports::{
    AwsVpc, DescribedTaskDefinition, Launch, MigrationTaskSpec, RegisteredTaskDefinition, ReleaseDefinitions,
    ReleaseTaskSpec, RunTaskRequest, ServiceShape, Tasks,
};
use crate::release::{ContainerReport, TaskReport};

/// ECS through the SDK.
#[derive(Clone)]
pub struct EcsTasks {
    client: aws_sdk_ecs::Client,
}

impl EcsTasks {
    pub fn new(client: aws_sdk_ecs::Client) -> Self {
        Self { client }
    }
}

/// Errors ECS raises for requests that can never succeed as made; everything else is retried.
const REJECTIONS: &[&str] = &[
    "ClientException",
    "InvalidParameterException",
    "ClusterNotFoundException",
    "ServiceNotFoundException",
    "ServiceNotActiveException",
    "PlatformUnknownException",
    "PlatformTaskDefinitionIncompatibilityException",
    "AccessDeniedException",
    "UnsupportedFeatureException",
];

fn classify<E, R>(err: aws_sdk_ecs::error::SdkError<E, R>) -> TasksError
where
    E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    super::sort(&err, Some(REJECTIONS), TasksError::Rejected, TasksError::Unavailable)
}

fn to_chrono(time: Option<&aws_sdk_ecs::primitives::DateTime>) -> Option<DateTime<Utc>> {
    time.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// A task definition derived from a service's: every named container's image replaced by its
/// pinned URI; for a migration, its own family and only the migration container essential.
struct Derivation<'a> {
    base: &'a str,
    images: &'a [(String, String)],
    migration: Option<&'a str>,
}

impl EcsTasks {
    async fn register_derived(&self, derived: Derivation<'_>) -> Result<RegisteredTaskDefinition, TasksError> {
        let output =
            self.client.describe_task_definition().task_definition(derived.base).send().await.map_err(classify)?;
        let base = output
            .task_definition()
            .ok_or_else(|| TasksError::Rejected(format!("task definition {} not found", derived.base)))?;
        let family = base.family().unwrap_or("task");
        let revision = format!("{family}:{}", base.revision());
        let mut containers = base.container_definitions().to_vec();
        for (name, _) in derived.images {
            if !containers.iter().any(|c| c.name() == Some(name.as_str())) {
                return Err(TasksError::Rejected(format!(
                    "the manifest names container {name:?}, which task definition {revision} does not have"
                )));
            }
        }
        let logged = derived.migration.or_else(|| containers.first().and_then(|c| c.name()));
        let Some(logged) = containers.iter().find(|c| c.name() == logged) else {
            return Err(TasksError::Rejected(format!(
                "the migration container {:?} is not in task definition {revision}",
                derived.migration.unwrap_or_default()
            )));
        };
        let log = logged
            .log_configuration()
            .filter(|l| l.log_driver().as_str() == "awslogs")
            .and_then(|l| l.options())
            .cloned()
            .unwrap_or_default();
        for container in &mut containers {
            let name = container.name().unwrap_or_default().to_owned();
            if let Some((_, uri)) = derived.images.iter().find(|(n, _)| *n == name) {
                container.image = Some(uri.clone());
            }
            if let Some(migration) = derived.migration {
                container.essential = Some(name == migration);
            }
        }
        let family = match derived.migration {
            Some(_) => format!("{family}-convoy-migration"),
            None => family.to_owned(),
        };
        let registered = self
            .client
            .register_task_definition()
            .family(family)
            .set_task_role_arn(base.task_role_arn().map(str::to_owned))
            .set_execution_role_arn(base.execution_role_arn().map(str::to_owned))
            .set_network_mode(base.network_mode().cloned())
            .set_container_definitions(Some(containers))
            .set_volumes(Some(base.volumes().to_vec()))
            .set_placement_constraints(Some(base.placement_constraints().to_vec()))
            .set_requires_compatibilities(Some(base.requires_compatibilities().to_vec()))
            .set_cpu(base.cpu().map(str::to_owned))
            .set_memory(base.memory().map(str::to_owned))
            .set_pid_mode(base.pid_mode().cloned())
            .set_ipc_mode(base.ipc_mode().cloned())
            .set_proxy_configuration(base.proxy_configuration().cloned())
            .set_ephemeral_storage(base.ephemeral_storage().cloned())
            .set_runtime_platform(base.runtime_platform().cloned())
            .send()
            .await
            .map_err(classify)?;
        let arn = registered
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .ok_or_else(|| TasksError::Unavailable("RegisterTaskDefinition returned no ARN".into()))?
            .to_owned();
        Ok(RegisteredTaskDefinition {
            arn,
            log_group: log.get("awslogs-group").cloned(),
            log_stream_prefix: log.get("awslogs-stream-prefix").cloned(),
        })
    }
}

#[async_trait]
impl ReleaseDefinitions for EcsTasks {
    async fn register_release(&self, spec: &ReleaseTaskSpec) -> Result<String, TasksError> {
        let derived = Derivation { base: &spec.base, images: &spec.images, migration: None };
        Ok(self.register_derived(derived).await?.arn)
    }

    async fn describe_verbatim(&self, task_definition: &str) -> Result<DescribedTaskDefinition, TasksError> {
        let body = ResponseBody::default();
        self.client
            .describe_task_definition()
            .task_definition(task_definition)
            .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
            .customize()
            .interceptor(body.clone())
            .send()
            .await
            .map_err(classify)?;
        let bytes = body
            .take()
            .ok_or_else(|| TasksError::Unavailable("DescribeTaskDefinition's response body was not captured".into()))?;
        let document: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| TasksError::Unavailable(format!("DescribeTaskDefinition answered no JSON: {e}")))?;
        Ok(DescribedTaskDefinition(document))
    }
}

/// Keeps the raw body of a successful response. The SDK's types drop fields they don't know and
/// don't serialise back to JSON; a pipeline's `taskdef.json` must keep every field ECS returned.
#[derive(Debug, Clone, Default)]
struct ResponseBody(std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>);

impl ResponseBody {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

impl aws_sdk_ecs::config::Intercept for ResponseBody {
    fn name(&self) -> &'static str {
        "convoy-response-body"
    }

    fn read_after_deserialization(
        &self,
        context: &aws_sdk_ecs::config::interceptors::AfterDeserializationInterceptorContextRef<'_>,
        _components: &aws_sdk_ecs::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ecs::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // After deserialisation a non-streaming body is in memory; a failed attempt is not kept.
        if context.output_or_error().is_ok()
            && let Some(bytes) = context.response().body().bytes()
        {
            *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(bytes.to_vec());
        }
        Ok(())
    }
}

#[async_trait]
impl Tasks for EcsTasks {
    async fn service_shape(&self, cluster: &str, service: &str) -> Result<ServiceShape, TasksError> {
        let output =
            self.client.describe_services().cluster(cluster).services(service).send().await.map_err(classify)?;
        let Some(found) = output.services().first() else {
            return Err(TasksError::Rejected(format!("service {service} not found in cluster {cluster}")));
        };
        if found.status() != Some("ACTIVE") {
            return Err(TasksError::Rejected(format!(
                "service {service} in cluster {cluster} is {}",
                found.status().unwrap_or("not active")
            )));
        }
        // Blue/green services keep their live shape in the PRIMARY task set.
        let primary = found.task_sets().iter().find(|set| set.status() == Some("PRIMARY"));
        let task_definition = primary
            .and_then(|set| set.task_definition())
            .or(found.task_definition())
            .ok_or_else(|| TasksError::Rejected(format!("service {service} has no task definition")))?
            .to_owned();
        let network = primary
            .and_then(|set| set.network_configuration())
            .or(found.network_configuration())
            .and_then(|n| n.awsvpc_configuration())
            .map(|vpc| AwsVpc {
                subnets: vpc.subnets().to_vec(),
                security_groups: vpc.security_groups().to_vec(),
                assign_public_ip: vpc.assign_public_ip() == Some(&AssignPublicIp::Enabled),
            });
        let strategy = primary
            .map(|set| set.capacity_provider_strategy())
            .filter(|s| !s.is_empty())
            .unwrap_or(found.capacity_provider_strategy());
        let launch_type = primary.and_then(|set| set.launch_type()).or(found.launch_type());
        let launch = match (launch_type, strategy) {
            (_, strategy) if !strategy.is_empty() => Launch::CapacityProviders(
                strategy.iter().map(|s| (s.capacity_provider().to_owned(), s.weight(), s.base())).collect(),
            ),
            (Some(launch_type), _) => Launch::Type(launch_type.as_str().to_owned()),
            (None, _) => Launch::ClusterDefault,
        };
        let platform_version =
            primary.and_then(|set| set.platform_version()).or(found.platform_version()).map(str::to_owned);
        Ok(ServiceShape { task_definition, network, launch, platform_version })
    }

    async fn register_migration(&self, spec: &MigrationTaskSpec) -> Result<RegisteredTaskDefinition, TasksError> {
        let derived = Derivation { base: &spec.base, images: &spec.images, migration: Some(&spec.container) };
        self.register_derived(derived).await
    }

    async fn run(&self, request: &RunTaskRequest) -> Result<String, TasksError> {
        let mut call = self
            .client
            .run_task()
            .cluster(&request.cluster)
            .task_definition(&request.task_definition)
            .count(1)
            .started_by(&request.started_by)
            .group(&request.group)
            .client_token(&request.client_token)
            .overrides(
                TaskOverride::builder()
                    .container_overrides(
                        ContainerOverride::builder()
                            .name(&request.container)
                            .set_command(Some(request.command.clone()))
                            .build(),
                    )
                    .build(),
            )
            .set_platform_version(request.shape.platform_version.clone());
        call = match &request.shape.launch {
            Launch::Type(launch_type) => call.launch_type(LaunchType::from(launch_type.as_str())),
            Launch::CapacityProviders(strategy) => {
                let items = strategy.iter().map(|(name, weight, base)| {
                    CapacityProviderStrategyItem::builder().capacity_provider(name).weight(*weight).base(*base).build()
                });
                let items = items.collect::<Result<Vec<_>, _>>().map_err(|e| TasksError::Rejected(e.to_string()))?;
                call.set_capacity_provider_strategy(Some(items))
            }
            Launch::ClusterDefault => call,
        };
        if let Some(vpc) = &request.shape.network {
            let public_ip = if vpc.assign_public_ip { AssignPublicIp::Enabled } else { AssignPublicIp::Disabled };
            call = call.network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(
                        AwsVpcConfiguration::builder()
                            .set_subnets(Some(vpc.subnets.clone()))
                            .set_security_groups(Some(vpc.security_groups.clone()))
                            .assign_public_ip(public_ip)
                            .build()
                            .map_err(|e| TasksError::Rejected(e.to_string()))?,
                    )
                    .build(),
            );
        }
        let output = call.send().await.map_err(classify)?;
        if let Some(task) = output.tasks().first().and_then(|t| t.task_arn()) {
            return Ok(task.to_owned());
        }
        // No task and a failure list: capacity or placement, which may clear; retried.
        let failures: Vec<String> = output
            .failures()
            .iter()
            .map(|f| format!("{} {}", f.reason().unwrap_or("unknown"), f.detail().unwrap_or_default()))
            .collect();
        Err(TasksError::Unavailable(format!("RunTask started no task: {}", failures.join("; "))))
    }

    async fn find(&self, cluster: &str, started_by: &str) -> Result<Vec<String>, TasksError> {
        let mut tasks = Vec::new();
        for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
            let output = self
                .client
                .list_tasks()
                .cluster(cluster)
                .started_by(started_by)
                .desired_status(status)
                .send()
                .await
                .map_err(classify)?;
            tasks.extend(output.task_arns().iter().cloned());
        }
        tasks.sort();
        tasks.dedup();
        Ok(tasks)
    }

    async fn describe(&self, cluster: &str, task: &str) -> Result<Option<TaskReport>, TasksError> {
        let output = self.client.describe_tasks().cluster(cluster).tasks(task).send().await.map_err(classify)?;
        let Some(found) = output.tasks().first() else { return Ok(None) };
        Ok(Some(TaskReport {
            task: found.task_arn().unwrap_or(task).to_owned(),
            version: None,
            last_status: found.last_status().unwrap_or("UNKNOWN").to_owned(),
            stop_code: found.stop_code().map(|c| c.as_str().to_owned()),
            stopped_reason: found.stopped_reason().map(str::to_owned),
            containers: found
                .containers()
                .iter()
                .map(|c| ContainerReport {
                    name: c.name().unwrap_or_default().to_owned(),
                    exit_code: c.exit_code(),
                    reason: c.reason().map(str::to_owned),
                })
                .collect(),
            started_at: to_chrono(found.started_at()),
            stopped_at: to_chrono(found.stopped_at()),
        }))
    }

    async fn stop(&self, cluster: &str, task: &str, reason: &str) -> Result<(), TasksError> {
        self.client.stop_task().cluster(cluster).task(task).reason(reason).send().await.map_err(classify)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_ecs::Client;
    use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
    use aws_sdk_ecs::operation::register_task_definition::{RegisterTaskDefinitionInput, RegisterTaskDefinitionOutput};
    use aws_sdk_ecs::operation::run_task::{RunTaskInput, RunTaskOutput};
    use aws_sdk_ecs::types::{
        ContainerDefinition, KeyValuePair, LogConfiguration, LogDriver, NetworkMode, Secret, Task, TaskDefinition,
    };
    use aws_smithy_mocks::{mock, mock_client};

    use super::*;

    fn request() -> RunTaskRequest {
        RunTaskRequest {
            cluster: "prod".into(),
            task_definition: "arn:aws:ecs:us-east-1:123456789012:task-definition/web-convoy-migration:7".into(),
            shape: ServiceShape {
                task_definition: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:41".into(),
                network: Some(AwsVpc {
                    subnets: vec!["subnet-a".into(), "subnet-b".into()],
                    security_groups: vec!["sg-app".into()],
                    assign_public_ip: false,
                }),
                launch: Launch::Type("FARGATE".into()),
                platform_version: Some("1.4.0".into()),
            },
            container: "laravel".into(),
            command: vec!["php".into(), "artisan".into(), "migrate".into(), "--force".into()],
            started_by: "convoy-0123456789abcdef".into(),
            group: "convoy:web:4cf03d1".into(),
            client_token: "0123456789abcdef0123456789abcdef".into(),
        }
    }

    #[tokio::test]
    async fn run_task_carries_the_services_network_launch_token_group_and_command() {
        let seen: Arc<Mutex<Option<RunTaskInput>>> = Arc::default();
        let capture = seen.clone();
        let rule = mock!(Client::run_task)
            .match_requests(move |input| {
                *capture.lock().unwrap() = Some(input.clone());
                true
            })
            .then_output(|| {
                RunTaskOutput::builder().tasks(Task::builder().task_arn("arn:task/prod/1").build()).build()
            });
        let tasks = EcsTasks::new(mock_client!(aws_sdk_ecs, [&rule]));

        assert_eq!(tasks.run(&request()).await.unwrap(), "arn:task/prod/1");

        let input = seen.lock().unwrap().clone().expect("RunTask was called");
        assert_eq!(input.cluster(), Some("prod"));
        assert_eq!(input.task_definition(), Some(request().task_definition.as_str()));
        assert_eq!(input.count(), Some(1));
        assert_eq!(input.client_token(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(input.started_by(), Some("convoy-0123456789abcdef"));
        assert_eq!(input.group(), Some("convoy:web:4cf03d1"));
        assert_eq!(input.launch_type(), Some(&LaunchType::Fargate));
        assert_eq!(input.platform_version(), Some("1.4.0"));
        let vpc = input.network_configuration().and_then(|n| n.awsvpc_configuration()).expect("awsvpc");
        assert_eq!(vpc.subnets(), ["subnet-a", "subnet-b"]);
        assert_eq!(vpc.security_groups(), ["sg-app"]);
        assert_eq!(vpc.assign_public_ip(), Some(&AssignPublicIp::Disabled));
        let overrides = input.overrides().expect("overrides").container_overrides();
        assert_eq!(overrides.len(), 1);
        assert_eq!(overrides[0].name(), Some("laravel"));
        assert_eq!(overrides[0].command(), ["php", "artisan", "migrate", "--force"]);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_capacity_provider_strategy_replaces_the_launch_type() {
        let seen: Arc<Mutex<Option<RunTaskInput>>> = Arc::default();
        let capture = seen.clone();
        let rule = mock!(Client::run_task)
            .match_requests(move |input| {
                *capture.lock().unwrap() = Some(input.clone());
                true
            })
            .then_output(|| RunTaskOutput::builder().tasks(Task::builder().task_arn("arn:task/1").build()).build());
        let tasks = EcsTasks::new(mock_client!(aws_sdk_ecs, [&rule]));
        let mut request = request();
        request.shape.launch = Launch::CapacityProviders(vec![("FARGATE_SPOT".into(), 3, 0), ("FARGATE".into(), 1, 1)]);
        tasks.run(&request).await.unwrap();
        let input = seen.lock().unwrap().clone().unwrap();
        assert_eq!(input.launch_type(), None);
        let strategy = input.capacity_provider_strategy();
        assert_eq!(strategy.len(), 2);
        assert_eq!((strategy[0].capacity_provider(), strategy[0].weight(), strategy[0].base()), ("FARGATE_SPOT", 3, 0));
    }

    #[tokio::test]
    async fn a_run_that_starts_no_task_is_worth_a_retry() {
        let rule = mock!(Client::run_task).then_output(|| {
            RunTaskOutput::builder()
                .failures(aws_sdk_ecs::types::Failure::builder().reason("RESOURCE:ENI").build())
                .build()
        });
        let tasks = EcsTasks::new(mock_client!(aws_sdk_ecs, [&rule]));
        let err = tasks.run(&request()).await.unwrap_err();
        assert!(matches!(&err, TasksError::Unavailable(m) if m.contains("RESOURCE:ENI")), "{err}");
    }

    fn container(name: &str) -> ContainerDefinition {
        ContainerDefinition::builder()
            .name(name)
            .image(format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}:old"))
            .memory(256)
            .essential(true)
            .environment(KeyValuePair::builder().name("DB_HOST").value("db.internal").build())
            .secrets(Secret::builder().name("DB_PASSWORD").value_from("arn:aws:ssm:x").build().unwrap())
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-group", "/ecs/web")
                    .options("awslogs-stream-prefix", "ecs")
                    .build()
                    .unwrap(),
            )
            .build()
    }

    fn describe_rule() -> aws_smithy_mocks::Rule {
        mock!(Client::describe_task_definition).then_output(|| {
            DescribeTaskDefinitionOutput::builder()
                .task_definition(
                    TaskDefinition::builder()
                        .family("web")
                        .revision(41)
                        .task_role_arn("arn:aws:iam::123456789012:role/web-task")
                        .execution_role_arn("arn:aws:iam::123456789012:role/web-execution")
                        .network_mode(NetworkMode::Awsvpc)
                        .cpu("256")
                        .memory("512")
                        .container_definitions(container("laravel"))
                        .container_definitions(container("nginx"))
                        .build(),
                )
                .build()
        })
    }

    fn spec() -> MigrationTaskSpec {
        MigrationTaskSpec {
            base: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:41".into(),
            container: "laravel".into(),
            images: vec![
                ("laravel".into(), "123456789012.dkr.ecr.us-east-1.amazonaws.com/laravel@sha256:aa".into()),
                ("nginx".into(), "123456789012.dkr.ecr.us-east-1.amazonaws.com/nginx@sha256:bb".into()),
            ],
        }
    }

    #[tokio::test]
    async fn the_migration_definition_is_the_services_with_pinned_images_and_one_essential_container() {
        let seen: Arc<Mutex<Option<RegisterTaskDefinitionInput>>> = Arc::default();
        let capture = seen.clone();
        let describe = describe_rule();
        let register = mock!(Client::register_task_definition)
            .match_requests(move |input| {
                *capture.lock().unwrap() = Some(input.clone());
                true
            })
            .then_output(|| {
                RegisterTaskDefinitionOutput::builder()
                    .task_definition(
                        TaskDefinition::builder().task_definition_arn("arn:td/web-convoy-migration:1").build(),
                    )
                    .build()
            });
        let tasks = EcsTasks::new(mock_client!(aws_sdk_ecs, [&describe, &register]));

        let registered = tasks.register_migration(&spec()).await.unwrap();
        assert_eq!(registered.arn, "arn:td/web-convoy-migration:1");
        assert_eq!(registered.log_group.as_deref(), Some("/ecs/web"));
        assert_eq!(registered.log_stream_prefix.as_deref(), Some("ecs"));

        let input = seen.lock().unwrap().clone().expect("RegisterTaskDefinition was called");
        assert_eq!(input.family(), Some("web-convoy-migration"));
        assert_eq!(input.task_role_arn(), Some("arn:aws:iam::123456789012:role/web-task"));
        assert_eq!(input.execution_role_arn(), Some("arn:aws:iam::123456789012:role/web-execution"));
        assert_eq!(input.network_mode(), Some(&NetworkMode::Awsvpc));
        let containers = input.container_definitions();
        let by_name = |name: &str| containers.iter().find(|c| c.name() == Some(name)).unwrap();
        assert_eq!(by_name("laravel").image(), Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/laravel@sha256:aa"));
        assert_eq!(by_name("nginx").image(), Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/nginx@sha256:bb"));
        assert_eq!(by_name("laravel").essential(), Some(true));
        assert_eq!(by_name("nginx").essential(), Some(false));
        assert_eq!(by_name("laravel").environment()[0].value(), Some("db.internal"), "env comes from the service");
        assert_eq!(by_name("laravel").secrets()[0].value_from(), "arn:aws:ssm:x", "secrets come from the service");
    }

    #[tokio::test]
    async fn a_container_the_task_definition_lacks_is_rejected() {
        let describe = describe_rule();
        let tasks = EcsTasks::new(mock_client!(aws_sdk_ecs, [&describe]));
        let mut spec = spec();
        spec.images.push(("worker".into(), "x@sha256:cc".into()));
        let err = tasks.register_migration(&spec).await.unwrap_err();
        assert!(matches!(&err, TasksError::Rejected(m) if m.contains("\"worker\"") && m.contains("web:41")), "{err}");
    }
}
