//! CodeDeploy, where moto 5.2.5 stops: it lacks `PutLifecycleEventHookExecutionStatus`,
//! `ContinueDeployment` and `StopDeployment`, and its deployments stay "Created". The stand-in
//! keeps each deployment's state as CodeDeploy does (learned from the `CreateDeployment` answers it
//! forwards, or from [`StandIn::register`]): created → in progress → at the `AfterAllowTestTraffic`
//! hook → (hook Succeeded) still in progress → waiting for the reroute (`Ready`) → shifting
//! (`InProgress`, the original task set's termination wait started:
//! `instanceTerminationWaitTimeStarted`) → `Succeeded`; a Failed hook answer fails it (CodeDeploy
//! rolls back), `StopDeployment` stops it. moto's `GetDeployment` answer is passed on with that
//! status. What moto cannot decide (when CodeDeploy invokes a hook, reaches READY_WAIT, ends the
//! shift) the tests say, as AWS would, with [`StandIn::hook_invoked`], [`StandIn::waits`],
//! [`StandIn::finish`].

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{Reply, StandIn, refuse};

/// Where a CodeDeploy ECS blue/green deployment is (CodeDeploy's status in the comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `Created`: CodeDeploy has not begun.
    Created,
    /// `InProgress`: the replacement tasks start, test traffic moves.
    InProgress,
    /// `InProgress`: the `AfterAllowTestTraffic` hook was invoked and awaits its answer.
    AtHook,
    /// `InProgress`: the hook passed; CodeDeploy has not reached READY_WAIT yet.
    HookPassed,
    /// `Ready`: waiting for `ContinueDeployment` to reroute production traffic.
    Ready,
    /// `InProgress`: production traffic was rerouted (a successful `ContinueDeployment`) and the
    /// original task set's termination wait started (`instanceTerminationWaitTimeStarted`).
    Shifting,
    Succeeded,
    /// A failed hook (or anything else) failed it; CodeDeploy rolls back.
    Failed,
    /// `StopDeployment` stopped it.
    Stopped,
}

impl Phase {
    /// The status `GetDeployment` names.
    pub fn status(self) -> &'static str {
        match self {
            Phase::Created => "Created",
            Phase::InProgress | Phase::AtHook | Phase::HookPassed | Phase::Shifting => "InProgress",
            Phase::Ready => "Ready",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Stopped => "Stopped",
        }
    }

    pub fn ended(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Stopped)
    }
}

#[derive(Debug, Default)]
struct Deployment {
    phase: Option<Phase>,
    /// Each hook execution CodeDeploy invoked, and the status it was answered with.
    hooks: HashMap<String, Option<String>>,
}

/// What the stand-in knows of CodeDeploy's deployments.
#[derive(Debug, Default)]
pub(super) struct CodeDeploy {
    deployments: HashMap<String, Deployment>,
}

impl CodeDeploy {
    fn deployment(&mut self, id: &str) -> Result<&mut Deployment, Reply> {
        self.deployments.get_mut(id).ok_or_else(|| {
            refuse("DeploymentDoesNotExistException", format!("The deployment {id} could not be found."))
        })
    }

    /// CodeDeploy's answer to `operation`, and how its state changes; `None`: not one CodeDeploy
    /// operation the stand-in answers.
    pub(super) fn handle(&mut self, operation: &str, body: &Value) -> Option<Reply> {
        let text = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
        let answered = match operation {
            "PutLifecycleEventHookExecutionStatus" => {
                self.answer_hook(&text("deploymentId"), &text("lifecycleEventHookExecutionId"), &text("status"))
            }
            "ContinueDeployment" => self.continue_deployment(&text("deploymentId")),
            "StopDeployment" => self.stop_deployment(&text("deploymentId")),
            _ => return None,
        };
        Some(answered.unwrap_or_else(|refused| refused))
    }

    /// Learns a deployment from moto's answer to its creation; says a known deployment's status
    /// in moto's `GetDeployment` answer as CodeDeploy would (moto's stays "Created"). `None`:
    /// moto's answer goes through as it is.
    pub(super) fn overlay(&mut self, operation: &str, mut answer: Value) -> Option<Value> {
        if operation == "CreateDeployment" {
            let id = answer["deploymentId"].as_str()?;
            self.deployments.entry(id.to_owned()).or_default().phase.get_or_insert(Phase::Created);
            return None;
        }
        let id = answer["deploymentInfo"]["deploymentId"].as_str()?;
        let phase = self.deployments.get(id)?.phase?;
        answer["deploymentInfo"]["status"] = json!(phase.status());
        // What CodeDeploy says of a group with a termination wait once traffic was rerouted.
        if phase == Phase::Shifting {
            answer["deploymentInfo"]["instanceTerminationWaitTimeStarted"] = json!(true);
        }
        Some(answer)
    }

    fn answer_hook(&mut self, id: &str, execution: &str, status: &str) -> Result<Reply, Reply> {
        let deployment = self.deployment(id)?;
        let answered = deployment.hooks.get_mut(execution).ok_or_else(|| {
            refuse(
                "InvalidLifecycleEventHookExecutionIdException",
                format!("The lifecycle event hook execution {execution} is not one of deployment {id}."),
            )
        })?;
        if answered.is_some() {
            return Err(refuse(
                "LifecycleEventAlreadyCompletedException",
                format!("The lifecycle event hook execution {execution} has already completed."),
            ));
        }
        *answered = Some(status.to_owned());
        // A hook of a deployment that already ended is a rollback's re-run: its answer is taken
        // and changes nothing.
        if deployment.phase == Some(Phase::AtHook) {
            deployment.phase = Some(if status == "Succeeded" { Phase::HookPassed } else { Phase::Failed });
        }
        Ok((200, json!({"lifecycleEventHookExecutionId": execution})))
    }

    fn continue_deployment(&mut self, id: &str) -> Result<Reply, Reply> {
        let deployment = self.deployment(id)?;
        match deployment.phase {
            Some(Phase::Ready) => {
                deployment.phase = Some(Phase::Shifting);
                Ok((200, json!({})))
            }
            Some(phase) if phase.ended() => Err(refuse(
                "DeploymentAlreadyCompletedException",
                format!("The deployment {id} has already completed ({}).", phase.status()),
            )),
            phase => Err(refuse(
                "DeploymentIsNotInReadyStateException",
                format!(
                    "The deployment {id} is not in the Ready state (it is {}).",
                    phase.map_or("unknown", Phase::status)
                ),
            )),
        }
    }

    fn stop_deployment(&mut self, id: &str) -> Result<Reply, Reply> {
        let deployment = self.deployment(id)?;
        if let Some(phase) = deployment.phase.filter(|p| p.ended()) {
            return Err(refuse(
                "DeploymentAlreadyCompletedException",
                format!("The deployment {id} has already completed ({}).", phase.status()),
            ));
        }
        deployment.phase = Some(Phase::Stopped);
        Ok((200, json!({"status": "Pending", "statusMessage": "Stopping the deployment"})))
    }
}

impl StandIn {
    fn codedeploy(&self) -> std::sync::MutexGuard<'_, CodeDeploy> {
        self.shared.codedeploy.lock().expect("codedeploy")
    }

    /// A deployment CodeDeploy created without the stand-in seeing it (the harness created it
    /// straight on moto): known from now on, `Created`.
    pub fn register(&self, deployment: &str) {
        let mut codedeploy = self.codedeploy();
        let known = codedeploy.deployments.entry(deployment.to_owned()).or_default();
        known.phase.get_or_insert(Phase::Created);
    }

    /// CodeDeploy invokes the `AfterAllowTestTraffic` hook of `deployment` as `execution`: the
    /// deployment waits for that answer. On a deployment that ended (rolled back), it is a
    /// rollback's re-run of the hook, which changes nothing but takes one answer.
    pub fn hook_invoked(&self, deployment: &str, execution: &str) {
        let mut codedeploy = self.codedeploy();
        let known = codedeploy
            .deployments
            .get_mut(deployment)
            .unwrap_or_else(|| panic!("CodeDeploy invokes hooks only for its own deployments, not {deployment}"));
        known.hooks.entry(execution.to_owned()).or_insert(None);
        if !known.phase.is_some_and(Phase::ended) {
            known.phase = Some(Phase::AtHook);
        }
    }

    /// CodeDeploy reaches READY_WAIT: the hook passed, and the deployment now waits for
    /// `ContinueDeployment`.
    pub fn waits(&self, deployment: &str) {
        self.step(deployment, Phase::HookPassed, Phase::Ready);
    }

    /// CodeDeploy reroutes production traffic by itself, with no call anyone made (the group's
    /// READY_WAIT timed out with `CONTINUE_DEPLOYMENT`): as after a continue, and CloudTrail
    /// records nothing.
    pub fn reroutes_by_itself(&self, deployment: &str) {
        self.step(deployment, Phase::Ready, Phase::Shifting);
    }

    /// CodeDeploy finishes shifting production traffic (after a continue): `Succeeded`.
    pub fn finish(&self, deployment: &str) {
        self.step(deployment, Phase::Shifting, Phase::Succeeded);
    }

    /// The deployment ends `phase` without Convoy's doing (someone continued or stopped it in
    /// the console, or its READY_WAIT timed out).
    pub fn ended_elsewhere(&self, deployment: &str, phase: Phase) {
        assert!(phase.ended(), "{phase:?} is not an end");
        let mut codedeploy = self.codedeploy();
        let known = codedeploy.deployments.get_mut(deployment).unwrap_or_else(|| panic!("no deployment {deployment}"));
        known.phase = Some(phase);
    }

    fn step(&self, deployment: &str, from: Phase, to: Phase) {
        let mut codedeploy = self.codedeploy();
        let known = codedeploy.deployments.get_mut(deployment).unwrap_or_else(|| panic!("no deployment {deployment}"));
        assert_eq!(known.phase, Some(from), "CodeDeploy moves {deployment} to {to:?} only from {from:?}");
        known.phase = Some(to);
    }

    /// Where CodeDeploy has `deployment` now (`None`: CodeDeploy does not know it).
    pub fn phase(&self, deployment: &str) -> Option<Phase> {
        self.codedeploy().deployments.get(deployment).and_then(|d| d.phase)
    }
}
