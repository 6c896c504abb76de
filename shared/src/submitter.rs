//! Who submitted a release: the principal CloudTrail recorded for the S3 write that uploaded its
//! manifest, read from the trail's delivered log files (never from the manifest, never from an
//! event payload: anyone who can invoke a function can hand it one).
//!
//! An S3 `PutObject` is a data event. CloudTrail's event history (`LookupEvents`) holds management
//! events only, so the write is on record only where a trail logs data events for the object
//! (its event selectors), and only in the log files that trail delivers to its bucket, about five
//! minutes after the call, "not guaranteed" (CloudTrail User Guide, "CloudTrail log file
//! examples": a file named for its delivery time holds records of any time before it). The
//! operator names the trail (the stack's `ManifestTrailArn`); the reconciler checks that it logs
//! writes to the manifest's object, then looks for the write in the files delivered after the
//! upload, until [`SEARCH_WINDOW`] has passed. Everything here is pure: the checks on the trail's
//! configuration and on the records, and the names of the log files.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::release::ManifestSource;

/// How long after the release's record was created Convoy looks for the upload in the trail's
/// log files. CloudTrail delivers "within an average of about 5 minutes"; an hour leaves room for
/// a slow delivery, and then the record says it was not found rather than look forever.
pub const SEARCH_WINDOW: Duration = Duration::hours(1);

/// How early, before the record was created, a log file may have been delivered and still hold
/// the upload: the record is created after the upload, by at most the event's delay.
pub const UPLOAD_LEAD: Duration = Duration::minutes(15);

/// The S3 operations that write an object (what CI's upload is, whichever way it uploads).
pub const WRITES: [&str; 3] = ["PutObject", "CopyObject", "CompleteMultipartUpload"];

/// What the record says of who submitted the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Submitter {
    /// No trail logs the write: who uploaded the manifest is not on record anywhere in AWS.
    Unknown { reason: String },
    /// A trail is named; the reconciler looks for the write in its log files until `until`.
    Looking { trail: String, until: DateTime<Utc> },
    /// CloudTrail recorded the upload.
    Found(Uploader),
    /// The trail logs such writes, but no delivered file held this one within the window.
    NotFound { trail: String, reason: String },
}

impl Submitter {
    /// What a new record says: looking in `trail`'s files, or unknown without one.
    pub fn at_creation(trail: Option<&str>, created: DateTime<Utc>) -> Self {
        match trail {
            Some(trail) => Submitter::Looking { trail: trail.to_owned(), until: created + SEARCH_WINDOW },
            None => Submitter::Unknown {
                reason: "no data-event trail: Convoy was given none (the stack's ManifestTrailArn)".into(),
            },
        }
    }

    /// The line `convoy status` and the dashboard show.
    pub fn describe(&self) -> String {
        match self {
            Submitter::Unknown { reason } => format!("unknown: {reason}"),
            Submitter::Looking { trail, until } => {
                format!("not yet known: looking in trail {trail}'s log files until {}", until.format("%H:%M:%S UTC"))
            }
            Submitter::Found(uploader) => uploader.describe(),
            Submitter::NotFound { reason, .. } => format!("not found: {reason}"),
        }
    }

    /// What a record says once a manifest was uploaded again (a refused one, fixed): the new
    /// upload's writer is looked for as the first one's was.
    pub fn for_new_upload(&self, at: DateTime<Utc>) -> Self {
        match self {
            Submitter::Unknown { .. } => self.clone(),
            Submitter::Looking { trail, .. } | Submitter::NotFound { trail, .. } => {
                Submitter::Looking { trail: trail.clone(), until: at + SEARCH_WINDOW }
            }
            Submitter::Found(uploader) => {
                Submitter::Looking { trail: uploader.trail.clone(), until: at + SEARCH_WINDOW }
            }
        }
    }
}

/// The principal CloudTrail names for the write, and where the record is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uploader {
    pub principal_arn: String,
    /// The session of an assumed role (for CI, often the job or commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// `s3:PutObject`, or the other write that made the object.
    pub operation: String,
    pub event_id: String,
    pub event_time: DateTime<Utc>,
    /// The log file that held the record (`s3://bucket/key`), and the trail that delivered it.
    pub log_file: String,
    pub trail: String,
}

impl Uploader {
    pub fn describe(&self) -> String {
        format!(
            "{} ({} at {}, CloudTrail event {}, in {})",
            self.principal_arn,
            self.operation,
            self.event_time.format("%Y-%m-%d %H:%M:%S UTC"),
            self.event_id,
            self.log_file
        )
    }
}

/// A trail as CloudTrail describes it (`GetTrail`, `GetTrailStatus`, `GetEventSelectors`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrailConfig {
    pub arn: String,
    pub bucket: String,
    /// The trail's `S3KeyPrefix` (none: the log files start at `AWSLogs/`).
    pub key_prefix: Option<String>,
    pub home_region: String,
    pub multi_region: bool,
    /// The organization's id, for an organization trail (its files are under `AWSLogs/<o-id>/`).
    pub organization: Option<String>,
    pub logging: bool,
    pub selectors: Vec<BasicSelector>,
    pub advanced: Vec<AdvancedSelector>,
}

/// A basic event selector: its read/write type and its data resources.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BasicSelector {
    /// `ReadOnly`, `WriteOnly` or `All` (CloudTrail's default).
    pub read_write: String,
    /// `(type, values)` of each data resource (`AWS::S3::Object`, `["arn:aws:s3:::bucket/"]`).
    pub data_resources: Vec<(String, Vec<String>)>,
}

/// An advanced event selector: every field selector must match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdvancedSelector {
    pub fields: Vec<FieldSelector>,
}

/// One field selector of an advanced event selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    pub field: String,
    pub equals: Vec<String>,
    pub starts_with: Vec<String>,
    pub ends_with: Vec<String>,
    pub not_equals: Vec<String>,
    pub not_starts_with: Vec<String>,
    pub not_ends_with: Vec<String>,
}

/// Where a trail that logs the write delivers its log files in this account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub trail: String,
    pub bucket: String,
    /// `[prefix/]AWSLogs/[o-id/]<account>/CloudTrail/<region>/`: the days' folders follow.
    pub prefix: String,
    pub account: String,
    pub region: String,
}

/// Whether the trail logs the write that uploaded a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    Logged(Delivery),
    NotLogged(String),
}

/// The ARN CloudTrail's data resources and `resources.ARN` use for an object.
pub fn object_arn(bucket: &str, key: &str) -> String {
    format!("arn:aws:s3:::{bucket}/{key}")
}

/// Whether `trail` records a successful write of `bucket/key` made in `region` of `account`,
/// and where its files are; else why not, in words the record can keep.
pub fn coverage(trail: &TrailConfig, bucket: &str, key: &str, account: &str, region: &str) -> Coverage {
    let not = |why: String| Coverage::NotLogged(format!("no data-event trail: trail {} {why}", trail.arn));
    if !trail.logging {
        return not("is not logging (GetTrailStatus: IsLogging false)".into());
    }
    if !trail.multi_region && trail.home_region != region {
        return not(format!("logs {} only, not {region}", trail.home_region));
    }
    let arn = object_arn(bucket, key);
    let basic = trail.selectors.iter().any(|selector| basic_logs_write(selector, &arn));
    let advanced = trail.advanced.iter().any(|selector| advanced_logs_write(selector, &arn));
    if !(basic || advanced) {
        return not(format!("logs no S3 data events for writes to {arn}"));
    }
    let mut prefix = trail.key_prefix.as_deref().filter(|p| !p.is_empty()).map(|p| format!("{p}/")).unwrap_or_default();
    prefix.push_str("AWSLogs/");
    if let Some(organization) = &trail.organization {
        prefix.push_str(&format!("{organization}/"));
    }
    prefix.push_str(&format!("{account}/CloudTrail/{region}/"));
    Coverage::Logged(Delivery {
        trail: trail.arn.clone(),
        bucket: trail.bucket.clone(),
        prefix,
        account: account.to_owned(),
        region: region.to_owned(),
    })
}

/// A basic selector logs the write when it is not read-only and one of its `AWS::S3::Object`
/// values covers the ARN: `arn:aws:s3` (every bucket), or a prefix of it ("arn:aws:s3:::bucket/"
/// logs the bucket's objects, "arn:aws:s3:::bucket/releases/" those under the prefix).
fn basic_logs_write(selector: &BasicSelector, arn: &str) -> bool {
    if selector.read_write == "ReadOnly" {
        return false;
    }
    // "arn:aws:s3" and "arn:aws:s3:::" begin every object's ARN: each is a prefix like the others.
    selector
        .data_resources
        .iter()
        .filter(|(kind, _)| kind == "AWS::S3::Object")
        .any(|(_, values)| values.iter().any(|value| arn.starts_with(value.as_str())))
}

/// An advanced selector logs the write when each of its field selectors admits it: the data
/// category, the `AWS::S3::Object` type, a write (`readOnly` false), the operation, the ARN.
fn advanced_logs_write(selector: &AdvancedSelector, arn: &str) -> bool {
    let mut data = false;
    let mut object = false;
    for field in &selector.fields {
        let admits = |value: &str| field_admits(field, value);
        let ok = match field.field.as_str() {
            "eventCategory" => {
                data = admits("Data");
                data
            }
            "resources.type" => {
                object = admits("AWS::S3::Object");
                object
            }
            "readOnly" => admits("false"),
            // Any of the writes an upload may be; the check is on PutObject, CI's usual one.
            "eventName" => admits("PutObject"),
            "resources.ARN" => admits(arn),
            "eventSource" => admits("s3.amazonaws.com"),
            // A field Convoy cannot judge (userIdentity.arn, errorCode, vpcEndpointId…) may
            // leave some writes out: not counted as logging this one.
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    data && object
}

fn field_admits(field: &FieldSelector, value: &str) -> bool {
    let positive = !field.equals.is_empty() || !field.starts_with.is_empty() || !field.ends_with.is_empty();
    let matched = field.equals.iter().any(|v| v == value)
        || field.starts_with.iter().any(|v| value.starts_with(v.as_str()))
        || field.ends_with.iter().any(|v| value.ends_with(v.as_str()));
    let excluded = field.not_equals.iter().any(|v| v == value)
        || field.not_starts_with.iter().any(|v| value.starts_with(v.as_str()))
        || field.not_ends_with.iter().any(|v| value.ends_with(v.as_str()));
    (!positive || matched) && !excluded
}

/// The day folder (`…/YYYY/MM/DD/`) of each day from `from` to `until`.
pub fn day_prefixes(delivery: &Delivery, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<String> {
    let mut days = Vec::new();
    let mut day = from.date_naive();
    while day <= until.date_naive() {
        days.push(format!("{}{}/", delivery.prefix, day.format("%Y/%m/%d")));
        let Some(next) = day.succ_opt() else { break };
        day = next;
    }
    days
}

/// The key a listing of `day` starts after so it lists only files delivered at `from` or later:
/// the files of one account and region sort by their delivery time.
pub fn start_after(day: &str, delivery: &Delivery, from: DateTime<Utc>) -> String {
    let before = from - Duration::minutes(1);
    format!("{day}{}_CloudTrail_{}_{}Z", delivery.account, delivery.region, before.format("%Y%m%dT%H%M"))
}

/// When a log file was delivered, from its name
/// (`AccountID_CloudTrail_RegionName_YYYYMMDDTHHmmZ_UniqueString.json.gz`); `None` for a key that
/// is not a log file of this account and region.
pub fn delivered_at(key: &str, delivery: &Delivery) -> Option<DateTime<Utc>> {
    let name = key.strip_prefix(&delivery.prefix)?.rsplit('/').next()?;
    let rest = name.strip_prefix(&format!("{}_CloudTrail_{}_", delivery.account, delivery.region))?;
    let (stamp, unique) = rest.split_once("Z_")?;
    if !unique.ends_with(".json.gz") {
        return None;
    }
    let at = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M").ok()?;
    Some(at.and_utc())
}

/// The record of the write that made `source`, among the `records` of one log file (`Records` of
/// the file's JSON) `delivery` delivered: a successful write of that bucket and key, in its
/// account, of that version
/// (on a versioned bucket; on another, the last write before `created`).
pub fn find_upload(
    records: &[Value],
    source: &ManifestSource,
    created: DateTime<Utc>,
    delivery: &Delivery,
    log_file: &str,
) -> Option<Uploader> {
    let mut writes = records.iter().filter_map(|record| read_write(record, source, delivery, log_file));
    if source.version_id.is_some() {
        return writes.next();
    }
    writes.filter(|write| write.event_time <= created).max_by_key(|write| write.event_time)
}

/// One record, when it is a successful write of `source`'s object in `account`.
fn read_write(record: &Value, source: &ManifestSource, delivery: &Delivery, log_file: &str) -> Option<Uploader> {
    if record["eventSource"] != "s3.amazonaws.com" || record.get("errorCode").is_some_and(|c| !c.is_null()) {
        return None;
    }
    let name = record["eventName"].as_str()?;
    if !WRITES.contains(&name) || record["recipientAccountId"] != delivery.account.as_str() {
        return None;
    }
    let parameters = &record["requestParameters"];
    if parameters["bucketName"] != source.bucket.as_str() || parameters["key"] != source.key.as_str() {
        return None;
    }
    if let Some(version) = &source.version_id
        && record["responseElements"]["x-amz-version-id"].as_str() != Some(version.as_str())
    {
        return None;
    }
    let principal_arn = record["userIdentity"]["arn"].as_str().filter(|arn| arn.starts_with("arn:"))?.to_owned();
    let event_id = record["eventID"].as_str().filter(|id| !id.is_empty())?.to_owned();
    let event_time = record["eventTime"].as_str()?.parse().ok()?;
    Some(Uploader {
        session_name: crate::release::Actor::session_of(&principal_arn),
        principal_arn,
        source_ip: record["sourceIPAddress"].as_str().filter(|ip| !ip.is_empty()).map(str::to_owned),
        operation: format!("s3:{name}"),
        event_id,
        event_time,
        log_file: log_file.to_owned(),
        trail: delivery.trail.clone(),
    })
}

#[cfg(test)]
#[path = "submitter_tests.rs"]
mod tests;
