//! A group's release in the record: a section per service, images pinned once for every service
//! that runs them, the migration from the service the manifest names.

use std::collections::BTreeMap;

use super::test_support::{apply, t, unchanged};
use super::*;
use crate::manifest::{self, Submitted};
use crate::names::{ImageName, ServiceDeploymentArn, ServiceName};

const APP: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:r1";
const NGINX: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/nginx:r1";

fn key() -> ReleaseKey {
    ReleaseKey::new("shop".parse().unwrap(), "r1".parse().unwrap())
}

fn source(version: &str) -> ManifestSource {
    ManifestSource {
        bucket: "b".into(),
        key: "releases/shop/r1.json".into(),
        version_id: Some(version.into()),
        etag: None,
    }
}

fn service(name: &str) -> ServiceName {
    name.parse().unwrap()
}

/// web (CodeDeploy) and api (ECS native) take traffic; the pipeline service is `batch`.
fn opening() -> GroupOpening {
    let text = serde_json::json!({
        "version": 2, "release": "r1", "group": "shop",
        "images": {"app": APP, "nginx": NGINX},
        "services": {"web": {"containers": {"laravel": "app", "nginx": "nginx"}},
                     "api": {"containers": {"api": "app"}},
                     "batch": {"containers": {"batch": "app"}}},
        "migration": {"service": "api", "container": "api", "command": ["migrate"]},
        "order": ["web", ["api", "batch"]]
    })
    .to_string();
    let Submitted::Group(manifest) = manifest::read(text.as_bytes(), &key()).unwrap() else { panic!("a group") };
    let methods = BTreeMap::from([
        (service("web"), DeployMethod::CodeDeploy),
        (service("api"), DeployMethod::EcsNative),
        (service("batch"), DeployMethod::CodePipeline),
    ]);
    GroupOpening { manifest, methods }
}

fn found(image: &str, digest: &str, at: i64) -> readiness::Event {
    let image = ImageKey::of(&manifest::ImageRef::parse_uri(image).unwrap());
    readiness::Event::ImageFound { image, digest: Digest::new(digest).unwrap(), at: t(at), via: Sighting::PushEvent }
}

#[test]
fn an_admitted_groups_release_collects_its_images_once_with_a_waiting_section_per_service_in_order() {
    let release = Release::open_admitted(key(), source("v1"), Admitted::Group(Box::new(opening())), t(0));
    assert_eq!(release.state, State::Collecting);
    let Some(Effect::ResolveImages { images }) = release.pending_work().into_iter().next() else {
        panic!("its images are looked up")
    };
    assert_eq!(images.len(), 2, "app and nginx, each once for the three services");
    assert!(release.migration.is_none() && release.deployment.is_none() && release.part_of.is_none());
    let sections: Vec<(&str, usize, DeployMethod)> =
        release.services.iter().map(|s| (s.service.as_str(), s.step, s.method)).collect();
    assert_eq!(
        sections,
        [
            ("web", 0, DeployMethod::CodeDeploy),
            ("api", 1, DeployMethod::EcsNative),
            ("batch", 1, DeployMethod::CodePipeline)
        ]
    );
    assert!(release.services.iter().all(|s| s.state == SectionState::Waiting && s.previous_revision.is_none()));
    assert_eq!(release.group.as_ref().map(|g| g.group.as_str()), Some("shop"));
}

#[test]
fn a_groups_image_is_one_entry_pinned_once_for_every_container_that_runs_it() {
    let release = Release::open_group(key(), source("v1"), opening(), t(0));
    assert_eq!(release.images.len(), 2, "app (three services) and nginx, each once");
    assert_eq!(release.awaited_images().len(), 2);
    let (release, effects) = apply(&release, found(APP, "sha256:aa", 1));
    assert!(effects.is_empty(), "nginx is still awaited");
    let pinned = release.timeline.iter().filter(|e| e.event == "image-pinned").count();
    assert_eq!(pinned, 1, "one pin for the three services' containers");
    let (release, _) = apply(&release, found(NGINX, "sha256:bb", 2));
    let web = release.pinned_uris_of(&service("web"));
    let api = release.pinned_uris_of(&service("api"));
    let batch = release.pinned_uris_of(&service("batch"));
    let app = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:aa".to_owned();
    assert_eq!(
        web,
        [
            ("laravel".into(), app.clone()),
            ("nginx".into(), "123456789012.dkr.ecr.us-east-1.amazonaws.com/nginx@sha256:bb".into())
        ]
    );
    assert_eq!(api, [("api".into(), app.clone())]);
    assert_eq!(batch, [("batch".into(), app)]);
    assert!(unchanged(release.apply(&found(APP, "sha256:aa", 3)).unwrap()), "a replayed push changes nothing");
}

#[test]
fn the_last_pin_readies_the_one_migration_from_the_service_the_manifest_names() {
    let release = Release::open_group(key(), source("v1"), opening(), t(0));
    let (release, _) = apply(&release, found(APP, "sha256:aa", 1));
    let (release, effects) = apply(&release, found(NGINX, "sha256:bb", 2));
    assert_eq!(release.state, State::Ready { next: Stage::Migration });
    assert_eq!(effects, [Effect::StartMigration], "one migration for the release");
    assert_eq!(release.migration_service().as_str(), "api", "derived from api's task definition, not the group's");
    assert_eq!(release.declared_migration().map(|m| m.container.to_string()), Some("api".into()));
}

#[test]
fn the_image_gate_judges_each_image_of_the_release_once() {
    let release = Release::open_group(key(), source("v1"), opening(), t(0));
    let context = Context { gate: true, ..Context::default() };
    let pin = |r: &Release, e: readiness::Event| match e.apply_to(r, &context).unwrap() {
        Decision::Changed { release, effects, .. } => (*release, effects),
        Decision::Unchanged { why } => panic!("{why}"),
    };
    let (release, _) = pin(&release, found(APP, "sha256:aa", 1));
    let (release, effects) = pin(&release, found(NGINX, "sha256:bb", 2));
    assert_eq!(release.state, State::Gating { next: Stage::Migration });
    assert_eq!(effects, [Effect::JudgeImages]);
    let judged: Vec<String> = release.pinned_images().map(|(_, image, _)| image.uri()).collect();
    assert_eq!(judged, [APP, NGINX], "two digests judged, not four containers");
}

#[test]
fn a_groups_manifest_that_fixes_a_refused_upload_opens_the_release_with_its_sections() {
    let refused = Release::rejected(key(), source("v1"), "bad".into(), t(0));
    let fixed = readiness::Event::ManifestUploaded {
        source: source("v2"),
        outcome: Ok(Admitted::Group(Box::new(opening()))),
        drift: Vec::new(),
        at: t(2),
    };
    let (release, effects) = apply(&refused, fixed);
    assert_eq!(release.state, State::Collecting);
    assert!(matches!(effects.as_slice(), [Effect::ResolveImages { images }] if images.len() == 2), "{effects:?}");
    assert_eq!(release.services.len(), 3);
    assert_eq!(release.images.len(), 2);
    assert!(release.manifest.is_none() && release.group.is_some());
    let refused_again = readiness::Event::ManifestUploaded {
        source: source("v3"),
        outcome: Err("bad".into()),
        drift: Vec::new(),
        at: t(3),
    };
    let (release, effects) = apply(&release, refused_again);
    assert!(effects.is_empty(), "an accepted manifest is the release's contract: a later upload is ignored");
    assert_eq!((release.state, release.services.len()), (State::Collecting, 3));
}

#[test]
fn every_method_is_one_kind_of_section_and_the_record_reads_back_as_stored() {
    let mut release = Release::open_group(key(), source("v1"), opening(), t(0));
    let revisions = |family: &str, n: u32| format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{family}:{n}");
    for (section, deployment) in release.services.iter_mut().zip([
        DeploymentRef::from(crate::names::DeploymentId::new("d-ABCDEFGHI").unwrap()),
        DeploymentRef::from(
            ServiceDeploymentArn::new("arn:aws:ecs:us-east-1:123456789012:service-deployment/c/api/x").unwrap(),
        ),
        DeploymentRef::from(crate::names::PipelineExecutionId::new("e-1").unwrap()),
    ]) {
        section.previous_revision = Some(revisions(section.service.as_str(), 3));
        section.revision = Some(revisions(section.service.as_str(), 4));
        section.deployment = Some(deployment);
        section.state = SectionState::RolledBack { reason: "web failed its verification".into() };
    }
    let stored = serde_json::to_value(&release).unwrap();
    assert_eq!(stored["services"][1]["method"], "ecs-native");
    assert_eq!(
        stored["services"][1]["deployment"]["service-deployment"],
        "arn:aws:ecs:us-east-1:123456789012:service-deployment/c/api/x"
    );
    assert_eq!(
        stored["services"][0]["state"],
        serde_json::json!({"name": "rolled-back", "reason": "web failed its verification"})
    );
    assert_eq!(stored["images"].as_object().unwrap().len(), 2);
    let back: Release = serde_json::from_value(stored).unwrap();
    assert_eq!(back, release);
    let web = back.section(&service("web")).unwrap();
    assert_eq!(web.containers[&"nginx".parse().unwrap()], ImageName::new("nginx").unwrap());
    assert!(web.takes_traffic);
}

#[test]
fn a_release_of_one_service_has_no_sections_and_its_own_pinned_images() {
    let (release, event) = super::test_support::opened_with_its_image_found(true);
    let (release, _) = apply(&release, event);
    assert!(release.services.is_empty() && release.group.is_none());
    assert_eq!(release.pinned_uris_of(&release.key.service.clone()), release.pinned_uris());
    assert_eq!(release.migration_service(), &release.key.service);
    let stored = serde_json::to_value(&release).unwrap();
    assert!(stored.get("services").is_none() && stored.get("group").is_none(), "a one-service record keeps its shape");
}
