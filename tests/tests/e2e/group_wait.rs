//! The traffic shift waits for the approval: Convoy deploys only into a CodeDeploy group that holds
//! the new version at READY_WAIT (`STOP_DEPLOYMENT` with a wait time). moto keeps the group's
//! `blueGreenDeploymentConfiguration` and returns it from `GetDeploymentGroup`.

use aws_sdk_codedeploy::types::DeploymentReadyAction;
use convoy::release::{Stage, State};

use crate::scenario::*;

fn containers() -> Vec<String> {
    vec!["app".into(), "nginx".into()]
}

/// The backend's Convoy, its service pointed at a group `group` made with `action` and `wait`.
async fn deploying_into(
    backend: &MotoBackend,
    group: &str,
    action: DeploymentReadyAction,
    wait: i32,
) -> convoy::service::Convoy {
    backend.world.codedeploy_group(SERVICE, group, action, wait).await;
    let mut convoy = backend.convoy.clone();
    let settings = convoy.config.services.get_mut(&SERVICE.parse().unwrap()).unwrap();
    let convoy::settings::DeployTarget::CodeDeploy(target) = &mut settings.deploy else { panic!("not codedeploy") };
    target.deployment_group = group.to_owned();
    convoy
}

async fn deployments_in(backend: &MotoBackend, group: &str) -> usize {
    let codedeploy = aws_sdk_codedeploy::Client::new(&backend.world.sdk);
    let listed = codedeploy.list_deployments().application_name(&backend.application).deployment_group_name(group);
    listed.send().await.unwrap().deployments().len()
}

async fn ready_release(backend: &MotoBackend, convoy: &convoy::service::Convoy, release: &str) {
    backend.push("app", release).await;
    backend.push("nginx", release).await;
    let manifest = manifest_v1(backend, release, &containers(), false);
    let upload = backend.upload(&format!("releases/web/{release}.json"), &manifest).await;
    invoke_manifest_uploaded(convoy, upload).await.unwrap();
}

#[tokio::test]
async fn a_group_that_continues_by_itself_makes_convoy_refuse_to_deploy_and_start_nothing() {
    let backend = MotoBackend::new(&containers()).await;
    let convoy = deploying_into(&backend, "web-continue", DeploymentReadyAction::ContinueDeployment, 0).await;
    ready_release(&backend, &convoy, "g1").await;

    let record = backend.record(&release_key("g1")).await.unwrap();
    let State::Failed { stage: Stage::Deployment, reason } = &record.state else {
        panic!("expected Failed at deployment, got {}", record.state)
    };
    assert!(
        reason.contains("web-continue: the deployment group does not wait for a person: CONTINUE_DEPLOYMENT"),
        "{reason}"
    );
    assert!(reason.contains("actionOnTimeout STOP_DEPLOYMENT with waitTimeInMinutes > 0"), "{reason}");
    assert!(
        backend.standin.log().iter().all(|r| r.operation != "CreateDeployment"),
        "no CreateDeployment reached moto"
    );
    assert!(backend.standin.log().iter().any(|r| r.operation == "GetDeploymentGroup"), "the group was asked");
    assert_eq!(deployments_in(&backend, "web-continue").await, 0);
    assert!(record.deployment.is_none(), "nothing was claimed");

    // A replay of the upload and the reconciler's runs start nothing either.
    let manifest = manifest_v1(&backend, "g1", &containers(), false);
    let (version, size) = backend.world.upload("releases/web/g1.json", &manifest).await;
    let replay =
        convoy_tests::fixtures::s3_eventbridge(&backend.world.bucket, "releases/web/g1.json", version.as_deref(), size);
    invoke_manifest_uploaded(&convoy, replay).await.unwrap();
    convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(deployments_in(&backend, "web-continue").await, 0);
    assert!(backend.standin.log().iter().all(|r| r.operation != "CreateDeployment"));
}

#[tokio::test]
async fn a_group_that_stops_without_a_wait_time_is_refused_too() {
    let backend = MotoBackend::new(&containers()).await;
    let convoy = deploying_into(&backend, "web-nowait", DeploymentReadyAction::StopDeployment, 0).await;
    ready_release(&backend, &convoy, "g2").await;
    let record = backend.record(&release_key("g2")).await.unwrap();
    assert!(
        matches!(&record.state, State::Failed { stage: Stage::Deployment, reason } if reason.contains("wait time of 0 min")),
        "{}",
        record.state
    );
    assert_eq!(deployments_in(&backend, "web-nowait").await, 0);
}

#[tokio::test]
async fn a_group_that_waits_for_a_person_deploys() {
    let backend = MotoBackend::new(&containers()).await;
    ready_release(&backend, &backend.convoy, "g3").await;
    let record = backend.record(&release_key("g3")).await.unwrap();
    assert!(matches!(record.state, State::Deploying { .. }), "{}", record.state);
    assert_eq!(deployments_in(&backend, &backend.group).await, 1);
    let operations: Vec<String> = backend.standin.log().into_iter().map(|r| r.operation).collect();
    let asked = operations.iter().position(|o| o == "GetDeploymentGroup").expect("the group was asked");
    let created = operations.iter().position(|o| o == "CreateDeployment").expect("the deployment was created");
    assert!(asked < created, "the group is asked before the deployment is created: {operations:?}");
    let gate = format!(
        "CodeDeploy group {}/{} waits for a person: STOP_DEPLOYMENT after 60 min",
        backend.application, backend.group
    );
    let text = convoy::status::render(&record);
    assert!(text.contains(&format!("approval gate   {gate} at READY_WAIT")), "{text}");
}

#[tokio::test]
async fn convoy_check_says_whether_each_group_waits_for_a_person() {
    let backend = MotoBackend::new(&containers()).await;
    let checked = backend.convoy.check_services().await.unwrap();
    let (service, gate) = &checked[0];
    assert_eq!(service.as_str(), SERVICE);
    assert!(gate.ends_with("waits for a person: STOP_DEPLOYMENT after 60 min at READY_WAIT"), "{gate}");

    let continuing = deploying_into(&backend, "web-continue", DeploymentReadyAction::ContinueDeployment, 0).await;
    let refused = continuing.check_services().await.unwrap_err().to_string();
    assert!(refused.starts_with("service web: "), "{refused}");
    assert!(refused.contains("web-continue: the deployment group does not wait for a person"), "{refused}");
}

#[tokio::test]
async fn an_auto_approval_without_bake_time_may_deploy_into_a_group_that_continues_by_itself() {
    let backend =
        MotoBackend::with_listener(&containers(), &convoy_tests::http::refused_url(), "auto", serde_json::json!({}))
            .await;
    let convoy = deploying_into(&backend, "web-auto", DeploymentReadyAction::ContinueDeployment, 0).await;
    ready_release(&backend, &convoy, "g4").await;
    let record = backend.record(&release_key("g4")).await.unwrap();
    assert!(matches!(record.state, State::Deploying { .. }), "{}", record.state);
    assert_eq!(deployments_in(&backend, "web-auto").await, 1);
}
