//! The opening of a hook (`Release::hook_opening`): what is answered without probing, and the plan
//! a hook probes with under the operator's settings.

use chrono::Duration;

use super::test_support::{apply, changed, ready, t};
use super::*;
use crate::settings::ServiceSettings;

fn settings(approval: &str, extra: &str) -> ServiceSettings {
    let json = format!(
        r#"{{"web": {{"codedeploy": {{"application": "a", "deployment_group": "g", "container": "c", "port": 80,
            "verify_function": "v"}}, "test_listener": "http://alb:8080", "approval": "{approval}",
            "probe": {{"path": "/health", "count": 3, "interval_ms": 1000, "timeout_ms": 1000}}{extra}}}}}"#
    );
    crate::settings::parse(&json).unwrap().remove(&"web".parse().unwrap()).unwrap()
}

fn hook(execution: &str) -> Hook {
    Hook::CodeDeploy { deployment_id: "d-1".parse().unwrap(), execution_id: execution.parse().unwrap() }
}

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

fn refused(opening: Opening) -> String {
    match opening {
        Opening::Settled(Settled::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_deploying_release_is_probed_with_the_operators_plan() {
    let extra = r#", "bake_seconds": 30, "alarms": ["web-5xx"]"#;
    let Opening::Probe { plan, probes, started_at } =
        deploying().hook_opening(&hook("e-1"), Some(&settings("auto", extra)), t(9))
    else {
        panic!("expected a probe")
    };
    assert_eq!((plan.spec.url.as_str(), plan.spec.count), ("http://alb:8080/health", 3));
    let approval = ApprovalPlan { auto: true, bake_seconds: 30, alarms: vec!["web-5xx".into()], fast_path: None };
    assert_eq!(plan.approval, approval);
    assert!(plan.has_gates(), "an alarm gates the shift");
    assert!(probes.is_empty());
    assert_eq!(started_at, t(9), "a new verification starts now");
    let Opening::Probe { plan, .. } = deploying().hook_opening(&hook("e-1"), Some(&settings("manual", "")), t(9))
    else {
        panic!("expected a probe")
    };
    assert!(!plan.approval.auto, "a person approves");
    assert!(!plan.has_gates(), "no metric check, no alarm");
}

#[test]
fn a_verification_under_way_goes_on_from_what_it_recorded() {
    let probe = ProbeResult {
        at: t(5),
        url: "http://alb:8080/health".into(),
        status: Some(200),
        latency_ms: 3,
        ok: true,
        failure: None,
    };
    let (verifying, _) = apply(&deploying(), verification::Event::Started { hook: hook("e-1"), at: t(4) });
    let (probed, _) = apply(&verifying, verification::Event::Probed { probes: vec![probe.clone()], at: t(5) });
    let Opening::Probe { probes, started_at, .. } =
        probed.hook_opening(&hook("e-1"), Some(&settings("manual", "")), t(9))
    else {
        panic!("expected a probe")
    };
    assert_eq!((probes, started_at), (vec![probe], t(4)));
}

#[test]
fn a_hook_answered_before_is_answered_the_same_way_and_a_rollback_rerun_let_through() {
    let (verifying, _) = apply(&deploying(), verification::Event::Started { hook: hook("e-1"), at: t(4) });
    let outcome = VerificationOutcome { passed: false, reason: "2 of 3 probes failed".into() };
    let finished = verification::Event::Finished {
        outcome: outcome.clone(),
        auto: false,
        bake_seconds: 0,
        alarms: vec![],
        at: t(6),
    };
    let (failed, _) = apply(&verifying, finished);
    let settings = settings("manual", "");
    assert_eq!(
        failed.hook_opening(&hook("e-1"), Some(&settings), t(9)),
        Opening::Settled(Settled::AnsweredBefore { outcome, probes: 0 })
    );
    assert!(failed.rollback_rerun(), "the failed verification rolls the deployment back");
    assert_eq!(failed.hook_opening(&hook("e-2"), Some(&settings), t(9)), Opening::Settled(Settled::RollbackRerun));
}

#[test]
fn a_hook_is_refused_without_settings_under_a_manifest_asking_for_less_and_while_nothing_deploys() {
    let settings = settings("manual", "");
    let why = refused(deploying().hook_opening(&hook("e-1"), None, t(9)));
    assert_eq!(why, "no deployment settings for service web");
    let mut asks_auto = deploying();
    asks_auto.manifest.as_mut().unwrap().approval = Some(crate::manifest::Approval::Auto);
    let why = refused(asks_auto.hook_opening(&hook("e-1"), Some(&settings), t(9)));
    assert!(why.starts_with("the manifest asks for approval auto"), "{why}");
    let why = refused(ready(false).hook_opening(&hook("e-1"), Some(&settings), t(9)));
    assert!(why.starts_with("no verification is due: the release is"), "{why}");
    assert!(!ready(false).rollback_rerun());
    let arn = "arn:aws:ecs:us-east-1:123456789012:service-deployment/c/web/x1";
    let native = Hook::EcsNative { execution_id: "e-1".parse().unwrap(), service_deployment: arn.parse().unwrap() };
    let why = refused(deploying().hook_opening(&native, Some(&settings), t(9)));
    assert_eq!(why, "an ECS native hook is not this release's: it deploys by codedeploy");
}

fn a_rollback_deploying(of_went_live: chrono::DateTime<chrono::Utc>) -> Release {
    let mut release = deploying();
    release.rollback = Some(crate::rollback::Rollback {
        of: "v2".parse().unwrap(),
        to: "v1".parse().unwrap(),
        migrate_down: false,
        down: None,
        schema: "database schema stays where v2 left it (no migration runs)".into(),
        of_went_live: Some(of_went_live),
    });
    release
}

fn approval_of(release: &Release, settings: &ServiceSettings, now: chrono::DateTime<chrono::Utc>) -> ApprovalPlan {
    match release.hook_opening(&hook("e-1"), Some(settings), now) {
        Opening::Probe { plan, .. } => plan.approval,
        other => panic!("expected a probe, got {other:?}"),
    }
}

#[test]
fn a_rollback_inside_the_operators_window_is_approved_by_policy_and_outside_it_by_a_person() {
    let window = settings("manual", r#", "rollback": {"approval_window_hours": 2}"#);
    let rollback = a_rollback_deploying(t(0));
    let inside = approval_of(&rollback, &window, t(2 * 3600 - 1));
    assert!(inside.auto, "{inside:?}");
    assert!(inside.fast_path.unwrap().contains("2 h rollback window"));
    let outside = approval_of(&rollback, &window, t(2 * 3600));
    assert_eq!((outside.auto, outside.fast_path), (false, None));
    let no_window = approval_of(&rollback, &settings("manual", ""), t(60));
    assert_eq!((no_window.auto, no_window.fast_path), (false, None), "the window is the operator's only");
    let not_a_rollback = approval_of(&deploying(), &window, t(60));
    assert!(!not_a_rollback.auto, "only a confirmed rollback (its record's rollback) takes the window");
}

#[test]
fn a_rollback_approved_in_the_window_says_so_in_its_approval_and_timeline() {
    let window = settings("manual", r#", "rollback": {"approval_window_hours": 2}"#);
    let rollback = a_rollback_deploying(t(0));
    let plan = approval_of(&rollback, &window, t(60));
    let passed = VerificationOutcome { passed: true, reason: "3/3 probes passed".into() };
    let (done, effects) = changed(rollback.on_analysed(&hook("e-1"), t(60), &[], &[], Some(&passed), &plan, t(61)));
    assert!(matches!(done.state, State::ShiftingTraffic { .. }), "{}", done.state);
    assert_eq!(done.approval.as_ref().map(|a| a.by.as_str()), Some("policy (rollback window)"));
    let approved = done.timeline.iter().find(|e| e.event == "approved").unwrap();
    assert!(approved.detail.contains("within the operator's 2 h rollback window"), "{}", approved.detail);
    assert!(effects.iter().any(|e| matches!(e, Effect::ContinueDeployment { .. })));
}
