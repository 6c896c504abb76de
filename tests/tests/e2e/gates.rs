//! Gates beyond the probes, on moto's CloudWatch (metric data from `PutMetricData`, alarm states
//! from `SetAlarmState`), read by the real CloudWatch adapter through the stand-in's CBOR bridge;
//! CodeDeploy's `StopDeployment` and `ContinueDeployment` through the stand-in, whose recorded
//! requests are asserted.

use convoy::gates::MetricVerdict;
use convoy::release::{Stage, State};
use convoy_tests::fixtures;
use convoy_tests::http::{self, Behaviour, Server};
use convoy_tests::moto::cloudwatch;
use convoy_tests::standin::Phase;
use serde_json::{Value, json};

use crate::deploy::{containers, deploying, invoke, probe};
use crate::scenario::*;

/// A target group name no other test's metrics use (moto is shared by the test process).
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", fastrand::u64(..))
}

fn five_xx_check(target_group: &str, inconclusive_passes: bool) -> Value {
    json!({"name": "green-5xx", "pass_if": "<= 0", "inconclusive_passes": inconclusive_passes,
           "metric": {"namespace": "AWS/ApplicationELB", "metric_name": "HTTPCode_Target_5XX_Count",
                      "dimensions": {"TargetGroup": target_group}, "stat": "Sum"}})
}

async fn gated(release: &str, gates: Value) -> (MotoBackend, Server) {
    let green = http::serve(Behaviour::version(release)).await;
    let backend = MotoBackend::with_gates(&containers(), &green.url, "manual", probe(), gates).await;
    (backend, green)
}

/// Deploys and verifies `release`; returns its deployment id.
async fn verified(backend: &MotoBackend, release: &str) -> String {
    let deployment = deploying(backend, release, json!({})).await;
    backend.codedeploy_hook(&deployment, "exec-1").await;
    deployment
}

#[tokio::test]
async fn a_release_whose_5xx_metric_breaks_its_check_fails_verification_with_the_value_in_the_record() {
    let target_group = unique("targetgroup/green");
    let (backend, _green) = gated("m1", json!({"metric_checks": [five_xx_check(&target_group, false)]})).await;
    cloudwatch::put_metric("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", &[("TargetGroup", &target_group)], 7.0);
    verified(&backend, "m1").await;

    assert_eq!(backend.accepted_hook_answers()[0]["status"], "Failed");
    let record = backend.record(&release_key("m1")).await.unwrap();
    let verification = record.verification.clone().unwrap();
    assert!(verification.probes.iter().all(|p| p.ok), "the probes passed; the metric failed it");
    let check = &verification.metrics[0];
    assert_eq!((check.verdict, check.value.map(|v| v.0)), (MetricVerdict::Fail, Some(7.0)));
    assert!(check.query.contains(&format!("HTTPCode_Target_5XX_Count {{TargetGroup={target_group}}} Sum")));
    let reason = verification.outcome.unwrap().reason;
    assert!(reason.contains("metric check green-5xx: value 7 fails <= 0"), "{reason}");
    assert!(matches!(record.state, State::RollingBack { .. }), "{}", record.state);
    let status = convoy::status::render(&record);
    println!("{status}");
    assert!(status.contains("FAIL green-5xx"), "{status}");
    assert!(backend.standin.forwarded().contains(&"GraniteServiceVersion20100801.GetMetricData".to_owned()));
}

#[tokio::test]
async fn a_metric_check_without_datapoints_fails_verification_by_default() {
    let quiet = unique("targetgroup/quiet");
    let (backend, _green) = gated("m2", json!({"metric_checks": [five_xx_check(&quiet, false)]})).await;
    verified(&backend, "m2").await;
    assert_eq!(backend.accepted_hook_answers()[0]["status"], "Failed");
    let record = backend.record(&release_key("m2")).await.unwrap();
    let check = &record.verification.unwrap().metrics[0];
    assert_eq!((check.verdict, check.passed, check.value), (MetricVerdict::Inconclusive, false, None));
}

#[tokio::test]
async fn a_metric_check_without_datapoints_passes_when_the_settings_allow_inconclusive() {
    let quiet = unique("targetgroup/quiet");
    let (backend, _green) = gated("m3", json!({"metric_checks": [five_xx_check(&quiet, true)]})).await;
    verified(&backend, "m3").await;
    assert_eq!(backend.accepted_hook_answers()[0]["status"], "Succeeded");
    let record = backend.record(&release_key("m3")).await.unwrap();
    assert!(matches!(record.state, State::AwaitingApproval { .. }), "{}", record.state);
    let check = &record.verification.unwrap().metrics[0];
    assert_eq!((check.verdict, check.passed), (MetricVerdict::Inconclusive, true));
}

// Two workers: the stand-in keeps serving while the test waits for the CLI process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_during_approval_rolls_back_exactly_once_and_approval_is_refused_while_it_holds() {
    let alarm = unique("web-5xx");
    cloudwatch::put_alarm(&alarm, "targetgroup/green");
    let (backend, _green) = gated("g1", json!({"alarms": [alarm]})).await;
    let deployment = verified(&backend, "g1").await;
    backend.standin.waits(&deployment);
    let key = release_key("g1");
    let record = backend.record(&key).await.unwrap();
    assert!(matches!(record.state, State::AwaitingApproval { .. }), "{}", record.state);
    assert_eq!(record.alarms.unwrap().watched, vec![alarm.clone()]);

    cloudwatch::set_alarm_state(&alarm, "ALARM", "Threshold Crossed: 1 datapoint [12.0] > 0.0");
    let refused = backend.convoy.decide(&key, true).await.unwrap_err();
    assert!(refused.to_string().contains(&format!("alarm {alarm} is in ALARM")), "{refused}");
    // The real CLI (built by scripts/test before the tests), through the stand-in to moto.
    let (endpoint, bucket) = (backend.standin.endpoint.clone(), backend.world.bucket.clone());
    let cli = tokio::task::spawn_blocking(move || {
        convoy_tests::sandbox::cli(&endpoint, &bucket, &["approve", SERVICE, "g1"])
    });
    let refused = cli.await.unwrap().expect_err("convoy approve is refused");
    println!("{refused}");
    assert!(
        refused.contains(&format!("refused: release web/g1 may not shift traffic: alarm {alarm} is in ALARM")),
        "{refused}"
    );
    assert!(backend.standin.calls_to("ContinueDeployment").is_empty());

    // EventBridge delivers at least once: the same event twice, then the reconciler looks too.
    let changed_at = chrono::Utc::now();
    let event =
        fixtures::alarm_state_change(&alarm, "ALARM", "Threshold Crossed: 1 datapoint [12.0] > 0.0", changed_at);
    invoke(&backend.convoy, "deployment-changed", event.clone()).await;
    invoke(&backend.convoy, "deployment-changed", event).await;
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(
        backend.standin.calls_to("StopDeployment"),
        vec![json!({"deploymentId": deployment, "autoRollbackEnabled": true})],
        "exactly one rollback"
    );
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::Stopped));

    backend.codedeploy_reports(&deployment, "STOP").await;
    let record = backend.record(&key).await.unwrap();
    let State::RolledBack { reason } = &record.state else { panic!("{}", record.state) };
    // The time and reason are CloudWatch's (DescribeAlarms confirms the event), not the event's.
    let _ = changed_at;
    assert!(reason.starts_with(&format!("alarm {alarm} went to ALARM at ")), "{reason}");
    assert!(reason.contains("before the traffic shift"), "{reason}");
    assert!(reason.contains("Threshold Crossed"), "{reason}");
    let status = convoy::status::render(&record);
    println!("{status}");
    assert!(status.contains(&format!("ALARM {alarm}")), "{status}");
}

#[tokio::test]
async fn an_alarm_after_the_shift_within_the_wait_before_termination_rolls_back_even_when_its_event_is_lost() {
    let alarm = unique("web-latency");
    cloudwatch::put_alarm(&alarm, "targetgroup/green");
    cloudwatch::set_alarm_state(&alarm, "OK", "fine");
    let (backend, _green) = gated("g2", json!({"alarms": [alarm]})).await;
    let deployment = verified(&backend, "g2").await;
    backend.standin.waits(&deployment);
    let key = release_key("g2");
    backend.convoy.decide(&key, true).await.unwrap();
    backend.cloudtrail_delivers_last_call().await;
    assert_eq!(backend.standin.phase(&deployment), Some(Phase::Shifting), "the blue tasks are still there");

    cloudwatch::set_alarm_state(&alarm, "ALARM", "p95 latency above 0.5 s");
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap(); // the event was lost
    let late = fixtures::alarm_state_change(&alarm, "ALARM", "p95 latency above 0.5 s", chrono::Utc::now());
    invoke(&backend.convoy, "deployment-changed", late).await;
    assert_eq!(
        backend.standin.calls_to("StopDeployment"),
        vec![json!({"deploymentId": deployment, "autoRollbackEnabled": true})]
    );
    backend.codedeploy_reports(&deployment, "STOP").await;
    let record = backend.record(&key).await.unwrap();
    let State::RolledBack { reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("after the traffic shift: p95 latency above 0.5 s"), "{reason}");
    assert_eq!(record.alarms.unwrap().fired[0].via, "reconciler");
    assert_ne!(record.state, State::Failed { stage: Stage::Verification, reason: reason.clone() });
}

#[tokio::test]
async fn an_alarm_event_cloudwatch_does_not_confirm_rolls_nothing_back() {
    let alarm = unique("web-5xx");
    cloudwatch::put_alarm(&alarm, "targetgroup/green");
    cloudwatch::set_alarm_state(&alarm, "OK", "fine");
    let (backend, _green) = gated("g3", json!({"alarms": [alarm]})).await;
    let deployment = verified(&backend, "g3").await;
    backend.standin.waits(&deployment);
    // Another account's alarm of the same name (or anyone who may invoke the function) says
    // ALARM; this account's alarm is OK.
    let mut event = fixtures::alarm_state_change(&alarm, "ALARM", "forged", chrono::Utc::now());
    event["account"] = json!("999999999999");
    invoke(&backend.convoy, "deployment-changed", event).await;
    assert!(backend.standin.calls_to("StopDeployment").is_empty(), "no rollback on an unconfirmed event");
    let record = backend.record(&release_key("g3")).await.unwrap();
    assert!(matches!(record.state, State::AwaitingApproval { .. }), "{}", record.state);
    assert!(!record.timeline.iter().any(|e| e.detail.contains("forged")), "nothing of the event is recorded");
}
