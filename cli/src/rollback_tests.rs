//! [`plan`] over the in-memory store: what a rollback would submit, and each refusal, with
//! nothing written.

use convoy::adapters::memory::MemoryStore;
use convoy::release::Release;
use serde_json::{Value, json};

use super::*;

/// A record of web's release `release` that went live `hours_ago` hours ago (the shape
/// `fixtures/records/succeeded-codedeploy.json`, a record Convoy wrote, has), its images pinned
/// under digests that name it; with `down`, its manifest's migration records that down command.
pub(crate) fn went_live(release: &str, hours_ago: i64, down: Option<&[&str]>) -> Release {
    let mut value: Value =
        serde_json::from_str(include_str!("../../shared/fixtures/records/succeeded-codedeploy.json")).unwrap();
    let at = chrono::Utc::now() - chrono::Duration::hours(hours_ago);
    value["key"] = json!({"service": "web", "release": release});
    value["timeline"][0]["at"] = json!(at - chrono::Duration::minutes(20));
    value["deployment"]["ended_at"] = json!(at);
    // Each release's own digests (hex: the container's letter, then the release's last digit).
    let n = &release[release.len() - 1..];
    for (container, letter) in [("app", "a"), ("nginx", "b")] {
        value["images"][container]["digest"] = json!(format!("sha256:{}{}", letter.repeat(32), n.repeat(32)));
    }
    if let Some(down) = down {
        value["manifest"]["migration"] = json!({"container": "app", "command": ["./migrate"], "down": down});
    }
    serde_json::from_value(value).unwrap()
}

async fn store_with(records: &[Release]) -> MemoryStore {
    let store = MemoryStore::default();
    for record in records {
        store.create(record).await.unwrap();
    }
    store
}

fn web() -> ServiceName {
    "web".parse().unwrap()
}

fn id(text: &str) -> ReleaseId {
    text.parse().unwrap()
}

fn wanted<'a>(service: &'a ServiceName, to: Option<&'a ReleaseId>, of: Option<&'a ReleaseId>) -> Wanted<'a> {
    let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    Wanted { service, to, of, migrate_down: false, at }
}

async fn planned(store: &MemoryStore, wanted: &Wanted<'_>) -> Result<Plan, Refusal> {
    plan(store, store, wanted, "releases").await
}

#[tokio::test]
async fn the_plan_reverts_the_live_release_to_the_one_before_with_its_pinned_digests() {
    let (v1, v2) = (went_live("v1", 5, None), went_live("v2", 1, Some(&["./migrate", "--down"])));
    let store = store_with(&[v1.clone(), v2]).await;
    let service = web();
    let plan = planned(&store, &wanted(&service, None, None)).await.expect("a plan");
    assert_eq!((plan.of.as_str(), plan.to.as_str()), ("v2", "v1"));
    assert_eq!(plan.release.to_string(), "web/rollback-v1-1800000000", "named by `to` and the moment");
    assert_eq!(plan.object, "releases/web/rollback-v1-1800000000.json");
    let mut pinned = v1.pinned_uris();
    pinned.sort();
    assert_eq!(plan.images(), pinned, "v1's digests, as v1 pinned them");
    assert_eq!(plan.manifest["rollback"], json!({"of": "v2", "to": "v1", "migrate_down": false}));
    assert_eq!(plan.down, Some(("app".to_owned(), vec!["./migrate".to_owned(), "--down".to_owned()])), "v2's");
    assert!(plan.group.is_none() && plan.services().is_empty());
}

#[tokio::test]
async fn the_same_moment_plans_the_same_rollback_and_another_moment_another() {
    let store = store_with(&[went_live("v1", 5, None), went_live("v2", 1, None)]).await;
    let service = web();
    let first = planned(&store, &wanted(&service, None, None)).await.unwrap();
    let again = planned(&store, &wanted(&service, Some(&id("v1")), Some(&id("v2")))).await.unwrap();
    assert_eq!(first, again, "the confirmation's form submits exactly what its page showed");
    let mut later = wanted(&service, None, None);
    later.at += chrono::Duration::seconds(1);
    assert_ne!(planned(&store, &later).await.unwrap().release, first.release);
}

#[tokio::test]
async fn a_rollback_is_refused_when_nothing_of_the_service_is_live() {
    let store = store_with(&[]).await;
    let service = web();
    let refusal = planned(&store, &wanted(&service, None, None)).await.unwrap_err();
    assert_eq!(refusal, Refusal::Refused("no release of web is live by Convoy's records: nothing to roll back".into()));
}

#[tokio::test]
async fn a_rollback_to_a_release_that_never_went_live_is_refused() {
    let mut failed = went_live("v0", 9, None);
    failed.state = convoy::release::State::Failed { stage: convoy::release::Stage::Verification, reason: "5xx".into() };
    failed.deployment = None;
    let store = store_with(&[failed, went_live("v1", 5, None), went_live("v2", 1, None)]).await;
    let service = web();
    let refusal = planned(&store, &wanted(&service, Some(&id("v0")), None)).await.unwrap_err();
    let Refusal::Refused(why) = refusal else { panic!("not a refusal: {refusal:?}") };
    assert!(why.contains("release v0 of web never went live"), "{why}");
    let refusal = planned(&store, &wanted(&service, Some(&id("v2")), None)).await.unwrap_err();
    assert_eq!(refusal, Refusal::Refused("release v2 is live now: there is nothing to roll back to".into()));
}

#[tokio::test]
async fn a_rollback_is_refused_when_the_live_release_is_not_the_one_the_confirmation_showed() {
    let store = store_with(&[went_live("v1", 5, None), went_live("v2", 3, None), went_live("v3", 1, None)]).await;
    let service = web();
    let refusal = planned(&store, &wanted(&service, Some(&id("v1")), Some(&id("v2")))).await.unwrap_err();
    let Refusal::Refused(why) = refusal else { panic!("not a refusal: {refusal:?}") };
    assert_eq!(why, "release v3 of web is live now, not v2: look again before rolling back");
}

#[tokio::test]
async fn no_down_command_is_offered_when_the_reverted_release_recorded_none() {
    let store = store_with(&[went_live("v1", 5, Some(&["./down"])), went_live("v2", 1, None)]).await;
    let service = web();
    let plan = planned(&store, &wanted(&service, None, None)).await.unwrap();
    assert_eq!(plan.down, None, "v1's down command undoes v1, not v2");
}
