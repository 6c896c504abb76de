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

/// Codes for requests that cannot succeed as made.
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

fn classify<E, R>(err: aws_sdk_codedeploy::error::SdkError<E, R>) -> DeployError
where
    E: aws_sdk_codedeploy::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    super::sort(&err, Some(REJECTIONS), DeployError::Rejected, DeployError::Unavailable)
}

/// ECS's deployment API: any refusal stands; no answer is worth a retry.
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
        self.codedeploy
            .put_lifecycle_event_hook_execution_status()
            .deployment_id(deployment.as_str())
            .lifecycle_event_hook_execution_id(hook_execution.as_str())
            .status(status)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
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
