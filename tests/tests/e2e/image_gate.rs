//! The image gate end to end on moto: every pinned digest of the release is judged against the
//! service's image policy (ECR's scan findings through the stand-in where moto's are fixed, the
//! managed-signing status the stand-in keeps) before the migration's `RunTask`.

use convoy::names::ReleaseKey;
use convoy::release::{Stage, State};
use convoy_tests::standin::ecr::ScanFinding;
use serde_json::{Value, json};

use crate::scenario::*;

fn containers() -> Vec<String> {
    vec!["app".into(), "nginx".into()]
}

const CRITICAL: &str = "CVE-2026-0001";
const PROFILE: &str = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/convoy_ci";

/// A service deploying with CodeDeploy whose settings hold `image_policy`.
async fn gated(policy: Value) -> MotoBackend {
    let listener = convoy_tests::http::refused_url();
    MotoBackend::with_gates(&containers(), &listener, "manual", json!({}), json!({"image_policy": policy})).await
}

/// Pushes the release's images, lets `scan` say what ECR's scan of each digest is (container,
/// repository, digest), then uploads its manifest (with a migration): the handler pins every
/// image and the gate judges them.
async fn released(backend: &MotoBackend, release: &str, scan: impl Fn(&str, &str, &str)) -> (ReleaseKey, Value) {
    for container in containers() {
        let (digest, _) = backend.push(&container, release).await;
        scan(&container, &backend.world.repo(&container), &digest);
    }
    let manifest = manifest_v1(backend, release, &containers(), true);
    let upload = backend.upload(&format!("releases/web/{release}.json"), &manifest).await;
    let answer = invoke_manifest_uploaded(&backend.convoy, upload).await.expect("acknowledged");
    (release_key(release), answer)
}

/// The task definitions of this test's own web service and its migration (moto's account is
/// shared by the tests that run beside this one, so the whole account's count would race them).
async fn task_definitions(backend: &MotoBackend) -> usize {
    let id = &backend.world.id;
    let family = if id.is_empty() { "web".to_owned() } else { format!("web-{id}") };
    let listed = backend.ecs_client().list_task_definitions().family_prefix(family).send().await;
    listed.expect("ListTaskDefinitions").task_definition_arns().len()
}

#[tokio::test]
async fn a_critical_finding_fails_the_release_at_the_gate_with_no_run_task() {
    let backend = gated(json!({"max_severity": "HIGH"})).await;
    let before = task_definitions(&backend).await;
    let (key, _) = released(&backend, "g1", |container, repository, digest| {
        let findings = if container == "app" { vec![ScanFinding::basic(CRITICAL, "CRITICAL")] } else { Vec::new() };
        backend.standin.scan_complete(repository, digest, findings);
    })
    .await;
    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Gate, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("app (") && reason.contains(&format!("{CRITICAL} CRITICAL")), "{reason}");
    assert!(!reason.contains("nginx ("), "the clean image is not blamed: {reason}");
    assert_eq!(backend.migration_tasks(&key).await, 0, "no RunTask");
    assert_eq!(task_definitions(&backend).await, before, "no task definition registered");
    let gate = record.gate.as_ref().expect("the gate's evidence");
    let app = gate.images.iter().find(|i| i.container == "app").unwrap();
    assert_eq!(app.failing[0].id, CRITICAL);
    let shown = convoy::status::render(&record);
    assert!(shown.contains(&format!("failing    {CRITICAL} CRITICAL")), "{shown}");
}

#[tokio::test]
async fn the_same_finding_allowed_until_a_future_date_passes_and_says_what_it_passed_on() {
    let until = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let backend = gated(json!({"max_severity": "HIGH", "allow": [{"id": CRITICAL, "until": until}]})).await;
    let (key, _) = released(&backend, "g2", |container, repository, digest| {
        let findings = if container == "app" { vec![ScanFinding::basic(CRITICAL, "CRITICAL")] } else { Vec::new() };
        backend.standin.scan_complete(repository, digest, findings);
    })
    .await;
    let record = backend.record(&key).await.unwrap();
    assert!(matches!(record.state, State::Migrating { .. }), "{}", record.state);
    assert_eq!(backend.migration_tasks(&key).await, 1);
    let gate = record.gate.as_ref().unwrap();
    assert_eq!(gate.verdict, "passed");
    let passed = record.timeline.iter().find(|e| e.event == "gate-passed").expect("gate-passed");
    assert!(passed.detail.contains(&format!("{CRITICAL} CRITICAL allowed until")), "{}", passed.detail);
}

#[tokio::test]
async fn an_expired_allowance_fails_and_says_it_expired() {
    let until = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let backend = gated(json!({"max_severity": "HIGH", "allow": [{"id": CRITICAL, "until": until}]})).await;
    let (key, _) = released(&backend, "g3", |container, repository, digest| {
        let findings =
            if container == "app" { vec![ScanFinding::enhanced(CRITICAL, "CRITICAL", "YES")] } else { Vec::new() };
        backend.standin.scan_complete(repository, digest, findings);
    })
    .await;
    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Gate, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("its allowance expired at"), "{reason}");
    assert!(reason.contains("fix available"), "Inspector's fix state is kept: {reason}");
    assert_eq!(backend.migration_tasks(&key).await, 0);
}

#[tokio::test]
async fn an_image_never_scanned_fails_unless_the_policy_allows_it_and_says_so() {
    let backend = gated(json!({"max_severity": "HIGH"})).await;
    // No scan at all: moto answers ScanNotFoundException (no StartImageScan was made).
    let (key, _) = released(&backend, "g4", |_, _, _| {}).await;
    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Gate, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("not scanned"), "{reason}");

    let backend = gated(json!({"max_severity": "HIGH", "unscanned": "allow"})).await;
    let (key, _) = released(&backend, "g5", |_, _, _| {}).await;
    let record = backend.record(&key).await.unwrap();
    assert!(matches!(record.state, State::Migrating { .. }), "{}", record.state);
    let note = record.gate.unwrap().images[0].note.clone().unwrap();
    assert!(note.contains("allowed by policy"), "{note}");
}

#[tokio::test]
async fn a_scan_in_progress_waits_and_the_completed_scan_replayed_and_reordered_resumes_the_release_once() {
    let backend = gated(json!({"max_severity": "HIGH"})).await;
    let digests = std::sync::Mutex::new(Vec::new());
    let (key, _) = released(&backend, "g6", |container, repository, digest| {
        if container == "app" {
            backend.standin.scan_in_progress(repository, digest);
        } else {
            backend.standin.scan_complete(repository, digest, Vec::new());
        }
        digests.lock().unwrap().push((repository.to_owned(), digest.to_owned()));
    })
    .await;
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::Gating { next: Stage::Migration });
    assert_eq!(backend.migration_tasks(&key).await, 0, "nothing runs while a scan is in progress");
    let digests = digests.into_inner().unwrap();
    let event = |(repository, digest): &(String, String)| {
        convoy_tests::fixtures::ecr_scan(convoy_tests::moto::ACCOUNT, repository, digest)
    };
    // Reordered: the clean image's scan event arrives while the other scan still runs.
    invoke_image_pushed(&backend.convoy, event(&digests[1])).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::Gating { next: Stage::Migration }, "still waiting");

    backend.standin.scan_complete(&digests[0].0, &digests[0].1, vec![ScanFinding::basic("CVE-2026-0002", "LOW")]);
    let (a, b, c) = tokio::join!(
        invoke_image_pushed(&backend.convoy, event(&digests[0])),
        invoke_image_pushed(&backend.convoy, event(&digests[0])),
        invoke_image_pushed(&backend.convoy, event(&digests[1])),
    );
    for answer in [a, b, c] {
        answer.expect("acknowledged");
    }
    invoke_image_pushed(&backend.convoy, event(&digests[0])).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    assert!(matches!(record.state, State::Migrating { .. }), "{}", record.state);
    assert_eq!(backend.migration_tasks(&key).await, 1, "exactly one RunTask");
    let passes = record.timeline.iter().filter(|e| e.event == "gate-passed").count();
    assert_eq!(passes, 1, "the gate passed once");
}

#[tokio::test]
async fn an_unsigned_image_fails_when_a_signature_is_required() {
    let backend = gated(json!({"max_severity": "HIGH", "signing_profiles": [PROFILE]})).await;
    let (key, _) = released(&backend, "g7", |container, repository, digest| {
        backend.standin.scan_complete(repository, digest, Vec::new());
        if container == "app" {
            backend.standin.signed(repository, digest, PROFILE, "COMPLETE");
        }
    })
    .await;
    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Gate, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("nginx (") && reason.contains(&format!("not signed by {PROFILE}")), "{reason}");
    assert!(!reason.contains("app ("), "the signed image passed: {reason}");
    assert_eq!(backend.migration_tasks(&key).await, 0);
    let app = record.gate.unwrap().images.into_iter().find(|i| i.container == "app").unwrap();
    assert_eq!(app.signatures[0].profile, PROFILE);
}

#[tokio::test]
async fn findings_on_several_pages_are_all_read() {
    let backend = gated(json!({"max_severity": "HIGH"})).await;
    let (key, _) = released(&backend, "g8", |container, repository, digest| {
        let mut findings: Vec<ScanFinding> =
            (0..1000).map(|n| ScanFinding::basic(&format!("CVE-2026-{n:05}"), "LOW")).collect();
        if container == "app" {
            findings.push(ScanFinding::basic(CRITICAL, "CRITICAL"));
        }
        backend.standin.scan_complete(repository, digest, findings);
    })
    .await;
    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Gate, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains(CRITICAL), "the finding on the second page counts: {reason}");
    let pages = backend.standin.calls_of("DescribeImageScanFindings").len();
    assert_eq!(pages, 3, "two pages for app, one for nginx");
}
