//! The use cases: what Convoy does with each event, over the ports. Handlers translate events into
//! calls here; the state machine decides; this layer stores decisions and performs their effects.

mod readiness;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use self::readiness::Settings;
use crate::error::{ConvoyError, StoreError};
use crate::names::ReleaseKey;
use crate::ports::{ManifestReader, Registry, ReleaseStore, WaitList};
use crate::release::{Decision, Effect, Release, TransitionError};

/// Convoy's use cases, wired to one set of ports.
#[derive(Clone)]
pub struct Convoy {
    pub store: Arc<dyn ReleaseStore>,
    pub waits: Arc<dyn WaitList>,
    pub manifests: Arc<dyn ManifestReader>,
    pub registry: Arc<dyn Registry>,
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
