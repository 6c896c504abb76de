//! CodePipeline, where moto 5.2.5 stops: it creates pipelines and executions but runs no actions
//! and lacks `ListActionExecutions`. The harness plays the pipeline's `CodeDeployToECS` action, and
//! says here what that action reported.

use serde_json::{Value, json};

use super::StandIn;

/// `ListActionExecutions` before any action of the execution reported anything.
pub(super) fn no_action_reported() -> (String, Value) {
    ("ListActionExecutions".into(), json!({"actionExecutionDetails": []}))
}

impl StandIn {
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
