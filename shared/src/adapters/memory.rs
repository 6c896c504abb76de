//! In-memory fakes of the ports, faithful to their contracts (conditional writes included), so the
//! use cases can be tested fast and under real concurrency.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::error::{ReadError, RegistryError, StoreError};
use crate::names::{Digest, ReleaseKey};
use crate::ports::{FetchedObject, ManifestReader, ObjectRef, RecordVersion, Registry, ReleaseStore, Stored, WaitList};
use crate::release::{ImageKey, Release};

/// Records and the wait-list. Records are kept as JSON so every write round-trips like in S3.
#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<ReleaseKey, (String, u64)>>,
    waits: Mutex<BTreeSet<(ImageKey, ReleaseKey)>>,
    writes: AtomicUsize,
}

impl MemoryStore {
    /// How many record writes succeeded (creates and replaces).
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic in another test thread must not hide this one's result behind a poisoned lock.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl ReleaseStore for MemoryStore {
    async fn load(&self, key: &ReleaseKey) -> Result<Option<Stored>, StoreError> {
        let records = lock(&self.records);
        let Some((json, version)) = records.get(key) else { return Ok(None) };
        let release = serde_json::from_str(json)
            .map_err(|e| StoreError::Corrupt { key: key.to_string(), detail: e.to_string() })?;
        Ok(Some(Stored { release, version: RecordVersion(version.to_string()) }))
    }

    async fn create(&self, release: &Release) -> Result<RecordVersion, StoreError> {
        let json = serde_json::to_string(release).expect("a record always serialises");
        let mut records = lock(&self.records);
        if records.contains_key(&release.key) {
            return Err(StoreError::AlreadyExists);
        }
        records.insert(release.key.clone(), (json, 1));
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(RecordVersion("1".into()))
    }

    async fn replace(&self, release: &Release, expected: &RecordVersion) -> Result<RecordVersion, StoreError> {
        let json = serde_json::to_string(release).expect("a record always serialises");
        let mut records = lock(&self.records);
        match records.get_mut(&release.key) {
            Some((stored, version)) if version.to_string() == expected.0 => {
                *stored = json;
                *version += 1;
                self.writes.fetch_add(1, Ordering::SeqCst);
                Ok(RecordVersion(version.to_string()))
            }
            _ => Err(StoreError::Conflict),
        }
    }
}

#[async_trait]
impl WaitList for MemoryStore {
    async fn add(&self, image: &ImageKey, release: &ReleaseKey) -> Result<(), StoreError> {
        lock(&self.waits).insert((image.clone(), release.clone()));
        Ok(())
    }

    async fn waiting_for(&self, image: &ImageKey) -> Result<Vec<ReleaseKey>, StoreError> {
        Ok(lock(&self.waits).iter().filter(|(i, _)| i == image).map(|(_, r)| r.clone()).collect())
    }
}

/// A registry whose images tests push.
#[derive(Default)]
pub struct MemoryRegistry {
    images: Mutex<HashMap<ImageKey, Digest>>,
    lookups: AtomicUsize,
}

impl MemoryRegistry {
    pub fn push(&self, image: ImageKey, digest: Digest) {
        lock(&self.images).insert(image, digest);
    }

    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Registry for MemoryRegistry {
    async fn resolve(&self, images: &[ImageKey]) -> Result<Vec<(ImageKey, Digest)>, RegistryError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let stored = lock(&self.images);
        Ok(images.iter().filter_map(|i| stored.get(i).map(|d| (i.clone(), d.clone()))).collect())
    }
}

/// `(bucket, key)` → every version uploaded, oldest first, as `(version id, bytes)`.
type Versions = HashMap<(String, String), Vec<(String, Vec<u8>)>>;

/// Uploaded objects, every version kept.
#[derive(Default)]
pub struct MemoryObjects {
    objects: Mutex<Versions>,
}

impl MemoryObjects {
    /// Stores a new version and returns its version id.
    pub fn put(&self, bucket: &str, key: &str, bytes: impl Into<Vec<u8>>) -> String {
        let mut objects = lock(&self.objects);
        let versions = objects.entry((bucket.to_owned(), key.to_owned())).or_default();
        let version = format!("v{}", versions.len() + 1);
        versions.push((version.clone(), bytes.into()));
        version
    }
}

#[async_trait]
impl ManifestReader for MemoryObjects {
    async fn read(&self, object: &ObjectRef, limit: usize) -> Result<FetchedObject, ReadError> {
        let objects = lock(&self.objects);
        let versions = objects.get(&(object.bucket.clone(), object.key.clone())).ok_or(ReadError::NotFound)?;
        let (version, bytes) = match &object.version_id {
            Some(wanted) => versions.iter().find(|(v, _)| v == wanted).ok_or(ReadError::NotFound)?,
            None => versions.last().ok_or(ReadError::NotFound)?,
        };
        if bytes.len() > limit {
            return Err(ReadError::TooLarge { size: bytes.len() as u64, limit });
        }
        Ok(FetchedObject { bytes: bytes.clone(), etag: None, version_id: Some(version.clone()) })
    }
}
