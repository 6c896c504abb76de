//! The reconciler: on a schedule, re-derives every release in progress from AWS, so a lost event
//! delays a release by one period at most. ECR push events are best effort (a Collecting release
//! looks its images up again); a STOPPED task event can be missed (a Migrating release asks ECS);
//! a migration that overran its timeout fails; a start whose holder died is taken over.

use chrono::{DateTime, Utc};
use tracing::{Instrument, info, warn};

use super::{Convoy, Report, release_span, update};
use crate::error::ConvoyError;
use crate::names::{DeploymentRef, ReleaseKey};
use crate::ports::DeploymentStatus;
use crate::release::{Effect, Event, State};

impl Convoy {
    /// Visits every active release once.
    pub async fn reconcile(&self, now: DateTime<Utc>) -> Result<Vec<Report>, ConvoyError> {
        let mut reports = Vec::new();
        let mut retryable = None;
        for key in self.active.active().await? {
            let span = release_span(&key);
            match self.reconcile_one(&key, now).instrument(span.clone()).await {
                Ok(report) => reports.extend(report),
                Err(err) if err.is_retryable() => {
                    span.in_scope(|| warn!(error = %err, "could not reconcile; next period tries again"));
                    retryable = Some(err);
                }
                Err(err) => span.in_scope(|| warn!(error = %err, "could not reconcile")),
            }
        }
        match retryable {
            Some(err) if reports.is_empty() => Err(err),
            _ => Ok(reports),
        }
    }

    async fn reconcile_one(&self, key: &ReleaseKey, now: DateTime<Utc>) -> Result<Option<Report>, ConvoyError> {
        let Some(stored) = self.store.load(key).await? else {
            self.active.mark_done(key).await?;
            return Ok(None);
        };
        let release = stored.release.clone();
        match &release.state {
            state if state.is_terminal() => {
                info!("ended; no longer active");
                self.active.mark_done(key).await?;
                Ok(None)
            }
            State::Collecting => self.resolve_images(key, &release.awaited_images(), now).await,
            State::Ready { .. } => self.advance(stored, now).await,
            State::Queued { .. } | State::StartingDeployment => self.start_deployment(key, now, Some(stored)).await,
            State::AwaitingApproval { .. }
                if release.deployment.as_ref().and_then(|d| d.auto_approve_at).is_some_and(|at| at <= now) =>
            {
                info!("the bake time is over: policy approves");
                self.decide(key, true, "policy (auto, after bake time)", now).await.map(Some)
            }
            State::Deploying { .. }
            | State::Verifying { .. }
            | State::AwaitingApproval { .. }
            | State::ShiftingTraffic { .. }
            | State::RollingBack { .. } => match self.deployment_status(&release).await? {
                Some((deployment, DeploymentStatus::Ended { end, detail })) => {
                    info!(%deployment, ?end, "the deployment ended without Convoy hearing of it");
                    self.deployment_ended(&deployment, end, &detail, now).await
                }
                Some((DeploymentRef::CodeDeploy(deployment), DeploymentStatus::Running))
                    if matches!(release.state, State::ShiftingTraffic { .. }) =>
                {
                    let hook = release.verification.as_ref().map(|v| v.hook.clone());
                    let effect = Effect::ContinueDeployment { deployment };
                    self.perform(key, &[effect], hook.as_ref(), now).await?;
                    Ok(None)
                }
                _ => Ok(None),
            },
            State::StartingMigration => {
                if let Some(report) = self.fail_if_overdue(key, now).await? {
                    return Ok(Some(report));
                }
                self.start_migration(key, now, None).await
            }
            State::Migrating { task } => match self.tasks.describe(&self.config.cluster, task).await? {
                Some(report) if report.last_status == "STOPPED" => {
                    info!(%task, "the task stopped without Convoy hearing of it; applying what ECS says");
                    self.migration_task_changed(key, &report, now).await
                }
                _ => self.fail_if_overdue(key, now).await,
            },
            State::Succeeded | State::RolledBack { .. } | State::Superseded { .. } | State::Failed { .. } => Ok(None),
        }
    }

    /// The pipeline execution's status while the release follows it; its deployment's otherwise.
    async fn deployment_status(
        &self,
        release: &crate::release::Release,
    ) -> Result<Option<(DeploymentRef, DeploymentStatus)>, ConvoyError> {
        if let Some((pipeline, execution)) = release.following_pipeline() {
            let status = self.pipelines.status(pipeline, execution).await?;
            return Ok(Some((DeploymentRef::Pipeline(execution.clone()), status)));
        }
        let Some(deployment) = release.codedeploy_deployment() else { return Ok(None) };
        let status = self.deployer.status(&deployment).await?;
        Ok(Some((DeploymentRef::CodeDeploy(deployment), status)))
    }

    /// Fails a migration past its deadline and stops its task.
    async fn fail_if_overdue(&self, key: &ReleaseKey, now: DateTime<Utc>) -> Result<Option<Report>, ConvoyError> {
        let Some(updated) = update(self.store.as_ref(), key, |r| r.apply(&Event::MigrationOverdue { at: now })).await?
        else {
            return Ok(None);
        };
        if !updated.changed {
            return Ok(None);
        }
        self.perform(key, &updated.effects, None, now).await?;
        Ok(Some(self.finish(updated)))
    }
}
