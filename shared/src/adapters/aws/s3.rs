use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::status_and_code;
use crate::error::{Cause, ReadError, StoreError};
use crate::names::{DeploymentRef, ReleaseId, ReleaseKey, ServiceName};
use crate::ports::{
    ActiveReleases, DeployLock, DeployLocks, DeploymentIndex, FetchedObject, ListedObject, ListedRecord,
    ManifestReader, ObjectRef, RecordPage, RecordVersion, ReleaseStore, ServiceRecords, Stored, WaitList,
};
use crate::release::{ImageKey, Release};

/// Release records (`state/<service>/<release>.json`) and the wait-list
/// (`index/<registry>/<repository>/<tag>/<service>/<release>`, empty objects) in one bucket.
#[derive(Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

/// Repository names hold '/', which would make wait-list prefixes ambiguous; encode everything but
/// the characters repository names use otherwise.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

impl S3Store {
    /// Every prefix under which Convoy writes (records, the active list, locks, the image
    /// wait-list, the deployment index). template.yaml's StateBucketPolicy lets only Convoy's
    /// function roles write or delete under them; a new prefix must be added there too
    /// (tests/tests/e2e/bucket_policy.rs checks the policy covers each of these).
    pub const OWNED_PREFIXES: [&'static str; 5] = ["state/", "active/", "lock/", "index/", "deployments/"];

    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }

    pub fn record_key(key: &ReleaseKey) -> String {
        format!("state/{}/{}.json", key.service, key.release)
    }

    /// The release whose record `object` is ([`S3Store::record_key`] read back); `None` for any
    /// other object.
    pub fn release_of_record(object: &str) -> Option<ReleaseKey> {
        release_at_end(object.strip_prefix("state/")?.strip_suffix(".json")?)
    }

    fn active_key(key: &ReleaseKey) -> String {
        format!("active/{}/{}", key.service, key.release)
    }

    fn lock_key(service: &ServiceName) -> String {
        format!("lock/{service}.json")
    }

    fn deployment_key(deployment: &DeploymentRef) -> String {
        format!("deployments/{}.json", utf8_percent_encode(deployment.as_str(), SEGMENT))
    }

    /// Lists the keys under `prefix`, all pages.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let output = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|err| StoreError::Unavailable(super::cause(err)))?;
            keys.extend(output.contents().iter().filter_map(|o| o.key()).map(str::to_owned));
            match output.next_continuation_token {
                Some(next) if output.is_truncated == Some(true) => token = Some(next),
                _ => return Ok(keys),
            }
        }
    }

    async fn put_empty(&self, key: String) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from_static(b""))
            .send()
            .await
            .map_err(|err| StoreError::Unavailable(super::cause(err)))?;
        Ok(())
    }

    fn wait_prefix(image: &ImageKey) -> String {
        let repository = utf8_percent_encode(image.repository.as_str(), SEGMENT);
        // A tag's prefix is as it always was; a digest (never pushed by name) gets its own form.
        let reference = match &image.reference {
            crate::manifest::Reference::Tag(tag) => tag.to_string(),
            crate::manifest::Reference::Digest(digest) => format!("@{digest}"),
        };
        format!("index/{}/{repository}/{reference}/", image.registry)
    }

    async fn put_record(&self, release: &Release, condition: Condition<'_>) -> Result<RecordVersion, StoreError> {
        self.put_json(Self::record_key(&release.key), release, condition).await
    }

    /// Loads a JSON document and its version; `None` when there is none.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<(T, RecordVersion)>, StoreError> {
        let output = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(output) => output,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(err) => return Err(StoreError::Unavailable(super::cause(err))),
        };
        let version = RecordVersion(output.e_tag.clone().unwrap_or_default());
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable(crate::error::Cause::caused_by(format!("reading {key}: {e}"), e)))?
            .into_bytes();
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt { key: key.to_owned(), detail: Cause::caused_by(e.to_string(), e) })?;
        Ok(Some((value, version)))
    }

    /// Writes a JSON document under a condition (absent, or at a version).
    async fn put_json<T: serde::Serialize>(
        &self,
        key: String,
        value: &T,
        condition: Condition<'_>,
    ) -> Result<RecordVersion, StoreError> {
        let body = serde_json::to_vec_pretty(value).expect("Convoy's documents always serialise");
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        let request = match condition {
            Condition::Absent => request.if_none_match("*"),
            Condition::Version(expected) => request.if_match(&expected.0),
        };
        match request.send().await {
            Ok(output) => Ok(RecordVersion(output.e_tag.unwrap_or_default())),
            Err(err) => {
                let (status, code) = status_and_code(&err);
                match (status, code.as_deref(), condition) {
                    (Some(412), _, Condition::Absent) | (_, Some("PreconditionFailed"), Condition::Absent) => {
                        Err(StoreError::AlreadyExists)
                    }
                    // 412: the ETag moved; 409: S3 saw a concurrent conditional write. Either way,
                    // re-read and re-apply.
                    (Some(412 | 409), ..) | (_, Some("PreconditionFailed" | "ConditionalRequestConflict"), _) => {
                        Err(StoreError::Conflict)
                    }
                    _ => Err(StoreError::Unavailable(super::cause(err))),
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Condition<'a> {
    Absent,
    Version(&'a RecordVersion),
}

#[async_trait]
impl ReleaseStore for S3Store {
    async fn load(&self, key: &ReleaseKey) -> Result<Option<Stored>, StoreError> {
        let stored = self.get_json(&Self::record_key(key)).await?;
        Ok(stored.map(|(release, version)| Stored { release, version }))
    }

    async fn create(&self, release: &Release) -> Result<RecordVersion, StoreError> {
        self.put_record(release, Condition::Absent).await
    }

    async fn replace(&self, release: &Release, expected: &RecordVersion) -> Result<RecordVersion, StoreError> {
        self.put_record(release, Condition::Version(expected)).await
    }
}

#[async_trait]
impl ServiceRecords for S3Store {
    async fn record_page(&self, service: &ServiceName, token: Option<String>) -> Result<RecordPage, StoreError> {
        let prefix = format!("state/{service}/");
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|err| StoreError::Unavailable(super::cause(err)))?;
        let records = output
            .contents()
            .iter()
            .filter_map(|object| {
                let key = Self::release_of_record(object.key()?).filter(|k| k.service == *service)?;
                // No time given: as if written now, so the record is read rather than skipped.
                let written_at = object
                    .last_modified()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
                Some(ListedRecord { key, written_at })
            })
            .collect();
        let next = output.next_continuation_token.filter(|_| output.is_truncated == Some(true));
        Ok(RecordPage { records, next })
    }
}

/// `<service>/<release>` at the end of a key Convoy wrote; keys it did not write are skipped.
fn release_at_end(rest: &str) -> Option<ReleaseKey> {
    let (service, release) = rest.split_once('/')?;
    Some(ReleaseKey::new(ServiceName::new(service).ok()?, ReleaseId::new(release).ok()?))
}

#[async_trait]
impl WaitList for S3Store {
    async fn add(&self, image: &ImageKey, release: &ReleaseKey) -> Result<(), StoreError> {
        self.put_empty(format!("{}{}/{}", Self::wait_prefix(image), release.service, release.release)).await
    }

    async fn waiting_for(&self, image: &ImageKey) -> Result<Vec<ReleaseKey>, StoreError> {
        let prefix = Self::wait_prefix(image);
        let keys = self.list(&prefix).await?;
        Ok(keys.iter().filter_map(|k| release_at_end(k.strip_prefix(&prefix)?)).collect())
    }

    async fn forget(&self, image: &ImageKey, release: &ReleaseKey) -> Result<(), StoreError> {
        // S3 answers a delete of a missing key with success, as the contract asks.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(format!("{}{}/{}", Self::wait_prefix(image), release.service, release.release))
            .send()
            .await
            .map_err(|err| StoreError::Unavailable(super::cause(err)))?;
        Ok(())
    }
}

#[async_trait]
impl ActiveReleases for S3Store {
    async fn mark_active(&self, release: &ReleaseKey) -> Result<(), StoreError> {
        self.put_empty(Self::active_key(release)).await
    }

    async fn mark_done(&self, release: &ReleaseKey) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(Self::active_key(release))
            .send()
            .await
            .map_err(|err| StoreError::Unavailable(super::cause(err)))?;
        Ok(())
    }

    async fn active(&self) -> Result<Vec<ReleaseKey>, StoreError> {
        let keys = self.list("active/").await?;
        Ok(keys.iter().filter_map(|k| release_at_end(k.strip_prefix("active/")?)).collect())
    }
}

#[async_trait]
impl DeployLocks for S3Store {
    async fn load(&self, service: &ServiceName) -> Result<Option<(DeployLock, RecordVersion)>, StoreError> {
        self.get_json(&Self::lock_key(service)).await
    }

    async fn create(&self, service: &ServiceName, lock: &DeployLock) -> Result<RecordVersion, StoreError> {
        self.put_json(Self::lock_key(service), lock, Condition::Absent).await
    }

    async fn replace(
        &self,
        service: &ServiceName,
        lock: &DeployLock,
        expected: &RecordVersion,
    ) -> Result<RecordVersion, StoreError> {
        self.put_json(Self::lock_key(service), lock, Condition::Version(expected)).await
    }
}

#[async_trait]
impl DeploymentIndex for S3Store {
    async fn note(&self, deployment: &DeploymentRef, release: &ReleaseKey) -> Result<(), StoreError> {
        let key = Self::deployment_key(deployment);
        match self.put_json(key, release, Condition::Absent).await {
            Ok(_) | Err(StoreError::AlreadyExists) => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn find(&self, deployment: &DeploymentRef) -> Result<Option<ReleaseKey>, StoreError> {
        let key = Self::deployment_key(deployment);
        Ok(self.get_json(&key).await?.map(|(release, _)| release))
    }

    async fn find_record(&self, deployment: &DeploymentRef) -> Result<Option<Stored>, StoreError> {
        match DeploymentIndex::find(self, deployment).await? {
            Some(release) => ReleaseStore::load(self, &release).await,
            None => Ok(None),
        }
    }
}

#[async_trait]
impl ManifestReader for S3Store {
    async fn read(&self, object: &ObjectRef, limit: usize) -> Result<FetchedObject, ReadError> {
        let result = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(err) => {
                let (status, code) = status_and_code(&err);
                return Err(match (status, code.as_deref()) {
                    (Some(404), _) | (_, Some("NoSuchKey" | "NoSuchVersion")) => ReadError::NotFound,
                    // A malformed version id can never be read, however often we retry.
                    (Some(400), Some("InvalidArgument")) => ReadError::NotFound,
                    _ => ReadError::Unavailable(super::cause(err)),
                });
            }
        };
        let size = output.content_length.unwrap_or_default().max(0) as u64;
        if size > limit as u64 {
            return Err(ReadError::TooLarge { size, limit });
        }
        let etag = output.e_tag.clone();
        let version_id = output.version_id.clone();
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| {
                ReadError::Unavailable(Cause::caused_by(
                    format!("reading s3://{}/{}: {e}", object.bucket, object.key),
                    e,
                ))
            })?
            .into_bytes()
            .to_vec();
        if bytes.len() > limit {
            return Err(ReadError::TooLarge { size: bytes.len() as u64, limit });
        }
        Ok(FetchedObject { bytes, etag, version_id })
    }

    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ListedObject>, ReadError> {
        let mut listed = Vec::new();
        let mut token = None;
        while listed.len() < limit {
            let page = (limit - listed.len()).min(1000) as i32;
            let output = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_start_after(start_after.map(str::to_owned))
                .set_continuation_token(token.take())
                .max_keys(page)
                .send()
                .await
                .map_err(|err| ReadError::Unavailable(super::cause(err)))?;
            listed.extend(output.contents().iter().filter_map(|object| {
                Some(ListedObject {
                    key: object.key()?.to_owned(),
                    last_modified: object
                        .last_modified()
                        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                    etag: object.e_tag().map(str::to_owned),
                    size: object.size().and_then(|s| u64::try_from(s).ok()),
                })
            }));
            match output.next_continuation_token {
                Some(next) if output.is_truncated == Some(true) => token = Some(next),
                _ => break,
            }
        }
        listed.truncate(limit);
        Ok(listed)
    }
}

/// What the `convoy` CLI asks of the state bucket beyond the ports: uploading a manifest exactly
/// once, and listing the records.
impl S3Store {
    /// Uploads a manifest under `key` only if no object is there (`If-None-Match: *`): a release
    /// id is never overwritten. Returns the new object's version id; [`StoreError::AlreadyExists`]
    /// when the key is taken.
    pub async fn put_manifest_once(&self, key: &str, bytes: Vec<u8>) -> Result<Option<String>, StoreError> {
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .if_none_match("*")
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match sent {
            Ok(output) => Ok(output.version_id),
            Err(err) => match status_and_code(&err) {
                (Some(412), _) => Err(StoreError::AlreadyExists),
                (_, Some(code)) if code == "PreconditionFailed" => Err(StoreError::AlreadyExists),
                _ => Err(StoreError::Unavailable(super::cause(err))),
            },
        }
    }

    /// Publishes a settings file as a new version of [`crate::settings_file::SETTINGS_KEY`] (with
    /// the caller's credentials: the bucket policy lets only the settings publishers write there).
    /// Returns its version id, `None` when the bucket keeps no versions.
    pub async fn put_settings(&self, bytes: Vec<u8>) -> Result<Option<String>, StoreError> {
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(crate::settings_file::SETTINGS_KEY)
            .content_type("application/json")
            .body(ByteStream::from(bytes))
            .send()
            .await;
        // S3's AccessDenied (not a settings publisher) is in the description.
        sent.map(|output| output.version_id).map_err(|err| StoreError::Unavailable(super::cause(err)))
    }

    /// The names with records under `state/` (services, and release groups: a group's own record
    /// is under its name), from the listing's common prefixes, every page.
    pub async fn record_names(&self) -> Result<Vec<ServiceName>, StoreError> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let output = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix("state/")
                .delimiter("/")
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|err| StoreError::Unavailable(super::cause(err)))?;
            names.extend(output.common_prefixes().iter().filter_map(|p| {
                let name = p.prefix()?.strip_prefix("state/")?.strip_suffix('/')?;
                ServiceName::new(name).ok()
            }));
            match output.next_continuation_token {
                Some(next) if output.is_truncated == Some(true) => token = Some(next),
                _ => return Ok(names),
            }
        }
    }

    /// The releases that have a record, of one service or of all.
    pub async fn recorded(&self, service: Option<&ServiceName>) -> Result<Vec<ReleaseKey>, StoreError> {
        let prefix = service.map_or("state/".to_owned(), |s| format!("state/{s}/"));
        let keys = self.list(&prefix).await?;
        Ok(keys.iter().filter_map(|k| Self::release_of_record(k)).collect())
    }
}

#[cfg(test)]
mod record_names {
    use super::*;

    #[test]
    fn only_record_names_become_release_keys() {
        let key = S3Store::release_of_record("state/laravel-app/4cf03d1.json").expect("a key");
        assert_eq!(key.to_string(), "laravel-app/4cf03d1");
        assert_eq!(S3Store::record_key(&key), "state/laravel-app/4cf03d1.json");
        assert!(S3Store::release_of_record("state/laravel-app/4cf03d1.txt").is_none());
        assert!(S3Store::release_of_record("state/../x.json").is_none());
        assert!(S3Store::release_of_record("lock/laravel-app.json").is_none());
    }

    #[test]
    fn every_key_convoy_writes_is_under_one_of_its_owned_prefixes() {
        let key = ReleaseKey::new("web".parse().unwrap(), "r1".parse().unwrap());
        let image =
            ImageKey::tagged("123456789012".parse().unwrap(), "shop/web".parse().unwrap(), "r1".parse().unwrap());
        let keys = [
            S3Store::record_key(&key),
            S3Store::active_key(&key),
            S3Store::lock_key(&key.service),
            S3Store::deployment_key(&DeploymentRef::CodeDeploy("d-ABCDEF123".parse().unwrap())),
            S3Store::wait_prefix(&image),
        ];
        for written in keys {
            assert!(
                S3Store::OWNED_PREFIXES.iter().any(|p| written.starts_with(p)),
                "{written} is under no owned prefix"
            );
        }
    }
}
