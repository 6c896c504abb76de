//! The trail for manifest uploads, as a test sets it: trails by name (their configuration as
//! CloudTrail would describe it) and the log files delivered to their buckets. It answers through
//! the same pure checks the AWS adapter applies to what CloudTrail and S3 return.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::lock;
use crate::error::TrailError;
use crate::release::ManifestSource;
use crate::submitter::{self, Coverage, Delivery, TrailConfig, Uploader};

/// One delivered log file: its bucket and key, and its records.
#[derive(Debug, Clone)]
struct LogFile {
    bucket: String,
    key: String,
    records: Vec<serde_json::Value>,
}

pub struct MemoryUploadTrail {
    account: String,
    region: String,
    trails: Mutex<Vec<(String, TrailConfig)>>,
    files: Mutex<Vec<LogFile>>,
    reads: std::sync::atomic::AtomicUsize,
}

impl MemoryUploadTrail {
    pub fn new(account: &str, region: &str) -> Self {
        Self {
            account: account.into(),
            region: region.into(),
            trails: Mutex::new(Vec::new()),
            files: Mutex::new(Vec::new()),
            reads: Default::default(),
        }
    }

    /// A trail named `name`, as `GetTrail`, `GetTrailStatus` and `GetEventSelectors` describe it.
    pub fn add_trail(&self, name: &str, trail: TrailConfig) {
        lock(&self.trails).push((name.to_owned(), trail));
    }

    /// A log file delivered to `bucket` under `key`, holding `records`.
    pub fn deliver(&self, bucket: &str, key: &str, records: Vec<serde_json::Value>) {
        lock(&self.files).push(LogFile { bucket: bucket.into(), key: key.into(), records });
    }

    /// How many log files were read.
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl crate::ports::UploadTrail for MemoryUploadTrail {
    async fn coverage(&self, trail: &str, bucket: &str, key: &str) -> Result<Coverage, TrailError> {
        let trails = lock(&self.trails);
        let Some((_, config)) = trails.iter().find(|(name, config)| name == trail || config.arn == trail) else {
            return Ok(Coverage::NotLogged(format!("no data-event trail: trail {trail} does not exist")));
        };
        Ok(submitter::coverage(config, bucket, key, &self.account, &self.region))
    }

    async fn find_upload(
        &self,
        delivery: &Delivery,
        source: &ManifestSource,
        created: DateTime<Utc>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Uploader>, TrailError> {
        let mut files: Vec<(DateTime<Utc>, LogFile)> = lock(&self.files)
            .iter()
            .filter(|file| file.bucket == delivery.bucket)
            .filter_map(|file| Some((submitter::delivered_at(&file.key, delivery)?, file.clone())))
            .filter(|(delivered, _)| *delivered >= from - chrono::Duration::minutes(1) && *delivered <= until)
            .collect();
        files.sort_by(|a, b| a.1.key.cmp(&b.1.key));
        for (_, file) in files {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let name = format!("s3://{}/{}", file.bucket, file.key);
            if let Some(found) = submitter::find_upload(&file.records, source, created, delivery, &name) {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}
