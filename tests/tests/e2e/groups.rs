//! A release of several services, a version 2 manifest (issue 25, step 1), on moto through the
//! real adapters: read and checked at the manifest stage against the operator's release group and
//! each service's settings, then ended there ("not deployed yet") before anything runs, however
//! often its events arrive.

use convoy::manifest::ImageRef;
use convoy::names::ReleaseKey;
use convoy::release::{ImageKey, SectionState, Stage, State};
use convoy_tests::world::service_settings;
use serde_json::{Value, json};

use crate::deploy::containers;
use crate::scenario::*;

const NOT_YET: &str = "multi-service releases are read and checked, but this version does not deploy them yet";

/// The backend's `web` and a `worker` (CodeDeploy too), released together as group `shop`.
async fn shop() -> MotoBackend {
    let mut backend = MotoBackend::new(&containers()).await;
    let worker =
        service_settings("worker", &backend.application, "worker", "http://10.0.0.1:8080", "manual", json!({}));
    let config = &mut backend.convoy.config;
    config.services.extend(convoy::settings::parse(&worker).expect("worker's settings"));
    config.policy.allowed_services.insert("worker".parse().unwrap());
    config.release_groups.insert("shop".into(), vec!["web".parse().unwrap(), "worker".parse().unwrap()]);
    backend
}

fn group_key(group: &str, release: &str) -> ReleaseKey {
    ReleaseKey::new(group.parse().unwrap(), release.parse().unwrap())
}

/// web runs app and nginx, the worker app: app is one image of the release. The migration runs
/// from web's task definition; the worker follows web's verification.
fn manifest_v2(backend: &MotoBackend, release: &str) -> Value {
    json!({
        "version": 2, "release": release, "group": "shop",
        "images": {"app": backend.uri("app", release), "nginx": backend.uri("nginx", release)},
        "services": {"web": {"containers": {"app": "app", "nginx": "nginx"}},
                     "worker": {"containers": {"worker": "app"}}},
        "migration": {"service": "web", "container": "app", "command": ["./migrate"]},
        "order": ["web", "worker"]
    })
}

fn ran_nothing(backend: &MotoBackend) {
    let started: Vec<String> = backend
        .standin
        .log()
        .iter()
        .filter(|r| {
            ["RunTask", "RegisterTaskDefinition", "CreateDeployment", "UpdateService"].contains(&r.operation.as_str())
        })
        .map(|r| r.operation.clone())
        .collect();
    assert!(started.is_empty(), "nothing runs for a release that cannot deploy: {started:?}");
}

#[tokio::test]
async fn a_groups_release_replayed_and_reordered_is_held_at_the_manifest_stage_with_no_run_task_and_no_image_awaited() {
    let backend = shop().await;
    let key = group_key("shop", "g1");
    let body = manifest_v2(&backend, "g1").to_string();
    // One image is in ECR before the manifest, one is pushed after: a release that opened would
    // pin both and start its migration.
    let (_, early) = backend.push("app", "g1").await;
    let upload = backend.upload("releases/shop/g1.json", &body).await;
    invoke_manifest_uploaded(&backend.convoy, upload.clone()).await.unwrap();
    let (_, late) = backend.push("nginx", "g1").await;
    for event in [late.clone(), upload.clone(), early, late, upload] {
        let handled = if event["source"] == "aws.s3" {
            invoke_manifest_uploaded(&backend.convoy, event).await
        } else {
            invoke_image_pushed(&backend.convoy, event).await
        };
        handled.expect("acknowledged, not retried");
    }

    let record = backend.record(&key).await.expect("a record for the group's release");
    assert_eq!(record.state, State::Failed { stage: Stage::Manifest, reason: NOT_YET.into() });
    let sections: Vec<(&str, usize, &SectionState)> =
        record.services.iter().map(|s| (s.service.as_str(), s.step, &s.state)).collect();
    assert_eq!(sections, [("web", 0, &SectionState::Waiting), ("worker", 1, &SectionState::Waiting)]);
    assert_eq!(record.migration_service().as_str(), "web");
    assert!(record.images.is_empty() && record.migration.is_none() && record.deployment.is_none());
    let rejected = record.timeline.iter().filter(|e| e.event == "manifest-rejected").count();
    assert_eq!(rejected, 1, "the same upload read again changes nothing");

    assert_eq!(backend.migration_tasks(&key).await, 0, "ECS lists no task of the release");
    ran_nothing(&backend);
    for container in ["app", "nginx"] {
        let image = ImageKey::of(&ImageRef::parse_uri(&backend.uri(container, "g1")).unwrap());
        let waiting = backend.convoy.waits.waiting_for(&image).await.unwrap();
        assert!(waiting.is_empty(), "{container}: no wait-list entry for a release that cannot deploy");
    }
}

#[tokio::test]
async fn a_service_outside_the_group_an_unknown_group_a_migration_service_not_released_or_a_v1_manifest_under_a_group_fails_at_the_manifest_stage()
 {
    let backend = shop().await;
    let with = |release: &str, change: &dyn Fn(&mut Value)| {
        let mut manifest = manifest_v2(&backend, release);
        change(&mut manifest);
        manifest.to_string()
    };
    let cases = [
        (
            "shop",
            "n1",
            with("n1", &|m| {
                m["services"]["billing"] = json!({"containers": {"billing": "app"}});
                m["order"] = json!(["web", ["worker", "billing"]]);
            }),
            "service \"billing\" is not in release group \"shop\" (its services: web, worker): a manifest cannot add a \
             service to its group",
        ),
        (
            "night",
            "n2",
            with("n2", &|m| m["group"] = "night".into()),
            "release group \"night\" is not in the operator's settings (release groups: shop); release groups live in \
             the settings file (docs/reference/settings.md)",
        ),
        (
            "shop",
            "n3",
            with("n3", &|m| m["migration"]["service"] = "scheduler".into()),
            "the migration runs from the task definition of service \"scheduler\", which the manifest does not release",
        ),
        (
            "shop",
            "n4",
            json!({"version": 1, "release": "n4", "service": "shop", "images": {"app": backend.uri("app", "n4")}})
                .to_string(),
            "\"releases/shop/n4.json\" names release group \"shop\": its releases are version 2 manifests, which name \
             the group and its services",
        ),
    ];
    for (group, release, body, reason) in cases {
        let upload = backend.upload(&format!("releases/{group}/{release}.json"), &body).await;
        invoke_manifest_uploaded(&backend.convoy, upload).await.expect("acknowledged");
        let record = backend.record(&group_key(group, release)).await.expect("a record with the reason");
        assert_eq!(record.state, State::Failed { stage: Stage::Manifest, reason: reason.into() }, "{release}");
        assert!(record.services.is_empty() && record.images.is_empty(), "{release}: nothing of it is kept");
    }
    ran_nothing(&backend);
}
