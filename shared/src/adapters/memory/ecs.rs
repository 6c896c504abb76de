//! ECS's services, task definitions and one-off tasks.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::error::TasksError;
use crate::names::TaskArn;
use crate::ports::{MigrationTaskSpec, RegisteredTaskDefinition, RunTaskRequest, ServiceShape, Tasks};
use crate::release::{ContainerReport, TaskReport};

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
