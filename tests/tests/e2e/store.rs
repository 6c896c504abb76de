//! The S3 release store keeps its contract on moto: conditional create and replace.

use convoy::adapters::aws::{S3Store, s3_client};
use convoy::config::StoreSettings;
use convoy::error::StoreError;
use convoy::ports::ReleaseStore;
use convoy::release::{ManifestSource, Release};
use convoy_tests::world::World;

fn record(release: &str) -> Release {
    let key = convoy::names::ReleaseKey::new("web".parse().unwrap(), release.parse().unwrap());
    let source = ManifestSource { bucket: "b".into(), key: "k".into(), version_id: Some("v1".into()), etag: None };
    Release::rejected(key, source, "test".into(), chrono::Utc::now())
}

async fn store() -> S3Store {
    let world = World::new().await;
    let settings = StoreSettings { state_bucket: world.bucket.clone(), force_path_style: true };
    S3Store::new(s3_client(&world.sdk, &settings), world.bucket)
}

#[tokio::test]
async fn creating_a_record_twice_is_refused_by_s3() {
    let store = store().await;
    store.create(&record("a")).await.unwrap();
    assert_eq!(store.create(&record("a")).await.unwrap_err(), StoreError::AlreadyExists);
}

#[tokio::test]
async fn replacing_from_a_stale_version_is_refused_by_s3() {
    let store = store().await;
    let first = store.create(&record("b")).await.unwrap();
    let mut changed = record("b");
    changed.timeline.clear();
    let second = store.replace(&changed, &first).await.unwrap();
    assert_ne!(first, second);
    assert_eq!(store.replace(&record("b"), &first).await.unwrap_err(), StoreError::Conflict);
    assert_eq!(store.load(&changed.key).await.unwrap().unwrap().release, changed, "the refused write left no trace");
}

#[tokio::test]
async fn a_missing_record_loads_as_none() {
    let store = store().await;
    assert_eq!(store.load(&record("none").key).await.unwrap(), None);
}
