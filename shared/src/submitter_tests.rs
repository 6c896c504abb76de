use chrono::TimeZone;
use serde_json::json;

use super::*;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "us-east-2";

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, h, m, 0).unwrap()
}

fn trail() -> TrailConfig {
    TrailConfig {
        arn: format!("arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/org-audit"),
        bucket: "audit-logs".into(),
        key_prefix: None,
        home_region: REGION.into(),
        multi_region: false,
        organization: None,
        logging: true,
        selectors: vec![BasicSelector {
            read_write: "WriteOnly".into(),
            data_resources: vec![("AWS::S3::Object".into(), vec!["arn:aws:s3:::convoy-state/".into()])],
        }],
        advanced: Vec::new(),
    }
}

fn covered(trail: &TrailConfig) -> Result<Delivery, String> {
    match coverage(trail, "convoy-state", "releases/web/v2.json", ACCOUNT, REGION) {
        Coverage::Logged(delivery) => Ok(delivery),
        Coverage::NotLogged(why) => Err(why),
    }
}

fn field(name: &str, equals: &[&str]) -> FieldSelector {
    FieldSelector { field: name.into(), equals: equals.iter().map(|v| v.to_string()).collect(), ..Default::default() }
}

#[test]
fn a_trail_that_logs_writes_to_the_bucket_covers_the_manifest_and_delivers_under_its_account_and_region() {
    let delivery = covered(&trail()).unwrap();
    assert_eq!(delivery.bucket, "audit-logs");
    assert_eq!(delivery.prefix, format!("AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/"));
    // With a key prefix and as an organization trail (CloudTrail User Guide, "Finding your
    // CloudTrail log files"): prefix/AWSLogs/o-id/account/CloudTrail/region/.
    let mut organization = trail();
    organization.key_prefix = Some("audit".into());
    organization.organization = Some("o-exampleorgid".into());
    assert_eq!(
        covered(&organization).unwrap().prefix,
        format!("audit/AWSLogs/o-exampleorgid/{ACCOUNT}/CloudTrail/{REGION}/")
    );
}

#[test]
fn a_trail_that_is_off_logs_reads_only_another_bucket_or_another_region_does_not_cover_it() {
    let mut off = trail();
    off.logging = false;
    assert!(covered(&off).unwrap_err().contains("is not logging"));
    let mut reads = trail();
    reads.selectors[0].read_write = "ReadOnly".into();
    assert!(covered(&reads).unwrap_err().contains("logs no S3 data events for writes to arn:aws:s3:::convoy-state/"));
    let mut other = trail();
    other.selectors[0].data_resources[0].1 = vec!["arn:aws:s3:::convoy-state-old/".into()];
    assert!(covered(&other).is_err(), "a bucket whose name only begins like it is another bucket");
    let mut elsewhere = trail();
    elsewhere.home_region = "eu-west-1".into();
    assert!(covered(&elsewhere).unwrap_err().contains("logs eu-west-1 only"));
    elsewhere.multi_region = true;
    assert!(covered(&elsewhere).is_ok());
    let mut management = trail();
    management.selectors[0].data_resources.clear();
    let why = covered(&management).unwrap_err();
    assert!(why.starts_with("no data-event trail: trail arn:aws:cloudtrail:"), "{why}");
}

#[test]
fn every_bucket_all_writes_or_the_manifests_prefix_covers_it_and_another_prefix_does_not() {
    for value in ["arn:aws:s3", "arn:aws:s3:::convoy-state/releases/"] {
        let mut all = trail();
        all.selectors[0].read_write = "All".into();
        all.selectors[0].data_resources[0].1 = vec![value.into()];
        assert!(covered(&all).is_ok(), "{value}");
    }
    let mut schedules = trail();
    schedules.selectors[0].data_resources[0].1 = vec!["arn:aws:s3:::convoy-state/settings/".into()];
    assert!(covered(&schedules).is_err());
    let mut lambda = trail();
    lambda.selectors[0].data_resources[0].0 = "AWS::Lambda::Function".into();
    assert!(covered(&lambda).is_err());
}

#[test]
fn an_advanced_selector_covers_it_only_when_every_field_admits_an_s3_object_write() {
    let selector = |fields: Vec<FieldSelector>| {
        let mut advanced = trail();
        advanced.selectors.clear();
        advanced.advanced = vec![AdvancedSelector { fields }];
        covered(&advanced)
    };
    let data = || field("eventCategory", &["Data"]);
    let objects = || field("resources.type", &["AWS::S3::Object"]);
    assert!(selector(vec![data(), objects()]).is_ok());
    assert!(selector(vec![data(), objects(), field("readOnly", &["false"])]).is_ok());
    assert!(selector(vec![data(), objects(), field("readOnly", &["true"])]).is_err());
    assert!(selector(vec![data(), objects(), field("eventName", &["GetObject"])]).is_err());
    let arn = |starts: &str| FieldSelector {
        field: "resources.ARN".into(),
        starts_with: vec![starts.into()],
        ..Default::default()
    };
    assert!(selector(vec![data(), objects(), arn("arn:aws:s3:::convoy-state/")]).is_ok());
    assert!(selector(vec![data(), objects(), arn("arn:aws:s3:::other/")]).is_err());
    let not_ours = FieldSelector {
        field: "resources.ARN".into(),
        not_starts_with: vec!["arn:aws:s3:::convoy-state/".into()],
        ..Default::default()
    };
    assert!(selector(vec![data(), objects(), not_ours]).is_err());
    assert!(selector(vec![data(), objects(), field("eventName", &["PutObject", "CopyObject"])]).is_ok());
    assert!(selector(vec![data(), objects(), field("eventSource", &["s3.amazonaws.com"])]).is_ok());
    let not_reads =
        FieldSelector { field: "eventName".into(), not_equals: vec!["GetObject".into()], ..Default::default() };
    assert!(selector(vec![data(), objects(), not_reads]).is_ok());
    let ending =
        |end: &str| FieldSelector { field: "resources.ARN".into(), ends_with: vec![end.into()], ..Default::default() };
    assert!(selector(vec![data(), objects(), ending(".json")]).is_ok());
    assert!(selector(vec![data(), objects(), ending(".yaml")]).is_err());
    // Both the data category and the object type must be selected.
    assert!(selector(vec![data()]).is_err());
    assert!(selector(vec![objects()]).is_err());
    // Management events only, or another resource type, log no object writes.
    assert!(selector(vec![field("eventCategory", &["Management"])]).is_err());
    assert!(selector(vec![data(), field("resources.type", &["AWS::DynamoDB::Table"])]).is_err());
    // A field Convoy cannot judge may leave the write out: not counted.
    assert!(selector(vec![data(), objects(), field("userIdentity.arn", &["arn:aws:iam::1:role/x"])]).is_err());
}

#[test]
fn log_files_are_listed_from_the_minute_before_per_day_and_read_back_from_their_names() {
    let delivery = covered(&trail()).unwrap();
    let days = day_prefixes(&delivery, at(23, 50), at(23, 50) + Duration::hours(1));
    assert_eq!(
        days,
        [
            format!("AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/2026/12/07/"),
            format!("AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/2026/12/08/")
        ]
    );
    assert_eq!(
        start_after(&days[0], &delivery, at(10, 5)),
        format!("{}{ACCOUNT}_CloudTrail_{REGION}_20261207T1004Z", days[0])
    );
    // The name of the CloudTrail User Guide's example, in this account's folder.
    let key = format!("{}{ACCOUNT}_CloudTrail_{REGION}_20261207T1010Z_Mu0KsOhtH1ar15ZZ.json.gz", days[0]);
    assert_eq!(delivered_at(&key, &delivery), Some(at(10, 10)));
    assert!(start_after(&days[0], &delivery, at(10, 5)) < key, "listed after the start");
    for other in [
        format!("{}{ACCOUNT}_CloudTrail_{REGION}_20261207T1010Z_Mu0KsOhtH1ar15ZZ.json", days[0]),
        format!("{}999988887777_CloudTrail_{REGION}_20261207T1010Z_Mu0KsOhtH1ar15ZZ.json.gz", days[0]),
        format!("{}{ACCOUNT}_CloudTrail-Digest_{REGION}_20261207T1010Z_Mu0KsOhtH1ar15ZZ.json.gz", days[0]),
        format!("elsewhere/{ACCOUNT}_CloudTrail_{REGION}_20261207T1010Z_Mu0KsOhtH1ar15ZZ.json.gz"),
    ] {
        assert_eq!(delivered_at(&other, &delivery), None, "{other}");
    }
}

fn delivery() -> Delivery {
    covered(&trail()).unwrap()
}

fn source(version: Option<&str>) -> ManifestSource {
    ManifestSource {
        bucket: "convoy-state".into(),
        key: "releases/web/v2.json".into(),
        version_id: version.map(str::to_owned),
        etag: None,
    }
}

/// A data event record of a `PutObject`, in the fields of "CloudTrail record contents" and the
/// S3 User Guide's example log entries (requestParameters.bucketName/key, the version in
/// responseElements).
fn put(arn: &str, id: &str, time: &str, version: &str) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "AssumedRole", "arn": arn, "accountId": ACCOUNT},
        "eventTime": time, "eventSource": "s3.amazonaws.com", "eventName": "PutObject",
        "awsRegion": REGION, "sourceIPAddress": "192.0.2.7",
        "requestParameters": {"bucketName": "convoy-state", "Host": "convoy-state.s3.us-east-2.amazonaws.com",
                              "key": "releases/web/v2.json"},
        "responseElements": {"x-amz-version-id": version},
        "eventID": id, "readOnly": false, "eventType": "AwsApiCall", "managementEvent": false,
        "recipientAccountId": ACCOUNT, "eventCategory": "Data",
        "resources": [{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::convoy-state/releases/web/v2.json"}]
    })
}

const CI: &str = "arn:aws:sts::111122223333:assumed-role/github-ci/run-4cf03d1";
const MALLORY: &str = "arn:aws:iam::111122223333:user/mallory";

#[test]
fn the_write_of_that_very_version_names_the_uploader_and_no_other_write_does() {
    let records = vec![
        put(MALLORY, "e-old", "2026-12-07T10:01:00Z", "v-older"),
        put(CI, "e-ci", "2026-12-07T10:02:00Z", "v-ours"),
    ];
    let found = find_upload(&records, &source(Some("v-ours")), at(10, 3), &delivery(), "s3://audit-logs/k").unwrap();
    assert_eq!(found.principal_arn, CI);
    assert_eq!(found.session_name.as_deref(), Some("run-4cf03d1"));
    assert_eq!(found.event_id, "e-ci");
    assert_eq!(found.operation, "s3:PutObject");
    assert_eq!(found.source_ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(found.log_file, "s3://audit-logs/k");
    assert!(found.describe().starts_with(&format!("{CI} (s3:PutObject at 2026-12-07 10:02:00 UTC")));
    assert_eq!(find_upload(&records, &source(Some("v-other")), at(10, 3), &delivery(), "k"), None);
}

#[test]
fn a_refused_write_another_key_bucket_account_or_a_read_is_not_the_upload() {
    let ours = put(CI, "e-1", "2026-12-07T10:02:00Z", "v-ours");
    let variants = [
        ("errorCode", json!("AccessDenied")),
        ("recipientAccountId", json!("999988887777")),
        ("eventName", json!("GetObject")),
        ("eventSource", json!("s3-outposts.amazonaws.com")),
    ];
    for (field, value) in variants {
        let mut record = ours.clone();
        record[field] = value;
        assert_eq!(find_upload(&[record], &source(Some("v-ours")), at(11, 0), &delivery(), "k"), None, "{field}");
    }
    for (field, value) in [("bucketName", "convoy-state-old"), ("key", "releases/web/v3.json")] {
        let mut record = ours.clone();
        record["requestParameters"][field] = json!(value);
        assert_eq!(find_upload(&[record], &source(Some("v-ours")), at(11, 0), &delivery(), "k"), None, "{field}");
    }
    let mut anonymous = ours.clone();
    anonymous["userIdentity"]["arn"] = json!("");
    assert_eq!(find_upload(&[anonymous], &source(Some("v-ours")), at(11, 0), &delivery(), "k"), None);
    let mut copied = ours.clone();
    copied["eventName"] = json!("CompleteMultipartUpload");
    let found = find_upload(&[copied], &source(Some("v-ours")), at(11, 0), &delivery(), "k").unwrap();
    assert_eq!(found.operation, "s3:CompleteMultipartUpload");
}

#[test]
fn on_a_bucket_without_versions_the_last_write_before_the_record_is_the_upload() {
    let records = vec![
        put(MALLORY, "e-1", "2026-12-07T10:01:00Z", "null"),
        put(CI, "e-2", "2026-12-07T10:02:00Z", "null"),
        put(MALLORY, "e-3", "2026-12-07T10:09:00Z", "null"),
    ];
    let found = find_upload(&records, &source(None), at(10, 5), &delivery(), "k").unwrap();
    assert_eq!(found.event_id, "e-2", "the write after the record was made is a later upload");
}

#[test]
fn a_new_record_looks_in_the_named_trail_for_an_hour_or_says_there_is_no_data_event_trail() {
    let looking = Submitter::at_creation(Some("org-audit"), at(10, 0));
    assert_eq!(looking, Submitter::Looking { trail: "org-audit".into(), until: at(11, 0) });
    assert!(looking.describe().contains("looking in trail org-audit's log files until 11:00:00 UTC"));
    let unknown = Submitter::at_creation(None, at(10, 0));
    assert!(unknown.describe().starts_with("unknown: no data-event trail"), "{}", unknown.describe());
}
