use async_trait::async_trait;
use aws_sdk_codedeploy::types::{
    AppSpecContent, DeploymentStatus as Status, DeploymentWaitType, LifecycleEventStatus, RevisionLocation,
    RevisionLocationType,
};

use crate::error::DeployError;
use crate::names::{DeploymentId, HookExecutionId, ServiceDeploymentArn};
use crate::ports::{CodeDeployRequest, Deployer, DeploymentOrigin, DeploymentStatus};
use crate::release::DeploymentEnd;

/// CodeDeploy, and ECS's deployment API for native blue/green pause hooks.
#[derive(Clone)]
pub struct CodeDeployer {
    codedeploy: aws_sdk_codedeploy::Client,
    ecs: aws_sdk_ecs::Client,
}

impl CodeDeployer {
    pub fn new(codedeploy: aws_sdk_codedeploy::Client, ecs: aws_sdk_ecs::Client) -> Self {
        Self { codedeploy, ecs }
    }
}

/// The refusals CodeDeploy documents for the calls Convoy makes. Each is a refusal, not an outage:
/// [`meaning`] says which are for good and which are not.
const REJECTIONS: &[&str] = &[
    "ApplicationDoesNotExistException",
    "DeploymentGroupDoesNotExistException",
    "DeploymentDoesNotExistException",
    "DeploymentAlreadyCompletedException",
    "DeploymentIsNotInReadyStateException",
    "InvalidRevisionException",
    "InvalidDeploymentIdException",
    "InvalidLifecycleEventHookExecutionIdException",
    "LifecycleEventAlreadyCompletedException",
    "UnsupportedActionForDeploymentTypeException",
    "InvalidParameterException",
    "ClientException",
    "AccessDeniedException",
];

/// Refusals that only say "not yet": `ContinueDeployment` before CodeDeploy reaches READY_WAIT
/// (auto approval continues straight after answering the hook, and CodeDeploy takes a moment to
/// act on the answer). The same call succeeds once it waits: the reconciler calls again.
const NOT_YET: &[&str] = &["DeploymentIsNotInReadyStateException"];

/// The refusal of a second answer to one hook execution: the hook was answered already (a
/// duplicate invocation of the hook, or an answer retried after its reply was lost).
const ALREADY_ANSWERED: &str = "LifecycleEventAlreadyCompletedException";

/// What a refusal (`"<code>: <message>"`, from [`super::sort`]) means to Convoy.
fn meaning(refusal: String) -> DeployError {
    let code = refusal.split(':').next().unwrap_or_default();
    if NOT_YET.contains(&code) { DeployError::NotYet(refusal) } else { DeployError::Rejected(refusal) }
}

/// Whether `err` is CodeDeploy's refusal with `code`.
fn refused_with(err: &DeployError, code: &str) -> bool {
    matches!(err, DeployError::Rejected(refusal) if refusal.split(':').next() == Some(code))
}

fn classify<E, R>(err: aws_sdk_codedeploy::error::SdkError<E, R>) -> DeployError
where
    E: aws_sdk_codedeploy::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    super::sort(&err, Some(REJECTIONS), meaning, DeployError::Unavailable)
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

/// The AppSpec of an ECS blue/green deployment for `request` (see [`crate::bundle::app_spec`], which
/// the CodePipeline deploy method shares).
pub fn app_spec(request: &CodeDeployRequest) -> String {
    crate::bundle::app_spec(&request.task_definition, &request.container, request.port, &request.verify_function)
}

/// A deployment id CodeDeploy answered with (an answer without one is worth a retry).
fn deployment_id(id: Option<&str>, operation: &str) -> Result<DeploymentId, DeployError> {
    id.and_then(|id| DeploymentId::new(id).ok())
        .ok_or_else(|| DeployError::Unavailable(format!("{operation} returned no deployment id")))
}

#[async_trait]
impl Deployer for CodeDeployer {
    async fn create(&self, request: &CodeDeployRequest) -> Result<DeploymentId, DeployError> {
        let revision = RevisionLocation::builder()
            .revision_type(RevisionLocationType::AppSpecContent)
            .app_spec_content(AppSpecContent::builder().content(app_spec(request)).build())
            .build();
        let output = self
            .codedeploy
            .create_deployment()
            .application_name(&request.application)
            .deployment_group_name(&request.deployment_group)
            .revision(revision)
            .description(&request.description)
            .send()
            .await
            .map_err(classify)?;
        deployment_id(output.deployment_id.as_deref(), "CreateDeployment")
    }

    async fn find(
        &self,
        application: &str,
        deployment_group: &str,
        marker: &str,
    ) -> Result<Option<DeploymentId>, DeployError> {
        let listed = self
            .codedeploy
            .list_deployments()
            .application_name(application)
            .deployment_group_name(deployment_group)
            .send()
            .await
            .map_err(classify)?;
        // Newest first; a start is found within the first page or it never happened.
        for id in listed.deployments() {
            let info = self.codedeploy.get_deployment().deployment_id(id).send().await.map_err(classify)?;
            if info.deployment_info().and_then(|d| d.description()).is_some_and(|d| d.contains(marker)) {
                return deployment_id(Some(id), "ListDeployments").map(Some);
            }
        }
        Ok(None)
    }

    async fn status(&self, deployment: &DeploymentId) -> Result<DeploymentStatus, DeployError> {
        let output =
            self.codedeploy.get_deployment().deployment_id(deployment.as_str()).send().await.map_err(classify)?;
        let info = output.deployment_info();
        let detail = info
            .and_then(|d| d.error_information())
            .map(|e| format!("{}: {}", e.code().map(|c| c.as_str()).unwrap_or(""), e.message().unwrap_or("")))
            .unwrap_or_default();
        Ok(match info.and_then(|d| d.status()) {
            Some(Status::Succeeded) => DeploymentStatus::Ended { end: DeploymentEnd::Succeeded, detail },
            Some(Status::Failed) => DeploymentStatus::Ended { end: DeploymentEnd::Failed, detail },
            Some(Status::Stopped) => DeploymentStatus::Ended { end: DeploymentEnd::Stopped, detail },
            _ => DeploymentStatus::Running,
        })
    }

    async fn origin(&self, deployment: &DeploymentId) -> Result<Option<DeploymentOrigin>, DeployError> {
        let output = match self.codedeploy.get_deployment().deployment_id(deployment.as_str()).send().await {
            Ok(output) => output,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_deployment_does_not_exist_exception()) => {
                return Ok(None);
            }
            Err(err) => return Err(classify(err)),
        };
        let info = output.deployment_info();
        Ok(info.and_then(|d| {
            let creator = d.creator().map(|c| c.as_str()).unwrap_or_default();
            let rolls_back = d.rollback_info().and_then(|r| r.rollback_triggering_deployment_id()).is_some();
            Some(DeploymentOrigin {
                application: d.application_name()?.to_owned(),
                deployment_group: d.deployment_group_name()?.to_owned(),
                created_at: d.create_time().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                rollback: rolls_back || creator == "autoRollback" || creator == "CodeDeployRollback",
            })
        }))
    }

    async fn answer_hook(
        &self,
        deployment: &DeploymentId,
        hook_execution: &HookExecutionId,
        succeeded: bool,
    ) -> Result<(), DeployError> {
        let status = if succeeded { LifecycleEventStatus::Succeeded } else { LifecycleEventStatus::Failed };
        let sent = self
            .codedeploy
            .put_lifecycle_event_hook_execution_status()
            .deployment_id(deployment.as_str())
            .lifecycle_event_hook_execution_id(hook_execution.as_str())
            .status(status)
            .send()
            .await;
        match sent.map_err(classify) {
            Ok(_) => Ok(()),
            // The hook has its answer (Convoy answers a hook the same way every time, from the
            // record): done, and retrying would only meet the same refusal.
            Err(err) if refused_with(&err, ALREADY_ANSWERED) => {
                tracing::info!(%deployment, %hook_execution, refusal = %err, "the hook was answered before");
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    async fn continue_traffic(&self, deployment: &DeploymentId) -> Result<(), DeployError> {
        self.codedeploy
            .continue_deployment()
            .deployment_id(deployment.as_str())
            .deployment_wait_type(DeploymentWaitType::ReadyWait)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn roll_back(&self, deployment: &DeploymentId) -> Result<(), DeployError> {
        self.codedeploy
            .stop_deployment()
            .deployment_id(deployment.as_str())
            .auto_rollback_enabled(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn continue_native(
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
            .ok_or_else(|| {
                DeployError::Rejected(format!("service deployment {service_deployment} is not paused for approval"))
            })?
            .to_owned();
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

/// What each CodeDeploy refusal means to Convoy, through the one classifier ([`super::sort`]).
#[cfg(test)]
mod refusals {
    use aws_sdk_codedeploy::config::http::HttpResponse;
    use aws_sdk_codedeploy::error::{ErrorMetadata, SdkError};
    use aws_sdk_codedeploy::operation::continue_deployment::ContinueDeploymentError;

    use super::*;

    /// A refusal as the SDK hands it over: the service's code and message in an HTTP 400.
    fn refused(code: &str) -> SdkError<ContinueDeploymentError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("as CodeDeploy says it").build();
        let status = 400.try_into().expect("a status");
        SdkError::service_error(
            ContinueDeploymentError::generic(meta),
            HttpResponse::new(status, aws_sdk_s3::primitives::SdkBody::from("")),
        )
    }

    #[test]
    fn a_continue_before_codedeploy_waits_is_worth_a_retry() {
        let err = classify(refused("DeploymentIsNotInReadyStateException"));
        assert_eq!(err, DeployError::NotYet("DeploymentIsNotInReadyStateException: as CodeDeploy says it".into()));
        assert!(crate::error::ConvoyError::from(err).is_retryable());
    }

    #[test]
    fn an_ended_or_unknown_deployment_is_refused_for_good() {
        for code in ["DeploymentAlreadyCompletedException", "DeploymentDoesNotExistException"] {
            let err = classify(refused(code));
            assert_eq!(err, DeployError::Rejected(format!("{code}: as CodeDeploy says it")));
            assert!(!crate::error::ConvoyError::from(err).is_retryable(), "{code}");
        }
    }

    #[test]
    fn a_second_answer_to_a_hook_is_told_apart_from_other_refusals() {
        let err = classify(refused(ALREADY_ANSWERED));
        assert!(refused_with(&err, ALREADY_ANSWERED), "{err:?}");
        let other = classify(refused("InvalidLifecycleEventHookExecutionIdException"));
        assert!(!refused_with(&other, ALREADY_ANSWERED), "{other:?}");
        assert!(matches!(other, DeployError::Rejected(_)));
    }

    #[test]
    fn an_unknown_code_or_a_server_error_is_worth_a_retry() {
        assert!(matches!(classify(refused("ThrottlingException")), DeployError::Unavailable(_)));
    }
}
