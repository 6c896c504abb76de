//! The gates beyond the probes, over the [`Watch`](crate::ports::Watch) port: the metric checks and
//! alarm states judged at the end of verification, an alarm that fires while the traffic shift is
//! gated (an EventBridge event, or the reconciler's look), and the alarm check before an approval.

use chrono::{DateTime, Utc};
use tracing::{Instrument, info, warn};

use super::transition::Outbox;
use super::{Convoy, Report, release_span};
use crate::error::{ConvoyError, WatchError};
use crate::gates::{AlarmChange, AlarmStatus, MetricCheck, MetricResult};
use crate::names::ReleaseKey;
use crate::release::{Release, State, VerificationOutcome, approval};

impl Convoy {
    /// After probes that passed: the metric checks over the test traffic window, then the alarm
    /// gates (one in ALARM fails the verification: no traffic shift while it holds). The outcome
    /// says which check or alarm failed it, with the value.
    pub(super) async fn judge_gates(
        &self,
        checks: &[MetricCheck],
        alarms: &[String],
        started_at: DateTime<Utc>,
        outcome: VerificationOutcome,
        now: DateTime<Utc>,
    ) -> Result<(VerificationOutcome, Vec<MetricResult>), ConvoyError> {
        if !outcome.passed || (checks.is_empty() && alarms.is_empty()) {
            return Ok((outcome, Vec::new()));
        }
        let mut results = Vec::new();
        let mut failures = Vec::new();
        for check in checks {
            let period = check.period_seconds((now - started_at).num_seconds());
            let start = now - chrono::Duration::seconds(period as i64);
            match self.watch.metric_values(check, period, start, now).await {
                Ok(values) => {
                    let result = crate::gates::judge(check, &values, period, now);
                    info!(check = %check.name, value = ?result.value, verdict = ?result.verdict, "metric check");
                    if !result.passed {
                        failures.push(result.summary());
                    }
                    results.push(result);
                }
                Err(WatchError::Rejected(why)) => failures.push(format!("metric check {}: {why}", check.name)),
                Err(err) => return Err(err.into()),
            }
        }
        let in_alarm = self.alarms_in_alarm(alarms).await?;
        failures.extend(in_alarm.iter().map(|a| format!("alarm {} is in ALARM: {}", a.name, a.reason)));
        let outcome = if failures.is_empty() {
            let checked =
                if results.is_empty() { String::new() } else { format!("; {} metric checks passed", results.len()) };
            let gated =
                if alarms.is_empty() { String::new() } else { format!("; no alarm of {} in ALARM", alarms.len()) };
            VerificationOutcome { passed: true, reason: format!("{}{checked}{gated}", outcome.reason) }
        } else {
            VerificationOutcome { passed: false, reason: format!("{}; but {}", outcome.reason, failures.join("; ")) }
        };
        Ok((outcome, results))
    }

    /// The named alarms that are in ALARM now.
    pub(super) async fn alarms_in_alarm(&self, names: &[String]) -> Result<Vec<AlarmStatus>, ConvoyError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.watch.alarm_states(names).await?.into_iter().filter(AlarmStatus::in_alarm).collect())
    }

    /// Refuses an approval while an alarm that gates the release is in ALARM.
    pub(super) async fn refuse_while_alarmed(&self, release: &Release) -> Result<(), ConvoyError> {
        let watched = release.alarms.as_ref().map(|gate| gate.watched.clone()).unwrap_or_default();
        let in_alarm = self.alarms_in_alarm(&watched).await?;
        if in_alarm.is_empty() {
            return Ok(());
        }
        let named: Vec<String> =
            in_alarm.iter().map(|a| format!("alarm {} is in ALARM ({})", a.name, a.reason)).collect();
        Err(ConvoyError::Refused(format!("release {} may not shift traffic: {}", release.key, named.join("; "))))
    }

    /// EventBridge "CloudWatch Alarm State Change": an alarm in ALARM rolls back the release in
    /// flight of every service whose settings name it, if that release is gated by it now. The
    /// event is a hint: anyone who may invoke the function (or another account's alarm of the same
    /// name) can send one, so `DescribeAlarms` must say the alarm is in ALARM, and its reason and
    /// time are the ones recorded; an unconfirmed event changes nothing.
    pub async fn alarm_changed(&self, change: &AlarmChange, now: DateTime<Utc>) -> Result<Vec<Report>, ConvoyError> {
        let outbox = Outbox::new(now);
        let result = self.alarm_changed_in(&outbox, change, now).await;
        self.publish(outbox).await;
        result
    }

    async fn alarm_changed_in(
        &self,
        outbox: &Outbox,
        change: &AlarmChange,
        now: DateTime<Utc>,
    ) -> Result<Vec<Report>, ConvoyError> {
        if change.state != "ALARM" {
            info!(alarm = %change.alarm, state = %change.state, "not ALARM: nothing to do");
            return Ok(Vec::new());
        }
        let services: Vec<_> = self
            .config
            .services
            .iter()
            .filter(|(_, settings)| settings.alarms.contains(&change.alarm))
            .map(|(service, _)| service.clone())
            .collect();
        if services.is_empty() {
            info!(alarm = %change.alarm, "no service is gated by this alarm");
        }
        let mut holders = Vec::new();
        for service in services {
            let Some(holder) = self.locks.load(&service).await?.and_then(|(lock, _)| lock.holder) else { continue };
            holders.push(ReleaseKey::new(service, holder.release));
        }
        if holders.is_empty() {
            return Ok(Vec::new());
        }
        let confirmed = self.alarms_in_alarm(std::slice::from_ref(&change.alarm)).await?.into_iter().next();
        let mut reports = Vec::new();
        for key in holders {
            let Some(status) = &confirmed else {
                warn!(release = %key, alarm = %change.alarm, "unconfirmed: CloudWatch does not say this alarm is in ALARM; nothing changes");
                continue;
            };
            let raised = self.raise_alarm(outbox, &key, &status.name, &status.reason, status.since, "event", now);
            reports.extend(raised.instrument(release_span(&key)).await?);
        }
        Ok(reports)
    }

    /// The reconciler's look, for an event that was lost: a gated release whose alarm is in
    /// ALARM rolls back.
    pub(super) async fn recheck_alarms(
        &self,
        outbox: &Outbox,
        release: &Release,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        if !matches!(release.state, State::AwaitingApproval { .. } | State::ShiftingTraffic { .. }) {
            return Ok(None);
        }
        let watched = release.alarms.as_ref().map(|gate| gate.watched.clone()).unwrap_or_default();
        let Some(alarm) = self.alarms_in_alarm(&watched).await?.into_iter().next() else { return Ok(None) };
        warn!(alarm = %alarm.name, "an alarm is in ALARM without Convoy hearing of it");
        self.raise_alarm(outbox, &release.key, &alarm.name, &alarm.reason, alarm.since, "reconciler", now).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn raise_alarm(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        alarm: &str,
        reason: &str,
        since: Option<DateTime<Utc>>,
        via: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let event = approval::Event::AlarmRaised {
            alarm: alarm.to_owned(),
            reason: reason.to_owned(),
            since,
            via: via.to_owned(),
            at: now,
        };
        let outcome = self.transition(outbox, key, None, &event).await?;
        Ok(outcome.map(|o| o.report()))
    }
}
