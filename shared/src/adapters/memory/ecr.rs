//! ECR as the tests push to it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::error::RegistryError;
use crate::image_policy::{ScanReport, Signature};
use crate::manifest::Reference;
use crate::names::{AccountId, Digest, RepositoryName};
use crate::ports::{ImageChecks, Lookup, Registry};
use crate::release::{Absence, ImageKey};

/// A registry whose images tests push. A repository exists once created or pushed to; a
/// registry (account) may be denied, as ECR denies one Convoy's role may not read.
#[derive(Default)]
pub struct MemoryRegistry {
    images: Mutex<HashMap<ImageKey, Digest>>,
    /// Every digest ever pushed: ECR keeps an image when its tag moves to another (untagged).
    digests: Mutex<HashSet<(AccountId, RepositoryName, Digest)>>,
    repositories: Mutex<HashSet<(AccountId, RepositoryName)>>,
    denied: Mutex<HashSet<AccountId>>,
}

impl MemoryRegistry {
    pub fn push(&self, image: ImageKey, digest: Digest) {
        self.create_repository(&image.registry, &image.repository);
        lock(&self.digests).insert((image.registry.clone(), image.repository.clone(), digest.clone()));
        lock(&self.images).insert(image, digest);
    }

    pub fn create_repository(&self, registry: &AccountId, repository: &RepositoryName) {
        lock(&self.repositories).insert((registry.clone(), repository.clone()));
    }

    /// Every later look-up in `registry` is refused, as ECR refuses a role without read access.
    pub fn deny(&self, registry: &AccountId) {
        lock(&self.denied).insert(registry.clone());
    }
}

#[async_trait]
impl Registry for MemoryRegistry {
    async fn resolve(&self, images: &[ImageKey]) -> Result<Lookup, RegistryError> {
        let stored = lock(&self.images);
        let repositories = lock(&self.repositories);
        let denied = lock(&self.denied);
        let digests = lock(&self.digests);
        let mut lookup = Lookup::default();
        for image in images {
            if denied.contains(&image.registry) {
                let detail = format!("not authorized to read registry {}", image.registry);
                lookup.missing.push((image.clone(), Absence::AccessDenied { detail }));
            } else if let Reference::Digest(digest) = &image.reference {
                // By digest, never through a tag that may have moved.
                if digests.contains(&(image.registry.clone(), image.repository.clone(), digest.clone())) {
                    lookup.found.push((image.clone(), digest.clone()));
                } else if repositories.contains(&(image.registry.clone(), image.repository.clone())) {
                    lookup.missing.push((image.clone(), Absence::DigestAbsent));
                } else {
                    lookup.missing.push((image.clone(), Absence::RepositoryUnknown));
                }
            } else if let Some(digest) = stored.get(image) {
                lookup.found.push((image.clone(), digest.clone()));
            } else if repositories.contains(&(image.registry.clone(), image.repository.clone())) {
                lookup.missing.push((image.clone(), Absence::TagAbsent));
            } else {
                lookup.missing.push((image.clone(), Absence::RepositoryUnknown));
            }
        }
        Ok(lookup)
    }
}

/// ECR's scans and managed signatures of digests, as tests set them: a digest never set was never
/// scanned (`ScanNotFoundException`) and matched no signing rule.
#[derive(Default)]
pub struct MemoryImageChecks {
    scans: Mutex<HashMap<Digest, ScanReport>>,
    signatures: Mutex<HashMap<Digest, Vec<Signature>>>,
}

impl MemoryImageChecks {
    pub fn set_scan(&self, digest: Digest, scan: ScanReport) {
        lock(&self.scans).insert(digest, scan);
    }

    pub fn set_signatures(&self, digest: Digest, signatures: Vec<Signature>) {
        lock(&self.signatures).insert(digest, signatures);
    }
}

#[async_trait]
impl ImageChecks for MemoryImageChecks {
    async fn scan(&self, _: &AccountId, _: &RepositoryName, digest: &Digest) -> Result<ScanReport, RegistryError> {
        Ok(lock(&self.scans).get(digest).cloned().unwrap_or(ScanReport::NotFound))
    }

    async fn signatures(
        &self,
        _: &AccountId,
        _: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<Signature>, RegistryError> {
        Ok(lock(&self.signatures).get(digest).cloned().unwrap_or_default())
    }
}
