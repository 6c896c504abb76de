//! The use cases: what Convoy does with each event, over the ports. Handlers translate events into
//! calls here; the state machine decides; this layer stores decisions and performs their effects.

mod migration;
mod readiness;
mod reconcile;

pub use self::migration::{migration_group, started_by};

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use self::readiness::Settings;
use crate::error::{ConvoyError, StoreError};
use crate::names::ReleaseKey;
use crate::ports::{ActiveReleases, ManifestReader, Registry, ReleaseStore, Tasks, WaitList};
use crate::release::{Decision, Effect, Release, Stage, State, TransitionError};

/// Convoy's use cases, wired to one set of ports.
#[derive(Clone)]
pub struct Convoy {
    pub store: Arc<dyn ReleaseStore>,
    pub waits: Arc<dyn WaitList>,
    pub manifests: Arc<dyn ManifestReader>,
    pub registry: Arc<dyn Registry>,
    pub tasks: Arc<dyn Tasks>,
    pub active: Arc<dyn ActiveReleases>,
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
    changed: bool,
    effects: Vec<Effect>,
    note: Option<String>,
}

/// How often one update re-reads and re-applies after losing a conditional write. Far above what
/// ten handlers writing one record at once need, and still bounded so a Lambda never spins.
const MAX_ATTEMPTS: u32 = 30;

/// Reads the record, lets `decide` apply the event, and stores the result with a conditional
/// write; when another writer got there first, it starts over from the newer record. Returns
/// `None` when there is no record.
async fn update(
    store: &dyn ReleaseStore,
    key: &ReleaseKey,
    mut decide: impl FnMut(&Release) -> Result<Decision, TransitionError>,
) -> Result<Option<Updated>, ConvoyError> {
    for attempt in 1..=MAX_ATTEMPTS {
        let Some(stored) = store.load(key).await? else { return Ok(None) };
        match decide(&stored.release)? {
            Decision::Unchanged { why } => {
                return Ok(Some(Updated {
                    release: stored.release,
                    changed: false,
                    effects: Vec::new(),
                    note: Some(why),
                }));
            }
            Decision::Changed { release, effects } => match store.replace(&release, &stored.version).await {
                Ok(_) => return Ok(Some(Updated { release: *release, changed: true, effects, note: None })),
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
        let Updated { release, changed, effects, note } = updated;
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
        let key = updated.release.key.clone();
        let state = updated.release.state.clone();
        let mut report = self.finish(updated);
        if let Some(advanced) = self.advance(&key, &state, now).await? {
            report.state = advanced.state;
            report.note = report.note.or(advanced.note);
        }
        Ok(report)
    }

    /// Starts the stage a ready release waits for.
    async fn advance(
        &self,
        key: &ReleaseKey,
        state: &State,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        match state {
            State::Ready { next: Stage::Migration } => self.start_migration(key, now).await,
            State::Ready { next: Stage::Deployment } => {
                tracing::info!("the deployment is due; starting deployments is not built yet (issue 4)");
                Ok(None)
            }
            _ => Ok(None),
        }
    }
}
