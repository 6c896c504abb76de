//! A stand-in for exactly the AWS operations moto lacks, at the HTTP level: a loopback proxy in
//! front of moto that answers the named JSON-protocol operations (by `X-Amz-Target`) itself,
//! records each request, and forwards every other request to moto untouched.
//!
//! moto 5.2.5 lacks CodeDeploy `PutLifecycleEventHookExecutionStatus`, `ContinueDeployment` and
//! `StopDeployment`, ECS `DescribeServiceDeployments` / `ContinueServiceDeployment`, and
//! CodePipeline `ListActionExecutions` (moto runs no actions: the harness, which plays the
//! pipeline's deploy action, also says what that action reported, with [`StandIn::answer`]).

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One intercepted request: the operation (`X-Amz-Target`) and its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub target: String,
    pub body: Value,
}

pub struct StandIn {
    pub endpoint: String,
    answers: Arc<Mutex<Vec<(String, Value)>>>,
    calls: Arc<Mutex<Vec<Call>>>,
    forwarded: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    /// The stand-in for every operation moto lacks that Convoy calls, answering as AWS does.
    pub async fn for_missing_operations(upstream: &str) -> StandIn {
        let empty = serde_json::json!({});
        let paused = serde_json::json!({"serviceDeployments": [{"lifecycleHookDetails": [
            {"hookId": "hook-pause-1", "targetType": "PAUSE", "status": "AWAITING_ACTION"}]}]});
        let answers = vec![
            ("PutLifecycleEventHookExecutionStatus".into(), serde_json::json!({"lifecycleEventHookExecutionId": "x"})),
            ("ContinueDeployment".into(), empty.clone()),
            ("StopDeployment".into(), serde_json::json!({"status": "Pending"})),
            ("DescribeServiceDeployments".into(), paused),
            ("ContinueServiceDeployment".into(), empty),
            // No action of the execution has reported anything yet.
            ("ListActionExecutions".into(), serde_json::json!({"actionExecutionDetails": []})),
        ];
        Self::start(upstream, answers).await
    }

    /// Starts the proxy in front of `upstream`, answering each `(target, response JSON)` itself.
    pub async fn start(upstream: &str, answers: Vec<(String, Value)>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let recorded = calls.clone();
        let forwarded: Arc<Mutex<Vec<String>>> = Arc::default();
        let passed = forwarded.clone();
        let answers = Arc::new(Mutex::new(answers));
        let answering = answers.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (upstream, recorded, answers, passed) =
                    (upstream.clone(), recorded.clone(), answering.clone(), passed.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &upstream, &recorded, &answers, &passed).await;
                });
            }
        });
        StandIn { endpoint, answers, calls, forwarded, task }
    }

    /// Answers `operation` with `answer` from now on (what AWS would say at this point).
    pub fn answer(&self, operation: &str, answer: Value) {
        let mut answers = self.answers.lock().expect("answers");
        answers.retain(|(known, _)| known != operation);
        answers.push((operation.to_owned(), answer));
    }

    /// Answers `ListActionExecutions` as CodePipeline does once the deploy action of
    /// `execution` reported the CodeDeploy `deployment` it created.
    pub fn report_deploy_action(&self, execution: &str, deployment: &str) {
        let detail = serde_json::json!({"pipelineExecutionId": execution, "actionName": "BlueGreen",
            "status": "InProgress",
            "input": {"actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeployToECS",
                                       "version": "1"}},
            "output": {"executionResult": {"externalExecutionId": deployment}}});
        self.answer("ListActionExecutions", serde_json::json!({"actionExecutionDetails": [detail]}));
    }

    /// Every intercepted request, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    /// Every request that went on to moto, as "METHOD /path" or the JSON operation, in order.
    pub fn forwarded(&self) -> Vec<String> {
        self.forwarded.lock().expect("forwarded").clone()
    }

    /// Every AWS request the stand-in saw (forwarded or answered), so far.
    pub fn requests(&self) -> usize {
        self.forwarded.lock().expect("forwarded").len() + self.calls.lock().expect("calls").len()
    }

    /// The intercepted requests of one operation (`ContinueDeployment`, ...).
    pub fn calls_to(&self, operation: &str) -> Vec<Value> {
        self.calls().into_iter().filter(|c| c.target.ends_with(&format!(".{operation}"))).map(|c| c.body).collect()
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: &str,
    recorded: &Mutex<Vec<Call>>,
    answers: &Mutex<Vec<(String, Value)>>,
    passed: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
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
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while request.len() < head_end + length {
        let n = client.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..n]);
    }
    let target = header("x-amz-target").unwrap_or_default();
    let answer = answers
        .lock()
        .expect("answers")
        .iter()
        .find(|(operation, _)| target.ends_with(&format!(".{operation}")))
        .map(|(_, answer)| answer.clone());
    if let Some(answer) = answer {
        let body: Value = serde_json::from_slice(&request[head_end..]).unwrap_or(Value::Null);
        recorded.lock().expect("calls").push(Call { target: target.clone(), body });
        let text = answer.to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
        client.write_all(response.as_bytes()).await?;
        return client.shutdown().await;
    }
    let request_line = head.lines().next().unwrap_or_default();
    let operation = if target.is_empty() {
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        format!("{method} {}", path.split('?').next().unwrap_or_default())
    } else {
        target.clone()
    };
    passed.lock().expect("forwarded").push(operation);
    // Forward untouched, but ask moto to close, so the response ends at EOF.
    let mut forwarded = String::new();
    for line in head[..head_end - 4].lines() {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
        }
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut moto = TcpStream::connect(upstream).await?;
    moto.write_all(forwarded.as_bytes()).await?;
    moto.write_all(&request[head_end..]).await?;
    let mut response = Vec::new();
    moto.read_to_end(&mut response).await?;
    client.write_all(&response).await?;
    client.shutdown().await
}
