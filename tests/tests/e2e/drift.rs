//! Drift, end to end on moto through the real handlers: release `r1` of the rolling service `web`
//! goes live; then someone registers a revision by hand (an environment variable added to `app`)
//! and runs `UpdateService` with it, outside Convoy (through the stand-in, which keeps ECS's
//! `PRIMARY` deployment as ECS would: moto keeps its first one for ever). The next release's
//! record reports the drift at the manifest stage, before its migration, and the service's `drift`
//! setting decides: `refuse` fails it with no task run and the service untouched, `adopt` derives
//! the migration and the revision from the live definition (the variable kept), `warn` from r1's
//! (the variable gone).

use std::sync::Arc;

use aws_sdk_ecs::types::{DeploymentControllerType, KeyValuePair};
use convoy::adapters::aws::EcsDeployments;
use convoy::drift::DriftAction;
use convoy::release::{Release, Stage, State};
use convoy_tests::moto::Moto;
use convoy_tests::standin::StandIn;
use convoy_tests::world::World;
use serde_json::json;

use crate::deploy::{containers, invoke};
use crate::rolling::{live, rolling_configuration};
use crate::scenario::*;

/// The variable the out-of-band revision adds to `app`.
const CHANGED: &str = "CHANGED_OUTSIDE_CONVOY";

/// A world whose rolling service `web` has `"drift": <setting>`.
async fn drift_backend(setting: &str) -> MotoBackend {
    let world = World::new().await;
    world.create_repositories(&["app", "nginx"]).await;
    let ecs = world.ecs_service_controlled(SERVICE, &["app", "nginx"], DeploymentControllerType::Ecs).await;
    let settings = json!({SERVICE: {"deploy": {"method": "ecs-rolling"}, "approval": "auto", "drift": setting}});
    let mut convoy = world.convoy_with(&[SERVICE], &["app", "nginx"], &settings.to_string());
    let standin = StandIn::for_missing_operations(&Moto::shared().endpoint).await;
    standin.rolling_service(SERVICE, rolling_configuration());
    let via_standin = convoy_tests::moto::sdk_config_for(&standin.endpoint).await;
    convoy.service_deployments = Arc::new(EcsDeployments::new(aws_sdk_ecs::Client::new(&via_standin)));
    // The drift check reads the service as ECS shows it: through the stand-in too.
    convoy.tasks = Arc::new(convoy::adapters::aws::EcsTasks::new(aws_sdk_ecs::Client::new(&via_standin)));
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

/// ECS through the stand-in: what an operator's `aws ecs ...` reaches.
async fn operator_ecs(backend: &MotoBackend) -> aws_sdk_ecs::Client {
    aws_sdk_ecs::Client::new(&convoy_tests::moto::sdk_config_for(&backend.standin.endpoint).await)
}

/// Someone registers `from` again with [`CHANGED`] set in `app` and updates the service to it,
/// outside Convoy. Returns the new revision's ARN.
async fn update_service_by_hand(backend: &MotoBackend, from: &str) -> String {
    let ecs = operator_ecs(backend).await;
    let described = ecs.describe_task_definition().task_definition(from).send().await.unwrap();
    let base = described.task_definition().unwrap().clone();
    let mut definitions = base.container_definitions().to_vec();
    for definition in &mut definitions {
        if definition.name() == Some("app") {
            let variable = KeyValuePair::builder().name(CHANGED).value("1").build();
            definition.environment.get_or_insert_with(Vec::new).push(variable);
        }
    }
    let registered = ecs
        .register_task_definition()
        .family(base.family().unwrap())
        .set_container_definitions(Some(definitions))
        .set_cpu(base.cpu().map(str::to_owned))
        .set_memory(base.memory().map(str::to_owned))
        .set_network_mode(base.network_mode().cloned())
        .set_requires_compatibilities(Some(base.requires_compatibilities().to_vec()))
        .set_execution_role_arn(base.execution_role_arn().map(str::to_owned))
        .send()
        .await
        .unwrap();
    let revision = registered.task_definition().unwrap().task_definition_arn().unwrap().to_owned();
    ecs.update_service()
        .cluster(&backend.ecs.cluster)
        .service(SERVICE)
        .task_definition(&revision)
        .send()
        .await
        .unwrap();
    revision
}

/// Whether task definition `arn`'s `app` container sets [`CHANGED`].
async fn keeps_the_change(backend: &MotoBackend, arn: &str) -> bool {
    let described = backend.ecs_client().describe_task_definition().task_definition(arn).send().await.unwrap();
    let definition = described.task_definition().unwrap();
    let app = definition.container_definitions().iter().find(|c| c.name() == Some("app")).expect("an app container");
    app.environment().iter().any(|v| v.name() == Some(CHANGED))
}

/// The task definition moto's service runs now.
async fn service_runs(backend: &MotoBackend) -> String {
    let described = backend.ecs_client().describe_services().cluster(&backend.ecs.cluster).services(SERVICE);
    described.send().await.unwrap().services()[0].task_definition().unwrap().to_owned()
}

/// `r1` went live, then the service was updated by hand: returns r1's revision and the live one.
async fn drifted(backend: &MotoBackend) -> (String, String) {
    live(backend, "r1").await;
    let r1 = backend.record(&release_key("r1")).await.unwrap();
    assert!(r1.drift.iter().all(|c| !c.drifted && c.deployed.is_none()), "nothing to compare with before r1");
    let ours = r1.deployment.unwrap().task_definition.unwrap();
    let theirs = update_service_by_hand(backend, &ours).await;
    assert_eq!(service_runs(backend).await, theirs);
    (ours, theirs)
}

/// Release `r2`, with a migration, submitted: its images pushed, its manifest uploaded.
async fn submit_r2(backend: &MotoBackend) -> Release {
    backend.push("app", "r2").await;
    backend.push("nginx", "r2").await;
    let manifest = manifest_v1(backend, "r2", &containers(), true);
    let upload = backend.upload("releases/web/r2.json", &manifest).await;
    invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    backend.record(&release_key("r2")).await.unwrap()
}

/// The record's drift check of `web` names both revisions, r1, when ECS started the live one,
/// and `action`; the timeline has its `drift` entry.
fn reports_drift(record: &Release, ours: &str, theirs: &str, action: DriftAction) {
    let [check] = record.drift.as_slice() else { panic!("one check per service: {:?}", record.drift) };
    assert!(check.drifted, "{check:?}");
    assert_eq!((check.live.as_str(), check.action), (theirs, action));
    let deployed = check.deployed.as_ref().expect("r1 deployed");
    assert_eq!((deployed.release.as_str(), deployed.task_definition.as_str()), ("r1", ours));
    let since = check.live_since.expect("when ECS started the live revision");
    assert!(since <= check.checked_at && check.checked_at - since < chrono::Duration::minutes(5), "{check:?}");
    let entry = record.timeline.iter().find(|e| e.event == "drift").expect("a drift entry");
    assert!(entry.detail.contains("changed outside Convoy"), "{}", entry.detail);
}

/// The migration's STOPPED event, exit 0, delivered once: r2 deploys.
async fn migration_succeeds(backend: &MotoBackend) -> Release {
    let key = release_key("r2");
    let State::Migrating { task } = backend.record(&key).await.unwrap().state else { panic!("not migrating") };
    let stopped = backend.migration_exited_0(&key, task.as_str());
    invoke(&backend.convoy, "migration-stopped", stopped).await;
    let record = backend.record(&key).await.unwrap();
    assert!(matches!(record.state, State::Deploying { .. }), "{}", record.state);
    record
}

#[tokio::test]
async fn with_refuse_an_update_service_made_outside_convoy_fails_the_next_release_before_anything_runs() {
    let backend = drift_backend("refuse").await;
    let (ours, theirs) = drifted(&backend).await;
    let updates = backend.standin.service_updates().len();
    let record = submit_r2(&backend).await;
    reports_drift(&record, &ours, &theirs, DriftAction::Refused);
    let State::Failed { stage: Stage::Manifest, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("drift") && reason.contains("refuse"), "{reason}");
    assert!(record.migration.is_none() && record.deployment.is_none());
    assert_eq!(backend.migration_tasks(&release_key("r2")).await, 0, "no RunTask");
    assert_eq!(backend.standin.service_updates().len(), updates, "no UpdateService");
    assert_eq!(service_runs(&backend).await, theirs, "the service is untouched");

    // `convoy status` shows it: both revisions, r1, the action.
    let (code, stdout, stderr) = crate::cli::run(&backend, &["status", SERVICE, "r2"]);
    assert_eq!(code, 1, "a failed release: {stdout}{stderr}");
    let drift: Vec<&str> = stdout.lines().skip_while(|l| *l != "drift").collect();
    let drift = drift.join("\n");
    assert!(drift.contains("web  changed outside Convoy (action: refused)"), "{stdout}");
    assert!(drift.contains(&format!("live         {theirs}, ECS started it ")), "{stdout}");
    assert!(drift.contains(&format!("convoy's     {ours} (release r1)")), "{stdout}");
}

#[tokio::test]
async fn with_adopt_the_next_release_derives_its_migration_and_revision_from_the_live_definition() {
    let backend = drift_backend("adopt").await;
    let (ours, theirs) = drifted(&backend).await;
    let record = submit_r2(&backend).await;
    reports_drift(&record, &ours, &theirs, DriftAction::Adopted);
    assert_eq!(record.drift[0].base, theirs);
    let migration = record.migration.as_ref().and_then(|m| m.task_definition.clone()).expect("the migration runs");
    assert!(keeps_the_change(&backend, &migration).await, "the migration keeps the change");
    let record = migration_succeeds(&backend).await;
    let revision = record.deployment.unwrap().task_definition.unwrap();
    assert!(keeps_the_change(&backend, &revision).await, "the release's revision keeps the change");
    assert_eq!(service_runs(&backend).await, revision);
}

#[tokio::test]
async fn with_warn_the_next_release_derives_from_convoys_revision_and_says_the_change_is_replaced() {
    let backend = drift_backend("warn").await;
    let (ours, theirs) = drifted(&backend).await;
    let record = submit_r2(&backend).await;
    reports_drift(&record, &ours, &theirs, DriftAction::Warned);
    assert_eq!(record.drift[0].base, ours);
    assert!(record.drift[0].summary().contains("replaces the change"), "{}", record.drift[0].summary());
    let migration = record.migration.as_ref().and_then(|m| m.task_definition.clone()).expect("the migration runs");
    assert!(!keeps_the_change(&backend, &migration).await, "the migration derives from r1's revision");
    let record = migration_succeeds(&backend).await;
    let revision = record.deployment.unwrap().task_definition.unwrap();
    assert!(!keeps_the_change(&backend, &revision).await, "the change made outside Convoy is replaced");
    assert_eq!(service_runs(&backend).await, revision);
}

#[tokio::test]
async fn a_service_still_running_convoys_revision_has_no_drift_and_the_record_says_so() {
    let backend = drift_backend("refuse").await;
    live(&backend, "r1").await;
    let ours = backend.record(&release_key("r1")).await.unwrap().deployment.unwrap().task_definition.unwrap();
    let record = submit_r2(&backend).await;
    let [check] = record.drift.as_slice() else { panic!("{:?}", record.drift) };
    assert_eq!((check.drifted, check.action, check.live.as_str()), (false, DriftAction::None, ours.as_str()));
    assert_eq!(check.deployed.as_ref().map(|d| d.release.as_str()), Some("r1"));
    assert!(matches!(record.state, State::Migrating { .. }), "{}", record.state);
    assert!(!record.timeline.iter().any(|e| e.event == "drift"));
}

/// A CodeDeploy blue/green release of `web` goes live: verified, approved by a person, ended.
async fn blue_green_goes_live(backend: &MotoBackend, release: &str) -> Release {
    let deployment = crate::deploy::deploying(backend, release, json!({})).await;
    backend.codedeploy_hook(&deployment, "exec-1").await;
    backend.standin.waits(&deployment);
    let (_, as_ana) = backend.person("ana").await;
    as_ana.decide(&release_key(release), true).await.unwrap();
    backend.cloudtrail_delivers_last_call().await;
    backend.standin.finish(&deployment);
    backend.codedeploy_reports(&deployment, "SUCCESS").await;
    let record = backend.record(&release_key(release)).await.unwrap();
    assert_eq!(record.state, State::Succeeded, "{:#?}", record.timeline);
    record
}

#[tokio::test]
async fn after_a_blue_green_release_ecs_serves_its_revision_so_the_next_one_finds_no_drift_and_live_is_confirmed() {
    let (backend, _green) = crate::deploy::with_green(convoy_tests::http::Behaviour::version("b1"), "manual").await;
    let first = blue_green_goes_live(&backend, "b1").await;
    let revision = first.deployment.as_ref().and_then(|d| d.task_definition.clone()).expect("b1's revision");
    // CodeDeploy's replacement task set is PRIMARY now (the stand-in keeps the task sets moto lacks).
    let shape = backend.convoy.tasks.service_shape(&backend.ecs.cluster, "web").await.unwrap();
    assert_eq!(shape.task_definition, revision, "ECS serves web from b1's task set");
    let live = convoy::history::live(
        backend.convoy.records.as_ref(),
        backend.convoy.store.as_ref(),
        backend.convoy.tasks.as_ref(),
        &backend.ecs.cluster,
        &"web".parse().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(live.check, convoy::history::LiveCheck::Confirmed);

    // The next release's check, at its manifest stage (its deployment starts after it).
    crate::deploy::deploying(&backend, "b2", json!({})).await;
    let second = backend.record(&release_key("b2")).await.unwrap();
    let [check] = second.drift.as_slice() else { panic!("one check: {:?}", second.drift) };
    assert!(!check.drifted, "{}", check.summary());
    assert_eq!((check.live.as_str(), check.base.as_str()), (revision.as_str(), revision.as_str()));
}
