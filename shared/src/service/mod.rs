//! The use cases: what Convoy does with each event, over the ports. Handlers translate events into
//! calls here; the state machine decides; this layer stores decisions and performs their effects.

mod advance;
mod approval;
mod decide;
mod deploy;
mod gates;
mod lost_manifests;
mod migration;
mod native;
mod readiness;
mod reconcile;
mod verification;

pub use self::native::{BLUE_GREEN_STRATEGIES, check_native_service};
pub use self::reconcile::{CONCURRENT_VISITS, Reconciliation};
pub use self::verification::{HookAnswer, HookReply, OUT_OF_TIME_NOTE_LIMIT};

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::error::{ConvoyError, StoreError};
use crate::names::ReleaseKey;
use crate::ports::{
    ActiveReleases, ApiCalls, DeployLock, DeployLocks, Deployer, DeploymentIndex, ManifestReader, MigrationLogs,
    Pipelines, Prober, RecordVersion, Registry, ReleaseDefinitions, ReleaseEvents, ReleaseStore, Stored, Tasks,
    WaitList,
};
use crate::release::{Decision, Effect, Release, State, TransitionError};

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
    /// Where each stored state change is announced (best effort, after the write).
    pub events: Arc<dyn ReleaseEvents>,
    /// The migration's log: the last lines of a failed one are copied into its record.
    pub logs: Arc<dyn MigrationLogs>,
    /// CloudWatch: metric checks and alarm gates.
    pub watch: Arc<dyn crate::ports::Watch>,
    /// CloudTrail's event history: who approved, when no CloudTrail event named them.
    pub api_calls: Arc<dyn ApiCalls>,
    pub config: Config,
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
    version: RecordVersion,
    changed: bool,
    effects: Vec<Effect>,
    note: Option<String>,
}

/// How often one conditional write is tried again after losing to another writer. Far above what
/// ten handlers writing one object at once need, and still bounded so a Lambda never spins.
pub(crate) const MAX_ATTEMPTS: u32 = 30;

/// Paces the retries of one conditional write (a record or a deploy lock): after each lost write
/// the caller re-reads, re-decides and tries again, until [`MAX_ATTEMPTS`].
struct Contention<'a> {
    key: &'a ReleaseKey,
    lost: u32,
}

impl<'a> Contention<'a> {
    fn new(key: &'a ReleaseKey) -> Self {
        Self { key, lost: 0 }
    }

    /// A write was lost: waits a little (jitter spreads writers that collided so they do not
    /// collide again), or gives up once the attempts are spent.
    async fn lost(&mut self) -> Result<(), ConvoyError> {
        self.lost += 1;
        if self.lost >= MAX_ATTEMPTS {
            return Err(ConvoyError::Contention(self.key.clone(), MAX_ATTEMPTS));
        }
        tracing::debug!(release = %self.key, attempt = self.lost, "lost a conditional write; re-reading");
        let ceiling = 5 + 10 * u64::from(self.lost.min(10));
        tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=ceiling))).await;
        Ok(())
    }
}

/// Reads the record, lets `decide` apply the event, and stores the result with a conditional
/// write; when another writer got there first, it starts over from the newer record. Returns
/// `None` when there is no record. Every stored change of state is then announced
/// ([`Convoy::announce`]): all record writes but the creation pass here.
async fn update(
    convoy: &Convoy,
    key: &ReleaseKey,
    decide: impl FnMut(&Release) -> Result<Decision, TransitionError>,
) -> Result<Option<Updated>, ConvoyError> {
    update_from(convoy, key, None, decide).await
}

/// [`update`], starting from a record the caller already holds (it just wrote it): one read
/// fewer. A stale `known` costs nothing but the conditional write it loses.
async fn update_from(
    convoy: &Convoy,
    key: &ReleaseKey,
    mut known: Option<Stored>,
    mut decide: impl FnMut(&Release) -> Result<Decision, TransitionError>,
) -> Result<Option<Updated>, ConvoyError> {
    let store: &dyn ReleaseStore = convoy.store.as_ref();
    let mut contention = Contention::new(key);
    loop {
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
                    convoy.announce(Some(&stored.release.state), &release).await;
                    return Ok(Some(Updated { release: *release, version, changed: true, effects, note: None }));
                }
                Err(StoreError::Conflict) => contention.lost().await?,
                Err(other) => return Err(other.into()),
            },
        }
    }
}

/// The span every log line about one release is written in: it names the service and release.
pub fn release_span(key: &ReleaseKey) -> tracing::Span {
    tracing::info_span!("release", service = %key.service, release = %key.release)
}

/// How long announcing one change may hold up the handler that made it.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(2);

impl Convoy {
    /// Publishes a stored change of state (`from` is `None` when the write created the record).
    /// Called only after the write succeeded; never fails: a lost event is logged with the
    /// release id and the record stays the truth. Writes that keep the state (a probe recorded,
    /// an image pinned while others are awaited) are not announced.
    pub(crate) async fn announce(&self, from: Option<&State>, to: &Release) {
        if from == Some(&to.state) {
            return;
        }
        let change = crate::notify::ReleaseChange::of(from, to, &self.config.policy.region);
        match tokio::time::timeout(ANNOUNCE_TIMEOUT, self.events.publish(&change)).await {
            Ok(Ok(())) => tracing::debug!(release = %to.key, to = %change.to, "release event published"),
            Ok(Err(err)) => tracing::warn!(
                release = %to.key, from = ?change.from, to = %change.to, retryable = err.is_retryable(),
                "release event lost: {err}"
            ),
            Err(_) => tracing::warn!(
                release = %to.key, from = ?change.from, to = %change.to,
                "release event lost: EventBridge did not answer within {ANNOUNCE_TIMEOUT:?}"
            ),
        }
    }

    /// Logs what an update did and turns it into a report.
    fn finish(&self, updated: Updated) -> Report {
        let Updated { release, changed, effects, note, .. } = updated;
        if changed && release.state.is_terminal() {
            crate::telemetry::release_ended(&release);
        }
        match &note {
            Some(note) => tracing::info!(state = %release.state, "unchanged: {note}"),
            None => tracing::info!(state = %release.state, "release updated"),
        }
        for effect in &effects {
            tracing::info!(?effect, "due");
        }
        Report::of(&release, changed, note, effects)
    }

    /// Applies `change` to the service's deploy lock with conditional writes (re-read on conflict).
    /// `change` answers what to report and the lock to store, if it changed.
    async fn change_lock<T>(
        &self,
        key: &ReleaseKey,
        change: impl Fn(&DeployLock) -> (T, Option<DeployLock>),
    ) -> Result<T, ConvoyError> {
        let mut contention = Contention::new(key);
        loop {
            let stored = self.locks.load(&key.service).await?;
            let (current, version) = match &stored {
                Some((lock, version)) => (lock.clone(), Some(version)),
                None => (DeployLock::default(), None),
            };
            let (answer, next) = change(&current);
            let Some(next) = next else { return Ok(answer) };
            let written = match version {
                Some(version) => self.locks.replace(&key.service, &next, version).await,
                None => self.locks.create(&key.service, &next).await,
            };
            match written {
                Ok(_) => return Ok(answer),
                Err(StoreError::Conflict | StoreError::AlreadyExists) => contention.lost().await?,
                Err(err) => return Err(err.into()),
            }
        }
    }
}
