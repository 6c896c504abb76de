use async_trait::async_trait;
use aws_sdk_codedeploy::types::{
    AppSpecContent, DeploymentCreator, DeploymentStatus as Status, DeploymentWaitType, LifecycleEventStatus,
    RevisionLocation, RevisionLocationType,
};

use crate::error::DeployError;

/// The lifecycle event CodeDeploy runs Convoy's verify hook at, on an ECS target.
pub const TEST_TRAFFIC_EVENT: &str = "AfterAllowTestTraffic";
use crate::names::{DeploymentId, HookExecutionId};
use crate::ports::{CodeDeploy, CodeDeployRequest, DeploymentOrigin, DeploymentStatus, GroupWait, STATUS_BATCH};
use crate::release::DeploymentEnd;

/// CodeDeploy's ECS blue/green deployments.
#[derive(Clone)]
pub struct CodeDeployer {
    codedeploy: aws_sdk_codedeploy::Client,
}

impl CodeDeployer {
    pub fn new(codedeploy: aws_sdk_codedeploy::Client) -> Self {
        Self { codedeploy }
    }
}

/// The refusals CodeDeploy documents for the calls Convoy makes. Each is a refusal, not an outage:
/// [`classify`] says which are for good and which are not.
const REJECTIONS: &[&str] = &[
    "ApplicationDoesNotExistException",
    "DeploymentGroupDoesNotExistException",
    "DeploymentDoesNotExistException",
    "DeploymentAlreadyCompletedException",
    "DeploymentIsNotInReadyStateException",
    "InvalidRevisionException",
    "InvalidDeploymentIdException",
    "BatchLimitExceededException",
    "DeploymentIdRequiredException",
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

/// The code CodeDeploy refused a call with, read from the SDK's error metadata.
fn refusal_code<E, R>(err: &aws_sdk_codedeploy::error::SdkError<E, R>) -> Option<&str>
where
    E: aws_sdk_codedeploy::error::ProvideErrorMetadata,
{
    err.as_service_error().and_then(|e| e.code())
}

/// Whether CodeDeploy refused a hook answer because the hook has its answer already.
fn answered_before<E, R>(err: &aws_sdk_codedeploy::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_codedeploy::error::ProvideErrorMetadata,
{
    refusal_code(err) == Some(ALREADY_ANSWERED)
}

fn classify<E, R>(err: aws_sdk_codedeploy::error::SdkError<E, R>) -> DeployError
where
    E: aws_sdk_codedeploy::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let not_yet = refusal_code(&err).is_some_and(|code| NOT_YET.contains(&code));
    let refused = |refusal| if not_yet { DeployError::NotYet(refusal) } else { DeployError::Rejected(refusal) };
    super::sort(err, Some(REJECTIONS), refused, DeployError::Unavailable)
}

/// Where a deployment stands, from what `GetDeployment` (or `BatchGetDeployments`) says of it.
fn status_of(info: Option<&aws_sdk_codedeploy::types::DeploymentInfo>) -> DeploymentStatus {
    let detail = info
        .and_then(|d| d.error_information())
        .map(|e| format!("{}: {}", e.code().map(|c| c.as_str()).unwrap_or(""), e.message().unwrap_or("")))
        .unwrap_or_default();
    match info.and_then(|d| d.status()) {
        Some(Status::Succeeded) => DeploymentStatus::Ended { end: DeploymentEnd::Succeeded, detail },
        Some(Status::Failed) => DeploymentStatus::Ended { end: DeploymentEnd::Failed, detail },
        Some(Status::Stopped) => DeploymentStatus::Ended { end: DeploymentEnd::Stopped, detail },
        // `Ready` is READY_WAIT: production traffic waits for ContinueDeployment. After the
        // reroute the status is `InProgress` again, as it was before `Ready`; what tells the
        // two apart is the field AWS documents as "true as soon as the termination wait
        // period starts" (`instanceTerminationWaitTimeStarted`): the original task set's
        // wait, which begins once production traffic is on the replacement. (With
        // KEEP_ALIVE it stays false: such a group's reroute is seen at its end.)
        Some(Status::InProgress) if info.is_some_and(|d| d.instance_termination_wait_time_started()) => {
            DeploymentStatus::Rerouted
        }
        _ => DeploymentStatus::Running,
    }
}

/// The AppSpec of an ECS blue/green deployment for `request` (see [`crate::bundle::app_spec`], which
/// the CodePipeline deploy method shares).
pub fn app_spec(request: &CodeDeployRequest) -> String {
    crate::bundle::app_spec(&request.task_definition, &request.container, request.port, &request.verify_function)
}

/// A deployment id CodeDeploy answered with (an answer without one is worth a retry).
fn deployment_id(id: Option<&str>, operation: &str) -> Result<DeploymentId, DeployError> {
    id.and_then(|id| DeploymentId::new(id).ok())
        .ok_or_else(|| DeployError::Unavailable(format!("{operation} returned no deployment id").into()))
}

#[async_trait]
impl CodeDeploy for CodeDeployer {
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
            if info
                .deployment_info()
                .and_then(|d| d.description())
                .is_some_and(|d| crate::names::carries_marker(d, marker))
            {
                return deployment_id(Some(id), "ListDeployments").map(Some);
            }
        }
        Ok(None)
    }

    async fn status(&self, deployment: &DeploymentId) -> Result<DeploymentStatus, DeployError> {
        let output =
            self.codedeploy.get_deployment().deployment_id(deployment.as_str()).send().await.map_err(classify)?;
        Ok(status_of(output.deployment_info()))
    }

    async fn statuses(
        &self,
        deployments: &[DeploymentId],
    ) -> Result<Vec<(DeploymentId, DeploymentStatus)>, DeployError> {
        if deployments.is_empty() {
            return Ok(Vec::new());
        }
        if deployments.len() > STATUS_BATCH {
            return Err(DeployError::Rejected(format!(
                "BatchGetDeployments takes at most {STATUS_BATCH} deployment ids, not {}",
                deployments.len()
            )));
        }
        let ids = deployments.iter().map(|id| id.as_str().to_owned()).collect();
        let output =
            self.codedeploy.batch_get_deployments().set_deployment_ids(Some(ids)).send().await.map_err(classify)?;
        // Only the ids asked for: an answer naming another deployment is no answer for any.
        Ok(output
            .deployments_info()
            .iter()
            .filter_map(|info| {
                let id = deployments.iter().find(|id| Some(id.as_str()) == info.deployment_id())?;
                Some((id.clone(), status_of(Some(info))))
            })
            .collect())
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
            // A rollback deployment names the deployment it rolls back (rollbackInfo), and its
            // creator says a rollback made it: CodeDeploy's own (`codeDeployRollback`) or, for a
            // blue/green deployment run by a CloudFormation stack, `CloudFormationRollback`.
            let by_rollback = matches!(
                d.creator(),
                Some(DeploymentCreator::CodeDeployRollback | DeploymentCreator::CloudFormationRollback)
            );
            let rolls_back = d.rollback_info().and_then(|r| r.rollback_triggering_deployment_id()).is_some();
            Some(DeploymentOrigin {
                application: d.application_name()?.to_owned(),
                deployment_group: d.deployment_group_name()?.to_owned(),
                created_at: d.create_time().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                rollback: rolls_back || by_rollback,
                description: d.description().map(str::to_owned),
            })
        }))
    }

    async fn test_traffic_hook(&self, deployment: &DeploymentId, target: &str) -> Result<Option<String>, DeployError> {
        let asked = self.codedeploy.get_deployment_target().deployment_id(deployment.as_str()).target_id(target);
        let output = match asked.send().await {
            Ok(output) => output,
            Err(err)
                if err.as_service_error().is_some_and(|e| {
                    e.is_deployment_does_not_exist_exception() || e.is_deployment_target_does_not_exist_exception()
                }) =>
            {
                return Ok(None);
            }
            Err(err) => return Err(classify(err)),
        };
        let events = output.deployment_target().and_then(|t| t.ecs_target()).map(|t| t.lifecycle_events());
        let event = events.unwrap_or_default().iter().find(|e| e.lifecycle_event_name() == Some(TEST_TRAFFIC_EVENT));
        Ok(event.and_then(|e| e.status()).map(|status| status.as_str().to_owned()))
    }

    async fn group_wait(&self, application: &str, deployment_group: &str) -> Result<GroupWait, DeployError> {
        let output = self
            .codedeploy
            .get_deployment_group()
            .application_name(application)
            .deployment_group_name(deployment_group)
            .send()
            .await
            .map_err(classify)?;
        let ready = output
            .deployment_group_info()
            .and_then(|g| g.blue_green_deployment_configuration())
            .and_then(|b| b.deployment_ready_option());
        Ok(GroupWait {
            action_on_timeout: ready.and_then(|r| r.action_on_timeout()).map(|a| a.as_str().to_owned()),
            wait_minutes: ready.map_or(0, |r| r.wait_time_in_minutes()),
        })
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
        match sent {
            Ok(_) => Ok(()),
            // The hook has its answer (Convoy answers a hook the same way every time, from the
            // record): done, and retrying would only meet the same refusal.
            Err(err) if answered_before(&err) => {
                tracing::info!(%deployment, %hook_execution, "the hook was answered before");
                Ok(())
            }
            Err(err) => Err(classify(err)),
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
}

#[cfg(test)]
mod tests {
    use aws_sdk_codedeploy::Client;
    use aws_sdk_codedeploy::operation::create_deployment::CreateDeploymentOutput;
    use aws_sdk_codedeploy::operation::get_deployment::GetDeploymentOutput;
    use aws_sdk_codedeploy::operation::list_deployments::ListDeploymentsOutput;
    use aws_sdk_codedeploy::primitives::DateTime;
    use aws_sdk_codedeploy::types::{DeploymentInfo, ErrorCode, ErrorInformation, RollbackInfo};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use serde_json::{Value, json};

    use super::*;

    fn deployer(codedeploy: Client) -> CodeDeployer {
        CodeDeployer::new(codedeploy)
    }

    fn request() -> CodeDeployRequest {
        CodeDeployRequest {
            application: "convoy".into(),
            deployment_group: "web".into(),
            task_definition: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:42".into(),
            container: "nginx".into(),
            port: 80,
            verify_function: "convoy-verify".into(),
            description: "convoy:web:4cf03d1 (Convoy release web/4cf03d1)".into(),
        }
    }

    fn id(id: &str) -> DeploymentId {
        DeploymentId::new(id).unwrap()
    }

    /// A GetDeployment answer for `info`.
    fn described(info: DeploymentInfo) -> GetDeploymentOutput {
        GetDeploymentOutput::builder().deployment_info(info).build()
    }

    #[tokio::test]
    async fn create_sends_an_appspec_with_the_task_definition_container_port_and_verify_hook() {
        let rule = mock!(Client::create_deployment)
            .match_requests(|input| {
                let revision = input.revision().expect("a revision");
                let content = revision.app_spec_content().and_then(|c| c.content()).expect("AppSpec content");
                let app_spec: Value = serde_json::from_str(content).expect("the AppSpec is JSON");
                let expected = json!({
                    "version": 0.0,
                    "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
                        "TaskDefinition": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:42",
                        "LoadBalancerInfo": {"ContainerName": "nginx", "ContainerPort": 80}
                    }}}],
                    "Hooks": [{"AfterAllowTestTraffic": "convoy-verify"}]
                });
                input.application_name() == Some("convoy")
                    && input.deployment_group_name() == Some("web")
                    && revision.revision_type() == Some(&RevisionLocationType::AppSpecContent)
                    && app_spec == expected
                    && input.description() == Some("convoy:web:4cf03d1 (Convoy release web/4cf03d1)")
            })
            .then_output(|| CreateDeploymentOutput::builder().deployment_id("d-EXAMPLE11").build());
        let adapter = deployer(mock_client!(aws_sdk_codedeploy, [&rule]));
        assert_eq!(adapter.create(&request()).await.unwrap(), id("d-EXAMPLE11"));
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_create_answered_without_an_id_is_worth_a_retry() {
        let rule = mock!(Client::create_deployment).then_output(|| CreateDeploymentOutput::builder().build());
        let adapter = deployer(mock_client!(aws_sdk_codedeploy, [&rule]));
        let created = adapter.create(&request()).await;
        assert!(
            matches!(&created, Err(DeployError::Unavailable(m)) if m.as_str().contains("no deployment id")),
            "{created:?}"
        );
    }

    #[tokio::test]
    async fn a_takeover_does_not_adopt_the_deployment_of_a_release_whose_id_starts_with_its_own() {
        let list = mock!(Client::list_deployments)
            .then_output(|| ListDeploymentsOutput::builder().deployments("d-RC1").build());
        let rc1 = mock!(Client::get_deployment).then_output(|| {
            described(
                DeploymentInfo::builder().description("convoy:web:v1.0.0-rc1 (Convoy release web/v1.0.0-rc1)").build(),
            )
        });
        let adapter = deployer(mock_client!(aws_sdk_codedeploy, RuleMode::MatchAny, [&list, &rc1]));
        assert_eq!(adapter.find("convoy", "web", "convoy:web:v1.0.0").await.unwrap(), None);
        assert_eq!(rc1.num_calls(), 1, "the candidate was read and refused");
    }

    #[tokio::test]
    async fn find_returns_the_groups_deployment_whose_description_carries_the_marker() {
        // Each rule answers twice: the test looks for two markers.
        let list = mock!(Client::list_deployments)
            .match_requests(|input| {
                input.application_name() == Some("convoy") && input.deployment_group_name() == Some("web")
            })
            .sequence()
            .output(|| ListDeploymentsOutput::builder().deployments("d-NEWER").deployments("d-EXAMPLE11").build())
            .times(2)
            .build();
        let newer = mock!(Client::get_deployment)
            .match_requests(|input| input.deployment_id() == Some("d-NEWER"))
            .sequence()
            .output(|| {
                described(
                    DeploymentInfo::builder().description("convoy:web:5d20e19 (Convoy release web/5d20e19)").build(),
                )
            })
            .times(2)
            .build();
        let ours = mock!(Client::get_deployment)
            .match_requests(|input| input.deployment_id() == Some("d-EXAMPLE11"))
            .sequence()
            .output(|| described(DeploymentInfo::builder().description(request().description).build()))
            .times(2)
            .build();
        let adapter = deployer(mock_client!(aws_sdk_codedeploy, RuleMode::MatchAny, [&list, &newer, &ours]));
        let found = adapter.find("convoy", "web", "convoy:web:4cf03d1").await.unwrap();
        assert_eq!(found, Some(id("d-EXAMPLE11")));
        assert_eq!((newer.num_calls(), ours.num_calls()), (1, 1));
        let absent = adapter.find("convoy", "web", "convoy:web:0000000").await.unwrap();
        assert_eq!(absent, None);
        assert_eq!((list.num_calls(), newer.num_calls(), ours.num_calls()), (2, 2, 2));
    }

    #[tokio::test]
    async fn each_deployment_status_maps_to_running_or_how_it_ended() {
        let failed = ErrorInformation::builder()
            .code(ErrorCode::HealthConstraints)
            .message("The overall deployment failed because too many individual instances failed deployment")
            .build();
        let cases = [
            (Status::Succeeded, None, DeploymentStatus::Ended { end: DeploymentEnd::Succeeded, detail: String::new() }),
            (
                Status::Failed,
                Some(failed),
                DeploymentStatus::Ended {
                    end: DeploymentEnd::Failed,
                    detail: "HEALTH_CONSTRAINTS: The overall deployment failed because too many individual \
                             instances failed deployment"
                        .into(),
                },
            ),
            (Status::Stopped, None, DeploymentStatus::Ended { end: DeploymentEnd::Stopped, detail: String::new() }),
            (Status::Created, None, DeploymentStatus::Running),
            (Status::Queued, None, DeploymentStatus::Running),
            (Status::InProgress, None, DeploymentStatus::Running),
            (Status::Ready, None, DeploymentStatus::Running),
            (Status::Baking, None, DeploymentStatus::Running),
        ];
        for (status, error, expected) in cases {
            let answer = status.clone();
            let rule = mock!(Client::get_deployment)
                .match_requests(|input| input.deployment_id() == Some("d-EXAMPLE11"))
                .then_output(move || {
                    described(
                        DeploymentInfo::builder().status(answer.clone()).set_error_information(error.clone()).build(),
                    )
                });
            let adapter = deployer(mock_client!(aws_sdk_codedeploy, [&rule]));
            assert_eq!(adapter.status(&id("d-EXAMPLE11")).await.unwrap(), expected, "{status:?}");
        }
    }

    #[tokio::test]
    async fn the_test_traffic_hooks_status_is_read_from_the_ecs_target_and_an_unknown_target_is_none() {
        use aws_sdk_codedeploy::operation::get_deployment_target::{
            GetDeploymentTargetError, GetDeploymentTargetOutput,
        };
        use aws_sdk_codedeploy::types::error::DeploymentTargetDoesNotExistException;
        use aws_sdk_codedeploy::types::{DeploymentTarget, EcsTarget, LifecycleEvent, LifecycleEventStatus};
        let event = |name: &str, status: LifecycleEventStatus| {
            LifecycleEvent::builder().lifecycle_event_name(name).status(status).build()
        };
        let target = DeploymentTarget::builder()
            .ecs_target(
                EcsTarget::builder()
                    .lifecycle_events(event("AllowTestTraffic", LifecycleEventStatus::Succeeded))
                    .lifecycle_events(event(TEST_TRAFFIC_EVENT, LifecycleEventStatus::InProgress))
                    .lifecycle_events(event("AfterAllowTraffic", LifecycleEventStatus::Pending))
                    .build(),
            )
            .build();
        let found = mock!(Client::get_deployment_target)
            .match_requests(|input| input.deployment_id() == Some("d-EXAMPLE33") && input.target_id() == Some("c:web"))
            .then_output(move || GetDeploymentTargetOutput::builder().deployment_target(target.clone()).build());
        let unknown = mock!(Client::get_deployment_target)
            .match_requests(|input| input.target_id() == Some("c:other"))
            .then_error(|| {
                GetDeploymentTargetError::DeploymentTargetDoesNotExistException(
                    DeploymentTargetDoesNotExistException::builder().build(),
                )
            });
        let adapter = deployer(mock_client!(aws_sdk_codedeploy, RuleMode::MatchAny, [&found, &unknown]));
        let running = adapter.test_traffic_hook(&id("d-EXAMPLE33"), "c:web").await.unwrap();
        assert_eq!(running.as_deref(), Some("InProgress"), "the AfterAllowTestTraffic event's, not another's");
        assert_eq!(adapter.test_traffic_hook(&id("d-EXAMPLE33"), "c:other").await.unwrap(), None);
    }

    /// What `status` says of a GetDeployment answer of `info`.
    async fn status_of(info: DeploymentInfo) -> DeploymentStatus {
        let rule = mock!(Client::get_deployment)
            .match_requests(|input| input.deployment_id() == Some("d-EXAMPLE11"))
            .then_output(move || described(info.clone()));
        let adapter = deployer(mock_client!(aws_sdk_codedeploy, [&rule]));
        adapter.status(&id("d-EXAMPLE11")).await.unwrap()
    }

    #[tokio::test]
    async fn statuses_asks_every_id_in_one_batch_and_answers_only_the_ids_asked_that_codedeploy_named() {
        use aws_sdk_codedeploy::operation::batch_get_deployments::BatchGetDeploymentsOutput;
        let rule = mock!(Client::batch_get_deployments)
            .match_requests(|input| input.deployment_ids() == ["d-EXAMPLE11", "d-EXAMPLE22", "d-EXAMPLE33"])
            .then_output(|| {
                BatchGetDeploymentsOutput::builder()
                    .deployments_info(
                        DeploymentInfo::builder().deployment_id("d-EXAMPLE11").status(Status::Succeeded).build(),
                    )
                    .deployments_info(
                        DeploymentInfo::builder()
                            .deployment_id("d-EXAMPLE22")
                            .status(Status::InProgress)
                            .instance_termination_wait_time_started(true)
                            .build(),
                    )
                    // Not asked for: no answer for any id.
                    .deployments_info(
                        DeploymentInfo::builder().deployment_id("d-EXAMPLE99").status(Status::Failed).build(),
                    )
                    .build()
            });
        let adapter = deployer(mock_client!(aws_sdk_codedeploy, [&rule]));
        let asked = [id("d-EXAMPLE11"), id("d-EXAMPLE22"), id("d-EXAMPLE33")];
        let answered = adapter.statuses(&asked).await.unwrap();
        assert_eq!(
            answered,
            vec![
                (id("d-EXAMPLE11"), DeploymentStatus::Ended { end: DeploymentEnd::Succeeded, detail: String::new() }),
                (id("d-EXAMPLE22"), DeploymentStatus::Rerouted),
            ],
            "d-EXAMPLE33 left out: the caller asks it alone"
        );
        assert_eq!(rule.num_calls(), 1, "one request for the batch");
    }

    #[tokio::test]
    async fn statuses_of_more_ids_than_codedeploy_takes_is_refused_before_any_request() {
        let rule = mock!(Client::batch_get_deployments).then_output(|| {
            aws_sdk_codedeploy::operation::batch_get_deployments::BatchGetDeploymentsOutput::builder().build()
        });
        let adapter = deployer(mock_client!(aws_sdk_codedeploy, [&rule]));
        let asked: Vec<DeploymentId> = (0..=STATUS_BATCH).map(|n| id(&format!("d-EXAMPLE{n:02}"))).collect();
        assert!(matches!(adapter.statuses(&asked).await, Err(DeployError::Rejected(_))));
        assert!(adapter.statuses(&[]).await.unwrap().is_empty());
        assert_eq!(rule.num_calls(), 0);
    }

    #[tokio::test]
    async fn a_deployment_in_progress_whose_termination_wait_started_has_rerouted_traffic() {
        let rerouted =
            DeploymentInfo::builder().status(Status::InProgress).instance_termination_wait_time_started(true).build();
        assert_eq!(status_of(rerouted).await, DeploymentStatus::Rerouted);
    }

    #[tokio::test]
    async fn a_deployment_in_progress_before_its_termination_wait_has_not_rerouted() {
        let before = DeploymentInfo::builder().status(Status::InProgress).instance_termination_wait_time_started(false);
        assert_eq!(status_of(before.build()).await, DeploymentStatus::Running);
        let unsaid = DeploymentInfo::builder().status(Status::InProgress).build();
        assert_eq!(status_of(unsaid).await, DeploymentStatus::Running);
    }

    #[tokio::test]
    async fn a_deployment_waiting_for_the_reroute_is_running() {
        let ready = DeploymentInfo::builder().status(Status::Ready).build();
        assert_eq!(status_of(ready).await, DeploymentStatus::Running);
    }

    #[tokio::test]
    async fn an_ended_deployment_is_ended_whatever_its_termination_wait() {
        let done =
            DeploymentInfo::builder().status(Status::Succeeded).instance_termination_wait_time_started(true).build();
        assert!(matches!(status_of(done).await, DeploymentStatus::Ended { end: DeploymentEnd::Succeeded, .. }));
    }

    /// The origin of a deployment as GetDeployment answers with `info` (application and group set).
    async fn origin_of(info: aws_sdk_codedeploy::types::builders::DeploymentInfoBuilder) -> DeploymentOrigin {
        let info = info
            .application_name("convoy")
            .deployment_group_name("web")
            .create_time(DateTime::from_secs(1_764_000_000));
        let rule = mock!(Client::get_deployment)
            .match_requests(|input| input.deployment_id() == Some("d-EXAMPLE22"))
            .then_output(move || described(info.clone().build()));
        let adapter = deployer(mock_client!(aws_sdk_codedeploy, [&rule]));
        adapter.origin(&id("d-EXAMPLE22")).await.unwrap().expect("an origin")
    }

    #[tokio::test]
    async fn a_deployment_created_by_a_rollback_is_a_rollback() {
        let by_user = origin_of(DeploymentInfo::builder().creator(DeploymentCreator::User)).await;
        assert_eq!(by_user.application, "convoy");
        assert_eq!(by_user.deployment_group, "web");
        assert_eq!(by_user.created_at.map(|t| t.timestamp()), Some(1_764_000_000));
        assert!(!by_user.rollback, "a user's deployment");
        let by_pipeline = origin_of(DeploymentInfo::builder().creator(DeploymentCreator::CodeDeploy)).await;
        assert!(!by_pipeline.rollback, "a deployment a pipeline's CodeDeployToECS action created");
        // The rollback's rollbackInfo names the deployment it rolls back.
        let triggered = RollbackInfo::builder().rollback_triggering_deployment_id("d-EXAMPLE11").build();
        for (creator, rollback_info) in [
            (DeploymentCreator::CodeDeployRollback, None),
            (DeploymentCreator::CloudFormationRollback, None),
            (DeploymentCreator::CodeDeployRollback, Some(triggered.clone())),
            (DeploymentCreator::User, Some(triggered.clone())),
        ] {
            let info = DeploymentInfo::builder().creator(creator.clone()).set_rollback_info(rollback_info.clone());
            assert!(origin_of(info).await.rollback, "{creator:?}, {rollback_info:?}");
        }
        // The deployment that was rolled back names its rollback: it is not one itself.
        let rolled_back = RollbackInfo::builder().rollback_deployment_id("d-EXAMPLE22").build();
        let info = DeploymentInfo::builder().creator(DeploymentCreator::User).rollback_info(rolled_back);
        assert!(!origin_of(info).await.rollback);
    }

    #[tokio::test]
    async fn the_group_wait_is_read_from_the_groups_ready_option() {
        use aws_sdk_codedeploy::operation::get_deployment_group::GetDeploymentGroupOutput;
        use aws_sdk_codedeploy::types::{
            BlueGreenDeploymentConfiguration, DeploymentGroupInfo, DeploymentReadyAction, DeploymentReadyOption,
        };
        let rule = mock!(Client::get_deployment_group)
            .match_requests(|input| {
                input.application_name() == Some("convoy") && input.deployment_group_name() == Some("web")
            })
            .then_output(|| {
                let ready = DeploymentReadyOption::builder()
                    .action_on_timeout(DeploymentReadyAction::StopDeployment)
                    .wait_time_in_minutes(45)
                    .build();
                let blue_green = BlueGreenDeploymentConfiguration::builder().deployment_ready_option(ready).build();
                let info = DeploymentGroupInfo::builder().blue_green_deployment_configuration(blue_green).build();
                GetDeploymentGroupOutput::builder().deployment_group_info(info).build()
            });
        let adapter = deployer(mock_client!(aws_sdk_codedeploy, [&rule]));
        let wait = adapter.group_wait("convoy", "web").await.unwrap();
        assert_eq!(wait, GroupWait { action_on_timeout: Some("STOP_DEPLOYMENT".into()), wait_minutes: 45 });
    }

    #[tokio::test]
    async fn a_group_without_a_blue_green_configuration_sets_no_ready_option() {
        use aws_sdk_codedeploy::operation::get_deployment_group::GetDeploymentGroupOutput;
        use aws_sdk_codedeploy::types::DeploymentGroupInfo;
        let rule = mock!(Client::get_deployment_group).then_output(|| {
            GetDeploymentGroupOutput::builder().deployment_group_info(DeploymentGroupInfo::builder().build()).build()
        });
        let adapter = deployer(mock_client!(aws_sdk_codedeploy, [&rule]));
        let wait = adapter.group_wait("convoy", "web").await.unwrap();
        assert_eq!(wait, GroupWait { action_on_timeout: None, wait_minutes: 0 });
        assert!(!wait.waits_for_a_person());
    }

    #[tokio::test]
    async fn the_origin_of_a_deployment_codedeploy_does_not_know_is_none() {
        let rule = mock!(Client::get_deployment).then_error(|| {
            aws_sdk_codedeploy::operation::get_deployment::GetDeploymentError::DeploymentDoesNotExistException(
                aws_sdk_codedeploy::types::error::DeploymentDoesNotExistException::builder()
                    .message("The deployment d-EXAMPLE99 could not be found")
                    .build(),
            )
        });
        let adapter = deployer(mock_client!(aws_sdk_codedeploy, [&rule]));
        assert_eq!(adapter.origin(&id("d-EXAMPLE99")).await.unwrap(), None);
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
        assert!(answered_before(&refused(ALREADY_ANSWERED)));
        let other = refused("InvalidLifecycleEventHookExecutionIdException");
        assert!(!answered_before(&other));
        assert!(matches!(classify(other), DeployError::Rejected(_)));
    }

    #[test]
    fn an_unknown_code_or_a_server_error_is_worth_a_retry() {
        assert!(matches!(classify(refused("ThrottlingException")), DeployError::Unavailable(_)));
    }
}
