//! The local sandbox: one release through Convoy's real handlers and adapters against moto
//! server, its events arriving in a mixed order and repeated, ending with `convoy status`.
//!
//! What is what: S3 and ECR are moto (the real SDK adapters talk to it over HTTP). moto emits no
//! EventBridge or S3 events, so the sandbox builds each event AWS would send from the documented
//! fixtures and hands it to the handler, as the Lambda runtime would.

use std::process::Command;

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
    let world = World::named("convoy-sandbox-state", "").await;
    world.create_repositories(&["laravel-app", "laravel-app-nginx"]).await;
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
        "migration": {"container": "laravel", "command": ["php", "artisan", "migrate", "--force"]},
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
        "\nThe migration (issue 3), deployment, verification and approval (issue 4) are the next stages; \
         the record above shows the request for the first of them."
    );
}
