//! The local sandbox: one release through Convoy's real handlers and adapters against moto
//! server, its events arriving in a mixed order and repeated, ending with `convoy status`.
//!
//! What is what: S3, ECR and ECS (the service, its task definition, RunTask) are moto, which the
//! real SDK adapters talk to over HTTP. Stand-ins, because moto cannot do them: moto emits no
//! EventBridge or S3 events, so the sandbox builds each event AWS would send from the documented
//! fixtures and hands it to the handler, as the Lambda runtime would; moto runs no container, so
//! the sandbox runs the migration's command as a local process and reports its real exit code in
//! the ECS "Task State Change" event for moto's task.
//!
//! `--migration-fails` runs a migration that exits 1.

use std::process::Command;

use convoy::release::State;
use convoy::service::{migration_group, started_by};
use convoy_tests::fixtures;
use convoy_tests::moto::{ACCOUNT, Moto, REGION};
use convoy_tests::world::World;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

const SERVICE: &str = "laravel-app";
const RELEASE: &str = "4cf03d1";

fn step(text: &str) {
    println!("\n\x1b[1m▶ {text}\x1b[0m");
}

fn show(response: &Result<Value, lambda_runtime::Error>) {
    match response {
        Ok(value) => println!("  handler answered: {value}"),
        Err(err) => println!("  handler failed (AWS would retry): {err}"),
    }
}

#[tokio::main]
async fn main() {
    let moto = Moto::shared();
    println!("moto server (S3, ECR) at {}", moto.endpoint);
    let fails = std::env::args().any(|a| a == "--migration-fails");
    let world = World::named("convoy-sandbox-state", "").await;
    world.create_repositories(&["laravel-app", "laravel-app-nginx"]).await;
    let ecs = world.ecs_service(SERVICE, &["laravel", "nginx"]).await;
    println!("ECS service {SERVICE} in cluster {} (CODE_DEPLOY controller, Fargate, awsvpc)", ecs.cluster);
    let convoy = world.convoy(&[SERVICE], &["laravel-app", "laravel-app-nginx"]);
    let invoke = |payload: Value| LambdaEvent::new(payload, Context::default());

    step("CI pushes laravel-app:4cf03d1 to ECR (before any manifest)");
    let app = world.push_image("laravel-app", RELEASE).await;
    let push_app = fixtures::ecr_push(ACCOUNT, "laravel-app", RELEASE, &app, &chrono::Utc::now().to_rfc3339());
    println!("  digest {app}; EventBridge delivers the push to image-pushed");
    show(&convoy::handlers::image_pushed(&convoy, invoke(push_app)).await);

    step("CI uploads releases/laravel-app/4cf03d1.json");
    let manifest = json!({
        "version": 1, "release": RELEASE, "service": SERVICE,
        "images": {
            "laravel": world.uri("laravel-app", RELEASE),
            "nginx": world.uri("laravel-app-nginx", RELEASE),
        },
        "migration": {"container": "laravel", "command": migration_command(fails)},
        "approval": "manual"
    });
    let key = format!("releases/{SERVICE}/{RELEASE}.json");
    let (version, size) = world.upload(&key, &manifest.to_string()).await;
    let upload = fixtures::s3_notification(&world.bucket, &key, version.as_deref(), size);
    println!("  S3 delivers ObjectCreated to manifest-uploaded (version {})", version.as_deref().unwrap_or("-"));
    show(&convoy::handlers::manifest_uploaded(&convoy, invoke(upload.clone())).await);
    println!("  …and delivers it again (at-least-once):");
    show(&convoy::handlers::manifest_uploaded(&convoy, invoke(upload)).await);

    step("CI pushes laravel-app-nginx:4cf03d1; EventBridge delivers the event twice");
    let nginx = world.push_image("laravel-app-nginx", RELEASE).await;
    let push_nginx =
        fixtures::ecr_push(ACCOUNT, "laravel-app-nginx", RELEASE, &nginx, &chrono::Utc::now().to_rfc3339());
    show(&convoy::handlers::image_pushed(&convoy, invoke(push_nginx.clone())).await);
    show(&convoy::handlers::image_pushed(&convoy, invoke(push_nginx)).await);

    step("the migration task runs (moto has the task; the command runs here, as a local process)");
    let key = convoy::names::ReleaseKey::new(SERVICE.parse().unwrap(), RELEASE.parse().unwrap());
    let record = convoy.store.load(&key).await.expect("load").expect("a record").release;
    let State::Migrating { task } = &record.state else {
        eprintln!("expected the migration to run, the release is {}", record.state);
        std::process::exit(1);
    };
    println!("  task {task}");
    let command = migration_command(fails);
    let started_at = chrono::Utc::now();
    let status = Command::new(&command[0]).args(&command[1..]).status().expect("run the migration command");
    let stopped_at = chrono::Utc::now();
    let exit_code = status.code().unwrap_or(-1);
    println!("  {} exited {exit_code}; ECS reports the task STOPPED to migration-stopped", command.join(" "));
    let mut stopped = fixtures::ecs_task_stopped(
        task,
        &migration_group(&key),
        &started_by(&key),
        "laravel",
        Some(exit_code),
        "EssentialContainerExited",
        3,
    );
    stopped["detail"]["startedAt"] = json!(started_at.to_rfc3339());
    stopped["detail"]["stoppedAt"] = json!(stopped_at.to_rfc3339());
    show(&convoy::handlers::migration_stopped(&convoy, invoke(stopped)).await);

    step("convoy status laravel-app 4cf03d1");
    let cli = std::env::var("CONVOY_CLI").unwrap_or_else(|_| "convoy".into());
    let status = Command::new(&cli)
        .args(["status", SERVICE, RELEASE])
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("CONVOY_STATE_BUCKET", &world.bucket)
        .env("CONVOY_S3_FORCE_PATH_STYLE", "true")
        .status()
        .unwrap_or_else(|e| panic!("run {cli}: {e}"));
    if !status.success() {
        eprintln!("convoy status failed: {status}");
        std::process::exit(1);
    }
    println!(
        "\nStands in for AWS here: the events (moto emits none) and the migration container (moto runs none). \
         Deployment, verification and approval are the next stages to build (issue 4)."
    );
}

/// The migration's command: a real process whose exit code the sandbox reports.
fn migration_command(fails: bool) -> Vec<String> {
    let script = if fails {
        "echo 'migrating 2026_11_25_000000_add_orders'; echo 'SQLSTATE[42S01]: table orders already exists' >&2; exit 1"
    } else {
        "echo 'migrating 2026_11_25_000000_add_orders'; sleep 0.2; echo 'migrated'"
    };
    vec!["sh".into(), "-c".into(), script.into()]
}
