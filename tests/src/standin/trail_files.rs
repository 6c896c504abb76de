//! CloudTrail's data events and the delivery of a trail's log files: moto 5.2.5 keeps trails
//! (`CreateTrail`, `PutEventSelectors`, `StartLogging`, `GetTrail`, `GetTrailStatus`,
//! `GetEventSelectors`) but records no event and delivers no file. The stand-in records each
//! S3 object write that passes through it as the data event record CloudTrail writes (the caller
//! as AWS resolves it, `requestParameters` `bucketName`/`Host`/`key`, the new version in
//! `responseElements`, "CloudTrail record contents" and the S3 User Guide's "CloudTrail log file
//! entries" examples), and [`StandIn::deliver_trail_logs`] does what CloudTrail does about every
//! five minutes: writes the records the trail selects (by its event selectors as moto keeps
//! them), not yet delivered, into one gzip'd `{"Records": [...]}` file in the trail's bucket,
//! under `[prefix/]AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/` and named
//! `<account>_CloudTrail_<region>_<YYYYMMDDTHHmm>Z_<16 characters>.json.gz` (CloudTrail User
//! Guide, "CloudTrail log file examples").

use std::io::Write as _;

use serde_json::{Value, json};

use super::{StandIn, fresh_id, header};

/// The S3 object writes seen so far (each kept as its request's head, so the caller is resolved
/// only when a file is delivered, not on every write), and how many each trail was given.
#[derive(Debug, Default)]
pub(super) struct DataEvents {
    writes: Vec<ObjectWrite>,
    delivered: std::collections::HashMap<String, usize>,
}

#[derive(Debug, Clone)]
pub(super) struct ObjectWrite {
    head: String,
    operation: &'static str,
    bucket: String,
    key: String,
    version: Option<String>,
    source_ip: String,
    at: chrono::DateTime<chrono::Utc>,
}

impl DataEvents {
    pub(super) fn push(&mut self, write: ObjectWrite) {
        self.writes.push(write);
    }
}

/// A successful S3 object write (`PUT /bucket/key`, path style) that moto answered with
/// `response`, or `None` for any other request.
pub(super) fn s3_write(head: &str, response: &[u8], source_ip: &str) -> Option<ObjectWrite> {
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?, parts.next()?);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // A part of a multipart upload, a tagging or an ACL is not the write that makes the object.
    let query_names_more = query.split('&').any(|p| !p.is_empty() && !p.starts_with("x-id="));
    if method != "PUT" || super::signing_service(head) != "s3" || query_names_more {
        return None;
    }
    let (bucket, key) = path.trim_start_matches('/').split_once('/')?;
    let response_head = &response[..response.windows(4).position(|w| w == b"\r\n\r\n")?];
    let response_head = String::from_utf8_lossy(response_head).into_owned();
    if response_head.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    Some(ObjectWrite {
        head: head.to_owned(),
        operation: if header(head, "x-amz-copy-source").is_some() { "CopyObject" } else { "PutObject" },
        bucket: bucket.to_owned(),
        key: percent_encoding::percent_decode_str(key).decode_utf8_lossy().into_owned(),
        version: header(&response_head, "x-amz-version-id"),
        source_ip: source_ip.to_owned(),
        at: chrono::Utc::now(),
    })
}

/// The data event record CloudTrail writes for `write`: the caller as AWS resolves the key that
/// signed it.
async fn record_of(upstream: &str, write: &ObjectWrite) -> Value {
    let mut record =
        super::cloudtrail::trail_record(upstream, &write.head, write.operation, &Value::Null, &write.source_ip, None)
            .await;
    let (bucket, key) = (&write.bucket, &write.key);
    record["eventTime"] = json!(write.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    record["requestParameters"] =
        json!({"bucketName": bucket, "Host": header(&write.head, "host").unwrap_or_default(), "key": key});
    record["responseElements"] = match &write.version {
        Some(version) => json!({"x-amz-version-id": version}),
        None => Value::Null,
    };
    record["eventSource"] = json!("s3.amazonaws.com");
    record["managementEvent"] = json!(false);
    record["eventCategory"] = json!("Data");
    record["readOnly"] = json!(false);
    record["additionalEventData"] = json!({"SignatureVersion": "SigV4", "AuthenticationMethod": "AuthHeader"});
    record["resources"] = json!([
        {"type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::{bucket}/{key}")},
        {"accountId": record["recipientAccountId"], "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")},
    ]);
    record
}

/// Whether the trail's selectors select the write `record` (an object ARN in its `resources`).
fn selects(
    selectors: &aws_sdk_cloudtrail::operation::get_event_selectors::GetEventSelectorsOutput,
    record: &Value,
) -> bool {
    let arn = record["resources"][0]["ARN"].as_str().unwrap_or_default();
    let basic = selectors.event_selectors().iter().any(|selector| {
        selector.read_write_type().is_none_or(|t| t.as_str() != "ReadOnly")
            && selector.data_resources().iter().any(|resource| {
                resource.r#type() == Some("AWS::S3::Object")
                    && resource.values().iter().any(|v| v == "arn:aws:s3" || arn.starts_with(v.as_str()))
            })
    });
    let advanced = selectors.advanced_event_selectors().iter().any(|selector| {
        selector.field_selectors().iter().all(|field| {
            let value = match field.field() {
                "eventCategory" => "Data",
                "resources.type" => "AWS::S3::Object",
                "readOnly" => "false",
                "eventName" => record["eventName"].as_str().unwrap_or_default(),
                "resources.ARN" => arn,
                _ => return false,
            };
            (field.equals().is_empty() && field.starts_with().is_empty()
                || field.equals().iter().any(|v| v == value)
                || field.starts_with().iter().any(|v| value.starts_with(v.as_str())))
                && !field.not_equals().iter().any(|v| v == value)
                && !field.not_starts_with().iter().any(|v| value.starts_with(v.as_str()))
        })
    });
    basic || advanced
}

impl StandIn {
    /// Delivers `trail`'s next log file, as CloudTrail would now: the writes since its last file
    /// that the trail selects, if it is logging, in moto through `sdk`. Returns the file's key, or
    /// `None` when there was nothing to deliver (CloudTrail writes no empty file).
    pub async fn deliver_trail_logs(&self, sdk: &aws_config::SdkConfig, trail: &str) -> Option<String> {
        let cloudtrail = aws_sdk_cloudtrail::Client::new(sdk);
        let described = cloudtrail.get_trail().name(trail).send().await.expect("GetTrail").trail.expect("a trail");
        let logging = cloudtrail.get_trail_status().name(trail).send().await.expect("GetTrailStatus").is_logging;
        let selectors = cloudtrail.get_event_selectors().trail_name(trail).send().await.expect("GetEventSelectors");
        let (region, account) = {
            let arn = described.trail_arn().expect("an ARN");
            let mut parts = arn.split(':').skip(3);
            (parts.next().unwrap_or_default().to_owned(), parts.next().unwrap_or_default().to_owned())
        };
        let writes: Vec<ObjectWrite> = {
            let mut events = self.shared.data_events.lock().expect("data events");
            let from = events.delivered.get(trail).copied().unwrap_or(0);
            let total = events.writes.len();
            events.delivered.insert(trail.to_owned(), total);
            events.writes[from..].to_vec()
        };
        if logging != Some(true) {
            return None;
        }
        let mut records = Vec::new();
        for write in &writes {
            let record = record_of(&self.shared.upstream, write).await;
            let in_region = record["awsRegion"] == region.as_str() || described.is_multi_region_trail() == Some(true);
            if in_region && selects(&selectors, &record) {
                records.push(record);
            }
        }
        if records.is_empty() {
            return None;
        }
        let now = chrono::Utc::now();
        let prefix = described.s3_key_prefix().filter(|p| !p.is_empty()).map(|p| format!("{p}/")).unwrap_or_default();
        let unique: String = fresh_id().replace('-', "").chars().take(16).collect();
        let key = format!(
            "{prefix}AWSLogs/{account}/CloudTrail/{region}/{}/{account}_CloudTrail_{region}_{}Z_{unique}.json.gz",
            now.format("%Y/%m/%d"),
            now.format("%Y%m%dT%H%M")
        );
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(json!({"Records": records}).to_string().as_bytes()).expect("gzip");
        let body = gzip.finish().expect("gzip");
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(sdk).force_path_style(true).build());
        let bucket = described.s3_bucket_name().expect("the trail's bucket");
        s3.put_object().bucket(bucket).key(&key).body(body.into()).send().await.expect("deliver the log file");
        Some(key)
    }
}
