//! CodePipeline, where moto 5.2.5 stops: it creates pipelines and executions but runs no actions
//! and lacks `ListActionExecutions`; its executions say Succeeded at once. The harness plays the
//! pipeline's `CodeDeployToECS` action, and says here what that action reported and how an
//! execution ended (what `GetPipelineExecution` then says, as CodePipeline does before it sends the
//! execution's state-change event).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::StandIn;

/// How the tests said executions ended, by execution id (`Succeeded`, `Failed`, `Stopped`, ...:
/// CodePipeline's `PipelineExecutionStatus`).
#[derive(Debug, Default)]
pub(super) struct CodePipeline {
    ended: HashMap<String, String>,
}

impl CodePipeline {
    /// moto's `GetPipelineExecution` answer with the status the tests gave the execution, if any.
    pub(super) fn overlay(&self, answer: &mut Value) -> bool {
        let execution = &mut answer["pipelineExecution"];
        let id = execution["pipelineExecutionId"].as_str().unwrap_or_default();
        let Some(status) = self.ended.get(id) else { return false };
        execution["status"] = json!(status);
        true
    }
}

/// `ListActionExecutions` before any action of the execution reported anything.
pub(super) fn no_action_reported() -> (String, Value) {
    ("ListActionExecutions".into(), json!({"actionExecutionDetails": []}))
}

impl StandIn {
    /// The execution ends with `status` (CodePipeline's `PipelineExecutionStatus`: `Failed`,
    /// `Stopped`, `Succeeded`, ...): `GetPipelineExecution` says so from now on.
    pub fn pipeline_execution_ends(&self, execution: &str, status: &str) {
        let mut pipelines = self.shared.codepipeline.lock().expect("codepipeline");
        pipelines.ended.insert(execution.to_owned(), status.to_owned());
    }

    /// Answers `ListActionExecutions` as CodePipeline does once the deploy action of
    /// `execution` reported the CodeDeploy `deployment` it created.
    pub fn report_deploy_action(&self, execution: &str, deployment: &str) {
        let detail = json!({"pipelineExecutionId": execution, "actionName": "BlueGreen",
            "status": "InProgress",
            "input": {"actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeployToECS",
                                       "version": "1"}},
            "output": {"executionResult": {"externalExecutionId": deployment}}});
        self.answer("ListActionExecutions", json!({"actionExecutionDetails": [detail]}));
    }
}
