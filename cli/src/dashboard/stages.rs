//! The stages of a release as the dashboard draws them, derived from the record's timeline alone.
//! Pure: the record and "now" in, the stages out.

use chrono::{DateTime, Utc};
use convoy::release::{Release, State};

/// A stage of a release's life, in the order a release goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageKind {
    Collecting,
    Migration,
    Queued,
    Deployment,
    Verification,
    ApprovalWait,
    Shift,
    Rollback,
}

impl StageKind {
    pub fn label(self) -> &'static str {
        match self {
            StageKind::Collecting => "collecting",
            StageKind::Migration => "migration",
            StageKind::Queued => "queued",
            StageKind::Deployment => "deployment",
            StageKind::Verification => "verification",
            StageKind::ApprovalWait => "approval wait",
            StageKind::Shift => "shift",
            StageKind::Rollback => "rollback",
        }
    }
}

/// How a stage went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still under way at `now`.
    Running,
    Done,
    /// The failure point: the event that ended the stage, and its detail.
    Failed {
        event: String,
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSpan {
    pub kind: StageKind,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub outcome: Outcome,
}

impl StageSpan {
    pub fn duration(&self) -> chrono::Duration {
        self.end - self.start
    }
}

struct Open {
    kind: StageKind,
    start: DateTime<Utc>,
}

/// The stages of `release`, one per stage it entered, in order. A stage still open ends at `now`
/// (running) unless the release ended; a failure ends the stage it happened in.
pub fn stages(release: &Release, now: DateTime<Utc>) -> Vec<StageSpan> {
    let mut spans = Vec::new();
    let mut open: Option<Open> = None;
    let close = |spans: &mut Vec<StageSpan>, open: &mut Option<Open>, at: DateTime<Utc>, outcome: Outcome| {
        if let Some(stage) = open.take() {
            spans.push(StageSpan { kind: stage.kind, start: stage.start, end: at.max(stage.start), outcome });
        }
    };
    let start = |spans: &mut Vec<StageSpan>, open: &mut Option<Open>, kind: StageKind, at: DateTime<Utc>| {
        if open.as_ref().is_some_and(|o| o.kind == kind) {
            return; // a retried claim: the same stage goes on
        }
        // A stage still open when the next begins (a pipeline adopting its deployment, say) ended.
        if let Some(stage) = open.take() {
            spans.push(StageSpan {
                kind: stage.kind,
                start: stage.start,
                end: at.max(stage.start),
                outcome: Outcome::Done,
            });
        }
        *open = Some(Open { kind, start: at });
    };
    for entry in &release.timeline {
        let at = entry.at;
        let failed = || Outcome::Failed { event: entry.event.clone(), detail: entry.detail.clone() };
        match entry.event.as_str() {
            "manifest-accepted" => start(&mut spans, &mut open, StageKind::Collecting, at),
            "manifest-rejected" => {
                if open.is_none() {
                    open = Some(Open { kind: StageKind::Collecting, start: at });
                }
                close(&mut spans, &mut open, at, failed());
            }
            "ready" => close(&mut spans, &mut open, at, Outcome::Done),
            "images-overdue" => close(&mut spans, &mut open, at, failed()),
            "migration-starting" => start(&mut spans, &mut open, StageKind::Migration, at),
            "migration-succeeded" => close(&mut spans, &mut open, at, Outcome::Done),
            "queued" => start(&mut spans, &mut open, StageKind::Queued, at),
            "deployment-starting" => start(&mut spans, &mut open, StageKind::Deployment, at),
            "verification-started" => start(&mut spans, &mut open, StageKind::Verification, at),
            "verification-passed" => start(&mut spans, &mut open, StageKind::ApprovalWait, at),
            "approved" => start(&mut spans, &mut open, StageKind::Shift, at),
            "rejected" => {
                close(&mut spans, &mut open, at, failed());
                start(&mut spans, &mut open, StageKind::Rollback, at);
            }
            "succeeded" => close(&mut spans, &mut open, at, Outcome::Done),
            "rolled-back" => {
                let outcome = match open.as_ref().map(|o| o.kind) {
                    Some(StageKind::Rollback) => Outcome::Done,
                    _ => failed(),
                };
                close(&mut spans, &mut open, at, outcome);
            }
            "superseded" => close(&mut spans, &mut open, at, Outcome::Done),
            "migration-failed"
            | "migration-timed-out"
            | "migration-impossible"
            | "deployment-impossible"
            | "deployment-failed"
            | "verification-failed" => {
                if open.is_none() {
                    // The failure ended a stage the timeline never saw open: mark it where it fell.
                    let kind = match entry.event.split('-').next() {
                        Some("migration") => StageKind::Migration,
                        Some("verification") => StageKind::Verification,
                        _ => StageKind::Deployment,
                    };
                    open = Some(Open { kind, start: at });
                }
                close(&mut spans, &mut open, at, failed());
            }
            _ => {}
        }
    }
    if let Some(stage) = open.take() {
        let (end, outcome) = match release.state.is_terminal() {
            false => (now, Outcome::Running),
            true => (release.timeline.last().map_or(stage.start, |e| e.at), Outcome::Done),
        };
        spans.push(StageSpan { kind: stage.kind, start: stage.start, end: end.max(stage.start), outcome });
    }
    if let State::Failed { reason, .. } = &release.state
        && !spans.iter().any(|s| matches!(s.outcome, Outcome::Failed { .. }))
        && let Some(last) = spans.last_mut()
    {
        last.outcome = Outcome::Failed { event: "failed".into(), detail: reason.clone() };
    }
    spans
}

/// "4.2 s", "3 min 05 s", "2 h 10 min": a duration as a person reads it.
pub fn human(duration: chrono::Duration) -> String {
    let ms = duration.num_milliseconds().max(0);
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{} min {:02} s", ms / 60_000, (ms / 1000) % 60)
    } else if ms < 86_400_000 {
        format!("{} h {:02} min", ms / 3_600_000, (ms / 60_000) % 60)
    } else {
        format!("{} d {} h", ms / 86_400_000, (ms / 3_600_000) % 24)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
    }

    fn release(state: State, events: &[(i64, &str)]) -> Release {
        let mut value = serde_json::json!({
            "schema": 1,
            "key": {"service": "laravel-app", "release": "4cf03d1"},
            "source": {"bucket": "b", "key": "releases/laravel-app/4cf03d1.json"},
            "images": {},
            "state": {"name": "Collecting"},
            "timeline": [],
        });
        value["timeline"] = events
            .iter()
            .map(|(s, e)| serde_json::json!({"at": t(*s), "event": e, "detail": format!("{e} detail")}))
            .collect();
        let mut release: Release = serde_json::from_value(value).expect("a record");
        release.state = state;
        release
    }

    fn kinds(spans: &[StageSpan]) -> Vec<StageKind> {
        spans.iter().map(|s| s.kind).collect()
    }

    #[test]
    fn a_shipped_release_has_one_stage_each_from_collecting_to_shift() {
        let r = release(
            State::Succeeded,
            &[
                (0, "manifest-accepted"),
                (3, "image-pinned"),
                (5, "ready"),
                (5, "migration-starting"),
                (6, "migration-started"),
                (20, "migration-succeeded"),
                (20, "deployment-starting"),
                (21, "deployment-started"),
                (80, "verification-started"),
                (90, "verification-passed"),
                (400, "approved"),
                (460, "succeeded"),
            ],
        );
        let spans = stages(&r, t(1000));
        use StageKind::*;
        assert_eq!(kinds(&spans), [Collecting, Migration, Deployment, Verification, ApprovalWait, Shift]);
        let seconds: Vec<i64> = spans.iter().map(|s| s.duration().num_seconds()).collect();
        assert_eq!(seconds, [5, 15, 60, 10, 310, 60]);
        assert!(spans.iter().all(|s| s.outcome == Outcome::Done));
    }

    #[test]
    fn a_release_in_flight_has_its_last_stage_running_until_now() {
        let r = release(State::StartingMigration, &[(0, "manifest-accepted"), (5, "ready"), (5, "migration-starting")]);
        let spans = stages(&r, t(65));
        assert_eq!(spans.last().unwrap().outcome, Outcome::Running);
        assert_eq!(spans.last().unwrap().duration().num_seconds(), 60);
    }

    #[test]
    fn a_failed_migration_marks_the_migration_as_the_failure_point() {
        let r = release(
            State::Failed { stage: convoy::release::Stage::Migration, reason: "exit 1".into() },
            &[(0, "manifest-accepted"), (5, "ready"), (5, "migration-starting"), (30, "migration-failed")],
        );
        let spans = stages(&r, t(100));
        assert_eq!(kinds(&spans), [StageKind::Collecting, StageKind::Migration]);
        let Outcome::Failed { event, .. } = &spans[1].outcome else { panic!("{:?}", spans[1]) };
        assert_eq!(event, "migration-failed");
        assert_eq!(spans[1].end, t(30));
    }

    #[test]
    fn a_rejected_release_fails_its_approval_wait_and_then_rolls_back() {
        let r = release(
            State::RolledBack { reason: "rejected".into() },
            &[
                (0, "manifest-accepted"),
                (1, "ready"),
                (1, "deployment-starting"),
                (9, "verification-started"),
                (12, "verification-passed"),
                (40, "rejected"),
                (55, "rolled-back"),
            ],
        );
        let spans = stages(&r, t(100));
        use StageKind::*;
        assert_eq!(kinds(&spans), [Collecting, Deployment, Verification, ApprovalWait, Rollback]);
        assert!(matches!(spans[3].outcome, Outcome::Failed { .. }));
        assert_eq!(spans[4].outcome, Outcome::Done);
    }

    #[test]
    fn a_refused_manifest_is_a_failed_collecting_stage_of_no_length() {
        let r = release(
            State::Failed { stage: convoy::release::Stage::Manifest, reason: "bad".into() },
            &[(0, "manifest-rejected")],
        );
        let spans = stages(&r, t(100));
        assert_eq!(kinds(&spans), [StageKind::Collecting]);
        assert!(matches!(spans[0].outcome, Outcome::Failed { .. }));
        assert_eq!(spans[0].duration(), chrono::Duration::zero());
    }

    #[test]
    fn images_still_missing_at_the_deadline_fail_the_collecting_stage_where_it_ended() {
        let r = release(
            State::Failed { stage: convoy::release::Stage::Images, reason: "missing".into() },
            &[(0, "manifest-accepted"), (3600, "images-overdue")],
        );
        let spans = stages(&r, t(4000));
        assert_eq!(kinds(&spans), [StageKind::Collecting]);
        let Outcome::Failed { event, .. } = &spans[0].outcome else { panic!("{:?}", spans[0]) };
        assert_eq!(event, "images-overdue");
        assert_eq!(spans[0].duration(), chrono::Duration::hours(1));
    }

    #[test]
    fn a_retried_claim_does_not_open_the_stage_twice() {
        let r = release(
            State::StartingDeployment,
            &[(0, "manifest-accepted"), (1, "ready"), (1, "deployment-starting"), (70, "deployment-starting")],
        );
        let spans = stages(&r, t(100));
        assert_eq!(kinds(&spans), [StageKind::Collecting, StageKind::Deployment]);
        assert_eq!(spans[1].start, t(1));
    }

    #[test]
    fn durations_read_as_a_person_says_them() {
        assert_eq!(human(chrono::Duration::milliseconds(420)), "420 ms");
        assert_eq!(human(chrono::Duration::milliseconds(4_250)), "4.2 s");
        assert_eq!(human(chrono::Duration::seconds(185)), "3 min 05 s");
        assert_eq!(human(chrono::Duration::minutes(130)), "2 h 10 min");
    }
}
