//! The release record and its pure state machine.
//!
//! A [`Release`] is one JSON object per release. [`Release::apply`] takes an [`Event`] and returns a
//! [`Decision`]: either nothing changes (duplicates, late events: no write is made), or a new record
//! plus the side effects ([`Effect`]) the caller must perform. Nothing here does I/O or reads the
//! clock: time comes in with the event, so every transition is testable as a plain function.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::manifest::{ImageRef, Manifest};
use crate::names::{
    AccountId, ContainerName, DeploymentId, Digest, ImageTag, PipelineExecutionId, ReleaseId, ReleaseKey,
    RepositoryName, TaskArn,
};

mod approval;
#[cfg(test)]
mod approval_tests;
mod deployment;
#[cfg(test)]
mod deployment_tests;
mod gates;
#[cfg(test)]
mod gates_tests;
mod lock;
mod migration;
#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod native_tests;
mod readiness;
#[cfg(test)]
mod readiness_tests;
#[cfg(test)]
pub(crate) mod test_support;

pub use self::approval::{Actor, Attribution, CLOUDTRAIL_DELAY, ObservedCall, Via};
pub use self::deployment::{
    ApprovalDecision, DeployMethod, DeploymentEnd, DeploymentRun, Hook, NativeProgress, PipelineRun, ProbeResult,
    Verification, VerificationOutcome,
};
pub use self::lock::{DeployLock, LockDecision, LockEntry};
pub use self::migration::{
    ContainerReport, LOG_TAIL_BYTES, LOG_TAIL_LINES, LogPointer, MigrationRun, TaskReport, bound_log_tail,
    task_definition_family,
};
pub use self::readiness::Absence;

/// The record format's version, so a later Convoy can read (or refuse) an older record knowingly.
pub const RECORD_SCHEMA: u32 = 1;

/// Where the manifest came from: the exact object version Convoy read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSource {
    pub bucket: String,
    pub key: String,
    /// The object version (versioned buckets); `None` on an unversioned bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl ManifestSource {
    /// Two uploads are the same when their version ids (or, unversioned, their ETags) agree.
    pub fn same_upload(&self, other: &ManifestSource) -> bool {
        match (&self.version_id, &other.version_id) {
            (Some(a), Some(b)) => a == b,
            _ => self.etag.is_some() && self.etag == other.etag,
        }
    }

    pub fn describe(&self) -> String {
        match &self.version_id {
            Some(version) => format!("s3://{}/{} (version {version})", self.bucket, self.key),
            None => format!("s3://{}/{}", self.bucket, self.key),
        }
    }
}

/// An image of the release and, once seen in ECR, the digest it is pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageStatus {
    pub image: ImageRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// When the pinned digest was observed (push time, or the time of the registry look-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_at: Option<DateTime<Utc>>,
}

/// The stage a failure belongs to, and the stages a ready release moves on to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Manifest,
    Images,
    Migration,
    Deployment,
    Verification,
    Approval,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Stage::Manifest => "manifest",
            Stage::Images => "images",
            Stage::Migration => "migration",
            Stage::Deployment => "deployment",
            Stage::Verification => "verification",
            Stage::Approval => "approval",
        };
        f.write_str(name)
    }
}

/// Where a release stands. Terminal states never change again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name")]
pub enum State {
    /// Waiting until every image of the manifest is in ECR.
    Collecting,
    /// Every image is pinned by digest; `next` is the stage to start.
    Ready { next: Stage },
    /// A handler claimed the migration and is starting its task (see `migration.claimed_at`).
    StartingMigration,
    /// The migration task runs.
    Migrating { task: TaskArn },
    /// Another release of the service is deploying; this one waits for it to end.
    Queued { behind: ReleaseId },
    /// A handler claimed the start of the deployment (see `deployment.claimed_at`).
    StartingDeployment,
    /// The blue/green deployment runs: a CodeDeploy deployment id, or the pipeline execution id
    /// until the pipeline's deployment reaches its hook (see [`DeploymentRef`](crate::names::DeploymentRef)).
    Deploying { deployment: String },
    /// The new version is being probed on the test listener.
    Verifying { deployment: DeploymentId },
    /// Verification passed; the traffic shift waits for a person (or for the bake time).
    AwaitingApproval { deployment: DeploymentId },
    /// Approved: production traffic moves to the new version.
    ShiftingTraffic { deployment: DeploymentId },
    /// The deployment is being rolled back (verification failed, or a person rejected it).
    RollingBack { deployment: DeploymentId, reason: String },
    /// Production runs this release.
    Succeeded,
    /// The deployment was rolled back (rejected, stopped, or failed after verification).
    RolledBack { reason: String },
    /// A newer release of the service deployed (or will) instead of this one.
    Superseded { by: ReleaseId },
    /// Ended without deploying (or deploying failed) at `stage`.
    Failed { stage: Stage, reason: String },
}

impl State {
    pub fn is_terminal(&self) -> bool {
        matches!(self, State::Failed { .. } | State::Succeeded | State::RolledBack { .. } | State::Superseded { .. })
    }

    /// The deployment this state is about, while one runs.
    pub fn deployment(&self) -> Option<&str> {
        match self {
            State::Deploying { deployment } => Some(deployment),
            State::Verifying { deployment }
            | State::AwaitingApproval { deployment }
            | State::ShiftingTraffic { deployment }
            | State::RollingBack { deployment, .. } => Some(deployment.as_str()),
            _ => None,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Collecting => f.write_str("Collecting"),
            State::Ready { next } => write!(f, "Ready (next: {next})"),
            State::StartingMigration => f.write_str("Starting migration"),
            State::Migrating { task } => write!(f, "Migrating (task {task})"),
            State::Queued { behind } => write!(f, "Queued (behind release {behind})"),
            State::StartingDeployment => f.write_str("Starting deployment"),
            State::Deploying { deployment } => write!(f, "Deploying ({deployment})"),
            State::Verifying { deployment } => write!(f, "Verifying ({deployment})"),
            State::AwaitingApproval { deployment } => write!(f, "Awaiting approval ({deployment})"),
            State::ShiftingTraffic { deployment } => write!(f, "Shifting traffic ({deployment})"),
            State::RollingBack { deployment, reason } => write!(f, "Rolling back ({deployment}): {reason}"),
            State::Succeeded => f.write_str("Succeeded"),
            State::RolledBack { reason } => write!(f, "Rolled back: {reason}"),
            State::Superseded { by } => write!(f, "Superseded by release {by}"),
            State::Failed { stage, reason } => write!(f, "Failed at {stage}: {reason}"),
        }
    }
}

/// One line of the release's history: what happened, when, and the detail a person needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub event: String,
    pub detail: String,
}

/// The release record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub schema: u32,
    pub key: ReleaseKey,
    pub source: ManifestSource,
    /// The accepted manifest; `None` when the manifest was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
    pub images: BTreeMap<ContainerName, ImageStatus>,
    pub state: State,
    /// The migration's run and its evidence, once it was claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationRun>,
    /// The deployment, once it was claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentRun>,
    /// The verification on the test listener and every probe's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Who approved or rejected the traffic shift, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalDecision>,
    /// The CloudWatch alarms that gate the traffic shift, and those that fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarms: Option<crate::gates::AlarmGate>,
    /// The operator's settings the record was created under (set once, at creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<crate::settings_file::SettingsVersion>,
    pub timeline: Vec<Entry>,
}

/// An image as ECR identifies it in a push event: registry, repository, tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ImageKey {
    pub registry: AccountId,
    pub repository: RepositoryName,
    pub tag: ImageTag,
}

impl ImageKey {
    pub fn of(image: &ImageRef) -> Self {
        Self { registry: image.registry.clone(), repository: image.repository.clone(), tag: image.tag.clone() }
    }
}

impl fmt::Display for ImageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

/// How Convoy learned of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sighting {
    /// An ECR push event (its time is the push time).
    PushEvent,
    /// A look-up in ECR (its time is when Convoy looked).
    RegistryLookup,
}

/// Something that happened to a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An image tag was found in ECR with this digest.
    ImageFound { image: ImageKey, digest: Digest, at: DateTime<Utc>, via: Sighting },
    /// The manifest object was uploaded (again) for an existing record.
    ManifestUploaded { source: ManifestSource, outcome: Result<Manifest, String>, at: DateTime<Utc> },
    /// A handler claims the start of the migration. A claim older than `lease` may be taken over:
    /// its holder is presumed dead. `timeout` bounds the migration's run.
    MigrationClaimed { at: DateTime<Utc>, lease: chrono::Duration, timeout: chrono::Duration },
    /// The migration task was started (or found, when a crashed holder had started it).
    MigrationStarted { task: TaskArn, task_definition: String, log: Option<LogPointer>, at: DateTime<Utc> },
    /// The migration cannot be started: the service, its task definition or a container is not
    /// what the manifest needs. Bad input: the release ends.
    MigrationImpossible { reason: String, at: DateTime<Utc> },
    /// ECS reported a state of a task in this release's migration group.
    MigrationTaskChanged { report: TaskReport, at: DateTime<Utc> },
    /// The reconciler saw the migration still running at `at`.
    MigrationOverdue { at: DateTime<Utc> },
    /// What the service's deploy lock said when this release asked for it.
    DeployLock { decision: LockDecision, at: DateTime<Utc> },
    /// A handler claims the start of the deployment (see [`Event::MigrationClaimed`]).
    /// `gate` says what holds production traffic for the approval (the CodeDeploy group's ready
    /// option, the ECS PAUSE hook's timeout), as checked before the claim.
    DeploymentClaimed { method: DeployMethod, at: DateTime<Utc>, lease: chrono::Duration, gate: Option<String> },
    /// The deployment was started (or found after a crashed holder started it).
    DeploymentStarted { deployment: DeploymentId, task_definition: Option<String>, at: DateTime<Utc> },
    /// The release's task-definition revision was registered (the `ecs-native` method records it
    /// before `UpdateService`).
    RevisionRegistered { task_definition: String, at: DateTime<Utc> },
    /// ECS described the release's service deployment (strategy, traffic shift, stage).
    NativeObserved { progress: NativeProgress },
    /// CodeDeploy said (at `at`) that `deployment`, still running, rerouted production traffic:
    /// someone continued it past READY_WAIT.
    Rerouted { deployment: DeploymentId, at: DateTime<Utc> },
    /// The pipeline's deploy bundle was written to its S3 source as object `version`.
    BundleWritten { pipeline: String, bundle: String, version: String, at: DateTime<Utc> },
    /// The pipeline execution that deploys the bundle was started (or found again by its token).
    PipelineStarted { execution: PipelineExecutionId, at: DateTime<Utc> },
    /// The pipeline execution ended while the deployment it created still runs: follow that one.
    DeploymentAdopted { deployment: DeploymentId, reason: String, at: DateTime<Utc> },
    /// The deployment cannot be started (no settings, a container the service lacks, ...).
    DeploymentImpossible { reason: String, at: DateTime<Utc> },
    /// A lifecycle hook asks Convoy to verify the deployment on the test listener.
    VerificationStarted { hook: Hook, at: DateTime<Utc> },
    /// Probes were made (more may follow).
    Probed { probes: Vec<ProbeResult>, at: DateTime<Utc> },
    /// The metric checks were judged (after the probes passed).
    MetricsChecked { results: Vec<crate::gates::MetricResult>, at: DateTime<Utc> },
    /// The analysis ended. `auto` says whether policy approves (after `bake` seconds); `alarms`
    /// gate the traffic shift from now on.
    VerificationFinished {
        outcome: VerificationOutcome,
        auto: bool,
        bake_seconds: u64,
        alarms: Vec<String>,
        at: DateTime<Utc>,
    },
    /// A CloudWatch alarm is in ALARM (an EventBridge event, or the reconciler's DescribeAlarms).
    AlarmRaised { alarm: String, reason: String, since: Option<DateTime<Utc>>, via: String, at: DateTime<Utc> },
    /// Policy (`by: "policy (auto…)"`) approved the traffic shift with Convoy's own role. A
    /// person's decision is [`Event::ApprovalObserved`]: Convoy takes no typed name.
    Decided { approve: bool, by: String, at: DateTime<Utc> },
    /// CloudTrail recorded a successful continue or stop of a deployment, and who made it.
    ApprovalObserved { call: ObservedCall, at: DateTime<Utc> },
    /// CloudTrail's event history had no call for a pending attribution (the window looked at
    /// ends at `checked_until`).
    ApproverNotFound { why: String, checked_until: DateTime<Utc>, at: DateTime<Utc> },
    /// CodeDeploy (or ECS) says how the deployment ended.
    DeploymentEnded { deployment: String, end: DeploymentEnd, detail: String, at: DateTime<Utc> },
    /// The last lines of the failed migration's log were read (effect `CopyMigrationLogs`).
    MigrationLogsCopied { lines: Vec<String>, at: DateTime<Utc> },
    /// The reconciler looked the awaited images up at `at` and found these still missing, each
    /// with why. A release still collecting `deadline` after its manifest was accepted fails.
    ImagesOverdue { missing: Vec<(ImageKey, Absence)>, deadline: chrono::Duration, at: DateTime<Utc> },
}

/// A side effect the caller performs after the new record is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "kebab-case")]
pub enum Effect {
    /// Run the manifest's migration with the pinned images.
    StartMigration,
    /// Stop a migration task that overran its timeout.
    StopMigration { task: TaskArn },
    /// Let the deployment shift production traffic (policy approval).
    ContinueDeployment { deployment: DeploymentId },
    /// Roll the deployment back (CodeDeploy `StopDeployment` with auto rollback, or ECS
    /// `ContinueServiceDeployment` ROLLBACK): an alarm fired.
    RollBack { deployment: DeploymentId },
    /// Free the service's deploy lock: this release no longer deploys.
    ReleaseDeployLock,
    /// Deploy the pinned images (no migration declared).
    StartDeployment,
    /// Watch for these images and look them up in ECR now (they may predate the manifest).
    ResolveImages { images: Vec<ImageKey> },
    /// Copy the last lines of the failed migration's log into the record (best effort).
    CopyMigrationLogs { log: LogPointer },
    /// Ask CloudTrail's event history who continued (`approve`) or stopped the deployment after
    /// `since` (the deployment moved on with no call recorded).
    FindApprover { deployment: String, approve: bool, native: bool, since: DateTime<Utc> },
    /// Remove the release from the wait-list of these images: it no longer waits for them.
    ForgetWaits { images: Vec<ImageKey> },
}

/// The outcome of applying an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing changes and nothing is written; `why` is logged.
    Unchanged { why: String },
    /// Store `release` (conditionally), then perform `effects`.
    Changed { release: Box<Release>, effects: Vec<Effect> },
}

impl Decision {
    pub(crate) fn unchanged(why: impl Into<String>) -> Self {
        Decision::Unchanged { why: why.into() }
    }

    /// A record whose state and evidence disagree (edited by hand, or written by a newer
    /// Convoy): nothing is decided on it, and the handler acknowledges instead of crashing.
    pub(crate) fn inconsistent(release: &Release, missing: &str) -> Self {
        Decision::Unchanged { why: format!("the record is inconsistent: it is {} without {missing}", release.state) }
    }
}

/// An event that cannot apply to this release at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("image {image} is not part of release {release}")]
    ImageNotInRelease { image: ImageKey, release: ReleaseKey },
    #[error("release {0} declares no migration")]
    NoMigration(ReleaseKey),
}

impl Release {
    /// A record with nothing in it yet.
    fn empty(key: ReleaseKey, source: ManifestSource) -> Self {
        Self {
            schema: RECORD_SCHEMA,
            key,
            source,
            manifest: None,
            images: BTreeMap::new(),
            state: State::Collecting,
            migration: None,
            deployment: None,
            verification: None,
            approval: None,
            alarms: None,
            settings: None,
            timeline: Vec::new(),
        }
    }

    /// A new record for an accepted manifest: collecting, with a request to resolve its images.
    pub fn open(key: ReleaseKey, source: ManifestSource, manifest: Manifest, at: DateTime<Utc>) -> Self {
        let mut release = Self::empty(key, source);
        release.accept(manifest, at);
        release
    }

    /// A new record for a manifest that was refused: it ends here, with the reason.
    pub fn rejected(key: ReleaseKey, source: ManifestSource, reason: String, at: DateTime<Utc>) -> Self {
        let mut release = Self::empty(key, source);
        release.reject(reason, at);
        release
    }

    /// The work this record's state asks for. It is a function of the state alone, so a handler
    /// that crashed after storing a record resumes the same work when the event is retried.
    pub fn pending_work(&self) -> Vec<Effect> {
        match &self.state {
            State::Collecting => vec![Effect::ResolveImages { images: self.awaited_images() }],
            State::Ready { next: Stage::Migration } => vec![Effect::StartMigration],
            State::Ready { .. } | State::Queued { .. } => vec![Effect::StartDeployment],
            // The others are in a claim holder's, ECS's, CodeDeploy's or a person's hands.
            _ => Vec::new(),
        }
    }

    /// The distinct images still without a digest.
    pub fn awaited_images(&self) -> Vec<ImageKey> {
        let mut keys: Vec<ImageKey> = self
            .images
            .values()
            .filter(|status| status.digest.is_none())
            .map(|status| ImageKey::of(&status.image))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Each container's image pinned by digest, as task definitions name it (once ready, all).
    pub fn pinned_uris(&self) -> Vec<(String, String)> {
        self.pinned_images()
            .filter_map(|(container, image, digest)| Some((container.to_string(), image.pinned_uri(digest?))))
            .collect()
    }

    /// Every image of the release, pinned: `(container, image, digest)`. Complete once ready.
    pub fn pinned_images(&self) -> impl Iterator<Item = (&ContainerName, &ImageRef, Option<&Digest>)> {
        self.images.iter().map(|(container, status)| (container, &status.image, status.digest.as_ref()))
    }

    pub(crate) fn record(&mut self, at: DateTime<Utc>, event: &str, detail: String) {
        self.timeline.push(Entry { at, event: event.to_owned(), detail });
    }

    /// Applies `event`; see the module documentation.
    pub fn apply(&self, event: &Event) -> Result<Decision, TransitionError> {
        match event {
            Event::ImageFound { image, digest, at, via } => self.on_image_found(image, digest, *at, *via),
            Event::ManifestUploaded { source, outcome, at } => Ok(self.on_manifest_uploaded(source, outcome, *at)),
            Event::MigrationClaimed { at, lease, timeout } => self.on_migration_claimed(*at, *lease, *timeout),
            Event::MigrationStarted { task, task_definition, log, at } => {
                Ok(self.on_migration_started(task, task_definition, log.as_ref(), *at))
            }
            Event::MigrationImpossible { reason, at } => Ok(self.on_migration_impossible(reason, *at)),
            Event::MigrationTaskChanged { report, at } => Ok(self.on_migration_task_changed(report, *at)),
            Event::MigrationOverdue { at } => Ok(self.on_migration_overdue(*at)),
            Event::MigrationLogsCopied { lines, at } => Ok(self.on_migration_logs_copied(lines, *at)),
            Event::ImagesOverdue { missing, deadline, at } => Ok(self.on_images_overdue(missing, *deadline, *at)),
            Event::DeployLock { decision, at } => Ok(self.on_deploy_lock(decision, *at)),
            Event::DeploymentClaimed { method, at, lease, gate } => {
                Ok(self.on_deployment_claimed(*method, *at, *lease, gate.as_deref()))
            }
            Event::DeploymentStarted { deployment, task_definition, at } => {
                Ok(self.on_deployment_started(deployment, task_definition.as_deref(), *at))
            }
            Event::BundleWritten { pipeline, bundle, version, at } => {
                Ok(self.on_bundle_written(pipeline, bundle, version, *at))
            }
            Event::RevisionRegistered { task_definition, at } => Ok(self.on_revision_registered(task_definition, *at)),
            Event::NativeObserved { progress } => Ok(self.on_native_observed(progress)),
            Event::Rerouted { deployment, at } => Ok(self.on_rerouted(deployment, *at)),
            Event::PipelineStarted { execution, at } => Ok(self.on_pipeline_started(execution, *at)),
            Event::DeploymentAdopted { deployment, reason, at } => {
                Ok(self.on_deployment_adopted(deployment, reason, *at))
            }
            Event::DeploymentImpossible { reason, at } => Ok(self.on_deployment_impossible(reason, *at)),
            Event::VerificationStarted { hook, at } => Ok(self.on_verification_started(hook, *at)),
            Event::Probed { probes, at } => Ok(self.on_probed(probes, *at)),
            Event::MetricsChecked { results, at } => Ok(self.on_metrics_checked(results, *at)),
            Event::VerificationFinished { outcome, auto, bake_seconds, alarms, at } => {
                Ok(self.on_verification_finished(outcome, *auto, *bake_seconds, alarms, *at))
            }
            Event::AlarmRaised { alarm, reason, since, via, at } => {
                Ok(self.on_alarm_raised(alarm, reason, *since, via, *at))
            }
            Event::Decided { approve, by, at } => Ok(self.on_decided(*approve, by, *at)),
            Event::ApprovalObserved { call, at } => Ok(self.on_approval_observed(call, *at)),
            Event::ApproverNotFound { why, checked_until, at } => {
                Ok(self.on_approver_not_found(why, *checked_until, *at))
            }
            Event::DeploymentEnded { deployment, end, detail, at } => {
                Ok(self.on_deployment_ended(deployment, *end, detail, *at))
            }
        }
    }

    /// Applies several events in order, as one decision (one write).
    pub fn apply_all(&self, events: &[Event]) -> Result<Decision, TransitionError> {
        let mut current: Option<Release> = None;
        let mut effects = Vec::new();
        let mut notes = Vec::new();
        for event in events {
            match current.as_ref().unwrap_or(self).apply(event)? {
                Decision::Changed { release, effects: more } => {
                    current = Some(*release);
                    effects.extend(more);
                }
                Decision::Unchanged { why } => notes.push(why),
            }
        }
        Ok(match current {
            Some(release) => Decision::Changed { release: Box::new(release), effects },
            None => Decision::Unchanged { why: notes.join("; ") },
        })
    }
}
