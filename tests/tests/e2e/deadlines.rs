//! A release never waits forever: one still collecting its images past the deadline ends
//! `Failed at images`, each missing image named with what ECR (moto) answered for it.

use chrono::{Duration, Utc};
use convoy::release::{Stage, State};
use serde_json::json;

use crate::scenario::*;

fn containers() -> Vec<String> {
    vec!["app".into(), "worker".into(), "nginx".into()]
}

/// The wait-list entries (`index/…/<service>/<release>`) that name `release`.
async fn wait_entries(backend: &MotoBackend, release: &str) -> Vec<String> {
    let listed = backend.world.s3.list_objects_v2().bucket(&backend.world.bucket).prefix("index/").send().await;
    let suffix = format!("/{SERVICE}/{release}");
    listed
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .filter(|k| k.ends_with(&suffix))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_release_still_collecting_after_the_deadline_fails_at_images_naming_each_missing_image_and_why() {
    let backend = MotoBackend::new(&containers()).await;
    // app is pushed; worker's repository exists without the tag; nginx's repository is gone.
    backend.push("app", "d1").await;
    let nginx = backend.world.repo("nginx");
    backend.world.ecr.delete_repository().repository_name(&nginx).force(true).send().await.unwrap();
    let manifest = manifest_v1(&backend, "d1", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/d1.json", &manifest).await).await.unwrap();
    let key = release_key("d1");
    assert_eq!(backend.record(&key).await.unwrap().state, State::Collecting);
    assert_eq!(wait_entries(&backend, "d1").await.len(), 3, "the release waits for its three images");

    // Within the hour (the default deadline) the reconciler only looks again.
    let opened = Utc::now();
    let reports = backend.convoy.reconcile(opened + Duration::minutes(59)).await.unwrap();
    assert!(reports.is_empty(), "{reports:?}");
    assert_eq!(backend.record(&key).await.unwrap().state, State::Collecting);

    let reports = backend.convoy.reconcile(opened + Duration::minutes(61)).await.unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Images, reason } = &record.state else {
        panic!("expected Failed at images, got {}", record.state)
    };
    let worker = format!("\"worker\" \"{}\": tag absent (ECR: ImageNotFound)", backend.uri("worker", "d1"));
    let nginx =
        format!("\"nginx\" \"{}\": repository unknown (ECR: RepositoryNotFoundException)", backend.uri("nginx", "d1"));
    assert!(reason.contains(&worker), "{reason}");
    assert!(reason.contains(&nginx), "{reason}");
    assert!(!reason.contains("\"app\""), "app was pinned: {reason}");
    assert!(reason.contains("deadline 3600s"), "{reason}");
    assert_eq!(record.timeline.last().unwrap().event, "images-overdue");
    assert!(wait_entries(&backend, "d1").await.is_empty(), "the wait-list no longer names it");

    // A late push of the missing tag, delivered twice, and the next runs change nothing.
    let etag = || async {
        let head = backend.world.s3.head_object().bucket(&backend.world.bucket).key("state/web/d1.json").send();
        head.await.unwrap().e_tag
    };
    let before = etag().await;
    let (_, push) = backend.push("worker", "d1").await;
    assert_eq!(invoke_image_pushed(&backend.convoy, push.clone()).await.unwrap(), json!([]));
    assert_eq!(invoke_image_pushed(&backend.convoy, push).await.unwrap(), json!([]));
    assert!(backend.convoy.reconcile(opened + Duration::minutes(63)).await.unwrap().is_empty());
    assert!(backend.convoy.reconcile(opened + Duration::minutes(65)).await.unwrap().is_empty());
    assert_eq!(etag().await, before, "the record was not written again");
    assert_eq!(backend.record(&key).await.unwrap(), record);
    let active = backend.world.s3.list_objects_v2().bucket(&backend.world.bucket).prefix("active/").send().await;
    assert_eq!(active.unwrap().key_count(), Some(0), "the ended release left the active list");
}

#[tokio::test]
async fn on_the_in_memory_fakes_a_registry_convoy_may_not_read_is_named_access_denied_at_the_deadline() {
    let backend = MemoryBackend::new(&["app".to_owned()]);
    backend.registry.deny(&convoy_tests::moto::ACCOUNT.parse().unwrap());
    let manifest = manifest_v1(&backend, "d2", &["app".to_owned()], false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/d2.json", &manifest).await).await.unwrap();
    let key = release_key("d2");
    assert_eq!(
        backend.record(&key).await.unwrap().state,
        State::Collecting,
        "a denied read is an answer, not an outage"
    );

    backend.convoy.reconcile(Utc::now() + Duration::minutes(61)).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Images, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("\"app\""), "{reason}");
    assert!(reason.contains("access denied, registry not readable (\"not authorized to read registry"), "{reason}");
    let image = convoy::release::ImageKey::of(&record.images[&"app".parse().unwrap()].image);
    let waiting = backend.convoy.waits.waiting_for(&image).await.unwrap();
    assert!(waiting.is_empty(), "the wait-list no longer names it");
}
