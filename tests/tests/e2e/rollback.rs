//! Rollback to an earlier release (issue 26), on moto through the real handlers and the `convoy`
//! binary: `app:v1` goes live, then `app:v2` (with a migration that records its down command); the
//! `v1` tag is moved to a new image; `convoy rollback web` submits v1's pinned digests, and the new
//! release deploys exactly those, runs no migration, and says it is a rollback of v2 to v1. A
//! forged claim fails at the manifest stage with nothing run; a group release rolls back whole,
//! each service once, and with `--migrate-down` runs its migration's down command once before
//! any service moves. Needs the binaries built (`cargo build --workspace --bins`).

use aws_sdk_ecr::types::ImageIdentifier;
use convoy::names::ReleaseKey;
use convoy::release::{Stage, State};
use convoy_tests::http::{self, Behaviour, Server};
use serde_json::{Value, json};

use crate::cli::run;
use crate::deploy::{containers, with_green};
use crate::groups::{changes, group_key, manifest_v2, migrated, migrated_with, part_key, shop, worker_completes};
use crate::scenario::*;

const DOWN: [&str; 2] = ["./migrate", "--down"];

/// From now on web's test listener is a green server serving `version` (the release id its
/// verification looks for), kept while the returned server lives.
pub(crate) async fn green_serves(backend: &mut MotoBackend, version: &str) -> Server {
    let green = http::serve(Behaviour::version(version)).await;
    let web = backend.convoy.config.services.get_mut(&SERVICE.parse().unwrap()).expect("web's settings");
    web.test_listener.clone_from(&green.url);
    green
}

/// How many times the stand-in was asked `operation` (moto lacks RunTask's and CodeDeploy's
/// shapes; every one goes through it).
pub(crate) fn calls(backend: &MotoBackend, operation: &str) -> usize {
    backend.standin.log().iter().filter(|r| r.operation == operation).count()
}

/// CodeDeploy's hook for `deployment` passes (approval by policy), it waits, is continued, and
/// succeeds; its end is reported twice.
pub(crate) async fn codedeploy_goes_live(backend: &MotoBackend, deployment: &str) {
    backend.codedeploy_hook(deployment, "exec-1").await;
    backend.standin.waits(deployment);
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    backend.standin.finish(deployment);
    backend.codedeploy_reports(deployment, "SUCCESS").await;
    backend.codedeploy_reports(deployment, "SUCCESS").await;
}

/// Release `release` of web (its images pushed under the tag `release`), with a migration that
/// records its down command when `migration`, all the way to `Succeeded`.
pub(crate) async fn goes_live(backend: &MotoBackend, release: &str, migration: bool) {
    backend.push("app", release).await;
    backend.push("nginx", release).await;
    let mut manifest: Value = serde_json::from_str(&manifest_v1(backend, release, &containers(), migration)).unwrap();
    if migration {
        manifest["migration"]["down"] = json!(DOWN);
    }
    let upload = backend.upload(&format!("releases/web/{release}.json"), &manifest.to_string()).await;
    invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    let key = release_key(release);
    if migration {
        let State::Migrating { task } = backend.record(&key).await.unwrap().state else { panic!("not migrating") };
        let stopped =
            crate::migration::stopped(backend, release, task.as_str(), Some(0), "EssentialContainerExited", 4);
        crate::migration::invoke_migration_stopped(backend, stopped).await.unwrap();
    }
    let record = backend.record(&key).await.unwrap();
    let State::Deploying { deployment } = record.state else { panic!("{release} not deploying: {}", record.state) };
    codedeploy_goes_live(backend, deployment.as_str()).await;
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::Succeeded, "{release}: {:#?}", record.timeline);
}

/// Gives `container`'s image tagged `tag` a second tag, so moving `tag` keeps the image: ECR keeps
/// an image whose tag moved (untagged), moto deletes it with its last tag.
async fn keep_image(backend: &MotoBackend, container: &str, tag: &str) {
    let ecr = &backend.world.ecr;
    let repository = backend.world.repo(container);
    let got = ecr
        .batch_get_image()
        .repository_name(&repository)
        .image_ids(ImageIdentifier::builder().image_tag(tag).build())
        .send()
        .await
        .unwrap();
    let manifest = got.images()[0].image_manifest().unwrap().to_owned();
    let kept = format!("{tag}-kept");
    ecr.put_image().repository_name(&repository).image_tag(kept).image_manifest(manifest).send().await.unwrap();
}

/// The S3 event for an object the `convoy` binary uploaded (S3's "Object Created" through
/// EventBridge, as template.yaml's rule delivers it).
pub(crate) async fn uploaded_event(backend: &MotoBackend, key: &str) -> Value {
    let head = backend.world.s3.head_object().bucket(&backend.world.bucket).key(key).send().await.unwrap();
    let size = head.content_length().unwrap_or_default() as u64;
    convoy_tests::fixtures::s3_eventbridge(&backend.world.bucket, key, head.version_id(), size)
}

/// `convoy rollback <args> --json`: its exit code and output.
fn rollback(backend: &MotoBackend, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["rollback"];
    all.extend_from_slice(args);
    all.push("--json");
    let (code, stdout, stderr) = run(backend, &all);
    (code, serde_json::from_str(&stdout).unwrap_or(Value::Null), stderr)
}

fn key_of(release: &Value) -> ReleaseKey {
    let (service, id) = release.as_str().unwrap().split_once('/').unwrap();
    ReleaseKey::new(service.parse().unwrap(), id.parse().unwrap())
}

/// The images of the task definition revision `arn` registers, by container.
pub(crate) async fn registered_images(backend: &MotoBackend, arn: &str) -> Vec<(String, String)> {
    let described = backend.ecs_client().describe_task_definition().task_definition(arn).send().await.unwrap();
    let definition = described.task_definition().unwrap();
    let mut images: Vec<(String, String)> = definition
        .container_definitions()
        .iter()
        .map(|c| (c.name().unwrap_or_default().to_owned(), c.image().unwrap_or_default().to_owned()))
        .collect();
    images.sort();
    images
}

#[tokio::test]
async fn convoy_rollback_deploys_exactly_v1s_pinned_digests_after_the_tag_moved_runs_no_migration_and_says_so() {
    let (mut backend, _first) = with_green(Behaviour::version("v1"), "auto").await;
    goes_live(&backend, "v1", false).await;
    let v1 = backend.record(&release_key("v1")).await.unwrap();
    let mut v1_pinned = v1.pinned_uris();
    v1_pinned.sort();
    let _second = green_serves(&mut backend, "v2").await;
    goes_live(&backend, "v2", true).await;
    // The v1 tag moves to a new image: a rollback never resolves it.
    keep_image(&backend, "app", "v1").await;
    keep_image(&backend, "nginx", "v1").await;
    let (moved, _) = backend.push("app", "v1").await;
    assert!(!v1_pinned.iter().any(|(_, uri)| uri.ends_with(&moved)), "the tag points elsewhere now");
    let run_tasks = calls(&backend, "RunTask");
    assert_eq!(run_tasks, 1, "v2's migration");

    // The green version of the rollback is v1's code: it serves v1, and that is what its
    // verification looks for (not the rollback's own id).
    let _third = green_serves(&mut backend, "v1").await;
    let (code, out, stderr) = rollback(&backend, &["web"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!((out["of"].as_str(), out["to"].as_str()), (Some("v2"), Some("v1")), "{out}");
    let key = key_of(&out["release"]);
    assert!(key.release.as_str().starts_with("rollback-v1-"), "{key}");
    let object = format!("releases/web/{}.json", key.release);
    let event = uploaded_event(&backend, &object).await;
    invoke_manifest_uploaded(&backend.convoy, event.clone()).await.unwrap();

    let record = backend.record(&key).await.unwrap();
    let State::Deploying { deployment } = record.state.clone() else { panic!("not deploying: {:#?}", record.timeline) };
    let rollback = record.rollback.clone().expect("the record says it is a rollback");
    assert_eq!((rollback.of.as_str(), rollback.to.as_str()), ("v2", "v1"));
    assert_eq!(rollback.schema, "database schema stays where v2 left it (no migration runs)");
    assert_eq!(calls(&backend, "RunTask"), run_tasks, "no migration ran");
    assert!(record.migration.is_none());
    let revision = record.deployment.as_ref().and_then(|d| d.task_definition.clone()).expect("a revision");
    let images = registered_images(&backend, &revision).await;
    assert_eq!(images, v1_pinned, "exactly v1's pinned digests, not what the v1 tag points to now");
    let status = convoy::status::render(&record);
    assert!(status.contains("rollback  of v2 to v1"), "{status}");
    assert!(status.contains("database schema stays where v2 left it"), "{status}");
    let (code, printed, _) = run(&backend, &["status", "web", key.release.as_str()]);
    assert_eq!(code, 0);
    assert!(printed.contains("rollback  of v2 to v1"), "{printed}");

    // The same S3 event again, and once more after the deployment began: nothing changes.
    invoke_manifest_uploaded(&backend.convoy, event.clone()).await.unwrap();
    assert_eq!(backend.record(&key).await.unwrap(), record, "a duplicate changes nothing");
    assert_eq!(backend.deployments(&key).await, 1, "one deployment for the rollback");
    codedeploy_goes_live(&backend, deployment.as_str()).await;
    invoke_manifest_uploaded(&backend.convoy, event).await.unwrap();
    let live = backend.record(&key).await.unwrap();
    assert_eq!(live.state, State::Succeeded, "{:#?}", live.timeline);
    assert_eq!(backend.deployments(&key).await, 1);
    assert_eq!(calls(&backend, "RunTask"), run_tasks, "still no migration");
}

/// A hand-written manifest claiming to be a rollback of `of` to `to`, with `images`.
fn forged(release: &str, of: &str, to: &str, images: &[(String, String)]) -> String {
    let images: serde_json::Map<String, Value> = images.iter().map(|(c, u)| (c.clone(), json!(u))).collect();
    json!({"version": 1, "release": release, "service": SERVICE, "images": images,
           "rollback": {"of": of, "to": to}})
    .to_string()
}

#[tokio::test]
async fn a_forged_rollback_claim_fails_at_the_manifest_stage_with_nothing_run() {
    let (mut backend, _first) = with_green(Behaviour::version("v1"), "auto").await;
    goes_live(&backend, "v1", false).await;
    let _second = green_serves(&mut backend, "v2").await;
    goes_live(&backend, "v2", true).await;
    let v1 = backend.record(&release_key("v1")).await.unwrap().pinned_uris();
    let v2 = backend.record(&release_key("v2")).await.unwrap().pinned_uris();
    let (run_tasks, deployments) = (calls(&backend, "RunTask"), calls(&backend, "CreateDeployment"));
    let cases = [
        ("f1", forged("f1", "v2", "v0", &v1), "service web has no release \"v0\""),
        ("f2", forged("f2", "v2", "v1", &v2), "are not the digests release \"v1\" pinned"),
        ("f3", forged("f3", "v1", "v2", &v2), "but release v2 is live for service web now"),
    ];
    for (release, body, why) in cases {
        let upload = backend.upload(&format!("releases/web/{release}.json"), &body).await;
        invoke_manifest_uploaded(&backend.convoy, upload).await.expect("bad input is not retried");
        let record = backend.record(&release_key(release)).await.unwrap();
        let State::Failed { stage: Stage::Manifest, reason } = &record.state else {
            panic!("{release}: {}", record.state)
        };
        assert!(reason.starts_with("rollback not confirmed by Convoy's records: "), "{reason}");
        assert!(reason.contains(why), "{release}: {reason}");
        assert!(record.rollback.is_none(), "an unconfirmed claim is no rollback");
    }
    assert_eq!(calls(&backend, "RunTask"), run_tasks, "nothing ran");
    assert_eq!(calls(&backend, "CreateDeployment"), deployments, "nothing deployed");
}

#[tokio::test]
async fn a_group_release_rolls_back_whole_each_service_once() {
    let (mut backend, _first) = shop(Behaviour::version("g1")).await;
    shop_goes_live(&backend, "g1").await;
    let _second = green_serves(&mut backend, "g2").await;
    shop_goes_live(&backend, "g2").await;
    let _third = green_serves(&mut backend, "g1").await;
    let before = changes(&backend);
    let g1_web = backend.record(&part_key("web", "g1")).await.unwrap().pinned_uris();
    let g1_worker = backend.record(&part_key("worker", "g1")).await.unwrap().pinned_uris();

    let (code, out, stderr) = rollback(&backend, &["web"]);
    assert_eq!(code, 0, "{stderr}");
    let key = key_of(&out["release"]);
    assert_eq!(key.service.as_str(), "shop", "a part rolls its whole group release back: {out}");
    let event = uploaded_event(&backend, &format!("releases/shop/{}.json", key.release)).await;
    for _ in 0..2 {
        invoke_manifest_uploaded(&backend.convoy, event.clone()).await.unwrap();
    }
    shop_deploys(&backend, key.release.as_str()).await;
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::Succeeded, "{:#?}", record.timeline);
    let rollback = record.rollback.clone().expect("a rollback");
    assert_eq!((rollback.of.as_str(), rollback.to.as_str()), ("g2", "g1"));
    let after: Vec<String> = changes(&backend).into_iter().skip(before.len()).collect();
    assert_eq!(after, ["UpdateService", "CreateDeployment"], "each service once, no migration");
    let web = backend.record(&part_key("web", key.release.as_str())).await.unwrap();
    let worker = backend.record(&part_key("worker", key.release.as_str())).await.unwrap();
    assert_eq!((web.pinned_uris(), worker.pinned_uris()), (g1_web, g1_worker), "g1's digests");
    assert!(web.rollback.is_some() && worker.rollback.is_some(), "each part says so too");
}

/// The group release `release` of shop (its migration, then the worker, then web) through to
/// `Succeeded`.
async fn shop_goes_live(backend: &MotoBackend, release: &str) {
    migrated(backend, release, json!(["worker", "web"])).await;
    shop_deploys(backend, release).await;
}

/// A group release of shop, its migration done (or none): the worker's rolling update completes,
/// then web's CodeDeploy deployment goes live.
async fn shop_deploys(backend: &MotoBackend, release: &str) {
    let arn = backend.standin.service_deployments().last().cloned().expect("the worker's service deployment");
    worker_completes(backend, &arn).await;
    let web = backend.record(&part_key("web", release)).await.expect("web's part");
    let State::Deploying { deployment } = web.state else { panic!("web deploys, not {}", web.state) };
    codedeploy_goes_live(backend, deployment.as_str()).await;
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
}

/// web's approval from now on: a person's, with the operator's rollback window (`None`: none).
fn web_settings(backend: &mut MotoBackend, window_hours: Option<u32>) {
    let web = backend.convoy.config.services.get_mut(&SERVICE.parse().unwrap()).expect("web's settings");
    web.approval = convoy::manifest::Approval::Manual;
    web.rollback.approval_window_hours = window_hours;
}

/// v1 (no migration) and v2 (a migration with its down command) live, approved by policy; then
/// web's test listener serves v1, the code a rollback to v1 runs.
pub(crate) async fn v1_then_v2(backend: &mut MotoBackend) -> Vec<Server> {
    goes_live(backend, "v1", false).await;
    let second = green_serves(backend, "v2").await;
    goes_live(backend, "v2", true).await;
    vec![second, green_serves(backend, "v1").await]
}

/// `convoy rollback web <args>` submitted and its manifest's event delivered: the rollback's key.
async fn submitted(backend: &MotoBackend, args: &[&str]) -> ReleaseKey {
    let mut all = vec!["web"];
    all.extend_from_slice(args);
    let (code, out, stderr) = rollback(backend, &all);
    assert_eq!(code, 0, "{stderr}");
    let key = key_of(&out["release"]);
    let event = uploaded_event(backend, &format!("releases/web/{}.json", key.release)).await;
    invoke_manifest_uploaded(&backend.convoy, event).await.unwrap();
    key
}

#[tokio::test]
async fn a_rollback_inside_the_operators_window_is_approved_by_policy_and_without_one_waits_for_a_person() {
    let (mut backend, _first) = with_green(Behaviour::version("v1"), "auto").await;
    let _servers = v1_then_v2(&mut backend).await;
    web_settings(&mut backend, Some(1));
    let key = submitted(&backend, &[]).await;
    let State::Deploying { deployment } = backend.record(&key).await.unwrap().state else { panic!("not deploying") };
    backend.codedeploy_hook(deployment.as_str(), "exec-1").await;
    let record = backend.record(&key).await.unwrap();
    assert!(matches!(record.state, State::ShiftingTraffic { .. }), "policy approved: {}", record.state);
    assert_eq!(record.approval.as_ref().map(|a| a.by.as_str()), Some("policy (rollback window)"));
    let approved = record.timeline.iter().find(|e| e.event == "approved").expect("an approval entry");
    assert!(
        approved.detail.contains("within the operator's 1 h rollback window (v2 went live at"),
        "{}",
        approved.detail
    );
    backend.standin.waits(deployment.as_str());
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    backend.standin.finish(deployment.as_str());
    backend.codedeploy_reports(deployment.as_str(), "SUCCESS").await;
    assert_eq!(backend.record(&key).await.unwrap().state, State::Succeeded);

    // Without the window the next rollback (of that rollback, back to v2) waits for a person.
    web_settings(&mut backend, None);
    let _v2 = green_serves(&mut backend, "v2").await;
    let again = submitted(&backend, &[]).await;
    let rollback = backend.record(&again).await.unwrap().rollback.expect("a rollback");
    assert_eq!((rollback.of.as_str(), rollback.to.as_str()), (key.release.as_str(), "v2"));
    let State::Deploying { deployment } = backend.record(&again).await.unwrap().state else { panic!("not deploying") };
    backend.codedeploy_hook(deployment.as_str(), "exec-1").await;
    let record = backend.record(&again).await.unwrap();
    assert!(matches!(record.state, State::AwaitingApproval { .. }), "a person approves: {}", record.state);
    assert!(record.approval.is_none());
}

#[tokio::test]
async fn migrate_down_runs_v2s_recorded_down_command_once_from_v2s_image_before_v1_deploys() {
    let (mut backend, _first) = with_green(Behaviour::version("v1"), "auto").await;
    let _servers = v1_then_v2(&mut backend).await;
    let v2_app = backend.record(&release_key("v2")).await.unwrap().pinned_uris().into_iter().find(|(c, _)| c == "app");
    let run_tasks = calls(&backend, "RunTask");
    let key = submitted(&backend, &["--migrate-down"]).await;

    let record = backend.record(&key).await.unwrap();
    let State::Migrating { task } = record.state.clone() else { panic!("migrating down, not {}", record.state) };
    let down = record.rollback.as_ref().and_then(|r| r.down.clone()).expect("v2's down migration");
    assert_eq!(down.command, DOWN);
    assert!(record.rollback.as_ref().unwrap().schema.starts_with("database schema migrated down by v2's down command"));
    assert_eq!(calls(&backend, "RunTask"), run_tasks + 1, "one RunTask: the down migration");
    let ecs = backend.ecs_client();
    let described = ecs.describe_tasks().cluster(&backend.ecs.cluster).tasks(task.as_str()).send().await.unwrap();
    let found = &described.tasks()[0];
    let overrides = found.overrides().unwrap().container_overrides();
    assert_eq!((overrides[0].name(), overrides[0].command()), (Some("app"), &DOWN.map(String::from)[..]));
    let images = registered_images(&backend, found.task_definition_arn().unwrap()).await;
    let app = images.into_iter().find(|(c, _)| c == "app");
    assert_eq!(app, v2_app, "v2's image knows how to undo v2's migration");

    // The down migration ends; v1's digests deploy, and nothing runs again.
    let stopped = crate::migration::stopped(
        &backend,
        key.release.as_str(),
        task.as_str(),
        Some(0),
        "EssentialContainerExited",
        4,
    );
    for _ in 0..2 {
        crate::migration::invoke_migration_stopped(&backend, stopped.clone()).await.unwrap();
    }
    let record = backend.record(&key).await.unwrap();
    assert!(matches!(record.state, State::Deploying { .. }), "{}", record.state);
    assert_eq!(calls(&backend, "RunTask"), run_tasks + 1);
}

#[tokio::test]
async fn migrate_down_of_a_release_that_recorded_no_down_command_fails_at_the_manifest_with_nothing_run() {
    let (mut backend, _first) = with_green(Behaviour::version("v1"), "auto").await;
    goes_live(&backend, "v1", false).await;
    let _second = green_serves(&mut backend, "v2").await;
    goes_live(&backend, "v2", false).await;
    let run_tasks = calls(&backend, "RunTask");
    let key = submitted(&backend, &["--migrate-down"]).await;
    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Manifest, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("release \"v2\" ran no migration of its own"), "{reason}");
    assert_eq!(calls(&backend, "RunTask"), run_tasks, "nothing ran");
}

/// Group release g1 of shop live, then g2, whose migration (from web's `app` container) records
/// its down command; then web's test listener serves g1, the code a rollback to g1 runs.
async fn g1_then_g2_with_a_down_command(backend: &mut MotoBackend) -> Vec<Server> {
    shop_goes_live(backend, "g1").await;
    let second = green_serves(backend, "g2").await;
    let mut manifest = manifest_v2(backend, "g2", json!(["worker", "web"]));
    manifest["migration"]["down"] = json!(DOWN);
    migrated_with(backend, "g2", &manifest).await;
    shop_deploys(backend, "g2").await;
    let g2 = backend.record(&group_key("shop", "g2")).await.unwrap();
    assert_eq!(g2.state, State::Succeeded, "{:#?}", g2.timeline);
    vec![second, green_serves(backend, "g1").await]
}

/// `convoy rollback web --migrate-down` submitted (web is a part of g2: the whole group release
/// rolls back) and its manifest's event delivered twice: the rollback's key, migrating down.
async fn group_migrates_down(backend: &MotoBackend) -> (ReleaseKey, String) {
    let (code, out, stderr) = rollback(backend, &["web", "--migrate-down"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(out["migrate_down"], json!(true), "{out}");
    let key = key_of(&out["release"]);
    assert_eq!(key.service.as_str(), "shop", "{out}");
    let event = uploaded_event(backend, &format!("releases/shop/{}.json", key.release)).await;
    for _ in 0..2 {
        invoke_manifest_uploaded(&backend.convoy, event.clone()).await.unwrap();
    }
    let record = backend.record(&key).await.unwrap();
    let State::Migrating { task } = record.state else { panic!("migrating down, not {:#?}", record.timeline) };
    (key, task.to_string())
}

/// The task definition each of shop's services runs, by ECS.
async fn services_run(backend: &MotoBackend) -> Vec<Option<String>> {
    let ecs = backend.ecs_client();
    let described = ecs.describe_services().cluster(&backend.ecs.cluster).services("web").services("worker");
    let described = described.send().await.unwrap();
    described.services().iter().map(|s| s.task_definition().map(ToOwned::to_owned)).collect()
}

#[tokio::test]
async fn migrate_down_of_a_group_release_runs_g2s_down_command_once_from_g2s_image_then_returns_each_service_once() {
    let (mut backend, _first) = shop(Behaviour::version("g1")).await;
    let _servers = g1_then_g2_with_a_down_command(&mut backend).await;
    let g2_app =
        backend.record(&part_key("web", "g2")).await.unwrap().pinned_uris().into_iter().find(|(c, _)| c == "app");
    let g1_web = backend.record(&part_key("web", "g1")).await.unwrap().pinned_uris();
    let g1_worker = backend.record(&part_key("worker", "g1")).await.unwrap().pinned_uris();
    let before = changes(&backend);
    let (key, task) = group_migrates_down(&backend).await;

    let record = backend.record(&key).await.unwrap();
    let rollback = record.rollback.clone().expect("a rollback");
    assert_eq!((rollback.of.as_str(), rollback.to.as_str()), ("g2", "g1"));
    let down = rollback.down.clone().expect("g2's down migration");
    assert_eq!(
        (down.service.as_ref().map(|s| s.as_str()), &down.command[..]),
        (Some("web"), &DOWN.map(String::from)[..])
    );
    assert!(rollback.schema.starts_with("database schema migrated down by g2's down command"), "{}", rollback.schema);
    let after: Vec<String> = changes(&backend).into_iter().skip(before.len()).collect();
    assert_eq!(after, ["RunTask"], "the down migration first, and nothing else yet");
    let ecs = backend.ecs_client();
    let described = ecs.describe_tasks().cluster(&backend.ecs.cluster).tasks(&task).send().await.unwrap();
    let found = &described.tasks()[0];
    let overrides = found.overrides().unwrap().container_overrides();
    assert_eq!((overrides[0].name(), overrides[0].command()), (Some("app"), &DOWN.map(String::from)[..]));
    let definition = found.task_definition_arn().unwrap();
    let images = registered_images(&backend, definition).await;
    assert_eq!(images.into_iter().find(|(c, _)| c == "app"), g2_app, "g2's pinned image undoes g2's migration");
    let containers: Vec<String> = registered_images(&backend, definition).await.into_iter().map(|(c, _)| c).collect();
    assert_eq!(containers, ["app", "nginx"], "derived from web's task definition, as g2's migration was");

    // It exits 0 (its STOPPED event twice); then each service returns to g1, once.
    let stopped = backend.migration_exited_0(&key, &task);
    for _ in 0..2 {
        crate::deploy::invoke(&backend.convoy, "migration-stopped", stopped.clone()).await;
    }
    shop_deploys(&backend, key.release.as_str()).await;
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::Succeeded, "{:#?}", record.timeline);
    let migration = record.migration.as_ref().expect("the down migration's evidence");
    assert_eq!((migration.task.as_ref().map(|t| t.as_str()), migration.exit_code), (Some(task.as_str()), Some(0)));
    let after: Vec<String> = changes(&backend).into_iter().skip(before.len()).collect();
    assert_eq!(after, ["RunTask", "UpdateService", "CreateDeployment"], "one down migration, each service once");
    let web = backend.record(&part_key("web", key.release.as_str())).await.unwrap();
    let worker = backend.record(&part_key("worker", key.release.as_str())).await.unwrap();
    assert_eq!((web.pinned_uris(), worker.pinned_uris()), (g1_web, g1_worker), "g1's digests");
    let (code, printed, _) = run(&backend, &["status", "shop", key.release.as_str()]);
    assert_eq!(code, 0);
    assert!(printed.contains("schema    database schema migrated down by g2's down command"), "{printed}");
}

#[tokio::test]
async fn a_failing_down_migration_of_a_group_rollback_leaves_every_service_untouched() {
    let (mut backend, _first) = shop(Behaviour::version("g1")).await;
    let _servers = g1_then_g2_with_a_down_command(&mut backend).await;
    let (before, running) = (changes(&backend), services_run(&backend).await);
    let (key, task) = group_migrates_down(&backend).await;

    let stopped = backend.migration_exited(&key, &task, 1);
    for _ in 0..2 {
        crate::deploy::invoke(&backend.convoy, "migration-stopped", stopped.clone()).await;
    }
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Migration, .. } = &record.state else { panic!("{:#?}", record.timeline) };
    assert_eq!(record.migration.as_ref().and_then(|m| m.exit_code), Some(1), "the evidence is kept");
    assert!(
        record.services.iter().all(|s| s.state == convoy::release::SectionState::Waiting),
        "{:#?}",
        record.services
    );
    let after: Vec<String> = changes(&backend).into_iter().skip(before.len()).collect();
    assert_eq!(after, ["RunTask"], "the down migration only: no service deployed");
    assert_eq!(services_run(&backend).await, running, "each service runs what g2 left it");
    for service in ["web", "worker"] {
        assert!(
            backend.record(&part_key(service, key.release.as_str())).await.is_none(),
            "no part of {service} opened"
        );
    }
}
