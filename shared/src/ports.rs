//! The ports: the small traits Convoy's use cases need from the outside world. Only domain types
//! cross them. Each has a real adapter (`adapters::aws`) and, all but one, an in-memory fake
//! (`adapters::memory`) that keeps the same contract, so the use cases are tested against both.
//! The exception is [`Prober`]: its real adapter ([`HttpProber`](crate::adapters::aws::HttpProber))
//! probes real HTTP servers on loopback in every test, which is cheaper and truer than a fake.

use async_trait::async_trait;

use crate::error::{LogsError, ReadError, RegistryError, StoreError};
use crate::image_policy::{ScanReport, Signature};
use crate::names::{
    AccountId, DeploymentId, DeploymentRef, Digest, HookExecutionId, PipelineExecutionId, ReleaseKey, RepositoryName,
    ServiceDeploymentArn, TaskArn,
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
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a record that cannot be read (not retried); [`StoreError::Unavailable`]
    /// when the store cannot be reached.
    async fn load(&self, key: &ReleaseKey) -> Result<Option<Stored>, StoreError>;

    /// Stores a new record. MUST return [`StoreError::AlreadyExists`] and write nothing if a record
    /// exists under its key, however concurrent the callers.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] as above; [`StoreError::Unavailable`] when the store cannot be reached.
    async fn create(&self, release: &Release) -> Result<RecordVersion, StoreError>;

    /// Replaces a record. MUST return [`StoreError::Conflict`] and write nothing if the stored
    /// version is no longer `expected`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] as above (S3 may also answer a concurrent write with it: worth a
    /// retry); [`StoreError::Unavailable`] when the store cannot be reached.
    async fn replace(&self, release: &Release, expected: &RecordVersion) -> Result<RecordVersion, StoreError>;
}

/// Which releases wait for which image, so a push finds its releases without a scan.
#[async_trait]
pub trait WaitList: Send + Sync {
    /// Notes that `release` waits for `image`. MUST be idempotent.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn add(&self, image: &ImageKey, release: &ReleaseKey) -> Result<(), StoreError>;

    /// The releases noted as waiting for `image`. Entries outlive the wait (they are removed when
    /// a release fails at images, and otherwise expire by bucket lifecycle), so callers MUST treat
    /// the record, not this list, as the truth.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn waiting_for(&self, image: &ImageKey) -> Result<Vec<ReleaseKey>, StoreError>;

    /// Removes `release` from `image`'s list. MUST succeed when it was not there.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
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
    ///
    /// # Errors
    /// [`ReadError::NotFound`] and [`ReadError::TooLarge`] as above (bad input: the release ends);
    /// [`ReadError::Unavailable`] when S3 cannot be reached.
    async fn read(&self, object: &ObjectRef, limit: usize) -> Result<FetchedObject, ReadError>;

    /// Up to `limit` objects of `bucket` under `prefix` whose keys sort after `start_after`, in
    /// key order (`ListObjectsV2`, as few pages as `limit` needs).
    ///
    /// # Errors
    /// [`ReadError::Unavailable`] when S3 cannot be reached.
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
    ///
    /// # Errors
    /// [`RegistryError::Unavailable`] as above.
    async fn resolve(&self, images: &[ImageKey]) -> Result<Lookup, RegistryError>;
}

/// What ECR knows of a pushed digest besides its tag: its scan and its managed signatures.
#[async_trait]
pub trait ImageChecks: Send + Sync {
    /// The scan of `digest` (`DescribeImageScanFindings`, every page). MUST answer an image never
    /// scanned with [`ScanReport::NotFound`], a scan still running with
    /// [`ScanReport::InProgress`], and ECR's refusal (access denied, no such image) with
    /// [`ScanReport::Refused`], not with an error.
    ///
    /// # Errors
    /// [`RegistryError::Unavailable`] when ECR could not be asked (unreachable, throttled,
    /// failing): a retry may help.
    async fn scan(
        &self,
        registry: &AccountId,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<ScanReport, RegistryError>;

    /// Each signing profile's status for `digest` (`DescribeImageSigningStatus`); empty when no
    /// signing rule of the registry matched the image. A refusal is an empty answer: a required
    /// profile then reads as "not signed".
    ///
    /// # Errors
    /// [`RegistryError::Unavailable`] as above.
    async fn signatures(
        &self,
        registry: &AccountId,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<Signature>, RegistryError>;
}

/// How a service runs its tasks: what a one-off task needs to run the way the service's do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceShape {
    /// The task definition the service runs: its PRIMARY task set's (a `CODE_DEPLOY` or
    /// `EXTERNAL` controller: "the task set is serving production traffic"), else the service's
    /// own, which each `UpdateService` sets with the PRIMARY deployment ("the most recent
    /// deployment of a service"; Amazon ECS API Reference, `TaskSet` and `Deployment` data types).
    pub task_definition: String,
    /// When ECS started running it: that task set's `createdAt`, or the PRIMARY deployment's
    /// when it runs the same task definition; `None` when ECS does not say.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
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
    ///
    /// # Errors
    /// [`TasksError::Rejected`] as above; [`TasksError::Unavailable`] when ECS cannot be reached.
    async fn service_shape(&self, cluster: &str, service: &str) -> Result<ServiceShape, TasksError>;

    /// Registers the migration task definition. MUST return [`TasksError::Rejected`] when the
    /// base definition lacks the migration container or a container `images` names.
    ///
    /// # Errors
    /// [`TasksError::Rejected`] as above; [`TasksError::Unavailable`] when ECS cannot be reached.
    async fn register_migration(&self, spec: &MigrationTaskSpec) -> Result<RegisteredTaskDefinition, TasksError>;

    /// Runs one task; returns its ARN. MUST pass `client_token` so that a repeated call within
    /// 24 hours starts no second task (where ECS honours it).
    ///
    /// # Errors
    /// [`TasksError::Rejected`] when ECS refuses the task for good (an invalid parameter, a missing
    /// role); [`TasksError::Unavailable`] when ECS cannot be reached or starts no task.
    async fn run(&self, request: &RunTaskRequest) -> Result<TaskArn, TasksError>;

    /// The ARNs of tasks (running or stopped) started with `started_by`.
    ///
    /// # Errors
    /// [`TasksError::Unavailable`] when ECS cannot be reached.
    async fn find(&self, cluster: &str, started_by: &str) -> Result<Vec<TaskArn>, TasksError>;

    /// What ECS says of `task` now; `None` when ECS no longer knows it.
    ///
    /// # Errors
    /// [`TasksError::Unavailable`] when ECS cannot be reached.
    async fn describe(&self, cluster: &str, task: &TaskArn) -> Result<Option<crate::release::TaskReport>, TasksError>;

    /// Stops `task`, saying why.
    ///
    /// # Errors
    /// [`TasksError::Rejected`] when ECS refuses (an unknown task); [`TasksError::Unavailable`] otherwise.
    async fn stop(&self, cluster: &str, task: &TaskArn, reason: &str) -> Result<(), TasksError>;
}

pub use crate::error::TasksError;

/// A record as a listing names it: its release and when it was last written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRecord {
    pub key: ReleaseKey,
    /// When the record was last written (S3's `LastModified`): the release cannot have gone live
    /// later than that (`history::CLOCK_SLACK` aside).
    pub written_at: chrono::DateTime<chrono::Utc>,
}

/// One page of a service's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPage {
    pub records: Vec<ListedRecord>,
    /// The token of the next page; `None`: this was the last.
    pub next: Option<String>,
}

/// The records of one service, listed without being read: what `convoy history` pages through.
#[async_trait]
pub trait ServiceRecords: Send + Sync {
    /// One page of the records of `service` (its releases and its parts of group releases; never
    /// another service's, even one whose name begins with this one), in key order; `token` is the
    /// previous page's [`RecordPage::next`], `None` for the first page.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached (a retry may help).
    async fn record_page(
        &self,
        service: &crate::names::ServiceName,
        token: Option<String>,
    ) -> Result<RecordPage, StoreError>;
}

/// The releases still in progress, so the reconciler visits them without scanning every record.
#[async_trait]
pub trait ActiveReleases: Send + Sync {
    /// Notes `release` as in progress. MUST be idempotent.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn mark_active(&self, release: &ReleaseKey) -> Result<(), StoreError>;
    /// Forgets `release` (it ended). MUST succeed when it was not noted.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn mark_done(&self, release: &ReleaseKey) -> Result<(), StoreError>;
    /// Every release noted as in progress.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn active(&self) -> Result<Vec<ReleaseKey>, StoreError>;
}

/// The most deployment ids one `BatchGetDeployments` takes ("The maximum number of deployment
/// IDs you can specify is 25", CodeDeploy API Reference, BatchGetDeployments).
pub const STATUS_BATCH: usize = 25;

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

/// CodeDeploy (ECS blue/green deployment groups): the `codedeploy` method's deployments, and the
/// deployments a pipeline's `CodeDeployToECS` action creates.
#[async_trait]
pub trait CodeDeploy: Send + Sync {
    /// Creates a deployment; returns its id. CodeDeploy has no idempotency token: callers MUST
    /// claim the start in the record first and look for an earlier one with [`CodeDeploy::find`].
    ///
    /// # Errors
    /// [`DeployError::Rejected`] when CodeDeploy refuses the request for good (no such
    /// application or group, an invalid revision); [`DeployError::Unavailable`] otherwise.
    async fn create(&self, request: &CodeDeployRequest) -> Result<DeploymentId, DeployError>;

    /// A recent deployment of the group whose description contains `marker` (the first page of
    /// the group's newest deployments).
    ///
    /// # Errors
    /// [`DeployError::Unavailable`] when CodeDeploy cannot be asked.
    async fn find(
        &self,
        application: &str,
        deployment_group: &str,
        marker: &str,
    ) -> Result<Option<DeploymentId>, DeployError>;

    /// Where `deployment` stands. MUST say [`DeploymentStatus::Rerouted`] once CodeDeploy moved
    /// production traffic and the deployment still runs (its termination wait started).
    ///
    /// # Errors
    /// [`DeployError::Rejected`] for a deployment CodeDeploy does not know;
    /// [`DeployError::Unavailable`] otherwise.
    async fn status(&self, deployment: &DeploymentId) -> Result<DeploymentStatus, DeployError>;

    /// Where each of `deployments` stands, as [`CodeDeploy::status`] says it, in one request
    /// (`BatchGetDeployments`, at most [`STATUS_BATCH`] ids; the reconciler asks this per batch
    /// of visits instead of one `GetDeployment` each). A deployment the answer leaves out is
    /// missing from the result: the caller asks it alone with [`CodeDeploy::status`].
    ///
    /// # Errors
    /// [`DeployError::Rejected`] when CodeDeploy refuses the batch (more than [`STATUS_BATCH`]
    /// ids, a malformed one); [`DeployError::Unavailable`] otherwise.
    async fn statuses(
        &self,
        deployments: &[DeploymentId],
    ) -> Result<Vec<(DeploymentId, DeploymentStatus)>, DeployError>;

    /// Where `deployment` runs, when it was created and whether it rolls another back (a
    /// deployment Convoy did not create is known only by these); `Ok(None)` when CodeDeploy does
    /// not know it.
    ///
    /// # Errors
    /// [`DeployError::Unavailable`] when CodeDeploy cannot be asked.
    async fn origin(&self, deployment: &DeploymentId) -> Result<Option<DeploymentOrigin>, DeployError>;

    /// The status of the `AfterAllowTestTraffic` lifecycle event of `deployment` on its ECS
    /// target `target` (`<cluster>:<service>`), as `GetDeploymentTarget` says it (`Pending`,
    /// `InProgress`, `Succeeded`, `Failed`, `Skipped`, `Unknown`): a hook invocation is CodeDeploy's
    /// only while it is `InProgress`. `Ok(None)` when CodeDeploy knows no such deployment, target
    /// or event.
    ///
    /// # Errors
    /// [`DeployError::Unavailable`] when CodeDeploy cannot be asked.
    async fn test_traffic_hook(&self, deployment: &DeploymentId, target: &str) -> Result<Option<String>, DeployError>;

    /// Answers a lifecycle hook (`PutLifecycleEventHookExecutionStatus`).
    ///
    /// # Errors
    /// [`DeployError::Rejected`] when CodeDeploy refuses the answer (already answered, unknown
    /// execution); [`DeployError::Unavailable`] otherwise.
    async fn answer_hook(
        &self,
        deployment: &DeploymentId,
        hook_execution: &HookExecutionId,
        succeeded: bool,
    ) -> Result<(), DeployError>;

    /// Lets a deployment that waits (READY_WAIT) shift production traffic (`ContinueDeployment`).
    ///
    /// # Errors
    /// [`DeployError::NotYet`] before the deployment waits for it; [`DeployError::Rejected`] for
    /// an unknown or ended deployment; [`DeployError::Unavailable`] otherwise.
    async fn continue_traffic(&self, deployment: &DeploymentId) -> Result<(), DeployError>;

    /// Stops a deployment, rolling it back (`StopDeployment` with auto rollback).
    ///
    /// # Errors
    /// [`DeployError::Rejected`] for an unknown or ended deployment; [`DeployError::Unavailable`]
    /// otherwise.
    async fn roll_back(&self, deployment: &DeploymentId) -> Result<(), DeployError>;

    /// What a deployment group does once its replacement is ready (`GetDeploymentGroup`:
    /// `blueGreenDeploymentConfiguration.deploymentReadyOption`).
    ///
    /// # Errors
    /// MUST return [`DeployError::Rejected`] when the application or group does not exist;
    /// [`DeployError::Unavailable`] otherwise.
    async fn group_wait(&self, application: &str, deployment_group: &str) -> Result<GroupWait, DeployError>;
}

/// ECS's service deployments (native blue/green): the `ecs-native` method.
#[async_trait]
pub trait ServiceDeployments: Send + Sync {
    /// How `service` deploys (`DescribeServices`: controller, strategy, lifecycle hooks), for the
    /// checks before Convoy updates it.
    ///
    /// # Errors
    /// [`DeployError::Rejected`] when the cluster or service does not exist;
    /// [`DeployError::Unavailable`] otherwise.
    async fn describe_service(&self, cluster: &str, service: &str) -> Result<NativeService, DeployError>;

    /// `UpdateService` with `task_definition`; returns the service deployment ECS started. Not
    /// idempotent: callers MUST claim the start and record the revision first, and on a takeover
    /// look for it with [`ServiceDeployments::find`].
    ///
    /// # Errors
    /// [`DeployError::Rejected`] when ECS refuses the update for good; [`DeployError::Unavailable`]
    /// otherwise.
    async fn start(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<ServiceDeploymentArn, DeployError>;

    /// The service deployment of `service` whose target revision runs `task_definition`
    /// (`ListServiceDeployments` + `DescribeServiceRevisions`), if ECS started one.
    ///
    /// # Errors
    /// [`DeployError::Unavailable`] when ECS cannot be asked.
    async fn find(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<Option<ServiceDeploymentArn>, DeployError>;

    /// Where a service deployment stands (`DescribeServiceDeployments`).
    ///
    /// # Errors
    /// [`DeployError::Rejected`] for a service deployment ECS does not know;
    /// [`DeployError::Unavailable`] otherwise.
    async fn status(&self, service_deployment: &ServiceDeploymentArn) -> Result<NativeStatus, DeployError>;

    /// Continues a deployment paused at a pause hook (`ContinueServiceDeployment` CONTINUE).
    ///
    /// # Errors
    /// [`DeployError::Rejected`] when ECS refuses (not paused, unknown); [`DeployError::Unavailable`]
    /// otherwise.
    async fn continue_deployment(&self, service_deployment: &ServiceDeploymentArn) -> Result<(), DeployError>;

    /// Rolls a paused deployment back (`ContinueServiceDeployment` ROLLBACK).
    ///
    /// # Errors
    /// As [`ServiceDeployments::continue_deployment`].
    async fn roll_back(&self, service_deployment: &ServiceDeploymentArn) -> Result<(), DeployError>;
}

pub use crate::approval_gate::{GroupWait, NativeHook, NativeService};

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
    ///
    /// # Errors
    /// [`TasksError::Rejected`] as above; [`TasksError::Unavailable`] when ECS cannot be reached.
    async fn register_release(&self, spec: &ReleaseTaskSpec) -> Result<String, TasksError>;
    /// Describes `task_definition` verbatim (for a pipeline's `taskdef.json`). MUST return
    /// [`TasksError::Rejected`] when it does not exist.
    ///
    /// # Errors
    /// [`TasksError::Rejected`] as above; [`TasksError::Unavailable`] when ECS cannot be reached.
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
    ///
    /// # Errors
    /// [`DeployError::Rejected`] as above; [`DeployError::Unavailable`] when S3 cannot be reached.
    async fn write_bundle(
        &self,
        bucket: &str,
        key: &str,
        bundle: Vec<u8>,
        release: &ReleaseKey,
    ) -> Result<String, DeployError>;
    /// Starts an execution; returns its id. MUST pass the token.
    ///
    /// # Errors
    /// [`DeployError::Rejected`] when CodePipeline refuses the start for good (no such pipeline, an
    /// invalid variable); [`DeployError::Unavailable`] otherwise.
    async fn start(&self, start: &PipelineStart) -> Result<PipelineExecutionId, DeployError>;
    /// Where the execution stands.
    ///
    /// # Errors
    /// [`DeployError::Rejected`] for an execution CodePipeline does not know;
    /// [`DeployError::Unavailable`] otherwise.
    async fn status(&self, pipeline: &str, execution: &PipelineExecutionId) -> Result<DeploymentStatus, DeployError>;
    /// The CodeDeploy deployment the execution's deploy action created, once CodePipeline reports
    /// it; `None` before.
    ///
    /// # Errors
    /// [`DeployError::Rejected`] when CodePipeline refuses to list the execution's actions;
    /// [`DeployError::Unavailable`] otherwise.
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
    /// The service's lock and its version; `Ok(None)` when it has none yet.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a lock that cannot be read; [`StoreError::Unavailable`] when the
    /// store cannot be reached.
    async fn load(
        &self,
        service: &crate::names::ServiceName,
    ) -> Result<Option<(DeployLock, RecordVersion)>, StoreError>;
    /// MUST return [`StoreError::AlreadyExists`] when a lock exists.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] as above; [`StoreError::Unavailable`] when the store cannot be reached.
    async fn create(&self, service: &crate::names::ServiceName, lock: &DeployLock)
    -> Result<RecordVersion, StoreError>;
    /// MUST return [`StoreError::Conflict`] when the stored version is not `expected`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] as above; [`StoreError::Unavailable`] when the store cannot be reached.
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
    /// Notes that `deployment` is `release`'s. MUST be idempotent.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn note(&self, deployment: &DeploymentRef, release: &ReleaseKey) -> Result<(), StoreError>;
    /// The release `deployment` was noted for; `Ok(None)` when none.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn find(&self, deployment: &DeploymentRef) -> Result<Option<ReleaseKey>, StoreError>;
    /// The record of the release `deployment` was noted for, read in the same call (a hook needs
    /// the record itself before it probes); `Ok(None)` when none was noted or the record is gone.
    ///
    /// # Errors
    /// As [`ReleaseStore::load`]: [`StoreError::Unavailable`], or [`StoreError::Corrupt`] for a
    /// record that no longer reads.
    async fn find_record(&self, deployment: &DeploymentRef) -> Result<Option<Stored>, StoreError>;
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
    /// One GET of `url`, given up after `timeout`.
    ///
    /// # Errors
    /// Why no answer came (refused, timed out, reset), as text: a probe's failure is evidence
    /// recorded as is, never retried.
    async fn get(&self, url: &str, timeout: std::time::Duration) -> Result<ProbeResponse, String>;
}

pub use crate::notify::{PublishError, ReleaseChange};

/// Where release events go (EventBridge). Best effort: the record is the truth, and a caller logs
/// a failure and moves on; it never retries a transition because an event was lost.
#[async_trait]
pub trait ReleaseEvents: Send + Sync {
    /// Publishes state changes, in order, each as `source: convoy`, `detail-type: Convoy Release
    /// State Change` (one `PutEvents` per ten).
    ///
    /// # Errors
    /// [`PublishError`] when any of them was not accepted.
    async fn publish(&self, changes: &[ReleaseChange]) -> Result<(), PublishError>;
}

/// The migration container's log (CloudWatch Logs, awslogs driver).
#[async_trait]
pub trait MigrationLogs: Send + Sync {
    /// The newest `limit` lines of the stream, oldest first. MUST return
    /// [`LogsError::NotFound`] when the group or stream does not exist.
    ///
    /// # Errors
    /// [`LogsError::NotFound`] as above; [`LogsError::Unavailable`] when CloudWatch Logs cannot be
    /// reached.
    async fn last_lines(&self, log: &LogPointer, limit: usize) -> Result<Vec<String>, LogsError>;
}

/// CloudWatch, read-only: the datapoints of a metric check, the states of alarms.
#[async_trait]
pub trait Watch: Send + Sync {
    /// The values of `check`'s query (its metric, or its expression) in `period_seconds` periods
    /// from `start` to `end`. MUST return an empty list, not an error, when CloudWatch has no
    /// datapoint; [`WatchError::Rejected`] when CloudWatch refuses the query itself.
    ///
    /// # Errors
    /// [`WatchError::Rejected`] as above; [`WatchError::Unavailable`] when CloudWatch cannot be reached.
    async fn metric_values(
        &self,
        check: &crate::gates::MetricCheck,
        period_seconds: u64,
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<f64>, WatchError>;

    /// The state of each alarm in `names` that exists (an unknown name is left out).
    ///
    /// # Errors
    /// [`WatchError::Unavailable`] when CloudWatch cannot be reached.
    async fn alarm_states(&self, names: &[String]) -> Result<Vec<crate::gates::AlarmStatus>, WatchError>;
}

pub use crate::error::WatchError;

/// CloudTrail's event history (`LookupEvents`): who continued or stopped a deployment, when no
/// "AWS API Call via CloudTrail" event reached Convoy (no trail, or an event lost).
#[async_trait]
pub trait ApiCalls: Send + Sync {
    /// The successful calls that continued (`approve`) or stopped `deployment` (a CodeDeploy
    /// deployment or an ECS service deployment) between `since` and `until`, oldest first, each
    /// with the caller CloudTrail recorded. Refused calls (with an `errorCode`) MUST NOT be
    /// returned.
    ///
    /// # Errors
    /// MUST return [`TrailError::Throttled`] only after its own bounded retries;
    /// [`TrailError::Unavailable`] otherwise.
    async fn decisions_on(
        &self,
        deployment: &DeploymentRef,
        approve: bool,
        since: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<crate::release::ObservedCall>, TrailError>;
}

pub use crate::error::TrailError;

/// The trail the operator named for manifest uploads (`CONVOY_MANIFEST_TRAIL`): whether it logs
/// the write that uploaded a manifest, and that write's record in the log files it delivered.
#[async_trait]
pub trait UploadTrail: Send + Sync {
    /// Whether `trail` (a name or ARN) logs successful writes of `bucket`/`key` made in Convoy's
    /// account and region, and where it delivers its log files. MUST answer a trail that does not
    /// exist, is not logging, or selects no such data event with [`Coverage::NotLogged`](crate::submitter::Coverage).
    ///
    /// # Errors
    /// [`TrailError::Unavailable`] when CloudTrail (or the trail's bucket) cannot be reached or
    /// refuses Convoy.
    async fn coverage(&self, trail: &str, bucket: &str, key: &str) -> Result<crate::submitter::Coverage, TrailError>;

    /// The record of the write that made `source` (see [`find_upload`](crate::submitter::find_upload)),
    /// in a log file `delivery` delivered from `from` to `until` (the delivery times of the files'
    /// names), oldest file first. MUST return `Ok(None)` when no such file holds it, and MUST NOT
    /// read a file outside `delivery`'s folder.
    ///
    /// # Errors
    /// [`TrailError::Unavailable`] when the bucket cannot be read, or a file is not a gzip'd
    /// CloudTrail log.
    async fn find_upload(
        &self,
        delivery: &crate::submitter::Delivery,
        source: &crate::release::ManifestSource,
        created: chrono::DateTime<chrono::Utc>,
        from: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<crate::submitter::Uploader>, TrailError>;
}

/// Scheduled tasks (EventBridge Scheduler schedules in every schedule group, and rules on the
/// account's default event bus) whose ECS `RunTask` target runs a service's task family: they move
/// with its release.
#[async_trait]
pub trait ScheduledTasks: Send + Sync {
    /// Every schedule and rule target whose ECS target's task definition is of `family` (see
    /// [`is_of_family`](crate::scheduled::is_of_family)), with the task definition it runs now.
    /// Targets of another family, and targets that are not ECS tasks, MUST NOT be returned.
    ///
    /// # Errors
    /// [`ScheduleError::Rejected`] when AWS refuses the reads (access denied);
    /// [`ScheduleError::Unavailable`] when it cannot be reached.
    async fn find(&self, family: &str) -> Result<Vec<crate::scheduled::ScheduledTask>, ScheduleError>;

    /// Makes `target` run `revision`, changing nothing else of the schedule or rule target. MUST
    /// write nothing and return [`Pointed::Already`](crate::scheduled::Pointed::Already) when it
    /// runs `revision` already; [`ScheduleError::NotFound`] when the schedule, rule or target is
    /// gone (or its target is no longer an ECS task). Putting back is `point(target, previous)`.
    ///
    /// # Errors
    /// [`ScheduleError::NotFound`] as above; [`ScheduleError::Rejected`] when AWS refuses the write
    /// (an invalid revision, a role it may not pass); [`ScheduleError::Unavailable`] otherwise.
    async fn point(
        &self,
        target: &crate::scheduled::ScheduledTarget,
        revision: &str,
    ) -> Result<crate::scheduled::Pointed, ScheduleError>;
}

pub use crate::error::ScheduleError;
