//! Where AWS says no: the stand-in refuses as CodeDeploy and ECS do (their own error codes, HTTP
//! 400), and Convoy meets each refusal and ends where it should. Each test asserts what the
//! service took or refused, not only what the handler returned.

use convoy::release::{Hook, State};
use convoy_tests::http::Behaviour;
use convoy_tests::standin::{Phase, StandIn};
use serde_json::json;

use crate::deploy::{deploying, invoke, verify_codedeploy, with_green};
use crate::scenario::*;

/// Auto approval continues straight after answering the hook, before CodeDeploy can wait for it:
/// CodeDeploy refuses (`DeploymentIsNotInReadyStateException`), and the reconciler continues the
/// deployment once CodeDeploy waits, one call per pass.
#[tokio::test]
async fn an_auto_approval_before_codedeploy_waits_is_continued_by_the_reconciler_once_it_does() {
    let (backend, _green) = with_green(Behaviour::version("r1"), "auto").await;
    let (record, answers) = verify_codedeploy(&backend, "r1").await;
    let deployment = record.deployment.unwrap().id.unwrap().to_string();
    assert_eq!(answers[0]["status"], "Succeeded");
    assert_eq!(
        record.state,
        State::ShiftingTraffic { deployment: convoy::names::DeploymentRef::CodeDeploy(deployment.parse().unwrap()) }
    );
    assert_eq!(backend.standin.refusals_of("ContinueDeployment"), ["DeploymentIsNotInReadyStateException"]);
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::HookPassed));

    // Not waiting yet: the reconciler tries once, is refused again, and changes nothing.
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(backend.standin.refusals_of("ContinueDeployment").len(), 2);
    assert!(matches!(backend.record(&release_key("r1")).await.unwrap().state, State::ShiftingTraffic { .. }));

    // CodeDeploy reaches READY_WAIT: the next pass continues it, and CodeDeploy takes it.
    backend.standin.waits(&deployment);
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let continues = backend.standin.calls_of("ContinueDeployment");
    assert_eq!(continues.len(), 3);
    assert_eq!(continues[2].refused, None);
    assert_eq!(continues[2].body, json!({"deploymentId": deployment, "deploymentWaitType": "READY_WAIT"}));
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::Shifting));

    // The shift ends; the reconciler reads the end from CodeDeploy and the release succeeds.
    backend.standin.finish(&deployment);
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(backend.standin.calls_to("ContinueDeployment").len(), 3, "no continue after the shift");
    let record = backend.record(&release_key("r1")).await.unwrap();
    assert_eq!(record.state, State::Succeeded);
    let (lock, _) = backend.convoy.locks.load(&record.key.service).await.unwrap().unwrap();
    assert_eq!(lock.holder, None, "the service is free again");
}

/// The same hook execution delivered twice: Convoy answers again from the record, CodeDeploy
/// refuses the second answer (`LifecycleEventAlreadyCompletedException`), and Convoy takes that
/// for done: the handler returns normally, nothing is probed, retried or recorded again.
#[tokio::test]
async fn a_second_answer_to_a_hook_is_refused_by_codedeploy_and_harmless() {
    let (backend, green) = with_green(Behaviour::version("r2"), "manual").await;
    let (before, _) = verify_codedeploy(&backend, "r2").await;
    let deployment = before.deployment.as_ref().unwrap().id.clone().unwrap().to_string();
    let again = invoke(&backend.convoy, "verify", convoy_tests::fixtures::codedeploy_hook(&deployment, "exec-1")).await;
    assert_eq!(again["succeeded"], true, "{again}");
    assert_eq!(green.requests(), 5, "no probe the second time");
    let answers = backend.standin.calls_of("PutLifecycleEventHookExecutionStatus");
    assert_eq!(answers.len(), 2, "answered once more, not retried");
    assert_eq!(answers[0].refused, None);
    assert_eq!(answers[1].refused.as_deref(), Some("LifecycleEventAlreadyCompletedException"));
    assert_eq!(answers[1].body, answers[0].body, "the same answer");
    let after = backend.record(&release_key("r2")).await.unwrap();
    assert_eq!(after, before, "the record is unchanged");
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::HookPassed));
}

/// An answer for a hook execution CodeDeploy never invoked (`InvalidLifecycleEventHookExecutionIdException`)
/// is refused for good: the verify function does not fail the invocation (a retry would meet the
/// same refusal), and CodeDeploy's own hook is untouched.
#[tokio::test]
async fn an_answer_for_a_hook_execution_codedeploy_never_invoked_is_refused() {
    let (backend, _green) = with_green(Behaviour::version("r3"), "manual").await;
    let deployment = deploying(&backend, "r3", json!({})).await;
    backend.standin.hook_invoked(&deployment, "exec-real");
    let event = convoy_tests::fixtures::codedeploy_hook(&deployment, "exec-forged");
    let handled =
        convoy::handlers::verify(&backend.convoy, lambda_runtime::LambdaEvent::new(event, Default::default())).await;
    assert_eq!(
        backend.standin.refusals_of("PutLifecycleEventHookExecutionStatus"),
        ["InvalidLifecycleEventHookExecutionIdException"]
    );
    assert!(handled.is_ok(), "a refusal for good is not retried: {handled:?}");
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::AtHook), "the real hook still awaits its answer");
}

/// A reject once the deployment ended (someone continued it in the console): CodeDeploy refuses
/// the stop (`DeploymentAlreadyCompletedException`), Convoy says so readably and records no
/// decision, and the reconciler ends the release as CodeDeploy says it ended.
#[tokio::test]
async fn a_reject_of_an_ended_deployment_is_refused_and_the_release_ends_as_codedeploy_says() {
    let (backend, _green) = with_green(Behaviour::version("r4"), "manual").await;
    let (record, _) = verify_codedeploy(&backend, "r4").await;
    let deployment = record.deployment.unwrap().id.unwrap().to_string();
    backend.standin.waits(&deployment);
    backend.standin.ended_elsewhere(&deployment, Phase::Succeeded);

    let key = release_key("r4");
    let refused = backend.convoy.decide(&key, false).await.unwrap_err();
    assert!(refused.to_string().contains("DeploymentAlreadyCompletedException"), "{refused}");
    assert!(!refused.is_retryable(), "{refused}");
    assert_eq!(backend.standin.refusals_of("StopDeployment"), ["DeploymentAlreadyCompletedException"]);
    let record = backend.record(&key).await.unwrap();
    assert!(matches!(record.state, State::AwaitingApproval { .. }), "{}", record.state);
    assert_eq!(record.approval, None, "no decision is recorded");

    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(backend.record(&key).await.unwrap().state, State::Succeeded);
}

/// `convoy approve` / `reject` through a CodeDeploy that does not know the release's deployment
/// (another account or region): refused (`DeploymentDoesNotExistException`) with a readable
/// error, for good, and the record stays as it was.
#[tokio::test]
async fn approve_and_reject_of_a_deployment_codedeploy_does_not_know_are_refused_readably() {
    let (backend, _green) = with_green(Behaviour::version("r5"), "manual").await;
    let (before, _) = verify_codedeploy(&backend, "r5").await;
    let deployment = before.deployment.as_ref().unwrap().id.clone().unwrap().to_string();
    let elsewhere = StandIn::for_missing_operations(&convoy_tests::moto::Moto::shared().endpoint).await;
    let sdk = convoy_tests::moto::sdk_config_for(&elsewhere.endpoint).await;
    let mut other = backend.convoy.clone();
    other.codedeploy =
        std::sync::Arc::new(convoy::adapters::aws::CodeDeployer::new(aws_sdk_codedeploy::Client::new(&sdk)));
    other.service_deployments =
        std::sync::Arc::new(convoy::adapters::aws::EcsDeployments::new(aws_sdk_ecs::Client::new(&sdk)));
    let key = release_key("r5");
    for approve in [true, false] {
        let refused = other.decide(&key, approve).await.unwrap_err();
        let text = refused.to_string();
        assert_eq!(text, format!("DeploymentDoesNotExistException: The deployment {deployment} could not be found."));
        assert!(!refused.is_retryable());
    }
    assert_eq!(elsewhere.refusals_of("ContinueDeployment"), ["DeploymentDoesNotExistException"]);
    assert_eq!(elsewhere.refusals_of("StopDeployment"), ["DeploymentDoesNotExistException"]);
    assert!(
        backend.standin.calls_to("ContinueDeployment").is_empty()
            && backend.standin.calls_to("StopDeployment").is_empty()
    );
    assert_eq!(backend.record(&key).await.unwrap(), before, "the record is unchanged");
}

/// ECS native: approval is refused while ECS has no paused service deployment to continue, goes
/// through once ECS pauses it, and ECS refuses what it refuses (an unknown service deployment,
/// a hook no longer awaiting action) with its own codes.
#[tokio::test]
async fn an_ecs_continue_goes_through_only_while_ecs_waits_for_it() {
    let (backend, _green) = with_green(Behaviour::version("r6"), "manual").await;
    deploying(&backend, "r6", json!({})).await;
    let mut details = json!({});
    loop {
        let hook = convoy_tests::fixtures::ecs_hook(&backend.ecs.cluster, "web", "ecs-exec-6", details);
        let reply = invoke(&backend.convoy, "verify", hook).await;
        if reply["hookStatus"] != "IN_PROGRESS" {
            assert_eq!(reply["hookStatus"], "SUCCEEDED", "ECS hears the hook pass");
            break;
        }
        details = reply["hookDetails"].clone();
    }
    let key = release_key("r6");
    let record = backend.record(&key).await.unwrap();
    let Some(Hook::EcsNative { service_deployment, .. }) = record.verification.map(|v| v.hook) else {
        panic!("an ECS native verification")
    };
    let arn = service_deployment.as_str().to_owned();

    // ECS does not know (or has not paused) the service deployment: Convoy asks, and refuses.
    let refused = backend.convoy.decide(&key, true).await.unwrap_err();
    assert!(refused.to_string().contains("is not paused for approval"), "{refused}");
    assert_eq!(backend.standin.calls_to("DescribeServiceDeployments").len(), 1);
    assert!(backend.standin.calls_to("ContinueServiceDeployment").is_empty());

    backend.standin.pause_service_deployment(&arn);
    backend.convoy.decide(&key, true).await.unwrap();
    backend.cloudtrail_delivers_last_call().await;
    assert!(backend.standin.refusals_of("ContinueServiceDeployment").is_empty());

    // ECS's own refusals, as the SDK reads them.
    let ecs = aws_sdk_ecs::Client::new(&convoy_tests::moto::sdk_config_for(&backend.standin.endpoint).await);
    let again = ecs.continue_service_deployment().service_deployment_arn(&arn).hook_id("hook-pause-1").send().await;
    let err = again.unwrap_err();
    assert!(err.as_service_error().is_some_and(|e| e.is_invalid_parameter_exception()), "{err:?}");
    let unknown = ecs
        .continue_service_deployment()
        .service_deployment_arn(format!("{arn}-unknown"))
        .hook_id("hook-pause-1")
        .send()
        .await
        .unwrap_err();
    assert!(unknown.as_service_error().is_some_and(|e| e.is_service_deployment_not_found_exception()), "{unknown:?}");
    assert_eq!(
        backend.standin.refusals_of("ContinueServiceDeployment"),
        ["InvalidParameterException", "ServiceDeploymentNotFoundException"]
    );
}

/// A person approves before CodeDeploy waits for the reroute: CodeDeploy refuses the continue
/// (`DeploymentIsNotInReadyStateException`), Convoy reports it as worth a retry and records no
/// decision; the same approval goes through once CodeDeploy waits.
#[tokio::test]
async fn an_approval_before_codedeploy_waits_is_refused_for_now_and_goes_through_once_it_waits() {
    let (backend, _green) = with_green(Behaviour::version("r7"), "manual").await;
    let (record, _) = verify_codedeploy(&backend, "r7").await;
    let deployment = record.deployment.unwrap().id.unwrap().to_string();
    let key = release_key("r7");
    let early = backend.convoy.decide(&key, true).await.unwrap_err();
    assert!(early.is_retryable(), "{early}");
    assert!(early.to_string().contains("not ready for this yet: DeploymentIsNotInReadyStateException"), "{early}");
    assert_eq!(backend.record(&key).await.unwrap().approval, None, "no decision is recorded");

    backend.standin.waits(&deployment);
    backend.convoy.decide(&key, true).await.unwrap();
    backend.cloudtrail_delivers_last_call().await;
    let state = backend.record(&key).await.unwrap().state;
    assert!(matches!(state, State::ShiftingTraffic { .. }), "{state}");
    let continues = backend.standin.calls_of("ContinueDeployment");
    assert_eq!(
        continues.iter().map(|c| c.refused.as_deref()).collect::<Vec<_>>(),
        [Some("DeploymentIsNotInReadyStateException"), None]
    );
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::Shifting));
}
