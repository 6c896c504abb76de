//! In-memory fakes of the ports, faithful to their contracts (conditional writes included), so the
//! use cases can be tested fast and under real concurrency.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::{LogsError, ReadError, RegistryError, StoreError, TasksError};
use crate::names::{
    AccountId, DeploymentId, DeploymentRef, Digest, HookExecutionId, PipelineExecutionId, ReleaseKey, RepositoryName,
    ServiceDeploymentArn, TaskArn,
};
use crate::ports::{
    ActiveReleases, FetchedObject, Lookup, ManifestReader, MigrationTaskSpec, ObjectRef, RecordVersion,
    RegisteredTaskDefinition, Registry, ReleaseStore, RunTaskRequest, ServiceShape, Stored, Tasks, WaitList,
};
use crate::release::{Absence, ContainerReport, ImageKey, Release, TaskReport};

/// Records and the wait-list. Records are kept as JSON so every write round-trips like in S3.
#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<ReleaseKey, (String, u64)>>,
    waits: Mutex<BTreeSet<(ImageKey, ReleaseKey)>>,
    active: Mutex<BTreeSet<ReleaseKey>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic in another test thread must not hide this one's result behind a poisoned lock.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl ReleaseStore for MemoryStore {
    async fn load(&self, key: &ReleaseKey) -> Result<Option<Stored>, StoreError> {
        let records = lock(&self.records);
        let Some((json, version)) = records.get(key) else { return Ok(None) };
        let release = serde_json::from_str(json)
            .map_err(|e| StoreError::Corrupt { key: key.to_string(), detail: e.to_string() })?;
        Ok(Some(Stored { release, version: RecordVersion(version.to_string()) }))
    }

    async fn create(&self, release: &Release) -> Result<RecordVersion, StoreError> {
        let json = serde_json::to_string(release).expect("a record always serialises");
        let mut records = lock(&self.records);
        if records.contains_key(&release.key) {
            return Err(StoreError::AlreadyExists);
        }
        records.insert(release.key.clone(), (json, 1));
        Ok(RecordVersion("1".into()))
    }

    async fn replace(&self, release: &Release, expected: &RecordVersion) -> Result<RecordVersion, StoreError> {
        let json = serde_json::to_string(release).expect("a record always serialises");
        let mut records = lock(&self.records);
        match records.get_mut(&release.key) {
            Some((stored, version)) if version.to_string() == expected.0 => {
                *stored = json;
                *version += 1;
                Ok(RecordVersion(version.to_string()))
            }
            _ => Err(StoreError::Conflict),
        }
    }
}

#[async_trait]
impl WaitList for MemoryStore {
    async fn add(&self, image: &ImageKey, release: &ReleaseKey) -> Result<(), StoreError> {
        lock(&self.waits).insert((image.clone(), release.clone()));
        Ok(())
    }

    async fn waiting_for(&self, image: &ImageKey) -> Result<Vec<ReleaseKey>, StoreError> {
        Ok(lock(&self.waits).iter().filter(|(i, _)| i == image).map(|(_, r)| r.clone()).collect())
    }

    async fn forget(&self, image: &ImageKey, release: &ReleaseKey) -> Result<(), StoreError> {
        lock(&self.waits).remove(&(image.clone(), release.clone()));
        Ok(())
    }
}

#[async_trait]
impl ActiveReleases for MemoryStore {
    async fn mark_active(&self, release: &ReleaseKey) -> Result<(), StoreError> {
        lock(&self.active).insert(release.clone());
        Ok(())
    }

    async fn mark_done(&self, release: &ReleaseKey) -> Result<(), StoreError> {
        lock(&self.active).remove(release);
        Ok(())
    }

    async fn active(&self) -> Result<Vec<ReleaseKey>, StoreError> {
        Ok(lock(&self.active).iter().cloned().collect())
    }
}

/// A registry whose images tests push. A repository exists once created or pushed to; a
/// registry (account) may be denied, as ECR denies one Convoy's role may not read.
#[derive(Default)]
pub struct MemoryRegistry {
    images: Mutex<HashMap<ImageKey, Digest>>,
    repositories: Mutex<HashSet<(AccountId, RepositoryName)>>,
    denied: Mutex<HashSet<AccountId>>,
}

impl MemoryRegistry {
    pub fn push(&self, image: ImageKey, digest: Digest) {
        self.create_repository(&image.registry, &image.repository);
        lock(&self.images).insert(image, digest);
    }

    pub fn create_repository(&self, registry: &AccountId, repository: &RepositoryName) {
        lock(&self.repositories).insert((registry.clone(), repository.clone()));
    }

    /// Every later look-up in `registry` is refused, as ECR refuses a role without read access.
    pub fn deny(&self, registry: &AccountId) {
        lock(&self.denied).insert(registry.clone());
    }
}

#[async_trait]
impl Registry for MemoryRegistry {
    async fn resolve(&self, images: &[ImageKey]) -> Result<Lookup, RegistryError> {
        let stored = lock(&self.images);
        let repositories = lock(&self.repositories);
        let denied = lock(&self.denied);
        let mut lookup = Lookup::default();
        for image in images {
            if denied.contains(&image.registry) {
                let detail = format!("not authorized to read registry {}", image.registry);
                lookup.missing.push((image.clone(), Absence::AccessDenied { detail }));
            } else if let Some(digest) = stored.get(image) {
                lookup.found.push((image.clone(), digest.clone()));
            } else if repositories.contains(&(image.registry.clone(), image.repository.clone())) {
                lookup.missing.push((image.clone(), Absence::TagAbsent));
            } else {
                lookup.missing.push((image.clone(), Absence::RepositoryUnknown));
            }
        }
        Ok(lookup)
    }
}

/// `(bucket, key)` → every version uploaded, oldest first, as `(version id, bytes)`.
type Versions = HashMap<(String, String), Vec<(String, Vec<u8>)>>;

/// Uploaded objects, every version kept.
#[derive(Default)]
pub struct MemoryObjects {
    objects: Mutex<Versions>,
    /// When each object's current version was put.
    modified: Mutex<HashMap<(String, String), chrono::DateTime<chrono::Utc>>>,
}

impl MemoryObjects {
    /// Stores a new version and returns its version id.
    pub fn put(&self, bucket: &str, key: &str, bytes: impl Into<Vec<u8>>) -> String {
        lock(&self.modified).insert((bucket.to_owned(), key.to_owned()), chrono::Utc::now());
        let mut objects = lock(&self.objects);
        let versions = objects.entry((bucket.to_owned(), key.to_owned())).or_default();
        let version = format!("v{}", versions.len() + 1);
        versions.push((version.clone(), bytes.into()));
        version
    }
}

#[async_trait]
impl ManifestReader for MemoryObjects {
    async fn read(&self, object: &ObjectRef, limit: usize) -> Result<FetchedObject, ReadError> {
        let objects = lock(&self.objects);
        let versions = objects.get(&(object.bucket.clone(), object.key.clone())).ok_or(ReadError::NotFound)?;
        let (version, bytes) = match &object.version_id {
            Some(wanted) => versions.iter().find(|(v, _)| v == wanted).ok_or(ReadError::NotFound)?,
            None => versions.last().ok_or(ReadError::NotFound)?,
        };
        if bytes.len() > limit {
            return Err(ReadError::TooLarge { size: bytes.len() as u64, limit });
        }
        Ok(FetchedObject { bytes: bytes.clone(), etag: None, version_id: Some(version.clone()) })
    }

    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::ports::ListedObject>, ReadError> {
        let objects = lock(&self.objects);
        let modified = lock(&self.modified);
        let mut keys: Vec<&(String, String)> = objects
            .keys()
            .filter(|(b, k)| b == bucket && k.starts_with(prefix) && start_after.is_none_or(|after| k.as_str() > after))
            .collect();
        keys.sort();
        Ok(keys
            .into_iter()
            .take(limit)
            .map(|id| crate::ports::ListedObject {
                key: id.1.clone(),
                last_modified: modified.get(id).copied(),
                etag: None,
                size: objects[id].last().map(|(_, bytes)| bytes.len() as u64),
            })
            .collect())
    }
}

/// ECS with one service per name, and tasks that run until a test stops them. Unlike moto it
/// honours `clientToken`, as ECS does.
#[derive(Default)]
pub struct MemoryTasks {
    services: Mutex<HashMap<String, (ServiceShape, Vec<String>)>>,
    state: Mutex<TasksState>,
}

#[derive(Default)]
struct TasksState {
    runs: Vec<RunTaskRequest>,
    tasks: HashMap<TaskArn, TaskReport>,
    tokens: HashMap<String, TaskArn>,
    definitions: usize,
}

impl MemoryTasks {
    /// Adds a service whose task definition has `containers`.
    pub fn add_service(&self, name: &str, shape: ServiceShape, containers: &[&str]) {
        lock(&self.services).insert(name.to_owned(), (shape, containers.iter().map(|c| c.to_string()).collect()));
    }
}

#[async_trait]
impl Tasks for MemoryTasks {
    async fn service_shape(&self, cluster: &str, service: &str) -> Result<ServiceShape, TasksError> {
        lock(&self.services)
            .get(service)
            .map(|(shape, _)| shape.clone())
            .ok_or_else(|| TasksError::Rejected(format!("service {service} not found in cluster {cluster}")))
    }

    async fn register_migration(&self, spec: &MigrationTaskSpec) -> Result<RegisteredTaskDefinition, TasksError> {
        let services = lock(&self.services);
        let Some((_, containers)) = services.values().find(|(shape, _)| shape.task_definition == spec.base) else {
            return Err(TasksError::Rejected(format!("task definition {} not found", spec.base)));
        };
        for name in spec.images.iter().map(|(n, _)| n).chain([&spec.container]) {
            if !containers.contains(name) {
                return Err(TasksError::Rejected(format!(
                    "container {name:?} is not in task definition {}",
                    spec.base
                )));
            }
        }
        let mut state = lock(&self.state);
        state.definitions += 1;
        Ok(RegisteredTaskDefinition {
            arn: format!("{}-convoy-migration:{}", spec.base, state.definitions),
            log_group: Some("/ecs/memory".into()),
            log_stream_prefix: Some("ecs".into()),
        })
    }

    async fn run(&self, request: &RunTaskRequest) -> Result<TaskArn, TasksError> {
        let mut state = lock(&self.state);
        state.runs.push(request.clone());
        if let Some(task) = state.tokens.get(&request.client_token) {
            return Ok(task.clone());
        }
        let arn = format!("arn:aws:ecs:us-east-1:123456789012:task/{}/{:032x}", request.cluster, state.tasks.len() + 1);
        let task = TaskArn::new(&arn).map_err(|e| TasksError::Rejected(e.to_string()))?;
        state.tokens.insert(request.client_token.clone(), task.clone());
        state.tasks.insert(
            task.clone(),
            TaskReport {
                task: task.clone(),
                version: None,
                last_status: "RUNNING".into(),
                stop_code: None,
                stopped_reason: None,
                containers: vec![ContainerReport { name: request.container.clone(), exit_code: None, reason: None }],
                started_at: None,
                stopped_at: None,
                started_by: Some(request.started_by.clone()),
                task_definition: Some(request.task_definition.clone()),
            },
        );
        Ok(task)
    }

    async fn find(&self, _cluster: &str, started_by: &str) -> Result<Vec<TaskArn>, TasksError> {
        let state = lock(&self.state);
        let mut found: Vec<TaskArn> = state
            .runs
            .iter()
            .filter(|r| r.started_by == started_by)
            .filter_map(|r| state.tokens.get(&r.client_token).cloned())
            .collect();
        found.sort();
        found.dedup();
        Ok(found)
    }

    async fn describe(&self, _cluster: &str, task: &TaskArn) -> Result<Option<TaskReport>, TasksError> {
        Ok(lock(&self.state).tasks.get(task).cloned())
    }

    async fn stop(&self, _cluster: &str, task: &TaskArn, reason: &str) -> Result<(), TasksError> {
        if let Some(report) = lock(&self.state).tasks.get_mut(task) {
            report.last_status = "STOPPED".into();
            report.stop_code = Some("UserInitiated".into());
            report.stopped_reason = Some(reason.to_owned());
        }
        Ok(())
    }
}

#[async_trait]
impl crate::ports::ReleaseDefinitions for MemoryTasks {
    async fn register_release(&self, spec: &crate::ports::ReleaseTaskSpec) -> Result<String, TasksError> {
        let services = lock(&self.services);
        let Some((_, containers)) = services.values().find(|(shape, _)| shape.task_definition == spec.base) else {
            return Err(TasksError::Rejected(format!("task definition {} not found", spec.base)));
        };
        if let Some((name, _)) = spec.images.iter().find(|(n, _)| !containers.contains(n)) {
            return Err(TasksError::Rejected(format!("container {name:?} is not in task definition {}", spec.base)));
        }
        let mut state = lock(&self.state);
        state.definitions += 1;
        Ok(format!("{}:release-{}", spec.base, state.definitions))
    }

    async fn describe_verbatim(
        &self,
        task_definition: &str,
    ) -> Result<crate::ports::DescribedTaskDefinition, TasksError> {
        let services = lock(&self.services);
        let Some((_, containers)) = services.values().find(|(shape, _)| shape.task_definition == task_definition)
        else {
            return Err(TasksError::Rejected(format!("task definition {task_definition} not found")));
        };
        let family = task_definition.rsplit('/').next().and_then(|f| f.split(':').next()).unwrap_or("memory");
        let containers: Vec<serde_json::Value> = containers
            .iter()
            .map(|name| serde_json::json!({"name": name, "image": format!("{name}:running"), "essential": true}))
            .collect();
        Ok(crate::ports::DescribedTaskDefinition(serde_json::json!({"taskDefinition": {
            "taskDefinitionArn": task_definition, "family": family, "revision": 1, "status": "ACTIVE",
            "networkMode": "awsvpc", "containerDefinitions": containers
        }})))
    }
}

#[derive(Default)]
struct Documents {
    locks: HashMap<String, (crate::ports::DeployLock, u64)>,
    deployments: HashMap<String, ReleaseKey>,
}

/// Deploy locks and the deployment index, with the S3 adapter's conditional-write contract.
#[derive(Default)]
pub struct MemoryDocuments {
    documents: Mutex<Documents>,
}

#[async_trait]
impl crate::ports::DeployLocks for MemoryDocuments {
    async fn load(
        &self,
        service: &crate::names::ServiceName,
    ) -> Result<Option<(crate::ports::DeployLock, RecordVersion)>, StoreError> {
        let documents = lock(&self.documents);
        Ok(documents.locks.get(service.as_str()).map(|(l, v)| (l.clone(), RecordVersion(v.to_string()))))
    }

    async fn create(
        &self,
        service: &crate::names::ServiceName,
        value: &crate::ports::DeployLock,
    ) -> Result<RecordVersion, StoreError> {
        let mut documents = lock(&self.documents);
        if documents.locks.contains_key(service.as_str()) {
            return Err(StoreError::AlreadyExists);
        }
        documents.locks.insert(service.to_string(), (value.clone(), 1));
        Ok(RecordVersion("1".into()))
    }

    async fn replace(
        &self,
        service: &crate::names::ServiceName,
        value: &crate::ports::DeployLock,
        expected: &RecordVersion,
    ) -> Result<RecordVersion, StoreError> {
        let mut documents = lock(&self.documents);
        match documents.locks.get_mut(service.as_str()) {
            Some((stored, version)) if version.to_string() == expected.0 => {
                *stored = value.clone();
                *version += 1;
                Ok(RecordVersion(version.to_string()))
            }
            _ => Err(StoreError::Conflict),
        }
    }
}

#[async_trait]
impl crate::ports::DeploymentIndex for MemoryDocuments {
    async fn note(&self, deployment: &DeploymentRef, release: &ReleaseKey) -> Result<(), StoreError> {
        lock(&self.documents).deployments.entry(deployment.as_str().to_owned()).or_insert_with(|| release.clone());
        Ok(())
    }

    async fn find(&self, deployment: &DeploymentRef) -> Result<Option<ReleaseKey>, StoreError> {
        Ok(lock(&self.documents).deployments.get(deployment.as_str()).cloned())
    }
}

/// A call the fake deployer received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployCall {
    Create(crate::ports::CodeDeployRequest),
    AnswerHook { deployment: String, execution: String, succeeded: bool },
    Continue(String),
    RollBack(String),
    ContinueNative { service_deployment: String, roll_back: bool },
    UpdateService { service: String, task_definition: String },
}

/// A service deployment the fake's `UpdateService` started.
#[derive(Debug, Clone)]
struct FakeServiceDeployment {
    arn: ServiceDeploymentArn,
    service: String,
    task_definition: String,
    status: crate::ports::DeploymentStatus,
}

/// CodeDeploy as the tests script it: deployments run until a test ends them ([`MemoryDeployer::end`]),
/// and a test can have CodeDeploy roll one back ([`MemoryDeployer::start_rollback`]).
#[derive(Default)]
pub struct MemoryDeployer {
    calls: Mutex<Vec<DeployCall>>,
    ended: Mutex<HashMap<DeploymentId, crate::release::DeploymentEnd>>,
    /// Deployments whose production traffic was rerouted (a successful `continue_traffic`, or
    /// [`MemoryDeployer::reroute`]).
    rerouted: Mutex<std::collections::HashSet<DeploymentId>>,
    /// Rollback deployments CodeDeploy created: (the rollback, the deployment it rolls back).
    rollbacks: Mutex<Vec<(DeploymentId, DeploymentId)>>,
    /// ECS native: how each service deploys, and the service deployments `UpdateService` started.
    native_services: Mutex<HashMap<String, crate::ports::NativeService>>,
    service_deployments: Mutex<Vec<FakeServiceDeployment>>,
    /// Deployment groups whose ready option a test set; every other waits an hour for a person.
    group_waits: Mutex<HashMap<(String, String), crate::ports::GroupWait>>,
}

impl MemoryDeployer {
    pub fn calls(&self) -> Vec<DeployCall> {
        lock(&self.calls).clone()
    }

    /// CodeDeploy ends `deployment` (GetDeployment reports it so from now on); no event is sent:
    /// the test sends one, or leaves it lost for the reconciler to find.
    pub fn end(&self, deployment: &DeploymentId, end: crate::release::DeploymentEnd) {
        lock(&self.ended).insert(deployment.clone(), end);
    }

    /// CodeDeploy describes the group's ready option this way from now on.
    pub fn group_waits(&self, application: &str, group: &str, wait: crate::ports::GroupWait) {
        lock(&self.group_waits).insert((application.to_owned(), group.to_owned()), wait);
    }

    /// CodeDeploy reroutes `deployment`'s production traffic (someone continued it past
    /// READY_WAIT outside Convoy): GetDeployment says so from now on, until it ends.
    pub fn reroute(&self, deployment: &DeploymentId) {
        lock(&self.rerouted).insert(deployment.clone());
    }

    /// ECS describes `service` this way from now on (strategy, hooks).
    pub fn native_service_is(&self, service: &str, described: crate::ports::NativeService) {
        lock(&self.native_services).insert(service.to_owned(), described);
    }

    /// ECS ends `service_deployment` (`DescribeServiceDeployments` says so from now on).
    pub fn end_native(
        &self,
        service_deployment: &ServiceDeploymentArn,
        end: crate::release::DeploymentEnd,
        detail: &str,
    ) {
        for known in lock(&self.service_deployments).iter_mut().filter(|d| d.arn == *service_deployment) {
            known.status = crate::ports::DeploymentStatus::Ended { end, detail: detail.to_owned() };
        }
    }

    /// CodeDeploy rolls `deployment` back as it does on a failure or a stop with auto rollback: a
    /// new deployment in the same application and group that rolls it back (its hooks run again,
    /// with its own id). `None` when `deployment` is not one of this fake's.
    pub fn start_rollback(&self, deployment: &DeploymentId) -> Option<DeploymentId> {
        let known = created(&lock(&self.calls)).any(|(id, _)| id == *deployment);
        if !known {
            return None;
        }
        let mut rollbacks = lock(&self.rollbacks);
        let id = DeploymentId::new(&format!("d-MEMORYRB{:02}", rollbacks.len() + 1)).ok()?;
        rollbacks.push((id.clone(), deployment.clone()));
        Some(id)
    }
}

/// The deployments created so far, with the ids `create` gave them.
fn created(calls: &[DeployCall]) -> impl Iterator<Item = (DeploymentId, &crate::ports::CodeDeployRequest)> {
    let requests = calls.iter().filter_map(|c| match c {
        DeployCall::Create(r) => Some(r),
        _ => None,
    });
    requests.enumerate().filter_map(|(i, r)| Some((DeploymentId::new(&format!("d-MEMORY{:04}", i + 1)).ok()?, r)))
}

#[async_trait]
impl crate::ports::Deployer for MemoryDeployer {
    async fn create(
        &self,
        request: &crate::ports::CodeDeployRequest,
    ) -> Result<DeploymentId, crate::error::DeployError> {
        let mut calls = lock(&self.calls);
        calls.push(DeployCall::Create(request.clone()));
        created(&calls)
            .last()
            .map(|(id, _)| id)
            .ok_or_else(|| crate::error::DeployError::Unavailable("no deployment was created".into()))
    }

    async fn group_wait(
        &self,
        application: &str,
        group: &str,
    ) -> Result<crate::ports::GroupWait, crate::error::DeployError> {
        let set = lock(&self.group_waits).get(&(application.to_owned(), group.to_owned())).cloned();
        Ok(set
            .unwrap_or(crate::ports::GroupWait { action_on_timeout: Some("STOP_DEPLOYMENT".into()), wait_minutes: 60 }))
    }

    async fn find(&self, _: &str, _: &str, marker: &str) -> Result<Option<DeploymentId>, crate::error::DeployError> {
        Ok(created(&lock(&self.calls))
            .find(|(_, r)| crate::names::carries_marker(&r.description, marker))
            .map(|(id, _)| id))
    }

    async fn status(
        &self,
        deployment: &DeploymentId,
    ) -> Result<crate::ports::DeploymentStatus, crate::error::DeployError> {
        Ok(match lock(&self.ended).get(deployment) {
            Some(end) => crate::ports::DeploymentStatus::Ended { end: *end, detail: String::new() },
            None if lock(&self.rerouted).contains(deployment) => crate::ports::DeploymentStatus::Rerouted,
            None => crate::ports::DeploymentStatus::Running,
        })
    }

    async fn origin(
        &self,
        deployment: &DeploymentId,
    ) -> Result<Option<crate::ports::DeploymentOrigin>, crate::error::DeployError> {
        // A rollback runs where the deployment it rolls back ran.
        let rolls_back = lock(&self.rollbacks).iter().find(|(id, _)| id == deployment).map(|(_, of)| of.clone());
        let target = rolls_back.as_ref().unwrap_or(deployment);
        Ok(created(&lock(&self.calls)).find(|(id, _)| id == target).map(|(_, r)| crate::ports::DeploymentOrigin {
            application: r.application.clone(),
            deployment_group: r.deployment_group.clone(),
            created_at: None,
            rollback: rolls_back.is_some(),
            description: Some(r.description.clone()),
        }))
    }

    async fn answer_hook(
        &self,
        deployment: &DeploymentId,
        hook_execution: &HookExecutionId,
        succeeded: bool,
    ) -> Result<(), crate::error::DeployError> {
        lock(&self.calls).push(DeployCall::AnswerHook {
            deployment: deployment.to_string(),
            execution: hook_execution.to_string(),
            succeeded,
        });
        Ok(())
    }

    async fn continue_traffic(&self, deployment: &DeploymentId) -> Result<(), crate::error::DeployError> {
        lock(&self.calls).push(DeployCall::Continue(deployment.to_string()));
        self.reroute(deployment);
        Ok(())
    }

    async fn roll_back(&self, deployment: &DeploymentId) -> Result<(), crate::error::DeployError> {
        lock(&self.calls).push(DeployCall::RollBack(deployment.to_string()));
        Ok(())
    }

    async fn continue_native(
        &self,
        service_deployment: &ServiceDeploymentArn,
        roll_back: bool,
    ) -> Result<(), crate::error::DeployError> {
        lock(&self.calls)
            .push(DeployCall::ContinueNative { service_deployment: service_deployment.to_string(), roll_back });
        Ok(())
    }

    async fn native_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<crate::ports::NativeService, crate::error::DeployError> {
        lock(&self.native_services).get(service).cloned().ok_or_else(|| {
            crate::error::DeployError::Rejected(format!("service {service} is not in cluster {cluster}"))
        })
    }

    async fn start_native(
        &self,
        _: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<ServiceDeploymentArn, crate::error::DeployError> {
        lock(&self.calls).push(DeployCall::UpdateService {
            service: service.to_owned(),
            task_definition: task_definition.to_owned(),
        });
        let mut started = lock(&self.service_deployments);
        let arn = ServiceDeploymentArn::new(&format!(
            "arn:aws:ecs:us-east-1:123456789012:service-deployment/convoy/{service}/memory{}",
            started.len() + 1
        ))
        .map_err(|e| crate::error::DeployError::Unavailable(e.to_string()))?;
        started.push(FakeServiceDeployment {
            arn: arn.clone(),
            service: service.to_owned(),
            task_definition: task_definition.to_owned(),
            status: crate::ports::DeploymentStatus::Running,
        });
        Ok(arn)
    }

    async fn find_native(
        &self,
        _: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<Option<ServiceDeploymentArn>, crate::error::DeployError> {
        let started = lock(&self.service_deployments);
        Ok(started.iter().find(|d| d.service == service && d.task_definition == task_definition).map(|d| d.arn.clone()))
    }

    async fn native_status(
        &self,
        service_deployment: &ServiceDeploymentArn,
    ) -> Result<crate::ports::NativeStatus, crate::error::DeployError> {
        let started = lock(&self.service_deployments);
        let known = started.iter().find(|d| d.arn == *service_deployment).ok_or_else(|| {
            crate::error::DeployError::Rejected(format!("ECS does not know service deployment {service_deployment}"))
        })?;
        let status = match &known.status {
            crate::ports::DeploymentStatus::Running | crate::ports::DeploymentStatus::Rerouted => "IN_PROGRESS",
            crate::ports::DeploymentStatus::Ended { end: crate::release::DeploymentEnd::Succeeded, .. } => "SUCCESSFUL",
            crate::ports::DeploymentStatus::Ended { .. } => "ROLLBACK_SUCCESSFUL",
        };
        Ok(crate::ports::NativeStatus {
            status: known.status.clone(),
            progress: crate::release::NativeProgress {
                strategy: "blue/green, all at once".into(),
                bake_minutes: None,
                production_percent: None,
                stage: None,
                status: status.into(),
                seen_at: chrono::Utc::now(),
            },
        })
    }
}

/// A bundle written to a pipeline's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenBundle {
    pub bucket: String,
    pub key: String,
    pub bytes: Vec<u8>,
    pub version: String,
    pub release: ReleaseKey,
}

/// CodePipeline and its versioned S3 source. Like CodePipeline (and unlike moto) it honours
/// `clientRequestToken`; executions run until a test ends them.
#[derive(Default)]
pub struct MemoryPipelines {
    state: Mutex<PipelineState>,
}

#[derive(Default)]
struct PipelineState {
    bundles: Vec<WrittenBundle>,
    starts: Vec<crate::ports::PipelineStart>,
    executions: HashMap<PipelineExecutionId, crate::ports::DeploymentStatus>,
    tokens: HashMap<String, PipelineExecutionId>,
    deployments: HashMap<PipelineExecutionId, DeploymentId>,
}

impl MemoryPipelines {
    pub fn bundles(&self) -> Vec<WrittenBundle> {
        lock(&self.state).bundles.clone()
    }

    /// Every start requested, repeated ones included.
    pub fn starts(&self) -> Vec<crate::ports::PipelineStart> {
        lock(&self.state).starts.clone()
    }

    /// The executions that really started.
    pub fn executions(&self) -> usize {
        lock(&self.state).executions.len()
    }

    /// The deploy action of `execution` reports `deployment`.
    pub fn report_deployment(&self, execution: &PipelineExecutionId, deployment: &DeploymentId) {
        lock(&self.state).deployments.insert(execution.clone(), deployment.clone());
    }
}

#[async_trait]
impl crate::ports::Pipelines for MemoryPipelines {
    async fn write_bundle(
        &self,
        bucket: &str,
        key: &str,
        bundle: Vec<u8>,
        release: &ReleaseKey,
    ) -> Result<String, crate::error::DeployError> {
        let mut state = lock(&self.state);
        let version = format!("v{}", state.bundles.len() + 1);
        state.bundles.push(WrittenBundle {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            bytes: bundle,
            version: version.clone(),
            release: release.clone(),
        });
        Ok(version)
    }

    async fn start(
        &self,
        start: &crate::ports::PipelineStart,
    ) -> Result<PipelineExecutionId, crate::error::DeployError> {
        let mut state = lock(&self.state);
        state.starts.push(start.clone());
        if let Some(execution) = state.tokens.get(&start.token) {
            return Ok(execution.clone());
        }
        let execution =
            PipelineExecutionId::new(&format!("00000000-0000-4000-8000-{:012}", state.executions.len() + 1))
                .map_err(|e| crate::error::DeployError::Rejected(e.to_string()))?;
        state.tokens.insert(start.token.clone(), execution.clone());
        state.executions.insert(execution.clone(), crate::ports::DeploymentStatus::Running);
        Ok(execution)
    }

    async fn status(
        &self,
        pipeline: &str,
        execution: &PipelineExecutionId,
    ) -> Result<crate::ports::DeploymentStatus, crate::error::DeployError> {
        lock(&self.state).executions.get(execution).cloned().ok_or_else(|| {
            crate::error::DeployError::Rejected(format!("pipeline {pipeline} has no execution {execution}"))
        })
    }

    async fn deployment_of(
        &self,
        _: &str,
        execution: &PipelineExecutionId,
    ) -> Result<Option<DeploymentId>, crate::error::DeployError> {
        Ok(lock(&self.state).deployments.get(execution).cloned())
    }
}

/// Release events, kept in order; `fail` makes every publish fail (EventBridge down).
#[derive(Default)]
pub struct MemoryEvents {
    published: Mutex<Vec<crate::notify::ReleaseChange>>,
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemoryEvents {
    /// Every change published so far, oldest first.
    pub fn published(&self) -> Vec<crate::notify::ReleaseChange> {
        lock(&self.published).clone()
    }
}

/// Log streams by (group, stream): what a migration container wrote.
#[derive(Default)]
pub struct MemoryLogs {
    streams: Mutex<HashMap<(String, String), Vec<String>>>,
    /// When set, every read fails as CloudWatch Logs would in an outage.
    pub unavailable: std::sync::atomic::AtomicBool,
}

impl MemoryLogs {
    /// Appends lines to a stream (creating it).
    pub fn write(&self, group: &str, stream: &str, lines: &[&str]) {
        let mut streams = lock(&self.streams);
        let entry = streams.entry((group.to_owned(), stream.to_owned())).or_default();
        entry.extend(lines.iter().map(|l| (*l).to_owned()));
    }
}

/// CloudWatch as a test sets it: each check's datapoints by check name, each alarm's state. Every
/// query is recorded, so a test sees the window Convoy asked for.
#[derive(Default)]
pub struct MemoryWatch {
    values: Mutex<HashMap<String, Vec<f64>>>,
    alarms: Mutex<HashMap<String, crate::gates::AlarmStatus>>,
    queries: Mutex<Vec<(String, u64)>>,
}

impl MemoryWatch {
    /// The datapoints CloudWatch has for the check named `check`.
    pub fn set_values(&self, check: &str, values: &[f64]) {
        lock(&self.values).insert(check.to_owned(), values.to_vec());
    }

    /// Sets an alarm's state (`SetAlarmState`).
    pub fn set_alarm(&self, name: &str, state: &str, reason: &str) {
        let status = crate::gates::AlarmStatus {
            name: name.to_owned(),
            state: state.to_owned(),
            reason: reason.to_owned(),
            since: Some(chrono::Utc::now()),
        };
        lock(&self.alarms).insert(name.to_owned(), status);
    }

    /// (check name, period) of every metric query so far.
    pub fn queries(&self) -> Vec<(String, u64)> {
        lock(&self.queries).clone()
    }
}

#[async_trait]
impl crate::ports::ReleaseEvents for MemoryEvents {
    async fn publish(&self, change: &crate::notify::ReleaseChange) -> Result<(), crate::notify::PublishError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::notify::PublishError::Unavailable("the memory event bus is down".into()));
        }
        lock(&self.published).push(change.clone());
        Ok(())
    }
}

#[async_trait]
impl crate::ports::MigrationLogs for MemoryLogs {
    async fn last_lines(&self, log: &crate::release::LogPointer, limit: usize) -> Result<Vec<String>, LogsError> {
        if self.unavailable.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(LogsError::Unavailable("the fake is told to be down".into()));
        }
        let streams = lock(&self.streams);
        let lines = streams
            .get(&(log.group.clone(), log.stream.clone()))
            .ok_or_else(|| LogsError::NotFound(format!("{} {}", log.group, log.stream)))?;
        Ok(lines[lines.len().saturating_sub(limit)..].to_vec())
    }
}

#[async_trait]
impl crate::ports::Watch for MemoryWatch {
    async fn metric_values(
        &self,
        check: &crate::gates::MetricCheck,
        period_seconds: u64,
        _start: chrono::DateTime<chrono::Utc>,
        _end: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<f64>, crate::error::WatchError> {
        lock(&self.queries).push((check.name.clone(), period_seconds));
        Ok(lock(&self.values).get(&check.name).cloned().unwrap_or_default())
    }

    async fn alarm_states(&self, names: &[String]) -> Result<Vec<crate::gates::AlarmStatus>, crate::error::WatchError> {
        let alarms = lock(&self.alarms);
        Ok(names.iter().filter_map(|name| alarms.get(name).cloned()).collect())
    }
}

/// CloudTrail's event history as a test sets it: the successful calls it recorded, each with its
/// caller; a look-up filters them as `LookupEvents` plus Convoy's deployment filter do. Every
/// look-up is counted (the real one is rate-limited).
#[derive(Default)]
pub struct MemoryApiCalls {
    recorded: Mutex<Vec<crate::release::ObservedCall>>,
    lookups: std::sync::atomic::AtomicUsize,
}

impl MemoryApiCalls {
    pub fn record(&self, call: crate::release::ObservedCall) {
        lock(&self.recorded).push(call);
    }

    pub fn lookups(&self) -> usize {
        self.lookups.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl crate::ports::ApiCalls for MemoryApiCalls {
    async fn decisions_on(
        &self,
        deployment: &str,
        approve: bool,
        _native: bool,
        since: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<crate::release::ObservedCall>, crate::error::TrailError> {
        self.lookups.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut found: Vec<_> = lock(&self.recorded)
            .iter()
            .filter(|c| c.deployment == deployment && c.approve == approve)
            .filter(|c| c.actor.event_time >= since && c.actor.event_time <= until)
            .cloned()
            .collect();
        found.sort_by_key(|c| c.actor.event_time);
        Ok(found)
    }
}

#[cfg(test)]
mod api_calls_tests {
    use super::*;
    use crate::ports::ApiCalls;
    use crate::release::{Actor, ObservedCall, Via};
    use chrono::{TimeZone, Utc};

    fn call(deployment: &str, approve: bool, at: i64) -> ObservedCall {
        let actor = Actor {
            principal_arn: "arn:aws:iam::123456789012:user/alice".into(),
            session_name: None,
            source_ip: None,
            event_id: format!("ev-{at}"),
            event_time: Utc.timestamp_opt(at, 0).unwrap(),
            operation: "codedeploy:ContinueDeployment".into(),
            via: Via::LookupEvents,
        };
        ObservedCall { deployment: deployment.into(), approve, actor }
    }

    #[tokio::test]
    async fn a_look_up_finds_only_the_deployments_decision_within_the_window() {
        let trail = MemoryApiCalls::default();
        for c in [call("d-1", true, 100), call("d-2", true, 110), call("d-1", false, 120), call("d-1", true, 500)] {
            trail.record(c);
        }
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        let found = trail.decisions_on("d-1", true, false, t(50), t(200)).await.unwrap();
        assert_eq!(found.iter().map(|c| c.actor.event_id.as_str()).collect::<Vec<_>>(), vec!["ev-100"]);
        assert_eq!(trail.lookups(), 1);
    }
}
