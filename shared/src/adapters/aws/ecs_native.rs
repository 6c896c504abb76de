//! ECS native blue/green through ECS's service deployment API: `UpdateService` starts the
//! deployment, `ListServiceDeployments` + `DescribeServiceRevisions` find it again by its task
//! definition, `DescribeServiceDeployments` says where it stands and how it shifts traffic, and
//! `ContinueServiceDeployment` (at the PAUSE hook) or `StopServiceDeployment` decide it.

use async_trait::async_trait;
use aws_sdk_ecs::types::{DeploymentConfiguration, ServiceDeployment};
use chrono::{DateTime, Utc};

use crate::error::DeployError;
use crate::names::ServiceDeploymentArn;
use crate::ports::{DeploymentStatus, NativeHook, NativeService, NativeStatus, ServiceDeployments};
use crate::release::{DeploymentEnd, NativeProgress};

/// ECS's service deployments (native blue/green).
#[derive(Clone)]
pub struct EcsDeployments {
    ecs: aws_sdk_ecs::Client,
}

impl EcsDeployments {
    pub fn new(ecs: aws_sdk_ecs::Client) -> Self {
        Self { ecs }
    }
}

#[async_trait]
impl ServiceDeployments for EcsDeployments {
    async fn describe_service(&self, cluster: &str, service: &str) -> Result<NativeService, DeployError> {
        native_service(&self.ecs, cluster, service).await
    }

    async fn start(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<ServiceDeploymentArn, DeployError> {
        start_native(&self.ecs, cluster, service, task_definition).await
    }

    async fn find(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<Option<ServiceDeploymentArn>, DeployError> {
        find_native(&self.ecs, cluster, service, task_definition).await
    }

    async fn status(&self, service_deployment: &ServiceDeploymentArn) -> Result<NativeStatus, DeployError> {
        native_status(&self.ecs, service_deployment).await
    }

    async fn continue_deployment(&self, service_deployment: &ServiceDeploymentArn) -> Result<(), DeployError> {
        continue_native(&self.ecs, service_deployment, false).await
    }

    async fn roll_back(&self, service_deployment: &ServiceDeploymentArn) -> Result<(), DeployError> {
        continue_native(&self.ecs, service_deployment, true).await
    }
}

/// ECS's deployment API: any refusal stands (`ServiceDeploymentNotFoundException`, a hook that no
/// longer awaits action: `InvalidParameterException`); no answer is worth a retry.
fn ecs_error<E, R>(err: aws_sdk_ecs::error::SdkError<E, R>) -> DeployError
where
    E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    super::sort(err, None, DeployError::Rejected, DeployError::Unavailable)
}

async fn native_service(ecs: &aws_sdk_ecs::Client, cluster: &str, service: &str) -> Result<NativeService, DeployError> {
    let described = ecs.describe_services().cluster(cluster).services(service).send().await.map_err(ecs_error)?;
    let Some(found) = described.services().first() else {
        return Err(DeployError::Rejected(format!("service {service} is not in cluster {cluster}")));
    };
    let config = found.deployment_configuration();
    let hooks = config
        .map(|c| c.lifecycle_hooks())
        .unwrap_or_default()
        .iter()
        .map(|hook| NativeHook {
            target_type: hook.target_type().map_or("AWS_LAMBDA", |t| t.as_str()).to_owned(),
            target: hook.hook_target_arn().map(str::to_owned),
            role: hook.role_arn().map(str::to_owned),
            stages: hook.lifecycle_stages().iter().map(|s| s.as_str().to_owned()).collect(),
            timeout_action: hook.timeout_configuration().and_then(|t| t.action()).map(|a| a.as_str().to_owned()),
            timeout_minutes: hook.timeout_configuration().and_then(|t| t.timeout_in_minutes()),
        })
        .collect();
    let breaker = config.and_then(|c| c.deployment_circuit_breaker()).filter(|b| b.enable());
    let alarms = config.and_then(|c| c.alarms()).filter(|a| a.enable());
    Ok(NativeService {
        controller: found.deployment_controller().map(|c| c.r#type().as_str().to_owned()),
        strategy: config.and_then(|c| c.strategy()).map(|s| s.as_str().to_owned()),
        hooks,
        task_definition: found.task_definition().map(str::to_owned),
        circuit_breaker: breaker.map(|b| b.rollback()),
        alarms: alarms.map(|a| (a.alarm_names().to_vec(), a.rollback())),
    })
}

async fn start_native(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    task_definition: &str,
) -> Result<ServiceDeploymentArn, DeployError> {
    let updated = ecs
        .update_service()
        .cluster(cluster)
        .service(service)
        .task_definition(task_definition)
        .send()
        .await
        .map_err(ecs_error)?;
    if let Some(arn) = updated.service().and_then(|s| s.current_service_deployment()) {
        return ServiceDeploymentArn::new(arn).map_err(|e| DeployError::Unavailable(e.to_string().into()));
    }
    // An answer without the deployment: ask for it by the revision.
    find_native(ecs, cluster, service, task_definition).await?.ok_or_else(|| {
        let why = format!("UpdateService of {service} named no service deployment, and none was found");
        DeployError::Unavailable(why.into())
    })
}

async fn find_native(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    task_definition: &str,
) -> Result<Option<ServiceDeploymentArn>, DeployError> {
    let listed = ecs.list_service_deployments().cluster(cluster).service(service).send().await.map_err(ecs_error)?;
    let briefs: Vec<(String, String)> = listed
        .service_deployments()
        .iter()
        .filter_map(|b| Some((b.service_deployment_arn()?.to_owned(), b.target_service_revision_arn()?.to_owned())))
        .collect();
    if briefs.is_empty() {
        return Ok(None);
    }
    let revisions = ecs
        .describe_service_revisions()
        .set_service_revision_arns(Some(briefs.iter().map(|(_, revision)| revision.clone()).collect()))
        .send()
        .await
        .map_err(ecs_error)?;
    let matching: Vec<&str> = revisions
        .service_revisions()
        .iter()
        .filter(|r| r.task_definition() == Some(task_definition))
        .filter_map(|r| r.service_revision_arn())
        .collect();
    let found = briefs.iter().find(|(_, revision)| matching.contains(&revision.as_str()));
    found
        .map(|(arn, _)| ServiceDeploymentArn::new(arn).map_err(|e| DeployError::Unavailable(e.to_string().into())))
        .transpose()
}

/// An approval (`roll_back` false) or rejection at the PAUSE hook: `DescribeServiceDeployments`
/// names the hook awaiting action, and `ContinueServiceDeployment` acts on it by its id. Before
/// ECS pauses, a rejection stops the deployment with a rollback (`StopServiceDeployment`) and an
/// approval is not yet possible.
async fn continue_native(
    ecs: &aws_sdk_ecs::Client,
    service_deployment: &ServiceDeploymentArn,
    roll_back: bool,
) -> Result<(), DeployError> {
    let described = ecs
        .describe_service_deployments()
        .service_deployment_arns(service_deployment.as_str())
        .send()
        .await
        .map_err(ecs_error)?;
    let running = described
        .service_deployments()
        .first()
        .and_then(|d| d.status())
        .is_some_and(|s| matches!(s.as_str(), "PENDING" | "IN_PROGRESS"));
    let paused = described
        .service_deployments()
        .first()
        .map(|d| d.lifecycle_hook_details())
        .unwrap_or_default()
        .iter()
        .find(|h| {
            h.target_type().map(|t| t.as_str()) == Some("PAUSE")
                && h.status().map(|s| s.as_str()) == Some("AWAITING_ACTION")
        })
        .and_then(|h| h.hook_id())
        .map(str::to_owned);
    let paused = match paused {
        Some(hook) => hook,
        // A rejection need not wait for the pause: ECS stops the deployment and rolls back.
        None if roll_back && running => {
            ecs.stop_service_deployment()
                .service_deployment_arn(service_deployment.as_str())
                .stop_type(aws_sdk_ecs::types::StopServiceDeploymentStopType::Rollback)
                .send()
                .await
                .map_err(ecs_error)?;
            return Ok(());
        }
        None => {
            let why = format!("service deployment {service_deployment} is not paused for approval");
            // Still running: ECS has not reached the pause hook yet, and will.
            return Err(if running { DeployError::NotYet(why) } else { DeployError::Rejected(why) });
        }
    };
    let action = if roll_back {
        aws_sdk_ecs::types::DeploymentLifecycleHookAction::Rollback
    } else {
        aws_sdk_ecs::types::DeploymentLifecycleHookAction::Continue
    };
    ecs.continue_service_deployment()
        .service_deployment_arn(service_deployment.as_str())
        .hook_id(paused)
        .action(action)
        .send()
        .await
        .map_err(ecs_error)?;
    Ok(())
}

async fn native_status(ecs: &aws_sdk_ecs::Client, arn: &ServiceDeploymentArn) -> Result<NativeStatus, DeployError> {
    let described =
        ecs.describe_service_deployments().service_deployment_arns(arn.as_str()).send().await.map_err(ecs_error)?;
    let found = described
        .service_deployments()
        .iter()
        .find(|d| d.service_deployment_arn() == Some(arn.as_str()))
        .ok_or_else(|| DeployError::Rejected(format!("ECS does not know service deployment {arn}")))?;
    Ok(status_of(found, Utc::now()))
}

/// A service deployment as Convoy reads it: ended or not (a rollback is a `Failed` end with ECS's
/// reason), and its progress for `convoy status`.
pub(crate) fn status_of(deployment: &ServiceDeployment, now: DateTime<Utc>) -> NativeStatus {
    let status = deployment.status().map_or("PENDING", |s| s.as_str()).to_owned();
    let reason = deployment.status_reason().unwrap_or_default();
    let rollback_reason = deployment.rollback().and_then(|r| r.reason()).unwrap_or(reason);
    let monitors = triggered(deployment);
    let ended = |end, detail: String| DeploymentStatus::Ended { end, detail: format!("{detail}{monitors}") };
    let state = match status.as_str() {
        "SUCCESSFUL" => ended(DeploymentEnd::Succeeded, reason.to_owned()),
        "STOPPED" => ended(DeploymentEnd::Stopped, format!("ECS stopped it: {reason}")),
        "ROLLBACK_SUCCESSFUL" => ended(DeploymentEnd::Failed, format!("ECS rolled it back: {rollback_reason}")),
        "ROLLBACK_FAILED" => {
            ended(DeploymentEnd::Failed, format!("ECS tried to roll it back and failed: {rollback_reason}"))
        }
        _ => DeploymentStatus::Running,
    };
    let config = deployment.deployment_configuration();
    let progress = NativeProgress {
        strategy: strategy(config),
        bake_minutes: config.and_then(|c| c.bake_time_in_minutes()),
        production_percent: deployment
            .target_service_revision()
            .and_then(|t| t.requested_production_traffic_weight())
            .map(|w| w.clamp(0.0, 100.0).round() as u32),
        stage: deployment.lifecycle_stage().map(|s| s.as_str().to_owned()),
        status,
        seen_at: now,
    };
    NativeStatus { status: state, progress }
}

/// What of the rolling update's monitors ECS says triggered (the circuit breaker, the service's
/// alarms), as "; …" to follow the end's reason; empty when none did.
fn triggered(deployment: &ServiceDeployment) -> String {
    use aws_sdk_ecs::types::ServiceDeploymentRollbackMonitorsStatus as Monitor;
    let mut said = String::new();
    if let Some(breaker) = deployment.deployment_circuit_breaker().filter(|b| b.status() == Some(&Monitor::Triggered)) {
        said.push_str(&format!(
            "; the deployment circuit breaker triggered ({} failed tasks, threshold {})",
            breaker.failure_count(),
            breaker.threshold()
        ));
    }
    if let Some(alarms) = deployment.alarms().filter(|a| a.status() == Some(&Monitor::Triggered)) {
        said.push_str(&format!("; alarms in ALARM: {}", alarms.triggered_alarm_names().join(", ")));
    }
    said
}

/// "all-at-once", "linear 10% every 5 min", "canary 10% for 5 min", or ECS's strategy as it is.
fn strategy(config: Option<&DeploymentConfiguration>) -> String {
    let Some(config) = config else { return "unknown".into() };
    let percent = |p: Option<f64>| p.map_or("?".to_owned(), |p| format!("{p}%"));
    let minutes = |m: Option<i32>| m.map_or("?".to_owned(), |m| format!("{m} min"));
    match config.strategy().map(|s| s.as_str()) {
        Some("BLUE_GREEN") => "blue/green, all at once".into(),
        Some("LINEAR") => {
            let linear = config.linear_configuration();
            format!(
                "linear, {} every {}",
                percent(linear.and_then(|l| l.step_percent())),
                minutes(linear.and_then(|l| l.step_bake_time_in_minutes()))
            )
        }
        Some("CANARY") => {
            let canary = config.canary_configuration();
            format!(
                "canary, {} for {}, then the rest",
                percent(canary.and_then(|c| c.canary_percent())),
                minutes(canary.and_then(|c| c.canary_bake_time_in_minutes()))
            )
        }
        Some(other) => other.to_lowercase(),
        None => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecs::types::{
        CanaryConfiguration, DeploymentStrategy, Rollback, ServiceDeploymentLifecycleStage, ServiceDeploymentStatus,
        ServiceRevisionSummary,
    };

    use super::*;

    /// The exact requests the adapter sends ECS for a native release, each pinned down with
    /// aws-smithy-mocks (moto 5.2.5 has none of the service deployment API but `UpdateService`).
    mod requests {
        use aws_sdk_ecs::Client;
        use aws_sdk_ecs::operation::continue_service_deployment::{
            ContinueServiceDeploymentError, ContinueServiceDeploymentOutput,
        };
        use aws_sdk_ecs::operation::describe_service_deployments::DescribeServiceDeploymentsOutput;
        use aws_sdk_ecs::operation::describe_service_revisions::DescribeServiceRevisionsOutput;
        use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
        use aws_sdk_ecs::operation::list_service_deployments::ListServiceDeploymentsOutput;
        use aws_sdk_ecs::operation::stop_service_deployment::StopServiceDeploymentOutput;
        use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
        use aws_sdk_ecs::types::{
            DeploymentController, DeploymentControllerType, DeploymentLifecycleHook, DeploymentLifecycleHookAction,
            DeploymentLifecycleHookDetail as LifecycleHookDetail, DeploymentLifecycleHookStage,
            DeploymentLifecycleHookStatus as LifecycleHookStatus, DeploymentLifecycleHookTargetType,
            DeploymentLifecycleHookTimeoutConfiguration as TimeoutConfiguration, DeploymentStrategy, Service,
            ServiceDeploymentBrief, ServiceDeploymentStatus, ServiceRevision, StopServiceDeploymentStopType,
        };
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        use super::super::*;

        const SD: &str = "arn:aws:ecs:us-east-1:123456789012:service-deployment/prod/web/sd-2";
        const TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:42";
        const REVISION: &str = "arn:aws:ecs:us-east-1:123456789012:service-revision/prod/web/2";

        fn arn() -> ServiceDeploymentArn {
            ServiceDeploymentArn::new(SD).unwrap()
        }

        fn deployment(status: ServiceDeploymentStatus, hooks: Vec<LifecycleHookDetail>) -> ServiceDeployment {
            ServiceDeployment::builder()
                .service_deployment_arn(SD)
                .status(status)
                .set_lifecycle_hook_details(Some(hooks))
                .build()
        }

        fn pause(id: &str, status: LifecycleHookStatus) -> LifecycleHookDetail {
            LifecycleHookDetail::builder()
                .hook_id(id)
                .target_type(DeploymentLifecycleHookTargetType::Pause)
                .status(status)
                .build()
        }

        /// `DescribeServiceDeployments` of exactly the release's service deployment, answered
        /// with `described`.
        fn described(described: ServiceDeployment) -> aws_smithy_mocks::Rule {
            mock!(Client::describe_service_deployments)
                .match_requests(|input| input.service_deployment_arns() == [SD])
                .then_output(move || {
                    DescribeServiceDeploymentsOutput::builder().service_deployments(described.clone()).build()
                })
        }

        #[tokio::test]
        async fn update_service_sends_only_the_cluster_service_and_release_revision_and_returns_its_deployment() {
            let update = mock!(Client::update_service)
                .match_requests(|input| {
                    input.cluster() == Some("prod")
                        && input.service() == Some("web")
                        && input.task_definition() == Some(TD)
                        && input.desired_count().is_none()
                        && input.force_new_deployment().is_none()
                        && input.deployment_configuration().is_none()
                })
                .then_output(|| {
                    let service = Service::builder().service_name("web").current_service_deployment(SD).build();
                    UpdateServiceOutput::builder().service(service).build()
                });
            let ecs = mock_client!(aws_sdk_ecs, [&update]);
            assert_eq!(start_native(&ecs, "prod", "web", TD).await.unwrap(), arn());
            assert_eq!(update.num_calls(), 1);
        }

        #[tokio::test]
        async fn an_update_answered_without_its_deployment_finds_it_by_the_revisions_task_definition() {
            let update = mock!(Client::update_service)
                .then_output(|| UpdateServiceOutput::builder().service(Service::builder().build()).build());
            let list = mock!(Client::list_service_deployments)
                .match_requests(|input| input.cluster() == Some("prod") && input.service() == Some("web"))
                .then_output(|| {
                    let older = ServiceDeploymentBrief::builder()
                        .service_deployment_arn("arn:aws:ecs:us-east-1:123456789012:service-deployment/prod/web/sd-1")
                        .target_service_revision_arn("arn:aws:ecs:us-east-1:123456789012:service-revision/prod/web/1")
                        .build();
                    let ours = ServiceDeploymentBrief::builder()
                        .service_deployment_arn(SD)
                        .target_service_revision_arn(REVISION)
                        .build();
                    ListServiceDeploymentsOutput::builder().service_deployments(ours).service_deployments(older).build()
                });
            let revisions = mock!(Client::describe_service_revisions)
                .match_requests(|input| input.service_revision_arns().len() == 2)
                .then_output(|| {
                    let other = ServiceRevision::builder()
                        .service_revision_arn("arn:aws:ecs:us-east-1:123456789012:service-revision/prod/web/1")
                        .task_definition("arn:aws:ecs:us-east-1:123456789012:task-definition/web:41")
                        .build();
                    let ours = ServiceRevision::builder().service_revision_arn(REVISION).task_definition(TD).build();
                    DescribeServiceRevisionsOutput::builder().service_revisions(other).service_revisions(ours).build()
                });
            let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&update, &list, &revisions]);
            assert_eq!(start_native(&ecs, "prod", "web", TD).await.unwrap(), arn());
            assert_eq!((update.num_calls(), list.num_calls(), revisions.num_calls()), (1, 1, 1));
        }

        #[tokio::test]
        async fn a_service_with_no_deployments_has_none_of_the_revision_and_no_revision_is_described() {
            let list =
                mock!(Client::list_service_deployments).then_output(|| ListServiceDeploymentsOutput::builder().build());
            let revisions = mock!(Client::describe_service_revisions)
                .then_output(|| DescribeServiceRevisionsOutput::builder().build());
            let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&list, &revisions]);
            assert_eq!(find_native(&ecs, "prod", "web", TD).await.unwrap(), None);
            assert_eq!((list.num_calls(), revisions.num_calls()), (1, 0));
        }

        #[tokio::test]
        async fn the_service_is_read_with_its_controller_strategy_and_each_hook_and_its_timeout() {
            let describe = mock!(Client::describe_services)
                .match_requests(|input| input.cluster() == Some("prod") && input.services() == ["web"])
                .then_output(|| {
                    let verify = DeploymentLifecycleHook::builder()
                        .hook_target_arn("arn:aws:lambda:us-east-1:123456789012:function:convoy-verify")
                        .role_arn("arn:aws:iam::123456789012:role/ecs-hooks")
                        .lifecycle_stages(DeploymentLifecycleHookStage::PostTestTrafficShift)
                        .build();
                    let pause = DeploymentLifecycleHook::builder()
                        .target_type(DeploymentLifecycleHookTargetType::Pause)
                        .lifecycle_stages(DeploymentLifecycleHookStage::PreProductionTrafficShift)
                        .timeout_configuration(
                            TimeoutConfiguration::builder()
                                .timeout_in_minutes(120)
                                .action(DeploymentLifecycleHookAction::Rollback)
                                .build(),
                        )
                        .build();
                    let service = Service::builder()
                        .deployment_controller(
                            DeploymentController::builder().r#type(DeploymentControllerType::Ecs).build().unwrap(),
                        )
                        .deployment_configuration(
                            DeploymentConfiguration::builder()
                                .strategy(DeploymentStrategy::BlueGreen)
                                .lifecycle_hooks(verify)
                                .lifecycle_hooks(pause)
                                .build(),
                        )
                        .build();
                    DescribeServicesOutput::builder().services(service).build()
                });
            let ecs = mock_client!(aws_sdk_ecs, [&describe]);
            let read = native_service(&ecs, "prod", "web").await.unwrap();
            assert_eq!((read.controller.as_deref(), read.strategy.as_deref()), (Some("ECS"), Some("BLUE_GREEN")));
            let verify = &read.hooks[0];
            assert_eq!(verify.target_type, "AWS_LAMBDA", "the default target type");
            assert_eq!(verify.stages, ["POST_TEST_TRAFFIC_SHIFT"]);
            assert_eq!(verify.role.as_deref(), Some("arn:aws:iam::123456789012:role/ecs-hooks"));
            let pause = &read.hooks[1];
            assert_eq!(
                (pause.target_type.as_str(), pause.stages.as_slice()),
                ("PAUSE", &["PRE_PRODUCTION_TRAFFIC_SHIFT".to_owned()][..])
            );
            assert_eq!((pause.timeout_action.as_deref(), pause.timeout_minutes), (Some("ROLLBACK"), Some(120)));
        }

        #[tokio::test]
        async fn a_service_ecs_does_not_describe_is_refused_for_good() {
            let describe = mock!(Client::describe_services).then_output(|| DescribeServicesOutput::builder().build());
            let ecs = mock_client!(aws_sdk_ecs, [&describe]);
            let refused = native_service(&ecs, "prod", "web").await.unwrap_err();
            assert_eq!(refused, DeployError::Rejected("service web is not in cluster prod".into()));
        }

        #[tokio::test]
        async fn the_status_describes_exactly_the_release_service_deployment_and_one_ecs_does_not_know_is_refused() {
            let ended = described(deployment(ServiceDeploymentStatus::Successful, vec![]));
            let ecs = mock_client!(aws_sdk_ecs, [&ended]);
            let status = native_status(&ecs, &arn()).await.unwrap();
            assert!(matches!(status.status, DeploymentStatus::Ended { end: DeploymentEnd::Succeeded, .. }));
            let missing = mock!(Client::describe_service_deployments)
                .then_output(|| DescribeServiceDeploymentsOutput::builder().build());
            let ecs = mock_client!(aws_sdk_ecs, [&missing]);
            assert!(matches!(native_status(&ecs, &arn()).await, Err(DeployError::Rejected(_))));
        }

        #[tokio::test]
        async fn an_approval_continues_the_pause_awaiting_action_by_its_hook_id() {
            let at_pause = described(deployment(
                ServiceDeploymentStatus::InProgress,
                vec![
                    pause("pause-old", LifecycleHookStatus::Succeeded),
                    pause("pause-7", LifecycleHookStatus::AwaitingAction),
                ],
            ));
            let continued = mock!(Client::continue_service_deployment)
                .match_requests(|input| {
                    input.service_deployment_arn() == Some(SD)
                        && input.hook_id() == Some("pause-7")
                        && input.action() == Some(&DeploymentLifecycleHookAction::Continue)
                })
                .then_output(|| ContinueServiceDeploymentOutput::builder().service_deployment_arn(SD).build());
            let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&at_pause, &continued]);
            continue_native(&ecs, &arn(), false).await.unwrap();
            assert_eq!(continued.num_calls(), 1);
        }

        #[tokio::test]
        async fn a_rejection_at_the_pause_rolls_back_through_the_hook() {
            let at_pause = described(deployment(
                ServiceDeploymentStatus::InProgress,
                vec![pause("pause-7", LifecycleHookStatus::AwaitingAction)],
            ));
            let rolled_back = mock!(Client::continue_service_deployment)
                .match_requests(|input| {
                    input.hook_id() == Some("pause-7")
                        && input.action() == Some(&DeploymentLifecycleHookAction::Rollback)
                })
                .then_output(|| ContinueServiceDeploymentOutput::builder().build());
            let stop =
                mock!(Client::stop_service_deployment).then_output(|| StopServiceDeploymentOutput::builder().build());
            let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&at_pause, &rolled_back, &stop]);
            continue_native(&ecs, &arn(), true).await.unwrap();
            assert_eq!((rolled_back.num_calls(), stop.num_calls()), (1, 0));
        }

        #[tokio::test]
        async fn a_rejection_before_the_pause_stops_the_service_deployment_with_a_rollback() {
            let running = described(deployment(ServiceDeploymentStatus::InProgress, vec![]));
            let stop = mock!(Client::stop_service_deployment)
                .match_requests(|input| {
                    input.service_deployment_arn() == Some(SD)
                        && input.stop_type() == Some(&StopServiceDeploymentStopType::Rollback)
                })
                .then_output(|| StopServiceDeploymentOutput::builder().service_deployment_arn(SD).build());
            let continued = mock!(Client::continue_service_deployment)
                .then_output(|| ContinueServiceDeploymentOutput::builder().build());
            let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&running, &stop, &continued]);
            continue_native(&ecs, &arn(), true).await.unwrap();
            assert_eq!((stop.num_calls(), continued.num_calls()), (1, 0));
        }

        #[tokio::test]
        async fn an_approval_before_the_pause_is_not_yet_and_one_after_the_end_is_refused_for_good() {
            let continued = mock!(Client::continue_service_deployment)
                .then_output(|| ContinueServiceDeploymentOutput::builder().build());
            let stop =
                mock!(Client::stop_service_deployment).then_output(|| StopServiceDeploymentOutput::builder().build());
            let running = described(deployment(ServiceDeploymentStatus::InProgress, vec![]));
            let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&running, &continued, &stop]);
            assert!(matches!(continue_native(&ecs, &arn(), false).await, Err(DeployError::NotYet(_))));
            let ended = described(deployment(ServiceDeploymentStatus::Successful, vec![]));
            let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&ended, &continued, &stop]);
            for roll_back in [false, true] {
                let refused = continue_native(&ecs, &arn(), roll_back).await.unwrap_err();
                assert!(matches!(&refused, DeployError::Rejected(why) if why.contains("is not paused")), "{refused}");
            }
            assert_eq!(
                (continued.num_calls(), stop.num_calls()),
                (0, 0),
                "nothing asked of a deployment that waits for nothing"
            );
        }

        #[tokio::test]
        async fn a_continue_ecs_refuses_is_refused_for_good_with_ecss_code() {
            let at_pause = described(deployment(
                ServiceDeploymentStatus::InProgress,
                vec![pause("pause-7", LifecycleHookStatus::AwaitingAction)],
            ));
            let refused = mock!(Client::continue_service_deployment).then_error(|| {
                let meta = aws_sdk_ecs::error::ErrorMetadata::builder()
                    .code("InvalidParameterException")
                    .message("The hook is not awaiting action.")
                    .build();
                ContinueServiceDeploymentError::generic(meta)
            });
            let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&at_pause, &refused]);
            let err = continue_native(&ecs, &arn(), false).await.unwrap_err();
            assert!(
                matches!(&err, DeployError::Rejected(why) if why.starts_with("InvalidParameterException")),
                "{err}"
            );
        }
    }

    fn at() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_canary_deployment_shows_its_step_its_shift_and_its_bake_time() {
        let config = DeploymentConfiguration::builder()
            .strategy(DeploymentStrategy::Canary)
            .canary_configuration(
                CanaryConfiguration::builder().canary_percent(10.0).canary_bake_time_in_minutes(5).build(),
            )
            .bake_time_in_minutes(15)
            .build();
        let deployment = ServiceDeployment::builder()
            .status(ServiceDeploymentStatus::InProgress)
            .lifecycle_stage(ServiceDeploymentLifecycleStage::ProductionTrafficShift)
            .deployment_configuration(config)
            .target_service_revision(
                ServiceRevisionSummary::builder().requested_production_traffic_weight(10.0).build(),
            )
            .build();
        let read = status_of(&deployment, at());
        assert_eq!(read.status, DeploymentStatus::Running);
        assert_eq!(read.progress.strategy, "canary, 10% for 5 min, then the rest");
        assert_eq!(read.progress.production_percent, Some(10));
        assert_eq!(read.progress.bake_minutes, Some(15));
        assert_eq!(read.progress.stage.as_deref(), Some("PRODUCTION_TRAFFIC_SHIFT"));
    }

    #[test]
    fn a_rolled_back_service_deployment_ends_failed_with_ecss_reason() {
        let deployment = ServiceDeployment::builder()
            .status(ServiceDeploymentStatus::RollbackSuccessful)
            .status_reason("rolled back")
            .rollback(Rollback::builder().reason("lifecycle hook POST_TEST_TRAFFIC_SHIFT failed").build())
            .build();
        let DeploymentStatus::Ended { end, detail } = status_of(&deployment, at()).status else {
            panic!("a rollback is an end")
        };
        assert_eq!(end, DeploymentEnd::Failed);
        assert_eq!(detail, "ECS rolled it back: lifecycle hook POST_TEST_TRAFFIC_SHIFT failed");
    }

    #[test]
    fn a_successful_service_deployment_ends_succeeded_and_one_in_progress_runs() {
        let done = ServiceDeployment::builder().status(ServiceDeploymentStatus::Successful).build();
        assert!(matches!(status_of(&done, at()).status, DeploymentStatus::Ended { end: DeploymentEnd::Succeeded, .. }));
        let rolling = ServiceDeployment::builder().status(ServiceDeploymentStatus::RollbackInProgress).build();
        assert_eq!(status_of(&rolling, at()).status, DeploymentStatus::Running);
    }
}
