//! Scheduled tasks on moto: EventBridge Scheduler schedules and default-bus EventBridge rules with
//! ECS targets, created as the API references write the requests (`CreateSchedule`, `PutRule`,
//! `PutTargets`), found and pointed by Convoy's real adapter (`EventBridgeSchedules`) through the
//! stand-in, whose request log shows each write. moto 5.2.5 has every operation the adapter calls
//! (`ListSchedules`, `GetSchedule`, `UpdateSchedule`, `ListRules`, `ListTargetsByRule`,
//! `PutTargets`) and keeps a target's `EcsParameters` as sent, so nothing is stood in for.

use convoy::adapters::aws::EventBridgeSchedules;
use convoy::ports::{ScheduleError, ScheduledTasks};
use convoy::scheduled::{Pointed, ScheduleMove, ScheduledTarget};
use convoy_tests::moto::{ACCOUNT, Moto, REGION};
use convoy_tests::standin::StandIn;
use serde_json::{Value, json};

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Names unique to one test: its family, its schedule group, its rules.
struct Names {
    id: String,
}

impl Names {
    fn new() -> Self {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self { id: format!("{}-{n}", std::process::id()) }
    }

    fn name(&self, base: &str) -> String {
        format!("{base}-{}", self.id)
    }

    fn revision(&self, family: &str, revision: u32) -> String {
        format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{}:{revision}", self.name(family))
    }
}

const CLUSTER: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/prod";
const ROLE: &str = "arn:aws:iam::123456789012:role/convoy-scheduled-tasks";

/// An ECS target with every field the references list (Scheduler `Target`, `EcsParameters`).
fn scheduler_ecs_target(task_definition: &str) -> Value {
    json!({
        "Arn": CLUSTER,
        "RoleArn": ROLE,
        "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:123456789012:scheduled-dlq"},
        "RetryPolicy": {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 3},
        "Input": "{\"report\":\"nightly\"}",
        "EcsParameters": {
            "TaskDefinitionArn": task_definition,
            "TaskCount": 2,
            "LaunchType": "FARGATE",
            "PlatformVersion": "1.4.0",
            "Group": "reports",
            "EnableECSManagedTags": true,
            "EnableExecuteCommand": false,
            "PropagateTags": "TASK_DEFINITION",
            "ReferenceId": "nightly-report",
            "Tags": [{"team": "data"}],
            "NetworkConfiguration": {"awsvpcConfiguration": {
                "Subnets": ["subnet-1", "subnet-2"], "SecurityGroups": ["sg-1"], "AssignPublicIp": "DISABLED"}},
        },
    })
}

/// `CreateSchedule` (`POST /schedules/<name>`), with the optional fields set, so a point that
/// dropped one shows.
fn create_schedule(group: &str, name: &str, target: Value) {
    let body = json!({
        "GroupName": group,
        "ScheduleExpression": "cron(0 3 * * ? *)",
        "ScheduleExpressionTimezone": "Europe/Paris",
        "Description": "the nightly report",
        "FlexibleTimeWindow": {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15},
        "State": "DISABLED",
        "EndDate": 4102444800u64,
        "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "ActionAfterCompletion": "NONE",
        "Target": target,
    });
    let (status, answer) =
        Moto::shared().rest_call("scheduler", "POST", &format!("/schedules/{name}"), &body.to_string());
    assert_eq!(status, 200, "CreateSchedule {name}: {answer}");
}

fn create_group(group: &str) {
    let (status, answer) = Moto::shared().rest_call("scheduler", "POST", &format!("/schedule-groups/{group}"), "{}");
    assert_eq!(status, 200, "CreateScheduleGroup {group}: {answer}");
}

/// `GetSchedule` as moto answers it.
fn schedule(group: &str, name: &str) -> Value {
    let (status, answer) =
        Moto::shared().rest_call("scheduler", "GET", &format!("/schedules/{name}?groupName={group}"), "");
    assert_eq!(status, 200, "GetSchedule {name}: {answer}");
    serde_json::from_str(&answer).unwrap()
}

fn events(operation: &str, body: Value) -> Value {
    let target = format!("AWSEvents.{operation}");
    let (status, answer) =
        Moto::shared().raw_call("events", Some(&target), "application/x-amz-json-1.1", &body.to_string());
    assert_eq!(status, 200, "{operation}: {answer}");
    serde_json::from_str(&answer).unwrap_or(Value::Null)
}

/// A rule on the default bus with `targets` (EventBridge `Target`s, as `PutTargets` takes them).
fn create_rule(rule: &str, targets: Value) {
    events("PutRule", json!({"Name": rule, "ScheduleExpression": "rate(1 hour)", "State": "ENABLED"}));
    events("PutTargets", json!({"Rule": rule, "Targets": targets}));
}

/// An EventBridge ECS target with every field the reference lists (`Target`, `EcsParameters`).
fn rule_ecs_target(id: &str, task_definition: &str) -> Value {
    json!({
        "Id": id,
        "Arn": CLUSTER,
        "RoleArn": ROLE,
        "Input": "{\"report\":\"hourly\"}",
        "RetryPolicy": {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 600},
        "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:123456789012:scheduled-dlq"},
        "EcsParameters": {
            "TaskDefinitionArn": task_definition,
            "TaskCount": 1,
            "LaunchType": "FARGATE",
            "PlatformVersion": "LATEST",
            "Group": "reports",
            "EnableECSManagedTags": true,
            "EnableExecuteCommand": false,
            "PropagateTags": "TASK_DEFINITION",
            "ReferenceId": "hourly-report",
            "Tags": [{"Key": "team", "Value": "data"}],
            "NetworkConfiguration": {"awsvpcConfiguration": {
                "Subnets": ["subnet-1"], "SecurityGroups": ["sg-1"], "AssignPublicIp": "DISABLED"}},
        },
    })
}

fn lambda_target(id: &str) -> Value {
    json!({"Id": id, "Arn": "arn:aws:lambda:us-east-1:123456789012:function:report"})
}

fn targets_of(rule: &str) -> Vec<Value> {
    events("ListTargetsByRule", json!({"Rule": rule}))["Targets"].as_array().unwrap().clone()
}

/// Convoy's adapter, through the stand-in (which only forwards here, and logs every request).
async fn adapter() -> (EventBridgeSchedules, StandIn) {
    let standin = StandIn::for_missing_operations(&Moto::shared().endpoint).await;
    let sdk = convoy_tests::moto::sdk_config_for(&standin.endpoint).await;
    let adapter =
        EventBridgeSchedules::new(aws_sdk_scheduler::Client::new(&sdk), aws_sdk_eventbridge::Client::new(&sdk));
    (adapter, standin)
}

fn writes(standin: &StandIn) -> Vec<String> {
    standin
        .forwarded()
        .into_iter()
        .filter(|request| request.starts_with("PUT /schedules/") || request.ends_with(".PutTargets"))
        .collect()
}

fn schedule_target(group: &str, name: &str) -> ScheduledTarget {
    ScheduledTarget::Schedule { group: group.into(), name: name.into() }
}

fn rule_target(rule: &str, id: &str) -> ScheduledTarget {
    ScheduledTarget::Rule { bus: "default".into(), rule: rule.into(), target_id: id.into() }
}

#[tokio::test]
async fn find_returns_the_schedules_and_rule_targets_that_run_the_family_and_no_other() {
    let names = Names::new();
    let group = names.name("jobs");
    create_group(&group);
    create_schedule("default", &names.name("nightly"), scheduler_ecs_target(&names.revision("report", 6)));
    create_schedule(&group, &names.name("weekly"), scheduler_ecs_target(&names.revision("report", 5)));
    create_schedule(&group, &names.name("billing"), scheduler_ecs_target(&names.revision("report-billing", 2)));
    create_schedule(
        &group,
        &names.name("lambda"),
        json!({"Arn": "arn:aws:lambda:us-east-1:123456789012:function:report", "RoleArn": ROLE}),
    );
    let hourly = names.name("hourly");
    create_rule(&hourly, json!([rule_ecs_target("run", &names.revision("report", 6)), lambda_target("notify")]));
    create_rule(&names.name("other"), json!([rule_ecs_target("run", &names.revision("billing", 1))]));
    let (adapter, _standin) = adapter().await;

    let found = adapter.find(&names.name("report")).await.unwrap();

    let mut expected = vec![
        (schedule_target("default", &names.name("nightly")), names.revision("report", 6)),
        (schedule_target(&group, &names.name("weekly")), names.revision("report", 5)),
        (rule_target(&hourly, "run"), names.revision("report", 6)),
    ];
    expected.sort();
    let found: Vec<_> = found.into_iter().map(|t| (t.target, t.task_definition)).collect();
    assert_eq!(found, expected);
}

#[tokio::test]
async fn pointing_a_schedule_changes_its_task_definition_and_nothing_else_and_points_back() {
    let names = Names::new();
    let name = names.name("nightly");
    create_schedule("default", &name, scheduler_ecs_target(&names.revision("report", 6)));
    let before = schedule("default", &name);
    let (adapter, _standin) = adapter().await;
    let task = adapter.find(&names.name("report")).await.unwrap().remove(0);
    let moved = ScheduleMove::of(&task, &names.revision("report", 7));

    let pointed = adapter.point(&moved.target, &moved.revision).await.unwrap();

    assert_eq!(pointed, Pointed::Moved { previous: names.revision("report", 6) });
    let after = schedule("default", &name);
    let mut expected = before.clone();
    expected["Target"]["EcsParameters"]["TaskDefinitionArn"] = json!(names.revision("report", 7));
    expected["LastModificationDate"] = after["LastModificationDate"].clone();
    assert_eq!(after, expected, "only the task definition changed");

    adapter.point(&moved.target, &moved.previous).await.unwrap();
    let back = schedule("default", &name);
    expected["Target"] = before["Target"].clone();
    expected["LastModificationDate"] = back["LastModificationDate"].clone();
    assert_eq!(back, expected, "put back as it was");
}

#[tokio::test]
async fn pointing_a_rule_target_changes_its_task_definition_only_and_leaves_its_other_targets() {
    let names = Names::new();
    let rule = names.name("hourly");
    create_rule(&rule, json!([rule_ecs_target("run", &names.revision("report", 6)), lambda_target("notify")]));
    let before = targets_of(&rule);
    let (adapter, _standin) = adapter().await;

    let pointed = adapter.point(&rule_target(&rule, "run"), &names.revision("report", 7)).await.unwrap();

    assert_eq!(pointed, Pointed::Moved { previous: names.revision("report", 6) });
    let mut expected = before.clone();
    let run = expected.iter_mut().find(|t| t["Id"] == "run").unwrap();
    run["EcsParameters"]["TaskDefinitionArn"] = json!(names.revision("report", 7));
    // EventBridge's model types `EnableExecuteCommand` as a boolean defaulting to false, and the
    // SDK leaves a boolean at its default out of the request: absent and false are one value.
    let ecs = run["EcsParameters"].as_object_mut().unwrap();
    assert_eq!(ecs.remove("EnableExecuteCommand"), Some(json!(false)));
    assert_eq!(targets_of(&rule), expected, "only the ECS target's task definition changed");
}

#[tokio::test]
async fn pointing_twice_at_the_same_revision_writes_once() {
    let names = Names::new();
    let name = names.name("nightly");
    let rule = names.name("hourly");
    create_schedule("default", &name, scheduler_ecs_target(&names.revision("report", 6)));
    create_rule(&rule, json!([rule_ecs_target("run", &names.revision("report", 6))]));
    let (adapter, standin) = adapter().await;
    let revision = names.revision("report", 7);

    for target in [schedule_target("default", &name), rule_target(&rule, "run")] {
        assert!(matches!(adapter.point(&target, &revision).await.unwrap(), Pointed::Moved { .. }));
        assert_eq!(adapter.point(&target, &revision).await.unwrap(), Pointed::Already, "{target}");
    }

    assert_eq!(writes(&standin), vec![format!("PUT /schedules/{name}"), "AWSEvents.PutTargets".to_owned()]);
}

#[tokio::test]
async fn pointing_a_schedule_rule_or_target_that_is_gone_is_not_found_and_writes_nothing() {
    let names = Names::new();
    let rule = names.name("hourly");
    create_rule(&rule, json!([lambda_target("notify")]));
    let (adapter, standin) = adapter().await;
    let revision = names.revision("report", 7);

    for target in [
        schedule_target("default", &names.name("deleted")),
        rule_target(&names.name("deleted"), "run"),
        rule_target(&rule, "run"),
        rule_target(&rule, "notify"),
    ] {
        let answer = adapter.point(&target, &revision).await;
        assert!(matches!(answer, Err(ScheduleError::NotFound(_))), "{target}: {answer:?}");
    }
    assert!(writes(&standin).is_empty());
}
