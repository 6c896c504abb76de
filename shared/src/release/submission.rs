//! Who submitted the release ([`crate::submitter`]): the record says it at creation (looking in
//! the trail Convoy was given, or unknown without one), and the reconciler settles it once from
//! the trail's log files. These events apply in any state, a terminal one too (the files arrive
//! minutes after the upload, when a release may have ended), change nothing but the record's
//! `submitter` and its timeline, and only a record still looking takes them.

use chrono::{DateTime, Utc};

use super::{Context, Decision, Release, StageEvent, TransitionError};
use crate::submitter::{Submitter, Uploader};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The trail does not log the write (off, another region, no data events for the object).
    NotLogged { reason: String, at: DateTime<Utc> },
    /// A delivered log file holds the write's record.
    Found { uploader: Uploader, at: DateTime<Utc> },
    /// The files delivered so far hold no record of the write: past the window, it is not found.
    NotYetFound { at: DateTime<Utc> },
}

impl StageEvent for Event {
    fn apply_to(&self, release: &Release, _: &Context) -> Result<Decision, TransitionError> {
        let Some(Submitter::Looking { trail, until }) = &release.submitter else {
            return Ok(Decision::unchanged("who submitted the release is settled already"));
        };
        let mut next = release.clone();
        match self {
            Event::NotLogged { reason, at } => {
                next.record(*at, "submitter-unknown", reason.clone());
                next.submitter = Some(Submitter::Unknown { reason: reason.clone() });
            }
            Event::Found { uploader, at } => {
                next.record(*at, "submitted-by", uploader.describe());
                next.submitter = Some(Submitter::Found(uploader.clone()));
            }
            Event::NotYetFound { at } if at < until => {
                return Ok(Decision::unchanged(format!("the upload is not in trail {trail}'s log files yet")));
            }
            Event::NotYetFound { at } => {
                let reason = format!(
                    "trail {trail} logs writes to {}, but no log file it delivered by {} holds this upload's",
                    release.source.describe(),
                    until.format("%Y-%m-%d %H:%M UTC")
                );
                next.record(*at, "submitter-not-found", reason.clone());
                next.submitter = Some(Submitter::NotFound { trail: trail.clone(), reason });
            }
        }
        Ok(Decision::changed(next, Vec::new()))
    }
}

impl Release {
    /// The trail to look in, while the record does not yet say who submitted the release.
    pub fn submitter_wanted(&self) -> Option<&str> {
        match &self.submitter {
            Some(Submitter::Looking { trail, .. }) => Some(trail),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::release::test_support::ready;
    use crate::release::{Decision, State};

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    fn looking() -> Release {
        let mut release = ready(false);
        release.submitter = Some(Submitter::at_creation(Some("audit"), at(0)));
        release
    }

    fn uploader() -> Uploader {
        Uploader {
            principal_arn: "arn:aws:sts::123456789012:assumed-role/ci/run-7".into(),
            session_name: Some("run-7".into()),
            source_ip: None,
            operation: "s3:PutObject".into(),
            event_id: "e-1".into(),
            event_time: at(0),
            log_file: "s3://audit-logs/AWSLogs/k.json.gz".into(),
            trail: "arn:aws:cloudtrail:us-east-1:123456789012:trail/audit".into(),
        }
    }

    fn changed(decision: Decision) -> Release {
        match decision {
            Decision::Changed { release, effects, .. } => {
                assert!(effects.is_empty(), "who submitted asks for no effect: {effects:?}");
                *release
            }
            Decision::Unchanged { why } => panic!("unchanged: {why}"),
        }
    }

    #[test]
    fn the_write_found_names_the_submitter_once_in_any_state_and_nothing_else_changes() {
        let mut ended = looking();
        ended.state = State::Succeeded;
        let found = Event::Found { uploader: uploader(), at: at(6) };
        let after = changed(ended.apply(&found).unwrap());
        assert_eq!(after.state, State::Succeeded);
        assert_eq!(after.submitter, Some(Submitter::Found(uploader())));
        assert_eq!(after.submitter_wanted(), None);
        let entry = after.timeline.last().unwrap();
        assert_eq!((entry.event.as_str(), entry.at), ("submitted-by", at(6)));
        assert!(entry.detail.starts_with("arn:aws:sts::123456789012:assumed-role/ci/run-7 (s3:PutObject"));
        let mut without = after.clone();
        without.submitter = ended.submitter.clone();
        without.timeline.pop();
        assert_eq!(without, ended, "only the submitter and one timeline entry changed");
        // Again, or another record later: settled.
        assert!(matches!(after.apply(&found).unwrap(), Decision::Unchanged { .. }));
        let other = Event::Found { uploader: Uploader { event_id: "e-2".into(), ..uploader() }, at: at(7) };
        assert!(matches!(after.apply(&other).unwrap(), Decision::Unchanged { .. }));
    }

    #[test]
    fn not_found_only_once_the_window_is_over_and_a_trail_that_logs_no_write_says_so() {
        let release = looking();
        assert_eq!(release.submitter_wanted(), Some("audit"));
        assert!(matches!(release.apply(&Event::NotYetFound { at: at(59) }).unwrap(), Decision::Unchanged { .. }));
        let over = changed(release.apply(&Event::NotYetFound { at: at(60) }).unwrap());
        let Some(Submitter::NotFound { trail, reason }) = &over.submitter else { panic!("{:?}", over.submitter) };
        assert_eq!(trail, "audit");
        assert!(reason.contains("no log file it delivered by 2026-12-07 11:00 UTC"), "{reason}");
        assert_eq!(over.timeline.last().unwrap().event, "submitter-not-found");
        let reason = "no data-event trail: trail t is not logging".to_owned();
        let unknown = changed(release.apply(&Event::NotLogged { reason: reason.clone(), at: at(1) }).unwrap());
        assert_eq!(unknown.submitter, Some(Submitter::Unknown { reason }));
        assert!(matches!(
            unknown.apply(&Event::Found { uploader: uploader(), at: at(2) }).unwrap(),
            Decision::Unchanged { .. }
        ));
    }

    #[test]
    fn a_record_without_a_trail_or_from_before_the_check_takes_no_submitter_event() {
        let mut unknown = looking();
        unknown.submitter = Some(Submitter::at_creation(None, at(0)));
        let mut older = looking();
        older.submitter = None;
        for release in [unknown, older] {
            assert_eq!(release.submitter_wanted(), None);
            let found = Event::Found { uploader: uploader(), at: at(1) };
            assert!(matches!(release.apply(&found).unwrap(), Decision::Unchanged { .. }));
        }
    }

    #[test]
    fn a_new_upload_of_a_refused_manifest_is_looked_for_again_in_the_same_trail() {
        let found = Submitter::Found(uploader());
        assert_eq!(found.for_new_upload(at(30)), Submitter::Looking { trail: uploader().trail, until: at(90) });
        let not_found = Submitter::NotFound { trail: "audit".into(), reason: "none".into() };
        let looking = Submitter::Looking { trail: "audit".into(), until: at(90) };
        assert_eq!(not_found.for_new_upload(at(30)), looking);
        assert_eq!(Submitter::at_creation(Some("audit"), at(0)).for_new_upload(at(30)), looking);
        let unknown = Submitter::at_creation(None, at(0));
        assert_eq!(unknown.for_new_upload(at(30)), unknown);
    }
}
