//! The one way a release record changes. A use case hands a stage event to [`Convoy::transition`],
//! which loads the record (or takes the one the caller just stored), applies the pure state
//! machine, writes the result conditionally (starting over from the newer record when another
//! writer got there first), and then performs what the decision asks for, in order: its effects,
//! the next stage's start among them. The state changes it stored go to the invocation's
//! [`Outbox`], published once at its end ([`Convoy::publish`]). Nothing calls back into a use case
//! with a closure: what follows a change is data in the decision.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::{Convoy, Report, release_span};
use crate::error::{ConvoyError, StoreError};
use crate::names::{ReleaseKey, ServiceName};
use crate::notify::ReleaseChange;
use crate::ports::{DeployLock, RecordVersion, Stored};
use crate::release::{Context, Decision, Effect, MigrationClaim, Release, StageEvent, State};

/// What one invocation stored, to announce once it is done: the state changes, in order.
pub(crate) struct Outbox {
    /// The invocation's time: effects performed for it take their events' times from it.
    pub now: DateTime<Utc>,
    changes: Mutex<Vec<ReleaseChange>>,
    /// What this invocation does once its own work is done, in turn ([`Convoy::publish`]).
    deferred: Mutex<std::collections::VecDeque<Deferred>>,
}

/// Work a group's release asks of its parts, done after the invocation's own, one item at a time
/// (not inside the call that asked: a part's change may open the next step, whose parts change in
/// turn, and each nested call would deepen the stack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Deferred {
    /// A part changed: its group's record is told what the part says then.
    Tell(ReleaseKey),
    /// Open these services' parts of the group's release and start their deployments.
    Open { group: ReleaseKey, services: Vec<ServiceName> },
    /// Put the part of `service` back (and the scheduled tasks the release moved for it).
    Revert { group: ReleaseKey, service: ServiceName },
    /// Move `service`'s scheduled tasks to the release's revision.
    MoveSchedules { group: ReleaseKey, service: ServiceName },
    /// Carry the release's approval to the part of `service`, verified and waiting.
    Approve { group: ReleaseKey, service: ServiceName },
}

impl Outbox {
    pub fn new(now: DateTime<Utc>) -> Self {
        Self { now, changes: Mutex::new(Vec::new()), deferred: Mutex::new(std::collections::VecDeque::new()) }
    }

    /// Notes that `part` changed: its group's record is told once this invocation's work is done.
    pub fn tell(&self, part: &ReleaseKey) {
        self.defer(Deferred::Tell(part.clone()));
    }

    /// Queues `work` (once: the same work already queued is not queued again).
    pub fn defer(&self, work: Deferred) {
        let mut deferred = self.deferred.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !deferred.contains(&work) {
            deferred.push_back(work);
        }
    }

    fn announce(&self, change: ReleaseChange) {
        self.changes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(change);
    }

    fn next_deferred(&self) -> Option<Deferred> {
        self.deferred.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop_front()
    }

    fn take(&self) -> Vec<ReleaseChange> {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

/// What a transition did to one record.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// The record as stored now (as read, when nothing changed).
    pub release: Release,
    pub version: RecordVersion,
    pub changed: bool,
    /// Why nothing changed, when nothing did.
    pub note: Option<String>,
    /// What the change asked for (performed before [`Convoy::transition`] returns).
    pub effects: Vec<Effect>,
    /// What performing them led to: the report of the stage they started.
    pub then: Option<Report>,
}

impl Outcome {
    /// The stored record, for the next transition to start from without a read.
    pub fn stored(&self) -> Stored {
        Stored { release: self.release.clone(), version: self.version.clone() }
    }

    /// What the change did and asked for, and the state that led to. A look-up of images it
    /// asked for (two pushes the event times could not order) reports what the look-up asked for.
    pub fn report(&self) -> Report {
        let looked_up = |e: &Effect| matches!(e, Effect::ResolveImages { .. });
        let requested = self.effects.iter().filter(|e| !looked_up(e)).cloned().collect();
        let mut report = Report::of(&self.release, self.changed, self.note.clone(), requested);
        if let Some(then) = &self.then {
            report.state = then.state.clone();
            report.note = report.note.or(then.note.clone());
            if self.effects.iter().any(looked_up) {
                report.requested.extend(then.requested.iter().cloned());
            }
        }
        report
    }
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

/// How many deferred items one invocation does at most (a release of twenty services, each part
/// changing a few times, stays far below it).
const MAX_DEFERRED: usize = 200;

/// How long publishing an invocation's changes may hold up its end.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

impl Convoy {
    /// What the state machine is given besides the record: the write that makes a release ready
    /// for its migration claims it with the configured lease and default timeout.
    fn context(&self, key: &ReleaseKey) -> Context {
        let claim = MigrationClaim { lease: self.config.claim_lease, timeout: self.config.migration_timeout() };
        let gated = |service: &ServiceName| self.config.services.get(service).is_some_and(|s| s.image_policy.is_some());
        // A group's release is gated when any of its services has an image policy.
        let gate = match self.config.release_groups.get(key.service.as_str()) {
            Some(members) => members.iter().any(gated),
            None => gated(&key.service),
        };
        Context { migration: Some(claim), gate }
    }

    /// Applies `event` to the release's record and stores the decision, then performs its effects.
    /// `known` is the record as the caller last stored it (a stale one costs only the conditional
    /// write it loses). `Ok(None)` when there is no record.
    pub(super) async fn transition<E: StageEvent + Sync>(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        known: Option<Stored>,
        event: &E,
    ) -> Result<Option<Outcome>, ConvoyError> {
        let Some(mut outcome) = self.decide_and_write(outbox, key, known, event).await? else { return Ok(None) };
        // Boxed: an effect may start the next stage, which transitions again.
        outcome.then = Box::pin(self.perform(outbox, &outcome)).await?;
        if outcome.changed && outcome.release.part_of.is_some() {
            // A service's part of a group's release: the group's record follows it, once this
            // invocation's work is done ([`Convoy::publish`]), from the part as stored then.
            outbox.tell(&outcome.release.key);
        }
        Ok(Some(outcome))
    }

    /// The record a caller already holds, or the stored one (`None`: no such release).
    pub(super) async fn known_or_loaded(
        &self,
        key: &ReleaseKey,
        known: Option<Stored>,
    ) -> Result<Option<Stored>, ConvoyError> {
        match known {
            Some(stored) => Ok(Some(stored)),
            None => Ok(self.store.load(key).await?),
        }
    }

    async fn decide_and_write<E: StageEvent + Sync>(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        mut known: Option<Stored>,
        event: &E,
    ) -> Result<Option<Outcome>, ConvoyError> {
        let context = self.context(key);
        let mut contention = Contention::new(key);
        loop {
            let Some(stored) = self.known_or_loaded(key, known.take()).await? else { return Ok(None) };
            match event.apply_to(&stored.release, &context)?.moving_schedules(&stored.release) {
                Decision::Unchanged { why } => {
                    tracing::info!(state = %stored.release.state, "unchanged: {why}");
                    let Stored { release, version } = stored;
                    let note = Some(why);
                    return Ok(Some(Outcome {
                        release,
                        version,
                        changed: false,
                        note,
                        effects: Vec::new(),
                        then: None,
                    }));
                }
                Decision::Changed { release, effects, passed } => match self
                    .store
                    .replace(&release, &stored.version)
                    .await
                {
                    Ok(version) => {
                        self.stored_change(outbox, &stored.release.state, &passed, &release, &effects);
                        let release = *release;
                        return Ok(Some(Outcome { release, version, changed: true, note: None, effects, then: None }));
                    }
                    Err(StoreError::Conflict) => contention.lost().await?,
                    Err(other) => return Err(other.into()),
                },
            }
        }
    }

    /// Logs a stored change and puts each change of state it went through in the outbox.
    fn stored_change(&self, outbox: &Outbox, from: &State, passed: &[Release], to: &Release, effects: &[Effect]) {
        let mut before = from;
        for step in passed.iter().chain(std::iter::once(to)) {
            if step.state != *before {
                outbox.announce(ReleaseChange::of(Some(before), step, &self.config.policy.region));
            }
            before = &step.state;
        }
        tracing::info!(state = %to.state, "release updated");
        for effect in effects {
            tracing::info!(?effect, "due");
        }
        if to.state.is_terminal() && !from.is_terminal() {
            crate::telemetry::release_ended(to);
        }
    }

    /// Stores a new record (`Release::open` or `Release::rejected`): the one write that is not a
    /// transition. `Ok(None)` when the release has a record already.
    pub(super) async fn create(&self, outbox: &Outbox, fresh: Release) -> Result<Option<Outcome>, ConvoyError> {
        match self.store.create(&fresh).await {
            Ok(version) => {
                tracing::info!(state = %fresh.state, "release record created");
                outbox.announce(ReleaseChange::of(None, &fresh, &self.config.policy.region));
                crate::telemetry::release_started(&fresh.key);
                if fresh.state.is_terminal() {
                    crate::telemetry::release_ended(&fresh);
                }
                Ok(Some(Outcome {
                    release: fresh,
                    version,
                    changed: true,
                    note: None,
                    effects: Vec::new(),
                    then: None,
                }))
            }
            Err(StoreError::AlreadyExists) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Performs a stored transition's effects, in order; the report of a stage one started.
    pub(super) async fn perform(&self, outbox: &Outbox, outcome: &Outcome) -> Result<Option<Report>, ConvoyError> {
        let key = &outcome.release.key;
        let now = outbox.now;
        let mut then = None;
        for effect in &outcome.effects {
            match effect {
                Effect::StartMigration => {
                    let claimed = outcome.release.state == State::StartingMigration;
                    then = Box::pin(self.start_migration_in(outbox, key, Some(outcome.stored()), claimed, now)).await?;
                }
                Effect::StartDeployment => {
                    then = Box::pin(self.start_deployment_in(outbox, key, Some(outcome.stored()), now)).await?;
                }
                Effect::JudgeImages => {
                    then = Box::pin(self.judge_images(outbox, key, Some(outcome.stored()), now)).await?;
                }
                Effect::ResolveImages { images } => {
                    then = Box::pin(self.resolve_images(outbox, key, images, now, None)).await?;
                }
                Effect::AnswerHook { deployment, execution, succeeded } => {
                    self.codedeploy.answer_hook(deployment, execution, *succeeded).await?;
                }
                Effect::ContinueDeployment { deployment } | Effect::RollBack { deployment } => {
                    let roll_back = matches!(effect, Effect::RollBack { .. });
                    self.steer_as_convoy(&outcome.release, deployment, roll_back).await;
                }
                // A part's lock is its group's release's: freed once that one ends.
                Effect::ReleaseDeployLock if outcome.release.part_of.is_some() => {}
                Effect::ReleaseDeployLock => Box::pin(self.free_lock_of(outbox, key, &key.service, now)).await?,
                Effect::TakeServiceLocks => {
                    then = Box::pin(self.take_service_locks_in(outbox, key, Some(outcome.stored()), now)).await?;
                }
                Effect::OpenServices { services } => {
                    outbox.defer(Deferred::Open { group: key.clone(), services: services.clone() });
                }
                Effect::RevertService { service } => {
                    outbox.defer(Deferred::Revert { group: key.clone(), service: service.clone() });
                }
                Effect::MoveSchedules { service } if self.config.move_scheduled_tasks => {
                    outbox.defer(Deferred::MoveSchedules { group: key.clone(), service: service.clone() });
                }
                Effect::MoveSchedules { service } => {
                    tracing::info!(%service, "scheduled tasks are not moved: CONVOY_MOVE_SCHEDULED_TASKS is not set");
                }
                Effect::ApproveWithRelease { service } => {
                    outbox.defer(Deferred::Approve { group: key.clone(), service: service.clone() });
                }
                Effect::ReleaseServiceLocks => {
                    Box::pin(self.release_service_locks(outbox, &outcome.release, now)).await?
                }
                Effect::PutBack => {
                    then = Box::pin(self.put_back_in(outbox, key, now)).await?;
                }
                Effect::StopMigration { task } => {
                    self.tasks.stop(&self.config.cluster, task, "convoy: the migration ran past its timeout").await?;
                }
                Effect::CopyMigrationLogs { log } => self.copy_migration_logs(outbox, key, log, now).await,
                Effect::FindApprover { deployment, approve, since } => {
                    self.find_approver(outbox, key, deployment, *approve, *since, now).await
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
            }
        }
        Ok(then)
    }

    /// Frees the service's deploy lock if this release holds it, and starts the newest release
    /// queued behind it at once rather than at the reconciler's next run. Its start is claimed as
    /// any other, so a concurrent reconciler starts it only once; a failure to start it is logged
    /// and left to the reconciler, so the event that ended the holder is not retried for another
    /// release's sake.
    pub(super) async fn free_lock_of(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        service: &ServiceName,
        now: DateTime<Utc>,
    ) -> Result<(), ConvoyError> {
        let freed = self
            .change_lock_of(key, service, |lock| {
                let freed = lock.release(&key.release);
                (freed.clone(), freed)
            })
            .await?;
        if let Some(waiting) = freed.and_then(|lock| lock.newest_waiting) {
            // A group's release waits under its group's name.
            let next = ReleaseKey::new(waiting.group.unwrap_or_else(|| service.clone()), waiting.release);
            let started = Box::pin(self.start_deployment_in(outbox, &next, None, now)).instrument(release_span(&next));
            match started.await {
                Ok(report) => tracing::info!(state = ?report.map(|r| r.state), "the queued release was started"),
                Err(err) => {
                    tracing::warn!(error = %err, "the queued release could not start now; the reconciler retries")
                }
            }
        }
        Ok(())
    }

    /// Publishes the state changes an invocation stored, once, at its end. Never fails: a lost
    /// event is logged with the release ids, and the records stay the truth. Bounded, so that
    /// EventBridge never holds up an invocation by more than [`PUBLISH_TIMEOUT`].
    pub(super) async fn publish(&self, outbox: Outbox) {
        // Boxed: the deferred work transitions records, and every use case ends here.
        Box::pin(self.settle(&outbox)).await;
        let changes = outbox.take();
        if changes.is_empty() {
            return;
        }
        let releases: Vec<String> = changes.iter().map(|c| format!("{}/{}", c.service, c.release)).collect();
        match tokio::time::timeout(PUBLISH_TIMEOUT, self.events.publish(&changes)).await {
            Ok(Ok(())) => tracing::debug!(?releases, published = changes.len(), "release events published"),
            Ok(Err(err)) => tracing::warn!(
                ?releases,
                lost = changes.len(),
                retryable = err.is_retryable(),
                "release events lost: {err}"
            ),
            Err(_) => tracing::warn!(
                ?releases,
                lost = changes.len(),
                "release events lost: EventBridge did not answer within {PUBLISH_TIMEOUT:?}"
            ),
        }
    }

    /// Does the work this invocation deferred ([`Deferred`]), in turn, until none is left; what
    /// each item leads to is queued behind it. Bounded; an item that fails is logged, and the
    /// reconciler's visit of the group's release does it again (`observe_parts`).
    async fn settle(&self, outbox: &Outbox) {
        for _ in 0..MAX_DEFERRED {
            let Some(work) = outbox.next_deferred() else { return };
            let done = match &work {
                Deferred::Tell(part) => Box::pin(self.tell_group(outbox, part, outbox.now)).await,
                Deferred::Open { group, services } => {
                    Box::pin(self.open_services_in(outbox, group, services, outbox.now)).await
                }
                Deferred::Revert { group, service } => {
                    Box::pin(self.revert_part_in(outbox, group, service, outbox.now)).await
                }
                Deferred::MoveSchedules { group, service } => {
                    Box::pin(self.move_schedules_in(outbox, group, service, outbox.now)).await
                }
                Deferred::Approve { group, service } => {
                    Box::pin(self.approve_part_in(outbox, group, service, outbox.now)).await
                }
            };
            if let Err(err) = done {
                tracing::warn!(?work, error = %err, "deferred work failed; the reconciler's visit does it again");
            }
        }
        tracing::warn!(
            limit = MAX_DEFERRED,
            "more work deferred than one invocation does; the reconciler does the rest"
        );
    }

    /// Applies `change` to the service's deploy lock with conditional writes (re-read on conflict).
    /// `change` answers what to report and the lock to store, if it changed.
    pub(super) async fn change_lock<T>(
        &self,
        key: &ReleaseKey,
        change: impl Fn(&DeployLock) -> (T, Option<DeployLock>),
    ) -> Result<T, ConvoyError> {
        self.change_lock_of(key, &key.service, change).await
    }

    /// [`Convoy::change_lock`] on `service`'s lock, for release `key` (a group's release takes
    /// the lock of each of its services).
    pub(super) async fn change_lock_of<T>(
        &self,
        key: &ReleaseKey,
        service: &ServiceName,
        change: impl Fn(&DeployLock) -> (T, Option<DeployLock>),
    ) -> Result<T, ConvoyError> {
        let mut contention = Contention::new(key);
        loop {
            let stored = self.locks.load(service).await?;
            let (current, version) = match &stored {
                Some((lock, version)) => (lock.clone(), Some(version)),
                None => (DeployLock::default(), None),
            };
            let (answer, next) = change(&current);
            let Some(next) = next else { return Ok(answer) };
            let written = match version {
                Some(version) => self.locks.replace(service, &next, version).await,
                None => self.locks.create(service, &next).await,
            };
            match written {
                Ok(_) => return Ok(answer),
                Err(StoreError::Conflict | StoreError::AlreadyExists) => contention.lost().await?,
                Err(err) => return Err(err.into()),
            }
        }
    }
}
