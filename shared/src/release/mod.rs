//! The release record and its pure state machine: the record ([`Release`], [`State`]) and the
//! dispatch of an event to the stage that owns it.
//!
//! Each stage owns its events and their transitions in its own file: [`readiness`], [`migration`],
//! [`deployment`], [`verification`], [`approval`]. An event applied to a record gives a
//! [`Decision`]: either nothing changes (duplicates, late events: no write is made), or a new
//! record plus the side effects ([`Effect`]) to perform once it is stored. Nothing here does I/O or
//! reads the clock: time comes in with the event, and what else a transition needs (the claim
//! lease) in a [`Context`], so every transition is testable as a plain function.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::manifest::{ImageRef, Manifest};
use crate::names::{
    ContainerName, DeploymentId, DeploymentRef, Digest, HookExecutionId, ReleaseId, ReleaseKey, ServiceName, TaskArn,
};

pub mod approval;
#[cfg(test)]
mod approval_tests;
pub mod deployment;
#[cfg(test)]
mod deployment_tests;
pub mod gate;
#[cfg(test)]
mod gate_stage_tests;
#[cfg(test)]
mod gates_tests;
pub mod group;
#[cfg(test)]
mod group_tests;
mod lock;
pub mod migration;
#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod native_tests;
#[cfg(test)]
mod opening_tests;
pub mod readiness;
#[cfg(test)]
mod readiness_tests;
#[cfg(test)]
mod record_tests;
#[cfg(test)]
mod rolling_tests;
pub mod services;
#[cfg(test)]
mod services_tests;
mod stored;
#[cfg(test)]
mod stored_tests;
pub mod submission;
#[cfg(test)]
pub(crate) mod test_support;
pub mod verification;

pub use self::approval::{Actor, ApprovalDecision, Attribution, CLOUDTRAIL_DELAY, ObservedCall, Via};
pub use self::deployment::{DeployMethod, DeploymentEnd, DeploymentRun, NativeProgress, PipelineRun, PutBackRun};
pub use self::gate::{ImageGate, NO_POLICY};
pub use self::group::{GroupOpening, SectionState, ServiceSection};
pub use self::lock::{DeployLock, LockDecision, LockEntry};
pub use self::migration::{
    ContainerReport, LOG_TAIL_BYTES, LOG_TAIL_LINES, LogPointer, MigrationClaim, MigrationRun, TaskReport,
    bound_log_tail, migration_timeout, task_definition_family,
};
pub use self::readiness::{Absence, Admitted, ImageKey, ImageStatus, ManifestSource, Sighting};
pub use self::verification::{
    ApprovalPlan, Hook, NATIVE_VERIFY_STAGE, Opening, ProbePlan, ProbeResult, Settled, Verification,
    VerificationOutcome,
};

/// The record format's version, so a later Convoy can read (or refuse) an older record knowingly.
/// 2: deployment ids carry their kind (`{"codedeploy": "d-…"}`); version 1 records are read by
/// `stored.rs`.
pub const RECORD_SCHEMA: u32 = 2;

/// The stage a failure belongs to, and the stages a ready release moves on to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Manifest,
    Images,
    /// The image gate: scan findings and signatures judged against the operator's policy.
    Gate,
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
            Stage::Gate => "gate",
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
    /// Every image is pinned; their digests are being judged against the image policy (a scan
    /// in progress keeps the release here); `next` is the stage to start once they pass.
    Gating { next: Stage },
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
    /// The deployment runs: a CodeDeploy deployment, an ECS service deployment, or the pipeline
    /// execution until the deployment it creates reaches its hook.
    Deploying { deployment: DeploymentRef },
    /// The new version is being probed on the test listener.
    Verifying { deployment: DeploymentRef },
    /// Verification passed; the traffic shift waits for a person (or for the bake time).
    AwaitingApproval { deployment: DeploymentRef },
    /// Approved: production traffic moves to the new version.
    ShiftingTraffic { deployment: DeploymentRef },
    /// The deployment is being rolled back (verification failed, or a person rejected it).
    RollingBack { deployment: DeploymentRef, reason: String },
    /// Production runs this release.
    Succeeded,
    /// The deployment was rolled back (rejected, stopped, or failed after verification).
    RolledBack { reason: String },
    /// A newer release of the service deployed (or will) instead of this one.
    Superseded { by: ReleaseId },
    /// Ended without deploying (or deploying failed) at `stage`.
    Failed { stage: Stage, reason: String },
    /// A group's release: the services of step `step` (from 0) of the manifest's order deploy,
    /// each through its own part ([`services`]); the earlier steps' services are through.
    DeployingServices { step: usize },
    /// A group's release failed (`stage`; `None`: rolled back, by a person or an alarm): every
    /// service it changed goes back to the revision it ran before; it ends once each is back.
    RevertingServices {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<Stage>,
        reason: String,
    },
}

impl State {
    pub fn is_terminal(&self) -> bool {
        matches!(self, State::Failed { .. } | State::Succeeded | State::RolledBack { .. } | State::Superseded { .. })
    }

    /// The deployment this state is about, while one runs.
    pub fn deployment(&self) -> Option<&DeploymentRef> {
        match self {
            State::Deploying { deployment }
            | State::Verifying { deployment }
            | State::AwaitingApproval { deployment }
            | State::ShiftingTraffic { deployment }
            | State::RollingBack { deployment, .. } => Some(deployment),
            _ => None,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Collecting => f.write_str("Collecting"),
            State::Gating { next } => write!(f, "Gating images (next: {next})"),
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
            State::DeployingServices { step } => write!(f, "Deploying services (step {})", step + 1),
            State::RevertingServices { reason, .. } => write!(f, "Putting services back: {reason}"),
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

/// The release record. Serialised as it is; read through `stored.rs`, which also reads the records
/// of earlier schemas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Release {
    pub schema: u32,
    pub key: ReleaseKey,
    pub source: ManifestSource,
    /// The accepted manifest of a release of one service; `None` when the manifest was rejected,
    /// and for a group's release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
    /// The accepted version 2 manifest of a group's release (kept too when this version refused
    /// to deploy it); `None` for a release of one service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<crate::manifest::GroupManifest>,
    /// Every image of the release, each pinned once: by container for a release of one service;
    /// by image name for a group's (its sections map containers to image names).
    pub images: BTreeMap<ContainerName, ImageStatus>,
    /// A group's release: one section per service, in the manifest's order ([`group`]). Empty for
    /// a release of one service, whose deployment and verification are the fields below.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSection>,
    /// A service's part of a group's release: the group's release it belongs to. The part deploys
    /// its service as a release of one service would, from the group's pinned images, and tells
    /// the group's record each step ([`services`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of: Option<ReleaseKey>,
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
    /// What the image gate saw of each digest, and its verdict (once every image was pinned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<ImageGate>,
    /// A rollback, as confirmed from Convoy's records at admission: of which release, to which,
    /// and where the database schema stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<crate::rollback::Rollback>,
    /// The drift check at the manifest stage, one per service (`crate::drift`): what ECS ran, what
    /// Convoy deployed last, what the release derives from. Empty in records older than the check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<crate::drift::DriftCheck>,
    /// A release of one service that went live: the scheduled tasks of its task family it moved
    /// to its revision, each with the revision it ran before. (A group's are per service, in its
    /// sections.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<crate::scheduled::ScheduleMove>,
    /// Who uploaded the manifest, as CloudTrail recorded the write (`crate::submitter`); `None`
    /// in records older than the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitter: Option<crate::submitter::Submitter>,
    pub timeline: Vec<Entry>,
}

/// Something that happened to a release, as the stage that owns it words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Readiness(readiness::Event),
    Gate(gate::Event),
    Migration(migration::Event),
    Deployment(deployment::Event),
    Verification(verification::Event),
    Approval(approval::Event),
    Services(services::Event),
    Submission(submission::Event),
}

macro_rules! stage_event {
    ($variant:ident, $stage:ident) => {
        impl From<$stage::Event> for Event {
            fn from(event: $stage::Event) -> Self {
                Event::$variant(event)
            }
        }
    };
}
stage_event!(Readiness, readiness);
stage_event!(Gate, gate);
stage_event!(Migration, migration);
stage_event!(Deployment, deployment);
stage_event!(Verification, verification);
stage_event!(Approval, approval);
stage_event!(Services, services);
stage_event!(Submission, submission);

/// What a transition needs besides the record and the event; plain data from the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    /// When set, the write that makes a release ready for its migration also claims the migration
    /// (the first handler to see it ready starts it, and no second write is needed for the claim).
    pub migration: Option<MigrationClaim>,
    /// The service has an image policy: a release whose images are all pinned is gated first.
    pub gate: bool,
}

/// An event of one stage: how it applies to a record. Implemented by each stage's `Event` in its
/// own file, and by [`Event`], which dispatches to them.
pub trait StageEvent {
    /// The decision this event makes on `release`. MUST NOT do I/O or read the clock.
    ///
    /// # Errors
    /// [`TransitionError`] when the event cannot apply to this release at all.
    fn apply_to(&self, release: &Release, context: &Context) -> Result<Decision, TransitionError>;
}

impl StageEvent for Event {
    fn apply_to(&self, release: &Release, context: &Context) -> Result<Decision, TransitionError> {
        match self {
            Event::Readiness(event) => event.apply_to(release, context),
            Event::Gate(event) => event.apply_to(release, context),
            Event::Migration(event) => event.apply_to(release, context),
            Event::Deployment(event) => event.apply_to(release, context),
            Event::Verification(event) => event.apply_to(release, context),
            Event::Approval(event) => event.apply_to(release, context),
            Event::Services(event) => event.apply_to(release, context),
            Event::Submission(event) => event.apply_to(release, context),
        }
    }
}

/// A side effect to perform after the new record is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "kebab-case")]
pub enum Effect {
    /// Run the manifest's migration with the pinned images (claiming its start first, unless the
    /// write that asks for it claimed it already).
    StartMigration,
    /// Judge every pinned digest against the service's image policy (scan findings, signatures).
    JudgeImages,
    /// Stop a migration task that overran its timeout.
    StopMigration { task: TaskArn },
    /// Answer the CodeDeploy lifecycle hook Convoy verified (`PutLifecycleEventHookExecutionStatus`).
    AnswerHook { deployment: DeploymentId, execution: HookExecutionId, succeeded: bool },
    /// Let the deployment shift production traffic (policy approval: Convoy's own decision).
    ContinueDeployment { deployment: DeploymentRef },
    /// Roll the deployment back (CodeDeploy `StopDeployment` with auto rollback, or ECS
    /// `ContinueServiceDeployment` ROLLBACK): an alarm fired, or an approval came too early.
    RollBack { deployment: DeploymentRef },
    /// Free the service's deploy lock: this release no longer deploys.
    ReleaseDeployLock,
    /// Deploy the pinned images (after the migration, or with none declared).
    StartDeployment,
    /// Watch for these images and look them up in ECR now (they may predate the manifest).
    ResolveImages { images: Vec<ImageKey> },
    /// Copy the last lines of the failed migration's log into the record (best effort).
    CopyMigrationLogs { log: LogPointer },
    /// Ask CloudTrail's event history who continued (`approve`) or stopped the deployment after
    /// `since` (the deployment moved on with no call recorded).
    FindApprover { deployment: DeploymentRef, approve: bool, since: DateTime<Utc> },
    /// Remove the release from the wait-list of these images: it no longer waits for them.
    ForgetWaits { images: Vec<ImageKey> },
    /// Put the (`ecs-rolling`) service back on the revision it ran before the release, at most
    /// once (`Convoy::put_back`): what a rollback of a release spanning services asks of each.
    PutBack,
    /// A group's release: take the deploy lock of every one of its services, all or none.
    TakeServiceLocks,
    /// A group's release: open these services' parts (each a record of its own, from the group's
    /// pinned images) and start their deployments.
    OpenServices { services: Vec<ServiceName> },
    /// A group's release failed: put this service's part back on the revision it ran before.
    RevertService { service: ServiceName },
    /// A group's release ended: free the deploy lock of each of its services.
    ReleaseServiceLocks,
    /// A service of a group's release is live: its scheduled tasks (EventBridge Scheduler
    /// schedules and rules running its task family) move to the release's revision.
    MoveSchedules { service: ServiceName },
    /// A person approved a group's release: this service's verified part shifts its traffic with
    /// the release's approval.
    ApproveWithRelease { service: ServiceName },
}

/// The outcome of applying an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing changes and nothing is written; `why` is logged.
    Unchanged { why: String },
    /// Store `release` (conditionally), then perform `effects`. `passed` holds the records the
    /// change went through on the way, oldest first, when one event moved the release more than
    /// one state (the write that readies a release also claims its migration): each is announced.
    Changed { release: Box<Release>, effects: Vec<Effect>, passed: Vec<Release> },
}

impl Decision {
    pub(crate) fn unchanged(why: impl Into<String>) -> Self {
        Decision::Unchanged { why: why.into() }
    }

    pub(crate) fn changed(release: Release, effects: Vec<Effect>) -> Self {
        Decision::Changed { release: Box::new(release), effects, passed: Vec::new() }
    }

    /// A record whose state and evidence disagree (edited by hand, or written by a newer
    /// Convoy): nothing is decided on it, and the handler acknowledges instead of crashing.
    pub(crate) fn inconsistent(release: &Release, missing: &str) -> Self {
        Decision::Unchanged { why: format!("the record is inconsistent: it is {} without {missing}", release.state) }
    }

    /// `next` applied to the record this decision leaves (or to `release`, when it changed
    /// nothing): both as one decision, `passed` and effects kept in order.
    pub(crate) fn then(
        self,
        release: &Release,
        next: impl FnOnce(&Release) -> Result<Decision, TransitionError>,
    ) -> Result<Decision, TransitionError> {
        match self {
            Decision::Unchanged { why } => Ok(match next(release)? {
                Decision::Unchanged { why: more } => Decision::Unchanged { why: format!("{why}; {more}") },
                changed => changed,
            }),
            Decision::Changed { release: current, mut effects, mut passed } => Ok(match next(&current)? {
                Decision::Unchanged { .. } => Decision::Changed { release: current, effects, passed },
                Decision::Changed { release: later, effects: more, passed: between } => {
                    passed.push(*current);
                    passed.extend(between);
                    effects.extend(more);
                    Decision::Changed { release: later, effects, passed }
                }
            }),
        }
    }
}

/// An event that cannot apply to this release at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("image {image} is not part of release {release}")]
    ImageNotInRelease { image: Box<ImageKey>, release: ReleaseKey },
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
            group: None,
            images: BTreeMap::new(),
            services: Vec::new(),
            part_of: None,
            state: State::Collecting,
            migration: None,
            deployment: None,
            verification: None,
            approval: None,
            alarms: None,
            settings: None,
            gate: None,
            rollback: None,
            drift: Vec::new(),
            schedules: Vec::new(),
            submitter: None,
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
            State::Gating { .. } => vec![Effect::JudgeImages],
            State::Ready { next: Stage::Migration } => vec![Effect::StartMigration],
            State::Ready { .. } | State::Queued { .. } => vec![self.deploy_effect()],
            // The others are in a claim holder's, ECS's, CodeDeploy's or a person's hands.
            _ => Vec::new(),
        }
    }

    /// What starts the deployment stage: the release's deployment, or, for a group's release,
    /// taking its services' deploy locks (its parts then deploy each service).
    pub(crate) fn deploy_effect(&self) -> Effect {
        if self.group.is_some() { Effect::TakeServiceLocks } else { Effect::StartDeployment }
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

    /// Appends a line to the timeline.
    pub(crate) fn record(&mut self, at: DateTime<Utc>, event: &str, detail: String) {
        self.timeline.push(Entry { at, event: event.to_owned(), detail });
    }

    /// Applies `event` with no [`Context`]: each transition as it stands alone (the pipeline in
    /// `service/transition.rs` applies events with the configuration's context).
    pub fn apply(&self, event: &impl StageEvent) -> Result<Decision, TransitionError> {
        event.apply_to(self, &Context::default())
    }

    /// Applies several events in order, as one decision (one write).
    pub fn apply_all<E: StageEvent>(&self, events: &[E]) -> Result<Decision, TransitionError> {
        let Some((first, rest)) = events.split_first() else { return Ok(Decision::unchanged("no event")) };
        let mut decision = self.apply(first)?;
        for event in rest {
            decision = decision.then(self, |current| current.apply(event))?;
        }
        Ok(decision)
    }
}
