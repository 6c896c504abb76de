use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ecr::types::ImageIdentifier;

use crate::error::RegistryError;
use crate::names::{AccountId, Digest, ImageTag, RepositoryName};
use crate::ports::Registry;
use crate::release::ImageKey;

/// ECR, asked with `BatchGetImage`: one call per repository answers for all its tags at once and
/// lists missing tags as failures instead of failing the call (as `DescribeImages` would).
#[derive(Clone)]
pub struct EcrRegistry {
    client: aws_sdk_ecr::Client,
}

impl EcrRegistry {
    pub fn new(client: aws_sdk_ecr::Client) -> Self {
        Self { client }
    }
}

/// ECR accepts at most 100 image ids per `BatchGetImage`.
const BATCH: usize = 100;

#[async_trait]
impl Registry for EcrRegistry {
    async fn resolve(&self, images: &[ImageKey]) -> Result<Vec<(ImageKey, Digest)>, RegistryError> {
        let mut by_repository: BTreeMap<(&AccountId, &RepositoryName), Vec<&ImageTag>> = BTreeMap::new();
        for image in images {
            by_repository.entry((&image.registry, &image.repository)).or_default().push(&image.tag);
        }
        let mut found = Vec::new();
        for ((registry, repository), tags) in by_repository {
            for chunk in tags.chunks(BATCH) {
                let ids = chunk.iter().map(|tag| ImageIdentifier::builder().image_tag(tag.as_str()).build()).collect();
                let result = self
                    .client
                    .batch_get_image()
                    .registry_id(registry.as_str())
                    .repository_name(repository.as_str())
                    .set_image_ids(Some(ids))
                    .send()
                    .await;
                let output = match result {
                    Ok(output) => output,
                    // The repository may be created by the same CI run that pushes to it.
                    Err(err) if err.as_service_error().is_some_and(|e| e.is_repository_not_found_exception()) => {
                        continue;
                    }
                    Err(err) => {
                        return Err(RegistryError::Unavailable(super::describe(&err)));
                    }
                };
                for image in output.images() {
                    let Some(id) = image.image_id() else { continue };
                    let (Some(tag), Some(digest)) = (id.image_tag(), id.image_digest()) else { continue };
                    let (Ok(tag), Ok(digest)) = (ImageTag::new(tag), Digest::new(digest)) else { continue };
                    let key = ImageKey { registry: registry.clone(), repository: repository.clone(), tag };
                    found.push((key, digest));
                }
            }
        }
        Ok(found)
    }
}
