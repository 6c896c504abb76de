use chrono::Duration;

use super::test_support::{apply, ready, t, unchanged};
use super::*;
use crate::gates::{MetricCheck, MetricVerdict};

fn verifying() -> Release {
    let claim = deployment::Event::Claimed {
        method: DeployMethod::CodeDeploy,
        at: t(2),
        lease: Duration::seconds(90),
        gate: None,
    };
    let (release, _) = apply(&ready(false), claim);
    let started = deployment::Event::Started { deployment: "d-1".parse().unwrap(), task_definition: None, at: t(3) };
    let (release, _) = apply(&release, started);
    let hook = Hook::CodeDeploy { deployment_id: "d-1".parse().unwrap(), execution_id: "exec-1".parse().unwrap() };
    apply(&release, verification::Event::Started { hook, at: t(4) }).0
}

fn finished(alarms: &[&str]) -> verification::Event {
    verification::Event::Finished {
        outcome: VerificationOutcome { passed: true, reason: "10 of 10 probes passed".into() },
        auto: true,
        bake_seconds: 600,
        alarms: alarms.iter().map(|a| a.to_string()).collect(),
        at: t(60),
    }
}

fn raised(alarm: &str, at: i64) -> approval::Event {
    approval::Event::AlarmRaised {
        alarm: alarm.into(),
        reason: "Threshold Crossed: 1 datapoint [7.0] was greater than the threshold (0.0)".into(),
        since: Some(t(at - 1)),
        via: "event".into(),
        at: t(at),
    }
}

fn five_xx_check() -> MetricCheck {
    serde_json::from_str(
        r#"{"name": "green-5xx", "pass_if": "<= 0", "metric": {"namespace": "AWS/ApplicationELB",
            "metric_name": "HTTPCode_Target_5XX_Count", "stat": "Sum"}}"#,
    )
    .unwrap()
}

#[test]
fn metric_results_are_recorded_beside_the_probes() {
    let result = crate::gates::judge(&five_xx_check(), &[4.0], 60, t(58));
    let (checked, effects) =
        apply(&verifying(), verification::Event::MetricsChecked { results: vec![result.clone()], at: t(58) });
    assert!(effects.is_empty());
    let metrics = &checked.verification.as_ref().unwrap().metrics;
    assert_eq!(metrics, &vec![result]);
    assert_eq!(metrics[0].verdict, MetricVerdict::Fail);
    assert_eq!(checked.timeline.last().unwrap().detail, "0 of 1 metric checks passed");
}

#[test]
fn an_alarm_while_awaiting_approval_rolls_back_once_with_its_name_reason_and_time() {
    let (baking, _) = apply(&verifying(), finished(&["web-5xx"]));
    assert!(matches!(baking.state, State::AwaitingApproval { .. }));
    let (rolling, effects) = apply(&baking, raised("web-5xx", 100));
    assert_eq!(effects, vec![Effect::RollBack { deployment: "d-1".parse().unwrap() }]);
    let State::RollingBack { reason, .. } = &rolling.state else { panic!("{}", rolling.state) };
    assert!(
        reason.starts_with("alarm web-5xx went to ALARM at 2023-11-14T22:14:59Z before the traffic shift"),
        "{reason}"
    );
    assert!(reason.contains("Threshold Crossed"), "{reason}");
    assert!(unchanged(rolling.apply(&raised("web-5xx", 101)).unwrap()), "a duplicate alarm rolls back nothing more");
    let ended = deployment::Event::Ended {
        deployment: "d-1".into(),
        end: DeploymentEnd::Stopped,
        detail: String::new(),
        at: t(130),
    };
    let (done, _) = apply(&rolling, ended);
    assert_eq!(done.state, State::RolledBack { reason: reason.clone() });
    assert_eq!(done.alarms.unwrap().fired.len(), 1);
}

#[test]
fn an_alarm_after_the_shift_still_rolls_back_before_the_blue_tasks_are_gone() {
    let (baking, _) = apply(&verifying(), finished(&["web-5xx"]));
    let (shifting, _) = apply(&baking, approval::Event::Decided { approve: true, by: "ana".into(), at: t(70) });
    let (rolling, effects) = apply(&shifting, raised("web-5xx", 80));
    assert_eq!(effects, vec![Effect::RollBack { deployment: "d-1".parse().unwrap() }]);
    let State::RollingBack { reason, .. } = &rolling.state else { panic!("{}", rolling.state) };
    assert!(reason.contains("after the traffic shift"), "{reason}");
}

#[test]
fn an_alarm_the_release_does_not_watch_or_one_after_its_end_changes_nothing() {
    let (baking, _) = apply(&verifying(), finished(&["web-5xx"]));
    assert!(unchanged(baking.apply(&raised("other-alarm", 100)).unwrap()));
    assert!(unchanged(verifying().apply(&raised("web-5xx", 50)).unwrap()), "not gated while verifying");
    let ended = deployment::Event::Ended {
        deployment: "d-1".into(),
        end: DeploymentEnd::Succeeded,
        detail: String::new(),
        at: t(90),
    };
    let (succeeded, _) = apply(&baking, ended);
    assert!(unchanged(succeeded.apply(&raised("web-5xx", 100)).unwrap()));
}

#[test]
fn metric_checks_already_recorded_or_none_at_all_change_nothing() {
    let result = crate::gates::judge(&five_xx_check(), &[0.0], 60, t(58));
    let checked = |results: Vec<crate::gates::MetricResult>| verification::Event::MetricsChecked { results, at: t(58) };
    let (recorded, _) = apply(&verifying(), checked(vec![result.clone()]));
    assert!(unchanged(recorded.apply(&checked(vec![result])).unwrap()), "the same checks again");
    assert!(unchanged(recorded.apply(&checked(Vec::new())).unwrap()), "no checks do not erase the recorded ones");
}
