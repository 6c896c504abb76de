//! The documented AWS event payloads, and variants derived from them.

use serde_json::{Value, json};

use crate::moto::{ACCOUNT, REGION};

/// The accounts and regions of AWS's documented examples, which a harness event never keeps:
/// every event is in the test world's account and region, as AWS would send it there.
const FIXTURE_ACCOUNTS: &[&str] = &["111122223333", "123456789012"];
const FIXTURE_REGIONS: &[&str] = &["us-west-2", "ca-central-1", "us-east-1"];

/// A documented fixture, moved into the test world's account and region (in every string: the
/// envelope, ARNs, image URIs, availability zones).
fn load(name: &str) -> Value {
    let path = format!("{}/fixtures/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut event = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    into_world(&mut event);
    event
}

/// The raw documented fixture `name`, as AWS's example has it (for tests about foreign events).
pub fn documented(name: &str) -> Value {
    let path = format!("{}/fixtures/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn into_world(value: &mut Value) {
    match value {
        Value::String(s) => {
            for account in FIXTURE_ACCOUNTS {
                *s = s.replace(account, ACCOUNT);
            }
            for region in FIXTURE_REGIONS {
                *s = s.replace(region, REGION);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(into_world),
        Value::Object(fields) => fields.values_mut().for_each(into_world),
        _ => {}
    }
}

pub fn ecr_push_fixture() -> Value {
    load("ecr-image-action-push.json")
}

pub fn ecr_scan_fixture() -> Value {
    load("ecr-image-scan.json")
}

/// The ECR "Image Scan" fixture for another repository and digest (its tags left empty, as ECR
/// may send them).
pub fn ecr_scan(account: &str, repository: &str, digest: &str) -> Value {
    let mut event = ecr_scan_fixture();
    event["account"] = json!(account);
    let region = crate::moto::REGION;
    event["resources"] = json!([format!("arn:aws:ecr:{region}:{account}:repository/{repository}")]);
    event["detail"]["repository-name"] = json!(repository);
    event["detail"]["image-digest"] = json!(digest);
    event
}

pub fn s3_notification_fixture() -> Value {
    load("s3-object-created-notification.json")
}

pub fn s3_eventbridge_fixture() -> Value {
    load("s3-object-created-eventbridge.json")
}

/// An EventBridge envelope's `time` as AWS writes it: whole seconds, UTC, ending in `Z`
/// (`"time": "2019-11-16T01:54:34Z"` in the ECR User Guide's example).
pub fn event_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The ECR push fixture for another repository, tag and digest, pushed at `at` (the event's
/// `time` in EventBridge's whole seconds: two pushes within one second carry the same time).
pub fn ecr_push(account: &str, repository: &str, tag: &str, digest: &str, at: chrono::DateTime<chrono::Utc>) -> Value {
    let mut event = ecr_push_fixture();
    event["account"] = json!(account);
    event["time"] = json!(event_time(at));
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

/// The "Example Task state change event" of the Amazon ECS Developer Guide ("Amazon ECS task
/// state change events"), a RUNNING Fargate task, as the guide prints it.
pub fn ecs_task_state_change_fixture() -> Value {
    load("ecs-task-state-change.json")
}

/// How one container of a stopped task ended, as the task event lists it.
#[derive(Debug, Clone, Copy)]
pub struct ContainerExit<'a> {
    pub name: &'a str,
    /// `None`: no exit code, as for a container that never started.
    pub exit_code: Option<i32>,
    pub reason: Option<&'a str>,
}

impl<'a> ContainerExit<'a> {
    pub fn exited(name: &'a str, exit_code: i32) -> Self {
        Self { name, exit_code: Some(exit_code), reason: None }
    }

    /// A container that never ran (the task failed to start): ECS lists it without an exit code.
    pub fn never_started(name: &'a str) -> Self {
        Self { name, exit_code: None, reason: None }
    }

    pub fn because(self, reason: &'a str) -> Self {
        Self { reason: Some(reason), ..self }
    }
}

/// The ARN of a migration task definition of `family` (Convoy's migration family of it).
pub fn migration_task_definition(family: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}{}:1", convoy::taskdef::MIGRATION_FAMILY_SUFFIX)
}

/// A task STOPPED event for a real task of the world's cluster.
#[derive(Debug, Clone)]
pub struct TaskStopped<'a> {
    pub cluster: &'a str,
    pub task: &'a str,
    pub group: &'a str,
    pub started_by: &'a str,
    /// The task definition the task runs (`taskDefinitionArn`): Convoy adopts a task only when it
    /// is of the migration family.
    pub task_definition: &'a str,
    /// The container whose command the task overrides (the migration's).
    pub overridden: &'a str,
    /// Every container of the task definition, in the order the event lists them: ECS lists
    /// them all, the non-essential ones too, each with its own exit code.
    pub containers: &'a [ContainerExit<'a>],
    pub stop_code: &'a str,
    pub version: u64,
}

/// The guide's task state change event for a real task of the world's cluster, moved to its
/// STOPPED form. "The `detail` section below resembles the Task object that is returned from a
/// DescribeTasks API operation" (the guide's page): every field set here beyond the example's is
/// one the API Reference documents on `Task` (`startedBy`, `stopCode`, `stoppedReason`,
/// `stoppingAt`, `executionStoppedAt`, `stoppedAt`, `desiredStatus`, `lastStatus`, `version`) or
/// on `Container` (`exitCode`, `reason`, `lastStatus`), with the guide's ISO time stamps. One
/// entry per container (each a copy of the example's container with its own name, ARN and exit
/// code). An empty `started_by` is a task started without one (the field is left out). A
/// `TaskFailedToStart` task has no `startedAt` and the stop reason of a failed image
/// pull ("Stopped tasks error codes", CannotPullContainerError).
pub fn ecs_task_stopped(stopped: &TaskStopped<'_>) -> Value {
    let mut event = ecs_task_state_change_fixture();
    let task = stopped.task;
    event["resources"] = json!([task]);
    let detail = &mut event["detail"];
    detail["clusterArn"] = json!(cluster_arn(stopped.cluster));
    detail["taskArn"] = json!(task);
    detail["group"] = json!(stopped.group);
    if !stopped.started_by.is_empty() {
        detail["startedBy"] = json!(stopped.started_by);
    }
    detail["taskDefinitionArn"] = json!(stopped.task_definition);
    detail["desiredStatus"] = json!("STOPPED");
    detail["lastStatus"] = json!("STOPPED");
    detail["stopCode"] = json!(stopped.stop_code);
    detail["stoppedReason"] = json!("Essential container in task exited");
    detail["stoppingAt"] = json!("2020-01-23T17:58:10.103Z");
    detail["executionStoppedAt"] = json!("2020-01-23T17:58:11.103Z");
    detail["stoppedAt"] = json!("2020-01-23T17:58:12.103Z");
    detail["updatedAt"] = json!("2020-01-23T17:58:12.103Z");
    detail["version"] = json!(stopped.version);
    detail["overrides"]["containerOverrides"][0]["name"] = json!(stopped.overridden);
    if stopped.stop_code == "TaskFailedToStart" {
        detail["stoppedReason"] = json!("CannotPullContainerError: pull image manifest has been retried 5 time(s)");
        detail.as_object_mut().expect("detail").remove("startedAt");
    }
    let template = detail["containers"][0].clone();
    let containers: Vec<Value> = stopped
        .containers
        .iter()
        .enumerate()
        .map(|(i, exit)| {
            let mut c = template.clone();
            c["name"] = json!(exit.name);
            c["taskArn"] = json!(task);
            c["lastStatus"] = json!("STOPPED");
            // Each container of a task has its own ARN; keep the example's form, vary the id.
            c["containerArn"] =
                json!(format!("arn:aws:ecs:{REGION}:{ACCOUNT}:container/cf159fd6-3e3f-4a9e-84f9-66cbe726af{i:02}"));
            let fields = c.as_object_mut().expect("container");
            if let Some(code) = exit.exit_code {
                fields.insert("exitCode".into(), json!(code));
            }
            if let Some(reason) = exit.reason {
                fields.insert("reason".into(), json!(reason));
            }
            c
        })
        .collect();
    detail["containers"] = json!(containers);
    event
}

/// The guide's task moved to its STOPPED form as it is: its own cluster, task, group
/// (`family:sample-fargate`) and task definition, started without a `startedBy`, exit 0. Another
/// team's task, for Convoy.
pub fn foreign_task_stopped() -> Value {
    let example = load("ecs-task-state-change.json");
    let text = |field: &str| example["detail"][field].as_str().unwrap_or_default().to_owned();
    let (cluster, task, group, definition) =
        (text("clusterArn"), text("taskArn"), text("group"), text("taskDefinitionArn"));
    let mut event = ecs_task_stopped(&TaskStopped {
        cluster: cluster.rsplit('/').next().unwrap_or_default(),
        task: &task,
        group: &group,
        started_by: "",
        task_definition: &definition,
        overridden: "FargateApp",
        containers: &[ContainerExit::exited("FargateApp", 0)],
        stop_code: "EssentialContainerExited",
        version: 4,
    });
    event["detail"]["containers"][0]["containerArn"] = example["detail"]["containers"][0]["containerArn"].clone();
    event
}

/// The ARN of the world's cluster `cluster`.
pub fn cluster_arn(cluster: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}")
}

/// The CodeDeploy hook fixture for a real deployment and hook execution.
pub fn codedeploy_hook(deployment: &str, execution: &str) -> Value {
    let mut event = load("codedeploy-lifecycle-hook.json");
    event["DeploymentId"] = json!(deployment);
    event["LifecycleEventHookExecutionId"] = json!(execution);
    event
}

/// The ECS native POST_TEST_TRAFFIC_SHIFT fixture (the guide's example) for a service of the
/// world's cluster: its `my-cluster` and `my-service` become `cluster` and `service` in every
/// ARN, its `executionId` becomes `execution`, and `hook_details` is what ECS passes back (the
/// guide's first invocation has none: `Value::Null` leaves the field out).
pub fn ecs_hook(cluster: &str, service: &str, execution: &str, hook_details: Value) -> Value {
    let mut event = load("ecs-lifecycle-hook-post-test-traffic-shift.json");
    event["executionId"] = json!(execution);
    let moved = |arn: &Value| {
        json!(arn.as_str().unwrap().replace("/my-cluster/my-service/", &format!("/{cluster}/{service}/")))
    };
    event["resourceArn"] = moved(&event["resourceArn"]);
    let details = &mut event["executionDetails"];
    details["targetServiceRevisionArn"] = moved(&details["targetServiceRevisionArn"]);
    let service_arn =
        details["serviceArn"].as_str().unwrap().replace("/my-cluster/my-service", &format!("/{cluster}/{service}"));
    details["serviceArn"] = json!(service_arn);
    if !hook_details.is_null() {
        event["hookDetails"] = hook_details;
    }
    event
}

/// The ECS native POST_TEST_TRAFFIC_SHIFT fixture for `service_deployment` (its ARN names the
/// cluster and service), carrying `hook_details` back.
pub fn ecs_native_hook(service_deployment: &str, execution: &str, hook_details: Value) -> Value {
    let mut parts = service_deployment.rsplit('/');
    let (_, service, cluster) = (parts.next(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let mut event = ecs_hook(cluster, service, execution, hook_details);
    event["resourceArn"] = json!(service_deployment);
    event
}

/// The same hook invoked at `stage` (`lifecycleStage`): during a rollback ECS runs the
/// TEST_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT hooks again, and only those.
pub fn ecs_native_hook_at(stage: &str, service_deployment: &str, execution: &str, hook_details: Value) -> Value {
    let mut event = ecs_native_hook(service_deployment, execution, hook_details);
    event["lifecycleStage"] = json!(stage);
    event
}

/// The documented "ECS Deployment State Change" (SERVICE_DEPLOYMENT_FAILED) moved to the world's
/// `cluster` and `service`, as `event_name` with `reason`. ECS announces a rollback with
/// SERVICE_DEPLOYMENT_IN_PROGRESS and a reason naming the deployment it rolls back to
/// ([`ecs_rollback_reason`]), and its end with SERVICE_DEPLOYMENT_COMPLETED.
pub fn ecs_deployment_state_change(cluster: &str, service: &str, event_name: &str, reason: &str) -> Value {
    let mut event = load("ecs-deployment-state-change-failed.json");
    event["resources"] = json!([format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{service}")]);
    event["detail"]["eventName"] = json!(event_name);
    event["detail"]["eventType"] = json!(if event_name.ends_with("FAILED") { "ERROR" } else { "INFO" });
    event["detail"]["reason"] = json!(reason);
    event
}

/// The reason of the SERVICE_DEPLOYMENT_IN_PROGRESS event that starts a rollback, in the form of
/// the guide's rollback example ("Amazon ECS service deployment state change events": "The
/// difference between the two is in the reason field"), rolling back to ECS's deployment `to`.
pub fn ecs_rollback_reason(to: &str) -> String {
    format!("ECS deployment circuit breaker: rolling back to deploymentId {to}.")
}

pub fn codedeploy_state_change_fixture() -> Value {
    load("codedeploy-deployment-state-change.json")
}

/// The fixture "CodeDeploy Deployment State-change Notification" for `deployment` of the world's
/// `application` and `deployment_group`, in `state` (SUCCESS, FAILURE, STOP, START, READY, ...).
pub fn codedeploy_state_change(application: &str, deployment_group: &str, deployment: &str, state: &str) -> Value {
    let mut event = codedeploy_state_change_fixture();
    event["resources"] = json!([
        format!("arn:aws:codedeploy:{REGION}:{ACCOUNT}:application:{application}"),
        format!("arn:aws:codedeploy:{REGION}:{ACCOUNT}:deploymentgroup:{application}/{deployment_group}"),
    ]);
    let detail = &mut event["detail"];
    detail["application"] = json!(application);
    detail["deploymentGroup"] = json!(deployment_group);
    detail["deploymentId"] = json!(deployment);
    detail["state"] = json!(state);
    event
}

/// The fixture "CodePipeline Pipeline Execution State Change" for `pipeline`'s `execution`, in
/// `state` (SUCCEEDED, FAILED, STOPPED, ...).
pub fn pipeline_state_change(pipeline: &str, execution: &str, state: &str) -> Value {
    let mut event = load("codepipeline-execution-state-change-failed.json");
    event["resources"] = json!([format!("arn:aws:codepipeline:{REGION}:{ACCOUNT}:{pipeline}")]);
    event["detail"]["pipeline"] = json!(pipeline);
    event["detail"]["execution-id"] = json!(execution);
    event["detail"]["state"] = json!(state);
    event
}

/// The fixture "CloudWatch Alarm State Change" for the world's alarm `alarm`, now in `state`
/// (ALARM, OK, INSUFFICIENT_DATA) for `reason`, changed at `at`.
pub fn alarm_state_change(alarm: &str, state: &str, reason: &str, at: chrono::DateTime<chrono::Utc>) -> Value {
    let mut event = load("cloudwatch-alarm-state-change.json");
    event["resources"] = json!([format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm}")]);
    event["time"] = json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let detail = &mut event["detail"];
    detail["alarmName"] = json!(alarm);
    detail["state"]["value"] = json!(state);
    detail["state"]["reason"] = json!(reason);
    detail["state"]["timestamp"] = json!(at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());
    event
}

/// A group's release record `shop/<release>` in `state` (a record's JSON state, e.g.
/// `{"name": "Succeeded"}`), one section per `(service, method, section state)` in that order,
/// each on its own step, as the record stores them (`shared/src/release/group.rs`). A section
/// past `waiting` names its revisions (`<service>:1` → `<service>:2`) and a CodeDeploy
/// deployment; a `rolling-back`, `rolled-back` or `failed` one carries `reason`.
pub fn group_release(
    release: &str,
    state: Value,
    sections: &[(&str, &str, &str)],
    reason: &str,
) -> convoy::release::Release {
    let task_definition = |family: &str, n: u32| format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{n}");
    let services: Vec<Value> = sections
        .iter()
        .enumerate()
        .map(|(step, (service, method, section))| {
            let mut tag = json!({"name": section});
            if matches!(*section, "rolling-back" | "rolled-back" | "failed") {
                tag["reason"] = json!(reason);
            }
            let mut row = json!({"service": service, "step": step, "method": method, "takes_traffic": true,
                                 "containers": {}, "state": tag});
            if *section != "waiting" {
                row["previous_revision"] = json!(task_definition(service, 1));
                row["revision"] = json!(task_definition(service, 2));
                row["deployment"] = json!({"codedeploy": format!("d-{}{step}", service.to_uppercase())});
            }
            row
        })
        .collect();
    serde_json::from_value(json!({
        "schema": 1,
        "key": {"service": "shop", "release": release},
        "source": {"bucket": "b", "key": format!("releases/shop/{release}.json")},
        "images": {}, "state": state, "timeline": [
            {"at": "2026-12-01T10:00:00Z", "event": "manifest-accepted", "detail": "a group's release"}
        ],
        "services": services
    }))
    .expect("a group's record")
}
