//! Manifests whose upload event never arrived (EventBridge gave up, or `manifest-uploaded` failed
//! until its event was dead-lettered) are found by the reconciler and opened through the same
//! path as the event: `manifest_uploaded`, so a malformed one ends `Failed(manifest)` as usual.
//!
//! The work per run is bounded: at most [`SCAN_KEYS`] keys are listed (two `ListObjectsV2`
//! pages), starting at a random place under the manifest prefix, so that over a few runs every
//! key is looked at however many manifests the bucket keeps; only manifests modified within the
//! lookback window are candidates; a candidate costs one record read, and only one without a
//! record is read and opened, at most [`MAX_OPENS`] per run and none once the run's time is up.

use chrono::{DateTime, Utc};
use tracing::{Instrument, info, warn};

use super::transition::Outbox;
use super::{Convoy, Report, release_span};
use crate::error::ConvoyError;
use crate::events::Upload;
use crate::ports::{ListedObject, ObjectRef};

/// Keys listed per run: two pages of `ListObjectsV2`.
pub const SCAN_KEYS: usize = 2000;

/// Manifests opened per run at most; the rest wait for the next runs.
pub const MAX_OPENS: usize = 16;

/// Characters a listing may start after: the first character of a service name.
const STARTS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

impl Convoy {
    /// Opens manifests under the manifest prefix, modified within the lookback, that have no
    /// record. Idempotent with a concurrent `manifest-uploaded` for the same object: the record's
    /// creation is conditional, and the same upload read twice changes nothing. Stops opening at
    /// `deadline`.
    pub(super) async fn open_lost_manifests(
        &self,
        outbox: &Outbox,
        now: DateTime<Utc>,
        deadline: Option<std::time::Instant>,
    ) -> Result<Vec<Report>, ConvoyError> {
        let bucket = &self.config.store.state_bucket;
        let prefix = &self.config.manifest_prefix;
        let start = format!("{prefix}{}", STARTS[fastrand::usize(..STARTS.len())] as char);
        let mut listed = self.manifests.list(bucket, prefix, Some(&start), SCAN_KEYS).await?;
        if listed.len() < SCAN_KEYS {
            // The end of the prefix came first: wrap around to its beginning.
            let wrapped = self.manifests.list(bucket, prefix, None, SCAN_KEYS - listed.len()).await?;
            listed.extend(wrapped.into_iter().take_while(|object| object.key <= start));
        }
        let since = now - self.config.manifest_lookback();
        let mut reports = Vec::new();
        let mut opened = 0;
        for object in listed {
            if opened >= MAX_OPENS || deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline) {
                info!(opened, "the run's share of lost manifests is done; the next run continues");
                break;
            }
            if object.last_modified.is_none_or(|modified| modified < since) {
                continue;
            }
            // Keys that name no release are the event path's to log; here they are skipped quietly.
            let Ok(key) = self.config.release_of(&object.key) else { continue };
            match self.store.load(&key).await {
                Ok(None) => {}
                // An unreadable record is still a record: its manifest was opened.
                Ok(Some(_)) | Err(crate::error::StoreError::Corrupt { .. }) => continue,
                Err(err) => return Err(err.into()),
            }
            opened += 1;
            warn!(key = %object.key, "a manifest without a record: its upload event was lost; opening it");
            let upload = upload_of(bucket, object);
            match Box::pin(self.manifest_uploaded_in(outbox, &upload, now).instrument(release_span(&key))).await {
                Ok(report) => reports.extend(report),
                Err(err) if err.is_retryable() => return Err(err),
                Err(err) => warn!(error = %err, "the lost manifest could not be opened; not retried"),
            }
        }
        Ok(reports)
    }
}

/// The upload a listed manifest stands for: its current version, read as the event would be.
fn upload_of(bucket: &str, object: ListedObject) -> Upload {
    Upload {
        object: ObjectRef { bucket: bucket.to_owned(), key: object.key, version_id: None },
        size: object.size,
        etag: object.etag,
    }
}
