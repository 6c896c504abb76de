//! CodeDeploy, where moto 5.2.5 stops: it lacks `PutLifecycleEventHookExecutionStatus`,
//! `ContinueDeployment` and `StopDeployment`, and its deployments stay "Created". The stand-in
//! keeps each deployment's state as CodeDeploy does (learned from the `CreateDeployment` answers it
//! forwards, or from [`StandIn::register`]): created → in progress → at the `AfterAllowTestTraffic`
//! hook → (hook Succeeded) still in progress → waiting for the reroute (`Ready`) → shifting
//! (`InProgress`, the original task set's termination wait started:
//! `instanceTerminationWaitTimeStarted`) → `Succeeded`; a Failed hook answer fails it,
//! `StopDeployment` stops it. A deployment whose rollback configuration says so (its request's or
//! its group's `autoRollbackConfiguration`; for a stop, `autoRollbackEnabled`) is then rolled
//! back by a new deployment with its own id, as CodeDeploy does: `GetDeployment` names each in
//! the other's `rollbackInfo`, and the rollback's `creator` is `codeDeployRollback`. moto's
//! `GetDeployment` answer is passed on with that status. What moto cannot decide (when CodeDeploy invokes a hook, reaches READY_WAIT, ends the
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
    /// Whether CodeDeploy rolls this deployment back when it fails or is stopped: the
    /// `autoRollbackConfiguration` of its `CreateDeployment` request, or else of its deployment
    /// group (its events `DEPLOYMENT_FAILURE`, `DEPLOYMENT_STOP_ON_REQUEST`).
    rolls_back_on: Vec<String>,
    /// The rollback CodeDeploy created for this deployment (its `rollbackInfo.rollbackDeploymentId`).
    rolled_back_by: Option<String>,
    /// This deployment is CodeDeploy's rollback of that one (`creator` `codeDeployRollback`,
    /// `rollbackInfo.rollbackTriggeringDeploymentId`), created at this time (epoch seconds).
    rollback_of: Option<(String, i64)>,
    /// Its ECS target, `<cluster>:<service>` (the group's `ecsServices`, learned at its creation).
    target: Option<String>,
    /// The replacement task set's task definition (the AppSpec's `TargetService`
    /// `TaskDefinition`) and when CodeDeploy created it (epoch seconds).
    replacement: Option<(String, f64)>,
}

/// What the stand-in knows of CodeDeploy's deployments.
#[derive(Debug, Default)]
pub(super) struct CodeDeploy {
    deployments: HashMap<String, Deployment>,
}

/// Whether `id` has the form of a deployment id: CodeDeploy's `d-` and nine capital letters or
/// digits (`d-A1B2C3D4E`, the API Reference's examples), or moto's (a UUID; moto 5.2.5 names its
/// deployments so). Anything else is refused with `InvalidDeploymentIdException`, "At least one of
/// the deployment IDs was specified in an invalid format" (API Reference, `GetDeployment`,
/// `ContinueDeployment`, `StopDeployment`, `PutLifecycleEventHookExecutionStatus`: Errors).
fn well_formed(id: &str) -> bool {
    let codedeploy = id
        .strip_prefix("d-")
        .is_some_and(|rest| rest.len() == 9 && rest.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    let parts: Vec<&str> = id.split('-').collect();
    let uuid = parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()));
    codedeploy || uuid
}

/// A deployment id as CodeDeploy gives them (`d-` and nine capital letters or digits).
fn fresh_deployment_id() -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let rest: String = (0..9).map(|_| alphabet[fastrand::usize(..alphabet.len())] as char).collect();
    format!("d-{rest}")
}

/// The `TaskDefinition` of a `CreateDeployment` request's AppSpec content (JSON, as Convoy writes
/// it: `Resources[].TargetService.Properties.TaskDefinition`, CodeDeploy User Guide, "AppSpec
/// 'resources' section for Amazon ECS deployments").
fn app_spec_task_definition(request: &Value) -> Option<String> {
    let content = request["revision"]["appSpecContent"]["content"].as_str()?;
    let app_spec: Value = serde_json::from_str(content).ok()?;
    app_spec["Resources"].as_array()?.iter().find_map(|resource| {
        let target = resource.as_object()?.values().next()?;
        target["Properties"]["TaskDefinition"].as_str().map(str::to_owned)
    })
}

impl CodeDeploy {
    /// The task set ECS serves `<cluster>:<service>` from after CodeDeploy's blue/green
    /// deployments: the replacement of the one that succeeded last (its task definition and
    /// creation time). `None`: no deployment of it succeeded (ECS serves its original one).
    pub(super) fn primary_task_set(&self, target: &str) -> Option<(String, f64)> {
        self.deployments
            .values()
            .filter(|d| d.phase == Some(Phase::Succeeded) && d.target.as_deref() == Some(target))
            .filter_map(|d| d.replacement.clone())
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    fn deployment(&mut self, id: &str) -> Result<&mut Deployment, Reply> {
        if !well_formed(id) {
            return Err(refuse("InvalidDeploymentIdException", format!("The deployment ID {id} is not valid.")));
        }
        self.deployments.get_mut(id).ok_or_else(|| {
            refuse("DeploymentDoesNotExistException", format!("The deployment {id} could not be found."))
        })
    }

    /// CodeDeploy's answer to `operation`, and how its state changes; `None`: not one CodeDeploy
    /// operation the stand-in answers (moto answers it).
    pub(super) fn handle(&mut self, operation: &str, body: &Value) -> Option<Reply> {
        let text = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
        let answered = match operation {
            "PutLifecycleEventHookExecutionStatus" => {
                self.answer_hook(&text("deploymentId"), &text("lifecycleEventHookExecutionId"), &text("status"))
            }
            "ContinueDeployment" => {
                self.continue_deployment(&text("deploymentId"), body["deploymentWaitType"].as_str())
            }
            "StopDeployment" => self.stop_deployment(&text("deploymentId"), body["autoRollbackEnabled"].as_bool()),
            "GetDeploymentTarget" => self.deployment_target(&text("deploymentId"), &text("targetId")),
            // moto answers for the deployments it keeps; a malformed id is refused first, as AWS does.
            "GetDeployment" if !well_formed(&text("deploymentId")) => {
                self.deployment(&text("deploymentId")).map(|_| (200, json!({})))
            }
            // BatchGetDeployments refuses a batch over 25 ids or with a malformed one, as AWS does.
            "BatchGetDeployments" => {
                let ids = body["deploymentIds"].as_array().cloned().unwrap_or_default();
                match ids.iter().find(|id| !id.as_str().is_some_and(well_formed)) {
                    _ if ids.len() > 25 => {
                        Err(refuse("BatchLimitExceededException", "The maximum number of deployment IDs is 25.".into()))
                    }
                    Some(id) => {
                        Err(refuse("InvalidDeploymentIdException", format!("The deployment ID {id} is not valid.")))
                    }
                    None => return None,
                }
            }
            _ => return None,
        };
        Some(answered.unwrap_or_else(|refused| refused))
    }

    /// A rollback CodeDeploy created, which moto never saw: its `GetDeployment` is moto's answer
    /// for the deployment it rolls back, said of the rollback (see [`CodeDeploy::overlay`]).
    /// `Some(that deployment's id)` when `id` is such a rollback.
    pub(super) fn rolls_back(&self, id: &str) -> Option<String> {
        self.deployments.get(id)?.rollback_of.as_ref().map(|(of, _)| of.clone())
    }

    /// Learns a deployment from moto's answer to its creation (with the `CreateDeployment`
    /// request and its group as moto keeps it, `group`: the `autoRollbackConfiguration`, and the
    /// `ecsServices` that make its target); says a known
    /// deployment's status in moto's `GetDeployment` answer as CodeDeploy would (moto's stays
    /// "Created"), with its `rollbackInfo`, and a rollback's `GetDeployment` as CodeDeploy says
    /// it (`asked`: the id the request named). `None`: moto's answer goes through as it is.
    pub(super) fn overlay(
        &mut self,
        operation: &str,
        request: &Value,
        group: Option<&Value>,
        mut answer: Value,
    ) -> Option<Value> {
        if operation == "CreateDeployment" {
            let id = answer["deploymentId"].as_str()?;
            let configuration = match &request["autoRollbackConfiguration"] {
                Value::Null => group.map(|g| g["autoRollbackConfiguration"].clone()).unwrap_or(Value::Null),
                given => given.clone(),
            };
            let events = if configuration["enabled"] == true {
                configuration["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            } else {
                Vec::new()
            };
            let known = self.deployments.entry(id.to_owned()).or_default();
            known.phase.get_or_insert(Phase::Created);
            known.rolls_back_on = events;
            let service = group.map(|g| &g["ecsServices"][0]);
            known.target =
                service.and_then(|s| Some(format!("{}:{}", s["clusterName"].as_str()?, s["serviceName"].as_str()?)));
            let now = chrono::Utc::now();
            let created = now.timestamp() as f64 + f64::from(now.timestamp_subsec_millis()) / 1000.0;
            known.replacement = app_spec_task_definition(request).map(|td| (td, created));
            return None;
        }
        let asked = request["deploymentId"].as_str()?;
        let known = self.deployments.get(asked)?;
        let info = &mut answer["deploymentInfo"];
        info["status"] = json!(known.phase?.status());
        // What CodeDeploy says of a group with a termination wait once traffic was rerouted.
        if known.phase == Some(Phase::Shifting) {
            info["instanceTerminationWaitTimeStarted"] = json!(true);
        }
        if let Some(rollback) = &known.rolled_back_by {
            info["rollbackInfo"] = json!({"rollbackDeploymentId": rollback});
        }
        if let Some((of, created)) = &known.rollback_of {
            // "These rolled-back deployments are technically new deployments, with new deployment
            // IDs" (CodeDeploy User Guide, "Redeploy and roll back a deployment with CodeDeploy").
            info["deploymentId"] = json!(asked);
            info["creator"] = json!("codeDeployRollback");
            info["rollbackInfo"] = json!({"rollbackTriggeringDeploymentId": of});
            info["createTime"] = json!(created);
            if let Some(fields) = info.as_object_mut() {
                fields.remove("description");
            }
        }
        Some(answer)
    }

    /// moto's `BatchGetDeployments` answer with each deployment said as [`CodeDeploy::overlay`]
    /// says it for `GetDeployment`. A rollback moto never saw is not in moto's answer: Convoy
    /// asks a deployment the batch leaves out alone.
    pub(super) fn overlay_batch(&mut self, mut answer: Value) -> Option<Value> {
        for info in answer["deploymentsInfo"].as_array_mut()? {
            let Some(id) = info["deploymentId"].as_str().map(str::to_owned) else { continue };
            let single = json!({"deploymentInfo": info.take()});
            let said =
                self.overlay("GetDeployment", &json!({"deploymentId": id}), None, single.clone()).unwrap_or(single);
            *info = said["deploymentInfo"].clone();
        }
        Some(answer)
    }

    /// CodeDeploy rolls `id` back when its deployment (or group) says so for `event`: a new
    /// deployment, whose hooks run again with its own id.
    fn roll_back_if(&mut self, id: &str, event: &str) {
        let Some(known) = self.deployments.get_mut(id) else { return };
        if !known.rolls_back_on.iter().any(|e| e == event) || known.rolled_back_by.is_some() {
            return;
        }
        let rollback = fresh_deployment_id();
        known.rolled_back_by = Some(rollback.clone());
        let started = Deployment {
            phase: Some(Phase::InProgress),
            rollback_of: Some((id.to_owned(), chrono::Utc::now().timestamp())),
            target: known.target.clone(),
            ..Deployment::default()
        };
        self.deployments.insert(rollback, started);
    }

    /// `GetDeploymentTarget` of a deployment's ECS target (API Reference, "GetDeploymentTarget",
    /// "ECSTarget", "LifecycleEvent"): its `AfterAllowTestTraffic` event is `Pending` until
    /// CodeDeploy invokes the hook, `InProgress` while the hook runs, then as it was answered
    /// (`Skipped` when the deployment ended before). An unknown target is
    /// `DeploymentTargetDoesNotExistException`.
    fn deployment_target(&mut self, id: &str, target: &str) -> Result<Reply, Reply> {
        let deployment = self.deployment(id)?;
        if deployment.target.as_deref() != Some(target) {
            return Err(refuse(
                "DeploymentTargetDoesNotExistException",
                format!("The deployment target {target} of deployment {id} does not exist."),
            ));
        }
        let answered = deployment.hooks.values().flatten().next().cloned();
        let status = match (deployment.phase, answered) {
            (_, Some(answer)) => answer,
            (Some(Phase::AtHook), None) => "InProgress".into(),
            (Some(phase), None) if phase.ended() => "Skipped".into(),
            _ => "Pending".into(),
        };
        let target_status = match deployment.phase {
            None | Some(Phase::Created) => "Pending",
            Some(Phase::Ready) => "Ready",
            Some(Phase::Succeeded) => "Succeeded",
            Some(Phase::Failed | Phase::Stopped) => "Failed",
            Some(Phase::InProgress | Phase::AtHook | Phase::HookPassed | Phase::Shifting) => "InProgress",
        };
        Ok((
            200,
            json!({"deploymentTarget": {"deploymentTargetType": "ECSTarget", "ecsTarget": {
            "deploymentId": id, "targetId": target, "status": target_status,
            "lifecycleEvents": [
                {"lifecycleEventName": "BeforeInstall", "status": "Succeeded"},
                {"lifecycleEventName": "Install", "status": "Succeeded"},
                {"lifecycleEventName": "AfterInstall", "status": "Succeeded"},
                {"lifecycleEventName": "BeforeAllowTraffic", "status": "Succeeded"},
                {"lifecycleEventName": "AllowTestTraffic", "status": "Succeeded"},
                {"lifecycleEventName": "AfterAllowTestTraffic", "status": status},
            ]}}}),
        ))
    }

    fn answer_hook(&mut self, id: &str, execution: &str, status: &str) -> Result<Reply, Reply> {
        let deployment = self.deployment(id)?;
        // "Lambda validation functions return Succeeded or Failed" (API Reference,
        // PutLifecycleEventHookExecutionStatus): the other LifecycleEventStatus values are refused.
        if !matches!(status, "Succeeded" | "Failed") {
            return Err(refuse(
                "InvalidLifecycleEventHookExecutionStatusException",
                format!("The status {status:?} is not valid for a hook: it should be Succeeded or Failed."),
            ));
        }
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
        if deployment.phase == Some(Phase::AtHook) {
            let passed = status == "Succeeded";
            deployment.phase = Some(if passed { Phase::HookPassed } else { Phase::Failed });
            if !passed {
                self.roll_back_if(id, "DEPLOYMENT_FAILURE");
            }
        }
        Ok((200, json!({"lifecycleEventHookExecutionId": execution})))
    }

    /// `ContinueDeployment` with its `deploymentWaitType` (API Reference): `READY_WAIT` (also
    /// when none is given) reroutes production traffic from READY_WAIT; `TERMINATION_WAIT` ends
    /// the original task set's termination wait, which begins once traffic was rerouted.
    fn continue_deployment(&mut self, id: &str, wait_type: Option<&str>) -> Result<Reply, Reply> {
        let deployment = self.deployment(id)?;
        let (from, to) = match wait_type.unwrap_or("READY_WAIT") {
            "READY_WAIT" => (Phase::Ready, Phase::Shifting),
            "TERMINATION_WAIT" => (Phase::Shifting, Phase::Succeeded),
            other => {
                return Err(refuse("InvalidDeploymentWaitTypeException", format!("The wait type {other} is invalid.")));
            }
        };
        match deployment.phase {
            Some(phase) if phase == from => {
                deployment.phase = Some(to);
                Ok((200, json!({})))
            }
            Some(phase) if phase.ended() => Err(refuse(
                "DeploymentAlreadyCompletedException",
                format!("The deployment {id} has already completed ({}).", phase.status()),
            )),
            // The API Reference names no other code for a wait the deployment is not in.
            phase => Err(refuse(
                "DeploymentIsNotInReadyStateException",
                format!(
                    "The deployment {id} is not waiting for {} (it is {}).",
                    wait_type.unwrap_or("READY_WAIT"),
                    phase.map_or("unknown", Phase::status)
                ),
            )),
        }
    }

    /// `StopDeployment`: stopped; rolled back when `autoRollbackEnabled` says so ("when a
    /// deployment is stopped, whether instances that have been updated should be rolled back",
    /// API Reference), or, when it says nothing, as the deployment's rollback configuration says
    /// for `DEPLOYMENT_STOP_ON_REQUEST`.
    fn stop_deployment(&mut self, id: &str, auto_rollback: Option<bool>) -> Result<Reply, Reply> {
        let deployment = self.deployment(id)?;
        if let Some(phase) = deployment.phase.filter(|p| p.ended()) {
            return Err(refuse(
                "DeploymentAlreadyCompletedException",
                format!("The deployment {id} has already completed ({}).", phase.status()),
            ));
        }
        deployment.phase = Some(Phase::Stopped);
        match auto_rollback {
            Some(true) => {
                deployment.rolls_back_on.push("DEPLOYMENT_STOP_ON_REQUEST".into());
                self.roll_back_if(id, "DEPLOYMENT_STOP_ON_REQUEST");
            }
            Some(false) => {}
            None => self.roll_back_if(id, "DEPLOYMENT_STOP_ON_REQUEST"),
        }
        Ok((200, json!({"status": "Pending", "statusMessage": "Stopping the deployment"})))
    }
}

impl StandIn {
    fn codedeploy(&self) -> std::sync::MutexGuard<'_, CodeDeploy> {
        self.shared.codedeploy.lock().expect("codedeploy")
    }

    /// A deployment CodeDeploy created without the stand-in seeing it (the harness created it
    /// straight on moto): known from now on, `Created`, on its ECS target `target`
    /// (`<cluster>:<service>`).
    pub fn register(&self, deployment: &str, target: &str) {
        let mut codedeploy = self.codedeploy();
        let known = codedeploy.deployments.entry(deployment.to_owned()).or_default();
        known.phase.get_or_insert(Phase::Created);
        known.target.get_or_insert_with(|| target.to_owned());
    }

    /// CodeDeploy invokes the `AfterAllowTestTraffic` hook of `deployment` as `execution`: the
    /// deployment waits for that answer. A deployment that ended runs no more hooks: a rollback's
    /// re-run of them comes with the rollback's own id ([`StandIn::rollback_of`]).
    pub fn hook_invoked(&self, deployment: &str, execution: &str) {
        let mut codedeploy = self.codedeploy();
        let known = codedeploy
            .deployments
            .get_mut(deployment)
            .unwrap_or_else(|| panic!("CodeDeploy invokes hooks only for its own deployments, not {deployment}"));
        assert!(
            !known.phase.is_some_and(Phase::ended),
            "CodeDeploy runs no hook of {deployment}, which ended {:?}: a rollback runs them with its own id",
            known.phase
        );
        known.hooks.entry(execution.to_owned()).or_insert(None);
        known.phase = Some(Phase::AtHook);
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

    /// The rollback CodeDeploy created for `deployment` (on a failed hook, or a stop), if any: a
    /// new deployment, in progress.
    pub fn rollback_of(&self, deployment: &str) -> Option<String> {
        self.codedeploy().deployments.get(deployment).and_then(|d| d.rolled_back_by.clone())
    }

    /// Where CodeDeploy has `deployment` now (`None`: CodeDeploy does not know it).
    pub fn phase(&self, deployment: &str) -> Option<Phase> {
        self.codedeploy().deployments.get(deployment).and_then(|d| d.phase)
    }
}
