//! Approval is an AWS-authenticated act: a person's own credentials make the CodeDeploy call
//! (through the stand-in, which records it as CloudTrail does, with the principal moto's STS
//! resolves from the signing key); Convoy records who from CloudTrail's event, or, without one,
//! from CloudTrail's event history (`LookupEvents`, served by the stand-in).

use convoy::names::ReleaseKey;
use convoy::release::{Attribution, Stage, State, Via};
use convoy_tests::http::{Behaviour, Server};
use convoy_tests::standin::{Phase, StandIn};
use serde_json::json;

use crate::deploy::{deploying, invoke, verify_codedeploy, with_green};
use crate::scenario::*;

fn recorded(record: &convoy::release::Release) -> convoy::release::Actor {
    match record.approval.as_ref().and_then(|a| a.actor.clone()) {
        Some(Attribution::Recorded(actor)) => actor,
        other => panic!("no principal recorded: {other:?}"),
    }
}

/// A release verified by Convoy on a manual approval: its backend (and the green server it
/// probed, kept alive), its CodeDeploy deployment and its key.
async fn verified_for_a_manual_approval(release: &str) -> (MotoBackend, Server, String, ReleaseKey) {
    let (backend, green) = with_green(Behaviour::version(release), "manual").await;
    let (record, _) = verify_codedeploy(&backend, release).await;
    let deployment = record.deployment.unwrap().id.unwrap().to_string();
    (backend, green, deployment, release_key(release))
}

/// [`verified_for_a_manual_approval`], with CodeDeploy at READY_WAIT: it offers the reroute.
async fn awaiting_the_reroute(release: &str) -> (MotoBackend, Server, String, ReleaseKey) {
    let verified = verified_for_a_manual_approval(release).await;
    verified.0.standin.waits(&verified.2);
    verified
}

/// "Reroute traffic" in the CodeDeploy console: `ContinueDeployment` (READY_WAIT) with a new
/// person's own credentials. Returns the person's ARN and their CodeDeploy client.
async fn reroute_in_the_console(
    backend: &MotoBackend,
    person: &str,
    deployment: &str,
) -> (String, aws_sdk_codedeploy::Client) {
    let (arn, sdk) = backend.person_sdk(person).await;
    let codedeploy = aws_sdk_codedeploy::Client::new(&sdk);
    codedeploy
        .continue_deployment()
        .deployment_id(deployment)
        .deployment_wait_type(aws_sdk_codedeploy::types::DeploymentWaitType::ReadyWait)
        .send()
        .await
        .unwrap();
    (arn, codedeploy)
}

/// With an attribution pending after one look-up: the next reconciler run asks CloudTrail again
/// and concludes nothing from an empty answer (the record stays `pending`); a run past
/// CloudTrail's delay records what it found. Returns that record and the time of the last run.
async fn asked_again_then_past_cloudtrails_delay(
    backend: &MotoBackend,
    key: &convoy::names::ReleaseKey,
    pending: &convoy::release::Release,
) -> (convoy::release::Release, chrono::DateTime<chrono::Utc>) {
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(backend.standin.answered("LookupEvents").len(), 2);
    assert_eq!(&backend.record(key).await.unwrap(), pending);
    let later = chrono::Utc::now() + convoy::release::CLOUDTRAIL_DELAY + chrono::Duration::minutes(1);
    backend.convoy.reconcile(later).await.unwrap();
    (backend.record(key).await.unwrap(), later)
}

#[tokio::test]
async fn an_approval_by_a_cloudtrail_event_names_that_events_principal_in_the_record_and_status() {
    let (backend, _green, deployment, key) = awaiting_the_reroute("c1").await;

    let (alice, as_alice) = backend.person("alice-c1").await;
    assert!(alice.starts_with("arn:aws:iam::") && alice.contains(":user/alice-c1-"), "{alice}");
    as_alice.decide(&key, true).await.unwrap();
    let call = backend.cloudtrail_delivers_last_call().await;
    let event_id = call["eventID"].as_str().unwrap().to_owned();

    let record = backend.record(&key).await.unwrap();
    assert!(matches!(record.state, State::ShiftingTraffic { .. }), "{}", record.state);
    let actor = recorded(&record);
    assert_eq!((actor.principal_arn.as_str(), actor.event_id.as_str()), (alice.as_str(), event_id.as_str()));
    assert_eq!(actor.via, Via::CloudTrailEvent);
    assert_eq!(actor.source_ip.as_deref(), Some("127.0.0.1"), "the connection's address, as CloudTrail sees it");
    let status = convoy::status::render(&record);
    println!("{status}");
    assert!(status.contains(&format!("principal   {alice}")), "{status}");
    assert!(status.contains(&format!("CloudTrail  event {event_id}")), "{status}");

    // EventBridge delivers at least once, and late: the same event again changes nothing, before
    // or after the deployment ended.
    let event = StandIn::api_call_event(&call);
    invoke(&backend.convoy, "deployment-changed", event.clone()).await;
    assert_eq!(backend.record(&key).await.unwrap(), record, "a duplicate changes nothing");
    backend.standin.finish(&deployment);
    backend.codedeploy_reports(&deployment, "SUCCESS").await;
    let succeeded = backend.record(&key).await.unwrap();
    assert_eq!(succeeded.state, State::Succeeded);
    invoke(&backend.convoy, "deployment-changed", event).await;
    assert_eq!(backend.record(&key).await.unwrap(), succeeded, "a late duplicate changes nothing");
    assert!(backend.standin.answered("LookupEvents").is_empty(), "CloudTrail's event named the approver");
}

#[tokio::test]
async fn a_console_approval_with_no_event_is_attributed_through_lookup_events() {
    let (backend, _green, deployment, key) = awaiting_the_reroute("c2").await;

    // "Reroute traffic" in the console: CodeDeploy ContinueDeployment with the person's session,
    // and no "AWS API Call via CloudTrail" event ever reaches Convoy (no trail).
    let (carol, _) = reroute_in_the_console(&backend, "carol-c2", &deployment).await;
    backend.standin.finish(&deployment);
    backend.codedeploy_reports(&deployment, "SUCCESS").await;

    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::Succeeded);
    let actor = recorded(&record);
    assert_eq!(actor.principal_arn, carol);
    assert_eq!(actor.via, Via::LookupEvents);
    assert_eq!(actor.event_id, backend.standin.trail()[0]["eventID"].as_str().unwrap());
    let lookups = backend.standin.answered("LookupEvents");
    assert_eq!(lookups.len(), 1, "one look-up, by event name: {lookups:?}");
    assert_eq!(
        lookups[0]["LookupAttributes"],
        json!([{"AttributeKey": "EventName", "AttributeValue": "ContinueDeployment"}])
    );
    let status = convoy::status::render(&record);
    assert!(status.contains(&format!("principal   {carol}")), "{status}");
    assert!(status.contains("CloudTrail event history (LookupEvents)"), "{status}");

    // The reconciler finds nothing left to ask: the release is attributed and no longer active.
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(backend.standin.answered("LookupEvents").len(), 1);
}

#[tokio::test]
async fn a_console_reroute_with_no_event_is_seen_by_the_reconciler_before_the_deployment_ends() {
    let (backend, _green, deployment, key) = awaiting_the_reroute("c9").await;
    let awaiting = backend.record(&key).await.unwrap();
    assert!(matches!(awaiting.state, State::AwaitingApproval { .. }), "{}", awaiting.state);

    // Waiting for the reroute (`Ready`): the reconciler sees nothing to record.
    assert!(backend.convoy.reconcile(chrono::Utc::now()).await.unwrap().is_empty());
    assert_eq!(backend.record(&key).await.unwrap(), awaiting);

    // "Reroute traffic" in the console: no "AWS API Call via CloudTrail" event reaches Convoy, and
    // CodeDeploy keeps the deployment running through the original task set's termination wait.
    let (erin, codedeploy) = reroute_in_the_console(&backend, "erin-c9", &deployment).await;
    let described = codedeploy.get_deployment().deployment_id(&deployment).send().await.unwrap();
    let info = described.deployment_info().unwrap();
    assert_eq!(info.status(), Some(&aws_sdk_codedeploy::types::DeploymentStatus::InProgress));
    assert!(info.instance_termination_wait_time_started());

    // One reconciler run: the record says traffic shifts, approved by erin, from CloudTrail's
    // event history.
    let reports = backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let shifting = backend.record(&key).await.unwrap();
    assert_eq!(
        shifting.state,
        State::ShiftingTraffic { deployment: convoy::names::DeploymentRef::CodeDeploy(deployment.parse().unwrap()) }
    );
    let actor = recorded(&shifting);
    assert_eq!(actor.principal_arn, erin);
    assert_eq!(actor.via, Via::LookupEvents);
    assert_eq!(actor.event_id, backend.standin.trail()[0]["eventID"].as_str().unwrap());
    assert_eq!(backend.standin.answered("LookupEvents").len(), 1);
    let status = convoy::status::render(&shifting);
    assert!(status.contains(&format!("principal   {erin}")), "{status}");

    // A second run changes nothing, asks CloudTrail nothing more, and continues nothing again.
    assert!(backend.convoy.reconcile(chrono::Utc::now()).await.unwrap().is_empty());
    assert_eq!(backend.record(&key).await.unwrap(), shifting);
    assert_eq!(backend.standin.answered("LookupEvents").len(), 1);
    assert_eq!(backend.standin.calls_to("ContinueDeployment").len(), 1, "erin's alone");
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::Shifting));
}

#[tokio::test]
async fn a_reroute_cloudtrail_has_no_call_for_yet_is_asked_again_while_traffic_shifts() {
    let (backend, _green, deployment, key) = awaiting_the_reroute("c10").await;
    // Rerouted, and CloudTrail's event history has (so far) no call for it.
    backend.standin.reroutes_by_itself(&deployment);
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let pending = backend.record(&key).await.unwrap();
    assert!(matches!(pending.state, State::ShiftingTraffic { .. }), "{}", pending.state);
    assert!(matches!(pending.approval.as_ref().unwrap().actor, Some(Attribution::Pending { .. })));
    assert_eq!(backend.standin.answered("LookupEvents").len(), 1);

    // Each visit asks again while it is pending; past CloudTrail's delay the record says AWS has no record.
    let (record, later) = asked_again_then_past_cloudtrails_delay(&backend, &key, &pending).await;
    assert!(matches!(record.state, State::ShiftingTraffic { .. }), "{}", record.state);
    assert!(matches!(record.approval.as_ref().unwrap().actor, Some(Attribution::Unknown { .. })));
    backend.convoy.reconcile(later).await.unwrap();
    assert_eq!(backend.standin.answered("LookupEvents").len(), 3);
    assert!(backend.standin.calls_to("ContinueDeployment").is_empty(), "a rerouted deployment is not continued");
}

#[tokio::test]
async fn an_approval_before_convoy_recorded_a_passed_verification_ends_failed_at_approval() {
    let (backend, _green) = with_green(Behaviour::version("c3"), "manual").await;
    let deployment = deploying(&backend, "c3", json!({})).await;
    let key = release_key("c3");
    // Someone else answers the hook (Convoy's verify never ran) and CodeDeploy offers the reroute.
    let (mallory, sdk) = backend.person_sdk("mallory-c3").await;
    let codedeploy = aws_sdk_codedeploy::Client::new(&sdk);
    backend.standin.hook_invoked(&deployment, "exec-m");
    codedeploy
        .put_lifecycle_event_hook_execution_status()
        .deployment_id(&deployment)
        .lifecycle_event_hook_execution_id("exec-m")
        .status(aws_sdk_codedeploy::types::LifecycleEventStatus::Succeeded)
        .send()
        .await
        .unwrap();
    backend.standin.waits(&deployment);
    codedeploy.continue_deployment().deployment_id(&deployment).send().await.unwrap();
    let call = backend.cloudtrail_delivers_last_call().await;

    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Approval, reason } = &record.state else { panic!("{}", record.state) };
    assert_eq!(
        reason,
        &format!(
            "approved by {mallory} (CloudTrail event {}) before Convoy recorded a passed verification",
            call["eventID"].as_str().unwrap()
        )
    );
    assert_eq!(
        backend.standin.calls_to("StopDeployment"),
        vec![json!({"deploymentId": deployment, "autoRollbackEnabled": true})],
        "Convoy rolls the deployment back"
    );
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::Stopped));
    let lock = backend.convoy.locks.load(&SERVICE.parse().unwrap()).await.unwrap();
    assert_eq!(lock.and_then(|(lock, _)| lock.holder), None, "the deploy lock is free");
}

#[tokio::test]
async fn a_continue_codedeploy_refused_changes_nothing() {
    let (backend, _green) = with_green(Behaviour::version("c4"), "manual").await;
    let (before, _) = verify_codedeploy(&backend, "c4").await;
    let deployment = before.deployment.as_ref().unwrap().id.clone().unwrap().to_string();
    let key = release_key("c4");
    // CodeDeploy has not reached READY_WAIT: it refuses, and CloudTrail records the refusal.
    let (_, as_dave) = backend.person("dave-c4").await;
    let early = as_dave.decide(&key, true).await.unwrap_err();
    assert!(early.to_string().contains("DeploymentIsNotInReadyStateException"), "{early}");
    let call = backend.cloudtrail_delivers_last_call().await;
    assert_eq!(call["errorCode"], "DeploymentIsNotInReadyStateException");
    assert_eq!(backend.record(&key).await.unwrap(), before, "a refused call is not an approval");
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::HookPassed));
}

#[tokio::test]
async fn a_rejection_names_the_rejecting_principal_in_status_and_ends_rolled_back() {
    let (backend, _green, deployment, key) = verified_for_a_manual_approval("c5").await;
    let (erin, as_erin) = backend.person("erin-c5").await;
    as_erin.decide(&key, false).await.unwrap();
    let call = backend.cloudtrail_delivers_last_call().await;
    // Reordered delivery: CodeDeploy's STOP first would also be fine; here the call came first.
    backend.codedeploy_reports(&deployment, "STOP").await;
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::RolledBack { reason: format!("rejected by {erin}") });
    let status = convoy::status::render(&record);
    assert!(status.contains(&format!("rejected by {erin}")), "{status}");
    assert!(status.contains(call["eventID"].as_str().unwrap()), "{status}");
}

#[tokio::test]
async fn a_stop_reported_before_its_cloudtrail_event_is_attributed_once_whatever_the_order() {
    let (backend, _green, deployment, key) = verified_for_a_manual_approval("c6").await;
    let (frank, as_frank) = backend.person("frank-c6").await;
    as_frank.decide(&key, false).await.unwrap();
    // CodeDeploy's STOP arrives first: the end asks CloudTrail's event history who stopped it.
    backend.codedeploy_reports(&deployment, "STOP").await;
    let ended = backend.record(&key).await.unwrap();
    assert!(matches!(ended.state, State::RolledBack { .. }), "{}", ended.state);
    let actor = recorded(&ended);
    assert_eq!((actor.principal_arn.as_str(), actor.via), (frank.as_str(), Via::LookupEvents));
    assert!(!ended.approval.as_ref().unwrap().approved);
    // Then EventBridge delivers the call's own event, twice: nothing changes.
    backend.cloudtrail_delivers_last_call().await;
    backend.cloudtrail_delivers_last_call().await;
    assert_eq!(backend.record(&key).await.unwrap(), ended);
    assert_eq!(backend.standin.answered("LookupEvents").len(), 1);
}

#[tokio::test]
async fn an_approval_through_an_assumed_role_names_the_role_session() {
    let (backend, _green, _deployment, key) = awaiting_the_reroute("c7").await;
    let (session_arn, sdk) = backend.role_session_sdk("approvers", "jane@example.com").await;
    assert!(session_arn.contains(":assumed-role/approvers-") && session_arn.ends_with("/jane@example.com"));
    let mut as_jane = backend.convoy.clone();
    as_jane.codedeploy =
        std::sync::Arc::new(convoy::adapters::aws::CodeDeployer::new(aws_sdk_codedeploy::Client::new(&sdk)));
    as_jane.service_deployments =
        std::sync::Arc::new(convoy::adapters::aws::EcsDeployments::new(aws_sdk_ecs::Client::new(&sdk)));
    as_jane.decide(&key, true).await.unwrap();
    let call = backend.cloudtrail_delivers_last_call().await;
    assert_eq!(call["userIdentity"]["type"], "AssumedRole");
    let record = backend.record(&key).await.unwrap();
    let actor = recorded(&record);
    assert_eq!(actor.principal_arn, session_arn);
    assert_eq!(actor.session_name.as_deref(), Some("jane@example.com"));
    let status = convoy::status::render(&record);
    assert!(status.contains("session     jane@example.com"), "{status}");
}

#[tokio::test]
async fn a_shift_cloudtrail_has_no_call_for_stays_pending_then_says_unknown_and_where_convoy_looked() {
    let (backend, _green, deployment, key) = verified_for_a_manual_approval("c8").await;
    // CodeDeploy moved on, and CloudTrail (so far) has no call for it.
    backend.standin.ended_elsewhere(&deployment, Phase::Succeeded);
    backend.codedeploy_reports(&deployment, "SUCCESS").await;
    let pending = backend.record(&key).await.unwrap();
    assert_eq!(pending.state, State::Succeeded);
    assert!(matches!(pending.approval.as_ref().unwrap().actor, Some(Attribution::Pending { .. })));
    assert_eq!(backend.standin.answered("LookupEvents").len(), 1);

    // The reconciler keeps the ended release and asks again; past CloudTrail's delay the record
    // says plainly that AWS has no record, and where Convoy looked.
    let (record, later) = asked_again_then_past_cloudtrails_delay(&backend, &key, &pending).await;
    let approval = record.approval.as_ref().unwrap();
    assert!(
        approval.by.starts_with(&format!(
            "unknown: CloudTrail event history has no successful ContinueDeployment for {deployment} between "
        )),
        "{}",
        approval.by
    );
    assert!(convoy::status::render(&record).contains("principal   unknown: CloudTrail event history"));
    // Attributed (as unknown): the release leaves the active list, and no more look-ups follow.
    backend.convoy.reconcile(later).await.unwrap();
    backend.convoy.reconcile(later).await.unwrap();
    assert_eq!(backend.standin.answered("LookupEvents").len(), 3);
}

/// CloudTrail's event history lags the calls it records: the approver's call is absent from
/// `LookupEvents` when the deployment ends (the attribution stays pending), and present a little
/// later, when the reconciler's next visit finds it. End to end on moto, with a person's own
/// `ContinueDeployment` and no CloudTrail event delivered.
#[tokio::test]
async fn an_approvers_call_absent_from_the_event_history_at_the_end_is_found_once_cloudtrail_shows_it() {
    let (backend, _green, deployment, key) = awaiting_the_reroute("c11").await;
    let delay = std::time::Duration::from_secs(3);
    backend.standin.cloudtrail_delay(delay);
    let (fay, as_fay) = backend.person("fay-c11").await;
    as_fay.decide(&key, true).await.unwrap();
    backend.standin.finish(&deployment);
    backend.codedeploy_reports(&deployment, "SUCCESS").await;

    // Absent now: the end asked the event history, which does not show the call yet.
    let pending = backend.record(&key).await.unwrap();
    assert_eq!(pending.state, State::Succeeded);
    assert!(matches!(pending.approval.as_ref().unwrap().actor, Some(Attribution::Pending { .. })), "{pending:?}");
    assert_eq!(backend.standin.answered("LookupEvents").len(), 1);

    // Present later: a reconciler visit once CloudTrail shows it records who approved.
    let attributed =
        convoy_tests::wait::wait_until(delay * 4, "the approver attributed from the event history", || {
            let (convoy, store, key) = (backend.convoy.clone(), backend.convoy.store.clone(), key.clone());
            async move {
                convoy.reconcile(chrono::Utc::now()).await.unwrap();
                let record = store.load(&key).await.unwrap()?.release;
                matches!(record.approval.as_ref()?.actor, Some(Attribution::Recorded(_))).then_some(record)
            }
        })
        .await;
    let actor = recorded(&attributed);
    assert_eq!((actor.principal_arn.as_str(), actor.via), (fay.as_str(), Via::LookupEvents));
    assert!(backend.standin.answered("LookupEvents").len() >= 2, "asked again until CloudTrail showed it");
}
