//! CodeDeploy as the tests script it: deployments run until a test ends them
//! ([`MemoryCodeDeploy::end`]), and a test can have CodeDeploy roll one back
//! ([`MemoryCodeDeploy::start_rollback`]).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::error::DeployError;
use crate::names::{DeploymentId, HookExecutionId};
use crate::ports::{CodeDeploy, CodeDeployRequest, DeploymentOrigin, DeploymentStatus, GroupWait};
use crate::release::DeploymentEnd;

/// A call the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployCall {
    Create(CodeDeployRequest),
    AnswerHook { deployment: String, execution: String, succeeded: bool },
    Continue(String),
    RollBack(String),
}

#[derive(Default)]
pub struct MemoryCodeDeploy {
    calls: Mutex<Vec<DeployCall>>,
    ended: Mutex<HashMap<DeploymentId, DeploymentEnd>>,
    /// Deployments whose production traffic was rerouted (a successful `continue_traffic`, or
    /// [`MemoryCodeDeploy::reroute`]).
    rerouted: Mutex<HashSet<DeploymentId>>,
    /// Rollback deployments CodeDeploy created: (the rollback, the deployment it rolls back).
    rollbacks: Mutex<Vec<(DeploymentId, DeploymentId)>>,
    /// Deployment groups whose ready option a test set; every other waits an hour for a person.
    group_waits: Mutex<HashMap<(String, String), GroupWait>>,
}

impl MemoryCodeDeploy {
    pub fn calls(&self) -> Vec<DeployCall> {
        lock(&self.calls).clone()
    }

    /// CodeDeploy ends `deployment` (GetDeployment reports it so from now on); no event is sent:
    /// the test sends one, or leaves it lost for the reconciler to find.
    pub fn end(&self, deployment: &DeploymentId, end: DeploymentEnd) {
        lock(&self.ended).insert(deployment.clone(), end);
    }

    /// CodeDeploy describes the group's ready option this way from now on.
    pub fn group_waits(&self, application: &str, group: &str, wait: GroupWait) {
        lock(&self.group_waits).insert((application.to_owned(), group.to_owned()), wait);
    }

    /// CodeDeploy reroutes `deployment`'s production traffic (someone continued it past
    /// READY_WAIT outside Convoy): GetDeployment says so from now on, until it ends.
    pub fn reroute(&self, deployment: &DeploymentId) {
        lock(&self.rerouted).insert(deployment.clone());
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
fn created(calls: &[DeployCall]) -> impl Iterator<Item = (DeploymentId, &CodeDeployRequest)> {
    let requests = calls.iter().filter_map(|c| match c {
        DeployCall::Create(r) => Some(r),
        _ => None,
    });
    requests.enumerate().filter_map(|(i, r)| Some((DeploymentId::new(&format!("d-MEMORY{:04}", i + 1)).ok()?, r)))
}

#[async_trait]
impl CodeDeploy for MemoryCodeDeploy {
    async fn create(&self, request: &CodeDeployRequest) -> Result<DeploymentId, DeployError> {
        let mut calls = lock(&self.calls);
        calls.push(DeployCall::Create(request.clone()));
        created(&calls)
            .last()
            .map(|(id, _)| id)
            .ok_or_else(|| DeployError::Unavailable("no deployment was created".into()))
    }

    async fn group_wait(&self, application: &str, group: &str) -> Result<GroupWait, DeployError> {
        let set = lock(&self.group_waits).get(&(application.to_owned(), group.to_owned())).cloned();
        Ok(set.unwrap_or(GroupWait { action_on_timeout: Some("STOP_DEPLOYMENT".into()), wait_minutes: 60 }))
    }

    async fn find(&self, _: &str, _: &str, marker: &str) -> Result<Option<DeploymentId>, DeployError> {
        Ok(created(&lock(&self.calls))
            .find(|(_, r)| crate::names::carries_marker(&r.description, marker))
            .map(|(id, _)| id))
    }

    async fn status(&self, deployment: &DeploymentId) -> Result<DeploymentStatus, DeployError> {
        Ok(match lock(&self.ended).get(deployment) {
            Some(end) => DeploymentStatus::Ended { end: *end, detail: String::new() },
            None if lock(&self.rerouted).contains(deployment) => DeploymentStatus::Rerouted,
            None => DeploymentStatus::Running,
        })
    }

    async fn origin(&self, deployment: &DeploymentId) -> Result<Option<DeploymentOrigin>, DeployError> {
        // A rollback runs where the deployment it rolls back ran.
        let rolls_back = lock(&self.rollbacks).iter().find(|(id, _)| id == deployment).map(|(_, of)| of.clone());
        let target = rolls_back.as_ref().unwrap_or(deployment);
        Ok(created(&lock(&self.calls)).find(|(id, _)| id == target).map(|(_, r)| DeploymentOrigin {
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
    ) -> Result<(), DeployError> {
        lock(&self.calls).push(DeployCall::AnswerHook {
            deployment: deployment.to_string(),
            execution: hook_execution.to_string(),
            succeeded,
        });
        Ok(())
    }

    async fn continue_traffic(&self, deployment: &DeploymentId) -> Result<(), DeployError> {
        lock(&self.calls).push(DeployCall::Continue(deployment.to_string()));
        self.reroute(deployment);
        Ok(())
    }

    async fn roll_back(&self, deployment: &DeploymentId) -> Result<(), DeployError> {
        lock(&self.calls).push(DeployCall::RollBack(deployment.to_string()));
        Ok(())
    }
}
