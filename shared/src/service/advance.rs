//! What follows a stored transition: its effects are performed, and a stage it made due is
//! started. Every use case ends here; this is the one place that knows which use case starts which
//! stage.

use chrono::{DateTime, Utc};

use tracing::Instrument;

use super::{Convoy, Report, Updated, release_span};
use crate::error::ConvoyError;
use crate::names::ReleaseKey;
use crate::ports::Stored;
use crate::release::{Effect, Hook, Stage, State};

impl Convoy {
    /// Reports an update, then starts the release's next stage if it is due. Starting is guarded
    /// by a claim in the record, so calling this for a duplicate event starts nothing twice; it
    /// lets a retried event resume a start that a crash interrupted.
    pub(super) async fn finish_and_advance(&self, updated: Updated, now: DateTime<Utc>) -> Result<Report, ConvoyError> {
        let hook = updated.release.verification.as_ref().map(|v| v.hook.clone());
        self.perform(&updated.release.key.clone(), &updated.effects, hook.as_ref(), now).await?;
        let stored = Stored { release: updated.release.clone(), version: updated.version.clone() };
        let mut report = self.finish(updated);
        if let Some(advanced) = self.advance(stored, now).await? {
            report.state = advanced.state;
            report.note = report.note.or(advanced.note);
        }
        Ok(report)
    }

    /// Reports an update and performs its effects, without starting a next stage (for
    /// transitions that end a stage for good).
    pub(super) async fn finish_and_perform(&self, updated: Updated, now: DateTime<Utc>) -> Result<Report, ConvoyError> {
        let hook = updated.release.verification.as_ref().map(|v| v.hook.clone());
        self.perform(&updated.release.key.clone(), &updated.effects, hook.as_ref(), now).await?;
        Ok(self.finish(updated))
    }

    /// Starts the stage a ready release waits for, from the record as last stored.
    pub(super) async fn advance(&self, stored: Stored, now: DateTime<Utc>) -> Result<Option<Report>, ConvoyError> {
        let key = stored.release.key.clone();
        // Boxed: a stage start is a large future, and every handler reaches it through here; on
        // the stack it made debug builds' frames outgrow a test thread's 2 MiB.
        match stored.release.state {
            State::Ready { next: Stage::Migration } => Box::pin(self.start_migration(&key, now, Some(stored))).await,
            State::Ready { next: Stage::Deployment } => Box::pin(self.start_deployment(&key, now, Some(stored))).await,
            _ => Ok(None),
        }
    }

    /// Starts the release that waited for the deploy lock just freed, at once rather than at the
    /// reconciler's next run. Its start is claimed as any other, so a concurrent reconciler starts
    /// it only once; a failure here is logged and left to the reconciler, so that the event that
    /// ended the holder is not retried for another release's sake.
    async fn start_queued(&self, next: &ReleaseKey, now: DateTime<Utc>) {
        match self.start_deployment(next, now, None).await {
            Ok(report) => tracing::info!(state = ?report.map(|r| r.state), "the queued release was started"),
            Err(err) => tracing::warn!(error = %err, "the queued release could not start now; the reconciler retries"),
        }
    }

    /// Continues (or, with `roll_back`, rolls back) the release's deployment with Convoy's own role:
    /// an ECS native service deployment through its pause hook; a CodeDeploy one only once AWS
    /// confirms it is Convoy's, for this release ([`Convoy::confirm_convoys_deployment`]), else
    /// [`ConvoyError::Refused`] with why.
    pub(super) async fn steer_deployment(
        &self,
        key: &ReleaseKey,
        deployment: &crate::names::DeploymentId,
        hook: Option<&Hook>,
        roll_back: bool,
    ) -> Result<(), ConvoyError> {
        if let Some(Hook::EcsNative { service_deployment, .. }) = hook {
            return Ok(self.deployer.continue_native(service_deployment, roll_back).await?);
        }
        if let Err(why) = self.confirm_convoys_deployment(key, deployment).await? {
            return Err(ConvoyError::Refused(format!("release {key}: {why}")));
        }
        if roll_back {
            self.deployer.roll_back(deployment).await?;
        } else {
            self.deployer.continue_traffic(deployment).await?;
        }
        Ok(())
    }

    /// Whether AWS confirms what the record says before Convoy reroutes production traffic (or
    /// rolls it back) with its own role: the deployment is in the deployment group of the release's service, Convoy
    /// created it for this release (its description carries the release's marker, or, for the
    /// pipeline method, CodePipeline reports it as the release's execution's). The record alone is
    /// not enough: anyone who can write to the state bucket could have written it. That the
    /// deployment waits for the reroute is CodeDeploy's own check: it refuses `ContinueDeployment`
    /// otherwise (`DeploymentIsNotInReadyStateException`), and an unknown deployment with
    /// `DeploymentDoesNotExistException`, which the call then reports. `Ok(Err(why))` when AWS
    /// does not confirm.
    async fn confirm_convoys_deployment(
        &self,
        key: &ReleaseKey,
        deployment: &crate::names::DeploymentId,
    ) -> Result<Result<(), String>, ConvoyError> {
        let Some(origin) = self.deployer.origin(deployment).await? else { return Ok(Ok(())) };
        // The CLI and the dashboard run without the operator's service settings: there the group
        // is not checked, the marker (or the pipeline's report) still is.
        let settings = self.config.services.get(&key.service);
        if let Some(group) = settings.and_then(|s| s.codedeploy.as_ref())
            && (origin.application != group.application || origin.deployment_group != group.deployment_group)
        {
            return Ok(Err(format!(
                "deployment {deployment} is in {}/{}, not the service's {}/{}",
                origin.application, origin.deployment_group, group.application, group.deployment_group
            )));
        }
        let marked = origin.description.as_deref().is_some_and(|d| crate::names::carries_marker(d, &key.tag()));
        if !marked && !self.pipeline_reports(key, deployment, origin.created_at).await? {
            return Ok(Err(format!("deployment {deployment} was not created by Convoy for release {key}")));
        }
        Ok(Ok(()))
    }

    /// Whether CodePipeline reports `deployment` as the one the release's pipeline execution
    /// created; before it reports any, whether the deployment was created after the execution
    /// started (the rule by which `verify` adopted it; the start time is the record's, so for a
    /// pipeline whose action reports nothing this check trusts the record that far).
    async fn pipeline_reports(
        &self,
        key: &ReleaseKey,
        deployment: &crate::names::DeploymentId,
        created_at: Option<DateTime<Utc>>,
    ) -> Result<bool, ConvoyError> {
        let Some(stored) = self.store.load(key).await? else { return Ok(false) };
        // The execution the release started (its record keeps it after adopting the deployment).
        let run = stored.release.deployment.as_ref().and_then(|d| d.pipeline.as_ref());
        let Some(execution) = run.and_then(|p| p.execution.as_ref()) else { return Ok(false) };
        // The operator's pipeline; without the settings (CLI, dashboard), the one the record names,
        // which CodePipeline must still report as having created this deployment.
        let configured = self.config.services.get(&key.service).and_then(|s| s.pipeline.as_ref()).map(|p| &p.name);
        let Some(pipeline) = configured.or(run.map(|p| &p.name)) else { return Ok(false) };
        let started = stored.release.deployment.as_ref().and_then(|run| run.started_at);
        let created_after_start = match (created_at, started) {
            (Some(created), Some(started)) => created >= started - super::verification::ADOPTION_CLOCK_SKEW,
            _ => false,
        };
        match self.pipelines.deployment_of(pipeline, execution).await {
            Ok(Some(reported)) => Ok(reported == *deployment),
            Ok(None) | Err(crate::error::DeployError::Rejected(_)) => Ok(created_after_start),
            Err(err) => Err(err.into()),
        }
    }

    /// Performs the side effects of a stored transition (stage starts are [`Convoy::advance`]'s).
    pub(super) async fn perform(
        &self,
        key: &ReleaseKey,
        effects: &[Effect],
        hook: Option<&Hook>,
        now: DateTime<Utc>,
    ) -> Result<(), ConvoyError> {
        for effect in effects {
            match effect {
                Effect::ReleaseDeployLock => {
                    let freed = self
                        .change_lock(key, |lock| {
                            let freed = lock.release(&key.release);
                            (freed.clone(), freed)
                        })
                        .await?;
                    if let Some(waiting) = freed.and_then(|lock| lock.newest_waiting) {
                        let next = ReleaseKey::new(key.service.clone(), waiting.release);
                        // Boxed: starting it may end it (an impossible deployment), which performs
                        // effects again.
                        Box::pin(self.start_queued(&next, now).instrument(release_span(&next))).await;
                    }
                }
                Effect::StopMigration { task } => {
                    self.tasks.stop(&self.config.cluster, task, "convoy: the migration ran past its timeout").await?;
                }
                Effect::ContinueDeployment { deployment } | Effect::RollBack { deployment } => {
                    let roll_back = matches!(effect, Effect::RollBack { .. });
                    match self.steer_deployment(key, deployment, hook, roll_back).await {
                        Ok(()) => {}
                        Err(ConvoyError::Refused(why)) => {
                            tracing::warn!(%deployment, %why, "not steered: AWS does not confirm the record");
                        }
                        // CodeDeploy may not be waiting yet (or at all, without a wait configured),
                        // or be unreachable: the reconciler asks again while the deployment runs.
                        Err(err) => {
                            tracing::info!(error = %err, roll_back, "could not steer the deployment now; the reconciler retries")
                        }
                    }
                }
                Effect::CopyMigrationLogs { log } => self.copy_migration_logs(key, log, now).await,
                Effect::FindApprover { deployment, approve, native, since } => {
                    self.find_approver(key, deployment, *approve, *native, *since, now).await
                }
                // Best effort: a push that still finds the release is refused by its record, and
                // the bucket's lifecycle expires what is left.
                Effect::ForgetWaits { images } => {
                    for image in images {
                        if let Err(err) = self.waits.forget(image, key).await {
                            tracing::warn!(%image, error = %err, "wait-list entry not removed; it expires by lifecycle");
                        }
                    }
                }
                Effect::StartMigration | Effect::StartDeployment | Effect::ResolveImages { .. } => {}
            }
        }
        Ok(())
    }
}
