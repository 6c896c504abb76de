//! The settings file end to end (docs/reference/settings.md): one file for 20 services, checked offline by
//! `convoy check --settings`, published by `convoy settings publish`, read at start by the real
//! `manifest-uploaded` binary from the version the stack names, and recorded in the release.
//! Needs the binaries built (`cargo build --workspace --bins`, which scripts/test runs first).

use std::time::Duration;

use convoy::release::{Stage, State};
use convoy_tests::runtime::{LambdaProcess, Outcome, binary};
use convoy_tests::world::{function_env, read_settings_version, service_settings, settings_file};
use serde_json::{Value, json};

use crate::cli::run;
use crate::deploy::containers;
use crate::scenario::*;

/// 20 services: `web` (this backend's, a person approves) and 19 others of the same shape.
fn twenty_services(backend: &MotoBackend) -> Value {
    let mut services = serde_json::Map::new();
    for n in 1..20 {
        let name = format!("svc-{n:02}");
        let one: Value =
            serde_json::from_str(&service_settings(&name, "shop", &name, "http://10.0.0.1:8080", "auto", json!({})))
                .expect("JSON");
        services.insert(name.clone(), one[&name].clone());
    }
    let web: Value = serde_json::from_str(&service_settings(
        SERVICE,
        &backend.application,
        &backend.group,
        "http://10.0.0.1:8080",
        "manual",
        json!({}),
    ))
    .expect("JSON");
    services.insert(SERVICE.into(), web[SERVICE].clone());
    Value::Object(services)
}

fn write(body: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("convoy-settings-{}-{}.json", std::process::id(), fastrand::u64(..)));
    std::fs::write(&path, body).expect("write the settings file");
    path
}

/// The real function's environment: every service of the file allowed, the settings read from
/// `version` of the published file.
fn env_reading(backend: &MotoBackend, services: &Value, version: &str) -> Vec<(String, String)> {
    let names: Vec<String> = services.as_object().expect("an object").keys().cloned().collect();
    let repositories = vec![backend.world.repo("app"), backend.world.repo("nginx")];
    let mut env =
        function_env(&backend.world, &backend.standin.endpoint, &backend.ecs.cluster, &names, &repositories, "");
    read_settings_version(&mut env, version);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_file_for_20_services_is_checked_published_and_read_by_the_functions_with_its_version_recorded() {
    let backend = MotoBackend::new(&containers()).await;
    let services = twenty_services(&backend);
    let body = settings_file(&services);
    assert!(body.len() > 4096, "20 services do not fit Lambda's 4 KB environment: {} bytes", body.len());
    let path = write(&body);
    let file = path.to_str().unwrap();

    let (code, stdout, stderr) = run(&backend, &["check", "--settings", file, "--offline"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(": valid: 20 services, 0 release groups, sha256 "), "{stdout}");

    let (code, stdout, stderr) = run(&backend, &["settings", "publish", file, "--json"]);
    std::fs::remove_file(&path).ok();
    assert_eq!(code, 0, "{stdout}{stderr}");
    let published: Value = serde_json::from_str(&stdout).expect("publish prints JSON");
    let version = published["version_id"].as_str().expect("a version id").to_owned();
    assert_eq!(published["services"], 20);
    assert_eq!(published["sha256"], convoy::settings_file::sha256_hex(body.as_bytes()));

    let function = LambdaProcess::spawn(
        "manifest-uploaded",
        &binary("manifest-uploaded"),
        &env_reading(&backend, &services, &version),
    )
    .await;
    function.init_time(Duration::from_secs(30)).await.expect("the function starts on the published file");
    // Only the file says that a person approves web: the ceiling refusing `auto` shows it was read.
    backend.push("app", "s1").await;
    backend.push("nginx", "s1").await;
    let mut manifest: Value = serde_json::from_str(&manifest_v1(&backend, "s1", &containers(), false)).unwrap();
    manifest["approval"] = json!("auto");
    let upload = backend.upload("releases/web/s1.json", &manifest.to_string()).await;
    let outcome = function.invoke(upload).await.expect("an answer");
    assert!(matches!(outcome, Outcome::Response(_)), "{outcome:?}");
    let record = backend.record(&release_key("s1")).await.expect("a record");
    let State::Failed { stage: Stage::Manifest, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("the operator's settings for service web say manual"), "{reason}");
    let settings = record.settings.expect("the record keeps its settings' version");
    assert_eq!(settings.version_id.as_deref(), Some(version.as_str()));
    assert_eq!(settings.sha256, convoy::settings_file::sha256_hex(body.as_bytes()));
    assert_eq!(settings.source, format!("s3://{}/settings/convoy.json", backend.world.bucket));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_file_with_problems_is_refused_offline_naming_each_service_and_group() {
    let backend = MotoBackend::new(&containers()).await;
    let mut services = twenty_services(&backend);
    services["svc-07"]["approval"] = json!("sometimes");
    let body = json!({"services": services, "release_groups": {"shop": {"services": ["web", "nowhere"]}}});
    let path = write(&body.to_string());
    let (code, stdout, stderr) = run(&backend, &["check", "--settings", path.to_str().unwrap(), "--offline"]);
    let (publish_code, _, publish_err) = run(&backend, &["settings", "publish", path.to_str().unwrap()]);
    std::fs::remove_file(&path).ok();
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("svc-07"), "{stderr}");
    assert!(stderr.contains("shop") && stderr.contains("nowhere"), "{stderr}");
    assert!(stderr.contains("nothing was asked of AWS"), "{stderr}");
    assert_eq!(publish_code, 1, "{publish_err}");
    assert!(publish_err.contains("not published"), "{publish_err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_named_a_settings_version_that_does_not_exist_does_not_start_and_says_which() {
    let backend = MotoBackend::new(&containers()).await;
    let services = twenty_services(&backend);
    let missing = "3HL4kqtJvjVBH40Nrjfkd";
    let env = env_reading(&backend, &services, missing);
    let function = LambdaProcess::spawn("manifest-uploaded", &binary("manifest-uploaded"), &env).await;
    let failed = function.init_time(Duration::from_secs(30)).await.expect_err("it must not start");
    assert!(failed.contains("settings/convoy.json") && failed.contains(missing), "{failed}");
}
