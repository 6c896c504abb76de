//! The `ecs-rolling` method, end to end on moto: Convoy updates a service with the ECS deployment
//! controller and the rolling strategy (`UpdateService`, forwarded to moto), and the stand-in
//! plays what moto 5.2.5 lacks for it: the service's `deploymentConfiguration` (circuit breaker,
//! alarms), the service deployment each update starts (`DescribeServiceDeployments`,
//! `ListServiceDeployments`), the circuit breaker and the alarms that roll it back, and the
//! rollback's return to the previous task definition (sent to moto as ECS's own update).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ecs::types::DeploymentControllerType;
use convoy::adapters::aws::EcsDeployments;
use convoy::names::DeploymentRef;
use convoy::release::{DeployMethod, Stage, State};
use convoy_tests::fixtures;
use convoy_tests::moto::Moto;
use convoy_tests::runtime::{LambdaProcess, binary};
use convoy_tests::standin::StandIn;
use convoy_tests::world::{World, function_env};
use serde_json::{Value, json};

use crate::deploy::{containers, deploying, invoke, migration_succeeds_ten_times_at_once};
use crate::scenario::*;

/// A worker's rolling configuration: the circuit breaker rolls back, and so does alarm `errors`.
pub(crate) fn rolling_configuration() -> Value {
    json!({
        "strategy": "ROLLING",
        "minimumHealthyPercent": 100,
        "maximumPercent": 200,
        "deploymentCircuitBreaker": {"enable": true, "rollback": true},
        "alarms": {"alarmNames": ["worker-errors"], "enable": true, "rollback": true},
    })
}

/// A world whose service `web` deploys by ECS rolling updates; policy approves.
async fn rolling_backend() -> MotoBackend {
    let world = World::new().await;
    world.create_repositories(&["app", "nginx"]).await;
    let ecs = world.ecs_service_controlled(SERVICE, &["app", "nginx"], DeploymentControllerType::Ecs).await;
    let settings = json!({SERVICE: {"deploy": {"method": "ecs-rolling"}, "approval": "auto"}});
    let mut convoy = world.convoy_with(&[SERVICE], &["app", "nginx"], &settings.to_string());
    let standin = StandIn::for_missing_operations(&Moto::shared().endpoint).await;
    standin.rolling_service(SERVICE, rolling_configuration());
    let via_standin = convoy_tests::moto::sdk_config_for(&standin.endpoint).await;
    convoy.service_deployments = Arc::new(EcsDeployments::new(aws_sdk_ecs::Client::new(&via_standin)));
    MotoBackend {
        world,
        ecs,
        application: String::new(),
        group: String::new(),
        standin,
        convoy,
        settings: settings.to_string(),
    }
}

/// The task definition of each `UpdateService` that reached moto, oldest first.
fn updates(backend: &MotoBackend) -> Vec<String> {
    let forwarded = backend.standin.forwarded().iter().filter(|f| f.ends_with(".UpdateService")).count();
    let updates = backend.standin.service_updates();
    assert_eq!(updates.len(), forwarded, "every update reached moto and started a service deployment");
    updates
}

/// The task definition moto's service runs now.
async fn service_runs(backend: &MotoBackend) -> String {
    let described = backend.ecs_client().describe_services().cluster(&backend.ecs.cluster).services(SERVICE);
    let described = described.send().await.unwrap();
    described.services()[0].task_definition().unwrap().to_owned()
}

/// ECS sends "ECS Deployment State Change" `event_name` for the service.
async fn ecs_reports(backend: &MotoBackend, event_name: &str, reason: &str) -> Value {
    let event = fixtures::ecs_deployment_state_change(&backend.ecs.cluster, SERVICE, event_name, reason);
    invoke(&backend.convoy, "deployment-changed", event).await
}

async fn lock_holder(backend: &MotoBackend) -> Option<String> {
    let lock = backend.convoy.locks.load(&SERVICE.parse().unwrap()).await.unwrap();
    lock.and_then(|(lock, _)| lock.holder).map(|h| h.release.to_string())
}

/// A rolling release `release` (no migration) whose update ECS completed and said so: succeeded.
pub(crate) async fn live(backend: &MotoBackend, release: &str) -> String {
    let arn = deploying(backend, release, json!({})).await;
    backend.standin.service_deployment_ends(&arn, "SUCCESSFUL", "Service deployment completed");
    ecs_reports(backend, "SERVICE_DEPLOYMENT_COMPLETED", "ECS deployment ecs-svc/1 completed.").await;
    assert_eq!(backend.record(&release_key(release)).await.unwrap().state, State::Succeeded);
    arn
}

#[tokio::test]
async fn a_rolling_release_updates_its_service_once_under_duplicated_and_reordered_events_and_goes_live() {
    let backend = rolling_backend().await;
    let before = service_runs(&backend).await;
    let key = migration_succeeds_ten_times_at_once(&backend, "r1").await;
    let record = backend.record(&key).await.unwrap();
    let run = record.deployment.clone().unwrap();
    assert_eq!((run.method, run.claims), (DeployMethod::EcsRolling, 1));
    let definition = run.task_definition.clone().unwrap();
    assert_eq!(updates(&backend), vec![definition.clone()], "exactly one UpdateService, with the release's revision");
    assert_eq!(run.previous_task_definition.as_deref(), Some(before.as_str()), "recorded before the update");
    assert_eq!(service_runs(&backend).await, definition);
    let started = backend.standin.service_deployments();
    assert_eq!(started.len(), 1);
    let arn = started[0].clone();
    assert_eq!(record.state, State::Deploying { deployment: DeploymentRef::Service(arn.parse().unwrap()) });
    let gate = run.approval_gate.unwrap();
    assert!(gate.contains("circuit breaker rolls back") && gate.contains("worker-errors"), "{gate}");

    // Reordered: ECS's completion arrives before ECS says so, then the start's own event. Neither
    // ends anything: DescribeServiceDeployments says the update runs.
    ecs_reports(&backend, "SERVICE_DEPLOYMENT_COMPLETED", "ECS deployment ecs-svc/1 completed.").await;
    ecs_reports(&backend, "SERVICE_DEPLOYMENT_IN_PROGRESS", "ECS deployment ecs-svc/1 in progress.").await;
    assert!(matches!(backend.record(&key).await.unwrap().state, State::Deploying { .. }));

    // ECS completes it; the completion twice at once, then a late IN_PROGRESS, change it once.
    backend.standin.service_deployment_ends(&arn, "SUCCESSFUL", "Service deployment completed");
    let deliveries: Vec<_> = (0..2)
        .map(|_| {
            let event = fixtures::ecs_deployment_state_change(
                &backend.ecs.cluster,
                SERVICE,
                "SERVICE_DEPLOYMENT_COMPLETED",
                "ECS deployment ecs-svc/1 completed.",
            );
            let convoy = backend.convoy.clone();
            tokio::spawn(async move { invoke(&convoy, "deployment-changed", event).await })
        })
        .collect();
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    ecs_reports(&backend, "SERVICE_DEPLOYMENT_IN_PROGRESS", "ECS deployment ecs-svc/1 in progress.").await;
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::Succeeded);
    assert_eq!(record.timeline.iter().filter(|e| e.event == "succeeded").count(), 1);
    assert_eq!(record.deployment.unwrap().service_runs.as_deref(), Some(definition.as_str()));
    assert!(record.verification.is_none() && record.approval.is_none(), "no hook, no person");
    assert_eq!(lock_holder(&backend).await, None, "the service is free");
    assert_eq!(updates(&backend).len(), 1);
}

#[tokio::test]
async fn a_circuit_breaker_rollback_fails_the_release_at_deployment_with_the_reason_and_the_service_on_its_previous_revision()
 {
    let backend = rolling_backend().await;
    let before = service_runs(&backend).await;
    let arn = deploying(&backend, "r2", json!({})).await;
    let key = release_key("r2");
    assert_ne!(service_runs(&backend).await, before);

    // The breaker trips: ECS rolls back and says so; the release waits for the rollback's end.
    backend.standin.circuit_breaker_trips(&arn, 3);
    ecs_reports(&backend, "SERVICE_DEPLOYMENT_IN_PROGRESS", &fixtures::ecs_rollback_reason("ecs-svc/1")).await;
    assert!(matches!(backend.record(&key).await.unwrap().state, State::Deploying { .. }));

    backend.standin.rollback_completes(&arn).await;
    ecs_reports(&backend, "SERVICE_DEPLOYMENT_FAILED", "ECS deployment circuit breaker: task failed to start.").await;
    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Deployment, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("ECS rolled it back"), "{reason}");
    assert!(reason.contains("the deployment circuit breaker triggered (3 failed tasks, threshold 3)"), "{reason}");
    assert_eq!(service_runs(&backend).await, before, "ECS put the service back");
    let run = record.deployment.unwrap();
    assert_eq!(run.service_runs.as_deref(), Some(before.as_str()), "the record says what it runs");
    assert_eq!(lock_holder(&backend).await, None);
    assert_eq!(updates(&backend).len(), 1, "Convoy updated nothing more: ECS rolled back");
}

#[tokio::test]
async fn an_alarm_rollback_whose_events_are_lost_is_ended_by_the_reconcilers_look() {
    let backend = rolling_backend().await;
    let before = service_runs(&backend).await;
    let arn = deploying(&backend, "r3", json!({})).await;
    backend.standin.deployment_alarm_fires(&arn, "worker-errors");
    backend.standin.rollback_completes(&arn).await;
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let record = backend.record(&release_key("r3")).await.unwrap();
    let State::Failed { stage: Stage::Deployment, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("alarms in ALARM: worker-errors"), "{reason}");
    assert_eq!(service_runs(&backend).await, before);
}

#[tokio::test]
async fn putting_a_live_rolling_service_back_updates_it_to_its_previous_revision_exactly_once() {
    let backend = rolling_backend().await;
    let before = service_runs(&backend).await;
    live(&backend, "r4").await;
    let key = release_key("r4");
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let (convoy, key) = (backend.convoy.clone(), key.clone());
            tokio::spawn(async move { convoy.put_back(&key, chrono::Utc::now()).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let updated = updates(&backend);
    assert_eq!(updated.len(), 2, "the release's update and one put back: {updated:?}");
    assert_eq!(updated[1], before);
    assert_eq!(service_runs(&backend).await, before);
    let record = backend.record(&key).await.unwrap();
    let run = record.deployment.unwrap();
    let put_back = run.put_back.unwrap();
    assert_eq!((put_back.task_definition.as_str(), put_back.claims), (before.as_str(), 1));
    assert_eq!(
        put_back.service_deployment.map(|a| a.to_string()),
        backend.standin.service_deployments().get(1).cloned()
    );
    assert_eq!(run.service_runs.as_deref(), Some(before.as_str()));
    assert_eq!(record.state, State::Succeeded, "putting back is not the release's end");
    backend.convoy.put_back(&key, chrono::Utc::now() + chrono::Duration::hours(1)).await.unwrap();
    assert_eq!(updates(&backend).len(), 2, "idempotent: nothing more, even after the lease");
}

#[tokio::test]
async fn a_forged_completion_while_ecs_still_runs_the_rolling_update_ends_nothing_and_keeps_the_lock() {
    let backend = rolling_backend().await;
    let arn = deploying(&backend, "r5", json!({})).await;
    let key = release_key("r5");
    let before = backend.record(&key).await.unwrap();
    let repositories: Vec<String> = containers().iter().map(|c| backend.world.repo(c)).collect();
    let env = function_env(
        &backend.world,
        &backend.standin.endpoint,
        &backend.ecs.cluster,
        &[SERVICE.to_owned()],
        &repositories,
        &backend.settings,
    );
    let changed = LambdaProcess::spawn("deployment-changed", &binary("deployment-changed"), &env).await;
    changed.init_time(Duration::from_secs(60)).await.expect("the function starts");
    let asked = backend.standin.log().len();
    let forged = fixtures::ecs_deployment_state_change(
        &backend.ecs.cluster,
        SERVICE,
        "SERVICE_DEPLOYMENT_COMPLETED",
        "ECS deployment ecs-svc/1 completed.",
    );
    changed.invoke(forged).await.expect("an answer");
    let operations: Vec<String> = backend.standin.log()[asked..].iter().map(|r| r.operation.clone()).collect();
    assert!(operations.iter().any(|op| op == "DescribeServiceDeployments"), "ECS was asked: {operations:?}");
    const READS: [&str; 4] = ["Get", "Describe", "List", "Head"];
    let mutating: Vec<&String> = operations.iter().filter(|op| !READS.iter().any(|r| op.starts_with(r))).collect();
    assert_eq!(mutating, Vec::<&String>::new(), "{operations:?}");
    let log = changed.stdout();
    let line = log.lines().find(|l| l.contains("unconfirmed event: refused") && l.contains("has not ended"));
    let line = line.unwrap_or_else(|| panic!("no refusal in the log:\n{log}"));
    assert!(line.contains("r5") && line.contains("SERVICE_DEPLOYMENT_COMPLETED"), "{line}");
    let after = backend.record(&key).await.unwrap();
    assert_eq!(after.state, before.state, "still deploying {arn}");
    assert_eq!(lock_holder(&backend).await.as_deref(), Some("r5"));
}

#[tokio::test]
async fn a_rolling_takeover_after_a_crash_between_update_service_and_the_record_updates_nothing_again() {
    let backend = rolling_backend().await;
    let before = service_runs(&backend).await;
    let key = release_key("r6");
    let mut crashing = backend.convoy.clone();
    crashing.service_deployments =
        Arc::new(crate::native::CrashAfterUpdate(backend.convoy.service_deployments.clone()));
    backend.push("app", "r6").await;
    backend.push("nginx", "r6").await;
    let manifest = manifest_v1(&backend, "r6", &containers(), false);
    let upload = backend.upload("releases/web/r6.json", &manifest).await;
    assert!(invoke_manifest_uploaded(&crashing, upload).await.is_err(), "the crash fails the invocation: AWS retries");
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::StartingDeployment);
    let run = record.deployment.unwrap();
    assert!(run.task_definition.is_some(), "the release's revision was recorded before the update");
    assert_eq!(run.previous_task_definition.as_deref(), Some(before.as_str()), "and the previous one with it");
    assert_eq!(updates(&backend).len(), 1);

    let later = chrono::Utc::now() + convoy::config::CLAIM_LEASE + chrono::Duration::seconds(1);
    backend.convoy.reconcile(later).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    let arn = backend.standin.service_deployments()[0].clone();
    assert_eq!(record.state, State::Deploying { deployment: DeploymentRef::Service(arn.parse().unwrap()) });
    assert_eq!(record.deployment.unwrap().claims, 2);
    assert_eq!(updates(&backend).len(), 1, "the takeover found the update by its revision");
}

#[tokio::test]
async fn a_service_without_a_circuit_breaker_or_alarms_fails_the_release_saying_why_and_is_never_updated() {
    let backend = rolling_backend().await;
    backend.standin.rolling_service(SERVICE, json!({"strategy": "ROLLING"}));
    backend.push("app", "r7").await;
    backend.push("nginx", "r7").await;
    let manifest = manifest_v1(&backend, "r7", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/r7.json", &manifest).await).await.unwrap();
    let record = backend.record(&release_key("r7")).await.unwrap();
    let State::Failed { stage: Stage::Deployment, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("neither its deployment circuit breaker nor deploymentConfiguration.alarms"), "{reason}");
    assert!(updates(&backend).is_empty());
    assert_eq!(lock_holder(&backend).await, None);
}

#[tokio::test]
async fn a_manifest_asking_a_rolling_service_for_a_persons_approval_fails_at_the_manifest_and_touches_nothing() {
    let backend = rolling_backend().await;
    backend.push("app", "r8").await;
    backend.push("nginx", "r8").await;
    let mut manifest: Value = serde_json::from_str(&manifest_v1(&backend, "r8", &containers(), false)).unwrap();
    manifest["approval"] = json!("manual");
    let upload = backend.upload("releases/web/r8.json", &manifest.to_string()).await;
    invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    let record = backend.record(&release_key("r8")).await.unwrap();
    let State::Failed { stage: Stage::Manifest, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("asks for approval manual") && reason.contains("ecs-rolling"), "{reason}");
    assert!(updates(&backend).is_empty());
}
