//! The state bucket as S3 keeps it (the S3 adapter's `S3Store`): release records, the wait-list,
//! the active list, uploaded manifests, deploy locks and the deployment index, with the same
//! conditional-write contract.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::error::{ReadError, StoreError};
use crate::names::{DeploymentRef, ReleaseKey, ServiceName};
use crate::ports::{
    ActiveReleases, FetchedObject, ListedRecord, ManifestReader, ObjectRef, RecordPage, RecordVersion, ReleaseStore,
    ServiceRecords, Stored, WaitList,
};
use crate::release::{ImageKey, Release};

/// Records and the wait-list. Records are kept as JSON so every write round-trips like in S3.
#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<ReleaseKey, (String, u64)>>,
    waits: Mutex<BTreeSet<(ImageKey, ReleaseKey)>>,
    active: Mutex<BTreeSet<ReleaseKey>>,
    /// The deployment index (kept with the records: a hook reads both in one call, as from S3).
    deployments: Mutex<HashMap<String, ReleaseKey>>,
    /// When each record was last written (S3's `LastModified`).
    written: Mutex<HashMap<ReleaseKey, chrono::DateTime<chrono::Utc>>>,
    /// Records per listing page (0: S3's 1,000).
    page_size: std::sync::atomic::AtomicUsize,
}

impl MemoryStore {
    /// Lists `size` records per page instead of S3's 1,000.
    pub fn with_page_size(self, size: usize) -> Self {
        self.page_size.store(size, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// Says `key` was last written at `at`, as S3's `LastModified` would (tests of readers that
    /// order by it).
    pub fn written_at(&self, key: &ReleaseKey, at: chrono::DateTime<chrono::Utc>) {
        lock(&self.written).insert(key.clone(), at);
    }

    /// Replaces the record of `key` with `text`, as a hand edit of the object would.
    pub fn corrupt(&self, key: &ReleaseKey, text: &str) {
        if let Some((stored, version)) = lock(&self.records).get_mut(key) {
            *stored = text.to_owned();
            *version += 1;
        }
    }
}

#[async_trait]
impl ServiceRecords for MemoryStore {
    async fn record_page(&self, service: &ServiceName, token: Option<String>) -> Result<RecordPage, StoreError> {
        let size = match self.page_size.load(std::sync::atomic::Ordering::Relaxed) {
            0 => 1000,
            size => size,
        };
        let mut keys: Vec<ReleaseKey> = lock(&self.records).keys().filter(|k| k.service == *service).cloned().collect();
        keys.sort_by_key(|k| k.release.to_string());
        // The token is the last key of the previous page, as S3's continuation is opaque but ordered.
        let after = token.unwrap_or_default();
        let rest: Vec<ReleaseKey> = keys.into_iter().filter(|k| k.release.as_str() > after.as_str()).collect();
        let written = lock(&self.written);
        let records: Vec<ListedRecord> = rest
            .iter()
            .take(size)
            .map(|k| ListedRecord {
                key: k.clone(),
                written_at: written.get(k).copied().unwrap_or_else(chrono::Utc::now),
            })
            .collect();
        let next = (rest.len() > size).then(|| records.last().map(|r| r.key.release.to_string())).flatten();
        Ok(RecordPage { records, next })
    }
}

#[async_trait]
impl ReleaseStore for MemoryStore {
    async fn load(&self, key: &ReleaseKey) -> Result<Option<Stored>, StoreError> {
        let records = lock(&self.records);
        let Some((json, version)) = records.get(key) else { return Ok(None) };
        let release = serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
            key: key.to_string(),
            detail: crate::error::Cause::caused_by(e.to_string(), e),
        })?;
        Ok(Some(Stored { release, version: RecordVersion(version.to_string()) }))
    }

    async fn create(&self, release: &Release) -> Result<RecordVersion, StoreError> {
        let json = serde_json::to_string(release).expect("a record always serialises");
        let mut records = lock(&self.records);
        if records.contains_key(&release.key) {
            return Err(StoreError::AlreadyExists);
        }
        records.insert(release.key.clone(), (json, 1));
        lock(&self.written).insert(release.key.clone(), chrono::Utc::now());
        Ok(RecordVersion("1".into()))
    }

    async fn replace(&self, release: &Release, expected: &RecordVersion) -> Result<RecordVersion, StoreError> {
        let json = serde_json::to_string(release).expect("a record always serialises");
        let mut records = lock(&self.records);
        match records.get_mut(&release.key) {
            Some((stored, version)) if version.to_string() == expected.0 => {
                *stored = json;
                *version += 1;
                lock(&self.written).insert(release.key.clone(), chrono::Utc::now());
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

    async fn forget(&self, image: &ImageKey, release: &ReleaseKey) -> Result<(), StoreError> {
        lock(&self.waits).remove(&(image.clone(), release.clone()));
        Ok(())
    }
}

#[async_trait]
impl ActiveReleases for MemoryStore {
    async fn mark_active(&self, release: &ReleaseKey) -> Result<(), StoreError> {
        lock(&self.active).insert(release.clone());
        Ok(())
    }

    async fn mark_done(&self, release: &ReleaseKey) -> Result<(), StoreError> {
        lock(&self.active).remove(release);
        Ok(())
    }

    async fn active(&self) -> Result<Vec<ReleaseKey>, StoreError> {
        Ok(lock(&self.active).iter().cloned().collect())
    }
}

/// `(bucket, key)` → every version uploaded, oldest first, as `(version id, bytes)`.
type Versions = HashMap<(String, String), Vec<(String, Vec<u8>)>>;

/// Uploaded objects, every version kept.
#[derive(Default)]
pub struct MemoryObjects {
    objects: Mutex<Versions>,
    /// When each object's current version was put.
    modified: Mutex<HashMap<(String, String), chrono::DateTime<chrono::Utc>>>,
}

impl MemoryObjects {
    /// Stores a new version and returns its version id.
    pub fn put(&self, bucket: &str, key: &str, bytes: impl Into<Vec<u8>>) -> String {
        lock(&self.modified).insert((bucket.to_owned(), key.to_owned()), chrono::Utc::now());
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

    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::ports::ListedObject>, ReadError> {
        let objects = lock(&self.objects);
        let modified = lock(&self.modified);
        let mut keys: Vec<&(String, String)> = objects
            .keys()
            .filter(|(b, k)| b == bucket && k.starts_with(prefix) && start_after.is_none_or(|after| k.as_str() > after))
            .collect();
        keys.sort();
        Ok(keys
            .into_iter()
            .take(limit)
            .map(|id| crate::ports::ListedObject {
                key: id.1.clone(),
                last_modified: modified.get(id).copied(),
                etag: None,
                size: objects[id].last().map(|(_, bytes)| bytes.len() as u64),
            })
            .collect())
    }
}

#[derive(Default)]
struct Documents {
    locks: HashMap<String, (crate::ports::DeployLock, u64)>,
}

/// Deploy locks, with the S3 adapter's conditional-write contract.
#[derive(Default)]
pub struct MemoryDocuments {
    documents: Mutex<Documents>,
}

#[async_trait]
impl crate::ports::DeployLocks for MemoryDocuments {
    async fn load(
        &self,
        service: &crate::names::ServiceName,
    ) -> Result<Option<(crate::ports::DeployLock, RecordVersion)>, StoreError> {
        let documents = lock(&self.documents);
        Ok(documents.locks.get(service.as_str()).map(|(l, v)| (l.clone(), RecordVersion(v.to_string()))))
    }

    async fn create(
        &self,
        service: &crate::names::ServiceName,
        value: &crate::ports::DeployLock,
    ) -> Result<RecordVersion, StoreError> {
        let mut documents = lock(&self.documents);
        if documents.locks.contains_key(service.as_str()) {
            return Err(StoreError::AlreadyExists);
        }
        documents.locks.insert(service.to_string(), (value.clone(), 1));
        Ok(RecordVersion("1".into()))
    }

    async fn replace(
        &self,
        service: &crate::names::ServiceName,
        value: &crate::ports::DeployLock,
        expected: &RecordVersion,
    ) -> Result<RecordVersion, StoreError> {
        let mut documents = lock(&self.documents);
        match documents.locks.get_mut(service.as_str()) {
            Some((stored, version)) if version.to_string() == expected.0 => {
                *stored = value.clone();
                *version += 1;
                Ok(RecordVersion(version.to_string()))
            }
            _ => Err(StoreError::Conflict),
        }
    }
}

#[async_trait]
impl crate::ports::DeploymentIndex for MemoryStore {
    async fn note(&self, deployment: &DeploymentRef, release: &ReleaseKey) -> Result<(), StoreError> {
        lock(&self.deployments).entry(deployment.as_str().to_owned()).or_insert_with(|| release.clone());
        Ok(())
    }

    async fn find(&self, deployment: &DeploymentRef) -> Result<Option<ReleaseKey>, StoreError> {
        Ok(lock(&self.deployments).get(deployment.as_str()).cloned())
    }

    async fn find_record(&self, deployment: &DeploymentRef) -> Result<Option<Stored>, StoreError> {
        let release = crate::ports::DeploymentIndex::find(self, deployment).await?;
        match release {
            Some(release) => self.load(&release).await,
            None => Ok(None),
        }
    }
}
