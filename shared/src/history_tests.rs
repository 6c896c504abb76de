//! The history's derivation from records, and its paged loading from the memory store.

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::*;
use crate::adapters::memory::MemoryStore;

const SUCCEEDED: &str = include_str!("../fixtures/records/succeeded-codedeploy.json");
const FAILED_MIGRATION: &str = include_str!("../fixtures/records/failed-migration.json");

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + minutes * 60, 0).unwrap()
}

fn web() -> ServiceName {
    "web".parse().unwrap()
}

/// A real succeeded record (`fixtures/records/succeeded-codedeploy.json`) renamed `release`,
/// opened at `opened` minutes and live from `live` minutes, then `change` applied to its JSON.
fn went_live(release: &str, opened: i64, live: i64, change: impl FnOnce(&mut Value)) -> Release {
    let mut value: Value = serde_json::from_str(SUCCEEDED).unwrap();
    value["key"]["release"] = json!(release);
    value["timeline"][0]["at"] = json!(t(opened));
    value["deployment"]["ended_at"] = json!(t(live));
    value["deployment"]["task_definition"] =
        json!(format!("arn:aws:ecs:us-east-1:123456789012:task-definition/web:{release}"));
    change(&mut value);
    serde_json::from_value(value).unwrap()
}

fn plain(release: &str, opened: i64, live: i64) -> Release {
    went_live(release, opened, live, |_| {})
}

fn names(history: &History) -> Vec<String> {
    history.releases.iter().map(|r| r.key.release.to_string()).collect()
}

#[test]
fn releases_that_went_live_are_listed_newest_first_each_until_the_next_went_live() {
    let records = [plain("a1", 0, 10), plain("c3", 40, 50), plain("b2", 20, 30)];
    let history = history(&web(), &records);
    assert_eq!(names(&history), ["c3", "b2", "a1"]);
    let [c3, b2, a1] = &history.releases[..] else { panic!() };
    assert_eq!((c3.at, c3.until, &c3.outcome), (t(50), None, &Outcome::LiveNow));
    assert_eq!((b2.at, b2.until), (t(30), Some(t(50))));
    assert_eq!(b2.outcome, Outcome::ReplacedBy { release: "c3".parse().unwrap() });
    assert_eq!((a1.until, a1.live_for(t(99))), (Some(t(30)), Duration::minutes(20)));
    assert_eq!(c3.live_for(t(60)), Duration::minutes(10), "the live one is live until now");
    assert_eq!(history.live_now().map(|r| r.key.release.to_string()).as_deref(), Some("c3"));
    assert_eq!(history.live_before().map(|r| r.key.release.to_string()).as_deref(), Some("b2"));
}

#[test]
fn the_order_is_when_each_went_live_not_when_it_was_opened() {
    // b2 was opened first but queued behind a1, which went live first.
    let history = history(&web(), &[plain("a1", 10, 20), plain("b2", 0, 30)]);
    assert_eq!(names(&history), ["b2", "a1"]);
}

#[test]
fn a_release_that_never_went_live_is_left_out_and_does_not_end_the_live_one() {
    let failed: Release = {
        let mut value: Value = serde_json::from_str(FAILED_MIGRATION).unwrap();
        value["key"]["service"] = json!("web");
        serde_json::from_value(value).unwrap()
    };
    let rolled_back = went_live("r9", 30, 40, |v| {
        v["state"] = json!({"name": "RolledBack", "reason": "rejected"});
        v["deployment"]["end"] = json!("stopped");
    });
    let superseded = went_live("s8", 30, 40, |v| {
        v["state"] = json!({"name": "Superseded", "by": "a1"});
        v["deployment"] = Value::Null;
    });
    let history = history(&web(), &[plain("a1", 0, 10), failed, rolled_back, superseded]);
    assert_eq!(names(&history), ["a1"]);
    assert_eq!(history.releases[0].outcome, Outcome::LiveNow);
    assert!(history.live_before().is_none(), "nothing was live before the first release");
}

#[test]
fn records_of_another_service_are_not_its_history() {
    let mut other = plain("x1", 0, 60);
    other.key.service = "worker".parse().unwrap();
    assert_eq!(names(&history(&web(), &[plain("a1", 0, 10), other])), ["a1"]);
}

#[test]
fn each_entry_carries_the_pinned_digests_the_revision_and_who_approved() {
    let history = history(&web(), &[plain("a1", 0, 10)]);
    let a1 = &history.releases[0];
    assert_eq!(
        a1.images.get("app").map(String::as_str),
        Some(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/app-13347-20@sha256:\
             7252717ba17f4032655ece2a60477b5e3c039e80cf5a7f2e88b61cedb351ff7c"
        )
    );
    assert_eq!(a1.images.len(), 2);
    assert_eq!(a1.approved_by.as_deref(), Some("arn:aws:iam::123456789012:user/alice-13347-20"));
    assert_eq!(a1.method, Some(DeployMethod::CodeDeploy));
    assert_eq!(a1.task_definition.as_deref(), Some("arn:aws:ecs:us-east-1:123456789012:task-definition/web:a1"));
    assert_eq!(a1.migration, Migration::None, "the fixture's manifest declares no migration");
    assert_eq!(
        history.deployed("arn:aws:ecs:us-east-1:123456789012:task-definition/web:a1").map(|r| &r.key),
        Some(&a1.key)
    );
    assert!(history.deployed("arn:aws:ecs:us-east-1:123456789012:task-definition/web:9").is_none());
}

#[test]
fn a_migration_that_ran_is_shown_with_its_exit_code_and_a_part_points_to_its_group() {
    let migrated = went_live("m1", 0, 10, |v| {
        v["migration"] = json!({"token": "t", "claims": 1, "claimed_at": t(1), "deadline": t(31),
                                "exit_code": 0, "stopped_at": t(2)});
    });
    let part = went_live("g2", 20, 30, |v| v["part_of"] = json!({"service": "shop", "release": "g2"}));
    let history = history(&web(), &[migrated, part]);
    let [g2, m1] = &history.releases[..] else { panic!() };
    assert_eq!(m1.migration, Migration::Ran { exit_code: Some(0), stopped_at: Some(t(2)) });
    assert_eq!(m1.migration.to_string(), "exit 0");
    assert_eq!(g2.migration.to_string(), "in shop/g2");
    assert_eq!(g2.part_of.as_ref().map(ToString::to_string).as_deref(), Some("shop/g2"));
}

#[test]
fn a_rejected_approval_is_no_approver_and_a_record_without_an_end_time_uses_its_succeeded_entry() {
    let old = went_live("o1", 0, 0, |v| {
        v["deployment"]["ended_at"] = Value::Null;
        v["approval"]["approved"] = json!(false);
        let last = v["timeline"].as_array().unwrap().len() - 1;
        v["timeline"][last]["at"] = json!(t(7));
    });
    let history = history(&web(), &[old]);
    assert_eq!(history.releases[0].at, t(7));
    assert_eq!(history.releases[0].approved_by, None);
}

#[test]
fn a_part_put_back_after_its_group_failed_ends_then_and_the_release_before_it_is_live_again() {
    let put_back = went_live("g2", 20, 30, |v| {
        v["part_of"] = json!({"service": "shop", "release": "g2"});
        v["deployment"]["put_back"] = json!({"task_definition": "web:a1", "claims": 1, "claimed_at": t(39),
                                             "done_at": t(40)});
    });
    let history = history(&web(), &[plain("a1", 0, 10), put_back]);
    let [g2, a1] = &history.releases[..] else { panic!() };
    assert_eq!((g2.until, &g2.outcome), (Some(t(40)), &Outcome::PutBack { at: t(40) }));
    assert_eq!((a1.until, &a1.outcome), (None, &Outcome::LiveAgain { since: t(40) }));
    assert_eq!(history.live_now().map(|r| &r.key), Some(&a1.key));
    assert!(history.live_before().is_none(), "a put back release is not one to return to");
}

#[test]
fn a_put_back_after_the_next_release_went_live_is_just_replaced() {
    let put_back = went_live("g2", 20, 30, |v| {
        v["deployment"]["put_back"] = json!({"task_definition": "web:a1", "claims": 1, "claimed_at": t(59),
                                             "done_at": t(60)});
    });
    let history = history(&web(), &[put_back, plain("c3", 40, 50)]);
    assert_eq!(history.releases[1].outcome, Outcome::ReplacedBy { release: "c3".parse().unwrap() });
    assert_eq!(history.releases[1].until, Some(t(50)));
}

#[test]
fn the_json_names_each_field_and_the_outcome_kind() {
    let history = history(&web(), &[plain("a1", 0, 10), plain("b2", 20, 30)]);
    let value = serde_json::to_value(&history).unwrap();
    assert_eq!(value["service"], "web");
    assert_eq!(value["releases"][0]["key"], json!({"service": "web", "release": "b2"}));
    assert_eq!(value["releases"][0]["outcome"], json!({"kind": "live-now"}));
    assert_eq!(value["releases"][1]["outcome"], json!({"kind": "replaced-by", "release": "b2"}));
    assert_eq!(value["releases"][1]["migration"], json!({"kind": "none"}));
    assert_eq!(value["releases"][1]["until"], json!(t(30)));
}

/// A memory store holding `records`, each last written when it went live, listing `page` per page.
async fn store_of(records: &[Release], page: usize) -> MemoryStore {
    let store = MemoryStore::default().with_page_size(page);
    for record in records {
        store.create(record).await.unwrap();
        store.written_at(&record.key, went_live_at(record).unwrap_or(t(0)));
    }
    store
}

fn many(n: i64) -> Vec<Release> {
    (0..n).map(|i| plain(&format!("r{i:03}"), i * 10, i * 10 + 5)).collect()
}

#[tokio::test]
async fn loading_pages_through_every_record_and_gives_the_same_history_as_all_of_them() {
    let records = many(25);
    let store = store_of(&records, 4).await;
    let loaded = load(&store, &store, &web(), None).await.unwrap();
    assert_eq!((loaded.listed, loaded.read), (25, 25));
    assert_eq!(loaded.history, history(&web(), &records));
    assert_eq!(loaded.history.releases.len(), 25);
}

#[tokio::test]
async fn asking_for_the_newest_two_reads_only_the_first_records_newest_written_first() {
    let records = many(100);
    let store = store_of(&records, 7).await;
    let loaded = load(&store, &store, &web(), Some(2)).await.unwrap();
    assert_eq!(loaded.listed, 100, "every key is listed (cheap), not every record read");
    assert_eq!(loaded.read, CONCURRENT_READS);
    assert_eq!(names(&loaded.history), ["r099", "r098"]);
    let whole = history(&web(), &records);
    assert_eq!(loaded.history.releases[..], whole.releases[..2]);
    assert_eq!(loaded.history.live_before().map(|r| r.key.release.to_string()).as_deref(), Some("r098"));
}

#[tokio::test]
async fn a_record_written_long_after_it_went_live_is_still_read_before_older_ones_and_placed_right() {
    // r000 went live first, but its record was written last (an attribution arriving late): it
    // is read first and stays the oldest entry.
    let mut records = many(40);
    records.push(plain("late", 0, 1000));
    let store = store_of(&records, 1000).await;
    store.written_at(&records[0].key, t(5000));
    let loaded = load(&store, &store, &web(), Some(1)).await.unwrap();
    assert_eq!(names(&loaded.history), ["late"], "the newest went live at 1000 minutes");
    assert!(loaded.read <= 2 * CONCURRENT_READS, "read {}", loaded.read);
}

#[tokio::test]
async fn a_record_written_within_the_clock_slack_of_the_newest_is_read_too() {
    // b2 went live at 13 minutes but S3 says it was written at 9 (its writer's clock ran 4 minutes
    // ahead). The first reads (a1, live at 12, and fillers written later) must not end the search.
    let fillers = CONCURRENT_READS - 1;
    let mut records: Vec<Release> = (0..fillers).map(|i| plain(&format!("f{i:02}"), 0, 1)).collect();
    records.push(plain("a1", 0, 12));
    records.push(plain("b2", 0, 13));
    let store = store_of(&records, 1000).await;
    for filler in &records[..fillers] {
        store.written_at(&filler.key, t(100));
    }
    store.written_at(&records[fillers + 1].key, t(9));
    let loaded = load(&store, &store, &web(), Some(1)).await.unwrap();
    assert_eq!(loaded.read, CONCURRENT_READS + 1, "b2 is read after the first sixteen");
    assert_eq!(names(&loaded.history), ["b2"]);
}

#[tokio::test]
async fn a_record_that_cannot_be_read_is_named_and_the_others_still_make_the_history() {
    let records = many(3);
    let store = store_of(&records, 1000).await;
    store.corrupt(&records[1].key, "{not json");
    let loaded = load(&store, &store, &web(), None).await.unwrap();
    assert_eq!(names(&loaded.history), ["r002", "r000"]);
    assert_eq!(loaded.unreadable.len(), 1);
    assert_eq!(loaded.unreadable[0].0, records[1].key);
}

#[tokio::test]
async fn a_service_with_no_records_has_an_empty_history() {
    let store = MemoryStore::default();
    let loaded = load(&store, &store, &web(), Some(2)).await.unwrap();
    assert!(loaded.history.releases.is_empty() && loaded.history.live_now().is_none());
    assert_eq!((loaded.listed, loaded.read), (0, 0));
}

#[tokio::test]
async fn a_service_named_like_the_start_of_another_lists_only_its_own_records() {
    let mut other = plain("x1", 0, 60);
    other.key.service = "webshop".parse().unwrap();
    let store = store_of(&[plain("a1", 0, 10), other], 1000).await;
    let loaded = load(&store, &store, &web(), None).await.unwrap();
    assert_eq!((loaded.listed, names(&loaded.history)), (1, vec!["a1".to_owned()]));
}

#[test]
fn a_groups_own_record_never_went_live_only_its_parts_did() {
    let group = went_live("g1", 0, 10, |v| {
        v["group"] = json!({"group": "web", "images": {}, "services": {}, "order": []});
    });
    assert!(serde_json::to_value(&group).unwrap()["group"].is_object(), "the record is a group's");
    assert_eq!(went_live_at(&group), None);
}

fn running(task_definition: &str, since: Option<DateTime<Utc>>) -> crate::ports::ServiceShape {
    crate::ports::ServiceShape {
        task_definition: task_definition.to_owned(),
        since,
        network: None,
        launch: crate::ports::Launch::ClusterDefault,
        platform_version: None,
    }
}

const TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:";

#[test]
fn ecs_running_the_live_releases_revision_confirms_it() {
    let records = [plain("a1", 0, 10), plain("b2", 20, 30)];
    let history = history(&web(), &records);
    assert_eq!(check(&history, &records, &running(&format!("{TD}b2"), Some(t(30)))), LiveCheck::Confirmed);
    // The revision alone decides: ECS may name it without the ARN's prefix.
    assert_eq!(check(&history, &records, &running("web:b2", None)), LiveCheck::Confirmed);
}

#[test]
fn a_revision_no_release_deployed_is_a_change_outside_convoy_with_when_ecs_started_it() {
    let records = [plain("a1", 0, 10), plain("b2", 20, 30)];
    let history = history(&web(), &records);
    let found = check(&history, &records, &running(&format!("{TD}77"), Some(t(45))));
    assert_eq!(
        found,
        LiveCheck::ChangedOutsideConvoy { task_definition: format!("{TD}77"), since: Some(t(45)), earlier: None }
    );
    assert_eq!(found.to_string(), "changed outside Convoy: web:77, started by ECS at 2023-11-14T22:58:20Z");
}

#[test]
fn an_older_releases_revision_put_back_by_hand_is_a_change_outside_convoy_naming_that_release() {
    let records = [plain("a1", 0, 10), plain("b2", 20, 30)];
    let history = history(&web(), &records);
    let found = check(&history, &records, &running(&format!("{TD}a1"), None));
    assert_eq!(
        found,
        LiveCheck::ChangedOutsideConvoy {
            task_definition: format!("{TD}a1"),
            since: None,
            earlier: Some(ReleaseKey::new(web(), "a1".parse().unwrap()))
        }
    );
    assert!(found.to_string().ends_with("(the revision of web/a1), ECS does not say since when"), "{found}");
}

#[test]
fn the_revision_of_a_release_deploying_now_is_not_a_change_outside_convoy() {
    let deploying = went_live("c3", 40, 50, |v| {
        v["state"] = json!({"name": "Deploying", "deployment": {"service-deployment": "arn:aws:ecs:x"}});
        v["deployment"]["end"] = Value::Null;
    });
    let records = [plain("a1", 0, 10), deploying];
    let history = history(&web(), &records);
    assert!(matches!(
        check(&history, &records, &running(&format!("{TD}c3"), None)),
        LiveCheck::Deploying { release, .. } if release.release.as_str() == "c3"
    ));
}

#[test]
fn a_release_that_a_rollback_replaced_says_it_was_rolled_back_and_to_which_release() {
    let rollback = went_live("rollback-a1-1", 40, 50, |record| {
        record["rollback"] = json!({"of": "b2", "to": "a1", "schema": "the schema stays where b2 left it"});
    });
    let records = [plain("a1", 0, 10), plain("b2", 20, 30), rollback];
    let history = history(&web(), &records);
    let [_, b2, a1] = &history.releases[..] else { panic!("{:?}", names(&history)) };
    let by_rollback = Outcome::RolledBackBy { release: "rollback-a1-1".parse().unwrap(), to: "a1".parse().unwrap() };
    assert_eq!(b2.outcome, by_rollback);
    assert_eq!(b2.outcome.to_string(), "rolled back to a1 by rollback-a1-1");
    assert_eq!(a1.outcome, Outcome::ReplacedBy { release: "b2".parse().unwrap() }, "a release replaced it");
}

#[test]
fn an_entry_names_who_submitted_it_as_the_trail_did_or_why_not_and_older_records_say_nothing() {
    let found = went_live("s1", 0, 10, |v| {
        v["submitter"] = serde_json::json!({"status": "found",
            "principal_arn": "arn:aws:sts::123456789012:assumed-role/ci/run-7", "operation": "s3:PutObject",
            "event_id": "e-1", "event_time": "2023-11-14T22:13:20Z", "log_file": "s3://logs/k.json.gz",
            "trail": "arn:aws:cloudtrail:us-east-1:123456789012:trail/audit"});
    });
    let unknown = went_live("s2", 20, 30, |v| {
        v["submitter"] = serde_json::json!({"status": "unknown", "reason": "no data-event trail: none given"});
    });
    let history = history(&web(), &[found, unknown, plain("s0", 40, 50)]);
    let by = |release: &str| {
        let entry = history.releases.iter().find(|r| r.key.release.as_str() == release).unwrap();
        entry.submitted_by.clone()
    };
    assert_eq!(by("s1").as_deref(), Some("arn:aws:sts::123456789012:assumed-role/ci/run-7"));
    assert_eq!(by("s2").as_deref(), Some("unknown: no data-event trail: none given"));
    assert_eq!(by("s0"), None);
}
