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
        match stored.release.state {
            State::Ready { next: Stage::Migration } => self.start_migration(&key, now, Some(stored)).await,
            State::Ready { next: Stage::Deployment } => self.start_deployment(&key, now, Some(stored)).await,
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
                Effect::ContinueDeployment { deployment } => {
                    let continued = match hook {
                        Some(Hook::EcsNative { service_deployment, .. }) => {
                            self.deployer.continue_native(service_deployment, false).await
                        }
                        _ => self.deployer.continue_traffic(deployment).await,
                    };
                    // CodeDeploy may not be waiting yet (or at all, without a wait configured):
                    // the reconciler continues a shifting deployment that still runs.
                    if let Err(err) = continued {
                        tracing::info!(error = %err, "could not continue the deployment now; the reconciler retries");
                    }
                }
                Effect::RollBack { deployment } => {
                    let rolled = match hook {
                        Some(Hook::EcsNative { service_deployment, .. }) => {
                            self.deployer.continue_native(service_deployment, true).await
                        }
                        _ => self.deployer.roll_back(deployment).await,
                    };
                    // The record says RollingBack already: the reconciler asks again while the
                    // deployment still runs.
                    if let Err(err) = rolled {
                        tracing::warn!(error = %err, "could not roll the deployment back now; the reconciler retries");
                    }
                }
                Effect::StartMigration | Effect::StartDeployment | Effect::ResolveImages { .. } => {}
            }
        }
        Ok(())
    }
}
