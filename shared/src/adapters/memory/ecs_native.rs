//! ECS's service deployments (native blue/green) as the tests script them: `UpdateService` starts
//! one, which runs until a test ends it ([`MemoryServiceDeployments::end`]). Like ECS (and the
//! harness's stand-in), it continues only a service deployment it started that waits at its
//! PAUSE hook ([`MemoryServiceDeployments::pause`]), and stops only one that has not ended.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::error::DeployError;
use crate::names::ServiceDeploymentArn;
use crate::ports::{DeploymentStatus, NativeService, NativeStatus, ServiceDeployments};
use crate::release::{DeploymentEnd, NativeProgress};

/// A call the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceDeploymentCall {
    UpdateService { service: String, task_definition: String },
    Continue { service_deployment: String, roll_back: bool },
}

/// A service deployment the fake's `UpdateService` started.
#[derive(Debug, Clone)]
struct Started {
    arn: ServiceDeploymentArn,
    service: String,
    task_definition: String,
    status: DeploymentStatus,
    /// Waiting at its PAUSE hook for `ContinueServiceDeployment`.
    paused: bool,
}

#[derive(Default)]
pub struct MemoryServiceDeployments {
    calls: Mutex<Vec<ServiceDeploymentCall>>,
    /// How each service deploys, as a test describes it.
    services: Mutex<HashMap<String, NativeService>>,
    started: Mutex<Vec<Started>>,
}

impl MemoryServiceDeployments {
    pub fn calls(&self) -> Vec<ServiceDeploymentCall> {
        lock(&self.calls).clone()
    }

    /// ECS describes `service` this way from now on (strategy, hooks).
    pub fn service_is(&self, service: &str, described: NativeService) {
        lock(&self.services).insert(service.to_owned(), described);
    }

    /// ECS ends `service_deployment` (`DescribeServiceDeployments` says so from now on).
    pub fn end(&self, service_deployment: &ServiceDeploymentArn, end: DeploymentEnd, detail: &str) {
        for known in lock(&self.started).iter_mut().filter(|d| d.arn == *service_deployment) {
            known.status = DeploymentStatus::Ended { end, detail: detail.to_owned() };
        }
    }

    /// ECS pauses `service_deployment` at its PAUSE hook: it waits for a continue from now on.
    pub fn pause(&self, service_deployment: &ServiceDeploymentArn) {
        for known in lock(&self.started).iter_mut().filter(|d| d.arn == *service_deployment) {
            known.paused = true;
        }
    }

    /// Records the continue (or the stop, `roll_back`) ECS accepts: of a service deployment it
    /// started and that has not ended; a continue only while it waits at its PAUSE hook.
    fn resolve(&self, service_deployment: &ServiceDeploymentArn, roll_back: bool) -> Result<(), DeployError> {
        {
            let mut started = lock(&self.started);
            let known = started.iter_mut().find(|d| d.arn == *service_deployment).ok_or_else(|| {
                DeployError::Rejected(format!("The service deployment {service_deployment} does not exist."))
            })?;
            if let DeploymentStatus::Ended { end, .. } = &known.status {
                // ConflictException
                return Err(DeployError::Rejected(format!(
                    "The service deployment {service_deployment} has already completed ({end:?})."
                )));
            }
            if !roll_back && !known.paused {
                return Err(DeployError::NotYet(format!(
                    "The service deployment {service_deployment} is not waiting at a PAUSE hook."
                )));
            }
            known.paused = false;
        }
        let service_deployment = service_deployment.to_string();
        lock(&self.calls).push(ServiceDeploymentCall::Continue { service_deployment, roll_back });
        Ok(())
    }
}

#[async_trait]
impl ServiceDeployments for MemoryServiceDeployments {
    async fn describe_service(&self, cluster: &str, service: &str) -> Result<NativeService, DeployError> {
        lock(&self.services)
            .get(service)
            .cloned()
            .ok_or_else(|| DeployError::Rejected(format!("service {service} is not in cluster {cluster}")))
    }

    async fn start(&self, _: &str, service: &str, task_definition: &str) -> Result<ServiceDeploymentArn, DeployError> {
        let call = ServiceDeploymentCall::UpdateService {
            service: service.to_owned(),
            task_definition: task_definition.to_owned(),
        };
        lock(&self.calls).push(call);
        // As ECS: the service runs what the last update named.
        if let Some(described) = lock(&self.services).get_mut(service) {
            described.task_definition = Some(task_definition.to_owned());
        }
        let mut started = lock(&self.started);
        let arn = ServiceDeploymentArn::new(&format!(
            "arn:aws:ecs:us-east-1:123456789012:service-deployment/convoy/{service}/memory{}",
            started.len() + 1
        ))
        .map_err(|e| DeployError::Unavailable(e.to_string().into()))?;
        started.push(Started {
            arn: arn.clone(),
            service: service.to_owned(),
            task_definition: task_definition.to_owned(),
            status: DeploymentStatus::Running,
            paused: false,
        });
        Ok(arn)
    }

    async fn find(
        &self,
        _: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<Option<ServiceDeploymentArn>, DeployError> {
        let started = lock(&self.started);
        Ok(started.iter().find(|d| d.service == service && d.task_definition == task_definition).map(|d| d.arn.clone()))
    }

    async fn status(&self, service_deployment: &ServiceDeploymentArn) -> Result<NativeStatus, DeployError> {
        let started = lock(&self.started);
        let known = started.iter().find(|d| d.arn == *service_deployment).ok_or_else(|| {
            DeployError::Rejected(format!("ECS does not know service deployment {service_deployment}"))
        })?;
        let status = match &known.status {
            DeploymentStatus::Running | DeploymentStatus::Rerouted => "IN_PROGRESS",
            DeploymentStatus::Ended { end: DeploymentEnd::Succeeded, .. } => "SUCCESSFUL",
            DeploymentStatus::Ended { .. } => "ROLLBACK_SUCCESSFUL",
        };
        Ok(NativeStatus {
            status: known.status.clone(),
            progress: NativeProgress {
                strategy: "blue/green, all at once".into(),
                bake_minutes: None,
                production_percent: None,
                stage: None,
                status: status.into(),
                seen_at: chrono::Utc::now(),
            },
        })
    }

    async fn continue_deployment(&self, service_deployment: &ServiceDeploymentArn) -> Result<(), DeployError> {
        self.resolve(service_deployment, false)
    }

    async fn roll_back(&self, service_deployment: &ServiceDeploymentArn) -> Result<(), DeployError> {
        self.resolve(service_deployment, true)
    }
}

/// The fake refuses what the stand-in refuses (`tests/src/standin/ecs.rs`).
#[cfg(test)]
mod tests {
    use super::*;

    fn arn(id: &str) -> ServiceDeploymentArn {
        ServiceDeploymentArn::new(&format!("arn:aws:ecs:us-east-1:123456789012:service-deployment/convoy/web/{id}"))
            .unwrap()
    }

    #[tokio::test]
    async fn a_service_deployment_it_never_started_is_refused() {
        let fake = MemoryServiceDeployments::default();
        let unknown = arn("never");
        assert!(matches!(fake.continue_deployment(&unknown).await, Err(DeployError::Rejected(_))));
        assert!(matches!(fake.roll_back(&unknown).await, Err(DeployError::Rejected(_))));
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn a_continue_waits_for_the_pause_and_ends_it() {
        let fake = MemoryServiceDeployments::default();
        let started = fake.start("convoy", "web", "web:7").await.unwrap();
        assert!(matches!(fake.continue_deployment(&started).await, Err(DeployError::NotYet(_))), "not paused");
        fake.pause(&started);
        fake.continue_deployment(&started).await.unwrap();
        assert!(matches!(fake.continue_deployment(&started).await, Err(DeployError::NotYet(_))), "paused no more");
        let continues = fake.calls().into_iter().filter(|c| matches!(c, ServiceDeploymentCall::Continue { .. }));
        assert_eq!(continues.count(), 1);
    }

    #[tokio::test]
    async fn an_ended_service_deployment_is_neither_continued_nor_stopped() {
        let fake = MemoryServiceDeployments::default();
        let started = fake.start("convoy", "web", "web:7").await.unwrap();
        fake.pause(&started);
        fake.end(&started, DeploymentEnd::Succeeded, "");
        assert!(matches!(fake.continue_deployment(&started).await, Err(DeployError::Rejected(_))));
        assert!(matches!(fake.roll_back(&started).await, Err(DeployError::Rejected(_))));
    }
}
