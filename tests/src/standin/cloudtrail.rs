//! CloudTrail: moto 5.2.5 has no `LookupEvents` (its CloudTrail keeps trails, not events). The
//! stand-in records each call of the four operations that decide a traffic shift (CodeDeploy
//! `ContinueDeployment`/`StopDeployment`, ECS `ContinueServiceDeployment`/`StopServiceDeployment`)
//! as a CloudTrail record: the caller's identity as AWS resolves it (moto's STS
//! `GetCallerIdentity` for the access key that signed the request, never anything the client
//! wrote in the body), the connection's source IP, a fresh `eventID`, and `errorCode` when it was
//! refused. It serves `LookupEvents` (by `EventName`, within `StartTime`/`EndTime`, newest first,
//! paged) over those records, and [`StandIn::api_call_event`] wraps one in the EventBridge "AWS
//! API Call via CloudTrail" event AWS would deliver.

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Reply, StandIn, fresh_id, header, refuse, signing_service};

/// CloudTrail's records of the decision calls, oldest first, each with when it was recorded.
#[derive(Debug, Default)]
pub(super) struct Trail {
    records: Vec<(std::time::Instant, Value)>,
    /// How long a record takes to appear in the event history ([`StandIn::cloudtrail_delay`]).
    delay: std::time::Duration,
}

impl Trail {
    pub(super) fn push(&mut self, record: Value) {
        self.records.push((std::time::Instant::now(), record));
    }

    /// `LookupEvents` over the records the event history holds by now.
    pub(super) fn lookup_events(&self, body: &Value) -> Reply {
        let now = std::time::Instant::now();
        let delivered: Vec<Value> =
            self.records.iter().filter(|(at, _)| *at + self.delay <= now).map(|(_, r)| r.clone()).collect();
        lookup_events(&delivered, body)
    }
}

impl StandIn {
    /// The CloudTrail records of the decision calls so far (refused ones carry `errorCode`),
    /// whether or not the event history shows them yet.
    pub fn trail(&self) -> Vec<Value> {
        self.shared.trail.lock().expect("trail").records.iter().map(|(_, r)| r.clone()).collect()
    }

    /// Records appear in `LookupEvents` only `delay` after the call from now on (none by
    /// default): CloudTrail's event history lags the calls it records by minutes, which is why
    /// Convoy asks again until 15 minutes have passed (ARCHITECTURE.md, "Approval from AWS").
    pub fn cloudtrail_delay(&self, delay: std::time::Duration) {
        self.shared.trail.lock().expect("trail").delay = delay;
    }

    /// The EventBridge "AWS API Call via CloudTrail" event AWS delivers for `record` (one of
    /// [`StandIn::trail`]): the envelope of the EventBridge User Guide around the record.
    pub fn api_call_event(record: &Value) -> Value {
        let source = record["eventSource"].as_str().unwrap_or_default().trim_end_matches(".amazonaws.com");
        json!({
            "version": "0",
            "id": fresh_id(),
            "detail-type": "AWS API Call via CloudTrail",
            "source": format!("aws.{source}"),
            "account": record["recipientAccountId"],
            "time": record["eventTime"],
            "region": record["awsRegion"],
            "resources": [],
            "detail": record,
        })
    }
}

/// The operations whose calls decide a traffic shift: CloudTrail records each.
pub(super) const DECISIONS: [&str; 4] =
    ["ContinueDeployment", "StopDeployment", "ContinueServiceDeployment", "StopServiceDeployment"];

/// The access key id that signed a request (SigV4 `Credential=AKID/...`).
fn access_key_of(head: &str) -> String {
    header(head, "authorization")
        .and_then(|auth| auth.split("Credential=").nth(1)?.split('/').next().map(str::to_owned))
        .unwrap_or_default()
}

/// Who AWS says owns `access_key`: moto's STS `GetCallerIdentity` for that key (an IAM user's
/// key resolves to the user, an assumed role's to its session): `(arn, user id, account)`.
async fn caller_identity(upstream: &str, access_key: &str) -> (String, String, String) {
    let form = "Action=GetCallerIdentity&Version=2011-06-15";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {upstream}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={access_key}/20260101/us-east-1/sts/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    let mut answer = Vec::new();
    if let Ok(mut moto) = TcpStream::connect(upstream).await
        && moto.write_all(request.as_bytes()).await.is_ok()
    {
        let _ = moto.read_to_end(&mut answer).await;
    }
    let text = String::from_utf8_lossy(&answer);
    let element = |name: &str| {
        text.split(&format!("<{name}>"))
            .nth(1)
            .and_then(|rest| rest.split(&format!("</{name}>")).next())
            .unwrap_or_default()
            .to_owned()
    };
    (element("Arn"), element("UserId"), element("Account"))
}

/// A CloudTrail record of a decision call, as CloudTrail writes it ("CloudTrail record contents"):
/// the caller from AWS, the request's parameters, and the refusal's code and message if any.
pub(super) async fn trail_record(
    upstream: &str,
    head: &str,
    operation: &str,
    body: &Value,
    source_ip: &str,
    refusal: Option<&Value>,
) -> Value {
    let access_key = access_key_of(head);
    let (arn, user_id, account) = caller_identity(upstream, &access_key).await;
    let service = signing_service(head);
    let region = header(head, "authorization")
        .and_then(|auth| auth.split("Credential=").nth(1)?.split('/').nth(2).map(str::to_owned))
        .unwrap_or_default();
    let mut identity = json!({"principalId": user_id, "arn": arn, "accountId": account, "accessKeyId": access_key});
    if let Some((_, resource)) = arn.split_once(":assumed-role/") {
        let role = resource.split('/').next().unwrap_or_default();
        identity["type"] = json!("AssumedRole");
        identity["sessionContext"] = json!({
            "sessionIssuer": {"type": "Role", "principalId": user_id.split(':').next().unwrap_or_default(),
                "arn": format!("arn:aws:iam::{account}:role/{role}"), "accountId": account, "userName": role},
            "attributes": {"creationDate": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "mfaAuthenticated": "false"}
        });
    } else {
        identity["type"] = json!("IAMUser");
        identity["userName"] = json!(arn.rsplit('/').next().unwrap_or_default());
    }
    let mut record = json!({
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "eventSource": format!("{service}.amazonaws.com"),
        "eventName": operation,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": header(head, "user-agent").unwrap_or_default(),
        "requestParameters": body,
        "responseElements": null,
        "requestID": fresh_id(),
        "eventID": fresh_id(),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": account,
        "eventCategory": "Management",
    });
    if let Some(refusal) = refusal {
        record["errorCode"] = refusal["__type"].clone();
        record["errorMessage"] = refusal["message"].clone();
    }
    record
}

/// CloudTrail `LookupEvents` over the recorded decision calls: one `EventName` attribute (the
/// only kind Convoy sends; others are refused as CloudTrail refuses more than one), within
/// `StartTime`/`EndTime` (epoch seconds), newest first, `MaxResults` per page (default 50), the
/// next page's index as `NextToken`.
fn lookup_events(trail: &[Value], body: &Value) -> Reply {
    let attributes = body["LookupAttributes"].as_array().cloned().unwrap_or_default();
    if attributes.len() > 1 {
        return refuse("InvalidLookupAttributesException", "You cannot specify more than one lookup attribute.".into());
    }
    let name = attributes.first().filter(|a| a["AttributeKey"] == "EventName").map(|a| a["AttributeValue"].clone());
    let time = |record: &Value| {
        record["eventTime"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(0, |t| t.timestamp())
    };
    let start = body["StartTime"].as_f64().map_or(i64::MIN, |t| t as i64);
    let end = body["EndTime"].as_f64().map_or(i64::MAX, |t| t as i64);
    let mut matching: Vec<&Value> = trail
        .iter()
        .filter(|r| name.as_ref().is_none_or(|n| r["eventName"] == *n))
        .filter(|r| (start..=end).contains(&time(r)))
        .collect();
    matching.reverse();
    let size = body["MaxResults"].as_u64().unwrap_or(50).clamp(1, 50) as usize;
    let from: usize = body["NextToken"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = matching
        .iter()
        .skip(from)
        .take(size)
        .map(|r| {
            json!({
                "EventId": r["eventID"], "EventName": r["eventName"], "ReadOnly": "false",
                "AccessKeyId": r["userIdentity"]["accessKeyId"], "EventTime": time(r),
                "EventSource": r["eventSource"], "Username": r["userIdentity"]["userName"],
                "Resources": [], "CloudTrailEvent": r.to_string(),
            })
        })
        .collect();
    let mut answer = json!({"Events": page});
    if from + size < matching.len() {
        answer["NextToken"] = json!((from + size).to_string());
    }
    (200, answer)
}
