//! CodeDeploy ending or rolling back a deployment on its own, on the in-memory fakes: the fake
//! deployer is told a deployment ended (no event sent) or that CodeDeploy created a rollback of
//! it, and Convoy meets each as it would CodeDeploy's.

use convoy::adapters::memory::DeployCall;
use convoy::names::DeploymentId;
use convoy::release::{DeploymentEnd, State};
use convoy_tests::fixtures;
use lambda_runtime::{Context, LambdaEvent};

use crate::scenario::*;

fn containers() -> Vec<String> {
    vec!["app".into(), "nginx".into()]
}

/// A release without a migration whose images are pinned: it is deploying.
async fn deploying(backend: &MemoryBackend, release: &str) -> DeploymentId {
    let manifest = manifest_v1(backend, release, &containers(), false);
    for container in containers() {
        let (_, push) = backend.push(&container, release).await;
        invoke_image_pushed(&backend.convoy, push).await.unwrap();
    }
    let upload = backend.upload(&format!("releases/web/{release}.json"), &manifest).await;
    invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    let record = backend.record(&release_key(release)).await.unwrap();
    let State::Deploying { deployment } = record.state else { panic!("expected Deploying, got {}", record.state) };
    deployment.as_str().parse().unwrap()
}

async fn lock_holder(backend: &MemoryBackend) -> Option<String> {
    let lock = backend.convoy.locks.load(&SERVICE.parse().unwrap()).await.unwrap();
    lock.and_then(|(lock, _)| lock.holder).map(|holder| holder.release.to_string())
}

#[tokio::test]
async fn a_deployment_that_ended_without_its_event_is_ended_by_the_reconciler() {
    let backend = MemoryBackend::new(&containers());
    let deployment = deploying(&backend, "e1").await;
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert!(matches!(backend.record(&release_key("e1")).await.unwrap().state, State::Deploying { .. }));
    assert_eq!(lock_holder(&backend).await.as_deref(), Some("e1"));

    // CodeDeploy fails the deployment; its state-change event is lost.
    backend.deployer.end(&deployment, DeploymentEnd::Failed);
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let record = backend.record(&release_key("e1")).await.unwrap();
    let State::RolledBack { reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains(&format!("deployment {deployment} ended Failed")), "{reason}");
    assert_eq!(lock_holder(&backend).await, None, "the service is free for the next release");
}

#[tokio::test]
async fn a_deployment_that_succeeded_without_its_event_succeeds() {
    let backend = MemoryBackend::new(&containers());
    let deployment = deploying(&backend, "e2").await;
    backend.deployer.end(&deployment, DeploymentEnd::Succeeded);
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(backend.record(&release_key("e2")).await.unwrap().state, State::Succeeded);
}

#[tokio::test]
async fn the_hook_of_codedeploys_rollback_is_let_through_and_a_foreign_ones_is_failed() {
    let backend = MemoryBackend::new(&containers());
    let deployment = deploying(&backend, "e3").await;
    assert_eq!(backend.deployer.start_rollback(&"d-UNKNOWN1".parse().unwrap()), None);
    let rollback = backend.deployer.start_rollback(&deployment).expect("a rollback of the release's deployment");
    let before = backend.record(&release_key("e3")).await.unwrap();

    // The rollback re-runs the hooks with its own id: CodeDeploy must hear Succeeded, or the
    // rollback itself fails.
    let hook = fixtures::codedeploy_hook(rollback.as_str(), "exec-rollback");
    convoy::handlers::verify(&backend.convoy, LambdaEvent::new(hook, Context::default())).await.unwrap();
    // A deployment CodeDeploy knows, but neither as Convoy's nor as a rollback: nobody said what
    // version to expect, so its hook fails.
    let foreign_deployment = backend.deployer.created_elsewhere("another-app", "another-group");
    let foreign = fixtures::codedeploy_hook(foreign_deployment.as_str(), "exec-foreign");
    convoy::handlers::verify(&backend.convoy, LambdaEvent::new(foreign, Context::default())).await.unwrap();

    let answers: Vec<DeployCall> =
        backend.deployer.calls().into_iter().filter(|c| matches!(c, DeployCall::AnswerHook { .. })).collect();
    assert_eq!(
        answers,
        [
            DeployCall::AnswerHook {
                deployment: rollback.to_string(),
                execution: "exec-rollback".into(),
                succeeded: true
            },
            DeployCall::AnswerHook {
                deployment: foreign_deployment.to_string(),
                execution: "exec-foreign".into(),
                succeeded: false
            },
        ]
    );
    assert_eq!(backend.record(&release_key("e3")).await.unwrap(), before, "the release is not touched");

    // CodeDeploy reports the rolled-back deployment stopped; the reconciler ends the release.
    backend.deployer.end(&deployment, DeploymentEnd::Stopped);
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let record = backend.record(&release_key("e3")).await.unwrap();
    assert!(matches!(record.state, State::RolledBack { .. }), "{}", record.state);
}

/// What docs/guides/ecs-native.md says of ECS native blue/green: Convoy never starts a native deployment, so
/// for a service that deploys natively no release holds the deploy lock, and the hook is answered
/// FAILED, which rolls the native deployment back. (The ECS native hook's reply is the answer.)
#[tokio::test]
async fn an_ecs_native_hook_with_no_release_holding_the_service_is_answered_failed() {
    let backend = MemoryBackend::new(&containers());
    let hook = fixtures::ecs_hook("memory", SERVICE, "ecs-exec-native", serde_json::json!({}));
    let reply = convoy::handlers::verify(&backend.convoy, LambdaEvent::new(hook, Context::default())).await.unwrap();
    assert_eq!(reply["hookStatus"], "FAILED", "{reply}");
    assert_eq!(reply["hookDetails"]["convoy"], format!("no Convoy release deploys service {SERVICE}"));
    assert!(backend.deployer.calls().is_empty(), "nothing continued, nothing rolled back by Convoy");
}
