//! The migration gate on moto: one task per release, derived from the service, evidence kept.

use std::sync::Arc;

use async_trait::async_trait;
use convoy::error::TasksError;
use convoy::names::TaskArn;
use convoy::ports::{MigrationTaskSpec, RegisteredTaskDefinition, RunTaskRequest, ServiceShape, Tasks};
use convoy::release::{Stage, State, TaskReport};
use convoy_tests::fixtures::{self, ContainerExit, TaskStopped};
use serde_json::{Value, json};

use crate::scenario::*;

fn containers() -> Vec<String> {
    vec!["app".into(), "nginx".into()]
}

/// ECS stops the task as the STOPPED event `payload` says (the stand-in's `DescribeTasks` then
/// describes it so, as ECS does before it sends the event), and delivers the event.
pub async fn invoke_migration_stopped(
    backend: &MotoBackend,
    payload: Value,
) -> Result<Value, lambda_runtime::Diagnostic> {
    backend.standin.task_stops(&payload);
    let event = lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default());
    convoy::handlers::migration_stopped(&backend.convoy, event).await
}

/// A release whose images are in ECR and whose manifest was just uploaded: it is migrating.
pub async fn migrating(release: &str) -> (MotoBackend, String) {
    let backend = MotoBackend::new(&containers()).await;
    backend.push("app", release).await;
    backend.push("nginx", release).await;
    let manifest = manifest_v1(&backend, release, &containers(), true);
    invoke_manifest_uploaded(&backend.convoy, backend.upload(&format!("releases/web/{release}.json"), &manifest).await)
        .await
        .unwrap();
    let record = backend.record(&release_key(release)).await.unwrap();
    let State::Migrating { task } = record.state else { panic!("expected Migrating, got {}", record.state) };
    (backend, task.to_string())
}

/// The STOPPED event of a release's migration task in the backend's cluster, listing `containers`
/// (every container of the task definition, in the order given).
fn stopped_with(
    backend: &MotoBackend,
    release: &str,
    task: &str,
    containers: &[ContainerExit<'_>],
    stop_code: &str,
    version: u64,
) -> Value {
    let key = release_key(release);
    fixtures::ecs_task_stopped(&TaskStopped {
        cluster: &backend.ecs.cluster,
        task,
        group: &key.tag(),
        started_by: &key.migration_started_by(),
        task_definition: &fixtures::migration_task_definition("web"),
        overridden: "app",
        containers,
        stop_code,
        version,
    })
}

/// The same, as ECS reports an essential `app` that exited with `exit_code` (`None`: never
/// started): the migration container first, then nginx, stopped by ECS once `app` exited.
pub fn stopped(
    backend: &MotoBackend,
    release: &str,
    task: &str,
    exit_code: Option<i32>,
    stop_code: &str,
    version: u64,
) -> Value {
    let containers = match exit_code {
        None => [ContainerExit::never_started("app"), ContainerExit::never_started("nginx")],
        Some(0) => [ContainerExit::exited("app", 0), ContainerExit::exited("nginx", 0)],
        Some(code) => [
            ContainerExit::exited("app", code).because("SQLSTATE[42S01]: Base table or view already exists"),
            ContainerExit::exited("nginx", 0),
        ],
    };
    stopped_with(backend, release, task, &containers, stop_code, version)
}

#[tokio::test]
async fn the_migration_task_is_derived_from_the_service_with_pinned_images() {
    let (backend, task) = migrating("m1").await;
    let ecs = backend.ecs_client();
    let described = ecs.describe_tasks().cluster(&backend.ecs.cluster).tasks(&task).send().await.unwrap();
    let found = &described.tasks()[0];
    assert_eq!(found.group(), Some(release_key("m1").tag().as_str()));
    assert_eq!(found.started_by(), Some(release_key("m1").migration_started_by().as_str()));
    let overrides = found.overrides().unwrap().container_overrides();
    assert_eq!(overrides[0].name(), Some("app"));
    assert_eq!(overrides[0].command(), ["./migrate"]);

    let definition = found.task_definition_arn().unwrap();
    let described = ecs.describe_task_definition().task_definition(definition).send().await.unwrap();
    let definition = described.task_definition().unwrap();
    assert_eq!(definition.family(), Some(format!("web-{}-convoy-migration", backend.world.id).as_str()));
    assert_eq!(definition.task_role_arn(), Some("arn:aws:iam::123456789012:role/web-task"));
    let record = backend.record(&release_key("m1")).await.unwrap();
    for container in definition.container_definitions() {
        let name = container.name().unwrap();
        let pinned = record.images[&name.parse().unwrap()].digest.as_ref().unwrap();
        assert!(container.image().unwrap().ends_with(&format!("@{pinned}")), "{name}: {:?}", container.image());
        assert_eq!(container.environment()[0].name(), Some("DB_HOST"), "{name}: env from the service");
        assert_eq!(container.secrets()[0].name(), "DB_PASSWORD", "{name}: secrets from the service");
        assert_eq!(container.essential(), Some(name == "app"));
    }
    let run = record.migration.unwrap();
    let task_id = task.rsplit('/').next().unwrap();
    assert_eq!(run.log.unwrap().stream, format!("ecs/app/{task_id}"), "the log pointer follows awslogs naming");
}

/// The template grants RunTask and StopTask only on resources tagged `convoy:migration`; moto keeps
/// the tags RegisterTaskDefinition and RunTask send, and ListTagsForResource reads them back.
#[tokio::test]
async fn the_migration_task_and_its_definition_carry_the_migration_tag_the_grants_require() {
    let (backend, task) = migrating("m1t").await;
    let ecs = backend.ecs_client();
    let tags_of = |arn: String| {
        let ecs = ecs.clone();
        async move {
            let listed = ecs.list_tags_for_resource().resource_arn(&arn).send().await.unwrap();
            listed
                .tags()
                .iter()
                .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
                .collect::<Vec<_>>()
        }
    };
    let migration_tag = (convoy::taskdef::MIGRATION_TAG.0.to_owned(), convoy::taskdef::MIGRATION_TAG.1.to_owned());

    let task_tags = tags_of(task.clone()).await;
    assert!(task_tags.contains(&migration_tag), "the task's tags: {task_tags:?}");

    let described = ecs.describe_tasks().cluster(&backend.ecs.cluster).tasks(&task).send().await.unwrap();
    let definition = described.tasks()[0].task_definition_arn().unwrap().to_owned();
    let definition_tags = tags_of(definition).await;
    assert!(definition_tags.contains(&migration_tag), "the definition's tags: {definition_tags:?}");

    // The service's own task definition is not a migration's: the grants do not reach it.
    let service = ecs.describe_services().cluster(&backend.ecs.cluster).services(&backend.ecs.service).send().await;
    let service_definition = service.unwrap().services()[0].task_definition().unwrap().to_owned();
    assert!(!tags_of(service_definition).await.contains(&migration_tag));
}

#[tokio::test]
async fn exit_0_moves_the_release_on_to_deployment() {
    let (backend, task) = migrating("m2").await;
    let response =
        invoke_migration_stopped(&backend, stopped(&backend, "m2", &task, Some(0), "EssentialContainerExited", 4))
            .await
            .unwrap();
    assert_eq!(response["requested"], json!([{"effect": "start-deployment"}]));
    let record = backend.record(&release_key("m2")).await.unwrap();
    assert!(matches!(record.state, State::Deploying { .. }), "{}", record.state);
    assert_eq!(record.migration.unwrap().exit_code, Some(0));
}

#[tokio::test]
async fn exit_1_fails_the_release_and_keeps_the_evidence() {
    let (backend, task) = migrating("m3").await;
    invoke_migration_stopped(&backend, stopped(&backend, "m3", &task, Some(1), "EssentialContainerExited", 4))
        .await
        .unwrap();
    let record = backend.record(&release_key("m3")).await.unwrap();
    let State::Failed { stage: Stage::Migration, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("exited with code 1"), "{reason}");
    assert!(reason.contains("Base table or view already exists"), "{reason}");
    let run = record.migration.as_ref().unwrap();
    assert_eq!(run.exit_code, Some(1));
    assert_eq!(run.stop_code.as_deref(), Some("EssentialContainerExited"));
    assert_eq!(run.stopped_reason.as_deref(), Some("Essential container in task exited"));
    assert!(run.log.as_ref().unwrap().group.starts_with("/ecs/web"));
    let text = convoy::status::render(&record);
    assert!(text.contains("exit code       1") && text.contains("logs            /ecs/web"), "{text}");
}

/// ECS lists every container of the task, nginx too: the release's outcome and exit code are
/// the migration container's, found by name, wherever it stands in the list and whatever the
/// others' exit codes (0, or 137 when ECS killed nginx after the essential container exited).
#[tokio::test]
async fn a_failed_migration_container_fails_the_release_whatever_nginx_did_and_wherever_it_is_listed() {
    for (release, nginx_exit, nginx_first) in [("m12", 0, true), ("m13", 137, true), ("m14", 137, false)] {
        let (backend, task) = migrating(release).await;
        let app = ContainerExit::exited("app", 1).because("SQLSTATE[42S01]: Base table or view already exists");
        let nginx = ContainerExit::exited("nginx", nginx_exit);
        let containers = if nginx_first { [nginx, app] } else { [app, nginx] };
        let event = stopped_with(&backend, release, &task, &containers, "EssentialContainerExited", 4);
        assert_eq!(event["detail"]["containers"].as_array().unwrap().len(), 2);
        invoke_migration_stopped(&backend, event).await.unwrap();
        let record = backend.record(&release_key(release)).await.unwrap();
        let State::Failed { stage: Stage::Migration, reason } = &record.state else {
            panic!("{release}: {}", record.state)
        };
        assert!(reason.contains("exited with code 1"), "{release}: {reason}");
        let run = record.migration.as_ref().unwrap();
        assert_eq!(run.exit_code, Some(1), "{release}: nginx exited {nginx_exit}");
        assert_eq!(run.container_reason.as_deref(), Some("SQLSTATE[42S01]: Base table or view already exists"));
        assert_eq!(backend.deployments(&release_key(release)).await, 0, "{release}: no deployment");
    }
}

/// The reverse: nginx (listed first) exited 1 and the migration container 0. The migration
/// passed, so the release deploys, and its record keeps the migration container's exit code.
#[tokio::test]
async fn a_passed_migration_moves_on_even_when_nginx_exited_non_zero() {
    let (backend, task) = migrating("m15").await;
    let containers = [ContainerExit::exited("nginx", 1), ContainerExit::exited("app", 0)];
    let event = stopped_with(&backend, "m15", &task, &containers, "EssentialContainerExited", 4);
    invoke_migration_stopped(&backend, event).await.unwrap();
    let record = backend.record(&release_key("m15")).await.unwrap();
    assert!(matches!(record.state, State::Deploying { .. }), "{}", record.state);
    let run = record.migration.as_ref().unwrap();
    assert_eq!(run.exit_code, Some(0));
    assert_eq!(run.container_reason, None);
    assert_eq!(backend.deployments(&release_key("m15")).await, 1);
}

#[tokio::test]
async fn a_task_that_failed_to_start_fails_the_release() {
    let (backend, task) = migrating("m4").await;
    invoke_migration_stopped(&backend, stopped(&backend, "m4", &task, None, "TaskFailedToStart", 3)).await.unwrap();
    let record = backend.record(&release_key("m4")).await.unwrap();
    let State::Failed { reason, .. } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("never started") && reason.contains("CannotPullContainerError"), "{reason}");
}

#[tokio::test]
async fn duplicate_and_older_events_change_nothing() {
    let (backend, task) = migrating("m5").await;
    // This time ECS lists nginx first.
    let containers = [ContainerExit::exited("nginx", 137), ContainerExit::exited("app", 1)];
    let failed = stopped_with(&backend, "m5", &task, &containers, "EssentialContainerExited", 5);
    invoke_migration_stopped(&backend, failed.clone()).await.unwrap();
    let after_first = backend.record(&release_key("m5")).await.unwrap();
    let duplicate = invoke_migration_stopped(&backend, failed).await.unwrap();
    assert_eq!(duplicate["changed"], json!(false));
    let older =
        invoke_migration_stopped(&backend, stopped(&backend, "m5", &task, Some(0), "EssentialContainerExited", 4))
            .await
            .unwrap();
    assert_eq!(older["changed"], json!(false));
    assert_eq!(backend.record(&release_key("m5")).await.unwrap(), after_first);
}

#[tokio::test]
async fn an_event_for_a_foreign_task_is_ignored() {
    let (backend, task) = migrating("m6").await;
    let before = backend.record(&release_key("m6")).await.unwrap();
    // Another team's task: not in a Convoy group.
    let foreign = fixtures::foreign_task_stopped();
    let response = invoke_migration_stopped(&backend, foreign).await.unwrap();
    assert!(response["ignored"].as_str().unwrap().contains("not a Convoy migration"));
    // A task in this release's group that is not its migration task.
    let other = stopped(&backend, "m6", &format!("{task}-other"), Some(1), "EssentialContainerExited", 9);
    assert_eq!(invoke_migration_stopped(&backend, other).await.unwrap()["changed"], json!(false));
    assert_eq!(backend.record(&release_key("m6")).await.unwrap(), before);
}

#[tokio::test]
async fn a_migration_past_its_timeout_fails_and_its_task_is_stopped() {
    // On the in-memory ECS a task runs until told otherwise (moto's advance on every look-up).
    let backend = MemoryBackend::new(&containers());
    let manifest = manifest_v1(&backend, "m7", &containers(), true);
    let (_, push_app) = backend.push("app", "m7").await;
    let (_, push_nginx) = backend.push("nginx", "m7").await;
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/m7.json", &manifest).await).await.unwrap();
    invoke_image_pushed(&backend.convoy, push_app).await.unwrap();
    invoke_image_pushed(&backend.convoy, push_nginx).await.unwrap();
    let key = release_key("m7");
    let State::Migrating { task } = backend.record(&key).await.unwrap().state else { panic!("not migrating") };

    backend.convoy.reconcile(chrono::Utc::now() + chrono::Duration::minutes(29)).await.unwrap();
    assert!(matches!(backend.record(&key).await.unwrap().state, State::Migrating { .. }), "within its time");

    backend.convoy.reconcile(chrono::Utc::now() + chrono::Duration::minutes(31)).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Migration, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("past its timeout of 1800s"), "{reason}");
    let stopped = backend.tasks.describe("memory", &task).await.unwrap().unwrap();
    assert_eq!(stopped.stop_code.as_deref(), Some("UserInitiated"), "Convoy stopped the task");
    assert!(stopped.stopped_reason.unwrap().contains("timeout"));

    backend.convoy.reconcile(chrono::Utc::now() + chrono::Duration::minutes(32)).await.unwrap();
    assert!(backend.convoy.active.active().await.unwrap().is_empty(), "an ended release is no longer visited");
}

#[tokio::test]
async fn the_reconciler_catches_a_missed_stopped_event() {
    let (backend, _task) = migrating("m8").await;
    // moto moves a task on with each DescribeTasks and reports exit 0 once stopped.
    for _ in 0..6 {
        backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
        if !matches!(backend.record(&release_key("m8")).await.unwrap().state, State::Migrating { .. }) {
            break;
        }
    }
    let record = backend.record(&release_key("m8")).await.unwrap();
    assert!(matches!(record.state, State::Deploying { .. }), "{}", record.state);
    assert!(record.timeline.iter().any(|e| e.event == "migration-succeeded"));
}

#[tokio::test]
async fn a_reconciler_out_of_time_leaves_the_rest_for_its_next_run() {
    let backend = MotoBackend::new(&containers()).await;
    for release in ["b1", "b2", "b3"] {
        let manifest = manifest_v1(&backend, release, &containers(), false);
        let upload = backend.upload(&format!("releases/web/{release}.json"), &manifest).await;
        invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    }
    backend.push("app", "b2").await;
    backend.push("nginx", "b2").await; // no push event is delivered
    let spent = backend.convoy.reconcile_within(chrono::Utc::now(), Some(std::time::Duration::ZERO)).await.unwrap();
    assert_eq!((spent.visited, spent.left), (0, 3));
    assert_eq!(backend.record(&release_key("b2")).await.unwrap().state, State::Collecting);

    let run = backend.convoy.reconcile_within(chrono::Utc::now(), Some(std::time::Duration::from_secs(30))).await;
    let run = run.unwrap();
    assert_eq!((run.visited, run.left), (3, 0));
    assert!(matches!(backend.record(&release_key("b2")).await.unwrap().state, State::Deploying { .. }));
}

#[tokio::test]
async fn the_reconciler_pins_an_image_whose_push_event_was_lost() {
    let backend = MotoBackend::new(&containers()).await;
    let manifest = manifest_v1(&backend, "m9", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/m9.json", &manifest).await).await.unwrap();
    backend.push("app", "m9").await;
    backend.push("nginx", "m9").await; // neither push event is delivered
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let record = backend.record(&release_key("m9")).await.unwrap();
    assert!(matches!(record.state, State::Deploying { .. }), "{}", record.state);
    assert!(record.timeline.iter().any(|e| e.detail.contains("no migration declared")), "the skip is recorded");
}

#[tokio::test]
async fn a_missing_service_fails_the_release_and_runs_nothing() {
    let backend = MotoBackend::new(&containers()).await;
    backend.push("app", "m10").await;
    backend.push("nginx", "m10").await;
    let mut manifest: Value = serde_json::from_str(&manifest_v1(&backend, "m10", &containers(), true)).unwrap();
    manifest["service"] = json!("api");
    let convoy = backend.world.convoy(&["web", "api"], &["app", "nginx"]);
    let upload = backend.upload("releases/api/m10.json", &manifest.to_string()).await;
    invoke_manifest_uploaded(&convoy, upload).await.expect("acknowledged");
    let key = convoy::names::ReleaseKey::new("api".parse().unwrap(), "m10".parse().unwrap());
    let record = convoy.store.load(&key).await.unwrap().unwrap().release;
    let State::Failed { stage: Stage::Migration, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("api"), "{reason}");
    let listed = backend.ecs_client().list_tasks().cluster(&backend.ecs.cluster).send().await.unwrap();
    assert!(listed.task_arns().is_empty(), "no task ran");
}

/// ECS as a handler sees it when it crashes around RunTask: with `task_started` the crash came
/// right after RunTask (the task runs, the handler dies), else right before it (no task runs).
struct CrashingRun {
    inner: Arc<dyn Tasks>,
    task_started: bool,
}

#[async_trait]
impl Tasks for CrashingRun {
    async fn service_shape(&self, cluster: &str, service: &str) -> Result<ServiceShape, TasksError> {
        self.inner.service_shape(cluster, service).await
    }
    async fn register_migration(&self, spec: &MigrationTaskSpec) -> Result<RegisteredTaskDefinition, TasksError> {
        self.inner.register_migration(spec).await
    }
    async fn run(&self, request: &RunTaskRequest) -> Result<TaskArn, TasksError> {
        if self.task_started {
            self.inner.run(request).await?;
        }
        Err(TasksError::Unavailable("simulated crash around RunTask".into()))
    }
    async fn find(&self, cluster: &str, started_by: &str) -> Result<Vec<TaskArn>, TasksError> {
        self.inner.find(cluster, started_by).await
    }
    async fn describe(&self, cluster: &str, task: &TaskArn) -> Result<Option<TaskReport>, TasksError> {
        self.inner.describe(cluster, task).await
    }
    async fn stop(&self, cluster: &str, task: &TaskArn, reason: &str) -> Result<(), TasksError> {
        self.inner.stop(cluster, task, reason).await
    }
}

#[tokio::test]
async fn replays_and_a_crash_between_run_task_and_the_record_start_exactly_one_task() {
    let backend = MotoBackend::new(&containers()).await;
    let key = release_key("m11");
    let manifest = manifest_v1(&backend, "m11", &containers(), true);
    // Images and manifest arrive with a handler that crashes after RunTask: the record says the
    // start is claimed, ECS has the task, nothing records it.
    let mut crashing = backend.convoy.clone();
    crashing.tasks = Arc::new(CrashingRun { inner: backend.convoy.tasks.clone(), task_started: true });
    backend.push("app", "m11").await;
    let (_, last_push) = backend.push("nginx", "m11").await;
    let err = invoke_manifest_uploaded(&crashing, backend.upload("releases/web/m11.json", &manifest).await).await;
    assert!(err.is_err(), "the crash fails the invocation, so AWS retries it");
    assert_eq!(backend.record(&key).await.unwrap().state, State::StartingMigration);
    assert_eq!(backend.migration_tasks(&key).await, 1);

    // The "ready" event replayed 10 times at once, as retries and duplicates would.
    let replays: Vec<_> = (0..10)
        .map(|_| {
            let convoy = backend.convoy.clone();
            let push = last_push.clone();
            tokio::spawn(async move { invoke_image_pushed(&convoy, push).await.unwrap() })
        })
        .collect();
    for replay in replays {
        replay.await.unwrap();
    }
    let direct: Vec<_> = (0..10)
        .map(|_| {
            let convoy = backend.convoy.clone();
            let key = key.clone();
            tokio::spawn(async move { convoy.start_migration(&key, chrono::Utc::now(), None).await.unwrap() })
        })
        .collect();
    for start in direct {
        start.await.unwrap();
    }
    assert_eq!(backend.migration_tasks(&key).await, 1, "within the claim's lease nobody starts another");

    // After the lease the reconciler takes over, finds the task the dead holder started, adopts it.
    let later = chrono::Utc::now() + convoy::config::CLAIM_LEASE + chrono::Duration::seconds(1);
    backend.convoy.reconcile(later).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    assert!(matches!(record.state, State::Migrating { .. }), "{}", record.state);
    assert_eq!(record.migration.as_ref().unwrap().claims, 2);
    assert_eq!(backend.migration_tasks(&key).await, 1, "exactly one migration task exists in moto");
}

#[tokio::test]
async fn a_task_someone_else_runs_with_the_releases_group_and_started_by_is_never_adopted() {
    let backend = MotoBackend::new(&containers()).await;
    let key = release_key("m20");
    let manifest = manifest_v1(&backend, "m20", &containers(), true);
    let mut crashing = backend.convoy.clone();
    crashing.tasks = Arc::new(CrashingRun { inner: backend.convoy.tasks.clone(), task_started: false });
    backend.push("app", "m20").await;
    backend.push("nginx", "m20").await;
    let err = invoke_manifest_uploaded(&crashing, backend.upload("releases/web/m20.json", &manifest).await).await;
    assert!(err.is_err(), "the crash fails the invocation");
    assert_eq!(backend.record(&key).await.unwrap().state, State::StartingMigration);

    // Anyone with RunTask copies the release's group and startedBy onto the service's own task
    // definition (which does not migrate), and the task "exits 0".
    let ecs = backend.ecs_client();
    let network = aws_sdk_ecs::types::NetworkConfiguration::builder()
        .awsvpc_configuration(
            aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                .subnets(&backend.ecs.subnet)
                .security_groups(&backend.ecs.security_group)
                .build()
                .unwrap(),
        )
        .build();
    let ran = ecs
        .run_task()
        .cluster(&backend.ecs.cluster)
        .task_definition(&backend.ecs.task_definition)
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .network_configuration(network)
        .group(key.tag())
        .started_by(key.migration_started_by())
        .send()
        .await
        .expect("run the foreign task");
    let foreign = ran.tasks()[0].task_arn().unwrap().to_owned();
    let containers = [ContainerExit::exited("app", 0), ContainerExit::exited("nginx", 0)];
    let event = fixtures::ecs_task_stopped(&TaskStopped {
        cluster: &backend.ecs.cluster,
        task: &foreign,
        group: &key.tag(),
        started_by: &key.migration_started_by(),
        task_definition: &backend.ecs.task_definition,
        overridden: "app",
        containers: &containers,
        stop_code: "EssentialContainerExited",
        version: 4,
    });
    invoke_migration_stopped(&backend, event).await.expect("acknowledged");
    assert_eq!(backend.record(&key).await.unwrap().state, State::StartingMigration, "the stop passes nothing");

    // The takeover after the lease finds the foreign task by startedBy, refuses it for its
    // family, and starts Convoy's own migration.
    let later = chrono::Utc::now() + convoy::config::CLAIM_LEASE + chrono::Duration::seconds(1);
    backend.convoy.reconcile(later).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    let State::Migrating { task } = &record.state else { panic!("expected Migrating, got {}", record.state) };
    assert_ne!(task.as_str(), foreign, "the foreign task is not the migration");
    assert_eq!(backend.migration_tasks(&key).await, 2, "the foreign task and Convoy's own");
}
