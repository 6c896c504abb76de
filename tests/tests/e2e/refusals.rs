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
/// through once ECS pauses it, and ECS refuses what it refuses with its own codes: a continue of
/// a hook that no longer awaits action, of a hook id that is not this pause's, of a service
/// deployment ECS never started, and of one that completed.
#[tokio::test]
async fn an_ecs_continue_goes_through_only_while_ecs_waits_for_it() {
    let configuration = crate::native::deployment_configuration("BLUE_GREEN");
    let (backend, _green) = crate::native::native_backend(Behaviour::version("r6"), configuration).await;
    let arn = deploying(&backend, "r6", json!({})).await;
    assert_eq!(crate::native::run_hook(&backend, &arn, "ecs-exec-6").await.last().unwrap(), "SUCCEEDED");
    let key = release_key("r6");
    let record = backend.record(&key).await.unwrap();
    let Some(Hook::EcsNative { service_deployment, .. }) = record.verification.map(|v| v.hook) else {
        panic!("an ECS native verification")
    };
    assert_eq!(service_deployment.as_str(), arn);

    // ECS has not paused the service deployment: Convoy asks, and refuses.
    let refused = backend.convoy.decide(&key, true).await.unwrap_err();
    assert!(refused.to_string().contains("is not paused for approval"), "{refused}");
    assert_eq!(backend.standin.calls_to("DescribeServiceDeployments").len(), 1);
    assert!(backend.standin.calls_to("ContinueServiceDeployment").is_empty());

    let paused = backend.standin.pause_service_deployment(&arn);
    backend.convoy.decide(&key, true).await.unwrap();
    backend.cloudtrail_delivers_last_call().await;
    assert!(backend.standin.refusals_of("ContinueServiceDeployment").is_empty());

    // ECS's own refusals, as the SDK reads them.
    let ecs = aws_sdk_ecs::Client::new(&convoy_tests::moto::sdk_config_for(&backend.standin.endpoint).await);
    let again = ecs.continue_service_deployment().service_deployment_arn(&arn).hook_id(&paused).send().await;
    let err = again.unwrap_err();
    assert!(err.as_service_error().is_some_and(|e| e.is_invalid_parameter_exception()), "{err:?}");
    let unknown = ecs
        .continue_service_deployment()
        .service_deployment_arn(format!("{arn}-unknown"))
        .hook_id(&paused)
        .send()
        .await
        .unwrap_err();
    assert!(unknown.as_service_error().is_some_and(|e| e.is_service_deployment_not_found_exception()), "{unknown:?}");
    // A later pause has an id of its own: the first pause's id does not continue it.
    backend.standin.service_deployment_at(&arn, "PRODUCTION_TRAFFIC_SHIFT", 100.0);
    let second = backend.standin.pause_service_deployment(&arn);
    assert_ne!(second, paused, "each pause has its own hook id");
    let stale = ecs.continue_service_deployment().service_deployment_arn(&arn).hook_id(&paused).send().await;
    assert!(stale.unwrap_err().as_service_error().is_some_and(|e| e.is_invalid_parameter_exception()));
    // Completed: nothing continues it any more, not even the pause's own id.
    backend.standin.service_deployment_ends(&arn, "SUCCESSFUL", "Service deployment completed");
    let ended = ecs.continue_service_deployment().service_deployment_arn(&arn).hook_id(&second).send().await;
    assert!(ended.unwrap_err().as_service_error().is_some_and(|e| e.is_invalid_parameter_exception()));
    assert_eq!(
        backend.standin.refusals_of("ContinueServiceDeployment"),
        [
            "InvalidParameterException",
            "ServiceDeploymentNotFoundException",
            "InvalidParameterException",
            "InvalidParameterException"
        ]
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

/// CodeDeploy through the stand-in, with the test world's credentials (as any tool).
async fn codedeploy_via(backend: &MotoBackend) -> aws_sdk_codedeploy::Client {
    aws_sdk_codedeploy::Client::new(&convoy_tests::moto::sdk_config_for(&backend.standin.endpoint).await)
}

/// "Lambda validation functions return Succeeded or Failed": CodeDeploy refuses a hook answer
/// with another status (`InvalidLifecycleEventHookExecutionStatusException`), and the hook still
/// awaits its answer, which Convoy then gives.
#[tokio::test]
async fn a_hook_answer_other_than_succeeded_or_failed_is_refused_and_the_hook_still_waits() {
    use aws_sdk_codedeploy::types::LifecycleEventStatus;
    let (backend, _green) = with_green(Behaviour::version("r8"), "manual").await;
    let deployment = deploying(&backend, "r8", json!({})).await;
    backend.standin.hook_invoked(&deployment, "exec-1");
    let codedeploy = codedeploy_via(&backend).await;
    for status in [
        LifecycleEventStatus::InProgress,
        LifecycleEventStatus::Pending,
        LifecycleEventStatus::Skipped,
        LifecycleEventStatus::from("Unknown"),
    ] {
        let refused = codedeploy
            .put_lifecycle_event_hook_execution_status()
            .deployment_id(&deployment)
            .lifecycle_event_hook_execution_id("exec-1")
            .status(status.clone())
            .send()
            .await
            .unwrap_err();
        let service = refused.as_service_error();
        assert!(service.is_some_and(|e| e.is_invalid_lifecycle_event_hook_execution_status_exception()), "{status:?}");
    }
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::AtHook), "the hook still awaits its answer");
    invoke(&backend.convoy, "verify", convoy_tests::fixtures::codedeploy_hook(&deployment, "exec-1")).await;
    assert_eq!(backend.accepted_hook_answers().len(), 1);
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::HookPassed));
}

/// A deployment id not of CodeDeploy's form is refused as invalid
/// (`InvalidDeploymentIdException`), a well-formed one CodeDeploy does not know as missing
/// (`DeploymentDoesNotExistException`); Convoy takes both as refusals for good.
#[tokio::test]
async fn a_malformed_deployment_id_is_refused_as_invalid_and_an_unknown_well_formed_one_as_missing() {
    let backend = MotoBackend::new(&crate::deploy::containers()).await;
    let codedeploy = codedeploy_via(&backend).await;
    for malformed in ["d-123", "deployment-1", "d-abcdefghi"] {
        let continued = codedeploy.continue_deployment().deployment_id(malformed).send().await.unwrap_err();
        assert!(continued.as_service_error().is_some_and(|e| e.is_invalid_deployment_id_exception()), "{malformed}");
        let described = codedeploy.get_deployment().deployment_id(malformed).send().await.unwrap_err();
        assert!(described.as_service_error().is_some_and(|e| e.is_invalid_deployment_id_exception()), "{malformed}");
        let id = convoy::names::DeploymentId::new(malformed).unwrap();
        let status = backend.convoy.codedeploy.status(&id).await.unwrap_err();
        assert!(
            matches!(&status, convoy::error::DeployError::Rejected(why) if why.contains("InvalidDeploymentIdException")),
            "refused for good: {status}"
        );
    }
    let stopped = codedeploy.stop_deployment().deployment_id("d-AAAAAAAAA").send().await.unwrap_err();
    assert!(stopped.as_service_error().is_some_and(|e| e.is_deployment_does_not_exist_exception()), "{stopped:?}");
    assert_eq!(
        backend.standin.refusals_of("ContinueDeployment"),
        ["InvalidDeploymentIdException", "InvalidDeploymentIdException", "InvalidDeploymentIdException"]
    );
}

/// `ContinueDeployment` reads its `deploymentWaitType`: READY_WAIT reroutes production traffic
/// from READY_WAIT and only then; TERMINATION_WAIT ends the original task set's termination
/// wait, which begins with the reroute, and only then.
#[tokio::test]
async fn continue_reroutes_at_the_ready_wait_and_ends_the_termination_wait_each_only_in_its_own_wait() {
    use aws_sdk_codedeploy::types::DeploymentWaitType;
    let (backend, _green) = with_green(Behaviour::version("r9"), "manual").await;
    let (record, _) = verify_codedeploy(&backend, "r9").await;
    let deployment = record.deployment.unwrap().id.unwrap().to_string();
    backend.standin.waits(&deployment);
    let codedeploy = codedeploy_via(&backend).await;
    let continue_with = |wait: DeploymentWaitType| {
        codedeploy.continue_deployment().deployment_id(&deployment).deployment_wait_type(wait).send()
    };
    let early = continue_with(DeploymentWaitType::TerminationWait).await.unwrap_err();
    assert!(early.as_service_error().is_some_and(|e| e.is_deployment_is_not_in_ready_state_exception()));
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::Ready), "not rerouted by a termination-wait continue");
    continue_with(DeploymentWaitType::ReadyWait).await.unwrap();
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::Shifting));
    let again = continue_with(DeploymentWaitType::ReadyWait).await.unwrap_err();
    assert!(again.as_service_error().is_some_and(|e| e.is_deployment_is_not_in_ready_state_exception()));
    continue_with(DeploymentWaitType::TerminationWait).await.unwrap();
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::Succeeded));
    let described = codedeploy.get_deployment().deployment_id(&deployment).send().await.unwrap();
    assert_eq!(
        described.deployment_info().unwrap().status(),
        Some(&aws_sdk_codedeploy::types::DeploymentStatus::Succeeded)
    );
}

/// `StopDeployment` rolls back only when `autoRollbackEnabled` says so, or, when it says
/// nothing, when the deployment's rollback configuration (its own, else its group's) names
/// DEPLOYMENT_STOP_ON_REQUEST. The rollback is a new deployment with its own id: `GetDeployment`
/// names each in the other's `rollbackInfo`, and Convoy sees the new one as a rollback.
#[tokio::test]
async fn a_stop_rolls_back_only_when_asked_or_configured_and_the_rollback_is_a_new_deployment() {
    use aws_sdk_codedeploy::types::{
        AppSpecContent, AutoRollbackConfiguration, DeploymentCreator, DeploymentStatus, RevisionLocation,
        RevisionLocationType,
    };
    let backend = MotoBackend::new(&crate::deploy::containers()).await;
    let codedeploy = codedeploy_via(&backend).await;
    let create = |rollback: Option<AutoRollbackConfiguration>| {
        let revision = RevisionLocation::builder()
            .revision_type(RevisionLocationType::AppSpecContent)
            .app_spec_content(AppSpecContent::builder().content("{\"version\": 0.0}").build())
            .build();
        let codedeploy = codedeploy.clone();
        let (application, group) = (backend.application.clone(), backend.group.clone());
        async move {
            let created = codedeploy
                .create_deployment()
                .application_name(application)
                .deployment_group_name(group)
                .revision(revision)
                .set_auto_rollback_configuration(rollback)
                .send()
                .await
                .unwrap();
            created.deployment_id().unwrap().to_owned()
        }
    };
    let stop = |id: String, auto_rollback: Option<bool>| {
        codedeploy.stop_deployment().deployment_id(id).set_auto_rollback_enabled(auto_rollback).send()
    };

    let kept = create(None).await;
    stop(kept.clone(), Some(false)).await.unwrap();
    assert_eq!(backend.standin.phase(&kept), Some(Phase::Stopped));
    assert_eq!(backend.standin.rollback_of(&kept), None, "no rollback when the stop asks for none");

    let stopped = create(None).await;
    stop(stopped.clone(), Some(true)).await.unwrap();
    let rollback = backend.standin.rollback_of(&stopped).expect("a rollback when the stop asks for one");
    assert!(rollback.starts_with("d-") && rollback.len() == 11 && rollback != stopped, "{rollback}");
    let described = codedeploy.get_deployment().deployment_id(&stopped).send().await.unwrap();
    let info = described.deployment_info().unwrap();
    assert_eq!(info.status(), Some(&DeploymentStatus::Stopped));
    assert_eq!(info.rollback_info().and_then(|r| r.rollback_deployment_id()), Some(rollback.as_str()));
    let described = codedeploy.get_deployment().deployment_id(&rollback).send().await.unwrap();
    let info = described.deployment_info().unwrap();
    assert_eq!(info.deployment_id(), Some(rollback.as_str()));
    assert_eq!(info.creator(), Some(&DeploymentCreator::CodeDeployRollback));
    assert_eq!(info.status(), Some(&DeploymentStatus::InProgress));
    assert_eq!(info.rollback_info().and_then(|r| r.rollback_triggering_deployment_id()), Some(stopped.as_str()));
    let origin =
        backend.convoy.codedeploy.origin(&rollback.parse().unwrap()).await.unwrap().expect("CodeDeploy knows it");
    assert!(origin.rollback, "{origin:?}");
    assert_eq!((origin.application, origin.deployment_group), (backend.application.clone(), backend.group.clone()));

    // Nothing said in the stop: the group's DEPLOYMENT_STOP_ON_REQUEST rolls it back; a
    // deployment whose own configuration turns rollbacks off is not.
    let by_group = create(None).await;
    stop(by_group.clone(), None).await.unwrap();
    assert!(backend.standin.rollback_of(&by_group).is_some(), "the group's configuration rolls it back");
    let off = create(Some(AutoRollbackConfiguration::builder().enabled(false).build())).await;
    stop(off.clone(), None).await.unwrap();
    assert_eq!(backend.standin.rollback_of(&off), None, "its own configuration turns rollbacks off");
}

/// CloudTrail allows `LookupEvents` two requests a second per account and Region: the stand-in
/// throttles the rest (`ThrottlingException`), and Convoy's look-up retries them and still finds
/// the approver's call.
#[tokio::test]
async fn lookups_beyond_cloudtrails_two_a_second_are_throttled_and_convoys_look_up_still_finds_the_call() {
    let (backend, _green) = with_green(Behaviour::version("r10"), "manual").await;
    let (record, _) = verify_codedeploy(&backend, "r10").await;
    let deployment = record.deployment.unwrap().id.unwrap().to_string();
    backend.standin.waits(&deployment);
    let (alice, as_alice) = backend.person("alice-r10").await;
    as_alice.decide(&release_key("r10"), true).await.unwrap();
    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    let lookups: Vec<_> = (0..4)
        .map(|_| {
            let (calls, deployment) = (backend.convoy.api_calls.clone(), deployment.clone());
            let deployment = convoy::names::DeploymentRef::CodeDeploy(deployment.parse().unwrap());
            tokio::spawn(async move { calls.decisions_on(&deployment, true, since, chrono::Utc::now()).await })
        })
        .collect();
    for lookup in lookups {
        let found = lookup.await.unwrap().expect("the look-up outlasts the throttling");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].actor.principal_arn, alice);
    }
    let throttled = backend.standin.refusals_of("LookupEvents");
    assert!(!throttled.is_empty() && throttled.iter().all(|r| r == "ThrottlingException"), "{throttled:?}");
    assert_eq!(backend.standin.answered("LookupEvents").len(), 4);
}

/// Throttling is injectable per operation: a throttled `ContinueDeployment` is refused as AWS
/// throttles (`ThrottlingException`), which Convoy reports as worth a retry, recording nothing;
/// once the limit is lifted the same approval goes through.
#[tokio::test]
async fn a_throttled_continue_is_worth_a_retry_and_goes_through_once_the_limit_is_lifted() {
    let (backend, _green) = with_green(Behaviour::version("r11"), "manual").await;
    let (record, _) = verify_codedeploy(&backend, "r11").await;
    let deployment = record.deployment.unwrap().id.unwrap().to_string();
    backend.standin.waits(&deployment);
    let key = release_key("r11");
    backend.standin.throttle("ContinueDeployment", Some(0));
    let throttled = backend.convoy.decide(&key, true).await.unwrap_err();
    assert!(throttled.is_retryable(), "{throttled}");
    assert_eq!(backend.standin.refusals_of("ContinueDeployment"), ["ThrottlingException"]);
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::Ready), "nothing continued");
    assert_eq!(backend.standin.trail().last().unwrap()["errorCode"], "ThrottlingException");
    backend.standin.throttle("ContinueDeployment", None);
    backend.convoy.decide(&key, true).await.unwrap();
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::Shifting));
}
