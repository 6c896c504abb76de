//! CloudWatch: metric datapoints and alarm states as a test sets them.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;

/// CloudWatch as a test sets it: each check's datapoints by check name, each alarm's state. Every
/// query is recorded, so a test sees the window Convoy asked for.
#[derive(Default)]
pub struct MemoryWatch {
    values: Mutex<HashMap<String, Vec<f64>>>,
    alarms: Mutex<HashMap<String, crate::gates::AlarmStatus>>,
    queries: Mutex<Vec<(String, u64)>>,
}

impl MemoryWatch {
    /// The datapoints CloudWatch has for the check named `check`.
    pub fn set_values(&self, check: &str, values: &[f64]) {
        lock(&self.values).insert(check.to_owned(), values.to_vec());
    }

    /// Sets an alarm's state (`SetAlarmState`).
    pub fn set_alarm(&self, name: &str, state: &str, reason: &str) {
        let status = crate::gates::AlarmStatus {
            name: name.to_owned(),
            state: state.to_owned(),
            reason: reason.to_owned(),
            since: Some(chrono::Utc::now()),
        };
        lock(&self.alarms).insert(name.to_owned(), status);
    }

    /// (check name, period) of every metric query so far.
    pub fn queries(&self) -> Vec<(String, u64)> {
        lock(&self.queries).clone()
    }
}

#[async_trait]
impl crate::ports::Watch for MemoryWatch {
    async fn metric_values(
        &self,
        check: &crate::gates::MetricCheck,
        period_seconds: u64,
        _start: chrono::DateTime<chrono::Utc>,
        _end: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<f64>, crate::error::WatchError> {
        lock(&self.queries).push((check.name.clone(), period_seconds));
        Ok(lock(&self.values).get(&check.name).cloned().unwrap_or_default())
    }

    async fn alarm_states(&self, names: &[String]) -> Result<Vec<crate::gates::AlarmStatus>, crate::error::WatchError> {
        let alarms = lock(&self.alarms);
        Ok(names.iter().filter_map(|name| alarms.get(name).cloned()).collect())
    }
}
