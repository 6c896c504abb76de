//! `convoy init` (the real binary) against services on moto built as an operator has them
//! (`tests/src/load_balancer.rs`): the settings it writes ship a release through the sandbox, and
//! for each part a service lacks it says what to add. Needs the binaries built (`cargo build
//! --workspace --bins`, which scripts/test runs first).

use std::process::{Command, Stdio};

use aws_sdk_codedeploy::types::DeploymentReadyAction;
use aws_sdk_ecs::types::DeploymentControllerType;
use convoy::release::State;
use convoy_tests::load_balancer::Shape;
use convoy_tests::moto::{Moto, REGION};
use convoy_tests::runtime::binaries_dir;
use convoy_tests::sandbox::{self, Options, native_lifecycle_hooks};
use convoy_tests::standin::StandIn;
use convoy_tests::world::World;
use serde_json::{Value, json};

/// `convoy init <args>` with test credentials, against `endpoint`: (exit code, stdout, stderr).
fn init(endpoint: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(binaries_dir().join("convoy"))
        .arg("init")
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("CONVOY_STATE_BUCKET")
        .stdin(Stdio::null())
        .output()
        .expect("run convoy init");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (output.status.code().expect("an exit code"), text(output.stdout), text(output.stderr))
}

/// A service named `web` shaped as `shape` (ECS native: with `hooks` as ECS describes them, which
/// the stand-in adds since moto drops them), and `convoy init` on it through the stand-in.
async fn init_on(shape: Shape, hooks: Value, extra: &[&str]) -> (i32, String, String) {
    let world = World::new().await;
    let balanced = world.balanced_service("web", &["app", "nginx"], &shape).await;
    let standin = StandIn::for_missing_operations(&Moto::shared().endpoint).await;
    standin.native_service("web", json!({"strategy": "BLUE_GREEN", "lifecycleHooks": hooks}));
    let mut args = vec![balanced.ecs.cluster.clone(), "web".to_owned()];
    args.extend(extra.iter().map(|a| a.to_string()));
    // The stand-in answers on this runtime: wait for the process off it.
    let endpoint = standin.endpoint.clone();
    tokio::task::spawn_blocking(move || init(&endpoint, &args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .expect("convoy init ran")
}

fn codedeploy() -> Shape {
    Shape::ready(DeploymentControllerType::CodeDeploy, 80, 8080)
}

fn native() -> Shape {
    Shape::ready(DeploymentControllerType::Ecs, 80, 8080)
}

fn settings_of(stdout: &str) -> Value {
    let object: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("settings JSON ({e}): {stdout}"));
    // The functions read exactly this (CONVOY_SERVICE_SETTINGS).
    convoy::settings::parse(stdout).expect("the functions accept the settings init wrote");
    object["web"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_init_writes_for_a_codedeploy_service_ship_a_release_through_the_sandbox() {
    let id = format!("init-cd-{}", std::process::id());
    // The application is the world's: convoy-<id>.
    let finished =
        sandbox::run(Options { settings_from_init: true, id, ..Options::default() }).await.expect("the sandbox runs");
    let (written, said) = finished.init.expect("init ran");
    let settings: Value = serde_json::from_str(&written).expect("JSON");
    let service = &settings[sandbox::SERVICE];
    assert_eq!(service["codedeploy"]["application"], json!(format!("convoy-init-cd-{}", std::process::id())));
    assert_eq!(service["codedeploy"]["deployment_group"], json!(sandbox::SERVICE));
    assert_eq!((&service["codedeploy"]["container"], &service["codedeploy"]["port"]), (&json!("nginx"), &json!(80)));
    assert!(service["test_listener"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{service}");
    assert!(said.contains("has what Convoy needs"), "{said}");
    assert!(
        said.contains(
            "may invoke arn:aws:lambda:us-east-1:123456789012:function:convoy-verify (AWSCodeDeployRoleForECS)"
        ),
        "{said}"
    );
    assert_eq!(finished.release.state, State::Succeeded, "{}", finished.status);
    // Verified on the test listener init found, with the probe plan init wrote (the defaults).
    let verification = finished.release.verification.expect("verified");
    assert!(verification.outcome.as_ref().is_some_and(|o| o.passed), "{verification:?}");
    assert_eq!(verification.probes.len(), 10, "{verification:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_init_writes_for_an_ecs_native_service_ship_a_release_through_the_sandbox() {
    let id = format!("init-native-{}", std::process::id());
    let options = Options { settings_from_init: true, ecs_native: true, id, ..Options::default() };
    let finished = sandbox::run(options).await.expect("the sandbox runs");
    let (written, said) = finished.init.expect("init ran");
    let settings: Value = serde_json::from_str(&written).expect("JSON");
    let native = &settings[sandbox::SERVICE]["ecs_native"];
    assert_eq!(native["verify_function"], json!("arn:aws:lambda:us-east-1:123456789012:function:convoy-verify"));
    assert_eq!(native["approval_stage"], json!("PRE_PRODUCTION_TRAFFIC_SHIFT"));
    assert!(said.contains("has what Convoy needs"), "{said}");
    assert_eq!(finished.release.state, State::Succeeded, "{}", finished.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_group_has_no_test_listener_gets_no_settings_and_is_told_what_to_add() {
    let (code, stdout, stderr) = init_on(Shape { test_port: None, ..codedeploy() }, json!([]), &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stdout, "", "no settings without a test listener");
    assert!(stderr.contains("missing: deployment group convoy-"), "{stderr}");
    assert!(stderr.contains("/web has no test listener: Convoy verifies each release there"), "{stderr}");
    assert!(stderr.contains("testTrafficRoute.listenerArns (aws deploy update-deployment-group"), "{stderr}");
    assert!(stderr.contains("no settings written for web"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecs_native_service_without_a_test_listener_rule_is_told_where_to_name_one() {
    let (code, stdout, stderr) = init_on(Shape { test_port: None, ..native() }, native_lifecycle_hooks(), &[]).await;
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    assert!(stderr.contains("missing: service web has no test listener"), "{stderr}");
    assert!(stderr.contains("loadBalancers[].advancedConfiguration.testListenerRule"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_continues_by_itself_is_said_and_its_settings_still_written() {
    let shape = Shape { ready: DeploymentReadyAction::ContinueDeployment, wait_minutes: 0, ..codedeploy() };
    let (code, stdout, stderr) = init_on(shape, json!([]), &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(settings_of(&stdout)["codedeploy"].is_object());
    assert!(
        stderr.contains("/web continues by itself (CONTINUE_DEPLOYMENT): CodeDeploy reroutes production traffic"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "how: set its blueGreenDeploymentConfiguration.deploymentReadyOption to actionOnTimeout STOP_DEPLOYMENT"
        ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codedeploy_role_limited_to_codedeployhook_functions_is_said_to_be_unable_to_invoke_verify() {
    let shape = Shape { role_policy: "AWSCodeDeployRoleForECSLimited", ..codedeploy() };
    let (code, stdout, stderr) = init_on(shape, json!([]), &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(settings_of(&stdout)["codedeploy"].is_object());
    assert!(
        stderr.contains(
            "may not invoke the verify function arn:aws:lambda:us-east-1:123456789012:function:convoy-verify: none of \
             its policies (AWSCodeDeployRoleForECSLimited) allows lambda:InvokeFunction on it"
        ),
        "{stderr}"
    );
    // The same role may invoke a hook named as that policy wants.
    let shape = Shape { role_policy: "AWSCodeDeployRoleForECSLimited", ..codedeploy() };
    let (code, _, stderr) = init_on(shape, json!([]), &["--verify-function", "CodeDeployHook_convoy-verify"]).await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecs_native_service_without_a_pause_hook_is_told_the_hook_to_add() {
    let hooks: Vec<Value> =
        native_lifecycle_hooks().as_array().unwrap().iter().filter(|h| h["targetType"] != "PAUSE").cloned().collect();
    let (code, stdout, stderr) = init_on(native(), json!(hooks), &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(settings_of(&stdout)["ecs_native"]["approval_stage"], json!("PRE_PRODUCTION_TRAFFIC_SHIFT"));
    assert!(
        stderr.contains("missing: service web has no PAUSE hook: ECS would shift production traffic without waiting"),
        "{stderr}"
    );
    assert!(stderr.contains("add {targetType: PAUSE, lifecycleStages: [PRE_PRODUCTION_TRAFFIC_SHIFT]}"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_its_out_file_once_and_replaces_it_only_with_force() {
    let path = std::env::temp_dir().join(format!("convoy-init-{}-{}.json", std::process::id(), fastrand::u64(..)));
    let out = path.to_str().unwrap();
    let world = World::new().await;
    let balanced = world.balanced_service("web", &["app", "nginx"], &codedeploy()).await;
    let endpoint = &Moto::shared().endpoint;
    let (code, stdout, stderr) = init(endpoint, &[&balanced.ecs.cluster, "web", "--out", out]);
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    settings_of(&std::fs::read_to_string(&path).expect("the file"));
    std::fs::write(&path, "kept").unwrap();
    let (code, _, stderr) = init(endpoint, &[&balanced.ecs.cluster, "web", "--out", out]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("exists: pass --force to replace it"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "kept");
    let (code, _, stderr) = init(endpoint, &[&balanced.ecs.cluster, "web", "--out", out, "--force"]);
    assert_eq!(code, 0, "{stderr}");
    settings_of(&std::fs::read_to_string(&path).unwrap());
    std::fs::remove_file(&path).ok();
}

#[test]
fn convoy_version_names_a_commit_of_this_repository() {
    let output = Command::new(binaries_dir().join("convoy")).arg("--version").output().expect("convoy --version");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let commit = text.trim().strip_prefix("convoy 0.1.0 (commit ").and_then(|r| r.strip_suffix(')'));
    let commit = commit.unwrap_or_else(|| panic!("{text}"));
    assert!(commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit()), "{text}");
    let known = Command::new("git").args(["cat-file", "-e", &format!("{commit}^{{commit}}")]).status().expect("git");
    assert!(known.success(), "{commit} is not a commit of this repository");
}
