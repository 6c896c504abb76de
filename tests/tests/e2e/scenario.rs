//! A release scenario that runs the same way on moto and on the in-memory fakes: upload a
//! manifest, push images, deliver the events AWS would send.

use std::sync::Arc;

use async_trait::async_trait;
use convoy::adapters::memory::{MemoryObjects, MemoryRegistry, MemoryStore, MemoryTasks};
use convoy::manifest::Policy;
use convoy::names::ReleaseKey;
use convoy::ports::Tasks;
use convoy::release::{ImageKey, Release};
use convoy::service::{Convoy, Settings};
use convoy_tests::fixtures;
use convoy_tests::moto::{ACCOUNT, REGION};
use convoy_tests::world::{EcsWorld, World};
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
    /// How many migration tasks exist for the release (started, running or stopped).
    async fn migration_tasks(&self, key: &ReleaseKey) -> usize;
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
    pub ecs: EcsWorld,
    pub convoy: Convoy,
}

impl MotoBackend {
    pub async fn new(containers: &[String]) -> Self {
        let world = World::new().await;
        let names: Vec<&str> = containers.iter().map(String::as_str).collect();
        world.create_repositories(&names).await;
        let ecs = world.ecs_service(SERVICE, &names).await;
        let convoy = world.convoy(&[SERVICE], &names);
        Self { world, ecs, convoy }
    }

    pub fn ecs_client(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.world.sdk)
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
    async fn migration_tasks(&self, key: &ReleaseKey) -> usize {
        let listed = self
            .ecs_client()
            .list_tasks()
            .cluster(&self.ecs.cluster)
            .started_by(convoy::service::started_by(key))
            .send()
            .await
            .expect("list tasks");
        listed.task_arns().len()
    }
}

/// The in-memory fakes: the same contracts, no I/O.
pub struct MemoryBackend {
    pub tasks: Arc<MemoryTasks>,
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
        let tasks = Arc::new(MemoryTasks::default());
        let shape = convoy::ports::ServiceShape {
            task_definition: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1".into(),
            network: Some(convoy::ports::AwsVpc {
                subnets: vec!["subnet-1".into()],
                security_groups: vec!["sg-1".into()],
                assign_public_ip: false,
            }),
            launch: convoy::ports::Launch::Type("FARGATE".into()),
            platform_version: None,
        };
        let names: Vec<&str> = containers.iter().map(String::as_str).collect();
        tasks.add_service(SERVICE, shape, &names);
        let convoy = Convoy {
            store: store.clone(),
            waits: store.clone(),
            active: store.clone(),
            manifests: objects.clone(),
            registry: registry.clone(),
            tasks: tasks.clone(),
            settings: Settings {
                state_bucket: MEMORY_BUCKET.into(),
                manifest_prefix: "releases/".into(),
                policy: Policy {
                    allowed_services: [SERVICE.parse().unwrap()].into(),
                    allowed_repositories: containers.iter().map(|c| c.parse().unwrap()).collect(),
                    region: REGION.into(),
                },
                cluster: "memory".into(),
                migration_timeout: chrono::Duration::seconds(1800),
                claim_lease: convoy::startup::CLAIM_LEASE,
            },
        };
        Self { tasks, registry, objects, convoy }
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
    async fn migration_tasks(&self, key: &ReleaseKey) -> usize {
        self.tasks.find("memory", &convoy::service::started_by(key)).await.unwrap().len()
    }
}
