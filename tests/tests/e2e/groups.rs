//! A release of several services, a version 2 manifest (issue 25), on moto through the real
//! adapters: `web` deploys by CodeDeploy blue/green (verified on a real green server on loopback),
//! `worker` by an ECS rolling update (the stand-in plays the service deployments moto lacks). One
//! manifest, one migration, one deployment per service in the manifest's order, and a failure
//! that puts every service the release changed back, each once, however often events arrive.

use aws_sdk_ecs::types::DeploymentControllerType;
use convoy::names::ReleaseKey;
use convoy::release::{SectionState, Stage, State};
use convoy_tests::fixtures;
use convoy_tests::http::{self, Behaviour, Server};
use serde_json::{Value, json};

use crate::deploy::{containers, invoke, probe};
use crate::scenario::*;

/// The backend's `web` (CodeDeploy, its test listener a green server with `behaviour`, approval by
/// policy) and `rolling` services deployed by ECS rolling updates, released together as group
/// `shop`.
async fn shop_of(behaviour: Behaviour, rolling: &[&str]) -> (MotoBackend, Server) {
    let green = http::serve(behaviour).await;
    let mut backend = MotoBackend::with_listener(&containers(), &green.url, "auto", probe()).await;
    let mut members = vec!["web".parse().unwrap()];
    for service in rolling {
        backend.world.ecs_service_controlled(service, &[service], DeploymentControllerType::Ecs).await;
        backend.standin.rolling_service(
            service,
            json!({"strategy": "ROLLING", "minimumHealthyPercent": 100, "maximumPercent": 200,
                   "deploymentCircuitBreaker": {"enable": true, "rollback": true}}),
        );
        let settings = json!({*service: {"deploy": {"method": "ecs-rolling"}, "approval": "auto"}}).to_string();
        let config = &mut backend.convoy.config;
        config.services.extend(convoy::settings::parse(&settings).expect("the service's settings"));
        config.policy.allowed_services.insert(service.parse().unwrap());
        members.push(service.parse().unwrap());
    }
    backend.convoy.config.release_groups.insert("shop".into(), members);
    (backend, green)
}

/// `web` and a `worker`.
pub(crate) async fn shop(behaviour: Behaviour) -> (MotoBackend, Server) {
    shop_of(behaviour, &["worker"]).await
}

pub(crate) fn group_key(group: &str, release: &str) -> ReleaseKey {
    ReleaseKey::new(group.parse().unwrap(), release.parse().unwrap())
}

pub(crate) fn part_key(service: &str, release: &str) -> ReleaseKey {
    ReleaseKey::new(service.parse().unwrap(), release.parse().unwrap())
}

/// web runs app and nginx, the worker app: app is one image of the release. The migration runs
/// from web's task definition; `order` says who goes first.
pub(crate) fn manifest_v2(backend: &MotoBackend, release: &str, order: Value) -> Value {
    let mut services = json!({"web": {"containers": {"app": "app", "nginx": "nginx"}},
                              "worker": {"containers": {"worker": "app"}}});
    if order.to_string().contains("\"cron\"") {
        services["cron"] = json!({"containers": {"cron": "app"}});
    }
    json!({
        "version": 2, "release": release, "group": "shop",
        "images": {"app": backend.uri("app", release), "nginx": backend.uri("nginx", release)},
        "services": services,
        "migration": {"service": "web", "container": "app", "command": ["./migrate"]},
        "order": order
    })
}

/// The operations of the stand-in's log that change something, in order.
pub(crate) fn changes(backend: &MotoBackend) -> Vec<String> {
    let log = backend.standin.log();
    let changing =
        log.iter().filter(|r| ["RunTask", "CreateDeployment", "UpdateService"].contains(&r.operation.as_str()));
    changing.map(|r| r.operation.clone()).collect()
}

/// The release's images pushed (one before the manifest, one after), its manifest uploaded and
/// its events replayed out of order; its migration task exits 0, its STOPPED event three times.
pub(crate) async fn migrated(backend: &MotoBackend, release: &str, order: Value) -> ReleaseKey {
    migrated_with(backend, release, &manifest_v2(backend, release, order)).await
}

/// [`migrated`], for the version 2 manifest `manifest` of group `shop`.
pub(crate) async fn migrated_with(backend: &MotoBackend, release: &str, manifest: &Value) -> ReleaseKey {
    let key = group_key("shop", release);
    let body = manifest.to_string();
    let (_, early) = backend.push("app", release).await;
    let upload = backend.upload(&format!("releases/shop/{release}.json"), &body).await;
    invoke_manifest_uploaded(&backend.convoy, upload.clone()).await.unwrap();
    let (_, late) = backend.push("nginx", release).await;
    for event in [late.clone(), upload.clone(), early, late, upload] {
        let handled = if event["source"] == "aws.s3" {
            invoke_manifest_uploaded(&backend.convoy, event).await
        } else {
            invoke_image_pushed(&backend.convoy, event).await
        };
        handled.expect("acknowledged, not retried");
    }
    let record = backend.record(&key).await.expect("the group's record");
    let State::Migrating { task } = record.state else { panic!("migrating, not {}", record.state) };
    let stopped = backend.migration_exited_0(&key, task.as_str());
    for _ in 0..3 {
        invoke(&backend.convoy, "migration-stopped", stopped.clone()).await;
    }
    key
}

/// ECS completes the worker's service deployment `arn` and says so, twice.
pub(crate) async fn worker_completes(backend: &MotoBackend, arn: &str) {
    backend.standin.service_deployment_ends(arn, "SUCCESSFUL", "Service deployment completed");
    ecs_reports_twice(backend, "worker", "SERVICE_DEPLOYMENT_COMPLETED", "ECS deployment ecs-svc/1 completed.").await;
}

/// ECS says `event_name` of `service`'s deployment, twice.
async fn ecs_reports_twice(backend: &MotoBackend, service: &str, event_name: &str, reason: &str) {
    for _ in 0..2 {
        let event = fixtures::ecs_deployment_state_change(&backend.ecs.cluster, service, event_name, reason);
        invoke(&backend.convoy, "deployment-changed", event).await;
    }
}

async fn worker_runs(backend: &MotoBackend) -> String {
    let described = backend.ecs_client().describe_services().cluster(&backend.ecs.cluster).services("worker");
    described.send().await.unwrap().services()[0].task_definition().unwrap().to_owned()
}

/// An EventBridge Scheduler schedule (`CreateSchedule`, default group) whose ECS target runs
/// `task_definition` in the backend's cluster; named after the test's world.
fn nightly_schedule(backend: &MotoBackend, task_definition: &str) -> String {
    // Not `nightly-<id>`: e2e/scheduled_tasks.rs names its schedules so, with ids of the same form.
    let name = format!("release-nightly-{}", backend.world.id);
    let cluster = format!(
        "arn:aws:ecs:{}:{}:cluster/{}",
        convoy_tests::moto::REGION,
        convoy_tests::moto::ACCOUNT,
        backend.ecs.cluster
    );
    let body = json!({
        "ScheduleExpression": "cron(0 3 * * ? *)",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": cluster, "RoleArn": "arn:aws:iam::123456789012:role/convoy-scheduled-tasks",
                   "EcsParameters": {"TaskDefinitionArn": task_definition, "TaskCount": 1, "LaunchType": "FARGATE"}},
    });
    let moto = convoy_tests::moto::Moto::shared();
    let (status, answer) = moto.rest_call("scheduler", "POST", &format!("/schedules/{name}"), &body.to_string());
    assert_eq!(status, 200, "CreateSchedule: {answer}");
    name
}

/// The task definition schedule `name` (default group) runs, as moto's `GetSchedule` says.
fn schedule_runs(name: &str) -> String {
    let moto = convoy_tests::moto::Moto::shared();
    let (status, answer) = moto.rest_call("scheduler", "GET", &format!("/schedules/{name}?groupName=default"), "");
    assert_eq!(status, 200, "GetSchedule: {answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    answer["Target"]["EcsParameters"]["TaskDefinitionArn"].as_str().unwrap().to_owned()
}

async fn lock_holder(backend: &MotoBackend, service: &str) -> Option<String> {
    let lock = backend.convoy.locks.load(&service.parse().unwrap()).await.unwrap();
    lock.and_then(|(lock, _)| lock.holder).map(|h| h.release.to_string())
}

fn section_states(record: &convoy::release::Release) -> Vec<(String, SectionState)> {
    record.services.iter().map(|s| (s.service.to_string(), s.state.clone())).collect()
}

#[tokio::test]
async fn a_groups_release_replayed_runs_one_migration_then_the_worker_then_web_each_once_and_goes_live_as_one() {
    let (backend, green) = shop(Behaviour::version("g1")).await;
    let worker_before = worker_runs(&backend).await;
    let nightly = nightly_schedule(&backend, &worker_before);
    let key = migrated(&backend, "g1", json!(["worker", "web"])).await;
    assert_eq!(changes(&backend), ["RunTask", "UpdateService"], "the worker's step first, web not yet");
    assert_eq!(lock_holder(&backend, "web").await.as_deref(), Some("g1"), "both locks taken at once");
    assert_eq!(lock_holder(&backend, "worker").await.as_deref(), Some("g1"));
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::DeployingServices { step: 0 });
    let worker_part = backend.record(&part_key("worker", "g1")).await.expect("the worker's part");
    assert_eq!(worker_part.part_of.as_ref(), Some(&key));
    let run = worker_part.deployment.clone().unwrap();
    assert_eq!(run.previous_task_definition.as_deref(), Some(worker_before.as_str()), "recorded before the update");
    assert_eq!(worker_runs(&backend).await, run.task_definition.clone().unwrap());

    let arn = backend.standin.service_deployments()[0].clone();
    worker_completes(&backend, &arn).await;
    assert_eq!(changes(&backend), ["RunTask", "UpdateService", "CreateDeployment"], "web follows, once");
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::DeployingServices { step: 1 });
    let web = backend.record(&part_key("web", "g1")).await.expect("web's part");
    let State::Deploying { deployment } = web.state else { panic!("web deploys, not {}", web.state) };
    let deployment = deployment.to_string();

    // web's verification on the green server; policy approves; CodeDeploy waits, then shifts.
    backend.codedeploy_hook(&deployment, "exec-1").await;
    // Delivered again (the Lambda retried): nothing is probed or answered twice.
    invoke(&backend.convoy, "verify", fixtures::codedeploy_hook(&deployment, "exec-1")).await;
    assert!(green.requests() >= 1, "web was probed on its test listener");
    assert_eq!(section_states(&backend.record(&key).await.unwrap())[1].1, SectionState::Through);
    backend.standin.waits(&deployment);
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    backend.standin.finish(&deployment);
    backend.codedeploy_reports(&deployment, "SUCCESS").await;
    backend.codedeploy_reports(&deployment, "SUCCESS").await;
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();

    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::Succeeded, "{:#?}", record.timeline);
    assert_eq!(
        section_states(&record),
        [("worker".into(), SectionState::Live), ("web".into(), SectionState::Live)],
        "every service runs the release"
    );
    assert_eq!(record.timeline.iter().filter(|e| e.event == "succeeded").count(), 1);
    assert_eq!(changes(&backend), ["RunTask", "UpdateService", "CreateDeployment"], "nothing more");
    assert_eq!(backend.migration_tasks(&key).await, 1, "one migration for the release");
    assert_eq!(lock_holder(&backend, "web").await, None, "every lock freed");
    assert_eq!(lock_holder(&backend, "worker").await, None);
    // The worker's scheduled task runs the release's revision, moved once, when the worker went live.
    let worker_revision = record.services[0].revision.clone().unwrap();
    assert_eq!(schedule_runs(&nightly), worker_revision);
    let moves = &record.services[0].schedules;
    assert_eq!(moves.len(), 1, "{moves:?}");
    assert_eq!(
        (moves[0].previous.as_str(), moves[0].revision.as_str()),
        (worker_before.as_str(), worker_revision.as_str())
    );
    assert_eq!(record.timeline.iter().filter(|e| e.event == "schedules-moved").count(), 1);
}

#[tokio::test]
async fn a_failure_at_webs_verification_puts_the_worker_back_once_and_the_release_fails_at_verification() {
    let (backend, _green) = shop(Behaviour { status: 500, ..Behaviour::version("g2") }).await;
    let worker_before = worker_runs(&backend).await;
    let nightly = nightly_schedule(&backend, &worker_before);
    let key = migrated(&backend, "g2", json!(["worker", "web"])).await;
    let arn = backend.standin.service_deployments()[0].clone();
    worker_completes(&backend, &arn).await;
    assert_ne!(schedule_runs(&nightly), worker_before, "the live worker's schedule moved with it");
    let web = backend.record(&part_key("web", "g2")).await.expect("web's part");
    let State::Deploying { deployment } = web.state else { panic!("web deploys, not {}", web.state) };
    let deployment = deployment.to_string();

    // web fails its verification: the hook is answered Failed, CodeDeploy rolls web back, and
    // the worker goes back to the revision it ran before the release, once.
    backend.codedeploy_hook(&deployment, "exec-1").await;
    // Delivered again (the Lambda retried): nothing is probed or answered twice.
    invoke(&backend.convoy, "verify", fixtures::codedeploy_hook(&deployment, "exec-1")).await;
    assert_eq!(backend.accepted_hook_answers()[0]["status"], "Failed");
    let record = backend.record(&key).await.unwrap();
    assert!(
        matches!(record.state, State::RevertingServices { stage: Some(Stage::Verification), .. }),
        "{}",
        record.state
    );
    let updates = backend.standin.service_updates();
    assert_eq!(updates.len(), 2, "the release's update, then the put back: {updates:?}");
    assert_eq!(updates[1], worker_before);
    assert_eq!(worker_runs(&backend).await, worker_before, "the worker runs what it ran before");

    backend.codedeploy_reports(&deployment, "FAILURE").await;
    backend.codedeploy_reports(&deployment, "FAILURE").await;
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Verification, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.starts_with("service web: "), "{reason}");
    let sections = section_states(&record);
    assert!(matches!(&sections[0], (name, SectionState::RolledBack { .. }) if name == "worker"), "{sections:?}");
    assert!(matches!(&sections[1], (name, SectionState::Failed { .. }) if name == "web"), "{sections:?}");
    assert_eq!(backend.standin.service_updates().len(), 2, "put back once, whatever came after");
    assert_eq!(schedule_runs(&nightly), worker_before, "the worker's schedule runs its previous revision again");
    assert!(record.services[0].schedules_put_back);
    assert_eq!(record.timeline.iter().filter(|e| e.event == "schedules-put-back").count(), 1);
    assert_eq!(changes(&backend).iter().filter(|c| *c == "CreateDeployment").count(), 1);
    assert_eq!(lock_holder(&backend, "web").await, None, "every lock freed");
    assert_eq!(lock_holder(&backend, "worker").await, None);
}

#[tokio::test]
async fn a_failure_of_the_second_service_rolls_the_first_back_once_and_never_starts_the_third() {
    let (backend, _green) = shop_of(Behaviour::version("g3"), &["worker", "cron"]).await;
    let key = migrated(&backend, "g3", json!(["web", "worker", "cron"])).await;
    let web = backend.record(&part_key("web", "g3")).await.expect("web's part");
    let State::Deploying { deployment } = web.state else { panic!("web deploys, not {}", web.state) };
    let deployment = deployment.to_string();
    // web passes; policy approves, but CodeDeploy does not wait yet: its shift is held, and the
    // worker's step opens.
    backend.codedeploy_hook(&deployment, "exec-1").await;
    assert_eq!(changes(&backend), ["RunTask", "CreateDeployment", "UpdateService"]);
    let arn = backend.standin.service_deployments()[0].clone();

    // The worker's circuit breaker trips and ECS rolls it back: the release fails, and web, still
    // in flight, is rolled back by CodeDeploy (StopDeployment with its rollback), once.
    backend.standin.circuit_breaker_trips(&arn, 3);
    backend.standin.rollback_completes(&arn).await;
    ecs_reports_twice(
        &backend,
        "worker",
        "SERVICE_DEPLOYMENT_FAILED",
        "ECS deployment circuit breaker: task failed to start.",
    )
    .await;
    let record = backend.record(&key).await.unwrap();
    assert!(
        matches!(record.state, State::RevertingServices { stage: Some(Stage::Deployment), .. }),
        "{}",
        record.state
    );
    let stops = backend.standin.answered("StopDeployment");
    assert_eq!(stops, [json!({"deploymentId": deployment, "autoRollbackEnabled": true})], "web rolled back once");

    backend.codedeploy_reports(&deployment, "STOP").await;
    backend.codedeploy_reports(&deployment, "STOP").await;
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Deployment, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.starts_with("service worker: failed: deployment: "), "{reason}");
    let sections = section_states(&record);
    assert!(matches!(&sections[0], (name, SectionState::RolledBack { .. }) if name == "web"), "{sections:?}");
    assert!(matches!(&sections[1], (name, SectionState::Failed { .. }) if name == "worker"), "{sections:?}");
    assert_eq!(sections[2], ("cron".into(), SectionState::Waiting), "the third step never opened");
    assert!(backend.record(&part_key("cron", "g3")).await.is_none(), "no part for cron");
    assert_eq!(changes(&backend), ["RunTask", "CreateDeployment", "UpdateService"], "cron was never updated");
    assert_eq!(backend.standin.answered("StopDeployment").len(), 1);
    for service in ["web", "worker", "cron"] {
        assert_eq!(lock_holder(&backend, service).await, None, "{service}'s lock freed");
    }
}

#[tokio::test]
async fn two_releases_of_the_same_services_never_interleave_the_second_waits_for_the_first_to_end() {
    let (backend, _green) = shop(Behaviour::version("g4")).await;
    let first = migrated(&backend, "g4", json!(["worker", "web"])).await;
    let second = migrated(&backend, "g5", json!(["worker", "web"])).await;
    assert_eq!(backend.record(&second).await.unwrap().state, State::Queued { behind: "g4".parse().unwrap() });
    assert!(backend.record(&part_key("worker", "g5")).await.is_none(), "no part of the second opens");
    assert_eq!(changes(&backend), ["RunTask", "UpdateService", "RunTask"], "each migration; one update, the first's");
    assert_eq!(lock_holder(&backend, "web").await.as_deref(), Some("g4"), "the second took no lock, not even web's");

    let arn = backend.standin.service_deployments()[0].clone();
    worker_completes(&backend, &arn).await;
    let web = backend.record(&part_key("web", "g4")).await.expect("the first's web part");
    let State::Deploying { deployment } = web.state else { panic!("web deploys, not {}", web.state) };
    let deployment = deployment.to_string();
    backend.codedeploy_hook(&deployment, "exec-1").await;
    backend.standin.waits(&deployment);
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    backend.standin.finish(&deployment);
    backend.codedeploy_reports(&deployment, "SUCCESS").await;
    assert_eq!(backend.record(&first).await.unwrap().state, State::Succeeded);

    // The first ended: its locks freed, the second took both and started its first step.
    let record = backend.record(&second).await.unwrap();
    assert_eq!(record.state, State::DeployingServices { step: 0 }, "{:#?}", record.timeline);
    assert_eq!(
        changes(&backend),
        ["RunTask", "UpdateService", "RunTask", "CreateDeployment", "UpdateService"],
        "the second's update only after the first's last deployment"
    );
    assert_eq!(lock_holder(&backend, "web").await.as_deref(), Some("g5"));
    assert_eq!(lock_holder(&backend, "worker").await.as_deref(), Some("g5"));
}

#[tokio::test]
async fn a_service_outside_the_group_an_unknown_group_a_migration_service_not_released_or_a_v1_manifest_under_a_group_fails_at_the_manifest_stage()
 {
    let (backend, _green) = shop(Behaviour::version("n")).await;
    let with = |release: &str, change: &dyn Fn(&mut Value)| {
        let mut manifest = manifest_v2(&backend, release, json!(["web", "worker"]));
        change(&mut manifest);
        manifest.to_string()
    };
    let cases = [
        (
            "shop",
            "n1",
            with("n1", &|m| {
                m["services"]["billing"] = json!({"containers": {"billing": "app"}});
                m["order"] = json!(["web", ["worker", "billing"]]);
            }),
            "service \"billing\" is not in release group \"shop\" (its services: web, worker): a manifest cannot add a \
             service to its group",
        ),
        (
            "night",
            "n2",
            with("n2", &|m| m["group"] = "night".into()),
            "release group \"night\" is not in the operator's settings (release groups: shop); release groups live in \
             the settings file (docs/reference/settings.md)",
        ),
        (
            "shop",
            "n3",
            with("n3", &|m| m["migration"]["service"] = "scheduler".into()),
            "the migration runs from the task definition of service \"scheduler\", which the manifest does not release",
        ),
        (
            "shop",
            "n4",
            json!({"version": 1, "release": "n4", "service": "shop", "images": {"app": backend.uri("app", "n4")}})
                .to_string(),
            "\"releases/shop/n4.json\" names release group \"shop\": its releases are version 2 manifests, which name \
             the group and its services",
        ),
    ];
    for (group, release, body, reason) in cases {
        let upload = backend.upload(&format!("releases/{group}/{release}.json"), &body).await;
        invoke_manifest_uploaded(&backend.convoy, upload).await.expect("acknowledged");
        let record = backend.record(&group_key(group, release)).await.expect("a record with the reason");
        assert_eq!(record.state, State::Failed { stage: Stage::Manifest, reason: reason.into() }, "{release}");
        assert!(record.services.is_empty() && record.images.is_empty(), "{release}: nothing of it is kept");
    }
    assert!(changes(&backend).is_empty(), "nothing runs for a refused release: {:?}", changes(&backend));
}

#[tokio::test]
async fn one_bad_image_of_one_service_fails_the_whole_groups_release_at_the_gate_before_its_migration() {
    use convoy_tests::standin::ecr::ScanFinding;
    let (mut backend, _green) = shop(Behaviour::version("g6")).await;
    // Only the worker's settings hold an image policy; app is the image web and the worker share.
    let policy = serde_json::from_value(json!({"max_severity": "HIGH"})).expect("an image policy");
    backend.convoy.config.services.get_mut(&"worker".parse().unwrap()).unwrap().image_policy = Some(policy);
    let key = group_key("shop", "g6");
    for image in ["app", "nginx"] {
        let (digest, _) = backend.push(image, "g6").await;
        let findings = if image == "app" { vec![ScanFinding::basic("CVE-2026-0001", "CRITICAL")] } else { Vec::new() };
        backend.standin.scan_complete(&backend.world.repo(image), &digest, findings);
    }
    let body = manifest_v2(&backend, "g6", json!(["worker", "web"])).to_string();
    let upload = backend.upload("releases/shop/g6.json", &body).await;
    invoke_manifest_uploaded(&backend.convoy, upload.clone()).await.unwrap();
    invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();

    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Gate, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("app of worker (") && reason.contains("CVE-2026-0001 CRITICAL"), "{reason}");
    assert!(!reason.contains("nginx"), "nginx runs only in web, which has no policy: {reason}");
    assert!(changes(&backend).is_empty(), "no RunTask, no update, no deployment: {:?}", changes(&backend));
    assert_eq!(backend.migration_tasks(&key).await, 0);
    assert!(
        backend.record(&part_key("worker", "g6")).await.is_none()
            && backend.record(&part_key("web", "g6")).await.is_none()
    );
    let judged: Vec<&str> = record.gate.as_ref().unwrap().images.iter().map(|i| i.container.as_str()).collect();
    assert_eq!(judged, ["app of worker"], "each image judged under the policy of each service that runs it");
}

/// The CloudTrail records of the continues made on `deployment` (refused ones left out): the
/// principal of each.
fn continued_by(backend: &MotoBackend, deployment: &str) -> Vec<String> {
    let accepted = backend.standin.trail().into_iter().filter(|r| {
        r["eventName"] == "ContinueDeployment"
            && r["errorCode"].is_null()
            && r["requestParameters"]["deploymentId"] == deployment
    });
    accepted.map(|r| r["userIdentity"]["arn"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn one_persons_approval_of_web_is_the_releases_and_api_verified_later_shifts_with_it_each_continued_once() {
    let green = http::serve(Behaviour::version("g8")).await;
    let mut backend = MotoBackend::with_listener(&containers(), &green.url, "manual", probe()).await;
    // api: a second service behind its own CodeDeploy group, verified on the same green server.
    backend.world.ecs_service("api", &["app", "nginx"]).await;
    let (api_application, api_group) = backend.world.codedeploy("api").await;
    let settings =
        convoy_tests::world::service_settings("api", &api_application, &api_group, &green.url, "manual", probe());
    let config = &mut backend.convoy.config;
    config.services.extend(convoy::settings::parse(&settings).expect("api's settings"));
    config.policy.allowed_services.insert("api".parse().unwrap());
    config.release_groups.insert("shop".into(), vec!["web".parse().unwrap(), "api".parse().unwrap()]);
    let manifest = json!({
        "version": 2, "release": "g8", "group": "shop",
        "images": {"app": backend.uri("app", "g8"), "nginx": backend.uri("nginx", "g8")},
        "services": {"web": {"containers": {"app": "app", "nginx": "nginx"}},
                     "api": {"containers": {"app": "app", "nginx": "nginx"}}},
        "migration": {"service": "web", "container": "app", "command": ["./migrate"]},
        "order": ["web", "api"]
    });
    let key = migrated_with(&backend, "g8", &manifest).await;
    let web = backend.record(&part_key("web", "g8")).await.expect("web's part");
    let State::Deploying { deployment } = web.state else { panic!("web deploys, not {}", web.state) };
    let web_deployment = deployment.to_string();
    backend.codedeploy_hook(&web_deployment, "exec-1").await;
    let api = backend.record(&part_key("api", "g8")).await.expect("web verified: api's step opened");
    let State::Deploying { deployment } = api.state else { panic!("api deploys, not {}", api.state) };
    let api_deployment = deployment.to_string();

    // Ana approves the release (not a service of it): her call continues web, the one waiting.
    backend.standin.waits(&web_deployment);
    let (ana, as_ana) = backend.person("ana").await;
    let decided = as_ana.decide(&key, true).await.expect("the release awaits its approval");
    assert_eq!((decided.key.to_string(), decided.deployment.as_str()), ("web/g8".into(), web_deployment.as_str()));
    let delivered = backend.cloudtrail_delivers_last_call().await;
    invoke(&backend.convoy, "deployment-changed", delivered).await;
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.approval.as_ref().map(|a| a.by.as_str()), Some(ana.as_str()), "the release's approval");
    assert!(continued_by(&backend, &api_deployment).is_empty(), "api is not verified yet: it waits");

    // api passes its verification (its hook delivered twice): it shifts with the release's approval.
    backend.standin.hook_invoked(&api_deployment, "exec-2");
    for _ in 0..2 {
        invoke(&backend.convoy, "verify", fixtures::codedeploy_hook(&api_deployment, "exec-2")).await;
    }
    let api = backend.record(&part_key("api", "g8")).await.unwrap();
    assert_eq!(api.state, State::ShiftingTraffic { deployment: api.state.deployment().unwrap().clone() });
    let by = &api.approval.as_ref().expect("carried to api").by;
    assert_eq!(by, &format!("policy (with the release: {ana} approved it on web)"));
    // CodeDeploy's READY_WAIT comes after the hook's answer: the reconciler's continue takes.
    backend.standin.waits(&api_deployment);
    for _ in 0..2 {
        backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    }
    for deployment in [&web_deployment, &api_deployment] {
        backend.standin.finish(deployment);
    }
    backend.codedeploy_reports(&web_deployment, "SUCCESS").await;
    let api_end = fixtures::codedeploy_state_change(&api_application, &api_group, &api_deployment, "SUCCESS");
    invoke(&backend.convoy, "deployment-changed", api_end).await;
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();

    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::Succeeded, "{:#?}", record.timeline);
    assert_eq!(continued_by(&backend, &web_deployment), std::slice::from_ref(&ana), "web: Ana's one call");
    let convoy_calls = continued_by(&backend, &api_deployment);
    assert_eq!(convoy_calls.len(), 1, "api: one continue, Convoy's: {convoy_calls:?}");
    assert_ne!(convoy_calls[0], ana, "made with Convoy's role, not in Ana's name");
    assert_eq!(record.timeline.iter().filter(|e| e.event == "approved").count(), 1, "one approval for the release");
}

#[tokio::test]
async fn a_release_of_one_service_moves_its_scheduled_task_once_when_it_goes_live_and_not_before() {
    let (backend, _green) = crate::deploy::with_green(Behaviour::version("s1"), "manual").await;
    let ecs = backend.ecs_client();
    let described = ecs.describe_services().cluster(&backend.ecs.cluster).services("web").send().await.unwrap();
    let before = described.services()[0].task_definition().unwrap().to_owned();
    let nightly = nightly_schedule(&backend, &before);
    let key = release_key("s1");
    let deployment = crate::deploy::deploying(&backend, "s1", json!({})).await;
    backend.codedeploy_hook(&deployment, "exec-1").await;
    backend.standin.waits(&deployment);
    let (_, as_ana) = backend.person("ana").await;
    as_ana.decide(&key, true).await.unwrap();
    backend.cloudtrail_delivers_last_call().await;
    assert_eq!(schedule_runs(&nightly), before, "not live yet: the schedule runs what it ran");
    backend.standin.finish(&deployment);
    for _ in 0..2 {
        backend.codedeploy_reports(&deployment, "SUCCESS").await;
    }
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::Succeeded);
    let revision = record.deployment.as_ref().and_then(|d| d.task_definition.clone()).expect("the release's revision");
    assert_eq!(schedule_runs(&nightly), revision, "the schedule runs the live release");
    assert_eq!(record.schedules.len(), 1, "{:?}", record.schedules);
    assert_eq!(
        (record.schedules[0].previous.as_str(), record.schedules[0].revision.as_str()),
        (before.as_str(), revision.as_str())
    );
    assert_eq!(record.timeline.iter().filter(|e| e.event == "schedules-moved").count(), 1, "moved once");
}
