//! CodeDeploy as the tests script it: deployments run until a test ends them
//! ([`MemoryCodeDeploy::end`]), and a test can have CodeDeploy roll one back
//! ([`MemoryCodeDeploy::start_rollback`]). It refuses what CodeDeploy (and the harness's
//! stand-in, `tests/src/standin/codedeploy.rs`) refuses: an unknown deployment, a second answer
//! to a hook execution, a continue before the deployment waits at READY_WAIT (a hook answered
//! Succeeded) or after it ended. A failed hook answer and a stop with rollback start the rollback
//! themselves, as a new deployment, as CodeDeploy does. Ids are CodeDeploy's form: `d-` and nine
//! capitals or digits.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::error::DeployError;
use crate::names::{DeploymentId, HookExecutionId};
use crate::ports::{CodeDeploy, CodeDeployRequest, DeploymentOrigin, DeploymentStatus, GroupWait, STATUS_BATCH};
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
    /// The hook executions answered, and with what.
    answered: Mutex<HashMap<(DeploymentId, HookExecutionId), bool>>,
    /// Deployments someone else created (application, group): CodeDeploy knows them, Convoy not.
    elsewhere: Mutex<Vec<(DeploymentId, String, String)>>,
    /// The ids each `statuses` call asked, and each `status` call's: what the reconciler's
    /// batching is checked by.
    batches: Mutex<Vec<Vec<DeploymentId>>>,
    asked_alone: Mutex<Vec<DeploymentId>>,
}

impl MemoryCodeDeploy {
    pub fn calls(&self) -> Vec<DeployCall> {
        lock(&self.calls).clone()
    }

    /// The ids of each `statuses` request (one `BatchGetDeployments` each), in order.
    pub fn status_batches(&self) -> Vec<Vec<DeploymentId>> {
        lock(&self.batches).clone()
    }

    /// The ids `status` was asked (one `GetDeployment` each), in order.
    pub fn asked_alone(&self) -> Vec<DeploymentId> {
        lock(&self.asked_alone).clone()
    }

    /// CodeDeploy ends `deployment` (GetDeployment reports it so from now on); no event is sent:
    /// the test sends one, or leaves it lost for the reconciler to find.
    pub fn end(&self, deployment: &DeploymentId, end: DeploymentEnd) {
        lock(&self.ended).insert(deployment.clone(), end);
    }

    /// Someone else creates a deployment in `application`'s `group` (not a rollback, no marker).
    pub fn created_elsewhere(&self, application: &str, group: &str) -> DeploymentId {
        let mut elsewhere = lock(&self.elsewhere);
        let id = DeploymentId::new(&format!("d-ELSE{:05}", elsewhere.len() + 1)).expect("CodeDeploy's form");
        elsewhere.push((id.clone(), application.to_owned(), group.to_owned()));
        id
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
        if let Some((id, _)) = rollbacks.iter().find(|(_, of)| of == deployment) {
            return Some(id.clone());
        }
        let id = DeploymentId::new(&format!("d-MEMRB{:04}", rollbacks.len() + 1)).ok()?;
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
    requests.enumerate().filter_map(|(i, r)| Some((DeploymentId::new(&format!("d-MEMORY{:03}", i + 1)).ok()?, r)))
}

impl MemoryCodeDeploy {
    /// Where `deployment` stands.
    fn stands(&self, deployment: &DeploymentId) -> DeploymentStatus {
        match lock(&self.ended).get(deployment) {
            Some(end) => DeploymentStatus::Ended { end: *end, detail: String::new() },
            None if lock(&self.rerouted).contains(deployment) => DeploymentStatus::Rerouted,
            None => DeploymentStatus::Running,
        }
    }

    /// A deployment `create` made, or a rollback CodeDeploy started.
    fn knows(&self, deployment: &DeploymentId) -> bool {
        created(&lock(&self.calls)).any(|(id, _)| id == *deployment)
            || lock(&self.rollbacks).iter().any(|(id, _)| id == deployment)
            || lock(&self.elsewhere).iter().any(|(id, _, _)| id == deployment)
    }

    /// `DeploymentDoesNotExistException` for an unknown deployment,
    /// `DeploymentAlreadyCompletedException` for one that ended.
    fn running(&self, deployment: &DeploymentId) -> Result<(), DeployError> {
        if !self.knows(deployment) {
            return Err(DeployError::Rejected(format!("The deployment {deployment} could not be found.")));
        }
        if let Some(end) = lock(&self.ended).get(deployment) {
            return Err(DeployError::Rejected(format!("The deployment {deployment} has already completed ({end:?}).")));
        }
        Ok(())
    }
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
        lock(&self.asked_alone).push(deployment.clone());
        Ok(self.stands(deployment))
    }

    async fn statuses(
        &self,
        deployments: &[DeploymentId],
    ) -> Result<Vec<(DeploymentId, DeploymentStatus)>, DeployError> {
        if deployments.len() > STATUS_BATCH {
            return Err(DeployError::Rejected(format!("more than {STATUS_BATCH} deployment ids")));
        }
        lock(&self.batches).push(deployments.to_vec());
        // A deployment this CodeDeploy does not know is left out of the answer.
        Ok(deployments.iter().filter(|id| self.knows(id)).map(|id| (id.clone(), self.stands(id))).collect())
    }

    async fn origin(&self, deployment: &DeploymentId) -> Result<Option<DeploymentOrigin>, DeployError> {
        // A rollback runs where the deployment it rolls back ran.
        let rolls_back = lock(&self.rollbacks).iter().find(|(id, _)| id == deployment).map(|(_, of)| of.clone());
        let target = rolls_back.as_ref().unwrap_or(deployment);
        let elsewhere = lock(&self.elsewhere).iter().find(|(id, _, _)| id == deployment).cloned();
        if let Some((_, application, deployment_group)) = elsewhere {
            return Ok(Some(DeploymentOrigin {
                application,
                deployment_group,
                created_at: None,
                rollback: false,
                description: None,
            }));
        }
        Ok(created(&lock(&self.calls)).find(|(id, _)| id == target).map(|(_, r)| DeploymentOrigin {
            application: r.application.clone(),
            deployment_group: r.deployment_group.clone(),
            created_at: None,
            rollback: rolls_back.is_some(),
            description: Some(r.description.clone()),
        }))
    }

    async fn test_traffic_hook(&self, deployment: &DeploymentId, target: &str) -> Result<Option<String>, DeployError> {
        // The fake keeps no install phase: a running deployment is at its test traffic hook from
        // its creation until a hook of it is answered. Any `<cluster>:<service>` target is its.
        let known = created(&lock(&self.calls)).any(|(id, _)| id == *deployment)
            || lock(&self.rollbacks).iter().any(|(id, _)| id == deployment)
            || lock(&self.elsewhere).iter().any(|(id, _, _)| id == deployment);
        if !known || !target.contains(':') {
            return Ok(None);
        }
        let answered = lock(&self.answered).iter().find(|((id, _), _)| id == deployment).map(|(_, passed)| *passed);
        let status = match (answered, lock(&self.ended).contains_key(deployment)) {
            (Some(true), _) => "Succeeded",
            (Some(false), _) => "Failed",
            (None, true) => "Skipped",
            (None, false) => "InProgress",
        };
        Ok(Some(status.to_owned()))
    }

    async fn answer_hook(
        &self,
        deployment: &DeploymentId,
        hook_execution: &HookExecutionId,
        succeeded: bool,
    ) -> Result<(), DeployError> {
        self.running(deployment)?;
        {
            let mut answered = lock(&self.answered);
            let key = (deployment.clone(), hook_execution.clone());
            if answered.contains_key(&key) {
                // LifecycleEventAlreadyCompletedException
                return Err(DeployError::Rejected(format!(
                    "The lifecycle event hook execution {hook_execution} has already completed."
                )));
            }
            answered.insert(key, succeeded);
        }
        lock(&self.calls).push(DeployCall::AnswerHook {
            deployment: deployment.to_string(),
            execution: hook_execution.to_string(),
            succeeded,
        });
        if !succeeded {
            self.start_rollback(deployment);
        }
        Ok(())
    }

    async fn continue_traffic(&self, deployment: &DeploymentId) -> Result<(), DeployError> {
        self.running(deployment)?;
        let ready = lock(&self.answered).iter().any(|((id, _), succeeded)| id == deployment && *succeeded);
        if !ready || lock(&self.rerouted).contains(deployment) {
            // DeploymentIsNotInReadyStateException: CodeDeploy waits at READY_WAIT only after the
            // test traffic hook passed, and only until it reroutes.
            return Err(DeployError::NotYet(format!("The deployment {deployment} is not waiting for READY_WAIT.")));
        }
        lock(&self.calls).push(DeployCall::Continue(deployment.to_string()));
        self.reroute(deployment);
        Ok(())
    }

    async fn roll_back(&self, deployment: &DeploymentId) -> Result<(), DeployError> {
        self.running(deployment)?;
        lock(&self.calls).push(DeployCall::RollBack(deployment.to_string()));
        // StopDeployment with autoRollbackEnabled: CodeDeploy starts the rollback (the stop itself
        // ends the deployment later, as a test says with `end`).
        self.start_rollback(deployment);
        Ok(())
    }
}

/// The fake refuses what the stand-in refuses (`tests/src/standin/codedeploy.rs`), so a test on
/// the fake cannot pass by a call AWS would refuse.
#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CodeDeployRequest {
        CodeDeployRequest {
            application: "app".into(),
            deployment_group: "group".into(),
            task_definition: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7".into(),
            container: "app".into(),
            port: 8080,
            verify_function: "convoy-verify".into(),
            description: "convoy web/v1".into(),
        }
    }

    fn execution(id: &str) -> HookExecutionId {
        HookExecutionId::new(id).unwrap()
    }

    #[tokio::test]
    async fn its_deployment_ids_have_codedeploys_form() {
        let fake = MemoryCodeDeploy::default();
        let id = fake.create(&request()).await.unwrap();
        let rest = id.as_str().strip_prefix("d-").unwrap();
        assert_eq!(rest.len(), 9, "{id}");
        assert!(rest.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()), "{id}");
        let rollback = fake.start_rollback(&id).unwrap();
        assert_eq!(rollback.as_str().len(), 11, "{rollback}");
    }

    #[tokio::test]
    async fn a_deployment_it_never_created_is_refused() {
        let fake = MemoryCodeDeploy::default();
        let unknown = DeploymentId::new("d-UNKNOWN01").unwrap();
        assert!(matches!(fake.answer_hook(&unknown, &execution("e-1"), true).await, Err(DeployError::Rejected(_))));
        assert!(matches!(fake.continue_traffic(&unknown).await, Err(DeployError::Rejected(_))));
        assert!(matches!(fake.roll_back(&unknown).await, Err(DeployError::Rejected(_))));
        assert!(fake.calls().is_empty(), "nothing refused is recorded as done");
    }

    #[tokio::test]
    async fn a_second_answer_to_a_hook_execution_is_refused() {
        let fake = MemoryCodeDeploy::default();
        let id = fake.create(&request()).await.unwrap();
        fake.answer_hook(&id, &execution("e-1"), true).await.unwrap();
        let again = fake.answer_hook(&id, &execution("e-1"), true).await.unwrap_err();
        assert!(again.to_string().contains("already completed"), "{again}");
        let answers = fake.calls().into_iter().filter(|c| matches!(c, DeployCall::AnswerHook { .. })).count();
        assert_eq!(answers, 1);
    }

    #[tokio::test]
    async fn a_continue_before_ready_wait_is_not_yet_and_after_the_end_is_refused() {
        let fake = MemoryCodeDeploy::default();
        let id = fake.create(&request()).await.unwrap();
        assert!(matches!(fake.continue_traffic(&id).await, Err(DeployError::NotYet(_))), "no hook passed yet");
        fake.answer_hook(&id, &execution("e-1"), true).await.unwrap();
        fake.continue_traffic(&id).await.unwrap();
        assert!(matches!(fake.continue_traffic(&id).await, Err(DeployError::NotYet(_))), "rerouted already");
        fake.end(&id, DeploymentEnd::Succeeded);
        assert!(matches!(fake.continue_traffic(&id).await, Err(DeployError::Rejected(_))));
        assert!(matches!(fake.roll_back(&id).await, Err(DeployError::Rejected(_))));
        assert!(matches!(fake.answer_hook(&id, &execution("e-2"), true).await, Err(DeployError::Rejected(_))));
    }

    #[tokio::test]
    async fn a_failed_hook_and_a_stop_start_a_rollback_under_a_new_deployment_id() {
        let fake = MemoryCodeDeploy::default();
        let failed = fake.create(&request()).await.unwrap();
        fake.answer_hook(&failed, &execution("e-1"), false).await.unwrap();
        let stopped = fake.create(&request()).await.unwrap();
        fake.roll_back(&stopped).await.unwrap();
        let rollbacks = lock(&fake.rollbacks).clone();
        assert_eq!(rollbacks.iter().map(|(_, of)| of.clone()).collect::<Vec<_>>(), [failed.clone(), stopped.clone()]);
        for (rollback, of) in rollbacks {
            assert_ne!(rollback, of, "a rollback is a deployment of its own");
            let seen = fake.origin(&rollback).await.unwrap().unwrap();
            assert!(seen.rollback, "{rollback} rolls {of} back");
            // Its hooks run under its own id, and are answered there.
            fake.answer_hook(&rollback, &execution("e-rb"), true).await.unwrap();
        }
    }
}
