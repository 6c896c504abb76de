//! The reconciler's pace, on the in-memory fakes: how many releases it visits at once, and how
//! it asks CodeDeploy in batches without missing a release.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::collections::HashSet;

use async_trait::async_trait;
use convoy::adapters::memory::MemoryCodeDeploy;
use convoy::error::{DeployError, RegistryError};
use convoy::names::{DeploymentId, DeploymentRef, HookExecutionId, ReleaseKey};
use convoy::ports::{CodeDeploy, CodeDeployRequest, DeploymentOrigin, DeploymentStatus, GroupWait, Lookup, Registry};
use convoy::release::{
    Decision, DeployMethod, DeploymentEnd, Event, ImageKey, ManifestSource, Release, Sighting, State, deployment,
    readiness,
};

use crate::scenario::*;

/// ECR as the reconciler meets it: each look-up takes a while, and the most asked at once is kept.
struct Slow {
    inner: Arc<dyn Registry>,
    in_flight: AtomicUsize,
    most: AtomicUsize,
    asked: AtomicUsize,
}

#[async_trait]
impl Registry for Slow {
    async fn resolve(&self, images: &[ImageKey]) -> Result<Lookup, RegistryError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.inner.resolve(images).await
    }
}

/// 40 releases still collecting (each visit looks its images up in ECR again): the reconciler
/// visits them 16 at a time (docs/concepts.md, "How a release flows"; `CONCURRENT_VISITS`), never more,
/// and visits each. On tokio's paused clock, so the look-ups' time costs nothing.
#[tokio::test(start_paused = true)]
async fn the_reconciler_visits_sixteen_releases_at_a_time_and_every_one() {
    let mut backend = MemoryBackend::new(&["app".to_owned()]);
    for n in 0..40 {
        let release = format!("c{n}");
        let manifest = manifest_v1(&backend, &release, &["app".to_owned()], false);
        let upload = backend.upload(&format!("releases/web/{release}.json"), &manifest).await;
        invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    }
    let slow =
        Arc::new(Slow { inner: backend.convoy.registry.clone(), in_flight: 0.into(), most: 0.into(), asked: 0.into() });
    backend.convoy.registry = slow.clone();
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(slow.most.load(Ordering::SeqCst), 16, "16 visits at a time");
    assert_eq!(slow.asked.load(Ordering::SeqCst), 40, "each release visited once");
    for n in 0..40 {
        let record = backend.record(&release_key(&format!("c{n}"))).await.unwrap();
        assert_eq!(record.state, State::Collecting);
    }
}

/// A release of one image following the CodeDeploy deployment `deployment` (as a start that went
/// well leaves it), stored, noted active and in the deployment index, as the start writes them.
async fn following(backend: &MemoryBackend, release: &str, deployment: &DeploymentId) -> ReleaseKey {
    let key = release_key(release);
    let text = manifest_v1(backend, release, &["app".to_owned()], false);
    let manifest = convoy::manifest::parse(text.as_bytes(), &key).unwrap();
    let source = ManifestSource {
        bucket: MEMORY_BUCKET.into(),
        key: format!("releases/{key}.json"),
        version_id: None,
        etag: Some(format!("\"{release}\"")),
    };
    let now = chrono::Utc::now();
    let opened = Release::open(key.clone(), source, manifest, now);
    let image = ImageKey::of(&opened.images.values().next().unwrap().image);
    let digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
    let events = [
        Event::from(readiness::Event::ImageFound { image, digest, at: now, via: Sighting::RegistryLookup }),
        Event::from(deployment::Event::Claimed {
            method: DeployMethod::CodeDeploy,
            at: now,
            lease: convoy::config::CLAIM_LEASE,
            gate: None,
        }),
        Event::from(deployment::Event::Started {
            deployment: deployment.clone().into(),
            task_definition: None,
            at: now,
        }),
    ];
    let Decision::Changed { release: deploying, .. } = opened.apply_all(&events).unwrap() else { panic!("no start") };
    assert!(matches!(deploying.state, State::Deploying { .. }));
    let convoy = &backend.convoy;
    convoy.store.create(&deploying).await.unwrap();
    convoy.active.mark_active(&key).await.unwrap();
    convoy.deployments.note(&DeploymentRef::CodeDeploy(deployment.clone()), &key).await.unwrap();
    key
}

/// 60 releases following CodeDeploy deployments, 40 of which ended without their event reaching
/// Convoy, and one more whose ended deployment CodeDeploy's batch answer leaves out: one run asks
/// CodeDeploy in batches of at most 25 (three `BatchGetDeployments` for 61 releases, not 61
/// `GetDeployment`), asks alone only the one the batch left out, and ends every release whose
/// deployment ended; the others still deploy.
#[tokio::test]
async fn the_reconciler_asks_codedeploy_in_batches_and_misses_no_ended_deployment() {
    let backend = MemoryBackend::new(&["app".to_owned()]);
    let request = |n: usize| CodeDeployRequest {
        application: "convoy".into(),
        deployment_group: SERVICE.into(),
        task_definition: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1".into(),
        container: "app".into(),
        port: 80,
        verify_function: "convoy-verify".into(),
        description: format!("release {n}"),
    };
    let mut ended = Vec::new();
    let mut running = Vec::new();
    for n in 0..60 {
        let id = backend.deployer.create(&request(n)).await.unwrap();
        let key = following(&backend, &format!("b{n:02}"), &id).await;
        if n % 3 == 2 {
            running.push(key);
        } else {
            backend.deployer.end(&id, DeploymentEnd::Succeeded);
            ended.push(key);
        }
    }
    // A deployment the batch answer leaves out (this CodeDeploy created none by that id), ended.
    let left_out = DeploymentId::new("d-LEFTOUT01").unwrap();
    backend.deployer.end(&left_out, DeploymentEnd::Succeeded);
    ended.push(following(&backend, "left-out", &left_out).await);

    let run = backend.convoy.reconcile_within(chrono::Utc::now(), None).await.unwrap();

    assert_eq!((run.visited, run.left), (61, 0));
    for key in &ended {
        assert_eq!(backend.record(key).await.unwrap().state, State::Succeeded, "{key} ended");
    }
    for key in &running {
        assert!(matches!(backend.record(key).await.unwrap().state, State::Deploying { .. }), "{key} still deploys");
    }
    let batches = backend.deployer.status_batches();
    assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [25, 25, 11], "61 deployments, 25 a request");
    let asked: HashSet<&DeploymentId> = batches.iter().flatten().collect();
    assert_eq!(asked.len(), 61, "each deployment asked once");
    assert_eq!(backend.deployer.asked_alone(), [left_out], "only the one the batch left out is asked alone");
}

/// CodeDeploy as the reconciler meets it when `BatchGetDeployments` fails (throttled, or not
/// granted): every other call goes to the fake.
struct NoBatches(Arc<MemoryCodeDeploy>);

#[async_trait]
impl CodeDeploy for NoBatches {
    async fn create(&self, request: &CodeDeployRequest) -> Result<DeploymentId, DeployError> {
        self.0.create(request).await
    }
    async fn find(&self, application: &str, group: &str, marker: &str) -> Result<Option<DeploymentId>, DeployError> {
        self.0.find(application, group, marker).await
    }
    async fn status(&self, deployment: &DeploymentId) -> Result<DeploymentStatus, DeployError> {
        self.0.status(deployment).await
    }
    async fn statuses(&self, _: &[DeploymentId]) -> Result<Vec<(DeploymentId, DeploymentStatus)>, DeployError> {
        Err(DeployError::Unavailable("Rate exceeded".into()))
    }
    async fn origin(&self, deployment: &DeploymentId) -> Result<Option<DeploymentOrigin>, DeployError> {
        self.0.origin(deployment).await
    }
    async fn answer_hook(
        &self,
        deployment: &DeploymentId,
        execution: &HookExecutionId,
        succeeded: bool,
    ) -> Result<(), DeployError> {
        self.0.answer_hook(deployment, execution, succeeded).await
    }
    async fn continue_traffic(&self, deployment: &DeploymentId) -> Result<(), DeployError> {
        self.0.continue_traffic(deployment).await
    }
    async fn roll_back(&self, deployment: &DeploymentId) -> Result<(), DeployError> {
        self.0.roll_back(deployment).await
    }
    async fn group_wait(&self, application: &str, group: &str) -> Result<GroupWait, DeployError> {
        self.0.group_wait(application, group).await
    }
    async fn test_traffic_hook(&self, deployment: &DeploymentId, target: &str) -> Result<Option<String>, DeployError> {
        self.0.test_traffic_hook(deployment, target).await
    }
}

/// When the batch request fails, each visit asks CodeDeploy alone, as it did before batches: a
/// lost end is still found in the same run.
#[tokio::test]
async fn when_the_batch_fails_each_visit_asks_codedeploy_alone_and_still_ends_the_release() {
    let mut backend = MemoryBackend::new(&["app".to_owned()]);
    let mut keys = Vec::new();
    for n in 0..30 {
        let id = DeploymentId::new(&format!("d-ALONE{n:04}")).unwrap();
        backend.deployer.end(&id, DeploymentEnd::Failed);
        keys.push(following(&backend, &format!("a{n:02}"), &id).await);
    }
    backend.convoy.codedeploy = Arc::new(NoBatches(backend.deployer.clone()));

    let run = backend.convoy.reconcile_within(chrono::Utc::now(), None).await.unwrap();

    assert_eq!(run.visited, 30);
    assert_eq!(backend.deployer.asked_alone().len(), 30, "each visit asked alone");
    for key in &keys {
        assert!(matches!(backend.record(key).await.unwrap().state, State::RolledBack { .. }), "{key} ended");
    }
}
