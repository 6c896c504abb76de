//! The use cases: what Convoy does with each event, over the ports. Handlers translate events into
//! calls here. A use case turns what it learned into a stage event and hands it to the one
//! transition pipeline (`transition.rs`), which stores what the state machine decides and performs
//! the effects; how a release deploys is its method's strategy (`methods/`).

mod approval;
mod confirm;
mod decide;
mod deploy;
mod drift;
mod gate;
mod gates;
mod lost_manifests;
mod methods;
mod migration;
mod readiness;
mod reconcile;
mod rollback;
mod services;
mod submitter;
mod transition;
mod verification;

pub use self::decide::Decided;
pub use self::reconcile::{CONCURRENT_VISITS, Reconciliation};
pub use self::verification::{HookAnswer, HookReply, NativeHook, OUT_OF_TIME_NOTE_LIMIT};

use std::sync::Arc;

use serde::Serialize;

use crate::config::Config;
use crate::names::ReleaseKey;
use crate::ports::{
    ActiveReleases, ApiCalls, CodeDeploy, DeployLocks, DeploymentIndex, ImageChecks, ManifestReader, MigrationLogs,
    Pipelines, Prober, Registry, ReleaseDefinitions, ReleaseEvents, ReleaseStore, ScheduledTasks, ServiceDeployments,
    ServiceRecords, Tasks, WaitList, Watch,
};
use crate::release::{Effect, Release};

/// Convoy's use cases, wired to one set of ports.
#[derive(Clone)]
pub struct Convoy {
    pub store: Arc<dyn ReleaseStore>,
    /// A service's records page by page (`convoy::history`): what Convoy deployed last, for the
    /// drift check, and what a rollback's claim is confirmed against.
    pub records: Arc<dyn ServiceRecords>,
    pub waits: Arc<dyn WaitList>,
    pub manifests: Arc<dyn ManifestReader>,
    pub registry: Arc<dyn Registry>,
    /// ECR's scans and managed signatures of the pinned digests: the image gate.
    pub image_checks: Arc<dyn ImageChecks>,
    pub tasks: Arc<dyn Tasks>,
    pub active: Arc<dyn ActiveReleases>,
    pub definitions: Arc<dyn ReleaseDefinitions>,
    /// CodeDeploy: the `codedeploy` method's deployments and those a pipeline's action creates.
    pub codedeploy: Arc<dyn CodeDeploy>,
    /// ECS's service deployments: the `ecs-native` method.
    pub service_deployments: Arc<dyn ServiceDeployments>,
    pub pipelines: Arc<dyn Pipelines>,
    pub locks: Arc<dyn DeployLocks>,
    pub deployments: Arc<dyn DeploymentIndex>,
    pub prober: Arc<dyn Prober>,
    /// Where each stored state change is announced (best effort, after the writes).
    pub events: Arc<dyn ReleaseEvents>,
    /// The migration's log: the last lines of a failed one are copied into its record.
    pub logs: Arc<dyn MigrationLogs>,
    /// CloudWatch: metric checks and alarm gates.
    pub watch: Arc<dyn Watch>,
    /// CloudTrail's event history: who approved, when no CloudTrail event named them.
    pub api_calls: Arc<dyn ApiCalls>,
    /// EventBridge Scheduler schedules and default-bus rules whose ECS target runs a service's
    /// task family: they move to the release's revision, and back on a rollback.
    pub scheduled_tasks: Arc<dyn ScheduledTasks>,
    /// The trail that says who uploaded each manifest (the reconciler's; the others never ask).
    pub upload_trail: Arc<dyn crate::ports::UploadTrail>,
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
    /// What the stored change asked for (the next stage's start among them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requested: Vec<Effect>,
}

impl Report {
    fn of(release: &Release, changed: bool, note: Option<String>, requested: Vec<Effect>) -> Self {
        Self { release: release.key.to_string(), changed, state: release.state.to_string(), note, requested }
    }
}

/// The span every log line about one release is written in: it names the service and release.
pub fn release_span(key: &ReleaseKey) -> tracing::Span {
    tracing::info_span!("release", service = %key.service, release = %key.release)
}
