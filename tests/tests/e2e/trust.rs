//! Attacks on the trust boundary, replayed: a record written by someone who can write to the
//! state bucket never makes Convoy reroute production traffic with its own role.

use convoy::names::{DeploymentId, HookExecutionId};
use convoy::release::{ApprovalDecision, Hook, State, Verification, VerificationOutcome};
use serde_json::json;

use crate::deploy::{deploying, with_green};
use crate::scenario::*;
use convoy_tests::http::Behaviour;

/// A deployment of the service's group that someone created straight through CodeDeploy (no
/// Convoy marker), and that waits for its reroute.
async fn someone_elses_waiting_deployment(backend: &MotoBackend) -> String {
    let app_spec = json!({"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service",
        "Properties": {"TaskDefinition": backend.ecs.task_definition,
                       "LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": 80}}}}]});
    let revision = aws_sdk_codedeploy::types::RevisionLocation::builder()
        .revision_type(aws_sdk_codedeploy::types::RevisionLocationType::AppSpecContent)
        .app_spec_content(aws_sdk_codedeploy::types::AppSpecContent::builder().content(app_spec.to_string()).build())
        .build();
    let created = aws_sdk_codedeploy::Client::new(&backend.world.sdk)
        .create_deployment()
        .application_name(&backend.application)
        .deployment_group_name(&backend.group)
        .revision(revision)
        .description("hand-made")
        .send()
        .await
        .expect("a deployment of the group");
    let id = created.deployment_id.expect("an id");
    backend.standin.register(&id, &format!("{}:{}", backend.world.cluster(), crate::scenario::SERVICE));
    backend.standin.hook_invoked(&id, "their-exec");
    let deployment = DeploymentId::new(&id).unwrap();
    backend
        .convoy
        .codedeploy
        .answer_hook(&deployment, &HookExecutionId::new("their-exec").unwrap(), true)
        .await
        .unwrap();
    backend.standin.waits(&id);
    id
}

/// Overwrites the release's record as someone with write access to the state bucket would.
async fn forge(backend: &MotoBackend, release: &str, edit: impl FnOnce(&mut convoy::release::Release)) {
    let key = release_key(release);
    let stored = backend.convoy.store.load(&key).await.unwrap().unwrap();
    let mut forged = stored.release.clone();
    edit(&mut forged);
    backend.convoy.store.replace(&forged, &stored.version).await.expect("the forger writes the record");
}

#[tokio::test]
async fn a_forged_shifting_traffic_record_never_continues_a_deployment_convoy_did_not_create() {
    let (backend, _green) = with_green(Behaviour::version("f1"), "manual").await;
    deploying(&backend, "f1", json!({})).await;
    let theirs = someone_elses_waiting_deployment(&backend).await;
    forge(&backend, "f1", |r| {
        r.state = State::ShiftingTraffic { deployment: DeploymentId::new(&theirs).unwrap().into() }
    })
    .await;

    let later = chrono::Utc::now() + chrono::Duration::minutes(5);
    backend.convoy.reconcile(later).await.unwrap();
    assert!(backend.standin.calls_to("ContinueDeployment").is_empty(), "no reroute with Convoy's role");
}

#[tokio::test]
async fn a_forged_auto_approval_in_the_past_never_continues_a_deployment_convoy_did_not_create() {
    let (backend, _green) = with_green(Behaviour::version("f2"), "manual").await;
    deploying(&backend, "f2", json!({})).await;
    let theirs = someone_elses_waiting_deployment(&backend).await;
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    forge(&backend, "f2", |r| {
        r.state = State::AwaitingApproval { deployment: DeploymentId::new(&theirs).unwrap().into() };
        r.verification = Some(Verification {
            hook: Hook::CodeDeploy {
                deployment_id: DeploymentId::new(&theirs).unwrap(),
                execution_id: HookExecutionId::new("x").unwrap(),
            },
            started_at: past,
            probes: Vec::new(),
            outcome: Some(VerificationOutcome { passed: true, reason: "faked".into() }),
            finished_at: Some(past),
            metrics: Vec::new(),
        });
        if let Some(deployment) = r.deployment.as_mut() {
            deployment.auto_approve_at = Some(past);
        }
    })
    .await;

    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert!(backend.standin.calls_to("ContinueDeployment").is_empty(), "no reroute with Convoy's role");
}

#[tokio::test]
async fn convoys_own_waiting_deployment_is_still_continued_by_the_reconciler() {
    let (backend, _green) = with_green(Behaviour::version("f3"), "manual").await;
    let deployment = deploying(&backend, "f3", json!({})).await;
    backend.codedeploy_hook(&deployment, "exec-1").await;
    backend.standin.waits(&deployment);
    // Approved by policy while Convoy's continue call failed: the record shifts, AWS waits. (A
    // person's approval is their own continue: Convoy never repeats it with its role.)
    forge(&backend, "f3", |r| {
        r.state = State::ShiftingTraffic { deployment: DeploymentId::new(&deployment).unwrap().into() };
        let by = "policy (auto)".into();
        r.approval = Some(ApprovalDecision { approved: true, by, at: chrono::Utc::now(), actor: None });
    })
    .await;
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(
        backend.standin.calls_to("ContinueDeployment"),
        vec![json!({"deploymentId": deployment, "deploymentWaitType": "READY_WAIT"})]
    );
}

#[tokio::test]
async fn a_forged_record_of_a_release_whose_id_starts_another_never_continues_that_releases_deployment() {
    // The marker "convoy:web:f4" is a prefix of "convoy:web:f4-rc1": a substring match took
    // f4-rc1's deployment for f4's.
    let (backend, _green) = with_green(Behaviour::version("f4-rc1"), "manual").await;
    let deployment = deploying(&backend, "f4-rc1", json!({})).await;
    backend.codedeploy_hook(&deployment, "exec-1").await;
    backend.standin.waits(&deployment);
    let mut forged = backend.convoy.store.load(&release_key("f4-rc1")).await.unwrap().unwrap().release;
    forged.key = release_key("f4");
    forged.state = State::ShiftingTraffic { deployment: DeploymentId::new(&deployment).unwrap().into() };
    forged.approval =
        Some(ApprovalDecision { approved: true, by: "alice".into(), at: chrono::Utc::now(), actor: None });
    backend.convoy.store.create(&forged).await.expect("the forger writes a record");
    backend.convoy.active.mark_active(&forged.key).await.unwrap();

    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert!(backend.standin.calls_to("ContinueDeployment").is_empty(), "f4 may not reroute f4-rc1's deployment");
}
