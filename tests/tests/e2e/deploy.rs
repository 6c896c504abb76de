//! Deploy, verify on the test listener, and hand over the traffic shift: CodeDeploy on moto (its
//! missing operations through the stand-in, whose requests are asserted), real HTTP servers on
//! loopback as the green version.

use std::time::Duration;

use convoy::release::{Stage, State};
use convoy_tests::fixtures;
use convoy_tests::http::{self, Behaviour, Server};
use convoy_tests::standin::Phase;
use serde_json::{Value, json};

use crate::scenario::*;

pub(crate) fn containers() -> Vec<String> {
    vec!["app".into(), "nginx".into()]
}

pub(crate) fn probe() -> Value {
    json!({"count": 5, "interval_ms": 20, "failure_limit": 1, "timeout_ms": 300})
}

pub(crate) async fn invoke(convoy: &convoy::service::Convoy, handler: &str, payload: Value) -> Value {
    let event = lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default());
    // Boxed: a handler's future is large in debug builds, and a test awaits many in a row.
    let result = match handler {
        "verify" => Box::pin(convoy::handlers::verify(convoy, event)).await,
        "deployment-changed" => Box::pin(convoy::handlers::deployment_changed(convoy, event)).await,
        "migration-stopped" => Box::pin(convoy::handlers::migration_stopped(convoy, event)).await,
        other => panic!("no handler {other}"),
    };
    result.expect("the handler succeeds")
}

/// A release with no migration, its images pushed and manifest uploaded: it is deploying.
pub(crate) async fn deploying(backend: &MotoBackend, release: &str, manifest_extra: Value) -> String {
    backend.push("app", release).await;
    backend.push("nginx", release).await;
    let mut manifest: Value = serde_json::from_str(&manifest_v1(backend, release, &containers(), false)).unwrap();
    for (k, v) in manifest_extra.as_object().unwrap() {
        manifest[k] = v.clone();
    }
    let upload = backend.upload(&format!("releases/web/{release}.json"), &manifest.to_string()).await;
    invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    let record = backend.record(&release_key(release)).await.unwrap();
    let State::Deploying { deployment } = record.state else { panic!("expected Deploying, got {}", record.state) };
    deployment.to_string()
}

/// A backend whose test listener is a green server with `behaviour`.
pub(crate) async fn with_green(behaviour: Behaviour, approval: &str) -> (MotoBackend, Server) {
    let green = http::serve(behaviour).await;
    let backend = MotoBackend::with_listener(&containers(), &green.url, approval, probe()).await;
    (backend, green)
}

/// Runs the CodeDeploy hook for `release` and returns the record and the hook answers CodeDeploy
/// (the stand-in) took.
pub(crate) async fn verify_codedeploy(backend: &MotoBackend, release: &str) -> (convoy::release::Release, Vec<Value>) {
    let deployment = deploying(backend, release, json!({})).await;
    backend.codedeploy_hook(&deployment, "exec-1").await;
    let record = backend.record(&release_key(release)).await.unwrap();
    (record, backend.accepted_hook_answers())
}

#[tokio::test]
async fn the_green_version_passes_verification_and_the_hook_is_answered_succeeded() {
    let (backend, green) = with_green(Behaviour::version("v1"), "manual").await;
    let (record, answers) = verify_codedeploy(&backend, "v1").await;
    let deployment = record.deployment.as_ref().unwrap().id.clone().unwrap();
    assert_eq!(record.state, State::AwaitingApproval { deployment: deployment.clone() });
    assert_eq!(
        answers,
        vec![
            json!({"deploymentId": deployment.as_str(), "lifecycleEventHookExecutionId": "exec-1", "status": "Succeeded"})
        ]
    );
    let verification = record.verification.unwrap();
    assert_eq!(verification.probes.len(), 5);
    assert!(verification.probes.iter().all(|p| p.ok && p.status == Some(200) && p.url == format!("{}/", green.url)));
    assert_eq!(green.requests(), 5, "every probe went to the test listener");
}

#[tokio::test]
async fn a_5xx_fails_verification_and_the_hook() {
    let (backend, _green) = with_green(Behaviour { status: 500, ..Behaviour::version("v2") }, "manual").await;
    let (record, answers) = verify_codedeploy(&backend, "v2").await;
    assert_eq!(answers[0]["status"], "Failed");
    let State::RollingBack { reason, .. } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("status 500 (expected 200)"), "{reason}");
    assert_eq!(record.verification.unwrap().probes.len(), 2, "stopped as soon as the failure limit was passed");
}

#[tokio::test]
async fn the_old_version_fails_verification_by_body() {
    let (backend, _blue) = with_green(Behaviour::version("blue-0000"), "manual").await;
    let (record, answers) = verify_codedeploy(&backend, "v3").await;
    assert_eq!(answers[0]["status"], "Failed");
    assert!(record.state.to_string().contains("does not contain \"v3\""), "{}", record.state);
}

#[tokio::test]
async fn a_slow_green_fails_by_timeout() {
    let slow = Behaviour { delay: Duration::from_millis(800), ..Behaviour::version("v4") };
    let (backend, _green) = with_green(slow, "manual").await;
    let (record, answers) = verify_codedeploy(&backend, "v4").await;
    assert_eq!(answers[0]["status"], "Failed");
    let probes = record.verification.unwrap().probes;
    assert!(probes.iter().all(|p| p.failure.as_deref() == Some("no answer within 300 ms")), "{probes:?}");
}

#[tokio::test]
async fn a_refused_connection_fails_verification() {
    let backend = MotoBackend::with_listener(&containers(), &http::refused_url(), "manual", probe()).await;
    let (record, answers) = verify_codedeploy(&backend, "v5").await;
    assert_eq!(answers[0]["status"], "Failed");
    let probes = record.verification.unwrap().probes;
    assert!(probes[0].failure.as_deref().unwrap().contains("onnect"), "{:?}", probes[0].failure);
}

#[tokio::test]
async fn flapping_within_the_failure_limit_passes() {
    let flapping = Behaviour { pattern: vec![true, false, true, true, true], ..Behaviour::version("v6") };
    let (backend, _green) = with_green(flapping, "manual").await;
    let (record, answers) = verify_codedeploy(&backend, "v6").await;
    assert_eq!(answers[0]["status"], "Succeeded");
    assert!(matches!(record.state, State::AwaitingApproval { .. }));
}

#[tokio::test]
async fn flapping_beyond_the_failure_limit_fails() {
    let flapping = Behaviour { pattern: vec![true, false], ..Behaviour::version("v7") };
    let (backend, _green) = with_green(flapping, "manual").await;
    let (_, answers) = verify_codedeploy(&backend, "v7").await;
    assert_eq!(answers[0]["status"], "Failed");
}

#[tokio::test]
async fn a_rollback_rerun_of_the_hook_is_let_through_without_probing() {
    let (backend, green) = with_green(Behaviour { status: 503, ..Behaviour::version("v8") }, "manual").await;
    let (record, _) = verify_codedeploy(&backend, "v8").await;
    let deployment = record.deployment.unwrap().id.unwrap().to_string();
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::Failed), "the failed hook failed the deployment");
    // CodeDeploy rolls back with a new deployment, which runs the hooks again under its own id.
    let rollback = backend.standin.rollback_of(&deployment).expect("CodeDeploy rolled the deployment back");
    assert_ne!(rollback, deployment);
    let probes_before = green.requests();
    backend.codedeploy_hook(&rollback, "exec-rollback").await;
    assert_eq!(green.requests(), probes_before, "no probe");
    let answers = backend.accepted_hook_answers();
    assert_eq!(
        answers[1],
        json!({"deploymentId": rollback, "lifecycleEventHookExecutionId": "exec-rollback", "status": "Succeeded"})
    );
    // The deployment ends failed; the rollback's own end is not the release's. The release ends
    // failed at verification, with its evidence.
    backend.codedeploy_reports(&deployment, "FAILURE").await;
    backend.standin.ended_elsewhere(&rollback, Phase::Succeeded);
    backend.codedeploy_reports(&rollback, "SUCCESS").await;
    let record = backend.record(&release_key("v8")).await.unwrap();
    assert!(matches!(record.state, State::Failed { stage: Stage::Verification, .. }), "{}", record.state);
}

#[tokio::test]
async fn a_manifest_cannot_steer_the_probe_to_another_host() {
    let (backend, green) = with_green(Behaviour::version("s1"), "manual").await;
    let evil = http::serve(Behaviour::version("s1")).await;
    let evil_host = evil.url.trim_start_matches("http://");
    // A path that names another host is refused with the manifest.
    backend.push("app", "s0").await;
    let mut manifest: Value = serde_json::from_str(&manifest_v1(&backend, "s0", &containers(), false)).unwrap();
    manifest["verify"] = json!({"path": format!("//{evil_host}/"), "expect_status": 200});
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/s0.json", &manifest.to_string()).await)
        .await
        .unwrap();
    let record = backend.record(&release_key("s0")).await.unwrap();
    assert!(matches!(record.state, State::Failed { stage: Stage::Manifest, .. }), "{}", record.state);
    // A plain path is appended to the operator's listener and probed besides the operator's own
    // path (a manifest adds checks, never replaces them); the probes go there and only there.
    let deployment = deploying(&backend, "s1", json!({"verify": {"path": "/status", "expect_status": 200}})).await;
    backend.codedeploy_hook(&deployment, "exec-1").await;
    assert_eq!(backend.accepted_hook_answers()[0]["status"], "Succeeded");
    let record = backend.record(&release_key("s1")).await.unwrap();
    let urls: Vec<String> = record.verification.unwrap().probes.into_iter().map(|p| p.url).collect();
    let (operators, manifests) = (format!("{}/", green.url), format!("{}/status", green.url));
    assert!(urls.iter().all(|u| *u == operators || *u == manifests), "{urls:?}");
    assert_eq!((urls[0].as_str(), urls[1].as_str()), (operators.as_str(), manifests.as_str()), "{urls:?}");
    assert_eq!(evil.requests(), 0);
}

#[tokio::test]
async fn approval_is_refused_before_verification_passes_and_continues_the_deployment_after() {
    let (backend, _green) = with_green(Behaviour::version("a1"), "manual").await;
    let key = release_key("a1");
    let deployment = deploying(&backend, "a1", json!({})).await;
    let refused = backend.convoy.decide(&key, true).await.unwrap_err();
    assert!(refused.to_string().contains("does not await approval"), "{refused}");
    assert!(backend.standin.calls_to("ContinueDeployment").is_empty());

    backend.codedeploy_hook(&deployment, "exec-1").await;
    assert_eq!(backend.accepted_hook_answers()[0]["status"], "Succeeded");
    // A person approves once CodeDeploy waits for the reroute.
    backend.standin.waits(&deployment);
    let (alice, as_alice) = backend.person("alice").await;
    as_alice.decide(&key, true).await.unwrap();
    backend.cloudtrail_delivers_last_call().await;
    let record = backend.record(&key).await.unwrap();
    assert!(matches!(record.state, State::ShiftingTraffic { .. }), "{}", record.state);
    assert_eq!(
        backend.standin.calls_to("ContinueDeployment"),
        vec![json!({"deploymentId": deployment, "deploymentWaitType": "READY_WAIT"})]
    );
    assert!(backend.standin.refusals_of("ContinueDeployment").is_empty());
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::Shifting));
    backend.standin.finish(&deployment);
    backend.codedeploy_reports(&deployment, "SUCCESS").await;
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::Succeeded);
    assert_eq!(record.approval.unwrap().by, alice, "the IAM user as AWS names it");
}

#[tokio::test]
async fn approval_is_refused_when_verification_failed() {
    let (backend, _green) = with_green(Behaviour::version("other"), "manual").await;
    verify_codedeploy(&backend, "a2").await;
    let refused = backend.convoy.decide(&release_key("a2"), true).await.unwrap_err();
    assert!(refused.to_string().contains("does not await approval"), "{refused}");
}

#[tokio::test]
async fn rejection_stops_the_deployment_with_rollback() {
    let (backend, _green) = with_green(Behaviour::version("a3"), "manual").await;
    let (record, _) = verify_codedeploy(&backend, "a3").await;
    let deployment = record.deployment.unwrap().id.unwrap().to_string();
    let (bob, as_bob) = backend.person("bob").await;
    as_bob.decide(&release_key("a3"), false).await.unwrap();
    let record = backend.cloudtrail_delivers_last_call().await;
    assert_eq!(record["userIdentity"]["arn"], bob.as_str(), "CloudTrail names the caller from its access key");
    assert_eq!(
        backend.standin.calls_to("StopDeployment"),
        vec![json!({"deploymentId": deployment, "autoRollbackEnabled": true})]
    );
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::Stopped), "CodeDeploy took the stop");
    backend.codedeploy_reports(&deployment, "STOP").await;
    let record = backend.record(&release_key("a3")).await.unwrap();
    assert_eq!(record.state, State::RolledBack { reason: format!("rejected by {bob}") });
}

/// A release with a migration, whose task's STOPPED event (exit 0) arrives ten times at once.
pub(crate) async fn migration_succeeds_ten_times_at_once(
    backend: &MotoBackend,
    release: &str,
) -> convoy::names::ReleaseKey {
    backend.push("app", release).await;
    backend.push("nginx", release).await;
    let manifest = manifest_v1(backend, release, &containers(), true);
    let upload = backend.upload(&format!("releases/web/{release}.json"), &manifest).await;
    invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    let key = release_key(release);
    let State::Migrating { task } = backend.record(&key).await.unwrap().state else { panic!("not migrating") };
    let stopped = backend.migration_exited_0(&key, task.as_str());
    let deliveries: Vec<_> = (0..10)
        .map(|_| {
            let (convoy, event) = (backend.convoy.clone(), stopped.clone());
            tokio::spawn(async move { invoke(&convoy, "migration-stopped", event).await })
        })
        .collect();
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    key
}

#[tokio::test]
async fn duplicated_and_concurrent_migration_successes_create_exactly_one_deployment() {
    let backend = MotoBackend::new(&containers()).await;
    let key = migration_succeeds_ten_times_at_once(&backend, "x1").await;
    assert!(matches!(backend.record(&key).await.unwrap().state, State::Deploying { .. }));
    assert_eq!(backend.deployments(&key).await, 1, "exactly one CodeDeploy deployment exists in moto");
}

#[tokio::test]
async fn a_newer_release_waits_for_the_one_in_flight_and_an_older_one_is_superseded() {
    let backend = MotoBackend::new(&containers()).await;
    let first = deploying(&backend, "q1", json!({})).await;
    // q0 was opened before q2 but gets ready after it: it must never deploy.
    let q0 = manifest_v1(&backend, "q0", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/q0.json", &q0).await).await.unwrap();
    backend.push("app", "q2").await;
    backend.push("nginx", "q2").await;
    let q2 = manifest_v1(&backend, "q2", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/q2.json", &q2).await).await.unwrap();
    assert_eq!(
        backend.record(&release_key("q2")).await.unwrap().state,
        State::Queued { behind: "q1".parse().unwrap() }
    );
    assert_eq!(backend.deployments(&release_key("q2")).await, 0, "the deployment in flight is not interrupted");

    backend.codedeploy_reports(&first, "SUCCESS").await;
    assert_eq!(backend.record(&release_key("q1")).await.unwrap().state, State::Succeeded);
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert!(matches!(backend.record(&release_key("q2")).await.unwrap().state, State::Deploying { .. }));

    let (_, push_app) = backend.push("app", "q0").await;
    let (_, push_nginx) = backend.push("nginx", "q0").await;
    invoke_image_pushed(&backend.convoy, push_app).await.unwrap();
    invoke_image_pushed(&backend.convoy, push_nginx).await.unwrap();
    let record = backend.record(&release_key("q0")).await.unwrap();
    assert_eq!(record.state, State::Superseded { by: "q2".parse().unwrap() });
    assert_eq!(backend.deployments(&release_key("q0")).await, 0);
}

#[tokio::test]
async fn the_end_of_a_deployment_starts_the_queued_release_at_once_and_only_once() {
    let backend = MotoBackend::new(&containers()).await;
    let first = deploying(&backend, "w1", json!({})).await;
    backend.push("app", "w2").await;
    backend.push("nginx", "w2").await;
    let w2 = manifest_v1(&backend, "w2", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/w2.json", &w2).await).await.unwrap();
    assert_eq!(
        backend.record(&release_key("w2")).await.unwrap().state,
        State::Queued { behind: "w1".parse().unwrap() }
    );

    // No reconciler run: the end event itself hands the service to the queued release.
    backend.codedeploy_ends(&first, "SUCCESS");
    let ended = fixtures::codedeploy_state_change(&backend.application, &backend.group, &first, "SUCCESS");
    invoke(&backend.convoy, "deployment-changed", ended.clone()).await;
    assert!(matches!(backend.record(&release_key("w2")).await.unwrap().state, State::Deploying { .. }));
    assert_eq!(backend.deployments(&release_key("w2")).await, 1);

    // A repeated end event and a reconciler run start nothing more.
    invoke(&backend.convoy, "deployment-changed", ended).await;
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(backend.deployments(&release_key("w2")).await, 1);
}

/// `verify` as Lambda runs it, with `deadline_in` left before the invocation's deadline.
async fn verify_with_deadline(convoy: &convoy::service::Convoy, payload: Value, deadline_in: Duration) -> Value {
    let mut context = lambda_runtime::Context::default();
    context.deadline = (chrono::Utc::now() + deadline_in).timestamp_millis() as u64;
    let event = lambda_runtime::LambdaEvent::new(payload, context);
    convoy::handlers::verify(convoy, event).await.expect("the hook is answered, not failed into retries")
}

/// The deadline the tests give `verify`: a little more than its answer margin.
const SHORT_DEADLINE: Duration = Duration::from_secs(11);

#[tokio::test]
async fn probes_that_outlast_the_function_fail_the_hook_before_its_deadline_with_the_reason_recorded() {
    // 60 probes a second apart: the analysis would take a minute; the function has 11 s.
    let green = http::serve(Behaviour::version("t1")).await;
    let long = json!({"count": 60, "interval_ms": 1000, "failure_limit": 1, "timeout_ms": 300});
    let backend = MotoBackend::with_listener(&containers(), &green.url, "manual", long).await;
    let deployment = deploying(&backend, "t1", json!({})).await;
    backend.standin.hook_invoked(&deployment, "exec-1");

    let started = std::time::Instant::now();
    let answer =
        verify_with_deadline(&backend.convoy, fixtures::codedeploy_hook(&deployment, "exec-1"), SHORT_DEADLINE).await;
    let took = started.elapsed();

    assert!(took < SHORT_DEADLINE, "answered after {took:?}");
    assert_eq!(answer["succeeded"], json!(false), "{answer}");
    assert_eq!(backend.accepted_hook_answers()[0]["status"], "Failed");
    let record = backend.record(&release_key("t1")).await.unwrap();
    let State::RollingBack { reason, .. } = &record.state else { panic!("expected RollingBack, got {}", record.state) };
    assert!(reason.contains("deadline"), "{reason}");
}

/// A store whose reads take a minute, as a throttled or unreachable S3 may.
struct SlowStore(std::sync::Arc<dyn convoy::ports::ReleaseStore>);

#[async_trait::async_trait]
impl convoy::ports::ReleaseStore for SlowStore {
    async fn load(
        &self,
        key: &convoy::names::ReleaseKey,
    ) -> Result<Option<convoy::ports::Stored>, convoy::error::StoreError> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        self.0.load(key).await
    }
    async fn create(
        &self,
        release: &convoy::release::Release,
    ) -> Result<convoy::ports::RecordVersion, convoy::error::StoreError> {
        self.0.create(release).await
    }
    async fn replace(
        &self,
        release: &convoy::release::Release,
        expected: &convoy::ports::RecordVersion,
    ) -> Result<convoy::ports::RecordVersion, convoy::error::StoreError> {
        self.0.replace(release, expected).await
    }
}

/// The deployment index of that store: the record it reads with the index is as slow.
struct SlowIndex(std::sync::Arc<dyn convoy::ports::DeploymentIndex>);

#[async_trait::async_trait]
impl convoy::ports::DeploymentIndex for SlowIndex {
    async fn note(
        &self,
        deployment: &convoy::names::DeploymentRef,
        release: &convoy::names::ReleaseKey,
    ) -> Result<(), convoy::error::StoreError> {
        self.0.note(deployment, release).await
    }
    async fn find(
        &self,
        deployment: &convoy::names::DeploymentRef,
    ) -> Result<Option<convoy::names::ReleaseKey>, convoy::error::StoreError> {
        self.0.find(deployment).await
    }
    async fn find_record(
        &self,
        deployment: &convoy::names::DeploymentRef,
    ) -> Result<Option<convoy::ports::Stored>, convoy::error::StoreError> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        self.0.find_record(deployment).await
    }
}

#[tokio::test]
async fn a_store_that_does_not_answer_still_gets_the_hook_failed_before_the_deadline() {
    let (backend, _green) = with_green(Behaviour::version("t2"), "manual").await;
    let deployment = deploying(&backend, "t2", json!({})).await;
    backend.standin.hook_invoked(&deployment, "exec-1");
    let mut slow = backend.convoy.clone();
    slow.store = std::sync::Arc::new(SlowStore(backend.convoy.store.clone()));
    slow.deployments = std::sync::Arc::new(SlowIndex(backend.convoy.deployments.clone()));

    let started = std::time::Instant::now();
    let answer = verify_with_deadline(&slow, fixtures::codedeploy_hook(&deployment, "exec-1"), SHORT_DEADLINE).await;
    let took = started.elapsed();

    assert!(took < SHORT_DEADLINE, "answered after {took:?}");
    assert_eq!(answer["succeeded"], json!(false), "{answer}");
    assert_eq!(backend.accepted_hook_answers()[0]["status"], "Failed");
    // The record could not be written in time; the deployment's end is what records the failure.
    assert!(matches!(backend.record(&release_key("t2")).await.unwrap().state, State::Deploying { .. }));
    backend.codedeploy_reports(&deployment, "FAILURE").await;
    let record = backend.record(&release_key("t2")).await.unwrap();
    assert!(record.state.is_terminal(), "{}", record.state);
}
