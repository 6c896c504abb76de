//! A release scenario that runs the same way on moto and on the in-memory fakes: upload a
//! manifest, push images, deliver the events AWS would send.

use std::sync::Arc;

use async_trait::async_trait;
use convoy::adapters::memory::{MemoryObjects, MemoryRegistry, MemoryStore};
use convoy::manifest::Policy;
use convoy::names::ReleaseKey;
use convoy::release::{ImageKey, Release};
use convoy::service::{Convoy, Settings};
use convoy_tests::fixtures;
use convoy_tests::moto::{ACCOUNT, REGION};
use convoy_tests::world::World;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

pub const SERVICE: &str = "web";

/// Delivers an event to a handler the way the Lambda runtime would.
pub async fn invoke_image_pushed(convoy: &Convoy, payload: Value) -> Result<Value, lambda_runtime::Error> {
    convoy::handlers::image_pushed(convoy, LambdaEvent::new(payload, Context::default())).await
}

pub async fn invoke_manifest_uploaded(convoy: &Convoy, payload: Value) -> Result<Value, lambda_runtime::Error> {
    convoy::handlers::manifest_uploaded(convoy, LambdaEvent::new(payload, Context::default())).await
}

/// The outside world of a scenario: where manifests are uploaded and images pushed.
#[async_trait]
pub trait Backend: Send + Sync {
    fn convoy(&self) -> &Convoy;
    fn uri(&self, container: &str, tag: &str) -> String;
    /// Uploads the manifest object; returns the S3 event AWS would send.
    async fn upload(&self, key: &str, body: &str) -> Value;
    /// Pushes an image; returns its digest and the ECR event AWS would send.
    async fn push(&self, container: &str, tag: &str) -> (String, Value);
    async fn record(&self, key: &ReleaseKey) -> Option<Release>;
}

pub fn manifest_v1(backend: &dyn Backend, release: &str, containers: &[String], migration: bool) -> String {
    let images: serde_json::Map<String, Value> =
        containers.iter().map(|c| (c.clone(), Value::String(backend.uri(c, release)))).collect();
    let mut manifest = serde_json::json!({"version": 1, "release": release, "service": SERVICE, "images": images});
    if migration {
        manifest["migration"] = serde_json::json!({"container": containers[0], "command": ["./migrate"]});
    }
    manifest.to_string()
}

pub fn release_key(release: &str) -> ReleaseKey {
    ReleaseKey::new(SERVICE.parse().unwrap(), release.parse().unwrap())
}

/// moto through the real adapters.
pub struct MotoBackend {
    pub world: World,
    pub convoy: Convoy,
}

impl MotoBackend {
    pub async fn new(containers: &[String]) -> Self {
        let world = World::new().await;
        let names: Vec<&str> = containers.iter().map(String::as_str).collect();
        world.create_repositories(&names).await;
        let convoy = world.convoy(&[SERVICE], &names);
        Self { world, convoy }
    }
}

#[async_trait]
impl Backend for MotoBackend {
    fn convoy(&self) -> &Convoy {
        &self.convoy
    }
    fn uri(&self, container: &str, tag: &str) -> String {
        self.world.uri(container, tag)
    }
    async fn upload(&self, key: &str, body: &str) -> Value {
        let (version, size) = self.world.upload(key, body).await;
        fixtures::s3_notification(&self.world.bucket, key, version.as_deref(), size)
    }
    async fn push(&self, container: &str, tag: &str) -> (String, Value) {
        let digest = self.world.push_image(container, tag).await;
        let event =
            fixtures::ecr_push(ACCOUNT, &self.world.repo(container), tag, &digest, &chrono::Utc::now().to_rfc3339());
        (digest, event)
    }
    async fn record(&self, key: &ReleaseKey) -> Option<Release> {
        self.convoy.store.load(key).await.unwrap().map(|s| s.release)
    }
}

/// The in-memory fakes: the same contracts, no I/O.
pub struct MemoryBackend {
    pub registry: Arc<MemoryRegistry>,
    pub objects: Arc<MemoryObjects>,
    pub convoy: Convoy,
}

pub const MEMORY_BUCKET: &str = "convoy-state";

impl MemoryBackend {
    pub fn new(containers: &[String]) -> Self {
        let store = Arc::new(MemoryStore::default());
        let registry = Arc::new(MemoryRegistry::default());
        let objects = Arc::new(MemoryObjects::default());
        let convoy = Convoy {
            store: store.clone(),
            waits: store.clone(),
            manifests: objects.clone(),
            registry: registry.clone(),
            settings: Settings {
                state_bucket: MEMORY_BUCKET.into(),
                manifest_prefix: "releases/".into(),
                policy: Policy {
                    allowed_services: [SERVICE.parse().unwrap()].into(),
                    allowed_repositories: containers.iter().map(|c| c.parse().unwrap()).collect(),
                    region: REGION.into(),
                },
            },
        };
        Self { registry, objects, convoy }
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn convoy(&self) -> &Convoy {
        &self.convoy
    }
    fn uri(&self, container: &str, tag: &str) -> String {
        format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{container}:{tag}")
    }
    async fn upload(&self, key: &str, body: &str) -> Value {
        let version = self.objects.put(MEMORY_BUCKET, key, body);
        fixtures::s3_notification(MEMORY_BUCKET, key, Some(&version), body.len() as u64)
    }
    async fn push(&self, container: &str, tag: &str) -> (String, Value) {
        let digest = format!(
            "sha256:{:016x}{:016x}{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..),
            fastrand::u64(..),
            fastrand::u64(..)
        );
        let image = ImageKey {
            registry: ACCOUNT.parse().unwrap(),
            repository: container.parse().unwrap(),
            tag: tag.parse().unwrap(),
        };
        self.registry.push(image, digest.parse().unwrap());
        let event = fixtures::ecr_push(ACCOUNT, container, tag, &digest, &chrono::Utc::now().to_rfc3339());
        (digest, event)
    }
    async fn record(&self, key: &ReleaseKey) -> Option<Release> {
        self.convoy.store.load(key).await.unwrap().map(|s| s.release)
    }
}
