//! Events are hints; AWS is the truth. Anyone allowed to invoke a Convoy function can hand it any
//! payload, so before an observation becomes a stage event Convoy asks AWS, with one read: the
//! task in ECS, the deployment in CodeDeploy, ECS or CodePipeline (here), the tag's digest in ECR
//! (`readiness.rs`'s `confirmed_digest`: the readiness look-up itself, asked for one image), a
//! CodeDeploy hook's `AfterAllowTestTraffic` (`verification.rs`, before probing). What
//! AWS confirms is what is applied (ECR's digest, ECS's report, the end AWS names); what it does not
//! confirm changes nothing, and is logged with why and counted (`UnconfirmedEvents`, by kind).

use tracing::warn;

use super::Convoy;
use crate::error::ConvoyError;
use crate::names::{DeploymentRef, ReleaseKey};
use crate::ports::DeploymentStatus;
use crate::release::{DeploymentEnd, ObservedCall, Release, State, TaskReport};

/// What AWS says of an observation: `Ok` what to apply, `Err` why it is refused.
pub(super) type Confirmed<T> = Result<T, String>;

/// The kinds an unconfirmed event is counted by (the metric's `Kind`).
pub(super) mod kind {
    pub const PUSH: &str = "push";
    pub const TASK_STOPPED: &str = "task-stopped";
    pub const DEPLOYMENT_END: &str = "deployment-end";
    pub const APPROVAL: &str = "approval";
    pub const HOOK: &str = "hook";
    pub const ROLLBACK: &str = "rollback";
}

/// Logs and counts an observation AWS did not confirm; it changes nothing.
pub(super) fn refuse(kind: &str, key: Option<&ReleaseKey>, why: &str) {
    match key {
        Some(key) => warn!(release = %key, kind, %why, "unconfirmed event: refused, nothing changed"),
        None => warn!(kind, %why, "unconfirmed event: refused, nothing changed"),
    }
    crate::telemetry::unconfirmed_event(kind, key);
}

impl Convoy {
    /// ECS's report of the release's migration task (`DescribeTasks`), applied instead of the
    /// event's once ECS says it stopped. A task that is not the release's migration is refused
    /// before ECS is asked.
    pub(super) async fn confirm_task_stop(
        &self,
        release: &Release,
        reported: &TaskReport,
    ) -> Result<Confirmed<TaskReport>, ConvoyError> {
        let recorded = match &release.state {
            State::Migrating { task } => Some(task),
            State::StartingMigration => None,
            other => return Ok(Err(format!("task {}: the release is {other}, no migration runs", reported.task))),
        };
        if recorded.is_some_and(|task| *task != reported.task) {
            return Ok(Err(format!("task {} is not the release's migration task", reported.task)));
        }
        let Some(described) = self.tasks.describe(&self.config.cluster, &reported.task).await? else {
            return Ok(Err(format!("ECS knows no task {}", reported.task)));
        };
        if recorded.is_none() && !described.is_convoy_migration_of(&release.key) {
            return Ok(Err(format!("ECS says task {} is not a Convoy migration of this release", reported.task)));
        }
        if described.last_status != "STOPPED" {
            return Ok(Err(format!("ECS says task {} is {}, not STOPPED", reported.task, described.last_status)));
        }
        Ok(Ok(TaskReport { version: described.version.or(reported.version), ..described }))
    }

    /// How AWS says `deployment` ended (`GetDeployment`, `DescribeServiceDeployments` or
    /// `GetPipelineExecution`): the end applied, with the event's detail when it agrees. Refused
    /// while AWS says it runs.
    pub(super) async fn confirm_deployment_end(
        &self,
        release: &Release,
        deployment: &DeploymentRef,
        end: DeploymentEnd,
        detail: &str,
    ) -> Result<Confirmed<(DeploymentEnd, String)>, ConvoyError> {
        let status = match deployment {
            DeploymentRef::CodeDeploy(id) => self.codedeploy.status(id).await?,
            DeploymentRef::Service(arn) => self.service_deployments.status(arn).await?.status,
            DeploymentRef::Pipeline(execution) => {
                let Some(pipeline) = release.deployment.as_ref().and_then(|run| run.pipeline.as_ref()) else {
                    return Ok(Err(format!("the release started no pipeline execution {execution}")));
                };
                self.pipelines.status(&pipeline.name, execution).await?
            }
        };
        Ok(match status {
            DeploymentStatus::Ended { end: confirmed, detail: said } => {
                if confirmed != end {
                    warn!(%deployment, event = ?end, aws = ?confirmed, "AWS names another end; applying AWS's");
                }
                let detail = if confirmed == end && !detail.is_empty() { detail.to_owned() } else { said };
                Ok((confirmed, detail))
            }
            DeploymentStatus::Running | DeploymentStatus::Rerouted => {
                Err(format!("AWS says {deployment} has not ended (the event says {end:?})"))
            }
        })
    }

    /// What an "ECS Deployment State Change" `event_name` claims of the release's service
    /// deployment, against `status`, what `DescribeServiceDeployments` said of it just now: the
    /// end ECS names once it ended (`Ok(Some)`), nothing while it runs (`Ok(None)`), and refused
    /// when the event claims an end (`SERVICE_DEPLOYMENT_COMPLETED`, `_FAILED`) ECS does not show.
    pub(super) fn confirm_native_change(
        deployment: &DeploymentRef,
        event_name: &str,
        status: DeploymentStatus,
    ) -> Confirmed<Option<(DeploymentEnd, String)>> {
        match status {
            DeploymentStatus::Ended { end, detail } => Ok(Some((end, detail))),
            DeploymentStatus::Running | DeploymentStatus::Rerouted
                if event_name.ends_with("_COMPLETED") || event_name.ends_with("_FAILED") =>
            {
                Err(format!("ECS says {deployment} has not ended (the event says {event_name})"))
            }
            DeploymentStatus::Running | DeploymentStatus::Rerouted => Ok(None),
        }
    }

    /// Whether AWS shows the decision CloudTrail's record names: a continued CodeDeploy deployment
    /// rerouted (or succeeded), a continued ECS one past its pause; a stopped one stopped or
    /// rolling back. The record names who; the deployment's own state says it happened.
    pub(super) async fn confirm_approval(&self, call: &ObservedCall) -> Result<Confirmed<()>, ConvoyError> {
        let verb = if call.approve { "continued" } else { "stopped" };
        let seen = match &call.deployment {
            DeploymentRef::CodeDeploy(id) => match self.codedeploy.status(id).await? {
                DeploymentStatus::Rerouted => call.approve,
                DeploymentStatus::Ended { end, .. } => call.approve == (end == DeploymentEnd::Succeeded),
                DeploymentStatus::Running => false,
            },
            DeploymentRef::Service(arn) => {
                let described = self.service_deployments.status(arn).await?;
                match described.status {
                    DeploymentStatus::Ended { end, .. } => call.approve == (end == DeploymentEnd::Succeeded),
                    _ if call.approve => described.progress.past_approval(),
                    _ => described.progress.rolls_back(),
                }
            }
            DeploymentRef::Pipeline(_) => false,
        };
        Ok(if seen {
            Ok(())
        } else {
            Err(format!(
                "{} by {} names {}, but AWS does not show it {verb}",
                call.actor.operation, call.actor.principal_arn, call.deployment
            ))
        })
    }
}
