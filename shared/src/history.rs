//! What went live for a service, and when: read from the service's own records
//! (`state/<service>/`: its releases and its parts of group releases), with no index of its own.
//!
//! A release went live when its deployment ended `Succeeded` (its state stays `Succeeded` for
//! good: a newer release replacing it writes nothing to it), at `deployment.ended_at`. It stayed
//! live until the next release of the service went live, or until a group's failure put its
//! service back on the revision it ran before (`deployment.put_back`, `ecs-rolling` parts).
//! [`history`] derives that from loaded records, purely; [`load`] pages through the records with
//! [`ServiceRecords`] (one listing per 1,000 keys, newest written first) and stops reading as
//! soon as no unread record can have gone live later than the ones asked for.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use futures_util::{StreamExt, stream};
use serde::Serialize;

use crate::error::StoreError;
use crate::names::{ReleaseId, ReleaseKey, ServiceName};
use crate::ports::{ListedRecord, ReleaseStore, ServiceRecords};
use crate::release::{DeployMethod, DeploymentEnd, Release, State};

/// How far a record's own times may run ahead of S3's `LastModified` of its write (the writer's
/// clock against S3's): a record written at `t` went live at `t + CLOCK_SLACK` at the latest.
pub const CLOCK_SLACK: Duration = Duration::minutes(5);

/// How many records [`load`] reads at once.
pub const CONCURRENT_READS: usize = 16;

/// One release that went live for the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WentLive {
    /// `<service>/<release>`: the release's record, or the service's part of a group release.
    pub key: ReleaseKey,
    /// The group release this is the service's part of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_of: Option<ReleaseKey>,
    /// When its deployment ended `Succeeded`.
    pub at: DateTime<Utc>,
    /// When it stopped being live: the next release went live, or it was put back. `None`: live
    /// now, as far as the records say.
    pub until: Option<DateTime<Utc>>,
    pub method: Option<DeployMethod>,
    /// The task definition revision it deployed.
    pub task_definition: Option<String>,
    /// Each container's image, pinned by digest (`<registry>/<repository>@sha256:…`).
    pub images: BTreeMap<String, String>,
    pub migration: Migration,
    /// Who approved the traffic shift, as the record attributes it (CloudTrail's principal,
    /// `policy (auto)`, or why it is not known).
    pub approved_by: Option<String>,
    /// Who uploaded its manifest, as the trail's log files name them (`crate::submitter`), or why
    /// that is not known; `None` for a group's part (its group's record says) and older records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
    pub outcome: Outcome,
}

impl WentLive {
    /// How long it was live (until `now` when it still is).
    pub fn live_for(&self, now: DateTime<Utc>) -> Duration {
        self.until.unwrap_or(now) - self.at
    }
}

/// What the release's migration did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Migration {
    /// The manifest declared none.
    None,
    /// It ran: its task's exit code (none when the task had no exit code) and when it stopped.
    Ran { exit_code: Option<i32>, stopped_at: Option<DateTime<Utc>> },
    /// A part of a group release: the group's record holds the one migration of the release.
    OfGroup { release: ReleaseKey },
}

impl std::fmt::Display for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Migration::None => f.write_str("none"),
            Migration::Ran { exit_code: Some(code), .. } => write!(f, "exit {code}"),
            Migration::Ran { exit_code: None, .. } => f.write_str("ran (no exit code)"),
            Migration::OfGroup { release } => write!(f, "in {release}"),
        }
    }
}

/// What became of a release that went live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Outcome {
    /// Production runs it now (as far as the records say; [`crate::ports::Tasks::service_shape`]
    /// says what ECS runs).
    LiveNow,
    /// Live again since `since`: the newer releases that replaced it were put back.
    LiveAgain { since: DateTime<Utc> },
    /// The next release of the service to go live replaced it.
    ReplacedBy { release: ReleaseId },
    /// The next release to go live was a rollback of it (`convoy rollback`), to `to`.
    RolledBackBy { release: ReleaseId, to: ReleaseId },
    /// A group release it was part of failed later, and its service was put back on the revision
    /// it ran before, at `at`.
    PutBack { at: DateTime<Utc> },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::LiveNow => f.write_str("live now"),
            Outcome::LiveAgain { since } => write!(f, "live again since {}", since.to_rfc3339()),
            Outcome::ReplacedBy { release } => write!(f, "replaced by {release}"),
            Outcome::RolledBackBy { release, to } => write!(f, "rolled back to {to} by {release}"),
            Outcome::PutBack { at } => write!(f, "put back at {}", at.to_rfc3339()),
        }
    }
}

/// When `release` went live: its deployment's successful end (the `succeeded` timeline entry for
/// a record that lacks it). `None`: it never went live.
pub fn went_live_at(release: &Release) -> Option<DateTime<Utc>> {
    // A group's own record ends Succeeded too, but only its parts deployed anything.
    if release.state != State::Succeeded || release.group.is_some() {
        return None;
    }
    let run = release.deployment.as_ref();
    run.filter(|r| r.end == Some(DeploymentEnd::Succeeded))
        .and_then(|r| r.ended_at)
        .or_else(|| release.timeline.iter().rev().find(|e| e.event == "succeeded").map(|e| e.at))
}

/// The releases of `service` that went live, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct History {
    pub service: ServiceName,
    pub releases: Vec<WentLive>,
}

impl History {
    /// The release live now: the newest that went live and was not put back.
    pub fn live_now(&self) -> Option<&WentLive> {
        self.releases.iter().find(|r| matches!(r.outcome, Outcome::LiveNow | Outcome::LiveAgain { .. }))
    }

    /// The release that was live before the one live now (what `convoy rollback` returns to).
    pub fn live_before(&self) -> Option<&WentLive> {
        let now = self.live_now()?;
        self.releases
            .iter()
            .filter(|r| r.at < now.at && !matches!(r.outcome, Outcome::PutBack { .. }))
            .max_by_key(|r| r.at)
    }

    /// The release that deployed `task_definition`, if one that went live did.
    pub fn deployed(&self, task_definition: &str) -> Option<&WentLive> {
        self.releases.iter().find(|r| r.task_definition.as_deref() == Some(task_definition))
    }
}

/// The history of `service` from its records (any order; records of other services and releases
/// that never went live are left out).
pub fn history(service: &ServiceName, records: &[Release]) -> History {
    let mut live: Vec<(DateTime<Utc>, &Release)> = records
        .iter()
        .filter(|r| r.key.service == *service)
        .filter_map(|r| went_live_at(r).map(|at| (at, r)))
        .collect();
    live.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.key.release.cmp(&y.key.release)));
    let mut releases: Vec<WentLive> = Vec::with_capacity(live.len());
    // Oldest first: each one's end is the next one's start (or its put back, if earlier).
    for (i, (at, release)) in live.iter().enumerate() {
        let next = live.get(i + 1);
        let put_back = put_back_at(release).filter(|p| next.is_none_or(|(n, _)| p < n));
        let (until, outcome) = match (put_back, next) {
            (Some(p), _) => (Some(p), Outcome::PutBack { at: p }),
            (None, Some((n, newer))) => (Some(*n), replaced(release, newer)),
            (None, None) => (None, Outcome::LiveNow),
        };
        releases.push(entry(release, *at, until, outcome));
    }
    // Newer releases all put back: the newest one before them runs again.
    let tail_put_back: Vec<DateTime<Utc>> = releases
        .iter()
        .rev()
        .map_while(|r| match r.outcome {
            Outcome::PutBack { at } => Some(at),
            _ => None,
        })
        .collect();
    if !tail_put_back.is_empty() {
        let back = releases.len() - tail_put_back.len();
        if let Some(again) = back.checked_sub(1).and_then(|i| releases.get_mut(i)) {
            let since = tail_put_back.iter().max().copied().unwrap_or(again.at);
            again.until = None;
            again.outcome = Outcome::LiveAgain { since };
        }
    }
    releases.reverse();
    History { service: service.clone(), releases }
}

/// What `newer`, the next release to go live, did to `release`: a rollback of it, or a release.
fn replaced(release: &Release, newer: &Release) -> Outcome {
    match &newer.rollback {
        Some(rollback) if rollback.of == release.key.release => {
            Outcome::RolledBackBy { release: newer.key.release.clone(), to: rollback.to.clone() }
        }
        _ => Outcome::ReplacedBy { release: newer.key.release.clone() },
    }
}

fn put_back_at(release: &Release) -> Option<DateTime<Utc>> {
    release.deployment.as_ref()?.put_back.as_ref()?.done_at
}

fn entry(release: &Release, at: DateTime<Utc>, until: Option<DateTime<Utc>>, outcome: Outcome) -> WentLive {
    let migration = match (&release.part_of, &release.migration) {
        (Some(group), _) => Migration::OfGroup { release: group.clone() },
        (None, Some(run)) => Migration::Ran { exit_code: run.exit_code, stopped_at: run.stopped_at },
        (None, None) => Migration::None,
    };
    WentLive {
        key: release.key.clone(),
        part_of: release.part_of.clone(),
        at,
        until,
        method: release.deployment.as_ref().map(|r| r.method),
        task_definition: release.deployment.as_ref().and_then(|r| r.task_definition.clone()),
        images: release.pinned_uris().into_iter().collect(),
        migration,
        approved_by: release.approval.as_ref().filter(|a| a.approved).map(|a| a.by.clone()),
        submitted_by: release.submitter.as_ref().map(|submitter| match submitter {
            crate::submitter::Submitter::Found(uploader) => uploader.principal_arn.clone(),
            other => other.describe(),
        }),
        outcome,
    }
}

/// A service's history as [`load`] read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub history: History,
    /// Records listed under the service's prefix, and how many were read.
    pub listed: usize,
    pub read: usize,
    /// Records that could not be read, with why: left out, never fatal.
    pub unreadable: Vec<(ReleaseKey, String)>,
    /// Every record read (the releases that went live and the others), for callers that need
    /// more than the history (a release deploying now, what a revision belongs to).
    pub records: Vec<Release>,
}

/// Reads the history of `service`: every release that went live, or (`newest: Some(n)`) at
/// least the `n` newest that were not put back, and every one newer, exactly as [`history`] over
/// all its records would give them (so the one live now is among them). Records
/// are read newest written first, [`CONCURRENT_READS`] at a time; reading stops once the `n`th
/// newest release that went live went live after every unread record was last written (a record
/// cannot have gone live after its last write, [`CLOCK_SLACK`] aside).
///
/// # Errors
/// [`StoreError::Unavailable`] when the listing or a read fails (a retry may help); a record
/// that cannot be parsed is left out and named in [`Loaded::unreadable`].
pub async fn load(
    listing: &dyn ServiceRecords,
    store: &dyn ReleaseStore,
    service: &ServiceName,
    newest: Option<usize>,
) -> Result<Loaded, StoreError> {
    let mut listed: Vec<ListedRecord> = Vec::new();
    let mut token = None;
    loop {
        let page = listing.record_page(service, token.take()).await?;
        listed.extend(page.records);
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    listed.sort_by(|a, b| b.written_at.cmp(&a.written_at).then_with(|| b.key.cmp(&a.key)));
    let mut records = Vec::new();
    let mut unreadable = Vec::new();
    let mut read = 0;
    for chunk in listed.chunks(CONCURRENT_READS) {
        if let (Some(n), Some(first)) = (newest, chunk.first())
            && enough(&records, n, first.written_at)
        {
            break;
        }
        // Owned keys: a future borrowing the listing is not `Send` for every lifetime (axum needs it).
        let keys: Vec<ReleaseKey> = chunk.iter().map(|l| l.key.clone()).collect();
        let loaded: Vec<(ReleaseKey, Result<_, StoreError>)> = stream::iter(keys)
            .map(|key| async move {
                let result = store.load(&key).await;
                (key, result)
            })
            .buffered(CONCURRENT_READS)
            .collect()
            .await;
        for (key, result) in loaded {
            read += 1;
            match result {
                Ok(Some(stored)) => records.push(stored.release),
                Ok(None) => {} // deleted since it was listed
                Err(StoreError::Corrupt { detail, .. }) => unreadable.push((key, detail.to_string())),
                Err(other) => return Err(other),
            }
        }
    }
    let mut history = history(service, &records);
    if let Some(n) = newest {
        // Older entries may miss a record not read (the one that replaced them): not shown.
        let mut kept = 0;
        history.releases.retain(|r| {
            let keep = kept < n;
            kept += usize::from(keep && !matches!(r.outcome, Outcome::PutBack { .. }));
            keep
        });
    }
    Ok(Loaded { history, listed: listed.len(), read, unreadable, records })
}

/// Whether `records` hold the `n` newest releases that went live, given that no unread record was
/// written after `unread_written`.
fn enough(records: &[Release], n: usize, unread_written: DateTime<Utc>) -> bool {
    if n == 0 {
        return true;
    }
    let mut times: Vec<DateTime<Utc>> =
        records.iter().filter(|r| put_back_at(r).is_none()).filter_map(went_live_at).collect();
    times.sort_unstable_by(|a, b| b.cmp(a));
    let Some(latest) = unread_written.checked_add_signed(CLOCK_SLACK) else { return false };
    times.get(n - 1).is_some_and(|nth| *nth > latest)
}

/// What ECS runs for the service now, against what the records say is live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LiveCheck {
    /// ECS runs the revision the release live now deployed.
    Confirmed,
    /// ECS runs the revision of a release of Convoy that deploys now (its `state`): a rolling
    /// update replaces the tasks before the release ends.
    Deploying { release: ReleaseKey, state: String },
    /// ECS runs a revision the release live now did not deploy: someone updated the service by
    /// hand, or another tool deployed it. `earlier`: the (older) release of Convoy that deployed
    /// that revision, if one among those read did.
    ChangedOutsideConvoy {
        task_definition: String,
        since: Option<DateTime<Utc>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        earlier: Option<ReleaseKey>,
    },
    /// ECS could not be asked (no such service, ECS unavailable): `why`.
    NotAsked { why: String },
}

impl std::fmt::Display for LiveCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LiveCheck::Confirmed => f.write_str("confirmed by ECS"),
            LiveCheck::Deploying { release, state } => write!(f, "ECS runs {release}'s revision: {state}"),
            LiveCheck::ChangedOutsideConvoy { task_definition, since, earlier } => {
                write!(f, "changed outside Convoy: {}", revision_of(task_definition))?;
                if let Some(earlier) = earlier {
                    write!(f, " (the revision of {earlier})")?;
                }
                match since {
                    Some(at) => {
                        write!(f, ", started by ECS at {}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    }
                    None => f.write_str(", ECS does not say since when"),
                }
            }
            LiveCheck::NotAsked { why } => write!(f, "not confirmed: {why}"),
        }
    }
}

/// `family:revision` of a task definition ARN (or the text as it is).
pub fn revision_of(task_definition: &str) -> &str {
    task_definition.rsplit_once("task-definition/").map_or(task_definition, |(_, revision)| revision)
}

/// What ECS's `running` (from [`crate::ports::Tasks::service_shape`]) says of `history`: the live
/// release's revision, that of one of `records` deploying now, or another.
pub fn check(history: &History, records: &[Release], running: &crate::ports::ServiceShape) -> LiveCheck {
    let runs = revision_of(&running.task_definition);
    let deployed = |r: &Release| {
        r.deployment.as_ref().and_then(|d| d.task_definition.as_deref()).is_some_and(|t| revision_of(t) == runs)
    };
    if history.live_now().and_then(|l| l.task_definition.as_deref()).is_some_and(|t| revision_of(t) == runs) {
        return LiveCheck::Confirmed;
    }
    // The newest first: a revision deployed twice (a rollback) belongs to its newest release.
    let mut convoy: Vec<&Release> =
        records.iter().filter(|r| r.key.service == history.service && deployed(r)).collect();
    convoy.sort_by_key(|r| std::cmp::Reverse(r.opened_at()));
    match convoy.first() {
        Some(release) if !release.state.is_terminal() => {
            LiveCheck::Deploying { release: release.key.clone(), state: release.state.to_string() }
        }
        earlier => LiveCheck::ChangedOutsideConvoy {
            task_definition: running.task_definition.clone(),
            since: running.since,
            earlier: earlier.map(|r| r.key.clone()),
        },
    }
}

/// A service's live release, confirmed with ECS.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub loaded: Loaded,
    pub check: LiveCheck,
}

/// Reads what is live for `service` (its newest releases: [`load`] with `Some(2)`, so the one
/// before is known too) and asks ECS what the service runs (`DescribeServices` in `cluster`).
///
/// # Errors
/// As [`load`]; ECS's failure is not one: it is [`LiveCheck::NotAsked`].
pub async fn live(
    listing: &dyn ServiceRecords,
    store: &dyn ReleaseStore,
    tasks: &dyn crate::ports::Tasks,
    cluster: &str,
    service: &ServiceName,
) -> Result<Live, StoreError> {
    live_newest(listing, store, tasks, cluster, service, 2).await
}

/// [`live`], with the `newest` releases that went live (at least 1) in its history.
///
/// # Errors
/// As [`live`].
pub async fn live_newest(
    listing: &dyn ServiceRecords,
    store: &dyn ReleaseStore,
    tasks: &dyn crate::ports::Tasks,
    cluster: &str,
    service: &ServiceName,
    newest: usize,
) -> Result<Live, StoreError> {
    let loaded = load(listing, store, service, Some(newest.max(1))).await?;
    let check = match tasks.service_shape(cluster, service.as_str()).await {
        Ok(running) => check(&loaded.history, &loaded.records, &running),
        Err(err) => LiveCheck::NotAsked { why: err.to_string() },
    };
    Ok(Live { loaded, check })
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
