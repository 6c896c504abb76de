//! Bad input ends the release as Failed with a readable reason, is acknowledged (no retries), and
//! touches nothing else.

use convoy::release::{Stage, State};
use convoy_tests::moto::ACCOUNT;
use serde_json::json;

use crate::scenario::*;

pub async fn failure_of(backend: &MotoBackend, release: &str, body: &str) -> String {
    let upload = backend.upload(&format!("releases/web/{release}.json"), body).await;
    let response = invoke_manifest_uploaded(&backend.convoy, upload).await.expect("bad input is acknowledged");
    assert_eq!(response[0]["changed"], json!(true));
    let record = backend.record(&release_key(release)).await.expect("a record with the reason");
    let State::Failed { stage: Stage::Manifest, reason } = &record.state else {
        panic!("expected Failed at manifest, got {}", record.state)
    };
    assert!(convoy::status::render(&record).contains(reason.as_str()), "convoy status shows the reason");
    assert!(record.images.is_empty());
    reason.clone()
}

pub fn containers() -> Vec<String> {
    vec!["app".into()]
}

/// The bad manifests, each with its release id and a part of the reason its record must carry
/// (`convoy submit` refuses each with that same reason: `e2e/cli.rs`).
pub fn bad_manifests(backend: &MotoBackend) -> Vec<(&'static str, String, &'static str)> {
    let app = backend.uri("app", "x");
    vec![
        ("malformed", "{\"version\": 1, \"images\": ".into(), "not valid JSON"),
        ("noimages", r#"{"version": 1, "release": "noimages", "service": "web"}"#.into(), "missing field `images`"),
        (
            "emptyimages",
            r#"{"version": 1, "release": "emptyimages", "service": "web", "images": {}}"#.into(),
            "names no images",
        ),
        (
            "notecr",
            r#"{"version": 1, "release": "notecr", "service": "web", "images": {"app": "nginx:1.27"}}"#.into(),
            "not an ECR image URI",
        ),
        (
            "foreignrepo",
            json!({"version": 1, "release": "foreignrepo", "service": "web",
                   "images": {"app": format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/other:x")}})
            .to_string(),
            "is not one Convoy may deploy from",
        ),
        (
            "unsafeid",
            json!({"version": 1, "release": "a/../b", "service": "web", "images": {"app": app}}).to_string(),
            "unsafe in an S3 key",
        ),
        (
            "wrongtype",
            json!({"version": 1, "release": "wrongtype", "service": "web", "images": {"app": app}, "approval": 7})
                .to_string(),
            "does not match the version 1 format",
        ),
        (
            "oversized",
            json!({"version": 1, "release": "oversized", "service": "web", "images": {"app": app},
                   "padding": "x".repeat(70 * 1024)})
            .to_string(),
            "the limit is 65536 bytes",
        ),
        (
            "foreignregistry",
            json!({"version": 1, "release": "foreignregistry", "service": "web",
                   "images": {"app": app.replace(ACCOUNT, "999999999999")}})
            .to_string(),
            "is in account 999999999999's registry",
        ),
        (
            "duplicatekey",
            format!(
                r#"{{"version": 1, "release": "other", "release": "duplicatekey", "service": "web", "images": {{"app": "{app}"}}}}"#
            ),
            "names \"release\" twice",
        ),
        (
            "verifyspace",
            json!({"version": 1, "release": "verifyspace", "service": "web", "images": {"app": app},
                   "verify": {"path": "/health check", "expect_status": 200}})
            .to_string(),
            "without spaces or control characters",
        ),
        (
            "longid",
            json!({"version": 1, "release": "x".repeat(2000), "service": "web", "images": {"app": app}}).to_string(),
            "(2000 characters) is too long",
        ),
    ]
}

#[tokio::test]
async fn every_bad_manifest_fails_its_release_with_a_reason() {
    let backend = MotoBackend::new(&containers()).await;
    for (release, body, expected) in bad_manifests(&backend) {
        let reason = failure_of(&backend, release, &body).await;
        assert!(reason.contains(expected), "{release}: {reason:?} should contain {expected:?}");
        assert!(reason.len() <= 400, "{release}: a reason of {} characters", reason.len());
    }
}

#[tokio::test]
async fn a_service_convoy_may_not_deploy_fails_its_release() {
    let backend = MotoBackend::new(&containers()).await;
    let body =
        json!({"version": 1, "release": "r1", "service": "billing", "images": {"app": backend.uri("app", "r1")}});
    let upload = backend.upload("releases/billing/r1.json", &body.to_string()).await;
    invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    let key = convoy::names::ReleaseKey::new("billing".parse().unwrap(), "r1".parse().unwrap());
    let record = backend.convoy.store.load(&key).await.unwrap().unwrap().release;
    assert!(record.state.to_string().contains("service \"billing\" is not one Convoy may deploy"), "{}", record.state);
}

#[tokio::test]
async fn a_rejected_manifest_touches_no_other_release() {
    let backend = MotoBackend::new(&containers()).await;
    let good = manifest_v1(&backend, "good", &containers(), true);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/good.json", &good).await).await.unwrap();
    let before = backend.record(&release_key("good")).await.unwrap();
    failure_of(&backend, "bad", "not json").await;
    assert_eq!(backend.record(&release_key("good")).await.unwrap(), before);
}

#[tokio::test]
async fn a_corrected_manifest_uploaded_again_reopens_the_release() {
    let backend = MotoBackend::new(&containers()).await;
    failure_of(&backend, "fixme", "{").await;
    let (digest, _) = backend.push("app", "fixme").await;
    let fixed = manifest_v1(&backend, "fixme", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/fixme.json", &fixed).await).await.unwrap();
    let record = backend.record(&release_key("fixme")).await.unwrap();
    assert!(matches!(record.state, State::Deploying { .. }), "{}", record.state);
    assert_eq!(record.images[&"app".parse().unwrap()].digest.as_ref().unwrap().as_str(), digest);
    assert_eq!(record.timeline[0].event, "manifest-rejected", "the history keeps the rejection");
}

#[tokio::test]
async fn an_event_that_is_not_json_of_any_known_shape_is_acknowledged() {
    let backend = MotoBackend::new(&containers()).await;
    let response = invoke_manifest_uploaded(&backend.convoy, json!({"hello": "world"})).await.unwrap();
    assert!(response["ignored"].is_string());
    let response = invoke_image_pushed(&backend.convoy, json!([1, 2, 3])).await.unwrap();
    assert!(response["ignored"].is_string());
}
