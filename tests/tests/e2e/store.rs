//! The S3 release store keeps its contract on moto: conditional create and replace.

use convoy::adapters::aws::{S3Store, s3_client};
use convoy::config::StoreSettings;
use convoy::error::StoreError;
use convoy::names::{DeploymentId, DeploymentRef};
use convoy::ports::{DeploymentIndex, ReleaseStore, Stored};
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

/// The deployment index reads the record a deployment was noted for in one call (a hook needs it
/// before it probes): nothing before the note, nothing while the record is missing, then the
/// record with its version, on S3 and in the in-memory fake alike.
async fn finds_the_record_a_deployment_was_noted_for<S: ReleaseStore + DeploymentIndex>(store: &S) {
    let release = record("d");
    let deployment = DeploymentRef::CodeDeploy(DeploymentId::new("d-ABCDEFGH1").unwrap());
    assert_eq!(store.find_record(&deployment).await.unwrap(), None, "nothing noted");
    store.note(&deployment, &release.key).await.unwrap();
    assert_eq!(store.find_record(&deployment).await.unwrap(), None, "noted, but the record is not there");
    let version = store.create(&release).await.unwrap();
    let found = store.find_record(&deployment).await.unwrap();
    assert_eq!(found, Some(Stored { release, version }));
}

#[tokio::test]
async fn the_deployment_index_finds_the_record_in_one_call_on_s3() {
    finds_the_record_a_deployment_was_noted_for(&store().await).await;
}

#[tokio::test]
async fn the_deployment_index_finds_the_record_in_one_call_in_the_fake() {
    finds_the_record_a_deployment_was_noted_for(&convoy::adapters::memory::MemoryStore::default()).await;
}
