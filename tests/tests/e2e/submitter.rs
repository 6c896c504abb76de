//! Who submitted a release, on moto: CI uploads the manifest with its own AWS identity (through
//! the stand-in, which records the write as a CloudTrail data event with the principal moto's STS
//! resolves from the signing key); the trail is moto's (its selectors and status as moto keeps
//! them); CloudTrail's delivery of its log files is the stand-in's (`deliver_trail_logs`, in the
//! documented layout). The reconciler reads the files with the real adapter.

use std::sync::Arc;

use aws_sdk_cloudtrail::types::{DataResource, EventSelector, ReadWriteType};
use convoy::release::{Release, State};
use convoy::submitter::Submitter;

use crate::scenario::*;

/// A trail `audit-<id>` in moto delivering to its own bucket, logging, with `selector`, and the
/// backend's Convoy given it (as the stack's `ManifestTrailArn` does): the trail's name.
async fn with_a_trail(backend: &mut MotoBackend, selector: EventSelector) -> String {
    let world = &backend.world;
    let (name, bucket) = (format!("audit-{}", world.id), format!("trail-logs-{}", world.id));
    world.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let cloudtrail = aws_sdk_cloudtrail::Client::new(&world.sdk);
    let created = cloudtrail.create_trail().name(&name).s3_bucket_name(&bucket).send().await.unwrap();
    cloudtrail.start_logging().name(&name).send().await.unwrap();
    cloudtrail.put_event_selectors().trail_name(&name).event_selectors(selector).send().await.unwrap();
    let arn = created.trail_arn.expect("moto names the trail's ARN");
    assert!(arn.ends_with(&format!(":trail/{name}")), "{arn}");
    backend.convoy.config.manifest_trail = Some(arn);
    let store = convoy::config::StoreSettings { state_bucket: world.bucket.clone(), force_path_style: true };
    backend.convoy.upload_trail = Arc::new(convoy::adapters::aws::TrailLogFiles::new(
        cloudtrail,
        convoy::adapters::aws::s3_client(&world.sdk, &store),
        convoy_tests::moto::ACCOUNT,
        convoy_tests::moto::REGION,
    ));
    name
}

/// Writes of the state bucket's objects (what CI's upload is), or management events only.
fn logging_writes_of(bucket: &str) -> EventSelector {
    let objects = DataResource::builder().r#type("AWS::S3::Object").values(format!("arn:aws:s3:::{bucket}/")).build();
    EventSelector::builder().read_write_type(ReadWriteType::WriteOnly).data_resources(objects).build()
}

fn management_only() -> EventSelector {
    EventSelector::builder().read_write_type(ReadWriteType::All).include_management_events(true).build()
}

/// CI, signed in as the role `github-ci` with the session `run-4cf03d1`, uploads release `s1`'s
/// manifest with its own credentials; S3's event reaches manifest-uploaded. Returns CI's session
/// ARN and the record.
async fn ci_submits(backend: &MotoBackend, release: &str) -> (String, Release) {
    backend.push("app", release).await;
    let manifest = manifest_v1(backend, release, &["app".to_owned()], false);
    let (ci, sdk) = backend.role_session_sdk("github-ci", "run-4cf03d1").await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let key = format!("releases/web/{release}.json");
    let put = s3.put_object().bucket(&backend.world.bucket).key(&key).body(manifest.clone().into_bytes().into());
    let version = put.send().await.unwrap().version_id;
    let event =
        convoy_tests::fixtures::s3_eventbridge(&backend.world.bucket, &key, version.as_deref(), manifest.len() as u64);
    invoke_manifest_uploaded(&backend.convoy, event).await.unwrap();
    (ci, backend.record(&release_key(release)).await.unwrap())
}

fn submitter(record: &Release) -> &Submitter {
    record.submitter.as_ref().expect("every new record says who submitted it")
}

#[tokio::test]
async fn the_record_names_the_principal_the_trails_delivered_log_file_has_for_the_manifests_write() {
    let mut backend = MotoBackend::new(&["app".to_owned()]).await;
    let bucket = backend.world.bucket.clone();
    let trail = with_a_trail(&mut backend, logging_writes_of(&bucket)).await;
    let (ci, opened) = ci_submits(&backend, "s1").await;
    assert!(ci.contains(":assumed-role/github-ci-") && ci.ends_with("/run-4cf03d1"), "{ci}");
    assert!(matches!(submitter(&opened), Submitter::Looking { .. }), "{:?}", opened.submitter);
    assert!(convoy::status::render(&opened).contains("submitted not yet known: looking in trail arn:aws:cloudtrail:"));

    // Before CloudTrail delivers: the reconciler looks, finds no file, and changes nothing.
    let key = release_key("s1");
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let before = backend.record(&key).await.unwrap();
    assert_eq!(before.submitter, opened.submitter);
    assert_eq!(before.timeline, opened.timeline);

    // A file someone wrote outside the trail's folder, naming another principal, is no log file.
    let forged = serde_json::json!({"Records": [{"eventSource": "s3.amazonaws.com", "eventName": "PutObject",
        "userIdentity": {"arn": "arn:aws:iam::123456789012:user/mallory"}, "eventID": "forged",
        "eventTime": chrono::Utc::now().to_rfc3339(), "recipientAccountId": convoy_tests::moto::ACCOUNT,
        "requestParameters": {"bucketName": bucket, "key": "releases/web/s1.json"},
        "responseElements": {"x-amz-version-id": opened.source.version_id}}]});
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gzip, forged.to_string().as_bytes()).unwrap();
    let trail_bucket = format!("trail-logs-{}", backend.world.id);
    let forged_key = format!(
        "uploads/AWSLogs/{}/CloudTrail/{}/{}",
        convoy_tests::moto::ACCOUNT,
        convoy_tests::moto::REGION,
        chrono::Utc::now().format("%Y/%m/%d/123456789012_CloudTrail_us-east-1_%Y%m%dT%H%MZ_forgedforgedforg.json.gz")
    );
    let body = gzip.finish().unwrap();
    backend.world.s3.put_object().bucket(&trail_bucket).key(&forged_key).body(body.into()).send().await.unwrap();
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(backend.record(&key).await.unwrap().submitter, opened.submitter);

    // CloudTrail delivers the trail's file (with the writes of Convoy's own records too).
    let file = backend.standin.deliver_trail_logs(&backend.world.sdk, &trail).await.expect("a log file");
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let found = backend.record(&key).await.unwrap();
    let Submitter::Found(uploader) = submitter(&found) else { panic!("{:?}", found.submitter) };
    assert_eq!(uploader.principal_arn, ci);
    assert_eq!(uploader.session_name.as_deref(), Some("run-4cf03d1"));
    assert_eq!(uploader.operation, "s3:PutObject");
    assert_eq!(uploader.log_file, format!("s3://{trail_bucket}/{file}"));
    assert!(found.timeline.iter().filter(|e| e.event == "submitted-by").count() == 1, "{:?}", found.timeline);
    let status = convoy::status::render(&found);
    println!("{status}");
    assert!(status.contains(&format!("submitted {ci} (s3:PutObject at ")), "{status}");
    assert_eq!(found.state, opened.state, "who submitted changes nothing else");

    // Settled: another run, or the same file again, reads nothing and writes nothing.
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(backend.record(&key).await.unwrap(), found);
}

#[tokio::test]
async fn without_a_data_event_trail_the_record_says_unknown_and_a_write_never_delivered_is_not_found() {
    // No trail given: said at creation.
    let backend = MotoBackend::new(&["app".to_owned()]).await;
    let (_, record) = ci_submits(&backend, "s2").await;
    let status = convoy::status::render(&record);
    assert!(
        status.contains("submitted unknown: no data-event trail: Convoy was given none (the stack's ManifestTrailArn)"),
        "{status}"
    );

    // A trail of management events only: said once the reconciler asked CloudTrail.
    let mut backend = MotoBackend::new(&["app".to_owned()]).await;
    let trail = with_a_trail(&mut backend, management_only()).await;
    ci_submits(&backend, "s3").await;
    assert!(backend.standin.deliver_trail_logs(&backend.world.sdk, &trail).await.is_none(), "nothing selected");
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let record = backend.record(&release_key("s3")).await.unwrap();
    let Submitter::Unknown { reason } = submitter(&record) else { panic!("{:?}", record.submitter) };
    let arn = backend.convoy.config.manifest_trail.clone().unwrap();
    let object = format!("arn:aws:s3:::{}/releases/web/s3.json", backend.world.bucket);
    assert_eq!(reason, &format!("no data-event trail: trail {arn} logs no S3 data events for writes to {object}"));

    // A trail that logs the writes, whose file never arrives: not found once the hour is over.
    let mut backend = MotoBackend::new(&["app".to_owned()]).await;
    let bucket = backend.world.bucket.clone();
    with_a_trail(&mut backend, logging_writes_of(&bucket)).await;
    let (_, opened) = ci_submits(&backend, "s4").await;
    let key = release_key("s4");
    backend.convoy.reconcile(chrono::Utc::now() + chrono::Duration::minutes(59)).await.unwrap();
    assert_eq!(backend.record(&key).await.unwrap().submitter, opened.submitter, "still within the hour");
    backend.convoy.reconcile(chrono::Utc::now() + chrono::Duration::minutes(61)).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    let Submitter::NotFound { reason, .. } = submitter(&record) else { panic!("{:?}", record.submitter) };
    assert!(reason.contains("but no log file it delivered by"), "{reason}");
    assert!(!matches!(record.state, State::Failed { .. }), "who submitted never fails a release: {}", record.state);
}
