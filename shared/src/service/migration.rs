//! The migration gate: run the release's migration once, as a one-off task derived from the
//! service itself, and move on only when it exits 0.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::transition::Outbox;
use super::{Convoy, Report, confirm};
use crate::error::{ConvoyError, TasksError};
use crate::names::{ReleaseKey, TaskArn};
use crate::ports::{MigrationTaskSpec, RunTaskRequest, Stored};
use crate::release::{LogPointer, Release, TaskReport, migration};

/// A migration task ECS started (or a previous holder did), as the record keeps it.
struct StartedMigration {
    task: TaskArn,
    task_definition: String,
    log: Option<LogPointer>,
}

impl Convoy {
    /// Starts the release's migration if it is due and nobody else holds the start (the
    /// reconciler's and a test's way in; an event's is the `StartMigration` effect).
    pub async fn start_migration(
        &self,
        key: &ReleaseKey,
        now: DateTime<Utc>,
        known: Option<Stored>,
    ) -> Result<Option<Report>, ConvoyError> {
        let outbox = Outbox::new(now);
        let result = self.start_migration_in(&outbox, key, known, false, now).await;
        self.publish(outbox).await;
        result
    }

    /// Claims the migration's start (unless `claimed`: the write that asked for it claimed it),
    /// then runs its task. At most one task per release: the claim is a conditional write, the
    /// RunTask call carries the release's client token, and a takeover after a crashed holder
    /// adopts the task that holder started.
    pub(super) async fn start_migration_in(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        known: Option<Stored>,
        claimed: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let claim = match known {
            Some(stored) if claimed => stored,
            known => {
                let lease = self.config.claim_lease;
                let event = migration::Event::Claimed { at: now, lease, timeout: self.config.migration_timeout() };
                let Some(outcome) = self.transition(outbox, key, known, &event).await? else { return Ok(None) };
                if !outcome.changed {
                    return Ok(Some(outcome.report()));
                }
                outcome.stored()
            }
        };
        let Some(run) = claim.release.migration.as_ref() else {
            return Err(ConvoyError::BadEvent(format!("release {key} was claimed without a migration run")));
        };
        let cluster = &self.config.cluster;
        if run.claims > 1 {
            let found = self.tasks.find(cluster, &key.migration_started_by()).await?;
            if let Some(task) = self.convoy_migration_among(cluster, key, found).await? {
                info!(%task, "adopting the task a previous holder started");
                let task_definition =
                    run.task_definition.clone().unwrap_or_else(|| "(started by a previous attempt)".into());
                let started = StartedMigration { task, task_definition, log: None };
                return self.record_migration_start(outbox, key, started, now, claim).await;
            }
        }
        match self.launch_migration(&claim.release, &run.token).await {
            Ok(started) => self.record_migration_start(outbox, key, started, now, claim).await,
            Err(TasksError::Rejected(reason)) => {
                warn!(%reason, "the migration cannot start");
                let reason = format!("the migration cannot start: {reason}");
                let event = migration::Event::Impossible { reason, at: now };
                let outcome = self.transition(outbox, key, Some(claim), &event).await?;
                Ok(outcome.map(|o| o.report()))
            }
            // The claim stays; once its lease is over the reconciler takes the start over.
            Err(err) => Err(err.into()),
        }
    }

    /// The first of `found` that carries Convoy's marks for this release (see
    /// [`TaskReport::is_convoy_migration_of`]): `startedBy` alone is a value anyone can copy.
    async fn convoy_migration_among(
        &self,
        cluster: &str,
        key: &ReleaseKey,
        found: Vec<TaskArn>,
    ) -> Result<Option<TaskArn>, TasksError> {
        for task in found {
            match self.tasks.describe(cluster, &task).await? {
                Some(report) if report.is_convoy_migration_of(key) => return Ok(Some(task)),
                Some(report) => {
                    warn!(%task, task_definition = ?report.task_definition, "not adopted: not a Convoy migration task")
                }
                None => {}
            }
        }
        Ok(None)
    }

    async fn launch_migration(&self, release: &Release, token: &str) -> Result<StartedMigration, TasksError> {
        let Some(migration) = release.declared_migration() else {
            return Err(TasksError::Rejected(format!("release {} declares no migration", release.key)));
        };
        let key = &release.key;
        let group = key.tag();
        if group.len() > 255 {
            return Err(TasksError::Rejected(format!("the task group {group:?} is longer than ECS allows (255)")));
        }
        // A group's migration runs from the task definition of the service its manifest names.
        let service = release.migration_service();
        let shape = self.tasks.service_shape(&self.config.cluster, service.as_str()).await?;
        let mut images = release.pinned_uris_of(service);
        // A rollback's down migration runs from the reverted release's image of its container:
        // the code that wrote the migration knows how to undo it.
        if let Some(down) = release.rollback.as_ref().and_then(|r| r.down.as_ref()) {
            for (container, uri) in &mut images {
                if *container == down.container.as_str() {
                    uri.clone_from(&down.image);
                }
            }
        }
        // The base the drift check chose (the live revision, or Convoy's last under `warn`).
        let base = release.derivation_base(service).unwrap_or(&shape.task_definition).to_owned();
        let spec = MigrationTaskSpec { base, container: migration.container.to_string(), images };
        let definition = self.tasks.register_migration(&spec).await?;
        let request = RunTaskRequest {
            cluster: self.config.cluster.clone(),
            task_definition: definition.arn.clone(),
            shape,
            container: migration.container.to_string(),
            command: migration.command.clone(),
            started_by: key.migration_started_by(),
            group,
            client_token: token.to_owned(),
        };
        let task = self.tasks.run(&request).await?;
        let task_id = task.as_str().rsplit('/').next().unwrap_or_default();
        let log = match (definition.log_group, definition.log_stream_prefix) {
            (Some(group), Some(prefix)) => {
                Some(LogPointer { group, stream: format!("{prefix}/{}/{task_id}", migration.container) })
            }
            _ => None,
        };
        Ok(StartedMigration { task, task_definition: definition.arn, log })
    }

    async fn record_migration_start(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        started: StartedMigration,
        now: DateTime<Utc>,
        claim: Stored,
    ) -> Result<Option<Report>, ConvoyError> {
        let StartedMigration { task, task_definition, log } = started;
        let event = migration::Event::Started { task, task_definition, log, at: now };
        let outcome = self.transition(outbox, key, Some(claim), &event).await?;
        Ok(outcome.map(|o| o.report()))
    }

    /// ECS reported a task of a release's migration group.
    pub async fn migration_task_changed(
        &self,
        key: &ReleaseKey,
        report: &TaskReport,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let outbox = Outbox::new(now);
        let result = self.migration_task_changed_in(&outbox, key, report, now).await;
        self.publish(outbox).await;
        result
    }

    pub(super) async fn migration_task_changed_in(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        report: &TaskReport,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let Some(stored) = self.store.load(key).await? else {
            warn!(task = %report.task, "a task names this release, but it has no record");
            return Ok(None);
        };
        if report.last_status != "STOPPED" {
            let event = migration::Event::TaskChanged { report: report.clone(), at: now };
            return Ok(self.transition(outbox, key, Some(stored), &event).await?.map(|o| o.report()));
        }
        // The event is a hint: ECS's own report of the task is what is applied.
        let report = match self.confirm_task_stop(&stored.release, report).await? {
            Ok(confirmed) => confirmed,
            Err(why) => {
                confirm::refuse(confirm::kind::TASK_STOPPED, Some(key), &why);
                return Ok(Some(Report::of(&stored.release, false, Some(format!("unconfirmed: {why}")), Vec::new())));
            }
        };
        self.task_stopped_in(outbox, key, Some(stored), &report, now).await
    }

    /// Applies a stop ECS itself reported (the confirmed event, or the reconciler's look).
    pub(super) async fn task_stopped_in(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        known: Option<Stored>,
        report: &TaskReport,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let event = migration::Event::TaskChanged { report: report.clone(), at: now };
        Ok(self.transition(outbox, key, known, &event).await?.map(|o| o.report()))
    }
}

impl Convoy {
    /// Copies the last lines of a failed migration's log into its record. Best effort: the
    /// migration's end is already stored, so a log that cannot be read (or a write that loses
    /// every race) is logged and the event still succeeds.
    pub(super) async fn copy_migration_logs(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        log: &LogPointer,
        now: DateTime<Utc>,
    ) {
        let lines = match self.logs.last_lines(log, crate::release::LOG_TAIL_LINES).await {
            Ok(lines) => lines,
            Err(err) => {
                warn!(error = %err, group = %log.group, stream = %log.stream, "could not read the migration's log");
                return;
            }
        };
        let event = migration::Event::LogsCopied { lines, at: now };
        if let Err(err) = self.transition(outbox, key, None, &event).await {
            warn!(error = %err, "could not copy the migration's last log lines into the record");
        }
    }
}
