//! template.yaml's EventBridge rules against the events the harness sends: each rule matches the
//! events its function must get (as AWS sends them in the test world's account, region, cluster,
//! bucket, repositories and application) and none of a few it must not. The rules are read from
//! the template as SAM transforms it, and evaluated by moto's EventBridge pattern matcher
//! (tests/event_rules.py says why not moto's TestEventPattern API).

use std::collections::BTreeMap;
use std::process::Command;

use convoy::events::{DeploymentChange, PushEvent, TaskEvent};
use convoy_tests::fixtures::{self, ContainerExit, TaskStopped};
use convoy_tests::moto::{ACCOUNT, REGION, venv_python};
use convoy_tests::world::World;
use serde_json::{Value, json};

use crate::scenario::SERVICE;

/// A time as an event's envelope writes it.
fn at(time: &str) -> chrono::DateTime<chrono::Utc> {
    time.parse().expect("an RFC 3339 time")
}

/// The rules of the transformed template, by logical id, and the function each one invokes.
const RULES: &[(&str, &str)] = &[
    ("ImagePushedFunctionEcrPush", "image-pushed"),
    ("ImagePushedFunctionEcrScan", "image-pushed (scan)"),
    ("ManifestUploadedFunctionManifestCreated", "manifest-uploaded"),
    ("MigrationStoppedFunctionMigrationTaskStopped", "migration-stopped"),
    ("DeploymentChangedFunctionDeploymentEnded", "deployment-changed"),
    ("DeploymentChangedFunctionEcsDeploymentChanged", "deployment-changed (ECS native)"),
    ("PipelineExecutionEndedRule", "deployment-changed (pipeline)"),
    ("ApprovalNotificationRule", "SNS: approval"),
    ("OutcomeNotificationRule", "SNS: outcome"),
    ("DeploymentChangedFunctionAlarmStateChange", "deployment-changed (alarm)"),
    ("DeploymentChangedFunctionApprovalCall", "deployment-changed (approval call)"),
];

/// Evaluates every rule against every event; returns (rule → pattern, rule → event → matched).
fn evaluate(parameters: Value, events: &BTreeMap<String, Value>) -> (Value, BTreeMap<String, BTreeMap<String, bool>>) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let input = json!({
        "parameters": parameters,
        "pseudo": {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::StackName": "convoy"},
        "events": events,
    });
    let path = std::env::temp_dir().join(format!("convoy-event-rules-{}.json", std::process::id()));
    std::fs::write(&path, input.to_string()).unwrap();
    let output = Command::new(venv_python())
        .arg(format!("{root}/tests/event_rules.py"))
        .arg(format!("{root}/template.yaml"))
        .arg(&path)
        .output()
        .expect("run tests/event_rules.py");
    let _ = std::fs::remove_file(&path);
    assert!(output.status.success(), "event_rules.py failed: {}", String::from_utf8_lossy(&output.stderr));
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    let matches = serde_json::from_value(answer["matches"].clone()).unwrap();
    (answer["rules"].clone(), matches)
}

#[tokio::test]
async fn each_eventbridge_rule_matches_the_events_its_function_needs_and_no_other() {
    let world = World::new().await;
    let (application, group) = world.codedeploy(SERVICE).await;
    let cluster = world.cluster();
    let (app, nginx) = (world.repo("app"), world.repo("nginx"));
    let pipeline = format!("web-deploy-{}", world.id);
    let parameters = json!({
        "StateBucketName": world.bucket,
        "AllowedServices": SERVICE,
        "AllowedRepositories": format!("{app},{nginx}"),
        "ClusterName": cluster,
        "ServiceRoleArns": format!("arn:aws:iam::{ACCOUNT}:role/web-task"),
        "CodeDeployApplication": application,
        "ServiceSettings": "{}",
        "PipelineName": pipeline,
        "PipelineSourceBucket": format!("{}-source", world.bucket),
        "EcsNativeServices": SERVICE,
    });

    let digest = "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234";
    let push = fixtures::ecr_push(ACCOUNT, &app, "r1", digest, at("2026-11-25T10:00:00Z"));
    let task = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/c13b4cb40f1f4fe4a2971f76ae5a47ad");
    let containers = [ContainerExit::exited("nginx", 137), ContainerExit::exited("app", 1)];
    let stopped = |cluster: &str, group: &str| {
        fixtures::ecs_task_stopped(&TaskStopped {
            cluster,
            task: &task,
            group,
            started_by: "convoy-migration-web-r1",
            task_definition: &fixtures::migration_task_definition("web"),
            overridden: "app",
            containers: &containers,
            stop_code: "EssentialContainerExited",
            version: 4,
        })
    };
    let migration = stopped(&cluster, "convoy:web:r1");
    let deployment =
        |application: &str, state: &str| fixtures::codedeploy_state_change(application, &group, "d-EXAMPLE11", state);
    let execution = "12345678-1234-5678-abcd-12345678abcd";
    let mut failed_push = push.clone();
    failed_push["detail"]["result"] = json!("FAILURE");
    let mut delete = push.clone();
    delete["detail"]["action-type"] = json!("DELETE");
    let now = chrono::Utc::now();
    let mut running = migration.clone();
    running["detail"]["lastStatus"] = json!("RUNNING");

    // Convoy's own release events (docs/reference/events.md, "Release events"), by the state they enter.
    let convoy_event = |to: &str| {
        json!({"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "source": "convoy",
               "detail-type": "Convoy Release State Change", "account": ACCOUNT, "time": "2026-11-25T10:00:00Z",
               "region": REGION, "resources": [],
               "detail": {"schema": 1, "service": SERVICE, "release": "r1", "from": "Verifying", "to": to,
                          "links": {"approve": "convoy approve web r1", "reject": "convoy reject web r1",
                                    "status": "convoy status web r1"}}})
    };
    // CloudTrail's record of a decision call, from the documented fixture (moved to this world).
    let api_call = |name: &str, source: &str| {
        let mut event = fixtures::documented("example-cloudtrail-continue-deployment.json");
        event["source"] = json!(format!("aws.{source}"));
        event["detail"]["eventSource"] = json!(format!("{source}.amazonaws.com"));
        event["detail"]["eventName"] = json!(name);
        if source == "ecs" {
            // ECS names the service deployment (ECS API Reference, StopServiceDeployment).
            let arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{cluster}/{SERVICE}/Xn8o9LuzN2xMzTgB");
            event["detail"]["requestParameters"] = json!({"serviceDeploymentArn": arn, "stopType": "ROLLBACK"});
        }
        event
    };
    let mut refused_call = api_call("ContinueDeployment", "codedeploy");
    refused_call["detail"]["errorCode"] = json!("DeploymentIsNotInReadyStateException");
    let mut foreign_alarm = fixtures::alarm_state_change("web-5xx", "ALARM", "Threshold Crossed", now);
    foreign_alarm["account"] = json!("999999999999");
    let mut foreign_convoy = convoy_event("AwaitingApproval");
    foreign_convoy["source"] = json!("someone.else");

    // (name, event, the rules that must match it): every event derived from a documented fixture.
    let cases: Vec<(&str, Value, &[&str])> = vec![
        ("Convoy release awaits approval", convoy_event("AwaitingApproval"), &["ApprovalNotificationRule"]),
        ("Convoy release succeeded", convoy_event("Succeeded"), &["OutcomeNotificationRule"]),
        ("Convoy release failed", convoy_event("Failed"), &["OutcomeNotificationRule"]),
        ("Convoy release rolled back", convoy_event("RolledBack"), &["OutcomeNotificationRule"]),
        ("Convoy release superseded", convoy_event("Superseded"), &[]),
        ("Convoy release rolling back", convoy_event("RollingBack"), &[]),
        ("Convoy release shifting traffic", convoy_event("ShiftingTraffic"), &[]),
        ("Convoy release collecting", convoy_event("Collecting"), &[]),
        ("Another source's AwaitingApproval", foreign_convoy, &[]),
        ("ECR push of an allowed repository", push.clone(), &["ImagePushedFunctionEcrPush"]),
        (
            "ECR scan of an allowed repository",
            fixtures::ecr_scan(ACCOUNT, &app, digest),
            &["ImagePushedFunctionEcrScan"],
        ),
        ("ECR scan of another repository", fixtures::ecr_scan(ACCOUNT, "someone-else", digest), &[]),
        ("ECR scan in another account", fixtures::ecr_scan("999999999999", &app, digest), &[]),
        ("ECR PUSH that failed", failed_push, &[]),
        ("ECR DELETE of an allowed repository", delete, &[]),
        (
            "ECR push of another repository",
            fixtures::ecr_push(ACCOUNT, "someone-else", "r1", digest, at("2026-11-25T10:00:00Z")),
            &[],
        ),
        (
            "S3 manifest under releases/",
            fixtures::s3_eventbridge(&world.bucket, "releases/web/r1.json", Some("v1"), 9),
            &["ManifestUploadedFunctionManifestCreated"],
        ),
        (
            "S3 record under state/ (Convoy's own write)",
            fixtures::s3_eventbridge(&world.bucket, "state/web/r1.json", Some("v1"), 9),
            &[],
        ),
        (
            "S3 manifest in another bucket",
            fixtures::s3_eventbridge("another-bucket", "releases/web/r1.json", Some("v1"), 9),
            &[],
        ),
        ("ECS migration task STOPPED", migration.clone(), &["MigrationStoppedFunctionMigrationTaskStopped"]),
        ("ECS migration task RUNNING", running, &[]),
        ("ECS task STOPPED, another cluster", stopped("another-cluster", "convoy:web:r1"), &[]),
        ("ECS task STOPPED, not started by Convoy", stopped(&cluster, "service:web"), &[]),
        ("ECS task RUNNING, AWS's example as is", fixtures::documented("ecs-task-state-change.json"), &[]),
        ("ECS task STOPPED, AWS's example's own", fixtures::foreign_task_stopped(), &[]),
        ("CodeDeploy SUCCESS", deployment(&application, "SUCCESS"), &["DeploymentChangedFunctionDeploymentEnded"]),
        ("CodeDeploy FAILURE", deployment(&application, "FAILURE"), &["DeploymentChangedFunctionDeploymentEnded"]),
        ("CodeDeploy STOP", deployment(&application, "STOP"), &["DeploymentChangedFunctionDeploymentEnded"]),
        ("CodeDeploy START (not an end)", deployment(&application, "START"), &[]),
        ("CodeDeploy SUCCESS, another application", deployment("another-application", "SUCCESS"), &[]),
        (
            "Pipeline FAILED",
            fixtures::pipeline_state_change(&pipeline, execution, "FAILED"),
            &["PipelineExecutionEndedRule"],
        ),
        (
            "Pipeline SUCCEEDED",
            fixtures::pipeline_state_change(&pipeline, execution, "SUCCEEDED"),
            &["PipelineExecutionEndedRule"],
        ),
        (
            "Pipeline STOPPED",
            fixtures::pipeline_state_change(&pipeline, execution, "STOPPED"),
            &["PipelineExecutionEndedRule"],
        ),
        ("Pipeline STARTED (not an end)", fixtures::pipeline_state_change(&pipeline, execution, "STARTED"), &[]),
        (
            "ECS service deployment COMPLETED",
            fixtures::ecs_deployment_state_change(&cluster, SERVICE, "SERVICE_DEPLOYMENT_COMPLETED", "completed"),
            &["DeploymentChangedFunctionEcsDeploymentChanged"],
        ),
        (
            "ECS service deployment FAILED",
            fixtures::ecs_deployment_state_change(&cluster, SERVICE, "SERVICE_DEPLOYMENT_FAILED", "rolled back"),
            &["DeploymentChangedFunctionEcsDeploymentChanged"],
        ),
        (
            "ECS service deployment, another cluster",
            fixtures::ecs_deployment_state_change("another-cluster", SERVICE, "SERVICE_DEPLOYMENT_FAILED", "r"),
            &[],
        ),
        (
            "ECS service deployment, AWS's example as is",
            fixtures::documented("ecs-deployment-state-change-failed.json"),
            &[],
        ),
        (
            "Pipeline FAILED, another pipeline",
            fixtures::pipeline_state_change("another-pipeline", execution, "FAILED"),
            &[],
        ),
        (
            "CloudWatch alarm to ALARM",
            fixtures::alarm_state_change("web-5xx", "ALARM", "Threshold Crossed", now),
            &["DeploymentChangedFunctionAlarmStateChange"],
        ),
        ("CloudWatch alarm back to OK", fixtures::alarm_state_change("web-5xx", "OK", "fine", now), &[]),
        ("CloudWatch alarm to ALARM, another account", foreign_alarm, &[]),
        (
            "CloudTrail: ContinueDeployment (AWS's example)",
            api_call("ContinueDeployment", "codedeploy"),
            &["DeploymentChangedFunctionApprovalCall"],
        ),
        (
            "CloudTrail: StopDeployment",
            api_call("StopDeployment", "codedeploy"),
            &["DeploymentChangedFunctionApprovalCall"],
        ),
        (
            "CloudTrail: ECS StopServiceDeployment",
            api_call("StopServiceDeployment", "ecs"),
            &["DeploymentChangedFunctionApprovalCall"],
        ),
        ("CloudTrail: a refused ContinueDeployment", refused_call, &[]),
        ("CloudTrail: CreateDeployment", api_call("CreateDeployment", "codedeploy"), &[]),
    ];

    let events: BTreeMap<String, Value> =
        cases.iter().map(|(name, event, _)| (name.to_string(), event.clone())).collect();
    assert_eq!(events.len(), cases.len(), "event names are unique");
    let (patterns, matches) = evaluate(parameters, &events);

    let found: Vec<&str> = matches.keys().map(String::as_str).collect();
    let mut expected: Vec<&str> = RULES.iter().map(|(rule, _)| *rule).collect();
    expected.sort_unstable();
    assert_eq!(found, expected, "the template's event rules (a new rule needs its cases here)");

    // The table: one row per event, one column per rule.
    let width = cases.iter().map(|(name, _, _)| name.len()).max().unwrap_or(0);
    let column = RULES.iter().map(|(_, function)| function.len()).max().unwrap_or(0);
    let mut table = format!("{:width$}", "event \\ rule (function)");
    for (_, function) in RULES {
        table.push_str(&format!(" | {function:^column$}"));
    }
    table.push('\n');
    let mut wrong = Vec::new();
    for (name, _, want) in &cases {
        table.push_str(&format!("{name:width$}"));
        for (rule, _) in RULES {
            let matched = matches[*rule][*name];
            let expected = want.contains(rule);
            let cell = if matched { "match" } else { "no match" };
            table.push_str(&format!(
                " | {:^column$}",
                if matched == expected { cell.to_owned() } else { format!("{cell} (!)") }
            ));
            if matched != expected {
                wrong
                    .push(format!("{rule} × {name}: {cell}, expected {}", if expected { "match" } else { "no match" }));
            }
        }
        table.push('\n');
    }
    println!("EventBridge rules of template.yaml (SAM-transformed), moto's pattern matcher:\n{table}");
    assert!(wrong.is_empty(), "{}\npatterns: {patterns:#}", wrong.join("\n"));

    // What a rule lets through, its function reads as the event it needs.
    for (name, event, want) in &cases {
        let Some(rule) = want.first() else { continue };
        let read = match *rule {
            "ImagePushedFunctionEcrPush" => {
                matches!(convoy::events::parse_push(event.clone(), now), Ok(PushEvent::Push(_)))
                    && matches!(convoy::events::parse_scan(event), Ok(None))
            }
            "ImagePushedFunctionEcrScan" => matches!(convoy::events::parse_scan(event), Ok(Some(_))),
            "ManifestUploadedFunctionManifestCreated" => {
                convoy::events::parse_uploads(event.clone()).is_ok_and(|u| u.len() == 1)
            }
            "MigrationStoppedFunctionMigrationTaskStopped" => {
                matches!(convoy::events::parse_task_change(event.clone()), Ok(TaskEvent::Migration { .. }))
            }
            // An email is made of the event's detail: the commands it carries are there.
            "ApprovalNotificationRule" | "OutcomeNotificationRule" => {
                event["detail"]["links"]["approve"].is_string() && event["detail"]["links"]["status"].is_string()
            }
            "DeploymentChangedFunctionEcsDeploymentChanged" => {
                matches!(convoy::events::parse_deployment_end(event.clone()), Ok(DeploymentChange::Native(_)))
            }
            "DeploymentChangedFunctionAlarmStateChange" => {
                convoy::gates::parse_alarm_change(event).is_ok_and(|change| change.state == "ALARM")
            }
            "DeploymentChangedFunctionApprovalCall" => convoy::cloudtrail::parse_api_call_event(event).is_ok(),
            _ => matches!(convoy::events::parse_deployment_end(event.clone()), Ok(DeploymentChange::Ended { .. })),
        };
        assert!(read, "{name}: {rule} lets it through but its function does not read it as one it handles");
    }
}
