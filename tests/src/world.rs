//! The AWS world a test needs on moto: a versioned state bucket, ECR repositories, images, and a
//! Convoy wired to them through the real adapters.

use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::SdkConfig;
use convoy::config::Config;
use convoy::service::Convoy;

use crate::moto::{ACCOUNT, Moto, REGION};

/// A test's own corner of moto: its names never collide with another test's.
pub struct World {
    pub sdk: SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub bucket: String,
    /// Unique suffix for this world's repository names.
    pub id: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl World {
    /// A new world on the process's moto server, its names unique to it.
    pub async fn new() -> World {
        let id = format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        Self::named(&format!("convoy-state-{id}"), &id).await
    }

    /// A world with a given bucket; repository names get `-<id>` unless `id` is empty.
    pub async fn named(bucket: &str, id: &str) -> World {
        let moto = Moto::shared();
        let sdk = moto.sdk_config().await;
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
        let ecr = aws_sdk_ecr::Client::new(&sdk);
        let (bucket, id) = (bucket.to_owned(), id.to_owned());
        s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
        s3.put_bucket_versioning()
            .bucket(&bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("enable versioning");
        World { sdk, s3, ecr, bucket, id }
    }

    /// This world's name for a repository (`app` → `app-<id>`).
    pub fn repo(&self, name: &str) -> String {
        if self.id.is_empty() { name.to_owned() } else { format!("{name}-{}", self.id) }
    }

    pub async fn create_repositories(&self, names: &[&str]) {
        for name in names {
            self.ecr.create_repository().repository_name(self.repo(name)).send().await.expect("create repository");
        }
    }

    /// Pushes an image (a distinct manifest each call) and returns the digest ECR gave it.
    pub async fn push_image(&self, name: &str, tag: &str) -> String {
        let nonce = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023,
                       "digest": format!("sha256:{nonce}{nonce}")},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654,
                        "digest": format!("sha256:{nonce}{nonce}")}]
        });
        let output = self
            .ecr
            .put_image()
            .repository_name(self.repo(name))
            .image_tag(tag)
            .image_manifest(manifest.to_string())
            .send()
            .await
            .expect("put image");
        output.image().and_then(|i| i.image_id()).and_then(|i| i.image_digest()).expect("a digest").to_owned()
    }

    /// Uploads a manifest; returns (version id, size).
    pub async fn upload(&self, key: &str, body: &str) -> (Option<String>, u64) {
        let output = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .expect("upload manifest");
        (output.version_id, body.len() as u64)
    }

    /// The image URI of `name:tag` in this world.
    pub fn uri(&self, name: &str, tag: &str) -> String {
        format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{}:{tag}", self.repo(name))
    }

    /// Convoy's configuration for this world: its bucket, `services`, and its `repositories`.
    pub fn config(&self, services: &[&str], repositories: &[&str]) -> Config {
        let repos: Vec<String> = repositories.iter().map(|r| self.repo(r)).collect();
        let vars = [
            ("CONVOY_STATE_BUCKET", self.bucket.clone()),
            ("CONVOY_S3_FORCE_PATH_STYLE", "true".to_owned()),
            ("CONVOY_ALLOWED_SERVICES", services.join(",")),
            ("CONVOY_ALLOWED_REPOSITORIES", repos.join(",")),
        ];
        Config::from_lookup(&|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()), REGION)
            .expect("a valid test configuration")
    }

    /// Convoy on the real adapters against this world.
    pub fn convoy(&self, services: &[&str], repositories: &[&str]) -> Convoy {
        convoy::startup::wire(&self.sdk, &self.config(services, repositories))
    }
}
