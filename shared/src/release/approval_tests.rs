use chrono::Duration;

use super::test_support::{apply, ready, t, unchanged};
use super::*;

const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
const BOB: &str = "arn:aws:sts::123456789012:assumed-role/Approvers/bob@example.com";

fn deploying() -> Release {
    let claim = deployment::Event::Claimed {
        method: DeployMethod::CodeDeploy,
        at: t(2),
        lease: Duration::seconds(90),
        gate: None,
    };
    let (claimed, _) = apply(&ready(false), claim);
    let started = deployment::Event::Started { deployment: "d-1".parse().unwrap(), task_definition: None, at: t(3) };
    apply(&claimed, started).0
}

fn verifying() -> Release {
    let hook = Hook::CodeDeploy { deployment_id: "d-1".parse().unwrap(), execution_id: "exec-1".parse().unwrap() };
    apply(&deploying(), verification::Event::Started { hook, at: t(4) }).0
}

fn finished(auto: bool) -> verification::Event {
    verification::Event::Finished {
        outcome: VerificationOutcome { passed: true, reason: "10 of 10 probes passed".into() },
        auto,
        bake_seconds: 0,
        alarms: Vec::new(),
        at: t(60),
    }
}

fn awaiting() -> Release {
    apply(&verifying(), finished(false)).0
}

fn actor(arn: &str, event_id: &str, via: Via) -> Actor {
    Actor {
        principal_arn: arn.into(),
        session_name: Actor::session_of(arn),
        source_ip: Some("198.51.100.7".into()),
        event_id: event_id.into(),
        event_time: t(70),
        operation: "codedeploy:ContinueDeployment".into(),
        via,
    }
}

fn observed(approve: bool, arn: &str, event_id: &str) -> approval::Event {
    observed_on("d-1", approve, actor(arn, event_id, Via::CloudTrailEvent))
}

fn observed_on(deployment: &str, approve: bool, actor: Actor) -> approval::Event {
    approval::Event::Observed { call: ObservedCall { deployment: deployment.into(), approve, actor }, at: t(71) }
}

fn ended(end: DeploymentEnd, at: i64) -> deployment::Event {
    deployment::Event::Ended { deployment: "d-1".into(), end, detail: String::new(), at: t(at) }
}

fn recorded(release: &Release) -> Option<&Actor> {
    match release.approval.as_ref()?.actor.as_ref()? {
        Attribution::Recorded(actor) => Some(actor),
        _ => None,
    }
}

#[test]
fn a_continue_while_awaiting_approval_shifts_traffic_approved_by_the_principal() {
    let (release, effects) = apply(&awaiting(), observed(true, ALICE, "ev-1"));
    assert_eq!(release.state, State::ShiftingTraffic { deployment: "d-1".parse().unwrap() });
    let approval = release.approval.as_ref().unwrap();
    assert!(approval.approved);
    assert_eq!(approval.by, ALICE);
    assert_eq!(recorded(&release).unwrap().event_id, "ev-1");
    assert_eq!(approval.event_id(), Some("ev-1"), "the decision names the CloudTrail event it was read from");
    let entry = release.timeline.iter().find(|e| e.event == "approved").expect("the approval in the timeline");
    assert_eq!(entry.detail, format!("by {ALICE} (CloudTrail event ev-1): production traffic shifts"));
    assert!(effects.is_empty(), "the caller's own call continues the deployment");
}

#[test]
fn a_stop_while_awaiting_approval_rolls_back_rejected_by_the_principal() {
    let (release, _) = apply(&awaiting(), observed(false, BOB, "ev-2"));
    assert_eq!(
        release.state,
        State::RollingBack { deployment: "d-1".parse().unwrap(), reason: format!("rejected by {BOB}") }
    );
    assert!(!release.approval.as_ref().unwrap().approved);
}

#[test]
fn a_rejected_release_ends_rolled_back_when_the_deployment_stops() {
    let (rejected, _) = apply(&awaiting(), observed(false, BOB, "ev-2"));
    let (release, effects) = apply(&rejected, ended(DeploymentEnd::Stopped, 90));
    assert_eq!(release.state, State::RolledBack { reason: format!("rejected by {BOB}") });
    assert_eq!(effects, vec![Effect::ReleaseDeployLock], "no look-up: CloudTrail named the rejecter");
}

#[test]
fn an_assumed_role_names_its_session() {
    assert_eq!(Actor::session_of(BOB).as_deref(), Some("bob@example.com"));
    assert_eq!(Actor::session_of(ALICE), None);
}

#[test]
fn a_continue_during_verification_fails_the_release_at_approval_and_rolls_back() {
    let (release, effects) = apply(&verifying(), observed(true, ALICE, "ev-3"));
    let State::Failed { stage: Stage::Approval, reason } = &release.state else { panic!("{}", release.state) };
    assert_eq!(
        reason,
        &format!("approved by {ALICE} (CloudTrail event ev-3) before Convoy recorded a passed verification")
    );
    assert_eq!(effects, vec![Effect::RollBack { deployment: "d-1".parse().unwrap() }, Effect::ReleaseDeployLock]);
}

#[test]
fn a_continue_before_the_hook_fails_the_release_at_approval() {
    let (release, _) = apply(&deploying(), observed(true, ALICE, "ev-3"));
    assert!(matches!(release.state, State::Failed { stage: Stage::Approval, .. }));
}

#[test]
fn a_call_on_another_deployment_changes_nothing() {
    let call = observed_on("d-OTHER", true, actor(ALICE, "ev-4", Via::CloudTrailEvent));
    assert!(unchanged(awaiting().apply(&call).unwrap()));
}

#[test]
fn the_same_cloudtrail_event_twice_changes_nothing() {
    let (release, _) = apply(&awaiting(), observed(true, ALICE, "ev-1"));
    assert!(unchanged(release.apply(&observed(true, ALICE, "ev-1")).unwrap()));
}

#[test]
fn a_late_event_after_success_changes_nothing_once_attributed() {
    let (shifting, _) = apply(&awaiting(), observed(true, ALICE, "ev-1"));
    let (succeeded, _) = apply(&shifting, ended(DeploymentEnd::Succeeded, 90));
    assert!(unchanged(succeeded.apply(&observed(true, BOB, "ev-9")).unwrap()));
    assert!(unchanged(succeeded.apply(&observed(false, BOB, "ev-10")).unwrap()));
}

#[test]
fn a_late_event_after_rollback_changes_nothing() {
    let (rejected, _) = apply(&awaiting(), observed(false, BOB, "ev-2"));
    let (rolled_back, _) = apply(&rejected, ended(DeploymentEnd::Stopped, 90));
    assert!(unchanged(rolled_back.apply(&observed(true, ALICE, "ev-11")).unwrap()));
}

#[test]
fn a_success_with_no_call_recorded_asks_cloudtrail_who_approved() {
    let (release, effects) = apply(&awaiting(), ended(DeploymentEnd::Succeeded, 90));
    assert_eq!(release.state, State::Succeeded);
    assert_eq!(release.approval.as_ref().unwrap().actor, Some(Attribution::Pending { since: t(60) }));
    assert!(effects.contains(&Effect::FindApprover { deployment: "d-1".into(), approve: true, since: t(60) }));
    assert!(effects.contains(&Effect::ReleaseDeployLock));
}

#[test]
fn a_stop_with_no_call_recorded_asks_cloudtrail_who_rejected() {
    let (release, effects) = apply(&awaiting(), ended(DeploymentEnd::Stopped, 90));
    assert!(matches!(release.state, State::RolledBack { .. }));
    assert!(effects.iter().any(|e| matches!(e, Effect::FindApprover { approve: false, .. })));
}

#[test]
fn the_looked_up_call_fills_in_a_pending_attribution() {
    let (succeeded, _) = apply(&awaiting(), ended(DeploymentEnd::Succeeded, 90));
    let (release, effects) = apply(&succeeded, observed_on("d-1", true, actor(BOB, "ev-5", Via::LookupEvents)));
    assert_eq!(release.state, State::Succeeded);
    assert_eq!(recorded(&release).unwrap().via, Via::LookupEvents);
    assert_eq!(release.approval.as_ref().unwrap().by, BOB);
    assert!(effects.is_empty());
    assert!(release.attribution_wanted().is_none(), "nothing is pending any more");
}

#[test]
fn a_looked_up_call_of_the_other_decision_does_not_fill_in() {
    let (succeeded, _) = apply(&awaiting(), ended(DeploymentEnd::Succeeded, 90));
    assert!(unchanged(succeeded.apply(&observed(false, BOB, "ev-6")).unwrap()));
}

#[test]
fn nothing_found_soon_after_the_decision_keeps_the_attribution_pending() {
    let (succeeded, _) = apply(&awaiting(), ended(DeploymentEnd::Succeeded, 90));
    let none = approval::Event::ApproverNotFound { why: "no call".into(), checked_until: t(100), at: t(100) };
    assert!(unchanged(succeeded.apply(&none).unwrap()));
    assert!(succeeded.attribution_wanted().is_some());
}

#[test]
fn nothing_found_long_after_the_decision_says_unknown_and_why() {
    let (succeeded, _) = apply(&awaiting(), ended(DeploymentEnd::Succeeded, 90));
    let late = t(90) + CLOUDTRAIL_DELAY;
    let why = "CloudTrail event history has no ContinueDeployment for d-1";
    let (release, _) =
        apply(&succeeded, approval::Event::ApproverNotFound { why: why.into(), checked_until: late, at: late });
    let approval = release.approval.as_ref().unwrap();
    assert_eq!(approval.by, format!("unknown: {why}"));
    assert!(matches!(&approval.actor, Some(Attribution::Unknown { why: w }) if w.contains("d-1")));
    assert!(release.attribution_wanted().is_none());
}

#[test]
fn an_unknown_approver_is_still_filled_in_by_a_later_event() {
    let (succeeded, _) = apply(&awaiting(), ended(DeploymentEnd::Succeeded, 90));
    let late = t(90) + CLOUDTRAIL_DELAY;
    let (unknown, _) =
        apply(&succeeded, approval::Event::ApproverNotFound { why: "none".into(), checked_until: late, at: late });
    let (release, _) = apply(&unknown, observed(true, ALICE, "ev-7"));
    assert_eq!(recorded(&release).unwrap().principal_arn, ALICE);
}

#[test]
fn a_policy_approval_is_attributed_to_convoys_role_and_keeps_its_name() {
    let (shifting, _) = apply(&verifying(), finished(true));
    let role = "arn:aws:sts::123456789012:assumed-role/convoy-reconciler/convoy";
    let (release, _) = apply(&shifting, observed(true, role, "ev-8"));
    assert_eq!(release.approval.as_ref().unwrap().by, "policy (auto)");
    assert_eq!(recorded(&release).unwrap().principal_arn, role);
    assert!(unchanged(release.apply(&observed(true, role, "ev-8")).unwrap()), "idempotent");
}

#[test]
fn a_stop_while_shifting_rolls_back_naming_who_stopped_it() {
    let (shifting, _) = apply(&awaiting(), observed(true, ALICE, "ev-1"));
    let (release, _) = apply(&shifting, observed(false, BOB, "ev-12"));
    assert!(matches!(&release.state, State::RollingBack { reason, .. } if reason.contains(BOB)));
}

#[test]
fn an_old_record_without_an_actor_still_reads() {
    let old = r#"{"approved": true, "by": "alice", "at": "2026-01-01T00:00:00Z"}"#;
    let decision: ApprovalDecision = serde_json::from_str(old).unwrap();
    assert_eq!(decision.actor, None);
    assert_eq!(decision.by, "alice");
}

fn rerouted(deployment: &str, at: i64) -> approval::Event {
    approval::Event::Rerouted { deployment: deployment.parse().unwrap(), at: t(at) }
}

#[test]
fn a_reroute_seen_while_awaiting_approval_shifts_and_asks_cloudtrail_who_approved() {
    let (release, effects) = apply(&awaiting(), rerouted("d-1", 80));
    assert_eq!(release.state, State::ShiftingTraffic { deployment: "d-1".parse().unwrap() });
    let approval = release.approval.as_ref().unwrap();
    assert!(approval.approved);
    assert_eq!(approval.actor, Some(Attribution::Pending { since: t(60) }));
    assert_eq!(effects, vec![Effect::FindApprover { deployment: "d-1".into(), approve: true, since: t(60) }]);
}

#[test]
fn a_reroute_seen_again_while_shifting_changes_nothing() {
    let (shifting, _) = apply(&awaiting(), rerouted("d-1", 80));
    assert!(unchanged(shifting.apply(&rerouted("d-1", 140)).unwrap()));
}

#[test]
fn a_reroute_after_a_recorded_approval_changes_nothing() {
    let (approved, _) = apply(&awaiting(), observed(true, ALICE, "ev-21"));
    assert!(unchanged(approved.apply(&rerouted("d-1", 80)).unwrap()));
    assert_eq!(recorded(&approved).unwrap().principal_arn, ALICE);
}

#[test]
fn a_reroute_after_a_policy_approval_changes_nothing() {
    let (approved, _) = apply(&verifying(), finished(true));
    assert!(unchanged(approved.apply(&rerouted("d-1", 80)).unwrap()));
}

#[test]
fn a_reroute_of_another_deployment_changes_nothing() {
    assert!(unchanged(awaiting().apply(&rerouted("d-2", 80)).unwrap()));
}

#[test]
fn the_looked_up_call_fills_in_the_approval_a_reroute_left_pending() {
    let (shifting, _) = apply(&awaiting(), rerouted("d-1", 80));
    let (release, effects) = apply(&shifting, observed_on("d-1", true, actor(BOB, "ev-22", Via::LookupEvents)));
    assert!(matches!(release.state, State::ShiftingTraffic { .. }), "{}", release.state);
    assert_eq!(recorded(&release).unwrap().principal_arn, BOB);
    assert!(effects.is_empty());
    assert!(release.attribution_wanted().is_none());
}
