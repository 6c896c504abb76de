use chrono::Duration;

use super::test_support::{apply, ready, t, unchanged};
use super::*;
use crate::names::ReleaseId;

fn claim(at: i64) -> deployment::Event {
    deployment::Event::Claimed { method: DeployMethod::CodeDeploy, at: t(at), lease: Duration::seconds(90), gate: None }
}

fn deploying() -> Release {
    let (release, _) = apply(&ready(false), claim(2));
    apply(
        &release,
        deployment::Event::Started {
            deployment: "d-1".parse().unwrap(),
            task_definition: Some("web:42".into()),
            at: t(3),
        },
    )
    .0
}

fn hook() -> Hook {
    Hook::CodeDeploy { deployment_id: "d-1".parse().unwrap(), execution_id: "exec-1".parse().unwrap() }
}

fn verifying() -> Release {
    apply(&deploying(), verification::Event::Started { hook: hook(), at: t(4) }).0
}

fn finished(passed: bool, auto: bool, bake_seconds: u64) -> verification::Event {
    let reason = if passed { "10 of 10 probes passed" } else { "3 probes failed (limit 2)" };
    verification::Event::Finished {
        outcome: VerificationOutcome { passed, reason: reason.into() },
        auto,
        bake_seconds,
        alarms: Vec::new(),
        at: t(60),
    }
}

fn awaiting() -> Release {
    apply(&verifying(), finished(true, false, 0)).0
}

fn ended(end: DeploymentEnd) -> deployment::Event {
    deployment::Event::Ended { deployment: "d-1".into(), end, detail: String::new(), at: t(100) }
}

#[test]
fn a_ready_release_with_the_lock_is_claimed_once() {
    let (claimed, _) = apply(&ready(false), claim(2));
    assert_eq!(claimed.state, State::StartingDeployment);
    assert!(unchanged(claimed.apply(&claim(3)).unwrap()), "a second claim loses");
}

#[test]
fn a_stale_deployment_claim_is_taken_over() {
    let (claimed, _) = apply(&ready(false), claim(2));
    let (taken, _) = apply(&claimed, claim(200));
    assert_eq!(taken.deployment.unwrap().claims, 2);
}

#[test]
fn a_release_behind_another_is_queued_once() {
    let decision = LockDecision::HeldBy(ReleaseId::new("r0").unwrap());
    let (queued, _) = apply(&ready(false), deployment::Event::Lock { decision: decision.clone(), at: t(2) });
    assert_eq!(queued.state, State::Queued { behind: ReleaseId::new("r0").unwrap() });
    assert!(unchanged(queued.apply(&deployment::Event::Lock { decision, at: t(3) }).unwrap()));
    assert_eq!(queued.pending_work(), vec![Effect::StartDeployment], "a queued release keeps asking");
}

#[test]
fn a_queued_release_is_claimed_when_the_lock_frees() {
    let decision = LockDecision::HeldBy(ReleaseId::new("r0").unwrap());
    let (queued, _) = apply(&ready(false), deployment::Event::Lock { decision, at: t(2) });
    assert_eq!(apply(&queued, claim(5)).0.state, State::StartingDeployment);
}

#[test]
fn an_older_release_is_superseded_by_a_newer_one() {
    let decision = LockDecision::SupersededBy(ReleaseId::new("r9").unwrap());
    let (superseded, effects) = apply(&ready(false), deployment::Event::Lock { decision, at: t(2) });
    assert_eq!(superseded.state, State::Superseded { by: ReleaseId::new("r9").unwrap() });
    assert!(superseded.state.is_terminal());
    assert!(effects.is_empty(), "it never held the lock");
}

#[test]
fn a_deployment_in_flight_is_never_superseded() {
    let decision = LockDecision::SupersededBy(ReleaseId::new("r9").unwrap());
    assert!(unchanged(deploying().apply(&deployment::Event::Lock { decision, at: t(5) }).unwrap()));
}

#[test]
fn a_started_deployment_is_recorded_with_its_revision() {
    let release = deploying();
    assert_eq!(release.state, State::Deploying { deployment: "d-1".into() });
    assert_eq!(release.deployment.unwrap().task_definition.as_deref(), Some("web:42"));
}

#[test]
fn an_impossible_deployment_fails_and_frees_the_lock() {
    let (claimed, _) = apply(&ready(false), claim(2));
    let (failed, effects) = apply(&claimed, deployment::Event::Impossible { reason: "no settings".into(), at: t(3) });
    assert!(matches!(failed.state, State::Failed { stage: Stage::Deployment, .. }));
    assert_eq!(effects, vec![Effect::ReleaseDeployLock]);
}

#[test]
fn the_hook_starts_verification_once() {
    let release = verifying();
    assert_eq!(release.state, State::Verifying { deployment: "d-1".parse().unwrap() });
    assert!(unchanged(release.apply(&verification::Event::Started { hook: hook(), at: t(5) }).unwrap()));
}

#[test]
fn a_hook_that_overtakes_the_start_record_adopts_the_deployment() {
    let (claimed, _) = apply(&ready(false), claim(2));
    let (release, _) = apply(&claimed, verification::Event::Started { hook: hook(), at: t(4) });
    assert_eq!(release.state, State::Verifying { deployment: "d-1".parse().unwrap() });
    assert_eq!(release.deployment.unwrap().id.as_ref().map(|id| id.as_str()), Some("d-1"));
}

#[test]
fn probes_are_recorded_once_each() {
    let probe =
        ProbeResult { at: t(5), url: "http://t/".into(), status: Some(200), latency_ms: 3, ok: true, failure: None };
    let (release, _) = apply(&verifying(), verification::Event::Probed { probes: vec![probe.clone()], at: t(5) });
    assert_eq!(release.verification.as_ref().unwrap().probes.len(), 1);
    assert!(unchanged(release.apply(&verification::Event::Probed { probes: vec![probe], at: t(6) }).unwrap()));
}

#[test]
fn passed_verification_with_manual_approval_awaits_a_person() {
    let release = awaiting();
    assert_eq!(release.state, State::AwaitingApproval { deployment: "d-1".parse().unwrap() });
    assert!(release.verification.unwrap().outcome.unwrap().passed);
}

#[test]
fn passed_verification_with_auto_approval_continues_at_once() {
    let (release, effects) = apply(&verifying(), finished(true, true, 0));
    assert_eq!(release.state, State::ShiftingTraffic { deployment: "d-1".parse().unwrap() });
    assert_eq!(effects, vec![Effect::ContinueDeployment { deployment: "d-1".parse().unwrap() }]);
    assert_eq!(release.approval.unwrap().by, "policy (auto)");
}

#[test]
fn auto_approval_with_a_bake_time_waits_until_then() {
    let (release, effects) = apply(&verifying(), finished(true, true, 300));
    assert_eq!(release.state, State::AwaitingApproval { deployment: "d-1".parse().unwrap() });
    assert!(effects.is_empty());
    assert_eq!(release.deployment.unwrap().auto_approve_at, Some(t(360)));
}

#[test]
fn failed_verification_rolls_back_and_ends_failed_at_verification() {
    let (rolling, _) = apply(&verifying(), finished(false, false, 0));
    assert!(matches!(rolling.state, State::RollingBack { .. }));
    assert!(!rolling.state.is_terminal(), "the lock stays until the rollback is over");
    let (release, effects) = apply(&rolling, ended(DeploymentEnd::Stopped));
    assert_eq!(release.state, State::Failed { stage: Stage::Verification, reason: "3 probes failed (limit 2)".into() });
    assert_eq!(effects, vec![Effect::ReleaseDeployLock]);
}

#[test]
fn approval_shifts_traffic_and_names_who_approved() {
    let (release, _) = apply(&awaiting(), approval::Event::Decided { approve: true, by: "alice".into(), at: t(70) });
    assert_eq!(release.state, State::ShiftingTraffic { deployment: "d-1".parse().unwrap() });
    assert_eq!(release.approval.unwrap().by, "alice");
}

#[test]
fn rejection_rolls_back_and_ends_rolled_back() {
    let (rolling, _) = apply(&awaiting(), approval::Event::Decided { approve: false, by: "bob".into(), at: t(70) });
    let (release, _) = apply(&rolling, ended(DeploymentEnd::Stopped));
    assert_eq!(release.state, State::RolledBack { reason: "rejected by bob".into() });
}

#[test]
fn a_decision_before_verification_passed_changes_nothing() {
    assert!(unchanged(
        verifying().apply(&approval::Event::Decided { approve: true, by: "eve".into(), at: t(5) }).unwrap()
    ));
}

#[test]
fn a_deployment_that_succeeds_while_awaiting_approval_asks_cloudtrail_who_approved_it() {
    let (release, effects) = apply(&awaiting(), ended(DeploymentEnd::Succeeded));
    assert_eq!(release.state, State::Succeeded);
    assert!(release.approval.unwrap().by.contains("pending attribution"));
    assert_eq!(effects[0], Effect::ReleaseDeployLock);
    assert!(matches!(effects[1], Effect::FindApprover { approve: true, .. }));
}

#[test]
fn an_approved_deployment_that_succeeds_ends_succeeded() {
    let (shifting, _) = apply(&awaiting(), approval::Event::Decided { approve: true, by: "alice".into(), at: t(70) });
    assert_eq!(apply(&shifting, ended(DeploymentEnd::Succeeded)).0.state, State::Succeeded);
}

#[test]
fn a_deployment_that_fails_after_approval_ends_rolled_back() {
    let (shifting, _) = apply(&awaiting(), approval::Event::Decided { approve: true, by: "alice".into(), at: t(70) });
    assert!(matches!(apply(&shifting, ended(DeploymentEnd::Failed)).0.state, State::RolledBack { .. }));
}

#[test]
fn the_end_of_another_deployment_changes_nothing() {
    let event = deployment::Event::Ended {
        deployment: "d-other".into(),
        end: DeploymentEnd::Failed,
        detail: String::new(),
        at: t(9),
    };
    assert!(unchanged(awaiting().apply(&event).unwrap()));
}

// The codepipeline method.

fn pipeline_claimed() -> Release {
    let claim = deployment::Event::Claimed {
        method: DeployMethod::CodePipeline,
        at: t(2),
        lease: Duration::seconds(90),
        gate: None,
    };
    apply(&ready(false), claim).0
}

fn bundle_written(version: &str) -> deployment::Event {
    deployment::Event::BundleWritten {
        pipeline: "web-deploy".into(),
        bundle: "s3://source/web/bundle.zip".into(),
        version: version.into(),
        at: t(3),
    }
}

fn following_pipeline() -> Release {
    let (release, _) = apply(&pipeline_claimed(), bundle_written("v1"));
    apply(&release, deployment::Event::PipelineStarted { execution: "e-1".parse().unwrap(), at: t(4) }).0
}

fn pipeline_ended(end: DeploymentEnd) -> deployment::Event {
    deployment::Event::Ended { deployment: "e-1".into(), end, detail: "FAILED".into(), at: t(50) }
}

#[test]
fn a_written_bundle_is_recorded_with_its_version_before_the_pipeline_starts() {
    let (release, effects) = apply(&pipeline_claimed(), bundle_written("v1"));
    let pipeline = release.deployment.as_ref().unwrap().pipeline.as_ref().unwrap();
    assert_eq!((pipeline.version.as_str(), pipeline.execution.as_ref().map(|e| e.as_str())), ("v1", None));
    assert_eq!(release.state, State::StartingDeployment);
    assert!(effects.is_empty());
}

#[test]
fn a_second_bundle_never_replaces_the_recorded_one() {
    let (release, _) = apply(&pipeline_claimed(), bundle_written("v1"));
    assert!(unchanged(release.apply(&bundle_written("v2")).unwrap()));
}

#[test]
fn a_bundle_written_after_the_start_changes_nothing() {
    assert!(unchanged(following_pipeline().apply(&bundle_written("v1")).unwrap()));
}

#[test]
fn a_started_pipeline_is_followed_by_its_execution() {
    let release = following_pipeline();
    assert_eq!(release.state, State::Deploying { deployment: "e-1".into() });
    assert_eq!(release.following_pipeline(), Some(("web-deploy", &"e-1".parse().unwrap())));
    assert!(release.timeline.last().unwrap().detail.contains("pinned to s3://source/web/bundle.zip version v1"));
}

#[test]
fn a_pipeline_start_without_a_recorded_bundle_is_inconsistent_and_changes_nothing() {
    let event = deployment::Event::PipelineStarted { execution: "e-1".parse().unwrap(), at: t(4) };
    assert!(unchanged(pipeline_claimed().apply(&event).unwrap()));
}

#[test]
fn a_taken_over_pipeline_claim_keeps_its_bundle() {
    let (release, _) = apply(&pipeline_claimed(), bundle_written("v1"));
    let takeover = deployment::Event::Claimed {
        method: DeployMethod::CodePipeline,
        at: t(200),
        lease: Duration::seconds(90),
        gate: None,
    };
    let (release, _) = apply(&release, takeover);
    let run = release.deployment.as_ref().unwrap();
    assert_eq!((run.claims, run.pipeline.as_ref().unwrap().version.as_str()), (2, "v1"));
}

#[test]
fn the_hook_of_the_pipelines_deployment_adopts_that_deployment() {
    let (release, _) = apply(&following_pipeline(), verification::Event::Started { hook: hook(), at: t(5) });
    assert_eq!(release.state, State::Verifying { deployment: "d-1".parse().unwrap() });
    assert_eq!(release.deployment.as_ref().unwrap().id.as_ref().map(|id| id.as_str()), Some("d-1"));
    assert_eq!(release.following_pipeline(), None);
    assert!(release.timeline.iter().any(|e| e.event == "deployment-adopted" && e.detail.contains("e-1")));
}

#[test]
fn after_adoption_the_deployments_end_decides_and_the_executions_does_not() {
    let (release, _) = apply(&following_pipeline(), verification::Event::Started { hook: hook(), at: t(5) });
    let (release, _) = apply(&release, finished(true, false, 0));
    assert!(unchanged(release.apply(&pipeline_ended(DeploymentEnd::Failed)).unwrap()));
    let (release, effects) = apply(&release, ended(DeploymentEnd::Succeeded));
    assert_eq!(release.state, State::Succeeded);
    assert_eq!(effects[0], Effect::ReleaseDeployLock);
    assert!(matches!(effects[1], Effect::FindApprover { approve: true, .. }), "no call recorded: CloudTrail is asked");
}

#[test]
fn a_pipeline_that_fails_before_any_deployment_fails_the_release_at_deployment() {
    let (release, effects) = apply(&following_pipeline(), pipeline_ended(DeploymentEnd::Failed));
    assert!(
        matches!(&release.state, State::Failed { stage: Stage::Deployment, reason } if reason.contains("pipeline execution e-1 ended Failed")),
        "{}",
        release.state
    );
    assert_eq!(effects, vec![Effect::ReleaseDeployLock]);
}

#[test]
fn a_pipeline_that_succeeds_without_a_hook_ends_succeeded_and_says_nothing_was_verified() {
    let (release, _) = apply(&following_pipeline(), pipeline_ended(DeploymentEnd::Succeeded));
    assert_eq!(release.state, State::Succeeded);
    let last = release.timeline.last().unwrap();
    assert!(last.detail.contains("deployed without Convoy's verification or approval"), "{}", last.detail);
    assert_eq!(release.approval, None);
}

#[test]
fn a_hook_of_another_deployment_does_not_replace_the_one_being_verified() {
    let (release, _) = apply(&following_pipeline(), verification::Event::Started { hook: hook(), at: t(5) });
    let other = Hook::CodeDeploy { deployment_id: "d-2".parse().unwrap(), execution_id: "exec-2".parse().unwrap() };
    assert!(unchanged(release.apply(&verification::Event::Started { hook: other, at: t(6) }).unwrap()));
}

#[test]
fn a_pipeline_release_still_starting_does_not_take_a_hooks_deployment() {
    let (release, _) = apply(&pipeline_claimed(), bundle_written("v1"));
    assert!(unchanged(release.apply(&verification::Event::Started { hook: hook(), at: t(5) }).unwrap()));
}

#[test]
fn the_running_deployment_of_an_abandoned_execution_is_adopted_and_decides_the_end() {
    let adopted = deployment::Event::Adopted {
        deployment: "d-1".parse().unwrap(),
        reason: "the execution ended Stopped".into(),
        at: t(6),
    };
    let (release, effects) = apply(&following_pipeline(), adopted);
    assert_eq!(release.state, State::Deploying { deployment: "d-1".into() });
    assert_eq!(release.deployment.as_ref().unwrap().id.as_ref().map(|id| id.as_str()), Some("d-1"));
    assert!(effects.is_empty(), "the service stays locked");
    let (release, _) = apply(&release, ended(DeploymentEnd::Failed));
    assert!(matches!(release.state, State::RolledBack { .. }), "{}", release.state);
}

#[test]
fn a_deployment_is_adopted_only_while_the_release_follows_its_execution() {
    let adopted = deployment::Event::Adopted { deployment: "d-9".parse().unwrap(), reason: "r".into(), at: t(6) };
    assert!(unchanged(deploying().apply(&adopted).unwrap()));
}

#[test]
fn a_deployment_found_impossible_while_queued_fails_and_once_deploying_changes_nothing() {
    let decision = LockDecision::HeldBy(ReleaseId::new("r0").unwrap());
    let (queued, _) = apply(&ready(false), deployment::Event::Lock { decision, at: t(2) });
    let impossible = deployment::Event::Impossible { reason: "no settings".into(), at: t(3) };
    let (failed, _) = apply(&queued, impossible.clone());
    assert_eq!(failed.state, State::Failed { stage: Stage::Deployment, reason: "no settings".into() });
    assert!(unchanged(deploying().apply(&impossible).unwrap()), "a started deployment is not failed by it");
}

#[test]
fn ecs_rollback_and_stop_statuses_read_as_rolling_back_and_the_others_do_not() {
    // The statuses of ECS's `ServiceDeployment` (developer guide, "View service history using
    // Amazon ECS service deployments").
    let seen = |status: &str| NativeProgress {
        strategy: "all-at-once".into(),
        bake_minutes: None,
        production_percent: None,
        stage: None,
        status: status.into(),
        seen_at: t(0),
    };
    for status in ["ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"] {
        assert!(seen(status).rolls_back(), "{status}");
    }
    for status in ["STOP_REQUESTED", "STOPPED"] {
        assert!(seen(status).rolls_back(), "{status}");
    }
    for status in ["PENDING", "IN_PROGRESS", "SUCCESSFUL"] {
        assert!(!seen(status).rolls_back(), "{status}");
    }
}

#[test]
fn the_record_names_the_codedeploy_hook_that_started_verification() {
    let started = verifying().timeline.last().unwrap().clone();
    assert_eq!(
        (started.event.as_str(), started.detail.as_str()),
        ("verification-started", "CodeDeploy AfterAllowTestTraffic hook")
    );
}

#[test]
fn another_execution_of_the_hook_for_the_deployment_under_verification_starts_it_anew() {
    let probe =
        ProbeResult { at: t(5), url: "http://t/".into(), status: Some(200), latency_ms: 3, ok: true, failure: None };
    let (probed, _) = apply(&verifying(), verification::Event::Probed { probes: vec![probe], at: t(5) });
    let again = Hook::CodeDeploy { deployment_id: "d-1".parse().unwrap(), execution_id: "exec-2".parse().unwrap() };
    let (restarted, _) = apply(&probed, verification::Event::Started { hook: again.clone(), at: t(6) });
    assert_eq!(restarted.state, State::Verifying { deployment: "d-1".parse().unwrap() });
    let verification = restarted.verification.unwrap();
    assert_eq!((verification.hook, verification.started_at, verification.probes.len()), (again, t(6), 0));
}

#[test]
fn without_a_pipeline_a_hook_naming_another_deployment_does_not_change_the_one_the_release_follows() {
    let other = Hook::CodeDeploy { deployment_id: "d-2".parse().unwrap(), execution_id: "exec-2".parse().unwrap() };
    let (release, _) = apply(&deploying(), verification::Event::Started { hook: other, at: t(4) });
    assert_eq!(release.state, State::Verifying { deployment: "d-1".parse().unwrap() });
    assert_eq!(release.deployment.unwrap().id, Some("d-1".parse().unwrap()));
}

fn analysed(probes: Vec<ProbeResult>) -> verification::Event {
    verification::Event::Analysed {
        hook: hook(),
        started: t(4),
        probes,
        metrics: Vec::new(),
        outcome: None,
        plan: ApprovalPlan::default(),
        at: t(5),
    }
}

#[test]
fn an_analysis_before_any_probe_records_the_start_of_verification() {
    let (release, effects) = apply(&deploying(), analysed(Vec::new()));
    assert_eq!(release.state, State::Verifying { deployment: "d-1".parse().unwrap() });
    assert_eq!(release.verification.unwrap().started_at, t(4));
    assert!(effects.is_empty());
}

#[test]
fn an_analysis_delivered_twice_changes_nothing_the_second_time() {
    let probe =
        ProbeResult { at: t(5), url: "http://t/".into(), status: Some(200), latency_ms: 3, ok: true, failure: None };
    let event = analysed(vec![probe]);
    let (release, _) = apply(&deploying(), event.clone());
    assert!(unchanged(release.apply(&event).unwrap()));
}
