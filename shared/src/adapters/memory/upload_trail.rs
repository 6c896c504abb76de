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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::ports::UploadTrail;
    use crate::submitter::BasicSelector;

    #[tokio::test]
    async fn the_fake_answers_as_the_adapter_does_from_the_trails_files_of_the_window_only() {
        let fake = MemoryUploadTrail::new("123456789012", "us-east-1");
        let trail = TrailConfig {
            arn: "arn:aws:cloudtrail:us-east-1:123456789012:trail/audit".into(),
            bucket: "logs".into(),
            home_region: "us-east-1".into(),
            logging: true,
            selectors: vec![BasicSelector {
                read_write: "All".into(),
                data_resources: vec![("AWS::S3::Object".into(), vec!["arn:aws:s3".into()])],
            }],
            ..Default::default()
        };
        fake.add_trail("audit", trail);
        assert!(matches!(fake.coverage("other", "state", "releases/web/r1.json").await, Ok(Coverage::NotLogged(_))));
        let Ok(Coverage::Logged(delivery)) = fake.coverage("audit", "state", "releases/web/r1.json").await else {
            panic!("the trail logs every bucket's writes")
        };
        let source = ManifestSource {
            bucket: "state".into(),
            key: "releases/web/r1.json".into(),
            version_id: Some("v1".into()),
            etag: None,
        };
        let record = json!({"eventSource": "s3.amazonaws.com", "eventName": "PutObject", "eventID": "e-1",
            "eventTime": "2026-12-07T10:01:00Z", "recipientAccountId": "123456789012",
            "userIdentity": {"arn": "arn:aws:iam::123456789012:user/ci"},
            "requestParameters": {"bucketName": "state", "key": "releases/web/r1.json"},
            "responseElements": {"x-amz-version-id": "v1"}});
        let file = |stamp: &str| {
            format!("{}2026/12/07/123456789012_CloudTrail_us-east-1_{stamp}Z_abcdefghijklmnop.json.gz", delivery.prefix)
        };
        fake.deliver("logs", &file("20261207T1230"), vec![record.clone()]);
        let at = |h, m| Utc.with_ymd_and_hms(2026, 12, 7, h, m, 0).unwrap();
        let within = fake.find_upload(&delivery, &source, at(10, 2), at(10, 0), at(11, 0)).await.unwrap();
        assert_eq!(within, None, "a file delivered after the window is not read");
        assert_eq!(fake.reads(), 0);
        fake.deliver("logs", &file("20261207T1005"), vec![record]);
        let found = fake.find_upload(&delivery, &source, at(10, 2), at(10, 0), at(11, 0)).await.unwrap().unwrap();
        assert_eq!((found.principal_arn.as_str(), fake.reads()), ("arn:aws:iam::123456789012:user/ci", 1));
    }
}
