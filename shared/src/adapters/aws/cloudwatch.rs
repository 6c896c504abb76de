use async_trait::async_trait;
use aws_sdk_cloudwatch::primitives::DateTime as SdkTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, StatusCode};
use chrono::{DateTime, Utc};

use crate::error::WatchError;
use crate::gates::{AlarmStatus, MetricCheck, MetricSpec};
use crate::ports::Watch;

/// CloudWatch, read-only: `GetMetricData` for metric checks, `DescribeAlarms` for alarm gates.
#[derive(Clone)]
pub struct CloudWatch {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatch {
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        Self { client }
    }
}

/// Refusals no retry changes.
const REFUSALS: &[&str] =
    &["InvalidParameterValue", "InvalidParameterCombination", "MissingParameter", "ValidationError"];

fn metric_stat(spec: &MetricSpec, period: u64) -> MetricStat {
    let dimensions = spec.dimensions.iter().map(|(name, value)| Dimension::builder().name(name).value(value).build());
    let metric = Metric::builder()
        .namespace(&spec.namespace)
        .metric_name(&spec.metric_name)
        .set_dimensions(Some(dimensions.collect()))
        .build();
    MetricStat::builder().metric(metric).period(period as i32).stat(&spec.stat).build()
}

/// The queries of one check: `m0` for a metric, or `result` over the expression's inputs (which
/// return no data of their own).
pub fn queries(check: &MetricCheck, period: u64) -> Vec<MetricDataQuery> {
    match (&check.metric, &check.expression) {
        (Some(metric), _) => vec![MetricDataQuery::builder().id("m0").metric_stat(metric_stat(metric, period)).build()],
        (None, Some(expression)) => {
            let mut queries: Vec<MetricDataQuery> = check
                .metrics
                .iter()
                .map(|(id, metric)| {
                    MetricDataQuery::builder()
                        .id(id)
                        .metric_stat(metric_stat(metric, period))
                        .return_data(false)
                        .build()
                })
                .collect();
            queries.push(MetricDataQuery::builder().id("result").expression(expression).period(period as i32).build());
            queries
        }
        (None, None) => Vec::new(),
    }
}

fn sdk_time(t: DateTime<Utc>) -> SdkTime {
    SdkTime::from_millis(t.timestamp_millis())
}

#[async_trait]
impl Watch for CloudWatch {
    async fn metric_values(
        &self,
        check: &MetricCheck,
        period_seconds: u64,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<f64>, WatchError> {
        let wanted = if check.metric.is_some() { "m0" } else { "result" };
        let mut values = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let output = self
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(queries(check, period_seconds)))
                .start_time(sdk_time(start))
                .end_time(sdk_time(end))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|err| super::sort(err, Some(REFUSALS), WatchError::Rejected, WatchError::Unavailable))?;
            for result in output.metric_data_results().iter().filter(|r| r.id() == Some(wanted)) {
                if let Some(StatusCode::Forbidden | StatusCode::InternalError) = result.status_code() {
                    let why = result.messages().iter().filter_map(|m| m.value()).collect::<Vec<_>>().join("; ");
                    return Err(WatchError::Rejected(format!("query {wanted}: {why}")));
                }
                values.extend(result.values());
            }
            match output.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(values),
            }
        }
    }

    async fn alarm_states(&self, names: &[String]) -> Result<Vec<AlarmStatus>, WatchError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let output = self
            .client
            .describe_alarms()
            .set_alarm_names(Some(names.to_vec()))
            .max_records(100)
            .send()
            .await
            .map_err(|err| super::sort(err, Some(REFUSALS), WatchError::Rejected, WatchError::Unavailable))?;
        let metric = output.metric_alarms().iter().map(|a| {
            (a.alarm_name(), a.state_value().map(|s| s.as_str()), a.state_reason(), a.state_updated_timestamp())
        });
        let composite = output.composite_alarms().iter().map(|a| {
            (a.alarm_name(), a.state_value().map(|s| s.as_str()), a.state_reason(), a.state_updated_timestamp())
        });
        Ok(metric
            .chain(composite)
            .filter_map(|(name, state, reason, since)| {
                Some(AlarmStatus {
                    name: name?.to_owned(),
                    state: state?.to_owned(),
                    reason: reason.unwrap_or_default().to_owned(),
                    since: since.and_then(|t| DateTime::from_timestamp_millis(t.to_millis().ok()?)),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expression_queries_its_inputs_without_their_data() {
        let check: MetricCheck = serde_json::from_str(
            r#"{"name": "rate", "pass_if": "< 1", "expression": "100 * e / r", "metrics": {
                "e": {"namespace": "N", "metric_name": "Errors", "stat": "Sum", "dimensions": {"TargetGroup": "tg"}},
                "r": {"namespace": "N", "metric_name": "Requests", "stat": "Sum"}}}"#,
        )
        .unwrap();
        let queries = queries(&check, 120);
        let ids: Vec<_> = queries.iter().map(|q| (q.id(), q.return_data(), q.expression())).collect();
        assert_eq!(
            ids,
            [
                (Some("e"), Some(false), None),
                (Some("r"), Some(false), None),
                (Some("result"), None, Some("100 * e / r"))
            ]
        );
        let stat = queries[0].metric_stat().unwrap();
        assert_eq!((stat.period(), stat.stat()), (Some(120), Some("Sum")));
        assert_eq!(stat.metric().unwrap().dimensions()[0].value(), Some("tg"));
    }
}
