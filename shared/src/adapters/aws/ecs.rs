use async_trait::async_trait;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, ContainerDefinition, ContainerOverride,
    DesiredStatus, LaunchType, NetworkConfiguration, Tag, TaskOverride,
};
use chrono::{DateTime, Utc};

use crate::error::Cause;
use crate::error::TasksError;
use crate::names::TaskArn;
use crate::ports::{
    AwsVpc, DescribedTaskDefinition, Launch, MigrationTaskSpec, RegisteredTaskDefinition, ReleaseDefinitions,
    ReleaseTaskSpec, RunTaskRequest, ServiceShape, Tasks,
};
use crate::release::{ContainerReport, TaskReport};
use crate::taskdef::{self, Derivation};

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

/// `ClientException`s that ECS gives for load, not for a bad request: worth a retry. ECS answers
/// concurrent RegisterTaskDefinition calls on one family with the first, and throttles with
/// `ThrottlingException` ("Rate exceeded"), which is not in [`REJECTIONS`] either.
const CLIENT_EXCEPTIONS_FOR_LOAD: &[&str] = &["Too many concurrent attempts", "Rate exceeded"];

fn classify<E, R>(err: aws_sdk_ecs::error::SdkError<E, R>) -> TasksError
where
    E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let load = err.as_service_error().is_some_and(|e| {
        e.code() == Some("ClientException")
            && e.message().is_some_and(|m| CLIENT_EXCEPTIONS_FOR_LOAD.iter().any(|load| m.contains(load)))
    });
    if load {
        return TasksError::Unavailable(super::cause(err));
    }
    super::sort(err, Some(REJECTIONS), TasksError::Rejected, TasksError::Unavailable)
}

fn to_chrono(time: Option<&aws_sdk_ecs::primitives::DateTime>) -> Option<DateTime<Utc>> {
    time.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

impl EcsTasks {
    /// Registers the definition derived from `base` as ECS describes it (see [`taskdef::derive`]),
    /// and says where the derivation's essential container (else the first) logs.
    async fn register_derived(
        &self,
        base: &str,
        derivation: &Derivation<'_>,
    ) -> Result<RegisteredTaskDefinition, TasksError> {
        let described = self.describe_verbatim(base).await?;
        let derived = taskdef::registration(&described.0, derivation)
            .map_err(|reason| TasksError::Rejected(format!("task definition {base}: {reason}")))?;
        let arn = self.register_verbatim(&derived).await?;
        Ok(RegisteredTaskDefinition { arn, log_group: derived.log_group, log_stream_prefix: derived.log_stream_prefix })
    }

    /// Registers `definition`, a RegisterTaskDefinition input document, as it is: the SDK call is
    /// built with just enough to pass its validation, and [`RequestBody`] sends the document in
    /// place of what the SDK serialised, so fields the SDK does not model reach ECS unchanged.
    async fn register_verbatim(&self, derived: &taskdef::Registration) -> Result<String, TasksError> {
        let definition = &derived.definition;
        let body = serde_json::to_vec(definition)
            .map_err(|e| TasksError::Rejected(format!("the task definition cannot be serialised: {e}")))?;
        let family = definition.get("family").and_then(serde_json::Value::as_str).unwrap_or_default();
        let containers = derived.containers.iter().map(|name| ContainerDefinition::builder().name(name).build());
        let registered = self
            .client
            .register_task_definition()
            .family(family)
            .set_container_definitions(Some(containers.collect()))
            .customize()
            .interceptor(RequestBody(bytes::Bytes::from(body)))
            .send()
            .await
            .map_err(classify)?;
        Ok(registered
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .ok_or_else(|| TasksError::Unavailable("RegisterTaskDefinition returned no ARN".into()))?
            .to_owned())
    }
}

/// Replaces the serialised request body. Signing comes after this hook, so the signature covers
/// the body sent; a retried attempt starts from the SDK's body again and gets the same replacement.
#[derive(Debug)]
struct RequestBody(bytes::Bytes);

impl aws_sdk_ecs::config::Intercept for RequestBody {
    fn name(&self) -> &'static str {
        "convoy-request-body"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_sdk_ecs::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _components: &aws_sdk_ecs::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ecs::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request_mut();
        *request.body_mut() = self.0.clone().into();
        request.headers_mut().try_insert("content-length", self.0.len().to_string())?;
        Ok(())
    }
}

#[async_trait]
impl ReleaseDefinitions for EcsTasks {
    async fn register_release(&self, spec: &ReleaseTaskSpec) -> Result<String, TasksError> {
        Ok(self.register_derived(&spec.base, &Derivation::revision(&spec.images)).await?.arn)
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
        let document: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            TasksError::Unavailable(Cause::caused_by(format!("DescribeTaskDefinition answered no JSON: {e}"), e))
        })?;
        Ok(DescribedTaskDefinition(document))
    }
}

/// Keeps the raw body of a successful response. The SDK's types drop fields they don't know and
/// don't serialise back to JSON; every task definition Convoy derives must keep each field ECS
/// returned.
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
        let since = match primary {
            Some(set) => to_chrono(set.created_at()),
            None => found
                .deployments()
                .iter()
                .find(|d| d.status() == Some("PRIMARY") && d.task_definition() == Some(task_definition.as_str()))
                .and_then(|d| to_chrono(d.created_at())),
        };
        Ok(ServiceShape { task_definition, since, network, launch, platform_version })
    }

    async fn register_migration(&self, spec: &MigrationTaskSpec) -> Result<RegisteredTaskDefinition, TasksError> {
        self.register_derived(&spec.base, &Derivation::migration(&spec.images, &spec.container)).await
    }

    async fn run(&self, request: &RunTaskRequest) -> Result<TaskArn, TasksError> {
        let mut call = self
            .client
            .run_task()
            .cluster(&request.cluster)
            .task_definition(&request.task_definition)
            .count(1)
            .started_by(&request.started_by)
            .group(&request.group)
            .client_token(&request.client_token)
            // The template grants StopTask only on tasks with this tag (and TagResource only as
            // part of RunTask), so Convoy can stop its migrations and nothing else in the cluster.
            .tags(Tag::builder().key(taskdef::MIGRATION_TAG.0).value(taskdef::MIGRATION_TAG.1).build())
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
        if let Some(task) = output.tasks().first().and_then(|t| TaskArn::new(t.task_arn()?).ok()) {
            return Ok(task);
        }
        // No task and a failure list: capacity or placement, which may clear; retried.
        let failures: Vec<String> = output
            .failures()
            .iter()
            .map(|f| format!("{} {}", f.reason().unwrap_or("unknown"), f.detail().unwrap_or_default()))
            .collect();
        Err(TasksError::Unavailable(format!("RunTask started no task: {}", failures.join("; ")).into()))
    }

    async fn find(&self, cluster: &str, started_by: &str) -> Result<Vec<TaskArn>, TasksError> {
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
            tasks.extend(output.task_arns().iter().filter_map(|arn| TaskArn::new(arn).ok()));
        }
        tasks.sort();
        tasks.dedup();
        Ok(tasks)
    }

    async fn describe(&self, cluster: &str, task: &TaskArn) -> Result<Option<TaskReport>, TasksError> {
        let output =
            self.client.describe_tasks().cluster(cluster).tasks(task.as_str()).send().await.map_err(classify)?;
        let Some(found) = output.tasks().first() else { return Ok(None) };
        Ok(Some(TaskReport {
            task: found.task_arn().and_then(|arn| TaskArn::new(arn).ok()).unwrap_or_else(|| task.clone()),
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
            started_by: found.started_by().map(str::to_owned),
            task_definition: found.task_definition_arn().map(str::to_owned),
        }))
    }

    async fn stop(&self, cluster: &str, task: &TaskArn, reason: &str) -> Result<(), TasksError> {
        self.client.stop_task().cluster(cluster).task(task.as_str()).reason(reason).send().await.map_err(classify)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_ecs::Client;
    use aws_sdk_ecs::config::http::{HttpRequest, HttpResponse};
    use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
    use aws_sdk_ecs::operation::run_task::{RunTaskInput, RunTaskOutput};
    use aws_sdk_ecs::types::{Task, TaskDefinition};
    use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use serde_json::{Value, json};

    use super::*;

    fn request() -> RunTaskRequest {
        RunTaskRequest {
            cluster: "prod".into(),
            task_definition: "arn:aws:ecs:us-east-1:123456789012:task-definition/web-convoy-migration:7".into(),
            shape: ServiceShape {
                task_definition: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:41".into(),
                since: None,
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
    async fn run_task_carries_the_services_network_launch_token_group_command_and_migration_tag() {
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

        assert_eq!(tasks.run(&request()).await.unwrap().as_str(), "arn:task/prod/1");

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
        let tags: Vec<_> = input.tags().iter().map(|t| (t.key(), t.value())).collect();
        assert_eq!(tags, [(Some("convoy:migration"), Some("true"))], "StopTask is granted on this tag only");
        assert_eq!(rule.num_calls(), 1);
    }

    fn services_answer(
        service: aws_sdk_ecs::types::Service,
    ) -> aws_sdk_ecs::operation::describe_services::DescribeServicesOutput {
        aws_sdk_ecs::operation::describe_services::DescribeServicesOutput::builder().services(service).build()
    }

    fn at(secs: i64) -> aws_sdk_ecs::primitives::DateTime {
        aws_sdk_ecs::primitives::DateTime::from_secs(secs)
    }

    #[tokio::test]
    async fn a_codedeploy_service_runs_its_primary_task_sets_revision_since_that_set_was_created() {
        use aws_sdk_ecs::types::{Service, TaskSet};
        let service = Service::builder()
            .status("ACTIVE")
            .task_definition("arn:aws:ecs:us-east-1:1:task-definition/web:1")
            .task_sets(TaskSet::builder().status("ACTIVE").task_definition("web:3").created_at(at(300)).build())
            .task_sets(TaskSet::builder().status("PRIMARY").task_definition("web:2").created_at(at(200)).build())
            .build();
        let rule = mock!(Client::describe_services).then_output(move || services_answer(service.clone()));
        let shape = EcsTasks::new(mock_client!(aws_sdk_ecs, [&rule])).service_shape("prod", "web").await.unwrap();
        assert_eq!((shape.task_definition.as_str(), shape.since), ("web:2", DateTime::from_timestamp(200, 0)));
    }

    #[tokio::test]
    async fn an_ecs_controlled_service_runs_since_its_primary_deployment_when_that_runs_the_same_revision() {
        use aws_sdk_ecs::types::{Deployment, Service};
        let service = |primary: &str| {
            Service::builder()
                .status("ACTIVE")
                .task_definition("web:5")
                .deployments(Deployment::builder().status("ACTIVE").task_definition("web:4").created_at(at(40)).build())
                .deployments(
                    Deployment::builder().status("PRIMARY").task_definition(primary).created_at(at(50)).build(),
                )
                .build()
        };
        let same = service("web:5");
        let rule = mock!(Client::describe_services).then_output(move || services_answer(same.clone()));
        let shape = EcsTasks::new(mock_client!(aws_sdk_ecs, [&rule])).service_shape("prod", "web").await.unwrap();
        assert_eq!((shape.task_definition.as_str(), shape.since), ("web:5", DateTime::from_timestamp(50, 0)));
        let other = service("web:4");
        let rule = mock!(Client::describe_services).then_output(move || services_answer(other.clone()));
        let shape = EcsTasks::new(mock_client!(aws_sdk_ecs, [&rule])).service_shape("prod", "web").await.unwrap();
        assert_eq!(shape.since, None, "a deployment of another revision does not say since when web:5 runs");
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
        assert!(matches!(&err, TasksError::Unavailable(m) if m.as_str().contains("RESOURCE:ENI")), "{err}");
    }

    fn refused_run(code: &'static str, message: &'static str) -> TasksError {
        use aws_sdk_ecs::error::ErrorMetadata;
        use aws_sdk_ecs::operation::run_task::RunTaskError;
        let err = aws_sdk_ecs::error::SdkError::service_error(
            RunTaskError::generic(ErrorMetadata::builder().code(code).message(message).build()),
            HttpResponse::new(400u16.try_into().unwrap(), String::new().into()),
        );
        classify(err)
    }

    #[test]
    fn ecs_throttling_is_worth_a_retry() {
        let err = refused_run("ThrottlingException", "Rate exceeded");
        assert!(matches!(err, TasksError::Unavailable(_)), "{err}");
    }

    #[test]
    fn too_many_concurrent_revisions_of_a_family_is_worth_a_retry() {
        let message = "Too many concurrent attempts to create a new revision of the specified family.";
        assert!(matches!(refused_run("ClientException", message), TasksError::Unavailable(_)));
    }

    #[test]
    fn a_client_exception_about_the_request_is_final() {
        let err = refused_run("ClientException", "The referenced task definition was not found.");
        assert!(matches!(&err, TasksError::Rejected(m) if m.starts_with("ClientException")), "{err}");
    }

    fn container(name: &str) -> Value {
        json!({
            "name": name,
            "image": format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}:old"),
            "memory": 256,
            "essential": true,
            "environment": [{"name": "DB_HOST", "value": "db.internal"}],
            "secrets": [{"name": "DB_PASSWORD", "valueFrom": "arn:aws:ssm:x"}],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": "/ecs/web", "awslogs-stream-prefix": "ecs"}
            }
        })
    }

    /// The DescribeTaskDefinition answer ECS sends for the service's definition, as JSON: Convoy
    /// reads the raw body, so the mock answers at the HTTP level.
    fn described() -> Value {
        json!({
            "taskDefinition": {
                "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:41",
                "family": "web",
                "revision": 41,
                "status": "ACTIVE",
                "taskRoleArn": "arn:aws:iam::123456789012:role/web-task",
                "executionRoleArn": "arn:aws:iam::123456789012:role/web-execution",
                "networkMode": "awsvpc",
                "cpu": "256",
                "memory": "512",
                "containerDefinitions": [container("laravel"), container("nginx")]
            },
            "tags": []
        })
    }

    fn json_response(body: &Value) -> HttpResponse {
        HttpResponse::new(200u16.try_into().unwrap(), body.to_string().into())
    }

    fn describe_rule() -> aws_smithy_mocks::Rule {
        mock!(Client::describe_task_definition).then_http_response(|| json_response(&described()))
    }

    /// The bodies of the requests the SDK sends, by operation (`X-Amz-Target`), read after every
    /// interceptor has had its say: what goes on the wire.
    #[derive(Debug, Clone, Default)]
    struct Sent(Arc<Mutex<Vec<(String, Value)>>>);

    impl Sent {
        fn body(&self, operation: &str) -> Value {
            let sent = self.0.lock().unwrap();
            let found = sent.iter().find(|(target, _)| target.ends_with(&format!(".{operation}")));
            found.unwrap_or_else(|| panic!("no {operation} request was sent")).1.clone()
        }
    }

    impl aws_sdk_ecs::config::Intercept for Sent {
        fn name(&self) -> &'static str {
            "test-sent"
        }

        fn read_before_transmit(
            &self,
            context: &aws_sdk_ecs::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
            _components: &aws_sdk_ecs::config::RuntimeComponents,
            _cfg: &mut aws_sdk_ecs::config::ConfigBag,
        ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let request = context.request();
            let target = request.headers().get("x-amz-target").unwrap_or_default().to_owned();
            let body = serde_json::from_slice(request.body().bytes().unwrap()).unwrap();
            self.0.lock().unwrap().push((target, body));
            Ok(())
        }
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
        let describe = describe_rule();
        let register = mock!(Client::register_task_definition).then_output(|| {
            RegisterTaskDefinitionOutput::builder()
                .task_definition(TaskDefinition::builder().task_definition_arn("arn:td/web-convoy-migration:1").build())
                .build()
        });
        let sent = Sent::default();
        let interceptor = sent.clone();
        let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&describe, &register], |config| config
            .interceptor(interceptor.clone()));
        let tasks = EcsTasks::new(client);

        let registered = tasks.register_migration(&spec()).await.unwrap();
        assert_eq!(registered.arn, "arn:td/web-convoy-migration:1");
        assert_eq!(registered.log_group.as_deref(), Some("/ecs/web"));
        assert_eq!(registered.log_stream_prefix.as_deref(), Some("ecs"));
        assert_eq!(register.num_calls(), 1);

        // What RegisterTaskDefinition received: the body on the wire, not the SDK's input.
        let input = sent.body("RegisterTaskDefinition");
        assert_eq!(input["family"], "web-convoy-migration");
        assert_eq!(input["taskRoleArn"], "arn:aws:iam::123456789012:role/web-task");
        assert_eq!(input["executionRoleArn"], "arn:aws:iam::123456789012:role/web-execution");
        assert_eq!(input["networkMode"], "awsvpc");
        let containers = input["containerDefinitions"].as_array().unwrap();
        let by_name = |name: &str| containers.iter().find(|c| c["name"] == name).unwrap();
        assert_eq!(by_name("laravel")["image"], "123456789012.dkr.ecr.us-east-1.amazonaws.com/laravel@sha256:aa");
        assert_eq!(by_name("nginx")["image"], "123456789012.dkr.ecr.us-east-1.amazonaws.com/nginx@sha256:bb");
        assert_eq!(by_name("laravel")["essential"], true);
        assert_eq!(by_name("nginx")["essential"], false);
        assert_eq!(by_name("laravel")["environment"][0]["value"], "db.internal", "env comes from the service");
        assert_eq!(by_name("laravel")["secrets"][0]["valueFrom"], "arn:aws:ssm:x", "secrets come from the service");
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

    /// An ECS client whose HTTP client answers DescribeTaskDefinition with `described`, then
    /// RegisterTaskDefinition with `arn`, and keeps every request as it was sent.
    fn replaying(described: &Value, arn: &str) -> (EcsTasks, StaticReplayClient) {
        let registered = json!({"taskDefinition": {"taskDefinitionArn": arn}});
        let http = StaticReplayClient::new(vec![
            ReplayEvent::new(HttpRequest::new("".into()), json_response(described)),
            ReplayEvent::new(HttpRequest::new("".into()), json_response(&registered)),
        ]);
        let config = aws_sdk_ecs::Config::builder().with_test_defaults_v2().http_client(http.clone()).build();
        (EcsTasks::new(Client::from_conf(config)), http)
    }

    /// The operation and body of each request that reached the HTTP client.
    fn on_the_wire(http: &StaticReplayClient) -> Vec<(String, Value, HttpRequest)> {
        http.actual_requests()
            .map(|request| {
                let target = request.headers().get("x-amz-target").unwrap_or_default().to_owned();
                let body = serde_json::from_slice(request.body().bytes().unwrap()).unwrap();
                (target, body, request.try_clone().unwrap())
            })
            .collect()
    }

    /// The service's definition with settings the SDK's types model (mounts, ulimits, a health
    /// check) and a field they do not, on the definition and on a container.
    fn described_with_unmodeled_fields() -> Value {
        let mut described = described();
        let definition = &mut described["taskDefinition"];
        definition["someFieldFromTheFuture"] = json!({"mode": "SPREAD_BY_CELL", "cells": 3});
        definition["volumes"] = json!([{"name": "scratch", "host": {}}]);
        let laravel = &mut definition["containerDefinitions"][0];
        laravel["someFieldFromTheFuture"] = json!({"restartAfter": 30});
        laravel["mountPoints"] = json!([{"sourceVolume": "scratch", "containerPath": "/scratch", "readOnly": false}]);
        laravel["ulimits"] = json!([{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}]);
        laravel["healthCheck"] = json!({"command": ["CMD-SHELL", "true"], "interval": 10, "retries": 3});
        described["tags"] = json!([{"key": "team", "value": "web"}]);
        described
    }

    #[tokio::test]
    async fn the_migration_registration_sends_fields_the_sdk_does_not_model() {
        let (tasks, http) = replaying(&described_with_unmodeled_fields(), "arn:td/web-convoy-migration:1");

        let registered = tasks.register_migration(&spec()).await.unwrap();
        assert_eq!(registered.arn, "arn:td/web-convoy-migration:1");
        assert_eq!(registered.log_group.as_deref(), Some("/ecs/web"));

        let sent = on_the_wire(&http);
        assert_eq!(sent.len(), 2, "{sent:?}");
        let (describe, asked, _) = &sent[0];
        assert!(describe.ends_with(".DescribeTaskDefinition"), "{describe}");
        assert_eq!(asked["include"], json!(["TAGS"]), "the tags are asked for, to be carried over");
        let (register, body, request) = &sent[1];
        assert!(register.ends_with(".RegisterTaskDefinition"), "{register}");
        assert_eq!(body["someFieldFromTheFuture"], json!({"mode": "SPREAD_BY_CELL", "cells": 3}));
        let laravel = &body["containerDefinitions"][0];
        assert_eq!(laravel["name"], "laravel");
        assert_eq!(laravel["someFieldFromTheFuture"], json!({"restartAfter": 30}));
        assert_eq!(laravel["mountPoints"][0]["containerPath"], "/scratch");
        assert_eq!(laravel["ulimits"][0]["softLimit"], 65536);
        assert_eq!(laravel["healthCheck"]["command"], json!(["CMD-SHELL", "true"]));
        assert_eq!(laravel["image"], "123456789012.dkr.ecr.us-east-1.amazonaws.com/laravel@sha256:aa");
        assert_eq!(laravel["essential"], true);
        assert_eq!(body["containerDefinitions"][1]["essential"], false);
        assert_eq!(body["family"], "web-convoy-migration");
        assert_eq!(body["volumes"], json!([{"name": "scratch", "host": {}}]));
        assert_eq!(
            body["tags"],
            json!([{"key": "team", "value": "web"}, {"key": "convoy:migration", "value": "true"}])
        );
        assert!(body.get("revision").is_none() && body.get("taskDefinitionArn").is_none(), "{body}");
        // The replaced body is the one declared and signed.
        let length = request.body().bytes().unwrap().len().to_string();
        assert_eq!(request.headers().get("content-length"), Some(length.as_str()));
        assert!(request.headers().get("authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256")));
    }

    #[tokio::test]
    async fn the_release_revision_is_the_services_verbatim_in_its_family() {
        let (tasks, http) = replaying(&described_with_unmodeled_fields(), "arn:td/web:42");
        let spec = ReleaseTaskSpec { base: spec().base, images: spec().images };

        assert_eq!(tasks.register_release(&spec).await.unwrap(), "arn:td/web:42");

        let sent = on_the_wire(&http);
        let (_, body, _) = &sent[1];
        let mut expected = described_with_unmodeled_fields()["taskDefinition"].clone();
        for field in ["taskDefinitionArn", "revision", "status"] {
            expected.as_object_mut().unwrap().remove(field);
        }
        expected["containerDefinitions"][0]["image"] = json!(spec.images[0].1);
        expected["containerDefinitions"][1]["image"] = json!(spec.images[1].1);
        expected["tags"] = json!([{"key": "team", "value": "web"}]);
        assert_eq!(body, &expected, "only the images change; both containers stay essential");
    }
}
