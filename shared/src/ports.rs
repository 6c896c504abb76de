//! The ports: the small traits Convoy's use cases need from the outside world. Only domain types
//! cross them. Each has a real adapter (`adapters::aws`) and, all but one, an in-memory fake
//! (`adapters::memory`) that keeps the same contract, so the use cases are tested against both.
//! The exception is [`Prober`]: its real adapter ([`HttpProber`](crate::adapters::aws::HttpProber))
//! probes real HTTP servers on loopback in every test, which is cheaper and truer than a fake.

use async_trait::async_trait;

use crate::error::{LogsError, ReadError, RegistryError, StoreError};
use crate::names::{
    DeploymentId, DeploymentRef, Digest, HookExecutionId, PipelineExecutionId, ReleaseKey, ServiceDeploymentArn,
    TaskArn,
};
use crate::release::{Absence, ImageKey, LogPointer, Release};

/// The version a stored record had when it was read; conditional writes compare against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordVersion(pub String);

/// A record as read, with its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub release: Release,
    pub version: RecordVersion,
}

/// The release records: one per release, changed only by conditional writes.
#[async_trait]
pub trait ReleaseStore: Send + Sync {
    /// Reads the record of `key`. MUST return `Ok(None)` when there is none.
    async fn load(&self, key: &ReleaseKey) -> Result<Option<Stored>, StoreError>;

    /// Stores a new record. MUST return [`StoreError::AlreadyExists`] and write nothing if a record
    /// exists under its key, however concurrent the callers.
    async fn create(&self, release: &Release) -> Result<RecordVersion, StoreError>;

    /// Replaces a record. MUST return [`StoreError::Conflict`] and write nothing if the stored
    /// version is no longer `expected`.
    async fn replace(&self, release: &Release, expected: &RecordVersion) -> Result<RecordVersion, StoreError>;
}

/// Which releases wait for which image, so a push finds its releases without a scan.
#[async_trait]
pub trait WaitList: Send + Sync {
    /// Notes that `release` waits for `image`. MUST be idempotent.
    async fn add(&self, image: &ImageKey, release: &ReleaseKey) -> Result<(), StoreError>;

    /// The releases noted as waiting for `image`. Entries outlive the wait (they are removed when
    /// a release fails at images, and otherwise expire by bucket lifecycle), so callers MUST treat
    /// the record, not this list, as the truth.
    async fn waiting_for(&self, image: &ImageKey) -> Result<Vec<ReleaseKey>, StoreError>;

    /// Removes `release` from `image`'s list. MUST succeed when it was not there.
    async fn forget(&self, image: &ImageKey, release: &ReleaseKey) -> Result<(), StoreError>;
}

/// One version of one S3 object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

/// A manifest object's bytes and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedObject {
    pub bytes: Vec<u8>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
}

/// An object as a listing shows it (its current version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
    pub etag: Option<String>,
    pub size: Option<u64>,
}

/// Reads uploaded manifests.
#[async_trait]
pub trait ManifestReader: Send + Sync {
    /// Reads `object` (that exact version when it names one). MUST return [`ReadError::NotFound`]
    /// when the object or version does not exist, and [`ReadError::TooLarge`] without reading the
    /// body when it is larger than `limit` bytes.
    async fn read(&self, object: &ObjectRef, limit: usize) -> Result<FetchedObject, ReadError>;

    /// Up to `limit` objects of `bucket` under `prefix` whose keys sort after `start_after`, in
    /// key order (`ListObjectsV2`, as few pages as `limit` needs).
    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ListedObject>, ReadError>;
}

/// What one registry look-up found: each image asked for is in exactly one of the two lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lookup {
    /// The images that exist now, with their digests.
    pub found: Vec<(ImageKey, Digest)>,
    /// The images that do not, each with why.
    pub missing: Vec<(ImageKey, Absence)>,
}

/// The container registry (ECR).
#[async_trait]
pub trait Registry: Send + Sync {
    /// Looks `images` up: the digest of each that exists now, and why each other one is missing.
    /// MUST answer a missing tag with [`Absence::TagAbsent`], a missing repository with
    /// [`Absence::RepositoryUnknown`] and a repository ECR refuses to read with
    /// [`Absence::AccessDenied`], not with an error: only a failure to ask (ECR unreachable,
    /// throttled, failing) is [`RegistryError::Unavailable`].
    async fn resolve(&self, images: &[ImageKey]) -> Result<Lookup, RegistryError>;
}

/// How a service runs its tasks: what a one-off task needs to run the way the service's do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceShape {
    pub task_definition: String,
    pub network: Option<AwsVpc>,
    pub launch: Launch,
    pub platform_version: Option<String>,
}

/// The service's awsvpc network configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsVpc {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
}

/// How the service places tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// `FARGATE`, `EC2` or `EXTERNAL`.
    Type(String),
    /// A capacity provider strategy: (provider, weight, base).
    CapacityProviders(Vec<(String, i32, i32)>),
    /// Neither: the cluster's default strategy applies.
    ClusterDefault,
}

/// The migration's task definition: the service's, every named container's image pinned, only
/// the migration container essential (so the task stops when it exits, and a sidecar that cannot
/// start on its own does not fail the migration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationTaskSpec {
    /// The service's task definition ARN.
    pub base: String,
    pub container: String,
    /// Container name → pinned image URI (`<registry>/<repository>@sha256:...`).
    pub images: Vec<(String, String)>,
}

/// A registered task definition and where its migration container logs (awslogs group and
/// stream prefix), when it logs to CloudWatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredTaskDefinition {
    pub arn: String,
    pub log_group: Option<String>,
    pub log_stream_prefix: Option<String>,
}

/// A one-off task to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTaskRequest {
    pub cluster: String,
    pub task_definition: String,
    pub shape: ServiceShape,
    pub container: String,
    pub command: Vec<String>,
    pub started_by: String,
    pub group: String,
    pub client_token: String,
}

/// ECS: the service, its task definitions, one-off tasks.
#[async_trait]
pub trait Tasks: Send + Sync {
    /// How `service` runs. MUST return [`TasksError::Rejected`] when the cluster or service does
    /// not exist or is not active.
    async fn service_shape(&self, cluster: &str, service: &str) -> Result<ServiceShape, TasksError>;

    /// Registers the migration task definition. MUST return [`TasksError::Rejected`] when the
    /// base definition lacks the migration container or a container `images` names.
    async fn register_migration(&self, spec: &MigrationTaskSpec) -> Result<RegisteredTaskDefinition, TasksError>;

    /// Runs one task; returns its ARN. MUST pass `client_token` so that a repeated call within
    /// 24 hours starts no second task (where ECS honours it).
    async fn run(&self, request: &RunTaskRequest) -> Result<TaskArn, TasksError>;

    /// The ARNs of tasks (running or stopped) started with `started_by`.
    async fn find(&self, cluster: &str, started_by: &str) -> Result<Vec<TaskArn>, TasksError>;

    /// What ECS says of `task` now; `None` when ECS no longer knows it.
    async fn describe(&self, cluster: &str, task: &TaskArn) -> Result<Option<crate::release::TaskReport>, TasksError>;

    /// Stops `task`, saying why.
    async fn stop(&self, cluster: &str, task: &TaskArn, reason: &str) -> Result<(), TasksError>;
}

pub use crate::error::TasksError;

/// The releases still in progress, so the reconciler visits them without scanning every record.
#[async_trait]
pub trait ActiveReleases: Send + Sync {
    /// Notes `release` as in progress. MUST be idempotent.
    async fn mark_active(&self, release: &ReleaseKey) -> Result<(), StoreError>;
    /// Forgets `release` (it ended). MUST succeed when it was not noted.
    async fn mark_done(&self, release: &ReleaseKey) -> Result<(), StoreError>;
    /// Every release noted as in progress.
    async fn active(&self) -> Result<Vec<ReleaseKey>, StoreError>;
}

/// A deployment to create with CodeDeploy (ECS blue/green).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeDeployRequest {
    pub application: String,
    pub deployment_group: String,
    pub task_definition: String,
    pub container: String,
    pub port: u16,
    pub verify_function: String,
    /// Carries the release's marker, so a crashed start can be found again.
    pub description: String,
}

/// Where a deployment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentStatus {
    /// Running: before production traffic moved, waiting for the traffic shift to be approved
    /// (CodeDeploy's `Ready`), or wherever the source cannot tell (a pipeline execution; ECS
    /// native says its stage through [`NativeStatus`] instead).
    Running,
    /// CodeDeploy only: still running, but production traffic is rerouted to the replacement task
    /// set (someone continued it past READY_WAIT) and the original awaits its termination.
    Rerouted,
    Ended {
        end: crate::release::DeploymentEnd,
        detail: String,
    },
}

impl DeploymentStatus {
    /// Not ended yet (rerouted or not).
    pub fn running(&self) -> bool {
        matches!(self, DeploymentStatus::Running | DeploymentStatus::Rerouted)
    }
}

/// A CodeDeploy deployment's group, creation time, and whether it is an automatic or manual
/// rollback (a rollback re-runs the hooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentOrigin {
    pub application: String,
    pub deployment_group: String,
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    pub rollback: bool,
    /// The description its creator gave it (Convoy's carries the release's marker).
    pub description: Option<String>,
}

/// The deployment services: CodeDeploy, and ECS native blue/green's continuation.
#[async_trait]
pub trait Deployer: Send + Sync {
    /// Creates a deployment; returns its id. CodeDeploy has no idempotency token: callers MUST
    /// claim the start in the record first and look for an earlier one with [`Deployer::find`].
    async fn create(&self, request: &CodeDeployRequest) -> Result<DeploymentId, DeployError>;
    /// A recent deployment of the group whose description contains `marker`.
    async fn find(
        &self,
        application: &str,
        deployment_group: &str,
        marker: &str,
    ) -> Result<Option<DeploymentId>, DeployError>;
    /// Where `deployment` stands. MUST say [`DeploymentStatus::Rerouted`] once CodeDeploy moved
    /// production traffic (after READY_WAIT) while the deployment has not ended, and
    /// [`DeploymentStatus::Running`] before.
    async fn status(&self, deployment: &DeploymentId) -> Result<DeploymentStatus, DeployError>;
    /// Where `deployment` runs, when it was created and whether it rolls another back (a
    /// deployment Convoy did not create is known only by these); `None` when CodeDeploy does not
    /// know it.
    async fn origin(&self, deployment: &DeploymentId) -> Result<Option<DeploymentOrigin>, DeployError>;
    /// Answers a CodeDeploy lifecycle hook.
    async fn answer_hook(
        &self,
        deployment: &DeploymentId,
        hook_execution: &HookExecutionId,
        succeeded: bool,
    ) -> Result<(), DeployError>;
    /// Lets a deployment that waits (READY_WAIT) shift production traffic.
    async fn continue_traffic(&self, deployment: &DeploymentId) -> Result<(), DeployError>;
    /// Stops a deployment, rolling it back.
    async fn roll_back(&self, deployment: &DeploymentId) -> Result<(), DeployError>;
    /// Continues (or rolls back) an ECS native deployment paused at a pause hook.
    async fn continue_native(
        &self,
        service_deployment: &ServiceDeploymentArn,
        roll_back: bool,
    ) -> Result<(), DeployError>;
    /// ECS native blue/green: how `service` deploys (`DescribeServices`), for the checks before
    /// Convoy updates it.
    async fn native_service(&self, cluster: &str, service: &str) -> Result<NativeService, DeployError>;
    /// `UpdateService` with `task_definition`; returns the service deployment ECS started. Not
    /// idempotent: callers MUST claim the start and record the revision first, and on a takeover
    /// look for it with [`Deployer::find_native`].
    async fn start_native(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<ServiceDeploymentArn, DeployError>;
    /// The service deployment of `service` whose target revision runs `task_definition`
    /// (`ListServiceDeployments` + `DescribeServiceRevisions`), if ECS started one.
    async fn find_native(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<Option<ServiceDeploymentArn>, DeployError>;
    /// Where a service deployment stands (`DescribeServiceDeployments`).
    async fn native_status(&self, service_deployment: &ServiceDeploymentArn) -> Result<NativeStatus, DeployError>;
    /// What a CodeDeploy deployment group does once its replacement is ready
    /// (`GetDeploymentGroup`: `blueGreenDeploymentConfiguration.deploymentReadyOption`). MUST
    /// return [`DeployError::Rejected`] when the application or group does not exist.
    async fn group_wait(&self, application: &str, deployment_group: &str) -> Result<GroupWait, DeployError>;
}

/// A CodeDeploy deployment group's `deploymentReadyOption`: with `STOP_DEPLOYMENT` and a wait
/// time, CodeDeploy holds the new version at READY_WAIT until `ContinueDeployment` (and stops the
/// deployment when nobody continues it in time); with `CONTINUE_DEPLOYMENT` (CodeDeploy's
/// default, also when the group sets nothing) it reroutes production traffic by itself as soon as
/// the hooks pass, and no approval ever happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupWait {
    /// `STOP_DEPLOYMENT`, `CONTINUE_DEPLOYMENT`; `None` when the group sets none.
    pub action_on_timeout: Option<String>,
    pub wait_minutes: i32,
}

impl GroupWait {
    /// A group that waits for a person: `STOP_DEPLOYMENT` with a wait time.
    pub fn waits_for_a_person(&self) -> bool {
        self.action_on_timeout.as_deref() == Some("STOP_DEPLOYMENT") && self.wait_minutes > 0
    }

    /// One line for `convoy status` and `convoy check`.
    pub fn describe(&self) -> String {
        let action = self.action_on_timeout.as_deref().unwrap_or("CONTINUE_DEPLOYMENT (unset)");
        if self.waits_for_a_person() {
            format!("waits for a person: {action} after {} min at READY_WAIT", self.wait_minutes)
        } else if self.action_on_timeout.as_deref() == Some("STOP_DEPLOYMENT") {
            format!("does not wait for a person: {action} with a wait time of {} min", self.wait_minutes)
        } else {
            format!("does not wait for a person: {action} reroutes production traffic once the hooks pass")
        }
    }

    /// Whether Convoy may start a deployment in this group for a release approved `auto` with
    /// `bake_seconds`. A group that waits always serves. One that does not serves only a release
    /// policy approves without bake time: Convoy would continue it at once after the verify hook
    /// passed, which is what CodeDeploy does by itself, and the hook still gates the reroute.
    /// `Err(why)` otherwise.
    pub fn serves(&self, auto: bool, bake_seconds: u64) -> Result<(), String> {
        if self.waits_for_a_person() || (auto && bake_seconds == 0) {
            return Ok(());
        }
        Err(format!(
            "the deployment group {}; Convoy needs blueGreenDeploymentConfiguration.deploymentReadyOption \
             actionOnTimeout STOP_DEPLOYMENT with waitTimeInMinutes > 0, so that the traffic shift waits for \
             the approval (only an auto approval without bake time may use CONTINUE_DEPLOYMENT)",
            self.describe()
        ))
    }
}

/// How an ECS service deploys, as far as Convoy's native checks need.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NativeService {
    /// `ECS` for ECS's own deployment controller (native blue/green needs it).
    pub controller: Option<String>,
    /// `BLUE_GREEN`, `ROLLING`, ...
    pub strategy: Option<String>,
    pub hooks: Vec<NativeHook>,
}

/// One lifecycle hook of a service's deployment configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeHook {
    /// `AWS_LAMBDA` (the default) or `PAUSE`.
    pub target_type: String,
    pub target: Option<String>,
    pub role: Option<String>,
    pub stages: Vec<String>,
    /// `timeoutConfiguration.action`: what ECS does when the hook is not resolved in time,
    /// `ROLLBACK` or `CONTINUE`; `None` when unset (ECS then rolls back).
    pub timeout_action: Option<String>,
    /// `timeoutConfiguration.timeoutInMinutes`; `None` when unset (ECS then waits 1440 minutes).
    pub timeout_minutes: Option<i32>,
}

impl NativeHook {
    /// ECS's default timeout of a lifecycle hook, in minutes.
    pub const DEFAULT_TIMEOUT_MINUTES: i32 = 1440;

    /// Whether ECS moves the deployment on by itself when the hook times out.
    pub fn continues_on_timeout(&self) -> bool {
        self.timeout_action.as_deref() == Some("CONTINUE")
    }

    /// What bounds the hook: `rolls back after 1440 min (ECS default)`.
    pub fn on_timeout(&self) -> String {
        let action = if self.continues_on_timeout() { "continues" } else { "rolls back" };
        let minutes = self.timeout_minutes.unwrap_or(Self::DEFAULT_TIMEOUT_MINUTES);
        let defaulted = match (&self.timeout_action, self.timeout_minutes) {
            (None, None) => " (ECS defaults)",
            (None, Some(_)) | (Some(_), None) => " (partly ECS defaults)",
            (Some(_), Some(_)) => "",
        };
        format!("{action} after {minutes} min{defaulted}")
    }
}

/// A service deployment: where it stands, and how it shifts traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeStatus {
    pub status: DeploymentStatus,
    pub progress: crate::release::NativeProgress,
}

pub use crate::error::DeployError;

/// The release task definition: the service's, every named container's image pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseTaskSpec {
    pub base: String,
    pub images: Vec<(String, String)>,
}

/// A task definition exactly as ECS describes it: the body of `DescribeTaskDefinition` (its
/// `taskDefinition` and `tags`), every field kept, including those newer than Convoy's SDK.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribedTaskDefinition(pub serde_json::Value);

/// The service's task definitions, for the release's revision.
#[async_trait]
pub trait ReleaseDefinitions: Send + Sync {
    /// Registers the release's revision (the service's family). MUST return
    /// [`TasksError::Rejected`] when the base lacks a container `images` names.
    async fn register_release(&self, spec: &ReleaseTaskSpec) -> Result<String, TasksError>;
    /// Describes `task_definition` verbatim (for a pipeline's `taskdef.json`). MUST return
    /// [`TasksError::Rejected`] when it does not exist.
    async fn describe_verbatim(&self, task_definition: &str) -> Result<DescribedTaskDefinition, TasksError>;
}

/// A pipeline execution to start, pinned to one version of its S3 source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineStart {
    pub pipeline: String,
    pub source_action: String,
    pub source_version: String,
    /// (name, value) of the pipeline variables to set.
    pub variables: Vec<(String, String)>,
    /// `clientRequestToken`: a repeated start with it starts no second execution.
    pub token: String,
}

/// CodePipeline, and the S3 source it reads.
#[async_trait]
pub trait Pipelines: Send + Sync {
    /// Writes a deploy bundle to `bucket`/`key`, tagged with the release in its metadata, and
    /// returns the new object version. MUST return [`DeployError::Rejected`] when the bucket does
    /// not keep versions (an execution could not be pinned to what Convoy wrote).
    async fn write_bundle(
        &self,
        bucket: &str,
        key: &str,
        bundle: Vec<u8>,
        release: &ReleaseKey,
    ) -> Result<String, DeployError>;
    /// Starts an execution; returns its id. MUST pass the token.
    async fn start(&self, start: &PipelineStart) -> Result<PipelineExecutionId, DeployError>;
    /// Where the execution stands.
    async fn status(&self, pipeline: &str, execution: &PipelineExecutionId) -> Result<DeploymentStatus, DeployError>;
    /// The CodeDeploy deployment the execution's deploy action created, once CodePipeline reports
    /// it; `None` before.
    async fn deployment_of(
        &self,
        pipeline: &str,
        execution: &PipelineExecutionId,
    ) -> Result<Option<DeploymentId>, DeployError>;
}

pub use crate::release::{DeployLock, LockEntry};

/// The per-service deploy locks, changed only by conditional writes.
#[async_trait]
pub trait DeployLocks: Send + Sync {
    async fn load(
        &self,
        service: &crate::names::ServiceName,
    ) -> Result<Option<(DeployLock, RecordVersion)>, StoreError>;
    /// MUST return [`StoreError::AlreadyExists`] when a lock exists.
    async fn create(&self, service: &crate::names::ServiceName, lock: &DeployLock)
    -> Result<RecordVersion, StoreError>;
    /// MUST return [`StoreError::Conflict`] when the stored version is not `expected`.
    async fn replace(
        &self,
        service: &crate::names::ServiceName,
        lock: &DeployLock,
        expected: &RecordVersion,
    ) -> Result<RecordVersion, StoreError>;
}

/// Which release a deployment belongs to (hooks and deployment events name only the deployment).
/// Keys are what ends a release's deployment: a CodeDeploy deployment id, or a pipeline execution
/// id (its end event names only the execution); see [`DeploymentRef`].
#[async_trait]
pub trait DeploymentIndex: Send + Sync {
    /// MUST be idempotent.
    async fn note(&self, deployment: &DeploymentRef, release: &ReleaseKey) -> Result<(), StoreError>;
    async fn find(&self, deployment: &DeploymentRef) -> Result<Option<ReleaseKey>, StoreError>;
}

/// An HTTP answer, as much of it as judging needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body's first bytes (bounded by the prober), lossily decoded.
    pub body: String,
}

/// Sends one GET to the test listener. `Err` carries why no answer came (refused, timed out, reset).
#[async_trait]
pub trait Prober: Send + Sync {
    async fn get(&self, url: &str, timeout: std::time::Duration) -> Result<ProbeResponse, String>;
}

pub use crate::notify::{PublishError, ReleaseChange};

/// Where release events go (EventBridge). Best effort: the record is the truth, and a caller logs
/// a failure and moves on; it never retries a transition because an event was lost.
#[async_trait]
pub trait ReleaseEvents: Send + Sync {
    /// Publishes one state change as `source: convoy`, `detail-type: Convoy Release State Change`.
    async fn publish(&self, change: &ReleaseChange) -> Result<(), PublishError>;
}

/// The migration container's log (CloudWatch Logs, awslogs driver).
#[async_trait]
pub trait MigrationLogs: Send + Sync {
    /// The newest `limit` lines of the stream, oldest first. MUST return
    /// [`LogsError::NotFound`] when the group or stream does not exist.
    async fn last_lines(&self, log: &LogPointer, limit: usize) -> Result<Vec<String>, LogsError>;
}

/// CloudWatch, read-only: the datapoints of a metric check, the states of alarms.
#[async_trait]
pub trait Watch: Send + Sync {
    /// The values of `check`'s query (its metric, or its expression) in `period_seconds` periods
    /// from `start` to `end`. MUST return an empty list, not an error, when CloudWatch has no
    /// datapoint; [`WatchError::Rejected`] when CloudWatch refuses the query itself.
    async fn metric_values(
        &self,
        check: &crate::gates::MetricCheck,
        period_seconds: u64,
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<f64>, WatchError>;

    /// The state of each alarm in `names` that exists (an unknown name is left out).
    async fn alarm_states(&self, names: &[String]) -> Result<Vec<crate::gates::AlarmStatus>, WatchError>;
}

pub use crate::error::WatchError;

/// CloudTrail's event history (`LookupEvents`): who continued or stopped a deployment, when no
/// "AWS API Call via CloudTrail" event reached Convoy (no trail, or an event lost).
#[async_trait]
pub trait ApiCalls: Send + Sync {
    /// The successful calls that continued (`approve`) or stopped `deployment` (a CodeDeploy
    /// deployment id, or with `native` an ECS service deployment ARN) between `since` and
    /// `until`, oldest first, each with the caller CloudTrail recorded. Refused calls (with an
    /// `errorCode`) MUST NOT be returned. MUST return [`TrailError::Throttled`] only after its own
    /// bounded retries.
    async fn decisions_on(
        &self,
        deployment: &str,
        approve: bool,
        native: bool,
        since: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<crate::release::ObservedCall>, TrailError>;
}

pub use crate::error::TrailError;

#[cfg(test)]
mod group_wait_tests {
    use super::GroupWait;

    fn group(action: Option<&str>, wait_minutes: i32) -> GroupWait {
        GroupWait { action_on_timeout: action.map(str::to_owned), wait_minutes }
    }

    #[test]
    fn a_group_that_stops_after_a_wait_time_waits_for_a_person() {
        assert!(group(Some("STOP_DEPLOYMENT"), 60).waits_for_a_person());
        assert_eq!(group(Some("STOP_DEPLOYMENT"), 60).serves(false, 0), Ok(()));
    }

    #[test]
    fn a_group_that_continues_by_itself_does_not_serve_a_manual_approval() {
        let refused = group(Some("CONTINUE_DEPLOYMENT"), 0).serves(false, 0).unwrap_err();
        assert!(refused.contains("CONTINUE_DEPLOYMENT reroutes production traffic once the hooks pass"), "{refused}");
    }

    #[test]
    fn a_group_that_sets_no_ready_option_continues_by_itself() {
        let unset = group(None, 0);
        assert!(!unset.waits_for_a_person());
        assert!(unset.describe().contains("CONTINUE_DEPLOYMENT (unset)"), "{}", unset.describe());
    }

    #[test]
    fn a_group_that_stops_without_a_wait_time_does_not_wait_for_a_person() {
        let refused = group(Some("STOP_DEPLOYMENT"), 0).serves(false, 0).unwrap_err();
        assert!(refused.contains("wait time of 0 min"), "{refused}");
    }

    #[test]
    fn an_auto_approval_without_bake_time_may_use_a_group_that_continues() {
        assert_eq!(group(Some("CONTINUE_DEPLOYMENT"), 0).serves(true, 0), Ok(()));
    }

    #[test]
    fn an_auto_approval_with_bake_time_needs_a_group_that_waits() {
        assert!(group(Some("CONTINUE_DEPLOYMENT"), 0).serves(true, 300).is_err());
    }
}
