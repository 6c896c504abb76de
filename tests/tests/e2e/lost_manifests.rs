//! A manifest whose upload event never arrived is found and opened by the reconciler, through the
//! same path as the event; a manifest that has its record is never read again.

use chrono::{Duration, Utc};
use convoy::release::{Stage, State};

use crate::scenario::*;

fn containers() -> Vec<String> {
    vec!["app".into(), "nginx".into()]
}

async fn record_etag(backend: &MotoBackend, release: &str) -> Option<String> {
    let head = backend.world.s3.head_object().bucket(&backend.world.bucket).key(format!("state/web/{release}.json"));
    head.send().await.ok().and_then(|h| h.e_tag)
}

#[tokio::test]
async fn a_manifest_put_without_its_event_is_opened_by_one_reconciler_run_and_the_next_run_does_nothing() {
    let backend = MotoBackend::new(&containers()).await;
    backend.push("app", "l1").await;
    backend.push("nginx", "l1").await;
    // l1: a good manifest; l2: a malformed one; neither event is delivered.
    backend.world.upload("releases/web/l1.json", &manifest_v1(&backend, "l1", &containers(), false)).await;
    backend.world.upload("releases/web/l2.json", "{ not json").await;
    // Older than the lookback (a day), a manifest is no longer looked for.
    backend.convoy.reconcile(Utc::now() + Duration::hours(25)).await.unwrap();
    assert!(backend.record(&release_key("l1")).await.is_none(), "outside the lookback nothing is opened");

    // l3: opened by its event, then its object is replaced, again without an event.
    let l3 = manifest_v1(&backend, "l3", &containers(), true);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/l3.json", &l3).await).await.unwrap();
    let l3_before = backend.record(&release_key("l3")).await.unwrap();
    backend.world.upload("releases/web/l3.json", &l3.replace("./migrate", "./migrate --again")).await;

    let reports = backend.convoy.reconcile(Utc::now()).await.unwrap();
    let opened: Vec<&str> = reports.iter().map(|r| r.release.as_str()).collect();
    assert!(opened.contains(&"web/l1") && opened.contains(&"web/l2"), "{reports:?}");
    let l1 = backend.record(&release_key("l1")).await.unwrap();
    assert!(matches!(l1.state, State::Deploying { .. }), "opened and carried on as the event would: {}", l1.state);
    assert_eq!(l1.source.key, "releases/web/l1.json");
    assert!(l1.source.version_id.is_some(), "the record names the version it read");
    let l2 = backend.record(&release_key("l2")).await.unwrap();
    assert!(matches!(&l2.state, State::Failed { stage: Stage::Manifest, .. }), "{}", l2.state);
    assert_eq!(backend.record(&release_key("l3")).await.unwrap(), l3_before, "a manifest with a record is not re-read");

    let etags =
        [record_etag(&backend, "l1").await, record_etag(&backend, "l2").await, record_etag(&backend, "l3").await];
    let again = backend.convoy.reconcile(Utc::now()).await.unwrap();
    assert!(again.iter().all(|r| !r.changed), "{again:?}");
    let after =
        [record_etag(&backend, "l1").await, record_etag(&backend, "l2").await, record_etag(&backend, "l3").await];
    assert_eq!(after, etags, "the second run wrote no record");
    assert_eq!(backend.deployments(&release_key("l1")).await, 1);
}

#[tokio::test]
async fn a_late_event_racing_the_reconciler_for_the_same_manifest_opens_one_release_once() {
    let backend = MotoBackend::new(&containers()).await;
    backend.push("app", "l5").await;
    backend.push("nginx", "l5").await;
    let upload = backend.upload("releases/web/l5.json", &manifest_v1(&backend, "l5", &containers(), false)).await;
    let (reconciled, delivered) =
        tokio::join!(backend.convoy.reconcile(Utc::now()), invoke_manifest_uploaded(&backend.convoy, upload.clone()));
    reconciled.unwrap();
    delivered.unwrap();
    invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    let record = backend.record(&release_key("l5")).await.unwrap();
    let accepted = record.timeline.iter().filter(|e| e.event == "manifest-accepted").count();
    assert_eq!(accepted, 1, "{:?}", record.timeline);
    assert!(record.timeline.iter().all(|e| e.event != "manifest-ignored"), "the same upload, read twice");
    assert_eq!(backend.deployments(&release_key("l5")).await, 1);
}
