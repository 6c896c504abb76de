use super::test_support::{changed, opened_with_its_image_found, t, unchanged};
use super::*;
use crate::image_policy::ImageEvidence;

fn gated() -> Context {
    Context { migration: None, gate: true }
}

/// A one-image release with a migration, its image just pinned under a gating context.
fn gating() -> Release {
    let (release, event) = opened_with_its_image_found(true);
    let (release, effects) = changed(event.apply_to(&release, &gated()).unwrap());
    assert_eq!(release.state, State::Gating { next: Stage::Migration });
    assert_eq!(effects, vec![Effect::JudgeImages]);
    release
}

fn evidence(problems: &[&str], waiting: Option<&str>) -> ImageEvidence {
    ImageEvidence {
        container: "app".into(),
        image: "app@sha256:aa".into(),
        scan: if waiting.is_some() { "IN_PROGRESS".into() } else { "COMPLETE".into() },
        scanned_at: None,
        by_severity: Default::default(),
        failing: Vec::new(),
        allowed: Vec::new(),
        signatures: Vec::new(),
        problems: problems.iter().map(|p| p.to_string()).collect(),
        waiting: waiting.map(str::to_owned),
        note: None,
    }
}

fn judged(images: Vec<ImageEvidence>, at: i64) -> gate::Event {
    gate::Event::Judged { images, wait: chrono::Duration::seconds(60), at: t(at) }
}

#[test]
fn the_last_pinned_image_without_an_image_policy_readies_the_release_and_records_no_image_policy() {
    let release = super::test_support::ready(true);
    assert_eq!(release.state, State::Ready { next: Stage::Migration });
    assert_eq!(release.gate.unwrap().verdict, NO_POLICY);
}

#[test]
fn a_failing_image_fails_the_release_at_the_gate_naming_the_image_and_the_finding() {
    let (release, effects) = changed(gating().apply(&judged(vec![evidence(&["CVE-1 CRITICAL"], None)], 2)).unwrap());
    let State::Failed { stage: Stage::Gate, reason } = &release.state else { panic!("{:?}", release.state) };
    assert!(reason.contains("app (app@sha256:aa): CVE-1 CRITICAL"), "{reason}");
    assert!(effects.is_empty(), "nothing runs: {effects:?}");
}

#[test]
fn a_passing_gate_readies_the_release_and_claims_its_migration_in_the_same_write() {
    let context = Context {
        migration: Some(MigrationClaim {
            lease: chrono::Duration::seconds(90),
            timeout: chrono::Duration::seconds(600),
        }),
        gate: true,
    };
    let (release, effects) = changed(judged(vec![evidence(&[], None)], 2).apply_to(&gating(), &context).unwrap());
    assert_eq!(release.state, State::StartingMigration);
    assert_eq!(effects, vec![Effect::StartMigration]);
    assert_eq!(release.gate.unwrap().verdict, "passed");
}

#[test]
fn a_scan_in_progress_waits_once_then_fails_after_the_wait() {
    let (waiting, effects) =
        changed(gating().apply(&judged(vec![evidence(&[], Some("scan IN_PROGRESS"))], 2)).unwrap());
    assert_eq!(waiting.state, State::Gating { next: Stage::Migration });
    assert!(effects.is_empty());
    assert!(unchanged(waiting.apply(&judged(vec![evidence(&[], Some("scan IN_PROGRESS"))], 3)).unwrap()));
    let (late, _) = changed(waiting.apply(&judged(vec![evidence(&[], Some("scan IN_PROGRESS"))], 61)).unwrap());
    let State::Failed { stage: Stage::Gate, reason } = &late.state else { panic!("{:?}", late.state) };
    assert!(reason.contains("scan IN_PROGRESS after 60 s"), "{reason}");
}

#[test]
fn a_judgement_replayed_after_the_gate_passed_changes_nothing() {
    let (passed, _) = changed(gating().apply(&judged(vec![evidence(&[], None)], 2)).unwrap());
    assert!(unchanged(passed.apply(&judged(vec![evidence(&[], None)], 3)).unwrap()));
}

#[test]
fn a_failed_or_waiting_gate_records_that_verdict_with_the_evidence_it_judged() {
    let (failed, _) = changed(gating().apply(&judged(vec![evidence(&["CVE-1 CRITICAL"], None)], 2)).unwrap());
    let gate = failed.gate.unwrap();
    assert_eq!((gate.verdict.as_str(), gate.judged_at, gate.images.len()), ("failed", Some(t(2)), 1));
    let (waiting, _) = changed(gating().apply(&judged(vec![evidence(&[], Some("scan IN_PROGRESS"))], 2)).unwrap());
    let gate = waiting.gate.unwrap();
    assert_eq!((gate.verdict.as_str(), gate.judged_at, gate.images.len()), ("waiting", Some(t(2)), 1));
}
