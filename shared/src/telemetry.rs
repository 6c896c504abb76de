//! Convoy's own health, as CloudWatch Embedded Metric Format (EMF) lines on standard output: Lambda
//! sends them to CloudWatch Logs, which extracts the metrics, so no API call (and no permission)
//! is needed. Namespace `Convoy`:
//!
//! | metric | unit | dimensions |
//! |---|---|---|
//! | `ReleasesStarted` | Count | `Service` |
//! | `ReleasesEnded` | Count | `Outcome`; `Service`, `Outcome` |
//! | `StageSeconds` | Seconds | `Stage` (collecting, migration, deployment, verification, approval-wait) |
//! | `ProbeLatency` | Milliseconds | `Service` |
//! | `HandlerErrors` | Count | `Function` |
//! | `UnconfirmedEvents` | Count | `Kind` (push, task-stopped, deployment-end, approval, envelope) |
//!
//! Every line also carries the release (`release`), so a person can find it in CloudWatch Logs
//! Insights. The lines are built by pure functions (tested by reading them back as EMF).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::names::ReleaseKey;
use crate::release::{ProbeResult, Release, State};

pub const NAMESPACE: &str = "Convoy";

/// One EMF line: `dimensions` (name, value) are split into `dimension_sets` by name; each metric
/// is (name, unit, values); `properties` are carried but are not metrics.
pub fn line(
    at: DateTime<Utc>,
    dimensions: &[(&str, &str)],
    dimension_sets: &[&[&str]],
    metrics: &[(&str, &str, Vec<f64>)],
    properties: &[(&str, Value)],
) -> Value {
    let mut root = Map::new();
    let definitions: Vec<Value> = metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": dimension_sets, "Metrics": definitions}],
        }),
    );
    for (name, value) in dimensions {
        root.insert((*name).into(), json!(value));
    }
    for (name, _, values) in metrics {
        let value = if values.len() == 1 { json!(values[0]) } else { json!(values) };
        root.insert((*name).into(), value);
    }
    for (name, value) in properties {
        root.insert((*name).into(), value.clone());
    }
    Value::Object(root)
}

fn emit(line: Value) {
    println!("{line}");
}

/// The outcome a terminal state reports as (`Succeeded`, `RolledBack`, `Superseded`, `Failed`).
pub fn outcome(state: &State) -> &'static str {
    match state {
        State::Succeeded => "Succeeded",
        State::RolledBack { .. } => "RolledBack",
        State::Superseded { .. } => "Superseded",
        State::Failed { .. } => "Failed",
        _ => "InProgress",
    }
}

fn seconds(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Option<f64> {
    let (from, to) = (from?, to?);
    (to >= from).then(|| (to - from).num_milliseconds() as f64 / 1000.0)
}

/// How long each stage of an ended release took, from its record's evidence: collecting (opened
/// until the last image was pinned), migration (task started until stopped), deployment (started
/// until its hook), verification (hook until verdict), approval wait (verdict until decision).
pub fn stage_durations(release: &Release) -> Vec<(&'static str, f64)> {
    let last_pin = release.images.values().filter_map(|s| s.seen_at).max();
    let ready = release.timeline.iter().find(|e| e.event == "ready").map(|e| e.at).or(last_pin);
    // A push's time is ECR's (whole seconds), and CI may push before it submits the manifest:
    // a release whose images were all there when it opened collected for no time at all.
    let opened = release.opened_at();
    let ready = ready.map(|ready| ready.max(opened));
    let migration = release.migration.as_ref();
    let deployment = release.deployment.as_ref();
    let verification = release.verification.as_ref();
    let stages = [
        ("collecting", seconds(Some(opened), ready)),
        ("migration", seconds(migration.and_then(|m| m.started_at), migration.and_then(|m| m.stopped_at))),
        ("deployment", seconds(deployment.and_then(|d| d.started_at), verification.map(|v| v.started_at))),
        ("verification", seconds(verification.map(|v| v.started_at), verification.and_then(|v| v.finished_at))),
        ("approval-wait", seconds(verification.and_then(|v| v.finished_at), release.approval.as_ref().map(|a| a.at))),
    ];
    stages.into_iter().filter_map(|(stage, secs)| Some((stage, secs?))).collect()
}

/// The lines of a release that just ended: its outcome, then one line per stage it went through.
pub fn ended_lines(release: &Release, at: DateTime<Utc>) -> Vec<Value> {
    let service = release.key.service.to_string();
    let id = json!(release.key.to_string());
    let mut lines = vec![line(
        at,
        &[("Service", &service), ("Outcome", outcome(&release.state))],
        &[&["Outcome"], &["Service", "Outcome"]],
        &[("ReleasesEnded", "Count", vec![1.0])],
        &[("release", id.clone())],
    )];
    for (stage, secs) in stage_durations(release) {
        lines.push(line(
            at,
            &[("Stage", stage)],
            &[&["Stage"]],
            &[("StageSeconds", "Seconds", vec![secs])],
            &[("release", id.clone()), ("service", json!(service))],
        ));
    }
    lines
}

/// A release record was created.
pub fn release_started(key: &ReleaseKey) {
    let service = key.service.to_string();
    emit(line(
        Utc::now(),
        &[("Service", &service)],
        &[&["Service"]],
        &[("ReleasesStarted", "Count", vec![1.0])],
        &[("release", json!(key.to_string()))],
    ));
}

/// A release reached a terminal state.
pub fn release_ended(release: &Release) {
    ended_lines(release, Utc::now()).into_iter().for_each(emit);
}

/// The latency of each probe made.
pub fn probe_latencies(key: &ReleaseKey, probes: &[ProbeResult]) {
    if probes.is_empty() {
        return;
    }
    let service = key.service.to_string();
    let values = probes.iter().map(|p| p.latency_ms as f64).collect();
    emit(line(
        Utc::now(),
        &[("Service", &service)],
        &[&["Service"]],
        &[("ProbeLatency", "Milliseconds", values)],
        &[("release", json!(key.to_string()))],
    ));
}

/// A handler failed (retryable: the invocation fails and AWS retries it, then dead-letters it).
pub fn handler_error(retryable: bool) {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "convoy".into());
    emit(line(
        Utc::now(),
        &[("Function", &function)],
        &[&["Function"]],
        &[("HandlerErrors", "Count", vec![1.0])],
        &[("retryable", json!(retryable))],
    ));
}

/// An event AWS did not confirm (or whose envelope is not AWS's): it changed nothing.
pub fn unconfirmed_event(kind: &str, release: Option<&ReleaseKey>) {
    let release = release.map_or(Value::Null, |key| json!(key.to_string()));
    emit(line(
        Utc::now(),
        &[("Kind", kind)],
        &[&["Kind"]],
        &[("UnconfirmedEvents", "Count", vec![1.0])],
        &[("release", release)],
    ));
}

/// One metric read back from an EMF line: its name, values, and dimension (name, value) pairs.
pub type ReadMetric = (String, Vec<f64>, Vec<(String, String)>);

/// Reads an EMF line back: the (metric name, values) it declares, with the dimension values of
/// its first dimension set. `Err` when the line breaks the EMF specification's structure.
pub fn read(text: &str) -> Result<Vec<ReadMetric>, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let aws = root.get("_aws").ok_or("no _aws metadata")?;
    aws["Timestamp"].as_i64().ok_or("_aws.Timestamp is not epoch milliseconds")?;
    let directives = aws["CloudWatchMetrics"].as_array().ok_or("_aws.CloudWatchMetrics is not an array")?;
    let mut out = Vec::new();
    for directive in directives {
        directive["Namespace"].as_str().filter(|n| !n.is_empty()).ok_or("a directive without a Namespace")?;
        let sets = directive["Dimensions"].as_array().ok_or("a directive without Dimensions")?;
        let mut dimensions = Vec::new();
        for set in sets {
            let keys = set.as_array().ok_or("a dimension set is not an array")?;
            if keys.is_empty() || keys.len() > 30 {
                return Err("a dimension set must name 1 to 30 dimensions".into());
            }
            for key in keys {
                let key = key.as_str().ok_or("a dimension key is not a string")?;
                let value = root[key].as_str().ok_or(format!("dimension {key} has no string value at the root"))?;
                if dimensions.iter().all(|(k, _): &(String, String)| k != key) {
                    dimensions.push((key.to_owned(), value.to_owned()));
                }
            }
        }
        for metric in directive["Metrics"].as_array().ok_or("a directive without Metrics")? {
            let name = metric["Name"].as_str().ok_or("a metric without a Name")?;
            let values = match &root[name] {
                Value::Number(n) => vec![n.as_f64().ok_or("not a number")?],
                Value::Array(items) => items.iter().filter_map(Value::as_f64).collect(),
                _ => return Err(format!("metric {name} has no numeric value at the root")),
            };
            out.push((name.to_owned(), values, dimensions.clone()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::test_support::{ready, t};

    #[test]
    fn a_release_end_is_written_as_emf_with_its_outcome_and_stage_durations() {
        let mut release = ready(false);
        release.state = State::RolledBack { reason: "alarm".into() };
        let lines = ended_lines(&release, t(100));
        let read: Vec<_> = lines.iter().map(|l| read(&l.to_string()).unwrap()).collect();
        assert_eq!(read[0][0].0, "ReleasesEnded");
        assert_eq!(read[0][0].1, vec![1.0]);
        assert_eq!(read[0][0].2[0], ("Outcome".to_owned(), "RolledBack".to_owned()));
        let collecting = &read[1][0];
        assert_eq!((collecting.0.as_str(), &collecting.1), ("StageSeconds", &vec![1.0]));
        assert_eq!(collecting.2, vec![("Stage".to_owned(), "collecting".to_owned())]);
        assert_eq!(lines[1]["release"], "web/r1");
        assert_eq!(lines[1]["_aws"]["Timestamp"], t(100).timestamp_millis());
        assert_eq!(lines[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "Seconds");
    }

    #[test]
    fn a_release_whose_last_push_is_timed_before_its_manifest_collected_for_zero_seconds() {
        let mut release = ready(false);
        let opened = release.opened_at();
        let entry = release.timeline.iter_mut().find(|e| e.event == "ready").expect("a ready entry");
        entry.at = opened - chrono::Duration::milliseconds(400);
        let stages = stage_durations(&release);
        assert_eq!(stages.first(), Some(&("collecting", 0.0)), "{stages:?}");
    }

    #[test]
    fn probe_latencies_are_one_metric_with_many_values() {
        let line = line(
            t(0),
            &[("Service", "web")],
            &[&["Service"]],
            &[("ProbeLatency", "Milliseconds", vec![3.0, 5.0])],
            &[],
        );
        let read = read(&line.to_string()).unwrap();
        assert_eq!(read, vec![("ProbeLatency".into(), vec![3.0, 5.0], vec![("Service".into(), "web".into())])]);
    }

    #[test]
    fn a_line_whose_dimension_has_no_value_is_not_emf() {
        let mut line = line(t(0), &[], &[&["Service"]], &[("ReleasesStarted", "Count", vec![1.0])], &[]);
        assert!(read(&line.to_string()).unwrap_err().contains("dimension Service"));
        line["Service"] = json!("web");
        assert!(read(&line.to_string()).is_ok());
    }
}
