//! ECS native blue/green, end to end on moto: Convoy updates a service with the ECS deployment
//! controller (`UpdateService`, forwarded to moto), and the stand-in plays what moto 5.2.5 lacks
//! (the service's `deploymentConfiguration`, the service deployment, `ListServiceDeployments`,
//! `DescribeServiceRevisions`, `DescribeServiceDeployments`, `ContinueServiceDeployment`). The
//! green version is a real HTTP server on loopback.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ecs::types::DeploymentControllerType;
use convoy::adapters::aws::{CodeDeployer, EcsDeployments};
use convoy::error::DeployError;
use convoy::names::{DeploymentRef, ServiceDeploymentArn};
use convoy::ports::{NativeService, NativeStatus, ServiceDeployments};
use convoy::release::{DeployMethod, Hook, Stage, State};
use convoy_tests::fixtures;
use convoy_tests::http::{self, Behaviour, Server};
use convoy_tests::moto::Moto;
use convoy_tests::standin::StandIn;
use convoy_tests::world::World;
use serde_json::{Value, json};

use crate::deploy::{containers, deploying, invoke, migration_succeeds_ten_times_at_once, probe};
use crate::scenario::*;

/// A canary service whose verify hook calls Convoy's function and whose PAUSE hook waits before
/// production traffic moves.
pub(crate) fn deployment_configuration(strategy: &str) -> Value {
    json!({
        "strategy": strategy,
        "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 5},
        "bakeTimeInMinutes": 15,
        "lifecycleHooks": convoy_tests::sandbox::native_lifecycle_hooks(),
    })
}

/// A world whose service `web` deploys natively with `configuration`, verified on a green server.
pub(crate) async fn native_backend(behaviour: Behaviour, configuration: Value) -> (MotoBackend, Server) {
    let green = http::serve(behaviour).await;
    let world = World::new().await;
    world.create_repositories(&["app", "nginx"]).await;
    let ecs = world.ecs_service_controlled(SERVICE, &["app", "nginx"], DeploymentControllerType::Ecs).await;
    let settings = json!({SERVICE: {"ecs_native": {"verify_function": "convoy-verify"}, "test_listener": green.url,
                                    "approval": "manual", "probe": probe()}});
    let mut convoy = world.convoy_with(&[SERVICE], &["app", "nginx"], &settings.to_string());
    let standin = StandIn::for_missing_operations(&Moto::shared().endpoint).await;
    standin.native_service(SERVICE, configuration);
    let via_standin = convoy_tests::moto::sdk_config_for(&standin.endpoint).await;
    convoy.codedeploy = Arc::new(CodeDeployer::new(aws_sdk_codedeploy::Client::new(&via_standin)));
    convoy.service_deployments = Arc::new(EcsDeployments::new(aws_sdk_ecs::Client::new(&via_standin)));
    // CloudTrail's event history: the stand-in's LookupEvents.
    convoy.api_calls =
        Arc::new(convoy::adapters::aws::CloudTrailHistory::new(aws_sdk_cloudtrail::Client::new(&via_standin)));
    let backend = MotoBackend {
        world,
        ecs,
        application: String::new(),
        group: String::new(),
        standin,
        convoy,
        settings: settings.to_string(),
    };
    (backend, green)
}

/// How many `UpdateService` requests reached moto.
fn updates(backend: &MotoBackend) -> usize {
    backend.standin.forwarded().iter().filter(|f| f.ends_with(".UpdateService")).count()
}

/// ECS invokes the verify hook of `arn` as `execution` until it is decided; the replies' statuses.
pub(crate) async fn run_hook(backend: &MotoBackend, arn: &str, execution: &str) -> Vec<String> {
    let mut details = json!({});
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let reply = invoke(&backend.convoy, "verify", fixtures::ecs_native_hook(arn, execution, details)).await;
        details = reply["hookDetails"].clone();
        statuses.push(reply["hookStatus"].as_str().unwrap().to_owned());
        if statuses.last().unwrap() != "IN_PROGRESS" {
            break;
        }
    }
    statuses
}

/// ECS sends "ECS Deployment State Change" `event_name` for the service.
async fn ecs_reports(backend: &MotoBackend, event_name: &str, reason: &str) -> Value {
    let event = fixtures::ecs_deployment_state_change(&backend.ecs.cluster, SERVICE, event_name, reason);
    invoke(&backend.convoy, "deployment-changed", event).await
}

/// The ECS deployment (`ecs-svc/…`) a rollback goes back to, as the events name it.
const BLUE: &str = "ecs-svc/5169280574093855189";

/// ECS rolls `arn` back for `why` and announces it as it does: SERVICE_DEPLOYMENT_IN_PROGRESS,
/// its reason naming the deployment rolled back to.
async fn ecs_rolls_back(backend: &MotoBackend, arn: &str, why: &str) {
    backend.standin.service_deployment_rolls_back(arn, why);
    ecs_reports(backend, "SERVICE_DEPLOYMENT_IN_PROGRESS", &fixtures::ecs_rollback_reason(BLUE)).await;
}

/// The rollback of `arn` completes (ROLLBACK_SUCCESSFUL, with ECS's rollback reason `why`), and
/// ECS says the service reached a steady state again: SERVICE_DEPLOYMENT_COMPLETED.
async fn ecs_rollback_completes(backend: &MotoBackend, arn: &str, why: &str) {
    backend.standin.service_deployment_ends(arn, "ROLLBACK_SUCCESSFUL", why);
    ecs_reports(backend, "SERVICE_DEPLOYMENT_COMPLETED", &format!("ECS deployment {BLUE} completed.")).await;
}

async fn lock_holder(backend: &MotoBackend) -> Option<String> {
    let lock = backend.convoy.locks.load(&SERVICE.parse().unwrap()).await.unwrap();
    lock.and_then(|(lock, _)| lock.holder).map(|h| h.release.to_string())
}

#[tokio::test]
async fn a_native_release_updates_its_service_once_under_ten_migration_successes_and_succeeds_once_approved() {
    let (backend, green) = native_backend(Behaviour::version("e1"), deployment_configuration("CANARY")).await;
    let key = migration_succeeds_ten_times_at_once(&backend, "e1").await;
    assert_eq!(updates(&backend), 1, "exactly one UpdateService reached ECS");
    let started = backend.standin.service_deployments();
    assert_eq!(started.len(), 1);
    let arn = started[0].clone();
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::Deploying { deployment: DeploymentRef::Service(arn.parse().unwrap()) });
    let run = record.deployment.clone().unwrap();
    assert_eq!((run.method, run.claims), (DeployMethod::EcsNative, 1));

    // The revision ECS deploys: the service's family, every container pinned by digest.
    let definition = run.task_definition.unwrap();
    let described = backend.ecs_client().describe_task_definition().task_definition(&definition).send().await;
    let described = described.unwrap().task_definition.unwrap();
    let images: Vec<&str> = described.container_definitions().iter().filter_map(|c| c.image()).collect();
    assert_eq!(images.len(), 2);
    assert!(images.iter().all(|i| i.contains("@sha256:")), "{images:?}");

    // ECS invokes the verify hook at POST_TEST_TRAFFIC_SHIFT: one probe per invocation.
    backend.standin.service_deployment_at(&arn, "POST_TEST_TRAFFIC_SHIFT", 0.0);
    assert_eq!(
        run_hook(&backend, &arn, "exec-1").await,
        ["IN_PROGRESS"; 4].into_iter().chain(["SUCCEEDED"]).collect::<Vec<_>>()
    );
    assert_eq!(green.requests(), 5);
    let record = backend.record(&key).await.unwrap();
    assert!(matches!(record.state, State::AwaitingApproval { .. }), "{}", record.state);

    // The approval waits at the PAUSE hook; `convoy approve` continues it.
    backend.standin.pause_service_deployment(&arn);
    backend.convoy.decide(&key, true).await.unwrap();
    backend.cloudtrail_delivers_last_call().await;
    let continued = backend.standin.calls_to("ContinueServiceDeployment");
    assert_eq!(continued.len(), 1);
    assert_eq!(
        (continued[0]["serviceDeploymentArn"].as_str(), continued[0]["action"].as_str()),
        (Some(arn.as_str()), Some("CONTINUE"))
    );

    // ECS completes it and says so; a duplicate of the event changes nothing.
    backend.standin.service_deployment_ends(&arn, "SUCCESSFUL", "Service deployment completed");
    ecs_reports(&backend, "SERVICE_DEPLOYMENT_COMPLETED", "ECS deployment ecs-svc/1 completed.").await;
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::Succeeded);
    assert_eq!(lock_holder(&backend).await, None, "the service is free");
    ecs_reports(&backend, "SERVICE_DEPLOYMENT_COMPLETED", "ECS deployment ecs-svc/1 completed.").await;
    let again = backend.record(&key).await.unwrap();
    assert_eq!(again.timeline.iter().filter(|e| e.event == "succeeded").count(), 1);
    assert_eq!(updates(&backend), 1);
}

#[tokio::test]
async fn a_failed_native_hook_rolls_the_service_deployment_back_and_the_rerun_is_let_through() {
    let failing = Behaviour { status: 502, ..Behaviour::version("e2") };
    let (backend, green) = native_backend(failing, deployment_configuration("BLUE_GREEN")).await;
    let arn = deploying(&backend, "e2", json!({})).await;
    backend.standin.service_deployment_at(&arn, "POST_TEST_TRAFFIC_SHIFT", 0.0);
    assert_eq!(run_hook(&backend, &arn, "exec-2").await, ["IN_PROGRESS", "FAILED"]);
    let key = release_key("e2");
    assert!(matches!(backend.record(&key).await.unwrap().state, State::RollingBack { .. }));

    // ECS rolls back, announces it, and runs the TEST_TRAFFIC_SHIFT hook again: let through
    // without a probe. The announcement changes nothing: DescribeServiceDeployments says the
    // rollback runs.
    let why = "lifecycle hook POST_TEST_TRAFFIC_SHIFT failed";
    ecs_rolls_back(&backend, &arn, why).await;
    assert!(matches!(backend.record(&key).await.unwrap().state, State::RollingBack { .. }));
    let probes = green.requests();
    let rerun = fixtures::ecs_native_hook_at("TEST_TRAFFIC_SHIFT", &arn, "exec-rollback", json!({}));
    assert_eq!(invoke(&backend.convoy, "verify", rerun).await["hookStatus"], "SUCCEEDED");
    assert_eq!(green.requests(), probes, "the re-run probed nothing");

    ecs_rollback_completes(&backend, &arn, why).await;
    let record = backend.record(&key).await.unwrap();
    // As with CodeDeploy: rolled back because verification failed, with ECS's reason kept.
    let State::Failed { stage: Stage::Verification, reason: failed } = &record.state else {
        panic!("{}", record.state)
    };
    assert!(failed.contains("status 502"), "{failed}");
    let rolled_back = record.timeline.iter().find(|e| e.event == "rolled-back").unwrap();
    assert!(rolled_back.detail.contains(&format!("ECS rolled it back: {why}")), "{}", rolled_back.detail);
    assert!(rolled_back.detail.contains("SERVICE_DEPLOYMENT_COMPLETED"), "{}", rolled_back.detail);
    assert_eq!(lock_holder(&backend).await, None);
}

#[tokio::test]
async fn the_ecs_native_hook_probes_once_per_invocation_until_decided() {
    let (backend, green) = native_backend(Behaviour::version("n1"), deployment_configuration("BLUE_GREEN")).await;
    let arn = deploying(&backend, "n1", json!({})).await;
    backend.standin.service_deployment_at(&arn, "POST_TEST_TRAFFIC_SHIFT", 0.0);
    let mut details = json!({});
    let mut replies = Vec::new();
    for _ in 0..10 {
        let reply = invoke(&backend.convoy, "verify", fixtures::ecs_native_hook(&arn, "ecs-exec-1", details)).await;
        details = reply["hookDetails"].clone();
        replies.push(reply["hookStatus"].as_str().unwrap().to_owned());
        if replies.last().unwrap() != "IN_PROGRESS" {
            break;
        }
    }
    assert_eq!(replies, ["IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"]);
    assert_eq!(details["probes"], 5);
    assert_eq!(green.requests(), 5);
    let record = backend.record(&release_key("n1")).await.unwrap();
    assert!(matches!(record.state, State::AwaitingApproval { .. }));
    assert_eq!(record.verification.unwrap().probes.len(), 5, "every probe is in the record");
}

#[tokio::test]
async fn the_ecs_native_hook_fails_and_its_rollback_rerun_is_let_through() {
    let failing = Behaviour { status: 502, ..Behaviour::version("n2") };
    let (backend, green) = native_backend(failing, deployment_configuration("CANARY")).await;
    let arn = deploying(&backend, "n2", json!({})).await;
    backend.standin.service_deployment_at(&arn, "POST_TEST_TRAFFIC_SHIFT", 0.0);
    let hook = |details: Value| fixtures::ecs_native_hook(&arn, "ecs-exec-2", details);
    assert_eq!(invoke(&backend.convoy, "verify", hook(json!({}))).await["hookStatus"], "IN_PROGRESS");
    assert_eq!(invoke(&backend.convoy, "verify", hook(json!({}))).await["hookStatus"], "FAILED");
    let record = backend.record(&release_key("n2")).await.unwrap();
    assert!(matches!(record.state, State::RollingBack { .. }), "{}", record.state);
    // ECS runs the TEST_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT hooks again while it rolls back.
    backend.standin.service_deployment_rolls_back(&arn, "lifecycle hook POST_TEST_TRAFFIC_SHIFT failed");
    for stage in ["TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"] {
        let rerun = fixtures::ecs_native_hook_at(stage, &arn, &format!("ecs-rollback-{stage}"), json!({}));
        assert_eq!(invoke(&backend.convoy, "verify", rerun).await["hookStatus"], "SUCCEEDED", "{stage}");
    }
    assert_eq!(green.requests(), 2, "the re-runs probed nothing");
}

#[tokio::test]
async fn a_lost_end_event_is_learned_by_the_reconciler_with_the_shift_and_ecss_reason() {
    let (backend, _green) = native_backend(Behaviour::version("e3"), deployment_configuration("CANARY")).await;
    let arn = deploying(&backend, "e3", json!({})).await;
    assert_eq!(run_hook(&backend, &arn, "exec-3").await.last().unwrap(), "SUCCEEDED");
    let key = release_key("e3");
    backend.standin.pause_service_deployment(&arn);
    backend.convoy.decide(&key, true).await.unwrap();
    backend.cloudtrail_delivers_last_call().await;

    // The canary step takes 10% of production traffic: the reconciler records what ECS says.
    backend.standin.service_deployment_at(&arn, "PRODUCTION_TRAFFIC_SHIFT", 10.0);
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    let native = record.deployment.as_ref().unwrap().native.clone().unwrap();
    assert_eq!(native.strategy, "canary, 10% for 5 min, then the rest");
    assert_eq!((native.production_percent, native.bake_minutes), (Some(10), Some(15)));
    let shown = convoy::status::render(&record);
    assert!(shown.contains("10% of production traffic (PRODUCTION_TRAFFIC_SHIFT)"), "{shown}");
    assert!(shown.contains("bake time       15 min"), "{shown}");

    // ECS rolls it back (an alarm) and the event is lost: the reconciler ends the record.
    let reason = "CloudWatch alarm web-5xx went into ALARM";
    backend.standin.service_deployment_ends(&arn, "ROLLBACK_SUCCESSFUL", reason);
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    let State::RolledBack { reason: why } = &record.state else { panic!("{}", record.state) };
    assert!(why.contains(&format!("ECS rolled it back: {reason}")), "{why}");
    assert_eq!(lock_holder(&backend).await, None);
    assert!(!backend.standin.calls_to("DescribeServiceDeployments").is_empty());
}

#[tokio::test]
async fn a_rejection_before_ecs_pauses_stops_the_service_deployment_with_a_rollback() {
    let (backend, _green) = native_backend(Behaviour::version("e6"), deployment_configuration("BLUE_GREEN")).await;
    let arn = deploying(&backend, "e6", json!({})).await;
    assert_eq!(run_hook(&backend, &arn, "exec-6").await.last().unwrap(), "SUCCEEDED");
    let key = release_key("e6");
    // ECS has not reached the PAUSE hook yet: an approval must wait, a rejection need not.
    let early = backend.convoy.decide(&key, true).await.unwrap_err();
    assert!(early.is_retryable(), "{early}");
    let (bob, as_bob) = backend.person("bob-e6").await;
    as_bob.decide(&key, false).await.unwrap();
    backend.cloudtrail_delivers_last_call().await;
    let stops = backend.standin.calls_to("StopServiceDeployment");
    assert_eq!(stops.len(), 1);
    assert_eq!(
        (stops[0]["serviceDeploymentArn"].as_str(), stops[0]["stopType"].as_str()),
        (Some(arn.as_str()), Some("ROLLBACK"))
    );
    assert!(backend.standin.calls_to("ContinueServiceDeployment").is_empty());

    let why = "Service deployment rollback requested by StopServiceDeployment";
    ecs_rolls_back(&backend, &arn, why).await;
    ecs_rollback_completes(&backend, &arn, why).await;
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::RolledBack { reason: format!("rejected by {bob}") });
}

#[tokio::test]
async fn an_ecs_native_approval_continues_the_paused_service_deployment() {
    let (backend, _green) = native_backend(Behaviour::version("n3"), deployment_configuration("BLUE_GREEN")).await;
    let arn = deploying(&backend, "n3", json!({})).await;
    assert_eq!(run_hook(&backend, &arn, "ecs-exec-3").await.last().unwrap(), "SUCCEEDED");
    let record = backend.record(&release_key("n3")).await.unwrap();
    let Some(Hook::EcsNative { service_deployment, .. }) = record.verification.map(|v| v.hook) else {
        panic!("an ECS native verification")
    };
    assert_eq!(service_deployment.as_str(), arn);
    // ECS pauses at PRE_PRODUCTION_TRAFFIC_SHIFT; the pause's hook id is ECS's, found through
    // DescribeServiceDeployments.
    let paused = backend.standin.pause_service_deployment(&arn);
    backend.convoy.decide(&release_key("n3"), true).await.unwrap();
    let continued = backend.standin.calls_to("ContinueServiceDeployment");
    assert!(backend.standin.refusals_of("ContinueServiceDeployment").is_empty(), "ECS took the continue");
    assert_eq!(continued.len(), 1);
    assert_eq!(continued[0]["hookId"].as_str(), Some(paused.as_str()));
    assert_eq!(continued[0]["action"], "CONTINUE");
    assert_eq!(continued[0]["serviceDeploymentArn"].as_str(), Some(arn.as_str()));
}

#[tokio::test]
async fn an_ecs_native_hook_asks_to_be_called_again_when_aws_is_unavailable() {
    let (backend, _green) = native_backend(Behaviour::version("n4"), deployment_configuration("BLUE_GREEN")).await;
    let arn = deploying(&backend, "n4", json!({})).await;
    // The same Convoy, its S3 unreachable (a closed port): the record cannot be read.
    let outage = convoy_tests::moto::sdk_config_for(&http::refused_url()).await;
    let settings = backend.world.config_with(&["web"], &["app", "nginx"], None);
    let mut broken = backend.convoy.clone();
    let store = Arc::new(convoy::adapters::aws::S3Store::new(
        convoy::adapters::aws::s3_client(&outage, &settings.store),
        &backend.world.bucket,
    ));
    broken.locks = store.clone();
    broken.store = store;
    let reply = invoke(&broken, "verify", fixtures::ecs_native_hook(&arn, "ecs-exec-4", json!({}))).await;
    assert_eq!(reply["hookStatus"], "IN_PROGRESS", "{reply}");
    assert_eq!(reply["callBackDelay"], 15);
}

/// ECS as a handler sees it when it crashes right after `UpdateService`: the service deployment
/// starts, the handler dies before the record says so.
pub(crate) struct CrashAfterUpdate(pub(crate) Arc<dyn ServiceDeployments>);

#[async_trait]
impl ServiceDeployments for CrashAfterUpdate {
    async fn describe_service(&self, cluster: &str, service: &str) -> Result<NativeService, DeployError> {
        self.0.describe_service(cluster, service).await
    }
    async fn start(&self, cluster: &str, service: &str, td: &str) -> Result<ServiceDeploymentArn, DeployError> {
        self.0.start(cluster, service, td).await?;
        Err(DeployError::Unavailable("simulated crash after UpdateService".into()))
    }
    async fn find(&self, cluster: &str, service: &str, td: &str) -> Result<Option<ServiceDeploymentArn>, DeployError> {
        self.0.find(cluster, service, td).await
    }
    async fn status(&self, arn: &ServiceDeploymentArn) -> Result<NativeStatus, DeployError> {
        self.0.status(arn).await
    }
    async fn continue_deployment(&self, arn: &ServiceDeploymentArn) -> Result<(), DeployError> {
        self.0.continue_deployment(arn).await
    }
    async fn roll_back(&self, arn: &ServiceDeploymentArn) -> Result<(), DeployError> {
        self.0.roll_back(arn).await
    }
}

#[tokio::test]
async fn a_takeover_after_a_crash_between_update_service_and_the_record_starts_nothing_new() {
    let (backend, _green) = native_backend(Behaviour::version("e4"), deployment_configuration("LINEAR")).await;
    let key = release_key("e4");
    let mut crashing = backend.convoy.clone();
    crashing.service_deployments = Arc::new(CrashAfterUpdate(backend.convoy.service_deployments.clone()));
    backend.push("app", "e4").await;
    backend.push("nginx", "e4").await;
    let manifest = manifest_v1(&backend, "e4", &containers(), false);
    let upload = backend.upload("releases/web/e4.json", &manifest).await;
    assert!(invoke_manifest_uploaded(&crashing, upload).await.is_err(), "the crash fails the invocation: AWS retries");
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::StartingDeployment);
    assert!(record.deployment.unwrap().task_definition.is_some(), "the revision was recorded before the update");
    assert_eq!(updates(&backend), 1);

    // Retries within the claim's lease start nothing.
    let retries: Vec<_> = (0..10)
        .map(|_| {
            let (convoy, key) = (backend.convoy.clone(), key.clone());
            tokio::spawn(async move { convoy.start_deployment(&key, chrono::Utc::now(), None).await.unwrap() })
        })
        .collect();
    for retry in retries {
        retry.await.unwrap();
    }
    assert_eq!(updates(&backend), 1, "within the claim's lease nobody updates the service again");

    // After the lease the reconciler takes over and finds the service deployment by its revision.
    let later = chrono::Utc::now() + convoy::config::CLAIM_LEASE + chrono::Duration::seconds(1);
    backend.convoy.reconcile(later).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    let arn = backend.standin.service_deployments()[0].clone();
    assert_eq!(record.state, State::Deploying { deployment: DeploymentRef::Service(arn.parse().unwrap()) });
    assert_eq!(record.deployment.as_ref().unwrap().claims, 2);
    assert_eq!(updates(&backend), 1, "exactly one UpdateService reached ECS");
    assert_eq!(backend.standin.calls_to("ListServiceDeployments").len(), 1);
    assert_eq!(backend.standin.calls_to("DescribeServiceRevisions").len(), 1);
}

#[tokio::test]
async fn a_service_that_does_not_deploy_blue_green_fails_the_release_saying_what_is_missing() {
    let rolling = json!({"strategy": "ROLLING", "lifecycleHooks": []});
    let (backend, _green) = native_backend(Behaviour::version("e5"), rolling).await;
    backend.push("app", "e5").await;
    backend.push("nginx", "e5").await;
    let manifest = manifest_v1(&backend, "e5", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/e5.json", &manifest).await).await.unwrap();
    let record = backend.record(&release_key("e5")).await.unwrap();
    let State::Failed { stage: Stage::Deployment, reason } = &record.state else { panic!("{}", record.state) };
    assert_eq!(
        reason,
        "service web cannot deploy through ECS native blue/green: its deployment strategy is ROLLING, not \
         BLUE_GREEN (or LINEAR or CANARY); no AWS_LAMBDA lifecycle hook calls convoy-verify at \
         POST_TEST_TRAFFIC_SHIFT; no PAUSE lifecycle hook at PRE_PRODUCTION_TRAFFIC_SHIFT for the approval to \
         wait at"
    );
    assert_eq!(updates(&backend), 0, "the service was not updated");
    let checked = backend.convoy.check_services().await.unwrap_err().to_string();
    assert!(checked.contains("its deployment strategy is ROLLING"), "{checked}");
}

#[tokio::test]
async fn a_console_continue_of_the_pause_is_seen_by_the_reconciler_and_attributed_through_lookup_events() {
    let (backend, _green) = native_backend(Behaviour::version("e9"), deployment_configuration("BLUE_GREEN")).await;
    let arn = deploying(&backend, "e9", json!({})).await;
    assert_eq!(run_hook(&backend, &arn, "exec-9").await.last().unwrap(), "SUCCEEDED");
    let key = release_key("e9");
    let paused = backend.standin.pause_service_deployment(&arn);
    // "Continue" in the ECS console, with the person's session; no CloudTrail event reaches Convoy.
    let (hana, sdk) = backend.person_sdk("hana-e9").await;
    aws_sdk_ecs::Client::new(&sdk)
        .continue_service_deployment()
        .service_deployment_arn(&arn)
        .hook_id(&paused)
        .action(aws_sdk_ecs::types::DeploymentLifecycleHookAction::Continue)
        .send()
        .await
        .unwrap();
    backend.standin.service_deployment_at(&arn, "PRODUCTION_TRAFFIC_SHIFT", 100.0);
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();

    let record = backend.record(&key).await.unwrap();
    assert!(matches!(record.state, State::ShiftingTraffic { .. }), "{}", record.state);
    let Some(convoy::release::Attribution::Recorded(actor)) = record.approval.as_ref().unwrap().actor.clone() else {
        panic!("not attributed: {:?}", record.approval)
    };
    assert_eq!((actor.principal_arn.as_str(), actor.via), (hana.as_str(), convoy::release::Via::LookupEvents));
    assert_eq!(actor.operation, "ecs:ContinueServiceDeployment");
    let lookups = backend.standin.answered("LookupEvents");
    assert_eq!(lookups.len(), 1);
    assert_eq!(lookups[0]["LookupAttributes"][0]["AttributeValue"], "ContinueServiceDeployment");
}

#[tokio::test]
async fn a_pause_hook_that_continues_on_timeout_fails_the_release_and_convoy_check_says_why() {
    // ECS has no per-hook "wait for ever": a pause ends at its timeoutConfiguration, and with
    // CONTINUE production traffic would move without an approval.
    let mut configuration = deployment_configuration("CANARY");
    configuration["lifecycleHooks"][1]["timeoutConfiguration"] = json!({"timeoutInMinutes": 30, "action": "CONTINUE"});
    let (backend, _green) = native_backend(Behaviour::version("e6"), configuration).await;
    backend.push("app", "e6").await;
    backend.push("nginx", "e6").await;
    let manifest = manifest_v1(&backend, "e6", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/e6.json", &manifest).await).await.unwrap();
    let record = backend.record(&release_key("e6")).await.unwrap();
    let State::Failed { stage: Stage::Deployment, reason } = &record.state else { panic!("{}", record.state) };
    assert!(
        reason.contains("the PAUSE hook at PRE_PRODUCTION_TRAFFIC_SHIFT continues after 30 min, shifting production"),
        "{reason}"
    );
    assert_eq!(updates(&backend), 0, "the service was not updated");
    let checked = backend.convoy.check_services().await.unwrap_err().to_string();
    assert!(checked.contains("set its timeoutConfiguration action to ROLLBACK"), "{checked}");
}

#[tokio::test]
async fn a_native_release_records_what_bounds_its_pause_and_status_shows_it() {
    let mut configuration = deployment_configuration("CANARY");
    configuration["lifecycleHooks"][1]["timeoutConfiguration"] = json!({"timeoutInMinutes": 120, "action": "ROLLBACK"});
    let (backend, _green) = native_backend(Behaviour::version("e7"), configuration).await;
    let checked = backend.convoy.check_services().await.unwrap();
    let gate = "ECS PAUSE hook at PRE_PRODUCTION_TRAFFIC_SHIFT waits for a person; rolls back after 120 min";
    assert_eq!(checked, vec![(SERVICE.parse().unwrap(), gate.to_owned())]);
    backend.push("app", "e7").await;
    backend.push("nginx", "e7").await;
    let manifest = manifest_v1(&backend, "e7", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/e7.json", &manifest).await).await.unwrap();
    let record = backend.record(&release_key("e7")).await.unwrap();
    assert!(matches!(record.state, State::Deploying { .. }), "{}", record.state);
    let text = convoy::status::render(&record);
    assert!(text.contains(&format!("approval gate   {gate}")), "{text}");
}

/// The guide's POST_TEST_TRAFFIC_SHIFT example ("Lambda hooks for Amazon ECS service
/// deployments"), moved to the world's service deployment, invoked as ECS invokes it: each
/// `IN_PROGRESS` reply's `hookDetails` passed back on the next call (merged with the hook's
/// configured details, which Convoy leaves alone), under a fresh `executionId` each time.
#[tokio::test]
async fn the_guides_example_hook_is_verified_across_re_invocations_by_its_hook_details() {
    let (backend, green) = native_backend(Behaviour::version("g1"), deployment_configuration("BLUE_GREEN")).await;
    let arn = deploying(&backend, "g1", json!({})).await;
    backend.standin.service_deployment_at(&arn, "POST_TEST_TRAFFIC_SHIFT", 0.0);
    let first = fixtures::ecs_native_hook(&arn, "3a0345ba-b029-404b-890d-7da2a4b266aa", Value::Null);
    let documented = fixtures::documented("ecs-lifecycle-hook-post-test-traffic-shift.json");
    assert_eq!(first["lifecycleStage"], documented["lifecycleStage"]);
    assert_eq!(first["executionDetails"]["testTrafficWeights"], documented["executionDetails"]["testTrafficWeights"]);
    assert!(first.get("hookDetails").is_none(), "the first invocation carries no hookDetails");
    let mut event = first;
    let mut statuses = Vec::new();
    for call in 1..=10 {
        let reply = invoke(&backend.convoy, "verify", event.clone()).await;
        statuses.push(reply["hookStatus"].as_str().unwrap().to_owned());
        if statuses.last().unwrap() != "IN_PROGRESS" {
            break;
        }
        // ECS merges the returned details into the configured ones and calls again.
        let mut details = json!({"S3_BUCKET_NAME": "my-approval-bucket"});
        for (k, v) in reply["hookDetails"].as_object().unwrap() {
            details[k] = v.clone();
        }
        event = fixtures::ecs_native_hook(&arn, &format!("re-invocation-{call}"), details);
    }
    assert_eq!(statuses, ["IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"]);
    assert_eq!(green.requests(), 5, "one probe per invocation, one verification throughout");
    let record = backend.record(&release_key("g1")).await.unwrap();
    assert!(matches!(record.state, State::AwaitingApproval { .. }), "{}", record.state);
    let verification = record.verification.unwrap();
    assert_eq!(verification.probes.len(), 5, "every probe is in the one verification");
    let Hook::EcsNative { execution_id, .. } = &verification.hook else { panic!("{:?}", verification.hook) };
    assert_eq!(execution_id.as_str(), "3a0345ba-b029-404b-890d-7da2a4b266aa", "keyed on the first execution");
    let started = record.timeline.iter().filter(|e| e.event == "verification-started").count();
    assert_eq!(started, 1, "the re-invocations continued the verification rather than restarting it");
}

/// Without the carried `hookDetails`, a re-invocation under another `executionId` is another
/// hook execution: the carried details are what keeps the verification one.
#[tokio::test]
async fn a_re_invocation_under_another_execution_id_without_hook_details_starts_over() {
    let (backend, green) = native_backend(Behaviour::version("g2"), deployment_configuration("BLUE_GREEN")).await;
    let arn = deploying(&backend, "g2", json!({})).await;
    backend.standin.service_deployment_at(&arn, "POST_TEST_TRAFFIC_SHIFT", 0.0);
    for execution in ["first", "second"] {
        let reply = invoke(&backend.convoy, "verify", fixtures::ecs_native_hook(&arn, execution, Value::Null)).await;
        assert_eq!(reply["hookStatus"], "IN_PROGRESS", "{reply}");
        assert_eq!(reply["hookDetails"]["probes"], 1, "{execution}: a fresh verification has one probe");
        assert_eq!(reply["hookDetails"]["execution"], execution);
    }
    assert_eq!(green.requests(), 2);
}

/// A verify hook an operator also lists at other stages: ECS invokes it there too, and Convoy
/// answers SUCCEEDED without probing and without touching the record (it verifies at
/// POST_TEST_TRAFFIC_SHIFT only).
#[tokio::test]
async fn a_verify_hook_invoked_at_another_stage_succeeds_without_probing() {
    let (backend, green) = native_backend(Behaviour::version("g3"), deployment_configuration("BLUE_GREEN")).await;
    let arn = deploying(&backend, "g3", json!({})).await;
    let before = backend.record(&release_key("g3")).await.unwrap();
    for stage in ["PRE_SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", "SOME_STAGE_AWS_ADDS_LATER"] {
        backend.standin.service_deployment_at(&arn, stage, 0.0);
        let hook = fixtures::ecs_native_hook_at(stage, &arn, &format!("exec-{stage}"), Value::Null);
        let reply = invoke(&backend.convoy, "verify", hook).await;
        assert_eq!(reply["hookStatus"], "SUCCEEDED", "{stage}: {reply}");
        let why = reply["hookDetails"]["convoy"].as_str().unwrap();
        assert!(why.starts_with("Convoy verifies at POST_TEST_TRAFFIC_SHIFT; nothing is checked at"), "{why}");
        assert!(!why.contains("SOME_STAGE"), "an undocumented stage is not echoed: {why}");
    }
    assert_eq!(green.requests(), 0, "no stage but POST_TEST_TRAFFIC_SHIFT probes");
    assert_eq!(backend.record(&release_key("g3")).await.unwrap(), before, "the record is untouched");
}

/// A payload ECS would never send (no `executionId`) that names the service of a release
/// deploying natively: FAILED, and the record says why (not only a log line).
#[tokio::test]
async fn an_unreadable_native_hook_is_answered_failed_with_the_reason_in_the_record() {
    let (backend, green) = native_backend(Behaviour::version("g4"), deployment_configuration("BLUE_GREEN")).await;
    let arn = deploying(&backend, "g4", json!({})).await;
    let mut hook = fixtures::ecs_native_hook(&arn, "exec-unreadable", Value::Null);
    hook.as_object_mut().unwrap().remove("executionId");
    let reply = invoke(&backend.convoy, "verify", hook).await;
    assert_eq!(reply["hookStatus"], "FAILED", "{reply}");
    assert_eq!(reply["hookDetails"]["release"], release_key("g4").to_string());
    let record = backend.record(&release_key("g4")).await.unwrap();
    let noted = record.timeline.iter().find(|e| e.event == "hook-unreadable").expect("the reason is recorded");
    assert!(noted.detail.contains("executionId"), "{}", noted.detail);
    assert!(matches!(record.state, State::Deploying { .. }), "ECS's rollback, not the note, moves the release");
    assert_eq!(green.requests(), 0);
}

/// The ECS native hook meets only native releases: one naming the service of a release that
/// CodeDeploy deploys is foreign, answered FAILED, and verifies nothing.
#[tokio::test]
async fn a_native_hook_naming_a_codedeploy_releases_service_is_refused() {
    let (backend, green) = crate::deploy::with_green(Behaviour::version("g5"), "manual").await;
    deploying(&backend, "g5", json!({})).await;
    let before = backend.record(&release_key("g5")).await.unwrap();
    let hook = fixtures::ecs_hook(&backend.ecs.cluster, SERVICE, "exec-foreign", Value::Null);
    let reply = invoke(&backend.convoy, "verify", hook).await;
    assert_eq!(reply["hookStatus"], "FAILED", "{reply}");
    let why = reply["hookDetails"]["convoy"].as_str().unwrap();
    assert_eq!(why, "an ECS native hook is not this release's: it deploys by codedeploy");
    assert_eq!(green.requests(), 0, "nothing probed");
    assert_eq!(backend.record(&release_key("g5")).await.unwrap(), before, "the record is untouched");
}
