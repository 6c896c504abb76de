//! The migration stage of the state machine: claim → started → stopped (exit 0 → ready for
//! deployment; anything else → failed with the evidence), with a timeout the reconciler enforces.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{Context, Decision, Effect, Release, Stage, StageEvent, State, TransitionError};
use crate::names::TaskArn;

/// The migration stage's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A handler claims the start of the migration. A claim older than `lease` may be taken over:
    /// its holder is presumed dead. `timeout` bounds the migration's run unless the manifest sets
    /// its own.
    Claimed { at: DateTime<Utc>, lease: Duration, timeout: Duration },
    /// The migration task was started (or found, when a crashed holder had started it).
    Started { task: TaskArn, task_definition: String, log: Option<LogPointer>, at: DateTime<Utc> },
    /// The migration cannot be started: the service, its task definition or a container is not
    /// what the manifest needs. Bad input: the release ends.
    Impossible { reason: String, at: DateTime<Utc> },
    /// ECS reported a state of a task in this release's migration group.
    TaskChanged { report: TaskReport, at: DateTime<Utc> },
    /// The reconciler saw the migration still running at `at`.
    Overdue { at: DateTime<Utc> },
    /// The last lines of the failed migration's log were read (effect `CopyMigrationLogs`).
    LogsCopied { lines: Vec<String>, at: DateTime<Utc> },
}

impl StageEvent for Event {
    fn apply_to(&self, release: &Release, _: &Context) -> Result<Decision, TransitionError> {
        Ok(match self {
            Event::Claimed { at, lease, timeout } => release.on_migration_claimed(*at, *lease, *timeout)?,
            Event::Started { task, task_definition, log, at } => {
                release.on_migration_started(task, task_definition, log.as_ref(), *at)
            }
            Event::Impossible { reason, at } => release.on_migration_impossible(reason, *at),
            Event::TaskChanged { report, at } => release.on_migration_task_changed(report, *at),
            Event::Overdue { at } => release.on_migration_overdue(*at),
            Event::LogsCopied { lines, at } => release.on_migration_logs_copied(lines, *at),
        })
    }
}

/// How a migration is claimed when the write that makes its release ready claims it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationClaim {
    /// See [`Event::Claimed`].
    pub lease: Duration,
    /// The migration's timeout unless the manifest sets one.
    pub timeout: Duration,
}

/// `decision`, and when it makes the release ready for its migration and `context` says how to
/// claim it, the claim too, in the same write: the handler whose write readied the release is
/// the one that starts the migration (`Effect::StartMigration`). The ready record is kept in
/// `passed`, so its state change is announced.
pub(super) fn claim_when_ready(decision: Decision, context: &Context, at: DateTime<Utc>) -> Decision {
    let Some(claim) = context.migration else { return decision };
    match decision {
        Decision::Changed { release, effects, mut passed }
            if release.state == (State::Ready { next: Stage::Migration }) =>
        {
            match release.on_migration_claimed(at, claim.lease, claim.timeout) {
                Ok(Decision::Changed { release: claimed, .. }) => {
                    passed.push(*release);
                    Decision::Changed { release: claimed, effects, passed }
                }
                _ => Decision::Changed { release, effects, passed },
            }
        }
        other => other,
    }
}

/// At most this many of a failed migration's last log lines go into its record.
pub const LOG_TAIL_LINES: usize = 20;
/// At most this many bytes of them in all (the record stays small); one line at most a quarter.
pub const LOG_TAIL_BYTES: usize = 4096;

fn run_log(release: &Release) -> Option<LogPointer> {
    release.migration.as_ref().and_then(|run| run.log.clone())
}

/// How long the migration may run: the manifest's timeout when it is shorter than the operator's
/// (`default_seconds`), else the operator's.
pub fn migration_timeout(default_seconds: u64, manifest: Option<&crate::manifest::Manifest>) -> u64 {
    let asked = manifest.and_then(|m| m.migration.as_ref()).and_then(|m| m.timeout_seconds);
    asked.map_or(default_seconds, |s| s.min(default_seconds))
}

/// The newest lines that fit the bounds, oldest first; control characters (a log is outside
/// input: escape sequences must not reach a person's terminal) become `?`, and a line longer than
/// a quarter of the bytes is cut, marked with `…`.
pub fn bound_log_tail(lines: &[String]) -> Vec<String> {
    let per_line = LOG_TAIL_BYTES / 4;
    let mut kept: Vec<String> = Vec::new();
    let mut bytes = 0;
    for line in lines.iter().rev().take(LOG_TAIL_LINES) {
        let mut clean: String =
            line.trim_end().chars().map(|c| if c.is_control() && c != '\t' { '?' } else { c }).collect();
        if clean.len() > per_line {
            let mut cut = per_line - '…'.len_utf8();
            while !clean.is_char_boundary(cut) {
                cut -= 1;
            }
            clean.truncate(cut);
            clean.push('…');
        }
        if bytes + clean.len() > LOG_TAIL_BYTES {
            break;
        }
        bytes += clean.len();
        kept.push(clean);
    }
    kept.reverse();
    kept
}

/// Where the migration container's log stream is (awslogs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPointer {
    pub group: String,
    pub stream: String,
}

/// The migration's run and the evidence of how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationRun {
    /// The idempotency token of the run (RunTask `clientToken`), derived from the release.
    pub token: String,
    /// How many handlers claimed the start (more than one: a holder died mid-start).
    pub claims: u32,
    pub claimed_at: DateTime<Utc>,
    /// When a still-running migration is declared failed.
    pub deadline: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskArn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogPointer>,
    /// The last lines of the log of a failed migration (bounded: [`LOG_TAIL_LINES`],
    /// [`LOG_TAIL_BYTES`]), copied once, so `convoy status` shows why without a second tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<DateTime<Utc>>,
    /// The highest ECS event `version` applied; lower ones are stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_reason: Option<String>,
}

/// One container's state in an ECS task report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerReport {
    pub name: String,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

/// What ECS says of a task (from a task state change event, or `DescribeTasks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    pub task: TaskArn,
    /// ECS's event version; `None` from `DescribeTasks`, which is always current.
    pub version: Option<u64>,
    pub last_status: String,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    pub containers: Vec<ContainerReport>,
    pub started_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// The task's `startedBy`: Convoy gives its migrations the release's own value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    /// The task definition the task runs (its ARN): a migration runs the migration family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
}

impl TaskReport {
    /// Whether this task carries the marks only Convoy's own start gives a release's migration:
    /// the release's `startedBy` and a task definition of the migration family. Anyone allowed to
    /// RunTask can put a task in the release's group; a task without both marks is not adopted.
    pub fn is_convoy_migration_of(&self, key: &crate::names::ReleaseKey) -> bool {
        let started_by = self.started_by.as_deref() == Some(key.migration_started_by().as_str());
        let family = self.task_definition.as_deref().and_then(task_definition_family);
        started_by && family.is_some_and(|f| f.ends_with(crate::taskdef::MIGRATION_FAMILY_SUFFIX))
    }
}

/// `family` of `arn:aws:ecs:<region>:<account>:task-definition/<family>:<revision>`.
pub fn task_definition_family(arn: &str) -> Option<&str> {
    let (_, name) = arn.rsplit_once(":task-definition/")?;
    let (family, revision) = name.rsplit_once(':')?;
    (!family.is_empty() && revision.chars().all(|c| c.is_ascii_digit())).then_some(family)
}

impl Release {
    fn migration_container(&self) -> Option<String> {
        self.declared_migration().map(|m| m.container.to_string())
    }

    pub(super) fn on_migration_claimed(
        &self,
        at: DateTime<Utc>,
        lease: Duration,
        timeout: Duration,
    ) -> Result<Decision, TransitionError> {
        if self.migration_container().is_none() {
            return Err(TransitionError::NoMigration(self.key.clone()));
        }
        // The manifest may only shorten the operator's timeout (the ceiling, `ceiling.rs`).
        let default = timeout.num_seconds().max(0) as u64;
        // A group's manifest may ask a shorter timeout too (checked against each member's at admission).
        let seconds = match self.declared_migration().and_then(|m| m.timeout_seconds) {
            Some(asked) if self.group.is_some() => asked.min(default),
            _ => migration_timeout(default, self.manifest.as_ref()),
        };
        let timeout = Duration::seconds(seconds as i64);
        let mut next = self.clone();
        match (&self.state, &self.migration) {
            (State::Ready { next: Stage::Migration }, _) => {
                next.migration = Some(MigrationRun {
                    token: self.key.client_token("migration"),
                    claims: 1,
                    claimed_at: at,
                    deadline: at + timeout,
                    task_definition: None,
                    task: None,
                    log: None,
                    log_tail: None,
                    started_at: None,
                    stopped_at: None,
                    event_version: None,
                    exit_code: None,
                    stop_code: None,
                    stopped_reason: None,
                    container_reason: None,
                });
                next.state = State::StartingMigration;
                next.record(at, "migration-starting", format!("timeout {}s", timeout.num_seconds()));
            }
            (State::StartingMigration, Some(run)) if run.claimed_at + lease <= at => {
                let Some(run) = next.migration.as_mut() else {
                    return Ok(Decision::inconsistent(self, "a migration run"));
                };
                run.claims += 1;
                run.claimed_at = at;
                next.record(
                    at,
                    "migration-claim-taken-over",
                    format!("the previous handler did not record a task within {}s", lease.num_seconds()),
                );
            }
            _ => return Ok(Decision::unchanged(format!("the migration is not due: the release is {}", self.state))),
        }
        Ok(Decision::changed(next, Vec::new()))
    }

    pub(super) fn on_migration_started(
        &self,
        task: &TaskArn,
        task_definition: &str,
        log: Option<&LogPointer>,
        at: DateTime<Utc>,
    ) -> Decision {
        if self.state != State::StartingMigration {
            return Decision::unchanged(format!("task {task} started, but the release is {}", self.state));
        }
        let mut next = self.clone();
        let Some(run) = next.migration.as_mut() else { return Decision::inconsistent(self, "a migration run") };
        run.task = Some(task.clone());
        run.task_definition = Some(task_definition.to_owned());
        run.log = log.cloned();
        run.started_at = Some(at);
        let logs = log.map_or(String::new(), |l| format!("; logs: {} {}", l.group, l.stream));
        next.state = State::Migrating { task: task.clone() };
        next.record(at, "migration-started", format!("task {task} from {task_definition}{logs}"));
        Decision::changed(next, Vec::new())
    }

    pub(super) fn on_migration_impossible(&self, reason: &str, at: DateTime<Utc>) -> Decision {
        if !matches!(self.state, State::StartingMigration | State::Ready { next: Stage::Migration }) {
            return Decision::unchanged(format!("the release is {}", self.state));
        }
        let mut next = self.clone();
        next.state = State::Failed { stage: Stage::Migration, reason: reason.to_owned() };
        next.record(at, "migration-impossible", reason.to_owned());
        Decision::changed(next, Vec::new())
    }

    pub(super) fn on_migration_task_changed(&self, report: &TaskReport, at: DateTime<Utc>) -> Decision {
        let ours = match &self.state {
            State::Migrating { task } => *task == report.task,
            // The task's stop can overtake the handler that started it: it is adopted when it
            // carries Convoy's marks for this release, not merely the release's group.
            State::StartingMigration => report.is_convoy_migration_of(&self.key),
            _ => false,
        };
        if !ours {
            return Decision::unchanged(format!(
                "task {} is not the running migration; the release is {}",
                report.task, self.state
            ));
        }
        let Some(run) = self.migration.as_ref() else { return Decision::inconsistent(self, "a migration run") };
        if let (Some(seen), Some(version)) = (run.event_version, report.version)
            && version <= seen
        {
            return Decision::unchanged(format!("stale event: version {version}, already applied {seen}"));
        }
        if report.last_status != "STOPPED" {
            return Decision::unchanged(format!("task {} is {}, not stopped yet", report.task, report.last_status));
        }

        let container = self.migration_container().unwrap_or_default();
        let reported = report
            .containers
            .iter()
            .find(|c| c.name == container)
            .or_else(|| (report.containers.len() == 1).then(|| &report.containers[0]));
        let exit_code = reported.and_then(|c| c.exit_code);
        let container_reason = reported.and_then(|c| c.reason.clone());

        let mut next = self.clone();
        let Some(run) = next.migration.as_mut() else { return Decision::inconsistent(self, "a migration run") };
        run.task = Some(report.task.clone());
        run.event_version = report.version.or(run.event_version);
        run.started_at = report.started_at.or(run.started_at);
        run.stopped_at = report.stopped_at.or(Some(at));
        run.exit_code = exit_code;
        run.stop_code = report.stop_code.clone();
        run.stopped_reason = report.stopped_reason.clone();
        run.container_reason = container_reason.clone();
        let took = match (run.started_at, run.stopped_at) {
            (Some(start), Some(stop)) => format!(" after {}s", (stop - start).num_seconds()),
            _ => String::new(),
        };
        let stop = describe_stop(report);
        let never_started = report.stop_code.as_deref() == Some("TaskFailedToStart");
        let interrupted = !never_started && interrupted_by(report.stop_code.as_deref());

        if exit_code == Some(0) && !never_started && !interrupted {
            next.state = State::Ready { next: Stage::Deployment };
            next.record(at, "migration-succeeded", format!("container {container} exited 0{took}"));
            let effect = next.deploy_effect();
            return Decision::changed(next, vec![effect]);
        }
        let reason = match (never_started, exit_code) {
            (true, _) => format!("the migration task never started ({stop})"),
            (false, _) if interrupted => {
                let code = exit_code.map_or("no exit code".to_owned(), |c| format!("exit code {c}"));
                format!("the migration was interrupted ({stop}){took}, {code}: it may not have run to its end")
            }
            (false, Some(code)) => {
                let why = container_reason.map_or(String::new(), |r| format!("{r}; "));
                format!("the migration exited with code {code}{took} ({why}{stop})")
            }
            (false, None) => format!("the migration container reported no exit code ({stop})"),
        };
        next.state = State::Failed { stage: Stage::Migration, reason: reason.clone() };
        next.record(at, "migration-failed", reason);
        let effects = run_log(&next).map(|log| Effect::CopyMigrationLogs { log }).into_iter().collect();
        Decision::changed(next, effects)
    }

    /// The last lines of a failed migration's log were read: they go into the record, once.
    pub(super) fn on_migration_logs_copied(&self, lines: &[String], at: DateTime<Utc>) -> Decision {
        if !matches!(self.state, State::Failed { stage: Stage::Migration, .. }) {
            return Decision::unchanged(format!("the release is {}, not a failed migration", self.state));
        }
        let Some(run) = self.migration.as_ref() else { return Decision::inconsistent(self, "a migration run") };
        if run.log_tail.is_some() {
            return Decision::unchanged("the migration's last log lines are already in the record");
        }
        let tail = bound_log_tail(lines);
        let mut next = self.clone();
        let Some(run) = next.migration.as_mut() else { return Decision::inconsistent(self, "a migration run") };
        let stream = run.log.as_ref().map_or(String::new(), |l| format!(" of {} {}", l.group, l.stream));
        let detail = format!("the last {} log lines{stream} are in the record", tail.len());
        run.log_tail = Some(tail);
        next.record(at, "migration-logs", detail);
        Decision::changed(next, Vec::new())
    }

    pub(super) fn on_migration_overdue(&self, at: DateTime<Utc>) -> Decision {
        let Some(run) = &self.migration else { return Decision::unchanged("no migration runs") };
        if at < run.deadline {
            return Decision::unchanged(format!("the migration has until {}", run.deadline));
        }
        let timeout = (run.deadline - run.claimed_at).num_seconds();
        let mut next = self.clone();
        let (reason, effects) = match &self.state {
            State::Migrating { task } => (
                format!("the migration ran past its timeout of {timeout}s; Convoy stops task {task}"),
                vec![Effect::StopMigration { task: task.clone() }],
            ),
            State::StartingMigration => (format!("the migration task was not started within {timeout}s"), Vec::new()),
            _ => return Decision::unchanged(format!("the release is {}", self.state)),
        };
        next.state = State::Failed { stage: Stage::Migration, reason: reason.clone() };
        next.record(at, "migration-timed-out", reason);
        Decision::changed(next, effects)
    }
}

/// Whether ECS stopped the task before its process ended by itself: a person or Convoy's timeout
/// (`UserInitiated`), the service scheduler, a Spot reclaim or a termination notice
/// (`SpotInterruption`, `TerminationNotice`), a failing host (`InfrastructureHealth`), or a code
/// newer than this list. A process that handles the SIGTERM cleanly exits 0 all the same, so only
/// `EssentialContainerExited` (the migration container ended, and the task with it) or no stop code
/// (older agents) let an exit 0 count. The codes: ECS's `TaskStopCode` (API reference, `Task`;
/// developer guide, "Amazon ECS stopped task error codes").
fn interrupted_by(stop_code: Option<&str>) -> bool {
    !matches!(stop_code, None | Some("") | Some("EssentialContainerExited"))
}

fn describe_stop(report: &TaskReport) -> String {
    match (&report.stop_code, &report.stopped_reason) {
        (Some(code), Some(reason)) => format!("{code}: {reason}"),
        (Some(code), None) => code.clone(),
        (None, Some(reason)) => reason.clone(),
        (None, None) => "no stop reason given".to_owned(),
    }
}
