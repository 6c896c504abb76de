//! The readiness gate through the real handlers and adapters on moto, fed the documented events.

use convoy::release::State;
use convoy_tests::fixtures;
use convoy_tests::moto::{ACCOUNT, sdk_config_for};
use serde_json::json;

use crate::scenario::*;

fn containers() -> Vec<String> {
    vec!["app".into(), "nginx".into()]
}

fn digest_of(release: &convoy::release::Release, container: &str) -> String {
    release.images[&container.parse().unwrap()].digest.as_ref().expect("pinned").to_string()
}

#[tokio::test]
async fn a_manifest_uploaded_before_its_images_becomes_ready_when_the_last_image_is_pushed() {
    let backend = MotoBackend::new(&containers()).await;
    let manifest = manifest_v1(&backend, "4cf03d1", &containers(), true);
    let upload = backend.upload("releases/web/4cf03d1.json", &manifest).await;
    invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    let key = release_key("4cf03d1");
    assert_eq!(backend.record(&key).await.unwrap().state, State::Collecting);

    let (app, push_app) = backend.push("app", "4cf03d1").await;
    invoke_image_pushed(&backend.convoy, push_app).await.unwrap();
    assert_eq!(backend.record(&key).await.unwrap().state, State::Collecting);

    let (nginx, push_nginx) = backend.push("nginx", "4cf03d1").await;
    let response = invoke_image_pushed(&backend.convoy, push_nginx).await.unwrap();
    assert_eq!(response[0]["requested"], json!([{"effect": "start-migration"}]));

    let record = backend.record(&key).await.unwrap();
    assert!(matches!(record.state, State::Migrating { .. }), "the migration started at once: {}", record.state);
    assert_eq!(digest_of(&record, "app"), app);
    assert_eq!(digest_of(&record, "nginx"), nginx);
}

#[tokio::test]
async fn images_pushed_before_the_manifest_are_found_in_ecr_when_it_arrives() {
    let backend = MotoBackend::new(&containers()).await;
    let (app, push_app) = backend.push("app", "4cf03d1").await;
    let (nginx, _) = backend.push("nginx", "4cf03d1").await;
    // The push event of an image no manifest names yet is acknowledged and changes nothing.
    assert_eq!(invoke_image_pushed(&backend.convoy, push_app).await.unwrap(), json!([]));

    let manifest = manifest_v1(&backend, "4cf03d1", &containers(), false);
    let upload = backend.upload("releases/web/4cf03d1.json", &manifest).await;
    let response = invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    assert_eq!(response[0]["requested"], json!([{"effect": "start-deployment"}]));

    let record = backend.record(&release_key("4cf03d1")).await.unwrap();
    assert!(matches!(record.state, State::Deploying { .. }), "{}", record.state);
    assert_eq!(digest_of(&record, "app"), app);
    assert_eq!(digest_of(&record, "nginx"), nginx);
}

/// S3's own event notification (not the form template.yaml delivers, which every other test
/// sends) is read too: the handler accepts both.
#[tokio::test]
async fn the_notification_form_of_the_s3_event_is_read_too() {
    let backend = MotoBackend::new(&containers()).await;
    backend.push("app", "r2").await;
    backend.push("nginx", "r2").await;
    let manifest = manifest_v1(&backend, "r2", &containers(), true);
    let (version, size) = backend.world.upload("releases/web/r2.json", &manifest).await;
    let event = fixtures::s3_notification(&backend.world.bucket, "releases/web/r2.json", version.as_deref(), size);
    invoke_manifest_uploaded(&backend.convoy, event).await.unwrap();
    let record = backend.record(&release_key("r2")).await.unwrap();
    assert!(matches!(record.state, State::Migrating { .. }), "{}", record.state);
    assert_eq!(record.source.version_id, version, "the record names the exact object version it read");
}

/// One upload delivered in both forms (an S3 notification configured beside the EventBridge
/// rule): the same object version, read twice, opens one release once.
#[tokio::test]
async fn one_upload_delivered_in_both_forms_opens_its_release_once() {
    let backend = MotoBackend::new(&containers()).await;
    let manifest = manifest_v1(&backend, "r3", &containers(), false);
    let (version, size) = backend.world.upload("releases/web/r3.json", &manifest).await;
    let bucket = &backend.world.bucket;
    let bridged = fixtures::s3_eventbridge(bucket, "releases/web/r3.json", version.as_deref(), size);
    let notified = fixtures::s3_notification(bucket, "releases/web/r3.json", version.as_deref(), size);
    invoke_manifest_uploaded(&backend.convoy, bridged).await.unwrap();
    let opened = backend.record(&release_key("r3")).await.unwrap();
    invoke_manifest_uploaded(&backend.convoy, notified).await.unwrap();
    let again = backend.record(&release_key("r3")).await.unwrap();
    assert_eq!(again, opened, "the second form of the same upload changed nothing");
    assert_eq!(again.timeline.iter().filter(|e| e.event == "manifest-accepted").count(), 1);
}

#[tokio::test]
async fn imagedefinitions_json_takes_its_identity_from_the_key() {
    let backend = MotoBackend::new(&containers()).await;
    let (app, _) = backend.push("app", "r3").await;
    let body = json!([{"name": "app", "imageUri": backend.uri("app", "r3")}]).to_string();
    let upload = backend.upload("releases/web/r3.json", &body).await;
    invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    let record = backend.record(&release_key("r3")).await.unwrap();
    assert!(matches!(record.state, State::Deploying { .. }), "{}", record.state);
    assert_eq!(digest_of(&record, "app"), app);
}

#[tokio::test]
async fn a_tag_pushed_again_after_readiness_changes_no_pinned_digest() {
    let backend = MotoBackend::new(&containers()).await;
    let manifest = manifest_v1(&backend, "r4", &containers(), true);
    let (app, _) = backend.push("app", "r4").await;
    let (nginx, _) = backend.push("nginx", "r4").await;
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/r4.json", &manifest).await).await.unwrap();
    let before = backend.record(&release_key("r4")).await.unwrap();

    let (moved, push) = backend.push("app", "r4").await;
    assert_ne!(moved, app, "the tag really moved in ECR");
    let response = invoke_image_pushed(&backend.convoy, push).await.unwrap();
    assert_eq!(response[0]["changed"], json!(false));

    let after = backend.record(&release_key("r4")).await.unwrap();
    assert_eq!(after, before, "not even a timeline entry: the record is untouched");
    assert_eq!(digest_of(&after, "app"), app);
    assert_eq!(digest_of(&after, "nginx"), nginx);
}

#[tokio::test]
async fn a_duplicate_push_costs_no_write() {
    let backend = MotoBackend::new(&containers()).await;
    let manifest = manifest_v1(&backend, "r5", &containers(), true);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/r5.json", &manifest).await).await.unwrap();
    let (_, push) = backend.push("app", "r5").await;
    invoke_image_pushed(&backend.convoy, push.clone()).await.unwrap();
    let etag = |w: &convoy_tests::world::World| {
        let s3 = w.s3.clone();
        let bucket = w.bucket.clone();
        async move { s3.head_object().bucket(bucket).key("state/web/r5.json").send().await.unwrap().e_tag }
    };
    let before = etag(&backend.world).await;
    let response = invoke_image_pushed(&backend.convoy, push).await.unwrap();
    assert_eq!(response[0]["changed"], json!(false));
    assert_eq!(etag(&backend.world).await, before);
}

#[tokio::test]
async fn a_push_to_a_repository_convoy_does_not_watch_is_ignored() {
    let backend = MotoBackend::new(&containers()).await;
    let event =
        fixtures::ecr_push(ACCOUNT, "someone-elses-repo", "v1", "sha256:abcd", "2026-01-01T00:00:00Z".parse().unwrap());
    assert_eq!(invoke_image_pushed(&backend.convoy, event).await.unwrap(), json!([]));
}

#[tokio::test]
async fn the_documented_push_fixture_is_acknowledged_as_a_foreign_repository() {
    let backend = MotoBackend::new(&containers()).await;
    let response = invoke_image_pushed(&backend.convoy, fixtures::ecr_push_fixture()).await.unwrap();
    assert_eq!(response, json!([]));
}

/// The documented push event, whole, under another kind's detail-type or source is refused for
/// its kind, with the kind named, and nothing else: each field a push needs is there.
/// (`events.rs`'s own `an_ec2_event_is_not_an_ecr_event` sends an event missing them.)
#[test]
fn the_documented_push_under_another_kind_is_refused_for_its_kind() {
    let received = chrono::Utc::now();
    assert!(convoy::events::parse_push(fixtures::ecr_push_fixture(), received).is_ok());
    for (field, other) in [("detail-type", "EC2 Instance State-change Notification"), ("source", "aws.ec2")] {
        let mut event = fixtures::ecr_push_fixture();
        event[field] = json!(other);
        let refused = convoy::events::parse_push(event, received).unwrap_err();
        assert!(refused.starts_with("expected an ECR Image Action from aws.ecr, got "), "{field}: {refused}");
    }
}

#[tokio::test]
async fn failed_and_untagged_pushes_are_ignored_with_a_reason() {
    let backend = MotoBackend::new(&containers()).await;
    let mut failed = fixtures::ecr_push_fixture();
    failed["detail"]["result"] = json!("FAILURE");
    let response = invoke_image_pushed(&backend.convoy, failed).await.unwrap();
    assert!(response["ignored"].as_str().unwrap().contains("FAILURE"));
    let mut untagged = fixtures::ecr_push_fixture();
    untagged["detail"].as_object_mut().unwrap().remove("image-tag");
    let response = invoke_image_pushed(&backend.convoy, untagged).await.unwrap();
    assert!(response["ignored"].as_str().unwrap().contains("untagged"));
}

#[tokio::test]
async fn an_object_outside_the_manifest_prefix_is_ignored() {
    let backend = MotoBackend::new(&containers()).await;
    let upload = backend.upload("uploads/notes.txt", "hello").await;
    let response = invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    assert_eq!(response, json!([]));
    let listed =
        backend.world.s3.list_objects_v2().bucket(&backend.world.bucket).prefix("state/").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0), "no record was written");
}

#[tokio::test]
async fn an_outage_fails_the_invocation_so_that_aws_retries_it() {
    // A closed port: every call fails to connect, as in an S3 outage.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sdk = sdk_config_for(&format!("http://127.0.0.1:{port}")).await;
    let backend = MotoBackend::new(&containers()).await;
    let convoy = convoy::startup::wire(&sdk, &backend.world.config(&["web"], &["app", "nginx"])).unwrap();
    let manifest = manifest_v1(&backend, "r6", &containers(), true);
    let upload = backend.upload("releases/web/r6.json", &manifest).await;
    let err = invoke_manifest_uploaded(&convoy, upload).await.unwrap_err();
    assert!(err.error_message.contains("unavailable"), "{err:?}");
    assert_eq!(err.error_type, "Convoy.Retryable", "Lambda is told a retry can help");
    let push = fixtures::ecr_push(
        ACCOUNT,
        &backend.world.repo("app"),
        "r6",
        "sha256:abcd",
        "2026-01-01T00:00:00Z".parse().unwrap(),
    );
    assert!(invoke_image_pushed(&convoy, push).await.is_err());
}

#[tokio::test]
async fn status_renders_state_images_with_digests_and_the_timeline() {
    let backend = MotoBackend::new(&containers()).await;
    let manifest = manifest_v1(&backend, "r7", &containers(), true);
    let (app, _) = backend.push("app", "r7").await;
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/r7.json", &manifest).await).await.unwrap();
    let text = convoy::status::render(&backend.record(&release_key("r7")).await.unwrap());
    assert!(text.contains("state     Collecting"), "{text}");
    assert!(text.contains(&format!("{}  {app}", backend.uri("app", "r7"))), "{text}");
    assert!(text.contains("(waiting for push)"), "{text}");
    assert!(text.contains("manifest-accepted") && text.contains("image-pinned"), "{text}");
}

#[tokio::test]
async fn a_tag_pushed_twice_within_one_second_pins_what_ecr_says_it_points_to_last() {
    // Delivered in push order and in reverse: EventBridge `time` has whole seconds, so the
    // two events carry the same time and cannot say which push came last. ECR can.
    for (release, reversed) in [("s1", false), ("s2", true)] {
        let backend = MotoBackend::new(&containers()).await;
        let manifest = manifest_v1(&backend, release, &containers(), true);
        invoke_manifest_uploaded(
            &backend.convoy,
            backend.upload(&format!("releases/web/{release}.json"), &manifest).await,
        )
        .await
        .unwrap();
        let key = release_key(release);
        // A whole second, as EventBridge writes it, a little in the past.
        let second = (chrono::Utc::now() - chrono::Duration::seconds(2)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let (first, mut first_push) = backend.push("app", release).await;
        let (last, mut last_push) = backend.push("app", release).await;
        assert_ne!(first, last, "the tag really moved in ECR");
        first_push["time"] = json!(&second);
        last_push["time"] = json!(&second);
        let (a, b) = if reversed { (last_push, first_push) } else { (first_push, last_push) };
        invoke_image_pushed(&backend.convoy, a.clone()).await.unwrap();
        invoke_image_pushed(&backend.convoy, b.clone()).await.unwrap();
        // Replays of either changes nothing.
        invoke_image_pushed(&backend.convoy, a).await.unwrap();
        invoke_image_pushed(&backend.convoy, b).await.unwrap();

        let record = backend.record(&key).await.unwrap();
        assert_eq!(digest_of(&record, "app"), last, "reversed: {reversed}");
        // Each push is confirmed with ECR, which names the tag's last digest: no push of that
        // second is left unordered any more (the `image-unordered` entry this test once saw).
        assert_eq!(record.state, State::Collecting, "nginx is still awaited");
    }
}

/// The outside run's case: the tag was looked up in ECR when the manifest arrived, and CI pushed
/// it again within the same second. The push's whole-second `time` reads as older than the
/// look-up's sub-second time; ECR, asked when the push is seen, names the newer digest.
#[tokio::test]
async fn a_tag_looked_up_then_pushed_again_within_the_same_second_ships_the_digest_ecr_names() {
    let backend = MotoBackend::new(&containers()).await;
    let (looked_up, _) = backend.push("app", "ss1").await;
    let manifest = manifest_v1(&backend, "ss1", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/ss1.json", &manifest).await).await.unwrap();
    let key = release_key("ss1");
    assert_eq!(digest_of(&backend.record(&key).await.unwrap(), "app"), looked_up, "the look-up pinned it");
    let (pushed, mut push) = backend.push("app", "ss1").await;
    assert_ne!(pushed, looked_up, "the tag really moved in ECR");
    // The push's time, as EventBridge writes it: the whole second the look-up was made in.
    let seen = backend.record(&key).await.unwrap().images.values().find_map(|s| s.seen_at).unwrap();
    push["time"] = json!(seen.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    invoke_image_pushed(&backend.convoy, push).await.unwrap();
    assert_eq!(digest_of(&backend.record(&key).await.unwrap(), "app"), pushed, "the digest ECR names");
    let (_, nginx) = backend.push("nginx", "ss1").await;
    invoke_image_pushed(&backend.convoy, nginx).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    assert!(!matches!(record.state, State::Collecting), "ready once nginx is in: {}", record.state);
    assert_eq!(digest_of(&record, "app"), pushed, "it ships what the tag names");
}
