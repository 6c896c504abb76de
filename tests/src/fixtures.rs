//! The documented AWS event payloads, and variants derived from them.

use serde_json::{Value, json};

fn load(name: &str) -> Value {
    let path = format!("{}/fixtures/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn ecr_push_fixture() -> Value {
    load("ecr-image-action-push.json")
}

pub fn s3_notification_fixture() -> Value {
    load("s3-object-created-notification.json")
}

pub fn s3_eventbridge_fixture() -> Value {
    load("s3-object-created-eventbridge.json")
}

/// The ECR push fixture for another repository, tag and digest.
pub fn ecr_push(account: &str, repository: &str, tag: &str, digest: &str, time: &str) -> Value {
    let mut event = ecr_push_fixture();
    event["account"] = json!(account);
    event["time"] = json!(time);
    event["detail"]["repository-name"] = json!(repository);
    event["detail"]["image-tag"] = json!(tag);
    event["detail"]["image-digest"] = json!(digest);
    event
}

/// The S3 notification fixture for another object (the key URL-encoded as S3 sends it).
pub fn s3_notification(bucket: &str, key: &str, version_id: Option<&str>, size: u64) -> Value {
    let mut event = s3_notification_fixture();
    let record = &mut event["Records"][0]["s3"];
    record["bucket"]["name"] = json!(bucket);
    record["bucket"]["arn"] = json!(format!("arn:aws:s3:::{bucket}"));
    let encoded: String = key
        .split('/')
        .map(|segment| {
            percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
                .replace("%20", "+")
                .replace("%2D", "-")
                .replace("%2E", ".")
                .replace("%5F", "_")
        })
        .collect::<Vec<_>>()
        .join("/");
    record["object"]["key"] = json!(encoded);
    record["object"]["size"] = json!(size);
    record["object"]["versionId"] = match version_id {
        Some(v) => json!(v),
        None => Value::Null,
    };
    event
}

/// The S3 EventBridge fixture for another object (keys are not encoded in this form).
pub fn s3_eventbridge(bucket: &str, key: &str, version_id: Option<&str>, size: u64) -> Value {
    let mut event = s3_eventbridge_fixture();
    event["detail"]["bucket"]["name"] = json!(bucket);
    event["detail"]["object"]["key"] = json!(key);
    event["detail"]["object"]["size"] = json!(size);
    event["detail"]["object"]["version-id"] = match version_id {
        Some(v) => json!(v),
        None => Value::Null,
    };
    event
}

pub fn ecs_task_stopped_fixture() -> Value {
    load("ecs-task-state-change-stopped.json")
}

/// The ECS STOPPED fixture for a real task: its ARN, group, startedBy, the migration container's
/// name and exit code (`None`: no exit code, as for a task that never started), stop code, version.
pub fn ecs_task_stopped(
    task: &str,
    group: &str,
    started_by: &str,
    container: &str,
    exit_code: Option<i32>,
    stop_code: &str,
    version: u64,
) -> Value {
    let mut event = ecs_task_stopped_fixture();
    event["resources"] = json!([task]);
    let detail = &mut event["detail"];
    detail["taskArn"] = json!(task);
    detail["group"] = json!(group);
    detail["startedBy"] = json!(started_by);
    detail["stopCode"] = json!(stop_code);
    detail["version"] = json!(version);
    if stop_code == "TaskFailedToStart" {
        detail["stoppedReason"] = json!("CannotPullContainerError: pull image manifest has been retried 5 time(s)");
        detail.as_object_mut().expect("detail").remove("startedAt");
    }
    let c = &mut detail["containers"][0];
    c["name"] = json!(container);
    c["taskArn"] = json!(task);
    match exit_code {
        Some(code) => c["exitCode"] = json!(code),
        None => {
            c.as_object_mut().expect("container").remove("exitCode");
        }
    }
    if exit_code.is_some_and(|code| code != 0) {
        c["reason"] = json!("SQLSTATE[42S01]: Base table or view already exists");
    }
    event
}

/// The CodeDeploy hook fixture for a real deployment and hook execution.
pub fn codedeploy_hook(deployment: &str, execution: &str) -> Value {
    let mut event = load("codedeploy-lifecycle-hook.json");
    event["DeploymentId"] = json!(deployment);
    event["LifecycleEventHookExecutionId"] = json!(execution);
    event
}

/// The ECS native POST_TEST_TRAFFIC_SHIFT fixture for a service, carrying `hook_details` back.
pub fn ecs_hook(cluster: &str, service: &str, execution: &str, hook_details: Value) -> Value {
    let mut event = load("ecs-lifecycle-hook-post-test-traffic-shift.json");
    event["executionId"] = json!(execution);
    event["resourceArn"] = json!(format!(
        "arn:aws:ecs:us-east-1:123456789012:service-deployment/{cluster}/{service}/EZe5LK0Yt0aNmBWwaBK2X"
    ));
    event["executionDetails"]["serviceArn"] =
        json!(format!("arn:aws:ecs:us-east-1:123456789012:service/{cluster}/{service}"));
    event["hookDetails"] = hook_details;
    event
}

/// An EventBridge "CodeDeploy Deployment State-change Notification" (no fixture ships one; its
/// shape follows the CodeDeploy User Guide's example).
pub fn codedeploy_state_change(deployment: &str, state: &str) -> Value {
    json!({
        "version": "0", "id": "c071bfbf-83c4-49ca-a6ff-3df053957145",
        "detail-type": "CodeDeploy Deployment State-change Notification", "source": "aws.codedeploy",
        "account": "123456789012", "time": "2026-11-25T10:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {"region": "us-east-1", "deploymentId": deployment, "state": state,
                                    "application": "convoy", "deploymentGroup": "web"}
    })
}

/// The fixture "CodePipeline Pipeline Execution State Change" for `pipeline`'s `execution`, in
/// `state` (SUCCEEDED, FAILED, STOPPED, ...).
pub fn pipeline_state_change(pipeline: &str, execution: &str, state: &str) -> Value {
    let mut event = load("codepipeline-execution-state-change-failed.json");
    event["resources"] = json!([format!("arn:aws:codepipeline:us-east-1:123456789012:{pipeline}")]);
    event["detail"]["pipeline"] = json!(pipeline);
    event["detail"]["execution-id"] = json!(execution);
    event["detail"]["state"] = json!(state);
    event
}
