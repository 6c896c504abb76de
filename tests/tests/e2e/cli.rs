//! The `convoy` binary itself against moto: `submit` refuses what `manifest-uploaded` would fail,
//! with the same message, and never overwrites a release; `wait` and `status` exit as documented.
//! Needs the binaries built (`cargo build --workspace --bins`, which scripts/test runs first).

use std::process::{Command, Output, Stdio};

use convoy::release::State;
use convoy_tests::moto::{Moto, REGION};
use convoy_tests::runtime::binary;
use convoy_tests::wait::wait_for;
use serde_json::json;

use crate::bad_input::{bad_manifests, containers, failure_of};
use crate::scenario::*;

/// The `convoy` command with the environment a CI job would give it, pointed at moto.
pub fn command(backend: &MotoBackend) -> Command {
    let mut command = Command::new(binary("convoy"));
    command
        .env("AWS_ENDPOINT_URL", &Moto::shared().endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("CONVOY_STATE_BUCKET", &backend.world.bucket)
        .env("CONVOY_S3_FORCE_PATH_STYLE", "true")
        .env("CONVOY_ALLOWED_SERVICES", SERVICE)
        .env("CONVOY_ACCOUNT_ID", convoy_tests::moto::ACCOUNT)
        .env("CONVOY_ALLOWED_REPOSITORIES", backend.world.repo("app"))
        .stdin(Stdio::null());
    command
}

pub fn run(backend: &MotoBackend, args: &[&str]) -> (i32, String, String) {
    run_with(backend, args, &[])
}

/// [`run`] with more environment.
pub fn run_with(backend: &MotoBackend, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = command(backend);
    command.envs(env.iter().copied());
    let Output { status, stdout, stderr } = command.args(args).output().expect("run convoy");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (status.code().expect("an exit code"), text(stdout), text(stderr))
}

fn manifest_file(body: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("convoy-manifest-{}-{}.json", std::process::id(), fastrand::u64(..)));
    std::fs::write(&path, body).expect("write the manifest file");
    path
}

async fn submit(backend: &MotoBackend, body: &str, flags: &[&str]) -> (i32, String, String) {
    let path = manifest_file(body);
    let mut args = vec!["submit", path.to_str().unwrap()];
    args.extend_from_slice(flags);
    let outcome = run(backend, &args);
    std::fs::remove_file(path).ok();
    outcome
}

async fn manifests_uploaded(backend: &MotoBackend) -> Vec<String> {
    let listed = backend.world.s3.list_objects_v2().bucket(&backend.world.bucket).prefix("releases/").send().await;
    listed.expect("list").contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
}

#[tokio::test]
async fn submit_refuses_each_bad_manifest_with_the_message_its_record_would_carry_and_uploads_nothing() {
    let backend = MotoBackend::new(&containers()).await;
    for (release, body, _) in bad_manifests(&backend) {
        let (code, _, stderr) = submit(&backend, &body, &["--service", SERVICE, "--release", release]).await;
        assert_eq!(code, 1, "{release}: {stderr}");
        let key = format!("releases/web/{release}.json");
        assert!(!manifests_uploaded(&backend).await.contains(&key), "{release}: nothing is uploaded");
        // The Lambda's verdict on the same upload, for comparison.
        let reason = failure_of(&backend, release, &body).await;
        assert_eq!(stderr.trim(), format!("convoy: refused: {reason}"), "{release}");
    }
}

#[tokio::test]
async fn submit_refuses_a_service_outside_the_operators_allow_list() {
    let backend = MotoBackend::new(&containers()).await;
    let body =
        json!({"version": 1, "release": "r1", "service": "billing", "images": {"app": backend.uri("app", "r1")}});
    let (code, _, stderr) = submit(&backend, &body.to_string(), &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.trim(), "convoy: refused: service \"billing\" is not one Convoy may deploy (allowed: web)");
    assert!(manifests_uploaded(&backend).await.is_empty());
}

#[tokio::test]
async fn a_second_submit_of_the_same_release_is_refused_and_the_first_manifest_stays() {
    let backend = MotoBackend::new(&containers()).await;
    let first = manifest_v1(&backend, "s1", &containers(), false);
    let (code, stdout, stderr) = submit(&backend, &first, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("convoy wait web s1") && stdout.contains("convoy status web s1"), "{stdout}");
    assert_eq!(manifests_uploaded(&backend).await, ["releases/web/s1.json"]);

    let second = manifest_v1(&backend, "s1", &containers(), true);
    let (code, stdout, stderr) = submit(&backend, &second, &["--json"]).await;
    assert_eq!(code, 1, "{stderr}");
    let refused: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert!(refused["refused"].as_str().unwrap().contains("release web/s1 was already submitted"), "{refused}");
    let stored = backend.world.s3.get_object().bucket(&backend.world.bucket).key("releases/web/s1.json").send().await;
    let bytes = stored.unwrap().body.collect().await.unwrap().into_bytes();
    assert_eq!(String::from_utf8_lossy(&bytes), first, "the first manifest is still the one stored");
}

#[tokio::test]
async fn wait_exits_1_and_status_exits_1_for_a_failed_release() {
    let backend = MotoBackend::new(&containers()).await;
    failure_of(&backend, "broken", "{").await;
    let (code, stdout, stderr) = run(&backend, &["wait", SERVICE, "broken", "--timeout", "20s"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("manifest-rejected"), "the timeline is printed: {stdout}");
    assert!(stdout.contains("web/broken: Failed at manifest"), "{stdout}");
    let (code, stdout, _) = run(&backend, &["status", SERVICE, "broken"]);
    assert_eq!(code, 1, "{stdout}");
    let (code, _, stderr) = run(&backend, &["status", SERVICE, "never-submitted"]);
    assert_eq!(code, 4, "{stderr}");
}

#[tokio::test]
async fn wait_exits_3_when_the_release_does_not_get_there_in_time() {
    let backend = MotoBackend::new(&containers()).await;
    // Its image is never pushed: the release collects forever.
    let body = manifest_v1(&backend, "stuck", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/stuck.json", &body).await).await.unwrap();
    let started = std::time::Instant::now();
    let (code, stdout, stderr) = run(&backend, &["wait", SERVICE, "stuck", "--timeout", "3s", "--json"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "it gives up at its timeout");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["outcome"], "timeout");
    assert_eq!(last["state"], "Collecting");
    let (code, _, _) = run(&backend, &["status", SERVICE, "stuck"]);
    assert_eq!(code, 0, "a release in progress is not a failure");
}

#[tokio::test]
async fn wait_follows_a_release_to_success_printing_entries_as_they_happen_and_exits_0() {
    let backend = MotoBackend::new(&containers()).await;
    for container in containers() {
        let (_, push) = backend.push(&container, "ok1").await;
        invoke_image_pushed(&backend.convoy, push).await.unwrap();
    }
    let body = manifest_v1(&backend, "ok1", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/ok1.json", &body).await).await.unwrap();
    let record = backend.record(&release_key("ok1")).await.unwrap();
    let State::Deploying { deployment } = record.state else { panic!("expected Deploying, got {}", record.state) };

    let mut child = command(&backend)
        .args(["wait", SERVICE, "ok1", "--timeout", "60s", "--max-interval", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start convoy wait");
    // Its lines as it prints them.
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn({
        let lines = lines.clone();
        move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().expect("lines").push(line);
            }
        }
    });
    let printed = |event: &str| lines.lock().expect("lines").iter().any(|l| l.split_whitespace().nth(1) == Some(event));
    let limit = std::time::Duration::from_secs(30);
    wait_for(limit, "convoy wait printed the entries recorded so far", || async { printed("deployment-started") })
        .await;
    assert!(!printed("succeeded"), "nothing printed before it happened: {:?}", lines.lock().unwrap());
    backend.codedeploy_reports(deployment.as_str(), "SUCCESS").await;
    wait_for(limit, "convoy wait printed the success once recorded", || async { printed("succeeded") }).await;
    let waited = tokio::task::spawn_blocking(move || child.wait_with_output());
    let output = tokio::time::timeout(limit, waited).await.expect("convoy wait exits").unwrap().unwrap();
    reader.join().expect("the reader ends with the process");
    let stdout = lines.lock().unwrap().join("\n");
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let events: Vec<&str> = stdout.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(
        events,
        [
            "manifest-accepted",
            "image-pinned",
            "ready",
            "deployment-starting",
            "deployment-started",
            "succeeded",
            "Succeeded"
        ],
        "{stdout}"
    );
}

#[tokio::test]
async fn list_shows_every_release_with_its_state_and_stages_and_active_leaves_out_the_ended() {
    let backend = MotoBackend::new(&containers()).await;
    failure_of(&backend, "gone", "{").await;
    let body = manifest_v1(&backend, "open", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/open.json", &body).await).await.unwrap();

    let (code, stdout, stderr) = run(&backend, &["list", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout).expect("a JSON array");
    let mut seen: Vec<(String, String, bool)> = rows
        .iter()
        .map(|r| (r["release"].as_str().unwrap().into(), r["state"].as_str().unwrap().into(), r["terminal"] == true))
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 2, "{stdout}");
    assert_eq!((seen[0].0.as_str(), seen[0].2), ("gone", true));
    assert!(seen[0].1.starts_with("Failed at manifest"), "{stdout}");
    assert_eq!((seen[1].0.as_str(), seen[1].1.as_str(), seen[1].2), ("open", "Collecting", false));
    assert!(rows.iter().all(|r| r["stage_seconds"]["images"].is_number()), "{stdout}");

    let (code, stdout, _) = run(&backend, &["list", SERVICE, "--active"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("web/open") && !stdout.contains("web/gone"), "{stdout}");
    assert!(stdout.lines().next().unwrap().starts_with("RELEASE"), "a table with headers: {stdout}");
}

#[tokio::test]
async fn approve_with_a_typed_name_is_refused_since_identity_comes_from_aws() {
    let backend = MotoBackend::new(&containers()).await;
    let (code, _, stderr) = run(&backend, &["approve", SERVICE, "r1", "--by", "alice"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--by is gone: who decides is the AWS principal"), "{stderr}");
}

#[tokio::test]
async fn approve_calls_codedeploy_with_the_persons_credentials_and_prints_who_cloudtrail_names() {
    let (backend, _green) = crate::deploy::with_green(convoy_tests::http::Behaviour::version("k1"), "manual").await;
    let (record, _) = crate::deploy::verify_codedeploy(&backend, "k1").await;
    let deployment = record.deployment.unwrap().id.unwrap().to_string();
    backend.standin.waits(&deployment);
    // The person's own access key (an IAM user in moto), the CLI through the stand-in.
    let (arn, sdk) = backend.person_sdk("gina-k1").await;
    let credentials =
        aws_sdk_s3::config::ProvideCredentials::provide_credentials(&sdk.credentials_provider().expect("credentials"))
            .await
            .unwrap();
    let mut command = command(&backend);
    command
        .env("AWS_ENDPOINT_URL", &backend.standin.endpoint)
        .env("AWS_ACCESS_KEY_ID", credentials.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key())
        .args(["approve", SERVICE, "k1", "--wait", "20"]);
    let cli = tokio::task::spawn_blocking(move || command.output().expect("run convoy"));
    // While it waits, CloudTrail's event reaches deployment-changed.
    let limit = std::time::Duration::from_secs(20);
    wait_for(limit, "CloudTrail recorded the CLI's ContinueDeployment", || async {
        !backend.standin.trail().is_empty()
    })
    .await;
    let call = backend.cloudtrail_delivers_last_call().await;
    let output = cli.await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(&format!("principal   {arn}")), "{stdout}");
    assert!(stdout.contains(call["eventID"].as_str().unwrap()), "{stdout}");
    assert_eq!(backend.standin.calls_to("ContinueDeployment").len(), 1);
}
