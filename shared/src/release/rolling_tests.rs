//! The `ecs-rolling` method's transitions: the previous revision recorded with the release's
//! before the update, how ECS's ends end the release (no verification in between), what the
//! service runs, no hook of any kind, and putting the service back at most once.

use chrono::Duration;

use super::test_support::{apply, ready, t, unchanged};
use super::*;

const ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service-deployment/convoy/web/abc";
const BACK: &str = "arn:aws:ecs:us-east-1:123456789012:service-deployment/convoy/web/back";

fn lease() -> Duration {
    Duration::seconds(90)
}

fn rolling_started() -> Release {
    let claim = deployment::Event::Claimed { method: DeployMethod::EcsRolling, at: t(2), lease: lease(), gate: None };
    let (claimed, _) = apply(&ready(false), claim);
    let registered = deployment::Event::RevisionRegistered {
        task_definition: "web:43".into(),
        previous: Some("web:42".into()),
        at: t(3),
    };
    let (registered, _) = apply(&claimed, registered);
    let event = deployment::Event::Started { deployment: ARN.parse().unwrap(), task_definition: None, at: t(4) };
    apply(&registered, event).0
}

fn ended(end: DeploymentEnd, detail: &str, at: i64) -> deployment::Event {
    deployment::Event::Ended { deployment: ARN.into(), end, detail: detail.into(), at: t(at) }
}

/// What ECS said last of the service deployment: `status`.
fn observed(release: &Release, status: &str) -> Release {
    let progress = NativeProgress {
        strategy: "rolling".into(),
        bake_minutes: None,
        production_percent: None,
        stage: None,
        status: status.into(),
        seen_at: t(7),
    };
    apply(release, deployment::Event::NativeObserved { progress }).0
}

fn succeeded() -> Release {
    apply(&observed(&rolling_started(), "SUCCESSFUL"), ended(DeploymentEnd::Succeeded, "", 8)).0
}

#[test]
fn a_rolling_release_records_the_revision_its_service_ran_before_the_update() {
    let release = rolling_started();
    let run = release.deployment.as_ref().unwrap();
    assert_eq!(run.task_definition.as_deref(), Some("web:43"));
    assert_eq!(run.previous_task_definition.as_deref(), Some("web:42"));
    let entry = release.timeline.iter().find(|e| e.event == "revision-registered").unwrap();
    assert_eq!(entry.detail, "web:43 (the service runs web:42)");
}

#[test]
fn a_rolling_update_ecs_completed_succeeds_frees_the_lock_and_the_service_runs_the_release() {
    let (done, effects) = apply(&observed(&rolling_started(), "SUCCESSFUL"), ended(DeploymentEnd::Succeeded, "", 8));
    assert_eq!(done.state, State::Succeeded);
    assert_eq!(effects, vec![Effect::ReleaseDeployLock]);
    assert_eq!(done.deployment.unwrap().service_runs.as_deref(), Some("web:43"));
}

#[test]
fn a_rolling_update_the_circuit_breaker_rolled_back_fails_at_deployment_with_ecss_reason() {
    let detail = "ECS rolled it back: circuit breaker; the deployment circuit breaker triggered (3 failed tasks, \
                  threshold 3)";
    let rolled_back = observed(&rolling_started(), "ROLLBACK_SUCCESSFUL");
    let (done, effects) = apply(&rolled_back, ended(DeploymentEnd::Failed, detail, 8));
    let State::Failed { stage: Stage::Deployment, reason } = &done.state else { panic!("{}", done.state) };
    assert!(reason.contains(detail), "{reason}");
    assert_eq!(effects, vec![Effect::ReleaseDeployLock]);
    assert_eq!(done.deployment.as_ref().unwrap().service_runs.as_deref(), Some("web:42"), "ECS put it back");
    assert!(unchanged(done.apply(&ended(DeploymentEnd::Failed, detail, 9)).unwrap()), "a replayed end changes nothing");
}

#[test]
fn a_rolling_update_ecs_stopped_part_way_fails_and_the_record_does_not_claim_what_the_service_runs() {
    let stopped = observed(&rolling_started(), "STOPPED");
    let (done, _) = apply(&stopped, ended(DeploymentEnd::Stopped, "ECS stopped it: circuit breaker", 8));
    assert!(matches!(done.state, State::Failed { stage: Stage::Deployment, .. }), "{}", done.state);
    assert_eq!(done.deployment.unwrap().service_runs, None);
}

#[test]
fn no_hook_of_any_kind_verifies_a_rolling_release() {
    let release = rolling_started();
    let native = Hook::EcsNative { execution_id: "exec-1".parse().unwrap(), service_deployment: ARN.parse().unwrap() };
    let codedeploy =
        Hook::CodeDeploy { deployment_id: "d-ABCDEFGHI".parse().unwrap(), execution_id: "exec-1".parse().unwrap() };
    for hook in [native, codedeploy] {
        let why = release.foreign_hook(&hook).expect("foreign");
        assert!(why.contains("it deploys by ecs-rolling"), "{why}");
    }
}

#[test]
fn putting_back_is_claimed_once_and_recorded_once_with_what_the_service_runs() {
    let claim = deployment::Event::PutBackClaimed { at: t(20), lease: lease() };
    let (claimed, effects) = apply(&succeeded(), claim.clone());
    assert!(effects.is_empty());
    let put_back = claimed.deployment.as_ref().unwrap().put_back.clone().unwrap();
    assert_eq!((put_back.task_definition.as_str(), put_back.claims), ("web:42", 1));
    assert!(unchanged(claimed.apply(&claim).unwrap()), "a second claim within the lease changes nothing");

    let done = deployment::Event::PutBack { service_deployment: Some(BACK.parse().unwrap()), at: t(21) };
    let (back, _) = apply(&claimed, done.clone());
    let run = back.deployment.as_ref().unwrap();
    assert_eq!(run.service_runs.as_deref(), Some("web:42"));
    assert_eq!(run.put_back.as_ref().unwrap().done_at, Some(t(21)));
    let entry = back.timeline.iter().find(|e| e.event == "put-back").unwrap();
    assert!(entry.detail.contains("runs web:42 again") && entry.detail.contains(BACK), "{}", entry.detail);
    assert!(unchanged(back.apply(&done).unwrap()), "recorded once");
    let later = deployment::Event::PutBackClaimed { at: t(500), lease: lease() };
    assert!(unchanged(back.apply(&later).unwrap()), "put back once, even long after");
}

#[test]
fn a_put_back_claim_left_by_a_crashed_handler_is_taken_over_after_its_lease() {
    let (claimed, _) = apply(&succeeded(), deployment::Event::PutBackClaimed { at: t(20), lease: lease() });
    let early = deployment::Event::PutBackClaimed { at: t(100), lease: lease() };
    assert!(unchanged(claimed.apply(&early).unwrap()));
    let (taken, _) = apply(&claimed, deployment::Event::PutBackClaimed { at: t(110), lease: lease() });
    assert_eq!(taken.deployment.unwrap().put_back.unwrap().claims, 2);
}

#[test]
fn only_an_ended_rolling_release_puts_its_service_back() {
    let claim = deployment::Event::PutBackClaimed { at: t(20), lease: lease() };
    assert!(unchanged(rolling_started().apply(&claim).unwrap()), "still deploying");
    assert!(unchanged(ready(false).apply(&claim).unwrap()), "never started");
    let done = deployment::Event::PutBack { service_deployment: None, at: t(21) };
    assert!(unchanged(succeeded().apply(&done).unwrap()), "no put back was claimed");
}
