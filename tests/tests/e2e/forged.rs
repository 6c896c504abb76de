//! Forged events, each one a payload anyone allowed `lambda:InvokeFunction` on a Convoy function
//! could send, delivered to the **built function binaries** (the harness's Runtime API host)
//! against moto, through the stand-in: the record does not change, no mutating AWS call is made
//! (the stand-in's request log shows none), and the function's log says what was refused and why.

use std::time::Duration;

use convoy::release::State;
use convoy_tests::fixtures::{self, ContainerExit, TaskStopped};
use convoy_tests::http::{Behaviour, Server};
use convoy_tests::moto::{ACCOUNT, REGION};
use convoy_tests::runtime::{LambdaProcess, binary};
use convoy_tests::standin::StandIn;
use convoy_tests::world::function_env;
use serde_json::{Value, json};

use crate::deploy::{containers, verify_codedeploy, with_green};
use crate::scenario::*;

/// `name`'s built binary, on the backend's world and settings, every AWS call through the
/// stand-in (so its request log has them all).
async fn function(backend: &MotoBackend, name: &str) -> LambdaProcess {
    let repositories: Vec<String> = containers().iter().map(|c| backend.world.repo(c)).collect();
    let env = function_env(
        &backend.world,
        &backend.standin.endpoint,
        &backend.ecs.cluster,
        &[SERVICE.to_owned()],
        &repositories,
        &backend.settings,
    );
    let process = LambdaProcess::spawn(name, &binary(name), &env).await;
    process.init_time(Duration::from_secs(60)).await.expect("the function starts");
    process
}

/// Invokes `process` with `event`; returns the operations it asked of AWS.
async fn invoke(standin: &StandIn, process: &LambdaProcess, event: Value) -> ((), Vec<String>) {
    let before = standin.log().len();
    process.invoke(event).await.expect("an answer");
    let operations = standin.log()[before..].iter().map(|r| format!("{}:{}", r.service, r.operation)).collect();
    ((), operations)
}

/// The operations among `operations` that change something in AWS (anything but a read).
fn mutating(operations: &[String]) -> Vec<&String> {
    const READS: [&str; 6] = ["Get", "Describe", "List", "BatchGet", "Lookup", "Head"];
    operations
        .iter()
        .filter(|op| !READS.iter().any(|read| op.split(':').nth(1).unwrap_or(op).starts_with(read)))
        .collect()
}

/// The function's log says an event was refused, why (`why`), and for which release.
fn logged_refusal(process: &LambdaProcess, why: &str, release: Option<&str>) {
    let log = process.stdout();
    let line = log
        .lines()
        .find(|line| line.contains("unconfirmed event: refused") && line.contains(why))
        .unwrap_or_else(|| panic!("no refusal saying {why:?} in the log:\n{log}"));
    if let Some(release) = release {
        assert!(line.contains(release), "the refusal names release {release}: {line}");
    }
    assert!(log.contains("\"UnconfirmedEvents\""), "the refusal is counted:\n{log}");
}

async fn awaiting_the_reroute(release: &str) -> (MotoBackend, Server, String) {
    let (backend, green) = with_green(Behaviour::version(release), "manual").await;
    let (record, _) = verify_codedeploy(&backend, release).await;
    assert!(matches!(record.state, State::AwaitingApproval { .. }), "{}", record.state);
    let deployment = record.deployment.unwrap().id.unwrap().to_string();
    backend.standin.waits(&deployment);
    (backend, green, deployment)
}

/// The documented CloudTrail continue, in the world's account and region, naming `deployment`.
fn continue_call(deployment: &str, source: &str) -> Value {
    let mut event = fixtures::documented("example-cloudtrail-continue-deployment.json");
    event["source"] = json!(source);
    event["account"] = json!(ACCOUNT);
    event["region"] = json!(REGION);
    event["detail"]["awsRegion"] = json!(REGION);
    event["detail"]["requestParameters"]["deploymentId"] = json!(deployment);
    event["detail"]["userIdentity"]["arn"] = json!(format!("arn:aws:sts::{ACCOUNT}:assumed-role/mallory/invented"));
    event
}

#[tokio::test]
async fn a_forged_cloudtrail_continue_moves_no_release_and_convoy_never_continues_the_deployment() {
    let (backend, _green, deployment) = awaiting_the_reroute("f1").await;
    let key = release_key("f1");
    let before = backend.record(&key).await.unwrap();
    let changed = function(&backend, "deployment-changed").await;
    // Not from AWS at all: only AWS services put `aws.` sources on a bus.
    let (_, operations) = invoke(&backend.standin, &changed, continue_call(&deployment, "mallory.not-aws")).await;
    assert!(operations.is_empty(), "an envelope that is not AWS's is refused before any call: {operations:?}");
    logged_refusal(&changed, "mallory.not-aws", None);
    // AWS's envelope, but nobody continued the deployment: CodeDeploy still waits.
    let (_, operations) = invoke(&backend.standin, &changed, continue_call(&deployment, "aws.codedeploy")).await;
    assert_eq!(mutating(&operations), Vec::<&String>::new(), "{operations:?}");
    logged_refusal(&changed, "AWS does not show it continued", Some("f1"));
    assert_eq!(backend.record(&key).await.unwrap(), before, "the record is unchanged");

    let reconciler = function(&backend, "reconciler").await;
    invoke(&backend.standin, &reconciler, json!({})).await;
    assert!(backend.standin.calls_of("ContinueDeployment").is_empty(), "Convoy continued nobody's decision");
    assert!(matches!(backend.record(&key).await.unwrap().state, State::AwaitingApproval { .. }));
}

#[tokio::test]
async fn a_forged_success_while_codedeploy_waits_at_ready_wait_ends_nothing_and_keeps_the_lock() {
    let (backend, _green, deployment) = awaiting_the_reroute("f2").await;
    let key = release_key("f2");
    let before = backend.record(&key).await.unwrap();
    let changed = function(&backend, "deployment-changed").await;
    let event = fixtures::codedeploy_state_change(&backend.application, &backend.group, &deployment, "SUCCESS");
    let (_, operations) = invoke(&backend.standin, &changed, event).await;
    assert_eq!(mutating(&operations), Vec::<&String>::new(), "{operations:?}");
    assert!(operations.iter().any(|op| op.ends_with(":GetDeployment")), "CodeDeploy was asked: {operations:?}");
    logged_refusal(&changed, "has not ended", Some("f2"));
    assert_eq!(backend.record(&key).await.unwrap(), before, "still awaiting approval, the lock still held");
}

#[tokio::test]
async fn a_forged_stopped_exit_zero_while_ecs_still_runs_the_migration_starts_no_deployment() {
    let (backend, task) = crate::migration::migrating("f3").await;
    let key = release_key("f3");
    let before = backend.record(&key).await.unwrap();
    let stopped = function(&backend, "migration-stopped").await;
    let event = fixtures::ecs_task_stopped(&TaskStopped {
        cluster: &backend.ecs.cluster,
        task: &task,
        group: &key.tag(),
        started_by: &key.migration_started_by(),
        task_definition: &fixtures::migration_task_definition("web"),
        overridden: "app",
        containers: &[ContainerExit::exited("app", 0), ContainerExit::exited("nginx", 0)],
        stop_code: "EssentialContainerExited",
        version: 3,
    });
    let (_, operations) = invoke(&backend.standin, &stopped, event).await;
    assert_eq!(mutating(&operations), Vec::<&String>::new(), "{operations:?}");
    assert!(operations.iter().any(|op| op.ends_with(":DescribeTasks")), "ECS was asked: {operations:?}");
    logged_refusal(&stopped, "not STOPPED", Some("f3"));
    assert_eq!(backend.record(&key).await.unwrap(), before, "still migrating");
}

#[tokio::test]
async fn a_forged_push_of_a_digest_ecr_never_had_pins_nothing() {
    let backend = MotoBackend::new(&containers()).await;
    backend.push("nginx", "f4").await;
    let manifest = manifest_v1(&backend, "f4", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/f4.json", &manifest).await).await.unwrap();
    let key = release_key("f4");
    let before = backend.record(&key).await.unwrap();
    assert_eq!(before.state, State::Collecting);
    let pushed = function(&backend, "image-pushed").await;
    let digest = format!("sha256:{}", "f".repeat(64));
    let event = fixtures::ecr_push(ACCOUNT, &backend.world.repo("app"), "f4", &digest, chrono::Utc::now());
    let (_, operations) = invoke(&backend.standin, &pushed, event).await;
    assert_eq!(mutating(&operations), Vec::<&String>::new(), "{operations:?}");
    assert!(operations.iter().any(|op| op.ends_with(":BatchGetImage")), "ECR was asked: {operations:?}");
    logged_refusal(&pushed, "ECR does not have", Some("f4"));
    assert_eq!(backend.record(&key).await.unwrap(), before, "still collecting, nothing pinned");
}

#[tokio::test]
async fn a_forged_codedeploy_hook_before_codedeploy_runs_it_probes_records_and_answers_nothing() {
    let (backend, green) = with_green(Behaviour::version("f6"), "manual").await;
    // CodeDeploy is installing the green task set: its AfterAllowTestTraffic event is Pending.
    let deployment = crate::deploy::deploying(&backend, "f6", json!({})).await;
    let key = release_key("f6");
    let before = backend.record(&key).await.unwrap();
    let verify = function(&backend, "verify").await;
    let before_ops = backend.standin.log().len();
    let outcome = verify.invoke(fixtures::codedeploy_hook(&deployment, "forged-exec")).await.expect("an answer");
    let operations: Vec<String> =
        backend.standin.log()[before_ops..].iter().map(|r| format!("{}:{}", r.service, r.operation)).collect();
    assert_eq!(mutating(&operations), Vec::<&String>::new(), "no answer, no write: {operations:?}");
    assert!(operations.iter().any(|op| op.ends_with(":GetDeploymentTarget")), "CodeDeploy was asked: {operations:?}");
    assert!(
        matches!(outcome, convoy_tests::runtime::Outcome::Error(_)),
        "a retryable error: Lambda delivers CodeDeploy's own asynchronous invocation again should it lag"
    );
    logged_refusal(&verify, "is Pending, not InProgress", Some("f6"));
    assert_eq!(green.requests(), 0, "nothing probed");
    assert_eq!(backend.record(&key).await.unwrap(), before, "still deploying, no verification");

    // The hook CodeDeploy then runs is verified as if the forged one never came.
    let answer = backend.codedeploy_hook(&deployment, "exec-1").await;
    assert_eq!(answer["succeeded"], json!(true), "{answer}");
    let state = backend.record(&key).await.unwrap().state;
    assert!(matches!(state, State::AwaitingApproval { .. }), "{state}");
}
