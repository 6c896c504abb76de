//! The ports: the small traits Convoy's use cases need from the outside world. Only domain types
//! cross them. Each has a real AWS adapter (`adapters::aws`) and an in-memory fake
//! (`adapters::memory`) that keeps the same contract, so the use cases are tested against both.

use async_trait::async_trait;

use crate::error::{ReadError, RegistryError, StoreError};
use crate::names::{Digest, ReleaseKey};
use crate::release::{ImageKey, Release};

/// The version a stored record had when it was read; conditional writes compare against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordVersion(pub String);

/// A record as read, with its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub release: Release,
    pub version: RecordVersion,
}

/// The release records: one per release, changed only by conditional writes.
#[async_trait]
pub trait ReleaseStore: Send + Sync {
    /// Reads the record of `key`. MUST return `Ok(None)` when there is none.
    async fn load(&self, key: &ReleaseKey) -> Result<Option<Stored>, StoreError>;

    /// Stores a new record. MUST return [`StoreError::AlreadyExists`] and write nothing if a record
    /// exists under its key, however concurrent the callers.
    async fn create(&self, release: &Release) -> Result<RecordVersion, StoreError>;

    /// Replaces a record. MUST return [`StoreError::Conflict`] and write nothing if the stored
    /// version is no longer `expected`.
    async fn replace(&self, release: &Release, expected: &RecordVersion) -> Result<RecordVersion, StoreError>;
}

/// Which releases wait for which image, so a push finds its releases without a scan.
#[async_trait]
pub trait WaitList: Send + Sync {
    /// Notes that `release` waits for `image`. MUST be idempotent.
    async fn add(&self, image: &ImageKey, release: &ReleaseKey) -> Result<(), StoreError>;

    /// The releases noted as waiting for `image`. Entries are never removed by Convoy (they expire
    /// by bucket lifecycle), so callers MUST treat the record, not this list, as the truth.
    async fn waiting_for(&self, image: &ImageKey) -> Result<Vec<ReleaseKey>, StoreError>;
}

/// One version of one S3 object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

/// A manifest object's bytes and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedObject {
    pub bytes: Vec<u8>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
}

/// Reads uploaded manifests.
#[async_trait]
pub trait ManifestReader: Send + Sync {
    /// Reads `object` (that exact version when it names one). MUST return [`ReadError::NotFound`]
    /// when the object or version does not exist, and [`ReadError::TooLarge`] without reading the
    /// body when it is larger than `limit` bytes.
    async fn read(&self, object: &ObjectRef, limit: usize) -> Result<FetchedObject, ReadError>;
}

/// The container registry (ECR).
#[async_trait]
pub trait Registry: Send + Sync {
    /// Looks `images` up and returns the digest of each that exists now. An image that is not
    /// there (no such tag, or no such repository yet) is simply absent from the answer; only a
    /// failure to ask is an error.
    async fn resolve(&self, images: &[ImageKey]) -> Result<Vec<(ImageKey, Digest)>, RegistryError>;
}
