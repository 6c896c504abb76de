//! The confirmation of a rollback claim from records, and the approval window's edge.

use chrono::{TimeZone, Utc};

use super::*;
use crate::manifest::{self, ManifestError, Submitted};
use crate::names::{Digest, ReleaseKey};
use crate::release::{DeployMethod, GroupOpening, ManifestSource, Sighting, readiness};

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
    pinned_by(opened, pinned)
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
    assert_eq!(rollback.schema, r#"database schema migrated down by v2's down command "migrate --down""#);
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

// A group release `shop` of web and worker, both running image `app`; its one migration runs in
// web's `app` container.

fn shop() -> ServiceName {
    "shop".parse().unwrap()
}

/// The record of group release `release` of shop whose `app` image ECR pinned to `pinned`, with
/// `migration` (a JSON object, or none).
fn group_pinned(release: &str, pinned: char, migration: Option<serde_json::Value>) -> Release {
    let key = ReleaseKey::new(shop(), id(release));
    let mut text = serde_json::json!({
        "version": 2, "release": release, "group": "shop", "images": {"app": format!("{REPO}:{release}")},
        "services": {"web": {"containers": {"app": "app"}}, "worker": {"containers": {"worker": "app"}}},
        "order": ["worker", "web"]
    });
    if let Some(migration) = migration {
        text["migration"] = migration;
    }
    let Submitted::Group(manifest) = manifest::read(text.to_string().as_bytes(), &key).unwrap() else {
        panic!("a group manifest")
    };
    let source = ManifestSource {
        bucket: "b".into(),
        key: format!("releases/shop/{release}.json"),
        version_id: None,
        etag: None,
    };
    let methods = BTreeMap::from([(web(), DeployMethod::CodeDeploy), (worker(), DeployMethod::EcsRolling)]);
    let opened = Release::open_group(key, source, GroupOpening { manifest, methods }, t(0));
    pinned_by(opened, pinned)
}

fn worker() -> ServiceName {
    "worker".parse().unwrap()
}

fn group_migration(down: bool) -> Option<serde_json::Value> {
    let mut migration = serde_json::json!({"service": "web", "container": "app", "command": ["migrate"]});
    if down {
        migration["down"] = serde_json::json!(["migrate", "--down"]);
    }
    Some(migration)
}

/// The outcome of confirming the rollback `convoy rollback web [--migrate-down]` writes after g2
/// (its record `g2`) replaced g1 (pinned to `a`) in both services.
fn confirm_shop_rollback(migrate_down: bool, g2: Option<&Release>) -> Result<Rollback, String> {
    let g1 = group_pinned("g1", 'a', group_migration(false));
    let part = g1.part(&web(), t(2)).unwrap();
    let release = release_id(&id("g1"), 1_700_000_000).unwrap();
    let (key, document) = manifest_for(&part, Some(&g1), &id("g2"), migrate_down, &release).unwrap();
    assert_eq!(key.service, shop(), "the whole group release");
    let Submitted::Group(manifest) = manifest::read(document.to_string().as_bytes(), &key).unwrap() else {
        panic!("a group manifest")
    };
    let claim = manifest.rollback.clone().unwrap();
    assert_eq!(claim.migrate_down, migrate_down);
    let went_live = [id("g1"), id("g2")];
    let live = Live { now: Some(&went_live[1]), since: Some(t(60)), went_live: &went_live };
    let (web_part, worker_part) = (g1.part(&web(), t(2)).unwrap(), g1.part(&worker(), t(2)).unwrap());
    let parts = BTreeMap::from([(web(), (live, Some(&web_part))), (worker(), (live, Some(&worker_part)))]);
    confirm_group(&manifest, &claim, Some(&g1), g2, &parts)
}

#[test]
fn a_group_rollback_without_migrate_down_runs_nothing_and_says_where_the_schema_stays() {
    let g2 = group_pinned("g2", 'b', group_migration(true));
    let rollback = confirm_shop_rollback(false, Some(&g2)).unwrap();
    assert_eq!((rollback.of.as_str(), rollback.to.as_str(), rollback.down), ("g2", "g1", None));
    assert_eq!(rollback.schema, "database schema stays where g2 left it (no migration runs)");
}

#[test]
fn migrate_down_of_a_group_release_runs_its_one_migrations_down_command_from_that_service_and_its_image() {
    let g2 = group_pinned("g2", 'b', group_migration(true));
    let rollback = confirm_shop_rollback(true, Some(&g2)).unwrap();
    let down = rollback.down.clone().expect("g2's down migration");
    assert_eq!(down.service, Some(web()), "g2's migration derives from web's task definition");
    assert_eq!((down.container.as_str(), &down.command[..]), ("app", &["migrate".to_owned(), "--down".to_owned()][..]));
    assert_eq!(down.image, format!("{REPO}@{}", digest('b')), "g2's image, not g1's");
    assert_eq!(rollback.schema, r#"database schema migrated down by g2's down command "migrate --down""#);
}

#[test]
fn a_group_rollbacks_release_runs_the_down_command_as_its_one_migration_from_that_services_task_definition() {
    let g2 = group_pinned("g2", 'b', group_migration(true));
    let rollback = confirm_shop_rollback(true, Some(&g2)).unwrap();
    let g1 = group_pinned("g1", 'a', group_migration(false));
    let part = g1.part(&web(), t(2)).unwrap();
    let release = release_id(&id("g1"), 1_700_000_000).unwrap();
    let (key, document) = manifest_for(&part, Some(&g1), &id("g2"), true, &release).unwrap();
    let Submitted::Group(mut manifest) = manifest::read(document.to_string().as_bytes(), &key).unwrap() else {
        panic!("a group manifest")
    };
    manifest.rollback.as_mut().unwrap().confirmed = Some(rollback);
    let methods = BTreeMap::from([(web(), DeployMethod::CodeDeploy), (worker(), DeployMethod::EcsRolling)]);
    let source =
        ManifestSource { bucket: "b".into(), key: format!("releases/{key}.json"), version_id: None, etag: None };
    let opened = Release::open_group(key.clone(), source, GroupOpening { manifest, methods }, t(0));
    assert_eq!(opened.migration_service(), &web(), "web's task definition, not the group's name");
    let run = opened.declared_migration().expect("the down migration is the release's one migration");
    assert_eq!((run.container.as_str(), &run.command[..]), ("app", &["migrate".to_owned(), "--down".to_owned()][..]));
    let confirmed = opened.timeline.iter().find(|e| e.event == "rollback-confirmed").unwrap();
    assert!(confirmed.detail.contains("database schema migrated down by g2's down command"), "{}", confirmed.detail);
}

#[test]
fn migrate_down_of_a_group_release_is_refused_when_it_ran_no_migration_named_no_down_command_or_has_no_record() {
    let no_migration = group_pinned("g2", 'b', None);
    let why = confirm_shop_rollback(true, Some(&no_migration)).unwrap_err();
    assert_eq!(why, "migrate_down: release \"g2\" ran no migration of its own, so there is none to undo");
    let no_down = group_pinned("g2", 'b', group_migration(false));
    let why = confirm_shop_rollback(true, Some(&no_down)).unwrap_err();
    assert_eq!(why, "migrate_down: release \"g2\"'s migration names no down command (migration.down in its manifest)");
    let why = confirm_shop_rollback(true, None).unwrap_err();
    assert_eq!(why, "group shop has no release \"g2\" in Convoy's records");
}

/// `opened` once its (first) image is found with the digest `pinned` names.
fn pinned_by(opened: Release, pinned: char) -> Release {
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
