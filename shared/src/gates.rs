//! Gates beyond the probes: CloudWatch metric checks judged at the end of verification (Argo's
//! analysis model on CloudWatch), and CloudWatch alarms that hold the traffic shift and roll a
//! release back. The settings' shapes and checks, the pure verdict on a metric's datapoints, what
//! the record keeps of both, and the EventBridge "CloudWatch Alarm State Change" event.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A number in settings and records. Records are compared whole (`Eq`), so equality is by bits.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Number(pub f64);

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Number {}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A pass condition, written `"<= 0"`, `"< 0.5"`, `">= 99"` or `"> 1"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Condition {
    pub op: Op,
    pub threshold: Number,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Le,
    Lt,
    Ge,
    Gt,
}

impl Condition {
    pub fn holds(&self, value: f64) -> bool {
        let t = self.threshold.0;
        match self.op {
            Op::Le => value <= t,
            Op::Lt => value < t,
            Op::Ge => value >= t,
            Op::Gt => value > t,
        }
    }

    /// The datapoint that decides: the highest for an upper bound, the lowest for a lower one.
    fn worst(&self, values: &[f64]) -> Option<f64> {
        let finite = values.iter().copied().filter(|v| v.is_finite());
        match self.op {
            Op::Le | Op::Lt => finite.reduce(f64::max),
            Op::Ge | Op::Gt => finite.reduce(f64::min),
        }
    }
}

/// In the settings' JSON Schema: the string it is written as (checked by `TryFrom`).
impl schemars::JsonSchema for Condition {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Condition".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A pass condition: <=, <, >= or > then a number, e.g. \"<= 0.5\".",
            "type": "string",
            "pattern": "^\\s*(<=|<|>=|>)\\s*[-+]?[0-9]"
        })
    }
}

impl TryFrom<String> for Condition {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let text = text.trim();
        let (op, rest) = [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)]
            .into_iter()
            .find_map(|(sign, op)| text.strip_prefix(sign).map(|rest| (op, rest)))
            .ok_or_else(|| format!("condition {text:?} must be <=, <, >= or > then a number"))?;
        let threshold: f64 =
            rest.trim().parse().map_err(|_| format!("condition {text:?} must be <=, <, >= or > then a number"))?;
        if !threshold.is_finite() {
            return Err(format!("condition {text:?}: the threshold must be finite"));
        }
        Ok(Condition { op, threshold: Number(threshold) })
    }
}

impl From<Condition> for String {
    fn from(condition: Condition) -> String {
        condition.to_string()
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.op {
            Op::Le => "<=",
            Op::Lt => "<",
            Op::Ge => ">=",
            Op::Gt => ">",
        };
        write!(f, "{sign} {}", self.threshold)
    }
}

/// One CloudWatch metric and the statistic to take of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    pub namespace: String,
    pub metric_name: String,
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// `Sum`, `Average`, `Minimum`, `Maximum`, `SampleCount`, or a percentile `p95`, `p99.9`.
    pub stat: String,
}

impl fmt::Display for MetricSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.namespace, self.metric_name)?;
        if !self.dimensions.is_empty() {
            let dims: Vec<String> = self.dimensions.iter().map(|(k, v)| format!("{k}={v}")).collect();
            write!(f, " {{{}}}", dims.join(", "))?;
        }
        write!(f, " {}", self.stat)
    }
}

/// A metric check of a service's settings (`metric_checks`): a metric, or a metric math
/// `expression` over the named `metrics`, judged by `pass_if` over the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricCheck {
    pub name: String,
    #[serde(default)]
    pub metric: Option<MetricSpec>,
    /// Metric math, e.g. `"100 * errors / requests"`, over `metrics` (ids as keys).
    #[serde(default)]
    pub expression: Option<String>,
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricSpec>,
    pub pass_if: Condition,
    /// The window the statistic covers, ending when the check runs. Default: the verification's
    /// own test traffic window (from the hook's start), at least 60 s.
    #[serde(default)]
    pub window_seconds: Option<u64>,
    /// Whether a check without any datapoint passes. Default: it does not.
    #[serde(default)]
    pub inconclusive_passes: bool,
}

impl MetricCheck {
    /// The query as a person reads it (kept in the record).
    pub fn describe(&self) -> String {
        match (&self.metric, &self.expression) {
            (Some(metric), _) => metric.to_string(),
            (None, Some(expression)) => {
                let inputs: Vec<String> = self.metrics.iter().map(|(id, m)| format!("{id} = {m}")).collect();
                format!("{expression} where {}", inputs.join("; "))
            }
            (None, None) => "(no query)".into(),
        }
    }

    /// The period (and window) of the query: the configured window, or the verification's
    /// duration, rounded up to whole minutes (CloudWatch's standard resolution).
    pub fn period_seconds(&self, verification_seconds: i64) -> u64 {
        let window = self.window_seconds.unwrap_or(verification_seconds.max(0) as u64).max(60);
        window.div_ceil(60) * 60
    }
}

fn valid_stat(stat: &str) -> bool {
    matches!(stat, "Sum" | "Average" | "Minimum" | "Maximum" | "SampleCount")
        || stat.strip_prefix('p').and_then(|p| p.parse::<f64>().ok()).is_some_and(|p| (0.0..=100.0).contains(&p))
}

fn check_metric(field: &str, metric: &MetricSpec) -> Result<(), String> {
    if metric.namespace.is_empty() || metric.namespace.len() > 255 {
        return Err(format!("{field}.namespace must be 1 to 255 characters"));
    }
    if metric.metric_name.is_empty() || metric.metric_name.len() > 255 {
        return Err(format!("{field}.metric_name must be 1 to 255 characters"));
    }
    if metric.dimensions.len() > 30 {
        return Err(format!("{field}.dimensions: CloudWatch takes at most 30"));
    }
    if let Some((name, _)) =
        metric.dimensions.iter().find(|(k, v)| k.is_empty() || k.len() > 255 || v.is_empty() || v.len() > 1024)
    {
        return Err(format!("{field}.dimensions.{name}: a name of 1 to 255 and a value of 1 to 1024 characters"));
    }
    if !valid_stat(&metric.stat) {
        return Err(format!(
            "{field}.stat {:?} must be Sum, Average, Minimum, Maximum, SampleCount or a percentile like p95",
            metric.stat
        ));
    }
    Ok(())
}

/// CloudWatch's query ids: a lower-case letter, then letters, digits and `_`.
fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && id.len() <= 255
}

/// Checks `metric_checks` and `alarms` at start-up; the message names the field.
pub fn check_settings(checks: &[MetricCheck], alarms: &[String]) -> Result<(), String> {
    let mut names = std::collections::BTreeSet::new();
    for (i, check) in checks.iter().enumerate() {
        let field = format!("metric_checks[{i}]");
        let name_ok = !check.name.is_empty()
            && check.name.len() <= 64
            && check.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !name_ok {
            return Err(format!("{field}.name {:?} must be 1 to 64 of [A-Za-z0-9-_.]", check.name));
        }
        if !names.insert(check.name.as_str()) {
            return Err(format!("{field}.name {:?} is used twice", check.name));
        }
        match (&check.metric, &check.expression) {
            (Some(metric), None) if check.metrics.is_empty() => check_metric(&format!("{field}.metric"), metric)?,
            (None, Some(expression)) if !check.metrics.is_empty() => {
                if expression.trim().is_empty() || expression.len() > 2048 {
                    return Err(format!("{field}.expression must be 1 to 2048 characters"));
                }
                for (id, metric) in &check.metrics {
                    if !valid_id(id) {
                        return Err(format!(
                            "{field}.metrics.{id}: an id starts with a lower-case letter, then letters, digits, _"
                        ));
                    }
                    check_metric(&format!("{field}.metrics.{id}"), metric)?;
                }
            }
            _ => {
                return Err(format!(
                    "{field} ({}) needs either `metric`, or `expression` with its `metrics`",
                    check.name
                ));
            }
        }
        if let Some(window) = check.window_seconds
            && !(60..=86_400).contains(&window)
        {
            return Err(format!("{field}.window_seconds must be 60 to 86400, not {window}"));
        }
    }
    if alarms.len() > 100 {
        return Err("alarms: DescribeAlarms takes at most 100 names".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, alarm) in alarms.iter().enumerate() {
        if alarm.is_empty() || alarm.len() > 255 || alarm.chars().any(char::is_control) {
            return Err(format!("alarms[{i}] {alarm:?} must be an alarm name of 1 to 255 characters"));
        }
        if !seen.insert(alarm) {
            return Err(format!("alarms[{i}] {alarm:?} is named twice"));
        }
    }
    Ok(())
}

/// How one metric check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricVerdict {
    Pass,
    Fail,
    /// No datapoint in the window.
    Inconclusive,
}

/// One metric check's result, as the record keeps it beside the probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricResult {
    pub name: String,
    /// The query, as [`MetricCheck::describe`] writes it, and its window.
    pub query: String,
    pub window_seconds: u64,
    pub condition: Condition,
    /// The deciding datapoint (the worst of the window's); none when CloudWatch had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Number>,
    pub verdict: MetricVerdict,
    /// Whether the check lets the verification pass (an inconclusive one passes only when its
    /// settings say so).
    pub passed: bool,
    pub at: DateTime<Utc>,
}

impl MetricResult {
    /// One line for a verification's reason.
    pub fn summary(&self) -> String {
        let value = self.value.map_or("no datapoint".to_owned(), |v| format!("value {v}"));
        let verdict = match self.verdict {
            MetricVerdict::Pass => "passes",
            MetricVerdict::Fail => "fails",
            MetricVerdict::Inconclusive if self.passed => "is inconclusive (allowed)",
            MetricVerdict::Inconclusive => "is inconclusive",
        };
        format!("metric check {}: {value} {verdict} {}", self.name, self.condition)
    }
}

/// Judges a check on its window's datapoints (pure).
pub fn judge(check: &MetricCheck, values: &[f64], window_seconds: u64, at: DateTime<Utc>) -> MetricResult {
    let value = check.pass_if.worst(values);
    let verdict = match value {
        None => MetricVerdict::Inconclusive,
        Some(v) if check.pass_if.holds(v) => MetricVerdict::Pass,
        Some(_) => MetricVerdict::Fail,
    };
    let passed = match verdict {
        MetricVerdict::Pass => true,
        MetricVerdict::Fail => false,
        MetricVerdict::Inconclusive => check.inconclusive_passes,
    };
    MetricResult {
        name: check.name.clone(),
        query: check.describe(),
        window_seconds,
        condition: check.pass_if,
        value: value.map(Number),
        verdict,
        passed,
        at,
    }
}

/// The state of one CloudWatch alarm, as DescribeAlarms says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmStatus {
    pub name: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    pub reason: String,
    pub since: Option<DateTime<Utc>>,
}

impl AlarmStatus {
    pub fn in_alarm(&self) -> bool {
        self.state == "ALARM"
    }
}

/// An alarm that fired while the release was gated, as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRecord {
    pub alarm: String,
    pub state: String,
    pub reason: String,
    /// When the alarm changed state (CloudWatch's time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// How Convoy learned of it: `event` (EventBridge) or `reconciler` (DescribeAlarms).
    pub via: String,
    /// What it did: `rolled back` the deployment.
    pub action: String,
    pub at: DateTime<Utc>,
}

/// The alarms that gate a release (copied from the settings when its verification finished) and
/// every alarm that acted on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmGate {
    pub watched: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fired: Vec<AlarmRecord>,
}

/// An EventBridge "CloudWatch Alarm State Change" event, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmChange {
    pub alarm: String,
    pub state: String,
    pub reason: String,
    pub since: Option<DateTime<Utc>>,
}

pub const ALARM_DETAIL_TYPE: &str = "CloudWatch Alarm State Change";

/// Reads an alarm state change event; `Err` says why it is not one.
pub fn parse_alarm_change(event: &Value) -> Result<AlarmChange, String> {
    if event["detail-type"].as_str() != Some(ALARM_DETAIL_TYPE) || event["source"].as_str() != Some("aws.cloudwatch") {
        return Err("not a CloudWatch Alarm State Change from aws.cloudwatch".into());
    }
    let detail = &event["detail"];
    let alarm = detail["alarmName"].as_str().filter(|a| !a.is_empty() && a.len() <= 255);
    let alarm = alarm.ok_or("the alarm state change names no alarm (detail.alarmName)")?;
    let state = detail["state"]["value"].as_str().ok_or("the alarm state change has no detail.state.value")?;
    if !matches!(state, "OK" | "ALARM" | "INSUFFICIENT_DATA") {
        return Err(format!("alarm state {state:?} is not OK, ALARM or INSUFFICIENT_DATA"));
    }
    let reason: String = detail["state"]["reason"].as_str().unwrap_or_default().chars().take(1024).collect();
    let since = detail["state"]["timestamp"].as_str().and_then(parse_cloudwatch_time);
    Ok(AlarmChange { alarm: alarm.to_owned(), state: state.to_owned(), reason, since })
}

/// CloudWatch writes `2019-10-02T17:04:40.985+0000` (no colon in the offset), or RFC 3339.
fn parse_cloudwatch_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `convoy status`: the metric checks, one line each, as the probes are shown.
pub fn render_metrics(out: &mut String, results: &[MetricResult]) {
    use std::fmt::Write;
    if results.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nmetric checks");
    for r in results {
        let at = r.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mark = match (r.verdict, r.passed) {
            (MetricVerdict::Pass, _) => "ok  ",
            (MetricVerdict::Fail, _) => "FAIL",
            (MetricVerdict::Inconclusive, true) => "n/a ",
            (MetricVerdict::Inconclusive, false) => "N/A!",
        };
        let value = r.value.map_or("no data".to_owned(), |v| v.to_string());
        let verdict = match r.verdict {
            MetricVerdict::Inconclusive if r.passed => "inconclusive, allowed".to_owned(),
            MetricVerdict::Inconclusive => "inconclusive, fails".to_owned(),
            _ => format!("{:?}", r.verdict).to_lowercase(),
        };
        let _ = writeln!(
            out,
            "  {at}  {mark} {:<20} {value:>10} {:<8} ({verdict})  {} over {} s",
            r.name,
            r.condition.to_string(),
            r.query,
            r.window_seconds
        );
    }
}

/// `convoy status`: the alarms that gate the release, and each that fired.
pub fn render_alarms(out: &mut String, gate: &AlarmGate) {
    use std::fmt::Write;
    let _ = writeln!(out, "\nalarms\n  gated by {}", gate.watched.join(", "));
    for fired in &gate.fired {
        let since = fired.since.unwrap_or(fired.at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let _ = writeln!(
            out,
            "  {since}  {} {:<20} {} (via {}): {}",
            fired.state, fired.alarm, fired.action, fired.via, fired.reason
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> MetricCheck {
        serde_json::from_str(json).unwrap()
    }

    fn five_xx() -> MetricCheck {
        check(
            r#"{"name": "green-5xx", "pass_if": "<= 0", "metric": {"namespace": "AWS/ApplicationELB",
                "metric_name": "HTTPCode_Target_5XX_Count", "dimensions": {"TargetGroup": "targetgroup/green/1"},
                "stat": "Sum"}}"#,
        )
    }

    #[test]
    fn a_5xx_sum_above_zero_fails_with_the_value() {
        let result = judge(&five_xx(), &[0.0, 3.0], 120, Utc::now());
        assert_eq!((result.verdict, result.passed, result.value), (MetricVerdict::Fail, false, Some(Number(3.0))));
        assert_eq!(result.summary(), "metric check green-5xx: value 3 fails <= 0");
        assert!(result.query.contains("HTTPCode_Target_5XX_Count {TargetGroup=targetgroup/green/1} Sum"));
    }

    #[test]
    fn a_window_without_5xx_passes() {
        let result = judge(&five_xx(), &[0.0], 120, Utc::now());
        assert_eq!((result.verdict, result.passed), (MetricVerdict::Pass, true));
    }

    #[test]
    fn a_lower_bound_is_judged_on_the_lowest_datapoint() {
        let check = MetricCheck { pass_if: "> 99".to_owned().try_into().unwrap(), ..five_xx() };
        let result = judge(&check, &[99.5, 98.0], 60, Utc::now());
        assert_eq!((result.verdict, result.value), (MetricVerdict::Fail, Some(Number(98.0))));
    }

    #[test]
    fn no_datapoint_is_inconclusive_and_fails_unless_the_settings_allow_it() {
        let result = judge(&five_xx(), &[], 60, Utc::now());
        assert_eq!((result.verdict, result.passed), (MetricVerdict::Inconclusive, false));
        let allowed = MetricCheck { inconclusive_passes: true, ..five_xx() };
        let result = judge(&allowed, &[], 60, Utc::now());
        assert_eq!((result.verdict, result.passed), (MetricVerdict::Inconclusive, true));
    }

    #[test]
    fn the_window_defaults_to_the_verification_rounded_up_to_minutes() {
        assert_eq!(five_xx().period_seconds(0), 60);
        assert_eq!(five_xx().period_seconds(61), 120);
        let fixed = MetricCheck { window_seconds: Some(300), ..five_xx() };
        assert_eq!(fixed.period_seconds(61), 300);
    }

    #[test]
    fn conditions_read_and_print_as_written() {
        for text in ["<= 0", "< 0.5", ">= 99.9", "> 1"] {
            let condition = Condition::try_from(text.to_owned()).unwrap();
            assert_eq!(condition.to_string(), text);
        }
        for bad in ["0.5", "== 1", "<= x", "<= inf"] {
            assert!(Condition::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_check_needs_a_metric_or_an_expression_with_its_metrics() {
        let bad = MetricCheck { metric: None, ..five_xx() };
        let err = check_settings(&[bad], &[]).unwrap_err();
        assert!(err.starts_with("metric_checks[0] (green-5xx) needs either"), "{err}");
        let math = check(
            r#"{"name": "error-rate", "pass_if": "< 1", "expression": "100 * e / r", "metrics": {
                "e": {"namespace": "N", "metric_name": "Errors", "stat": "Sum"},
                "r": {"namespace": "N", "metric_name": "Requests", "stat": "Sum"}}}"#,
        );
        check_settings(std::slice::from_ref(&math), &[]).unwrap();
        assert!(math.describe().starts_with("100 * e / r where e = N Errors Sum; r = N Requests Sum"));
    }

    #[test]
    fn a_bad_stat_window_or_alarm_name_is_refused_with_its_field() {
        let mut bad_stat = five_xx();
        bad_stat.metric.as_mut().unwrap().stat = "p101".into();
        assert!(check_settings(&[bad_stat], &[]).unwrap_err().starts_with("metric_checks[0].metric.stat"));
        let bad_window = MetricCheck { window_seconds: Some(30), ..five_xx() };
        assert!(check_settings(&[bad_window], &[]).unwrap_err().starts_with("metric_checks[0].window_seconds"));
        assert!(check_settings(&[], &["a".into(), "a".into()]).unwrap_err().starts_with("alarms[1]"));
        assert!(check_settings(&[five_xx(), five_xx()], &[]).unwrap_err().contains("used twice"));
    }

    #[test]
    fn the_documented_alarm_state_change_event_is_read() {
        let event: Value =
            serde_json::from_str(include_str!("../../tests/fixtures/events/cloudwatch-alarm-state-change.json"))
                .unwrap();
        let change = parse_alarm_change(&event).unwrap();
        assert_eq!((change.alarm.as_str(), change.state.as_str()), ("ServerCpuTooHigh", "ALARM"));
        assert!(change.reason.starts_with("Threshold Crossed"), "{}", change.reason);
        assert_eq!(change.since.unwrap().to_rfc3339(), "2019-10-02T17:04:40.989+00:00");
    }

    #[test]
    fn status_shows_each_metric_check_and_fired_alarm_on_its_own_line() {
        let mut out = String::new();
        render_metrics(&mut out, &[judge(&five_xx(), &[3.0], 120, Utc::now())]);
        let line = out.lines().nth(2).unwrap();
        assert!(line.contains("FAIL green-5xx"), "{line}");
        assert!(line.contains("3 <= 0"), "{line}");
        assert!(line.contains("(fail)  AWS/ApplicationELB HTTPCode_Target_5XX_Count"), "{line}");
        let gate = AlarmGate {
            watched: vec!["web-5xx".into()],
            fired: vec![AlarmRecord {
                alarm: "web-5xx".into(),
                state: "ALARM".into(),
                reason: "Threshold Crossed".into(),
                since: None,
                via: "event".into(),
                action: "rolled back".into(),
                at: Utc::now(),
            }],
        };
        let mut out = String::new();
        render_alarms(&mut out, &gate);
        assert!(out.contains("gated by web-5xx"), "{out}");
        assert!(out.contains("ALARM web-5xx              rolled back (via event): Threshold Crossed"), "{out}");
    }

    #[test]
    fn an_event_of_another_kind_is_not_an_alarm_change() {
        // The documented alarm event, whole, under another kind's detail-type or source: nothing
        // but the kind check can refuse it.
        let documented: Value =
            serde_json::from_str(include_str!("../../tests/fixtures/events/cloudwatch-alarm-state-change.json"))
                .unwrap();
        assert!(parse_alarm_change(&documented).is_ok());
        for (field, other) in [("detail-type", "ECS Task State Change"), ("source", "aws.ecs")] {
            let mut event = documented.clone();
            event[field] = serde_json::json!(other);
            assert_eq!(
                parse_alarm_change(&event).unwrap_err(),
                "not a CloudWatch Alarm State Change from aws.cloudwatch",
                "{field}"
            );
        }
    }
}
