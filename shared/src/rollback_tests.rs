//! The confirmation of a rollback claim from records, and the approval window's edge.

use chrono::{TimeZone, Utc};

use super::*;
use crate::manifest::{self, ManifestError};
use crate::names::{Digest, ReleaseKey};
use crate::release::{ManifestSource, Sighting, readiness};

const REPO: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app";

fn digest(n: char) -> String {
    format!("sha256:{}", n.to_string().repeat(64))
}

fn web() -> ServiceName {
    "web".parse().unwrap()
}

fn id(text: &str) -> ReleaseId {
    text.parse().unwrap()
}

/// A record of release `release` of web whose `app` image (tag `release`) ECR pinned to `pinned`.
fn pinned(release: &str, pinned: char, migration: &str) -> Release {
    let key = ReleaseKey::new(web(), id(release));
    let text = format!(
        r#"{{"version": 1, "release": "{release}", "service": "web", "images": {{"app": "{REPO}:{release}"}}{migration}}}"#
    );
    let source = ManifestSource {
        bucket: "b".into(),
        key: format!("releases/web/{release}.json"),
        version_id: None,
        etag: None,
    };
    let opened = Release::open(key.clone(), source, manifest::parse(text.as_bytes(), &key).unwrap(), t(0));
    let image = crate::release::ImageKey::of(&opened.images.values().next().unwrap().image);
    let found = readiness::Event::ImageFound {
        image,
        digest: Digest::new(&digest(pinned)).unwrap(),
        at: t(1),
        via: Sighting::RegistryLookup,
    };
    match opened.apply(&found).unwrap() {
        crate::release::Decision::Changed { release, .. } => *release,
        crate::release::Decision::Unchanged { why } => panic!("{why}"),
    }
}

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
}

fn rollback_manifest(of: &str, to: &str, app: char, extra: &str) -> Result<Manifest, ManifestError> {
    let release = format!("rollback-{to}-1700000000");
    let key = ReleaseKey::new(web(), id(&release));
    let text = format!(
        r#"{{"version": 1, "release": "{release}", "service": "web", "images": {{"app": "{REPO}@{}"}},
            "rollback": {{"of": "{of}", "to": "{to}"{extra}}}}}"#,
        digest(app)
    );
    manifest::parse(text.as_bytes(), &key)
}

fn claim(manifest: &Manifest) -> &RollbackClaim {
    manifest.rollback.as_ref().unwrap()
}

const DOWN: &str = r#", "migration": {"container": "app", "command": ["migrate"], "down": ["migrate", "--down"]}"#;

#[test]
fn a_claim_that_returns_to_a_release_that_went_live_with_its_digests_is_confirmed_and_says_where_the_schema_stays() {
    let (v1, v2) = (pinned("v1", 'a', ""), pinned("v2", 'b', ""));
    let manifest = rollback_manifest("v2", "v1", 'a', "").unwrap();
    let went_live = [id("v1"), id("v2")];
    let live = Live { now: Some(&went_live[1]), since: Some(t(60)), went_live: &went_live };
    let rollback = confirm_service(&web(), &manifest, claim(&manifest), live, Some(&v1), Some(&v2)).unwrap();
    assert_eq!((rollback.of.as_str(), rollback.to.as_str(), rollback.down), ("v2", "v1", None));
    assert_eq!(rollback.schema, "database schema stays where v2 left it (no migration runs)");
}

#[test]
fn a_claim_whose_images_are_not_the_digests_to_pinned_is_refused_naming_both() {
    let (v1, v2) = (pinned("v1", 'a', ""), pinned("v2", 'b', ""));
    // v2's digest under a claim to return to v1.
    let manifest = rollback_manifest("v2", "v1", 'b', "").unwrap();
    let went_live = [id("v1"), id("v2")];
    let live = Live { now: Some(&went_live[1]), since: Some(t(60)), went_live: &went_live };
    let why = confirm_service(&web(), &manifest, claim(&manifest), live, Some(&v1), Some(&v2)).unwrap_err();
    assert!(why.contains("not the digests release \"v1\" pinned"), "{why}");
    assert!(why.contains(&digest('a')[..20]) && why.contains(&digest('b')[..20]), "{why}");
}

#[test]
fn a_claim_to_return_to_a_release_that_never_went_live_is_refused() {
    let (v1, v2) = (pinned("v1", 'a', ""), pinned("v2", 'b', ""));
    let manifest = rollback_manifest("v2", "v1", 'a', "").unwrap();
    let went_live = [id("v2")];
    let live = Live { now: Some(&went_live[0]), since: Some(t(60)), went_live: &went_live };
    let why = confirm_service(&web(), &manifest, claim(&manifest), live, Some(&v1), Some(&v2)).unwrap_err();
    assert!(why.contains("never went live"), "{why}");
    let why = confirm_service(&web(), &manifest, claim(&manifest), live, None, Some(&v2)).unwrap_err();
    assert!(why.contains("has no release \"v1\""), "{why}");
}

#[test]
fn a_claim_to_revert_a_release_that_is_not_live_now_is_refused() {
    let (v1, v2) = (pinned("v1", 'a', ""), pinned("v2", 'b', ""));
    let manifest = rollback_manifest("v2", "v1", 'a', "").unwrap();
    let went_live = [id("v1"), id("v2"), id("v3")];
    let live = Live { now: Some(&went_live[2]), since: Some(t(60)), went_live: &went_live };
    let why = confirm_service(&web(), &manifest, claim(&manifest), live, Some(&v1), Some(&v2)).unwrap_err();
    assert!(why.contains("release v3 is live"), "{why}");
}

#[test]
fn migrate_down_runs_the_reverted_releases_down_command_from_its_own_image() {
    let (v1, v2) = (pinned("v1", 'a', ""), pinned("v2", 'b', DOWN));
    let manifest = rollback_manifest("v2", "v1", 'a', r#", "migrate_down": true"#).unwrap();
    let went_live = [id("v1"), id("v2")];
    let live = Live { now: Some(&went_live[1]), since: Some(t(60)), went_live: &went_live };
    let rollback = confirm_service(&web(), &manifest, claim(&manifest), live, Some(&v1), Some(&v2)).unwrap();
    let down = rollback.down.unwrap();
    assert_eq!(down.command, ["migrate", "--down"]);
    assert_eq!(down.image, format!("{REPO}@{}", digest('b')), "v2's image, not v1's");
    assert!(rollback.schema.contains("migrated down by v2"), "{}", rollback.schema);
}

#[test]
fn migrate_down_is_refused_when_the_reverted_release_recorded_no_down_command() {
    let (v1, v2) =
        (pinned("v1", 'a', ""), pinned("v2", 'b', r#", "migration": {"container": "app", "command": ["m"]}"#));
    let manifest = rollback_manifest("v2", "v1", 'a', r#", "migrate_down": true"#).unwrap();
    let went_live = [id("v1"), id("v2")];
    let live = Live { now: Some(&went_live[1]), since: Some(t(60)), went_live: &went_live };
    let why = confirm_service(&web(), &manifest, claim(&manifest), live, Some(&v1), Some(&v2)).unwrap_err();
    assert!(why.contains("names no down command"), "{why}");
}

#[test]
fn a_rollback_manifest_naming_a_migration_or_a_tag_is_refused_at_parse() {
    let release = "rollback-v1-1700000000";
    let key = ReleaseKey::new(web(), id(release));
    let with = |images: &str, extra: &str| {
        let text = format!(
            r#"{{"version": 1, "release": "{release}", "service": "web", "images": {{"app": "{images}"}}{extra},
                "rollback": {{"of": "v2", "to": "v1"}}}}"#
        );
        manifest::parse(text.as_bytes(), &key)
    };
    let by_digest = format!("{REPO}@{}", digest('a'));
    let migration = r#", "migration": {"container": "app", "command": ["m"]}"#;
    assert_eq!(with(&by_digest, migration).unwrap_err(), ManifestError::RollbackWithMigration);
    assert!(matches!(with(&format!("{REPO}:v1"), "").unwrap_err(), ManifestError::RollbackByTag(_)));
    assert!(with(&by_digest, "").is_ok());
    let itself = rollback_manifest("v1", "v1", 'a', "").unwrap_err();
    assert_eq!(itself, ManifestError::RollbackToItself("v1".into()));
    let confirmed = rollback_manifest("v2", "v1", 'a', r#", "confirmed": {}"#).unwrap_err();
    assert!(
        confirmed.to_string().contains("unknown field `confirmed`"),
        "a manifest cannot confirm itself: {confirmed}"
    );
}

#[test]
fn the_approval_window_holds_up_to_but_not_at_its_last_second() {
    let went_live = t(0);
    assert!(within_window(went_live, t(2 * 3600 - 1), 2));
    assert!(!within_window(went_live, t(2 * 3600), 2));
    assert!(!within_window(went_live, t(0), 0), "a window of 0 hours never holds");
}

#[test]
fn the_manifest_convoy_rollback_writes_pins_tos_digests_and_is_admitted_as_a_confirmable_claim() {
    let v1 = pinned("v1", 'a', "");
    let release = release_id(&id("v1"), 1_700_000_000).unwrap();
    assert_eq!(release.as_str(), "rollback-v1-1700000000");
    let (key, document) = manifest_for(&v1, None, &id("v2"), false, &release).unwrap();
    assert_eq!(key.to_string(), "web/rollback-v1-1700000000");
    let manifest = manifest::parse(document.to_string().as_bytes(), &key).unwrap();
    assert_eq!(manifest.images.values().next().unwrap().uri(), format!("{REPO}@{}", digest('a')));
    assert_eq!(claim(&manifest).of.as_str(), "v2");
    let went_live = [id("v1"), id("v2")];
    let live = Live { now: Some(&went_live[1]), since: Some(t(60)), went_live: &went_live };
    assert!(confirm_service(&web(), &manifest, claim(&manifest), live, Some(&v1), None).is_ok());
}

#[test]
fn the_fast_path_holds_only_with_a_window_in_the_settings_and_inside_it() {
    let v1 = pinned("v1", 'a', "");
    let manifest = rollback_manifest("v2", "v1", 'a', "").unwrap();
    let went_live = [id("v1"), id("v2")];
    let live = Live { now: Some(&went_live[1]), since: Some(t(0)), went_live: &went_live };
    let rollback = confirm_service(&web(), &manifest, claim(&manifest), live, Some(&v1), None).unwrap();
    assert_eq!(rollback.of_went_live, Some(t(0)));
    assert_eq!(rollback.fast_path(None, t(60)), None, "no window in the settings: a person approves");
    let why = rollback.fast_path(Some(1), t(3599)).unwrap();
    assert!(why.contains("within the operator's 1 h rollback window"), "{why}");
    assert_eq!(rollback.fast_path(Some(1), t(3600)), None);
}
