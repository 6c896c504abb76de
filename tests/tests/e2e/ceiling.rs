//! The operator's settings are a ceiling: a manifest that asks for fewer checks (here, approval
//! by policy where the service's settings say a person approves) is refused at the manifest
//! stage with the reason, and a record that carries such a manifest anyway (accepted before the
//! rule, or forged) is never approved by policy: its verification refuses the plan.

use convoy::release::{Stage, State};
use serde_json::{Value, json};

use crate::deploy::{containers, deploying, with_green};
use crate::scenario::*;
use convoy_tests::http::Behaviour;

#[tokio::test]
async fn a_manifest_asking_for_auto_approval_under_manual_settings_fails_at_the_manifest_stage() {
    let (backend, green) = with_green(Behaviour::version("c1"), "manual").await;
    backend.push("app", "c1").await;
    backend.push("nginx", "c1").await;
    let mut manifest: Value = serde_json::from_str(&manifest_v1(&backend, "c1", &containers(), false)).unwrap();
    manifest["approval"] = json!("auto");
    let upload = backend.upload("releases/web/c1.json", &manifest.to_string()).await;
    invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    let record = backend.record(&release_key("c1")).await.unwrap();
    let State::Failed { stage: Stage::Manifest, reason } = &record.state else { panic!("{}", record.state) };
    assert_eq!(
        reason,
        "the manifest asks for approval auto; the operator's settings for service web say manual: a manifest may \
         only ask for more checks"
    );
    assert!(record.images.is_empty() && record.deployment.is_none(), "nothing was started");
    assert_eq!(green.requests(), 0);
}

#[tokio::test]
async fn a_record_whose_manifest_asks_for_auto_under_manual_settings_is_never_approved_by_policy() {
    let (backend, _green) = with_green(Behaviour::version("c2"), "manual").await;
    let deployment = deploying(&backend, "c2", json!({})).await;
    // The manifest in the record says auto, as one accepted before the rule would.
    let key = release_key("c2");
    let stored = backend.convoy.store.load(&key).await.unwrap().unwrap();
    let mut forged = stored.release.clone();
    forged.manifest.as_mut().unwrap().approval = Some(convoy::manifest::Approval::Auto);
    backend.convoy.store.replace(&forged, &stored.version).await.unwrap();

    backend.codedeploy_hook(&deployment, "exec-1").await;
    assert_eq!(backend.accepted_hook_answers()[0]["status"], "Failed", "the plan is refused, so is the hook");
    backend.convoy.reconcile(chrono::Utc::now() + chrono::Duration::minutes(5)).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    assert!(!matches!(record.state, State::ShiftingTraffic { .. }), "{}", record.state);
    assert!(backend.standin.calls_to("ContinueDeployment").is_empty(), "policy approved nothing");
}

#[tokio::test]
async fn submit_refuses_a_manifest_asking_for_less_than_the_operators_settings_in_its_environment() {
    let only_app = crate::bad_input::containers();
    let backend = MotoBackend::new(&only_app).await;
    let mut manifest: Value = serde_json::from_str(&manifest_v1(&backend, "c3", &only_app, false)).unwrap();
    manifest["approval"] = json!("auto");
    let path = std::env::temp_dir().join(format!("convoy-ceiling-{}.json", std::process::id()));
    std::fs::write(&path, manifest.to_string()).unwrap();
    let settings = r#"{"web": {"codedeploy": {"application": "a", "deployment_group": "g", "container": "app",
        "port": 80, "verify_function": "v"}, "test_listener": "http://127.0.0.1:9", "approval": "manual"}}"#;
    let env = [("CONVOY_SERVICE_SETTINGS", settings)];
    let (code, _, stderr) = crate::cli::run_with(&backend, &["submit", path.to_str().unwrap()], &env);
    std::fs::remove_file(&path).ok();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("the manifest asks for approval auto"), "{stderr}");
}
