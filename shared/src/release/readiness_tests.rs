use super::test_support::{APP, apply, changed, key, t, unchanged};
use super::*;
use crate::manifest::{self, Manifest};

const NGINX: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/nginx:r1";

fn source(version: &str) -> ManifestSource {
    ManifestSource {
        bucket: "state".into(),
        key: "releases/web/r1.json".into(),
        version_id: Some(version.into()),
        etag: None,
    }
}

fn manifest(migration: bool) -> Manifest {
    let migration = if migration { r#", "migration": {"container": "app", "command": ["migrate"]}"# } else { "" };
    let text = format!(
        r#"{{"version": 1, "release": "r1", "service": "web", "images": {{"app": "{APP}", "nginx": "{NGINX}"}}{migration}}}"#
    );
    manifest::parse(text.as_bytes(), &key()).unwrap()
}

fn collecting(migration: bool) -> Release {
    Release::open(key(), source("v1"), manifest(migration), t(0))
}

fn image(repository: &str) -> ImageKey {
    ImageKey::tagged("123456789012".parse().unwrap(), repository.parse().unwrap(), "r1".parse().unwrap())
}

fn digest(n: u8) -> Digest {
    Digest::new(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
}

fn found(repository: &str, n: u8, at: i64) -> readiness::Event {
    readiness::Event::ImageFound { image: image(repository), digest: digest(n), at: t(at), via: Sighting::PushEvent }
}

#[test]
fn a_new_release_collects_and_asks_to_resolve_every_image() {
    let release = Release::open(key(), source("v1"), manifest(true), t(0));
    assert_eq!(release.state, State::Collecting);
    assert_eq!(release.pending_work(), vec![Effect::ResolveImages { images: vec![image("app"), image("nginx")] }]);
    assert_eq!(release.timeline[0].event, "manifest-accepted");
}

#[test]
fn a_failed_release_asks_for_no_more_work() {
    let release = Release::rejected(key(), source("v1"), "bad".into(), t(0));
    assert!(release.pending_work().is_empty());
}

#[test]
fn pinning_an_image_narrows_the_lookup_to_the_images_still_awaited() {
    let (release, _) = apply(&collecting(true), found("app", 1, 5));
    assert_eq!(release.pending_work(), vec![Effect::ResolveImages { images: vec![image("nginx")] }]);
}

#[test]
fn the_first_image_pins_its_digest_and_keeps_collecting() {
    let (release, effects) = apply(&collecting(true), found("app", 1, 5));
    assert_eq!(release.state, State::Collecting);
    assert!(effects.is_empty());
    assert_eq!(release.images[&"app".parse().unwrap()].digest, Some(digest(1)));
    assert_eq!(release.timeline.last().unwrap().event, "image-pinned");
}

#[test]
fn the_last_image_makes_the_release_ready_for_its_migration() {
    let (release, _) = apply(&collecting(true), found("app", 1, 5));
    let (release, effects) = apply(&release, found("nginx", 2, 6));
    assert_eq!(release.state, State::Ready { next: Stage::Migration });
    assert_eq!(effects, vec![Effect::StartMigration]);
    assert_eq!(release.timeline.last().unwrap().event, "ready");
}

#[test]
fn a_release_without_migration_is_ready_for_deployment() {
    let (release, _) = apply(&collecting(false), found("app", 1, 5));
    let (release, effects) = apply(&release, found("nginx", 2, 6));
    assert_eq!(release.state, State::Ready { next: Stage::Deployment });
    assert_eq!(effects, vec![Effect::StartDeployment]);
}

#[test]
fn a_duplicate_push_changes_nothing() {
    let (release, _) = apply(&collecting(true), found("app", 1, 5));
    assert!(matches!(release.apply(&found("app", 1, 5)).unwrap(), Decision::Unchanged { .. }));
}

#[test]
fn a_duplicate_of_the_last_push_does_not_make_the_release_ready_twice() {
    let (release, _) = apply(&collecting(true), found("app", 1, 5));
    let (ready, _) = apply(&release, found("nginx", 2, 6));
    assert!(matches!(ready.apply(&found("nginx", 2, 6)).unwrap(), Decision::Unchanged { .. }));
}

#[test]
fn a_tag_pushed_again_after_readiness_keeps_the_pinned_digest() {
    let (release, _) = apply(&collecting(true), found("app", 1, 5));
    let (ready, _) = apply(&release, found("nginx", 2, 6));
    let Decision::Unchanged { why } = ready.apply(&found("app", 9, 60)).unwrap() else { panic!("must not change") };
    assert!(why.contains("keeps its pinned digest"), "{why}");
}

#[test]
fn a_newer_push_of_a_tag_before_readiness_re_pins_it() {
    let (release, _) = apply(&collecting(true), found("app", 1, 5));
    let (release, _) = apply(&release, found("app", 3, 7));
    assert_eq!(release.images[&"app".parse().unwrap()].digest, Some(digest(3)));
    assert_eq!(release.timeline.last().unwrap().event, "image-repinned");
}

#[test]
fn an_older_push_arriving_late_does_not_undo_a_newer_one() {
    let (release, _) = apply(&collecting(true), found("app", 3, 7));
    assert!(matches!(release.apply(&found("app", 1, 5)).unwrap(), Decision::Unchanged { .. }));
}

#[test]
fn two_pushes_of_a_tag_within_one_second_unpin_it_and_ask_ecr() {
    let (release, _) = apply(&collecting(true), found("app", 1, 5));
    let (release, effects) = apply(&release, found("app", 2, 5));
    let app = &release.images[&"app".parse().unwrap()];
    assert_eq!(app.digest, None, "neither push is known to be the last");
    assert_eq!(effects, vec![Effect::ResolveImages { images: vec![image("app")] }]);
    let entry = release.timeline.last().unwrap();
    assert_eq!(entry.event, "image-unordered");
    assert!(entry.detail.contains("same second"), "{}", entry.detail);
}

#[test]
fn a_replayed_push_from_the_unordered_second_does_not_pin_again() {
    let (release, _) = apply(&collecting(false), found("app", 1, 5));
    let (release, _) = apply(&release, found("app", 2, 5));
    let (release, _) = apply(&release, found("nginx", 9, 1));
    for replay in [found("app", 1, 5), found("app", 2, 5), found("app", 1, 4)] {
        assert!(matches!(release.apply(&replay).unwrap(), Decision::Unchanged { .. }));
    }
    assert_eq!(release.state, State::Collecting, "the release waits for ECR's answer");
}

#[test]
fn ecrs_answer_pins_an_unordered_tag_and_can_make_the_release_ready() {
    let (release, _) = apply(&collecting(false), found("app", 1, 5));
    let (release, _) = apply(&release, found("app", 2, 5));
    let (release, _) = apply(&release, found("nginx", 9, 1));
    let lookup = readiness::Event::ImageFound {
        image: image("app"),
        digest: digest(2),
        at: t(6),
        via: Sighting::RegistryLookup,
    };
    let (release, effects) = apply(&release, lookup);
    assert_eq!(release.images[&"app".parse().unwrap()].digest, Some(digest(2)));
    assert_eq!(release.state, State::Ready { next: Stage::Deployment });
    assert_eq!(effects, vec![Effect::StartDeployment]);
}

#[test]
fn a_later_push_pins_an_unordered_tag_too() {
    let (release, _) = apply(&collecting(true), found("app", 1, 5));
    let (release, _) = apply(&release, found("app", 2, 5));
    let (release, _) = apply(&release, found("app", 3, 6));
    assert_eq!(release.images[&"app".parse().unwrap()].digest, Some(digest(3)));
}

#[test]
fn an_image_the_release_does_not_name_is_a_typed_error() {
    let err = collecting(true).apply(&found("worker", 1, 5)).unwrap_err();
    assert!(matches!(err, TransitionError::ImageNotInRelease { .. }));
}

#[test]
fn a_container_sharing_an_image_with_another_is_pinned_by_the_same_push() {
    let text = format!(
        r#"{{"version": 1, "release": "r1", "service": "web", "images": {{"app": "{APP}", "worker": "{APP}"}}}}"#
    );
    let release = Release::open(key(), source("v1"), manifest::parse(text.as_bytes(), &key()).unwrap(), t(0));
    let (release, effects) = apply(&release, found("app", 1, 5));
    assert_eq!(release.state, State::Ready { next: Stage::Deployment });
    assert_eq!(effects, vec![Effect::StartDeployment]);
}

#[test]
fn a_rejected_manifest_fails_the_release_with_its_reason() {
    let release = Release::rejected(key(), source("v1"), "the manifest names no images".into(), t(0));
    assert_eq!(release.state, State::Failed { stage: Stage::Manifest, reason: "the manifest names no images".into() });
    assert_eq!(release.timeline[0].event, "manifest-rejected");
}

#[test]
fn an_image_found_for_a_failed_release_changes_nothing() {
    let mut release = collecting(true);
    release.state = State::Failed { stage: Stage::Migration, reason: "exit 1".into() };
    assert!(matches!(release.apply(&found("app", 1, 5)).unwrap(), Decision::Unchanged { .. }));
}

#[test]
fn the_same_manifest_upload_delivered_twice_changes_nothing() {
    let event = readiness::Event::ManifestUploaded {
        source: source("v1"),
        outcome: Ok(manifest(true).into()),
        drift: Vec::new(),
        at: t(1),
    };
    assert!(matches!(collecting(true).apply(&event).unwrap(), Decision::Unchanged { .. }));
}

#[test]
fn a_new_manifest_version_for_an_accepted_release_is_recorded_and_ignored() {
    let event = readiness::Event::ManifestUploaded {
        source: source("v2"),
        outcome: Ok(manifest(false).into()),
        drift: Vec::new(),
        at: t(1),
    };
    let (release, effects) = apply(&collecting(true), event.clone());
    assert!(effects.is_empty());
    assert_eq!(release.source, source("v1"));
    assert!(release.manifest.as_ref().unwrap().migration.is_some());
    assert_eq!(release.timeline.last().unwrap().event, "manifest-ignored");
    assert!(matches!(release.apply(&event).unwrap(), Decision::Unchanged { .. }), "ignored once, not every retry");
}

#[test]
fn a_fixed_manifest_reopens_a_release_whose_manifest_was_rejected() {
    let rejected = Release::rejected(key(), source("v1"), "bad".into(), t(0));
    let event = readiness::Event::ManifestUploaded {
        source: source("v2"),
        outcome: Ok(manifest(true).into()),
        drift: Vec::new(),
        at: t(1),
    };
    let (release, effects) = apply(&rejected, event);
    assert_eq!(release.state, State::Collecting);
    assert_eq!(release.source, source("v2"));
    assert!(matches!(effects.as_slice(), [Effect::ResolveImages { .. }]));
    assert_eq!(release.timeline.len(), 2, "the rejection stays in the history");
}

#[test]
fn unversioned_uploads_are_told_apart_by_etag() {
    let a = ManifestSource { version_id: None, etag: Some("\"a\"".into()), ..source("x") };
    let b = ManifestSource { version_id: None, etag: Some("\"b\"".into()), ..source("x") };
    assert!(a.same_upload(&a.clone()));
    assert!(!a.same_upload(&b));
}

#[test]
fn a_record_survives_a_json_round_trip() {
    let (release, _) = apply(&collecting(true), found("app", 1, 5));
    let json = serde_json::to_string(&release).unwrap();
    assert_eq!(serde_json::from_str::<Release>(&json).unwrap(), release);
}

#[test]
fn the_state_is_stored_with_a_readable_name() {
    let json = serde_json::to_value(State::Ready { next: Stage::Migration }).unwrap();
    assert_eq!(json, serde_json::json!({"name": "Ready", "next": "migration"}));
}

#[test]
fn ecrs_answer_outranks_the_unordered_second_even_from_a_clock_behind_eventbridges() {
    let (release, _) = apply(&collecting(true), found("app", 1, 5));
    let (release, _) = apply(&release, found("app", 2, 5));
    let lookup = readiness::Event::ImageFound {
        image: image("app"),
        digest: digest(2),
        at: t(4),
        via: Sighting::RegistryLookup,
    };
    let (release, _) = apply(&release, lookup);
    assert!(matches!(release.apply(&found("app", 1, 5)).unwrap(), Decision::Unchanged { .. }));
    assert_eq!(release.images[&"app".parse().unwrap()].digest, Some(digest(2)));
}

fn hour() -> chrono::Duration {
    chrono::Duration::hours(1)
}

fn overdue(missing: Vec<(ImageKey, Absence)>, at: i64) -> readiness::Event {
    readiness::Event::ImagesOverdue { missing, deadline: hour(), at: t(at) }
}

fn failed_reason(release: &Release) -> &str {
    match &release.state {
        State::Failed { stage: Stage::Images, reason } => reason,
        other => panic!("expected Failed at images, got {other}"),
    }
}

#[test]
fn a_release_still_collecting_before_its_deadline_keeps_collecting() {
    let decision = collecting(true).apply(&overdue(vec![(image("app"), Absence::TagAbsent)], 3599)).unwrap();
    let Decision::Unchanged { why } = decision else { panic!("must not change before the deadline") };
    assert!(why.contains("have until"), "{why}");
}

#[test]
fn a_release_still_collecting_at_its_deadline_fails_at_images() {
    let missing = vec![(image("app"), Absence::TagAbsent), (image("nginx"), Absence::RepositoryUnknown)];
    let (release, _) = apply(&collecting(true), overdue(missing, 3600));
    assert!(failed_reason(&release).contains("deadline 3600s"), "{}", failed_reason(&release));
    assert_eq!(release.timeline.last().unwrap().event, "images-overdue");
}

#[test]
fn the_reason_names_each_missing_image_with_why() {
    let denied = Absence::AccessDenied { detail: "not authorized to perform ecr:BatchGetImage".into() };
    let (release, _) =
        apply(&collecting(true), overdue(vec![(image("app"), Absence::TagAbsent), (image("nginx"), denied)], 4000));
    let reason = failed_reason(&release);
    assert!(reason.contains(&format!("\"app\" \"{APP}\": tag absent (ECR: ImageNotFound)")), "{reason}");
    assert!(reason.contains(&format!("\"nginx\" \"{NGINX}\": access denied, registry not readable")), "{reason}");
    assert!(reason.contains("ecr:BatchGetImage"), "ECR's message is kept: {reason}");
}

#[test]
fn an_unknown_repository_is_named_as_such() {
    let (release, _) = apply(&collecting(true), overdue(vec![(image("nginx"), Absence::RepositoryUnknown)], 3600));
    assert!(failed_reason(&release).contains("repository unknown (ECR: RepositoryNotFoundException)"));
}

#[test]
fn an_image_already_pinned_is_not_named_missing() {
    let (release, _) = apply(&collecting(true), found("app", 1, 5));
    let (release, _) = apply(&release, overdue(vec![(image("nginx"), Absence::TagAbsent)], 3600));
    let reason = failed_reason(&release);
    assert!(reason.contains("\"nginx\""), "{reason}");
    assert!(!reason.contains("\"app\""), "{reason}");
}

#[test]
fn an_image_found_in_the_same_look_up_as_the_deadline_makes_the_release_ready_instead() {
    let events = [
        readiness::Event::ImageFound {
            image: image("app"),
            digest: digest(1),
            at: t(3600),
            via: Sighting::RegistryLookup,
        },
        readiness::Event::ImageFound {
            image: image("nginx"),
            digest: digest(2),
            at: t(3600),
            via: Sighting::RegistryLookup,
        },
        overdue(Vec::new(), 3600),
    ];
    let (release, _) = changed(collecting(true).apply_all(&events).unwrap());
    assert_eq!(release.state, State::Ready { next: Stage::Migration });
}

#[test]
fn a_long_access_denied_message_is_quoted_only_in_part() {
    let denied = Absence::AccessDenied { detail: "x".repeat(2000) };
    let (release, _) = apply(&collecting(true), overdue(vec![(image("app"), denied)], 3600));
    let reason = failed_reason(&release);
    assert!(reason.contains("(2000 characters)"), "{reason}");
    assert!(reason.len() < 600, "{} characters", reason.len());
}

#[test]
fn failing_at_images_asks_to_forget_every_wait_list_entry_of_the_release() {
    let (_, effects) = apply(&collecting(true), overdue(Vec::new(), 3600));
    assert_eq!(effects, vec![Effect::ForgetWaits { images: vec![image("app"), image("nginx")] }]);
}

#[test]
fn the_deadline_counts_from_a_fixed_manifest_that_reopened_the_release() {
    let rejected = Release::rejected(key(), source("v1"), "bad".into(), t(0));
    let (reopened, _) = apply(
        &rejected,
        readiness::Event::ManifestUploaded {
            source: source("v2"),
            outcome: Ok(manifest(true).into()),
            drift: Vec::new(),
            at: t(3000),
        },
    );
    assert!(unchanged(reopened.apply(&overdue(Vec::new(), 3601)).unwrap()), "the reopened release has until 6600");
    assert!(!unchanged(reopened.apply(&overdue(Vec::new(), 6600)).unwrap()));
}

#[test]
fn a_second_deadline_look_up_after_the_failure_changes_nothing() {
    let (failed, _) = apply(&collecting(true), overdue(Vec::new(), 3600));
    assert!(unchanged(failed.apply(&overdue(Vec::new(), 3720)).unwrap()));
}

#[test]
fn a_late_push_after_the_failure_changes_nothing() {
    let (failed, _) = apply(&collecting(true), overdue(Vec::new(), 3600));
    let Decision::Unchanged { why } = failed.apply(&found("app", 1, 3700)).unwrap() else { panic!("must not change") };
    assert!(why.contains("the release ended"), "{why}");
}

#[test]
fn a_release_past_collecting_ignores_the_deadline() {
    let (release, _) = apply(&collecting(true), found("app", 1, 5));
    let (ready, _) = apply(&release, found("nginx", 2, 6));
    assert!(unchanged(ready.apply(&overdue(Vec::new(), 99_999)).unwrap()));
}

#[test]
fn each_ignored_upload_is_named_in_the_record_by_its_location_and_version_once() {
    let upload = |version: &str, at: i64| readiness::Event::ManifestUploaded {
        source: source(version),
        outcome: Ok(manifest(true).into()),
        drift: Vec::new(),
        at: t(at),
    };
    let (once, _) = apply(&collecting(true), upload("v2", 1));
    let detail = &once.timeline.last().unwrap().detail;
    let named = "s3://state/releases/web/r1.json (version v2): the release already has its manifest \
                 (s3://state/releases/web/r1.json (version v1))";
    assert!(detail.starts_with(named), "{detail}");
    assert!(unchanged(once.apply(&upload("v2", 2)).unwrap()), "the same upload again");
    let (twice, _) = apply(&once, upload("v3", 3));
    let detail = &twice.timeline.last().unwrap().detail;
    assert!(detail.starts_with("s3://state/releases/web/r1.json (version v3): "), "another upload: {detail}");
}
