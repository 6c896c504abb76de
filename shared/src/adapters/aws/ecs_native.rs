//! ECS native blue/green through ECS's service deployment API: `UpdateService` starts the
//! deployment, `ListServiceDeployments` + `DescribeServiceRevisions` find it again by its task
//! definition, `DescribeServiceDeployments` says where it stands and how it shifts traffic.

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

    /// Continues (or rolls back) a deployment at its pause hook; a rollback before the pause
    /// stops the deployment, which rolls back.
    async fn resolve_pause(
        &self,
        service_deployment: &ServiceDeploymentArn,
        roll_back: bool,
    ) -> Result<(), DeployError> {
        let described = self
            .ecs
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
                self.ecs
                    .stop_service_deployment()
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
        self.ecs
            .continue_service_deployment()
            .service_deployment_arn(service_deployment.as_str())
            .hook_id(paused)
            .action(action)
            .send()
            .await
            .map_err(ecs_error)?;
        Ok(())
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
        self.resolve_pause(service_deployment, false).await
    }

    async fn roll_back(&self, service_deployment: &ServiceDeploymentArn) -> Result<(), DeployError> {
        self.resolve_pause(service_deployment, true).await
    }
}

/// ECS's deployment API: any refusal stands (`ServiceDeploymentNotFoundException`, a hook that no
/// longer awaits action: `InvalidParameterException`); no answer is worth a retry.
fn ecs_error<E, R>(err: aws_sdk_ecs::error::SdkError<E, R>) -> DeployError
where
    E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    super::sort(&err, None, DeployError::Rejected, DeployError::Unavailable)
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
    Ok(NativeService {
        controller: found.deployment_controller().map(|c| c.r#type().as_str().to_owned()),
        strategy: config.and_then(|c| c.strategy()).map(|s| s.as_str().to_owned()),
        hooks,
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
        return ServiceDeploymentArn::new(arn).map_err(|e| DeployError::Unavailable(e.to_string()));
    }
    // An answer without the deployment: ask for it by the revision.
    find_native(ecs, cluster, service, task_definition).await?.ok_or_else(|| {
        DeployError::Unavailable(format!("UpdateService of {service} named no service deployment, and none was found"))
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
        .map(|(arn, _)| ServiceDeploymentArn::new(arn).map_err(|e| DeployError::Unavailable(e.to_string())))
        .transpose()
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
    let ended = |end, detail: String| DeploymentStatus::Ended { end, detail };
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
