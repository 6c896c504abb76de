//! The `ecs-native` method's transitions: the recorded revision, the service deployment started
//! (or overtaken by its hook), only its own hook verifying it, progress kept, and how it ends.

use chrono::Duration;

use super::test_support::{apply, ready, t, unchanged};
use super::*;
use crate::names::ServiceDeploymentArn;

const ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service-deployment/convoy/web/abc";
const OTHER: &str = "arn:aws:ecs:us-east-1:123456789012:service-deployment/convoy/web/rollback";

fn claim(at: i64) -> deployment::Event {
    deployment::Event::Claimed { method: DeployMethod::EcsNative, at: t(at), lease: Duration::seconds(90), gate: None }
}

fn registered() -> Release {
    let (claimed, _) = apply(&ready(false), claim(2));
    let registered =
        deployment::Event::RevisionRegistered { task_definition: "web:43".into(), previous: None, at: t(3) };
    apply(&claimed, registered).0
}

fn started() -> Release {
    let event = deployment::Event::Started { deployment: ARN.parse().unwrap(), task_definition: None, at: t(4) };
    apply(&registered(), event).0
}

fn hook(arn: &str) -> Hook {
    Hook::EcsNative { execution_id: "exec-1".parse().unwrap(), service_deployment: arn.parse().unwrap() }
}

fn progress(stage: &str, at: i64) -> NativeProgress {
    NativeProgress {
        strategy: "linear, 25% every 5 min".into(),
        bake_minutes: Some(10),
        production_percent: Some(25),
        stage: Some(stage.into()),
        status: "IN_PROGRESS".into(),
        seen_at: t(at),
    }
}

#[test]
fn the_release_revision_is_recorded_once_before_the_update() {
    let release = registered();
    let run = release.deployment.as_ref().unwrap();
    assert_eq!(run.method, DeployMethod::EcsNative);
    assert_eq!(run.task_definition.as_deref(), Some("web:43"));
    let again = deployment::Event::RevisionRegistered { task_definition: "web:44".into(), previous: None, at: t(200) };
    assert!(unchanged(release.apply(&again).unwrap()), "a takeover keeps the first revision");
}

#[test]
fn a_takeover_keeps_the_recorded_revision() {
    let (taken, _) = apply(&registered(), claim(200));
    let run = taken.deployment.unwrap();
    assert_eq!((run.claims, run.task_definition.as_deref()), (2, Some("web:43")));
}

#[test]
fn the_started_service_deployment_is_followed_with_the_recorded_revision() {
    let release = started();
    assert_eq!(release.state, State::Deploying { deployment: ARN.into() });
    assert_eq!(release.native_deployment(), Some(ServiceDeploymentArn::new(ARN).unwrap()));
    assert_eq!(release.codedeploy_deployment(), None, "not a CodeDeploy deployment");
    assert_eq!(release.deployment.unwrap().task_definition.as_deref(), Some("web:43"));
}

#[test]
fn its_own_hook_verifies_it_and_another_service_deployments_hook_does_not() {
    let release = started();
    assert!(unchanged(release.apply(&verification::Event::Started { hook: hook(OTHER), at: t(5) }).unwrap()));
    let (verifying, _) = apply(&release, verification::Event::Started { hook: hook(ARN), at: t(5) });
    assert_eq!(verifying.state, State::Verifying { deployment: ARN.parse().unwrap() });
}

#[test]
fn a_hook_that_overtakes_the_record_of_the_start_adopts_its_service_deployment() {
    let (verifying, _) = apply(&registered(), verification::Event::Started { hook: hook(ARN), at: t(5) });
    assert_eq!(verifying.state, State::Verifying { deployment: ARN.parse().unwrap() });
    assert_eq!(verifying.native_deployment(), Some(ServiceDeploymentArn::new(ARN).unwrap()));
}

#[test]
fn what_ecs_says_of_the_shift_is_kept_and_a_repeat_is_not_written() {
    let (observed, _) =
        apply(&started(), deployment::Event::NativeObserved { progress: progress("PRODUCTION_TRAFFIC_SHIFT", 6) });
    assert_eq!(observed.deployment.as_ref().unwrap().native, Some(progress("PRODUCTION_TRAFFIC_SHIFT", 6)));
    let same = deployment::Event::NativeObserved { progress: progress("PRODUCTION_TRAFFIC_SHIFT", 9) };
    assert!(unchanged(observed.apply(&same).unwrap()), "only a change is written");
    let not_native = deployment::Event::NativeObserved { progress: progress("BAKE_TIME", 9) };
    assert!(unchanged(ready(false).apply(&not_native).unwrap()));
}

#[test]
fn an_approved_service_deployment_that_succeeds_ends_succeeded() {
    let (verifying, _) = apply(&started(), verification::Event::Started { hook: hook(ARN), at: t(5) });
    let outcome = VerificationOutcome { passed: true, reason: "3 of 3 probes passed".into() };
    let (awaiting, _) = apply(
        &verifying,
        verification::Event::Finished { outcome, auto: false, bake_seconds: 0, alarms: Vec::new(), at: t(6) },
    );
    let (shifting, _) = apply(&awaiting, approval::Event::Decided { approve: true, by: "ana".into(), at: t(7) });
    let ended = deployment::Event::Ended {
        deployment: ARN.into(),
        end: DeploymentEnd::Succeeded,
        detail: String::new(),
        at: t(8),
    };
    let (done, effects) = apply(&shifting, ended);
    assert_eq!(done.state, State::Succeeded);
    assert_eq!(effects, vec![Effect::ReleaseDeployLock]);
}

#[test]
fn a_service_deployment_ecs_rolled_back_ends_rolled_back_with_ecss_reason() {
    let ended = deployment::Event::Ended {
        deployment: ARN.into(),
        end: DeploymentEnd::Failed,
        detail: "ECS rolled it back: alarm fired".into(),
        at: t(8),
    };
    let (done, _) = apply(&started(), ended);
    let State::RolledBack { reason } = &done.state else { panic!("{}", done.state) };
    assert!(reason.contains("ECS rolled it back: alarm fired"), "{reason}");
}

fn awaiting() -> Release {
    let (verifying, _) = apply(&started(), verification::Event::Started { hook: hook(ARN), at: t(5) });
    let outcome = VerificationOutcome { passed: true, reason: "3 of 3 probes passed".into() };
    let finished =
        verification::Event::Finished { outcome, auto: false, bake_seconds: 0, alarms: Vec::new(), at: t(6) };
    apply(&verifying, finished).0
}

#[test]
fn a_service_deployment_seen_past_the_approval_pause_shifts_and_asks_cloudtrail_who_continued_it() {
    let (shifting, effects) =
        apply(&awaiting(), deployment::Event::NativeObserved { progress: progress("PRODUCTION_TRAFFIC_SHIFT", 9) });
    assert_eq!(shifting.state, State::ShiftingTraffic { deployment: ARN.parse().unwrap() });
    assert_eq!(shifting.approval.as_ref().unwrap().actor, Some(Attribution::Pending { since: t(6) }));
    assert_eq!(effects, vec![Effect::FindApprover { deployment: ARN.into(), approve: true, since: t(6) }]);
}

#[test]
fn a_service_deployment_still_at_its_test_traffic_stages_awaits_approval() {
    let (waiting, effects) =
        apply(&awaiting(), deployment::Event::NativeObserved { progress: progress("POST_TEST_TRAFFIC_SHIFT", 9) });
    assert!(matches!(waiting.state, State::AwaitingApproval { .. }));
    assert!(effects.is_empty());
}

/// A release CodeDeploy deploys, in `Deploying` (its deployment `d-1`).
fn codedeploy_deploying() -> Release {
    let claim = deployment::Event::Claimed {
        method: DeployMethod::CodeDeploy,
        at: t(2),
        lease: Duration::seconds(90),
        gate: None,
    };
    let (claimed, _) = apply(&ready(false), claim);
    let event = deployment::Event::Started { deployment: "d-1".parse().unwrap(), task_definition: None, at: t(3) };
    apply(&claimed, event).0
}

#[test]
fn an_ecs_native_hook_never_verifies_a_release_codedeploy_deploys() {
    let release = codedeploy_deploying();
    let why = release.foreign_hook(&hook(ARN)).expect("foreign");
    assert_eq!(why, "an ECS native hook is not this release's: it deploys by codedeploy");
    let decision = release.apply(&verification::Event::Started { hook: hook(ARN), at: t(5) }).unwrap();
    assert!(unchanged(decision), "still deploying, nothing started");
}

#[test]
fn a_codedeploy_hook_never_verifies_a_native_release() {
    let release = started();
    let codedeploy = Hook::CodeDeploy { deployment_id: "d-1".parse().unwrap(), execution_id: "e-1".parse().unwrap() };
    assert_eq!(
        release.foreign_hook(&codedeploy).as_deref(),
        Some("a CodeDeploy hook is not this release's: it deploys by ecs-native")
    );
    assert!(unchanged(release.apply(&verification::Event::Started { hook: codedeploy, at: t(5) }).unwrap()));
    assert_eq!(release.foreign_hook(&hook(ARN)), None, "its own kind of hook is not foreign");
}

#[test]
fn an_unreadable_hook_is_noted_while_the_native_release_deploys_and_nowhere_else() {
    let noted = |release: &Release| {
        let event = verification::Event::Unreadable { reason: "missing field `executionId`".into(), at: t(6) };
        release.apply(&event).unwrap()
    };
    let (deploying, _) =
        apply(&started(), verification::Event::Unreadable { reason: "missing field `executionId`".into(), at: t(6) });
    assert_eq!(deploying.state, started().state, "the note moves nothing; ECS's rollback will");
    let entry = deploying.timeline.last().unwrap();
    assert_eq!(entry.event, "hook-unreadable");
    assert_eq!(entry.detail, "an ECS native hook was answered FAILED: missing field `executionId`");
    assert!(unchanged(noted(&codedeploy_deploying())), "not a native release");
    assert!(unchanged(noted(&ready(false))), "not deploying");
}

#[test]
fn the_record_names_the_ecs_hook_that_started_verification() {
    let (verifying, _) = apply(&started(), verification::Event::Started { hook: hook(ARN), at: t(5) });
    let entry = verifying.timeline.last().unwrap();
    assert_eq!(
        (entry.event.as_str(), entry.detail.as_str()),
        ("verification-started", "ECS POST_TEST_TRAFFIC_SHIFT hook")
    );
}
