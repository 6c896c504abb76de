//! A stand-in for exactly the AWS operations moto lacks, at the HTTP level: a loopback proxy in
//! front of moto that answers the named JSON-protocol operations (by `X-Amz-Target`) itself,
//! records each request, and forwards every other request to moto untouched. One file per AWS
//! service it emulates:
//!
//! - [`codedeploy`]: `PutLifecycleEventHookExecutionStatus`, `ContinueDeployment`,
//!   `StopDeployment`, and each deployment's status in moto's `GetDeployment` answers;
//! - [`ecs`]: ECS native blue/green (the `deploymentConfiguration` moto drops, the service
//!   deployments, `ListServiceDeployments`, `DescribeServiceRevisions`,
//!   `DescribeServiceDeployments`, `ContinueServiceDeployment`, `StopServiceDeployment`);
//! - [`codepipeline`]: `ListActionExecutions` (moto runs no actions: the harness, which plays the
//!   pipeline's deploy action, says what that action reported), and an execution's end in moto's
//!   `GetPipelineExecution` answers;
//! - [`cloudtrail`]: a CloudTrail record of each decision call, and `LookupEvents` over them;
//! - [`trail_files`]: a data event record of each S3 object write, and the delivery of a
//!   trail's log files to its bucket;
//! - [`cloudwatch`]: Smithy RPC v2 CBOR (the SDK's protocol for CloudWatch, which moto does not
//!   read) bridged to moto's AWS JSON 1.0.
//!
//! It says no where AWS says no: requests that AWS refuses are refused with the service's own
//! error code and HTTP 400 (`{"__type": code, "message": ...}`, JSON 1.1), and recorded like any
//! other, with the refusal. What moto cannot decide (when CodeDeploy invokes a hook, when ECS
//! pauses, when a shift ends) the tests say, as AWS would, through the `StandIn` methods of each
//! service's file.

mod cloudtrail;
mod cloudwatch;
mod codedeploy;
mod codepipeline;
pub mod ecr;
mod ecs;
mod trail_files;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use codedeploy::Phase;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One intercepted request: the operation (`X-Amz-Target`), its JSON body, and the error code
/// the stand-in refused it with (`None`: answered as a success).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub target: String,
    pub body: Value,
    pub refused: Option<String>,
}

/// One AWS request as it reached the stand-in (answered or forwarded): when, the service that
/// signed it (SigV4 credential scope: `s3`, `ecs`, `codedeploy`, ...) and the operation.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: std::time::Instant,
    pub service: String,
    pub operation: String,
}

/// The stand-in's answer: the HTTP status and the JSON body.
type Reply = (u16, Value);

fn refuse(code: &str, message: String) -> Reply {
    (400, json!({"__type": code, "message": message}))
}

pub struct StandIn {
    pub endpoint: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one connection's handler shares with the stand-in.
#[derive(Clone)]
struct Shared {
    upstream: String,
    recorded: Arc<Mutex<Vec<Call>>>,
    answers: Arc<Mutex<Vec<(String, Value)>>>,
    passed: Arc<Mutex<Vec<String>>>,
    log: Arc<Mutex<Vec<Request>>>,
    codedeploy: Arc<Mutex<codedeploy::CodeDeploy>>,
    ecs: Arc<Mutex<ecs::Ecs>>,
    ecr: Arc<Mutex<ecr::Ecr>>,
    codepipeline: Arc<Mutex<codepipeline::CodePipeline>>,
    trail: Arc<Mutex<cloudtrail::Trail>>,
    data_events: Arc<Mutex<trail_files::DataEvents>>,
    throttles: Arc<Mutex<Throttles>>,
}

/// Request rates per operation: at most `limit` requests admitted within any second; the rest are
/// refused with `ThrottlingException` ("Rate exceeded", HTTP 400: the AWS JSON protocols' common
/// error), as AWS's per-account, per-Region rate limits do.
#[derive(Debug, Default)]
struct Throttles {
    limits: HashMap<String, u32>,
    admitted: HashMap<String, VecDeque<Instant>>,
}

impl Throttles {
    /// CloudTrail's own limit: "LookupEvents ... is limited to two per second, per account, per
    /// Region" (CloudTrail API Reference, `LookupEvents`).
    fn aws() -> Self {
        Throttles { limits: HashMap::from([("LookupEvents".to_owned(), 2)]), admitted: HashMap::new() }
    }

    fn admit(&mut self, operation: &str, now: Instant) -> bool {
        let Some(&limit) = self.limits.get(operation) else { return true };
        let admitted = self.admitted.entry(operation.to_owned()).or_default();
        while admitted.front().is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1)) {
            admitted.pop_front();
        }
        if admitted.len() >= limit as usize {
            return false;
        }
        admitted.push_back(now);
        true
    }
}

impl StandIn {
    /// The stand-in for every operation moto lacks that Convoy calls, answering as AWS does.
    pub async fn for_missing_operations(upstream: &str) -> StandIn {
        Self::start(upstream, vec![codepipeline::no_action_reported()]).await
    }

    /// Starts the proxy in front of `upstream`: CodeDeploy's and ECS's deployment calls answered
    /// from the deployments' state, each `(target, response JSON)` answered as given.
    pub async fn start(upstream: &str, answers: Vec<(String, Value)>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let shared = Shared {
            upstream: upstream.trim_start_matches("http://").to_owned(),
            recorded: Arc::default(),
            answers: Arc::new(Mutex::new(answers)),
            passed: Arc::default(),
            log: Arc::default(),
            codedeploy: Arc::default(),
            ecs: Arc::default(),
            ecr: Arc::default(),
            codepipeline: Arc::default(),
            trail: Arc::default(),
            data_events: Arc::default(),
            throttles: Arc::new(Mutex::new(Throttles::aws())),
        };
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let shared = serving.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &shared).await;
                });
            }
        });
        StandIn { endpoint, shared, task }
    }

    /// Answers `operation` with `answer` from now on (what AWS would say at this point).
    pub fn answer(&self, operation: &str, answer: Value) {
        let mut answers = self.shared.answers.lock().expect("answers");
        answers.retain(|(known, _)| known != operation);
        answers.push((operation.to_owned(), answer));
    }

    /// Admits at most `per_second` requests of `operation` (a JSON-protocol operation, answered
    /// here or by moto) within any second from now on, and refuses the rest with
    /// `ThrottlingException`, as AWS throttles; `None` lifts the limit. `LookupEvents` starts at
    /// CloudTrail's 2 per second.
    pub fn throttle(&self, operation: &str, per_second: Option<u32>) {
        let mut throttles = self.shared.throttles.lock().expect("throttles");
        match per_second {
            Some(limit) => throttles.limits.insert(operation.to_owned(), limit),
            None => throttles.limits.remove(operation),
        };
    }

    /// Every intercepted request, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.recorded.lock().expect("calls").clone()
    }

    /// Every request that went on to moto, as "METHOD /path" or the JSON operation, in order.
    pub fn forwarded(&self) -> Vec<String> {
        self.shared.passed.lock().expect("forwarded").clone()
    }

    /// Every AWS request the stand-in saw (forwarded or answered), in order, with its time,
    /// service and operation (the bench's per-release account and hand-off latencies).
    pub fn log(&self) -> Vec<Request> {
        self.shared.log.lock().expect("log").clone()
    }

    /// Every AWS request the stand-in saw (forwarded or answered), so far.
    pub fn requests(&self) -> usize {
        self.shared.passed.lock().expect("forwarded").len() + self.shared.recorded.lock().expect("calls").len()
    }

    /// The intercepted requests of one operation (`ContinueDeployment`, ...), refused or not.
    pub fn calls_to(&self, operation: &str) -> Vec<Value> {
        self.calls_of(operation).into_iter().map(|c| c.body).collect()
    }

    /// The intercepted calls of one operation, with how each was answered.
    pub fn calls_of(&self, operation: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.target.ends_with(&format!(".{operation}"))).collect()
    }

    /// The requests of one operation the stand-in (or moto behind it) answered as a success,
    /// in order: refused ones, throttled ones among them, are left out.
    pub fn answered(&self, operation: &str) -> Vec<Value> {
        self.calls_of(operation).into_iter().filter(|c| c.refused.is_none()).map(|c| c.body).collect()
    }

    /// The error codes the stand-in refused `operation` with, in order.
    pub fn refusals_of(&self, operation: &str) -> Vec<String> {
        self.calls_of(operation).into_iter().filter_map(|c| c.refused).collect()
    }
}

/// `Some(operation)` when `target` is `<Service>.<operation>`.
fn operation_of(target: &str) -> &str {
    target.rsplit_once('.').map_or(target, |(_, operation)| operation)
}

impl Shared {
    /// Records an intercepted request with how it was answered.
    fn record(&self, target: &str, body: Value, (status, answer): &Reply) {
        let refused = (*status != 200).then(|| answer["__type"].as_str().unwrap_or_default().to_owned());
        self.recorded.lock().expect("calls").push(Call { target: target.to_owned(), body, refused });
    }

    /// The answer a test gave for `operation`, if any.
    fn given(&self, operation: &str) -> Option<Reply> {
        let answers = self.answers.lock().expect("answers");
        answers.iter().find(|(known, _)| known == operation).map(|(_, answer)| (200, answer.clone()))
    }
}

async fn serve(mut client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    // One request per connection: read the head, then the body by its length.
    let mut request = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        let n = client.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buffer[..n]);
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let length: usize = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while request.len() < head_end + length {
        let n = client.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..n]);
    }
    if header(&head, "smithy-protocol").is_some_and(|p| p == "rpc-v2-cbor") {
        return cloudwatch::bridge_cbor(client, shared, &head, &request[head_end..]).await;
    }
    let target = header(&head, "x-amz-target").unwrap_or_default();
    let operation = operation_of(&target).to_owned();
    let body: Value = serde_json::from_slice(&request[head_end..]).unwrap_or(Value::Null);
    shared.log.lock().expect("log").push(Request {
        at: std::time::Instant::now(),
        service: signing_service(&head),
        operation: if target.is_empty() { rest_operation(&head, &request[head_end..]) } else { operation.clone() },
    });
    if !target.is_empty() && !shared.throttles.lock().expect("throttles").admit(&operation, Instant::now()) {
        let reply = refuse("ThrottlingException", "Rate exceeded".into());
        if cloudtrail::DECISIONS.contains(&operation.as_str()) {
            // CloudTrail records a throttled call too, with its errorCode.
            let source_ip = client.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
            let record =
                cloudtrail::trail_record(&shared.upstream, &head, &operation, &body, &source_ip, Some(&reply.1)).await;
            shared.trail.lock().expect("trail").push(record);
        }
        shared.record(&target, body, &reply);
        return respond(&mut client, reply.0, &reply.1.to_string()).await;
    }
    if operation == "LookupEvents" && target.contains("CloudTrail_20131101") {
        let reply = shared.trail.lock().expect("trail").lookup_events(&body);
        shared.record(&target, body, &reply);
        return respond(&mut client, reply.0, &reply.1.to_string()).await;
    }
    if target.starts_with("AmazonEC2ContainerRegistry_V20150921.") {
        let reply = match operation.as_str() {
            "DescribeImageScanFindings" => shared.ecr.lock().expect("ecr").describe_scan(&body),
            "DescribeImageSigningStatus" => {
                let asked = json!({"registryId": body["registryId"], "repositoryName": body["repositoryName"],
                                   "imageIds": [{"imageDigest": body["imageId"]["imageDigest"]}]});
                let described =
                    moto_json(&shared.upstream, &head, "AmazonEC2ContainerRegistry_V20150921.DescribeImages", &asked)
                        .await;
                let exists = described.is_some_and(|d| d["imageDetails"].as_array().is_some_and(|a| !a.is_empty()));
                Some(shared.ecr.lock().expect("ecr").signing_status(&body, exists))
            }
            _ => None,
        };
        if let Some(reply) = reply {
            shared.record(&target, body, &reply);
            return respond(&mut client, reply.0, &reply.1.to_string()).await;
        }
    }
    let stateful = if target.is_empty() {
        None
    } else {
        let answered = shared.codedeploy.lock().expect("codedeploy").handle(&operation, &body);
        answered.or_else(|| shared.ecs.lock().expect("ecs").handle(&operation, &body))
    };
    if let Some(reply) = &stateful
        && cloudtrail::DECISIONS.contains(&operation.as_str())
    {
        let source_ip = client.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        let refusal = (reply.0 != 200).then_some(&reply.1);
        let record = cloudtrail::trail_record(&shared.upstream, &head, &operation, &body, &source_ip, refusal).await;
        shared.trail.lock().expect("trail").push(record);
    }
    if let Some(reply) = stateful.or_else(|| shared.given(&operation)) {
        shared.record(&target, body, &reply);
        return respond(&mut client, reply.0, &reply.1.to_string()).await;
    }
    let request_line = head.lines().next().unwrap_or_default();
    let described = if target.is_empty() {
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        format!("{method} {}", path.split('?').next().unwrap_or_default())
    } else {
        target.clone()
    };
    shared.passed.lock().expect("forwarded").push(described);
    // An update of a service whose deployments the stand-in keeps: what it runs now is the new
    // service deployment's source (ECS's rollback returns to it).
    if operation == "UpdateService" && target.starts_with("AmazonEC2ContainerServiceV20141113.") {
        let service = body["service"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_owned();
        if shared.ecs.lock().expect("ecs").declares(&service) {
            let asked = json!({"cluster": body["cluster"], "services": [body["service"]]});
            let target = "AmazonEC2ContainerServiceV20141113.DescribeServices";
            let described = moto_json(&shared.upstream, &head, target, &asked).await;
            let runs = described.as_ref().and_then(|d| d["services"][0]["taskDefinition"].as_str()).map(str::to_owned);
            let authorization = header(&head, "authorization").unwrap_or_default();
            shared.ecs.lock().expect("ecs").updating(&service, runs.unwrap_or_default(), authorization);
        }
    }
    // A CodeDeploy rollback moto never saw: moto is asked for the deployment it rolls back.
    let rolled_back = (operation == "GetDeployment")
        .then(|| shared.codedeploy.lock().expect("codedeploy").rolls_back(body["deploymentId"].as_str()?))
        .flatten();
    let response = match &rolled_back {
        Some(of) => {
            let asked = json!({"deploymentId": of}).to_string();
            forward(&shared.upstream, &with_length(&head[..head_end - 4], asked.len()), asked.as_bytes()).await?
        }
        None => forward(&shared.upstream, &head[..head_end - 4], &request[head_end..]).await?,
    };
    // What moto keeps differently from AWS: each service's file says it in moto's answer.
    if let Some((status, answer)) = json_response(&response).filter(|(status, _)| *status == 200) {
        let overlaid = match operation.as_str() {
            "CreateDeployment" => {
                // The group's rollback configuration and ECS service, as moto keeps them.
                let asked = json!({"applicationName": body["applicationName"],
                                   "deploymentGroupName": body["deploymentGroupName"]});
                let group = moto_json(&shared.upstream, &head, "CodeDeploy_20141006.GetDeploymentGroup", &asked).await;
                let group = group.as_ref().map(|g| &g["deploymentGroupInfo"]);
                shared.codedeploy.lock().expect("codedeploy").overlay(&operation, &body, group, answer)
            }
            "GetDeployment" => shared.codedeploy.lock().expect("codedeploy").overlay(&operation, &body, None, answer),
            "BatchGetDeployments" => shared.codedeploy.lock().expect("codedeploy").overlay_batch(answer),
            "DescribeServices" => {
                let answer =
                    shared.ecs.lock().expect("ecs").overlay(&operation, &body, answer.clone()).unwrap_or(answer);
                let codedeploy = shared.codedeploy.lock().expect("codedeploy");
                Some(ecs::with_task_sets(answer, |target| codedeploy.primary_task_set(target)))
            }
            "UpdateService" | "DescribeTasks" => shared.ecs.lock().expect("ecs").overlay(&operation, &body, answer),
            "GetPipelineExecution" => {
                let mut answer = answer;
                shared.codepipeline.lock().expect("codepipeline").overlay(&mut answer).then_some(answer)
            }
            _ => None,
        };
        if let Some(answer) = overlaid {
            return respond(&mut client, status, &answer.to_string()).await;
        }
    }
    let source_ip = client.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    if let Some(write) = trail_files::s3_write(&head, &response, &source_ip) {
        shared.data_events.lock().expect("data events").push(write);
    }
    client.write_all(&response).await?;
    client.shutdown().await
}

/// Sends one request (its head without the blank line, and its body) to moto untouched, but
/// asking moto to close, so the response ends at EOF; returns the whole response.
async fn forward(upstream: &str, head: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut forwarded = String::new();
    for line in head.lines() {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
        }
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut moto = TcpStream::connect(upstream).await?;
    moto.write_all(forwarded.as_bytes()).await?;
    moto.write_all(body).await?;
    let mut response = Vec::new();
    moto.read_to_end(&mut response).await?;
    Ok(response)
}

/// `head` (without its blank line) with its `Content-Length` set to `length`.
fn with_length(head: &str, length: usize) -> String {
    let lines = head.lines().filter(|l| !l.to_ascii_lowercase().starts_with("content-length:"));
    let mut changed: Vec<String> = lines.map(str::to_owned).collect();
    changed.push(format!("Content-Length: {length}"));
    changed.join("\r\n")
}

/// One JSON 1.1 call of the stand-in's own on moto (`target`, `body`), signed as the request in
/// `head` was (moto checks no signature); moto's answer, when it answered 200.
async fn moto_json(upstream: &str, head: &str, target: &str, body: &Value) -> Option<Value> {
    let document = body.to_string();
    let authorization = header(head, "authorization").unwrap_or_default();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {upstream}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: {target}\r\n\
         Authorization: {authorization}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{document}",
        document.len()
    );
    let mut moto = TcpStream::connect(upstream).await.ok()?;
    moto.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    moto.read_to_end(&mut response).await.ok()?;
    json_response(&response).filter(|(status, _)| *status == 200).map(|(_, answer)| answer)
}

/// The service a request was signed for: the SigV4 credential scope's fourth part.
fn signing_service(head: &str) -> String {
    header(head, "authorization")
        .and_then(|auth| {
            let scope = auth.split("Credential=").nth(1)?.split([',', ' ']).next()?.to_owned();
            scope.split('/').nth(3).map(str::to_owned)
        })
        .unwrap_or_else(|| "unsigned".into())
}

/// A request without `X-Amz-Target`: a query-protocol `Action`, or an S3 REST operation named
/// from its method, path (path-style: `/bucket[/key]`) and query.
fn rest_operation(head: &str, body: &[u8]) -> String {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let form = String::from_utf8_lossy(body);
    if let Some(action) = form.split('&').chain(query.split('&')).find_map(|p| p.strip_prefix("Action=")) {
        return action.to_owned();
    }
    let has = |name: &str| query.split('&').any(|p| p == name || p.starts_with(&format!("{name}=")));
    let object = path.trim_start_matches('/').contains('/');
    match (method, object) {
        ("GET", true) => "GetObject",
        ("HEAD", true) => "HeadObject",
        ("PUT", true) if header(head, "x-amz-copy-source").is_some() => "CopyObject",
        ("PUT", true) => "PutObject",
        ("DELETE", true) => "DeleteObject",
        ("GET", false) if has("list-type") => "ListObjectsV2",
        ("GET", false) if has("versions") => "ListObjectVersions",
        ("GET", false) => "ListObjects",
        ("POST", false) if has("delete") => "DeleteObjects",
        ("HEAD", false) => "HeadBucket",
        _ => return format!("{method} {path}"),
    }
    .to_owned()
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned())
    })
}

/// The status and JSON body of a whole HTTP/1.1 response (plain or chunked).
fn json_response(response: &[u8]) -> Option<(u16, Value)> {
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut body = response[head_end..].to_vec();
    if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let (mut plain, mut rest) = (Vec::new(), body.as_slice());
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            plain.extend_from_slice(rest.get(line_end + 2..line_end + 2 + size)?);
            rest = rest.get(line_end + 4 + size..)?;
        }
        body = plain;
    }
    Some((status, serde_json::from_slice(&body).ok()?))
}

async fn respond(client: &mut TcpStream, status: u16, text: &str) -> std::io::Result<()> {
    let reason = if status == 200 { "OK" } else { "Bad Request" };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    client.write_all(response.as_bytes()).await?;
    client.shutdown().await
}

/// A fresh id in the form AWS gives request and event ids (a UUID).
fn fresh_id() -> String {
    let hex = |n: usize| (0..n).map(|_| format!("{:x}", fastrand::u8(..16))).collect::<String>();
    format!("{}-{}-{}-{}-{}", hex(8), hex(4), hex(4), hex(4), hex(12))
}
