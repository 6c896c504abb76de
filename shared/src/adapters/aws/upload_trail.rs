//! The trail that says who uploaded a manifest (`crate::submitter`): its configuration from
//! CloudTrail (`GetTrail`, `GetTrailStatus`, `GetEventSelectors`) and the log files it delivered
//! to its bucket (`ListObjectsV2` from the minute before the upload, `GetObject`, gunzip). A file
//! holds `{"Records": [...]}` (CloudTrail User Guide, "CloudTrail log file examples").

use std::io::Read;

use aws_sdk_cloudtrail::types::{AdvancedEventSelector, AdvancedFieldSelector, EventSelector};
use chrono::{DateTime, Utc};

use crate::error::{Cause, TrailError};
use crate::release::ManifestSource;
use crate::submitter::{
    self, AdvancedSelector, BasicSelector, Coverage, Delivery, FieldSelector, TrailConfig, Uploader,
};

/// The most bytes read of one log file, compressed and once unzipped: a file covers about five
/// minutes of one region's events (tens of MB at most in a busy account); a larger one is refused
/// rather than held in the reconciler's memory.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
const MAX_UNZIPPED_BYTES: u64 = 512 * 1024 * 1024;

pub struct TrailLogFiles {
    cloudtrail: aws_sdk_cloudtrail::Client,
    s3: aws_sdk_s3::Client,
    account: String,
    region: String,
}

impl TrailLogFiles {
    pub fn new(cloudtrail: aws_sdk_cloudtrail::Client, s3: aws_sdk_s3::Client, account: &str, region: &str) -> Self {
        Self { cloudtrail, s3, account: account.to_owned(), region: region.to_owned() }
    }

    /// The organization's folder (`o-…`) under the trail's `AWSLogs/`: an organization trail
    /// delivers each member account's files under it.
    async fn organization_folder(&self, bucket: &str, logs: &str) -> Result<Option<String>, TrailError> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(logs)
            .delimiter("/")
            .send()
            .await
            .map_err(|e| TrailError::Unavailable(super::cause(e)))?;
        Ok(listed
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix()?.strip_prefix(logs)?.strip_suffix('/'))
            .find(|folder| folder.starts_with("o-"))
            .map(str::to_owned))
    }

    /// One log file's records, unzipped and parsed.
    async fn records(&self, bucket: &str, key: &str) -> Result<Vec<serde_json::Value>, TrailError> {
        let unavailable = |what: String| TrailError::Unavailable(Cause::from(what));
        let object = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| TrailError::Unavailable(super::cause(e)))?;
        if object.content_length.unwrap_or_default().max(0) as u64 > MAX_FILE_BYTES {
            return Err(unavailable(format!("s3://{bucket}/{key} is larger than {MAX_FILE_BYTES} bytes")));
        }
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| TrailError::Unavailable(Cause::caused_by(format!("reading s3://{bucket}/{key}"), e)))?
            .into_bytes();
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_ref())
            .take(MAX_UNZIPPED_BYTES)
            .read_to_end(&mut text)
            .map_err(|e| TrailError::Unavailable(Cause::caused_by(format!("s3://{bucket}/{key} is not gzip"), e)))?;
        let file: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
            TrailError::Unavailable(Cause::caused_by(format!("s3://{bucket}/{key} is not a CloudTrail log file"), e))
        })?;
        Ok(file["Records"].as_array().cloned().unwrap_or_default())
    }
}

#[async_trait::async_trait]
impl crate::ports::UploadTrail for TrailLogFiles {
    async fn coverage(&self, trail: &str, bucket: &str, key: &str) -> Result<Coverage, TrailError> {
        let described = match self.cloudtrail.get_trail().name(trail).send().await {
            Ok(described) => described,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_trail_not_found_exception()) => {
                return Ok(Coverage::NotLogged(format!("no data-event trail: trail {trail} does not exist")));
            }
            Err(err) => return Err(TrailError::Unavailable(super::cause(err))),
        };
        let Some(found) = described.trail() else {
            return Ok(Coverage::NotLogged(format!("no data-event trail: trail {trail} does not exist")));
        };
        let status = self
            .cloudtrail
            .get_trail_status()
            .name(trail)
            .send()
            .await
            .map_err(|e| TrailError::Unavailable(super::cause(e)))?;
        let selectors = self
            .cloudtrail
            .get_event_selectors()
            .trail_name(trail)
            .send()
            .await
            .map_err(|e| TrailError::Unavailable(super::cause(e)))?;
        let mut config = TrailConfig {
            arn: found.trail_arn().unwrap_or(trail).to_owned(),
            bucket: found.s3_bucket_name().unwrap_or_default().to_owned(),
            key_prefix: found.s3_key_prefix().map(str::to_owned),
            // A trail's ARN names its home region, where `HomeRegion` is left out (moto).
            home_region: found
                .home_region()
                .or_else(|| found.trail_arn()?.split(':').nth(3))
                .unwrap_or_default()
                .to_owned(),
            multi_region: found.is_multi_region_trail().unwrap_or(false),
            organization: None,
            logging: status.is_logging().unwrap_or(false),
            selectors: selectors.event_selectors().iter().map(basic).collect(),
            advanced: selectors.advanced_event_selectors().iter().map(advanced).collect(),
        };
        if found.is_organization_trail().unwrap_or(false) {
            let prefix = config.key_prefix.as_deref().filter(|p| !p.is_empty()).map(|p| format!("{p}/"));
            let logs = format!("{}AWSLogs/", prefix.unwrap_or_default());
            config.organization = self.organization_folder(&config.bucket, &logs).await?;
        }
        Ok(submitter::coverage(&config, bucket, key, &self.account, &self.region))
    }

    async fn find_upload(
        &self,
        delivery: &Delivery,
        source: &ManifestSource,
        created: DateTime<Utc>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Uploader>, TrailError> {
        for day in submitter::day_prefixes(delivery, from, until) {
            let mut pages = self
                .s3
                .list_objects_v2()
                .bucket(&delivery.bucket)
                .prefix(&day)
                .start_after(submitter::start_after(&day, delivery, from))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| TrailError::Unavailable(super::cause(e)))?;
                for key in page.contents().iter().filter_map(|object| object.key()) {
                    // Digest files and anything else in the folder are not log files.
                    let Some(delivered) = submitter::delivered_at(key, delivery) else { continue };
                    if delivered > until {
                        return Ok(None);
                    }
                    let records = self.records(&delivery.bucket, key).await?;
                    let file = format!("s3://{}/{key}", delivery.bucket);
                    if let Some(found) = submitter::find_upload(&records, source, created, delivery, &file) {
                        return Ok(Some(found));
                    }
                }
            }
        }
        Ok(None)
    }
}

fn basic(selector: &EventSelector) -> BasicSelector {
    BasicSelector {
        read_write: selector.read_write_type().map_or("All", |t| t.as_str()).to_owned(),
        data_resources: selector
            .data_resources()
            .iter()
            .map(|r| (r.r#type().unwrap_or_default().to_owned(), r.values().to_vec()))
            .collect(),
    }
}

fn advanced(selector: &AdvancedEventSelector) -> AdvancedSelector {
    AdvancedSelector { fields: selector.field_selectors().iter().map(field).collect() }
}

fn field(field: &AdvancedFieldSelector) -> FieldSelector {
    FieldSelector {
        field: field.field().to_owned(),
        equals: field.equals().to_vec(),
        starts_with: field.starts_with().to_vec(),
        ends_with: field.ends_with().to_vec(),
        not_equals: field.not_equals().to_vec(),
        not_starts_with: field.not_starts_with().to_vec(),
        not_ends_with: field.not_ends_with().to_vec(),
    }
}

/// For functions that never look for who submitted (only the reconciler does): keeps the
/// CloudTrail client out of their zips.
pub struct NoUploadTrail;

#[async_trait::async_trait]
impl crate::ports::UploadTrail for NoUploadTrail {
    async fn coverage(&self, _trail: &str, _bucket: &str, _key: &str) -> Result<Coverage, TrailError> {
        Err(TrailError::Unavailable("this function does not read CloudTrail; the reconciler asks".into()))
    }

    async fn find_upload(
        &self,
        _delivery: &Delivery,
        _source: &ManifestSource,
        _created: DateTime<Utc>,
        _from: DateTime<Utc>,
        _until: DateTime<Utc>,
    ) -> Result<Option<Uploader>, TrailError> {
        Err(TrailError::Unavailable("this function does not read CloudTrail; the reconciler asks".into()))
    }
}
