//! The gates beyond the probes: metric checks recorded beside the probes, and alarms that roll a
//! verified release back while it awaits approval, bakes, or shifts traffic (which, for
//! CodeDeploy, lasts until the blue tasks are terminated after the deployment group's wait).

use chrono::{DateTime, Utc};

use super::{Decision, Effect, Release, State};
use crate::gates::{AlarmRecord, MetricResult};

impl Release {
    pub(super) fn on_metrics_checked(&self, results: &[MetricResult], at: DateTime<Utc>) -> Decision {
        let (State::Verifying { .. }, Some(verification)) = (&self.state, &self.verification) else {
            return Decision::unchanged(format!("no verification runs: the release is {}", self.state));
        };
        if verification.outcome.is_some() || results.is_empty() || verification.metrics == results {
            return Decision::unchanged("these metric checks are recorded already");
        }
        let mut next = self.clone();
        let Some(recorded) = next.verification.as_mut() else { return Decision::inconsistent(self, "a verification") };
        recorded.metrics = results.to_vec();
        let failed = results.iter().filter(|r| !r.passed).count();
        next.record(
            at,
            "metrics-checked",
            format!("{} of {} metric checks passed", results.len() - failed, results.len()),
        );
        Decision::Changed { release: Box::new(next), effects: Vec::new() }
    }

    /// An alarm in ALARM while the traffic shift is gated: the deployment rolls back, once.
    pub(super) fn on_alarm_raised(
        &self,
        alarm: &str,
        reason: &str,
        since: Option<DateTime<Utc>>,
        via: &str,
        at: DateTime<Utc>,
    ) -> Decision {
        let deployment = match &self.state {
            State::AwaitingApproval { deployment } | State::ShiftingTraffic { deployment } => deployment.clone(),
            _ => return Decision::unchanged(format!("alarm {alarm} gates nothing now: the release is {}", self.state)),
        };
        let watched = self.alarms.as_ref().is_some_and(|gate| gate.watched.iter().any(|a| a == alarm));
        if !watched {
            return Decision::unchanged(format!("alarm {alarm} does not gate this release"));
        }
        let when = since.unwrap_or(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let stage = if matches!(self.state, State::ShiftingTraffic { .. }) {
            "after the traffic shift"
        } else {
            "before the traffic shift"
        };
        let cause = format!("alarm {alarm} went to ALARM at {when} {stage}: {reason}");
        let mut next = self.clone();
        let gate = next.alarms.get_or_insert_with(Default::default);
        gate.fired.push(AlarmRecord {
            alarm: alarm.to_owned(),
            state: "ALARM".into(),
            reason: reason.to_owned(),
            since,
            via: via.to_owned(),
            action: "rolled back".into(),
            at,
        });
        next.state = State::RollingBack { deployment: deployment.clone(), reason: cause.clone() };
        next.record(at, "alarm", format!("{cause} (via {via}); the deployment rolls back"));
        Decision::Changed { release: Box::new(next), effects: vec![Effect::RollBack { deployment }] }
    }
}
