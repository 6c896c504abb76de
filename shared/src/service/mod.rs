//! The use cases: what Convoy does with each event, over the ports. Handlers translate events into
//! calls here; the state machine decides; this layer stores decisions and performs their effects.

mod deploy;
mod migration;
mod readiness;
mod reconcile;
mod verification;

pub use self::deploy::deployment_marker;
pub use self::migration::{migration_group, started_by};
pub use self::verification::HookReply;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use self::readiness::Settings;
use crate::error::{ConvoyError, StoreError};
use crate::names::ReleaseKey;
use crate::ports::{
    ActiveReleases, DeployLocks, Deployer, DeploymentIndex, ManifestReader, Pipelines, Registry, ReleaseDefinitions,
    ReleaseStore, Tasks, WaitList,
};
use crate::release::{Decision, Effect, Release, Stage, State, TransitionError};
use crate::verify::Prober;

/// Convoy's use cases, wired to one set of ports.
#[derive(Clone)]
pub struct Convoy {
    pub store: Arc<dyn ReleaseStore>,
    pub waits: Arc<dyn WaitList>,
    pub manifests: Arc<dyn ManifestReader>,
    pub registry: Arc<dyn Registry>,
    pub tasks: Arc<dyn Tasks>,
    pub active: Arc<dyn ActiveReleases>,
    pub definitions: Arc<dyn ReleaseDefinitions>,
    pub deployer: Arc<dyn Deployer>,
    pub pipelines: Arc<dyn Pipelines>,
    pub locks: Arc<dyn DeployLocks>,
    pub deployments: Arc<dyn DeploymentIndex>,
    pub prober: Arc<dyn Prober>,
    pub settings: Settings,
}

/// What handling an event did to one release: shown in logs and returned by the Lambda.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub release: String,
    /// Whether the record was written.
    pub changed: bool,
    pub state: String,
    /// Why nothing changed, when nothing did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The next stage's work this event made due (performed by the stage that owns it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requested: Vec<Effect>,
}

impl Report {
    fn of(release: &Release, changed: bool, note: Option<String>, requested: Vec<Effect>) -> Self {
        Self { release: release.key.to_string(), changed, state: release.state.to_string(), note, requested }
    }
}

/// A record after an update.
struct Updated {
    release: Release,
    /// The stored version of `release`: a next update can start from it without a read.
    version: crate::ports::RecordVersion,
    changed: bool,
    effects: Vec<Effect>,
    note: Option<String>,
}

/// How often one update re-reads and re-applies after losing a conditional write. Far above what
/// ten handlers writing one record at once need, and still bounded so a Lambda never spins.
pub(crate) const MAX_ATTEMPTS: u32 = 30;

/// Reads the record, lets `decide` apply the event, and stores the result with a conditional
/// write; when another writer got there first, it starts over from the newer record. Returns
/// `None` when there is no record.
async fn update(
    store: &dyn ReleaseStore,
    key: &ReleaseKey,
    decide: impl FnMut(&Release) -> Result<Decision, TransitionError>,
) -> Result<Option<Updated>, ConvoyError> {
    update_from(store, key, None, decide).await
}

/// [`update`], starting from a record the caller already holds (it just wrote it): one read
/// fewer. A stale `known` costs nothing but the conditional write it loses.
async fn update_from(
    store: &dyn ReleaseStore,
    key: &ReleaseKey,
    mut known: Option<crate::ports::Stored>,
    mut decide: impl FnMut(&Release) -> Result<Decision, TransitionError>,
) -> Result<Option<Updated>, ConvoyError> {
    for attempt in 1..=MAX_ATTEMPTS {
        let stored = match known.take() {
            Some(stored) => stored,
            None => match store.load(key).await? {
                Some(stored) => stored,
                None => return Ok(None),
            },
        };
        match decide(&stored.release)? {
            Decision::Unchanged { why } => {
                return Ok(Some(Updated {
                    release: stored.release,
                    version: stored.version,
                    changed: false,
                    effects: Vec::new(),
                    note: Some(why),
                }));
            }
            Decision::Changed { release, effects } => match store.replace(&release, &stored.version).await {
                Ok(version) => {
                    return Ok(Some(Updated { release: *release, version, changed: true, effects, note: None }));
                }
                Err(StoreError::Conflict) => {
                    tracing::debug!(release = %key, attempt, "lost a conditional write; re-reading");
                    // Jitter spreads writers that collided so they do not collide again.
                    let ceiling = 5 + 10 * u64::from(attempt.min(10));
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=ceiling))).await;
                }
                Err(other) => return Err(other.into()),
            },
        }
    }
    Err(ConvoyError::Contention(key.clone(), MAX_ATTEMPTS))
}

impl Convoy {
    /// Logs what an update did and turns it into a report.
    fn finish(&self, updated: Updated) -> Report {
        let Updated { release, changed, effects, note, .. } = updated;
        match &note {
            Some(note) => tracing::info!(state = %release.state, "unchanged: {note}"),
            None => tracing::info!(state = %release.state, "release updated"),
        }
        for effect in &effects {
            tracing::info!(?effect, "due");
        }
        Report::of(&release, changed, note, effects)
    }

    /// Reports an update, then starts the release's next stage if it is due. Starting is guarded
    /// by a claim in the record, so calling this for a duplicate event starts nothing twice; it
    /// lets a retried event resume a start that a crash interrupted.
    async fn finish_and_advance(
        &self,
        updated: Updated,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Report, ConvoyError> {
        let hook = updated.release.verification.as_ref().map(|v| v.hook.clone());
        self.perform(&updated.release.key.clone(), &updated.effects, hook.as_ref()).await?;
        let stored = crate::ports::Stored { release: updated.release.clone(), version: updated.version.clone() };
        let mut report = self.finish(updated);
        if let Some(advanced) = self.advance(stored, now).await? {
            report.state = advanced.state;
            report.note = report.note.or(advanced.note);
        }
        Ok(report)
    }

    /// Reports an update and performs its effects, without starting a next stage (for
    /// transitions that end a stage for good).
    async fn finish_and_perform(&self, updated: Updated) -> Result<Report, ConvoyError> {
        let hook = updated.release.verification.as_ref().map(|v| v.hook.clone());
        self.perform(&updated.release.key.clone(), &updated.effects, hook.as_ref()).await?;
        Ok(self.finish(updated))
    }

    /// Starts the stage a ready release waits for, from the record as last stored.
    async fn advance(
        &self,
        stored: crate::ports::Stored,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let key = stored.release.key.clone();
        match stored.release.state {
            State::Ready { next: Stage::Migration } => self.start_migration(&key, now, Some(stored)).await,
            State::Ready { next: Stage::Deployment } => self.start_deployment(&key, now, Some(stored)).await,
            _ => Ok(None),
        }
    }

    /// Performs the side effects of a stored transition (stage starts are [`Convoy::advance`]'s).
    async fn perform(
        &self,
        key: &ReleaseKey,
        effects: &[Effect],
        hook: Option<&crate::release::Hook>,
    ) -> Result<(), ConvoyError> {
        for effect in effects {
            match effect {
                Effect::ReleaseDeployLock => self.release_deploy_lock(key).await?,
                Effect::StopMigration { task } => {
                    self.tasks.stop(&self.settings.cluster, task, "convoy: the migration ran past its timeout").await?;
                }
                Effect::ContinueDeployment { deployment } => {
                    let continued = match hook {
                        Some(crate::release::Hook::EcsNative { service_deployment, .. }) => {
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
                Effect::StartMigration | Effect::StartDeployment | Effect::ResolveImages { .. } => {}
            }
        }
        Ok(())
    }
}
