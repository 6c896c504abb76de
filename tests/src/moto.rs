//! moto server, started once per test process on a free loopback port and stopped with it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;

/// The moto account and region every test uses.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

pub struct Moto {
    pub endpoint: String,
    /// The watchdog shell; it reaps moto itself, and is never waited on here.
    _watchdog: std::sync::Mutex<std::process::Child>,
}

/// Where the project's bootstrap installed moto (`scripts/bootstrap`); never a moto installed by hand.
fn moto_server_path() -> PathBuf {
    if let Ok(path) = std::env::var("CONVOY_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let cache = std::env::var("CONVOY_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/convoy"));
    let path = cache.join("venv/bin/moto_server");
    assert!(path.exists(), "{} is missing: run scripts/test (or scripts/bootstrap) to install moto", path.display());
    path
}

/// The Python of the venv that holds moto (and cfn-lint, samtranslator): the tests' helper
/// scripts run with it.
pub fn venv_python() -> PathBuf {
    moto_server_path().with_file_name("python")
}

impl Moto {
    /// The process's moto server, started on first use.
    pub fn shared() -> &'static Moto {
        static MOTO: OnceLock<Moto> = OnceLock::new();
        MOTO.get_or_init(Moto::start)
    }

    fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        // A watchdog shell owns moto and kills it once this test process is gone, so no server
        // outlives the tests, whatever way they end.
        let script = format!(
            "\"$0\" -H 127.0.0.1 -p {port} >\"$1\" 2>&1 & m=$!; \
             while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.3; done; kill $m 2>/dev/null",
            parent = std::process::id()
        );
        let log = std::env::temp_dir().join(format!("convoy-moto-{port}.log"));
        let watchdog = Command::new("bash")
            // IAM's AWS managed policies (AWSCodeDeployRoleForECS, ...), as IAM has them: `convoy
            // init` reads a CodeDeploy role's attached policies (`load_balancer.rs`).
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .arg("-c")
            .arg(script)
            .arg(moto_server_path())
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !responds(port) {
            assert!(Instant::now() < deadline, "moto did not start on port {port}; see {}", log.display());
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { endpoint, _watchdog: std::sync::Mutex::new(watchdog) }
    }

    /// SDK configuration for moto, as the Lambdas build it in AWS but with a fixed endpoint and
    /// test credentials. Retries are off: moto answers calls it lacks with 500, and a test must see
    /// that at once rather than after three retries.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint).await
    }

    /// Calls moto's own API (`/moto-api/...`) with a JSON body.
    pub fn moto_api(&self, path: &str, body: &str) -> String {
        let port = self.endpoint.rsplit(':').next().expect("endpoint has a port");
        let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect to moto");
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("write to moto");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read from moto");
        response
    }
}

impl Moto {
    /// Calls an AWS operation on moto without the SDK: for inputs only a document gives, such as a
    /// `taskdef.json` registered as-is (what CodePipeline's ECS deploy action does). moto reads
    /// the service from the credential scope and checks no signature.
    pub fn raw_call(&self, service: &str, target: Option<&str>, content_type: &str, body: &str) -> (u16, String) {
        let port = self.endpoint.rsplit(':').next().expect("endpoint has a port");
        let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect to moto");
        let target = target.map(|t| format!("X-Amz-Target: {t}\r\n")).unwrap_or_default();
        let request = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n{target}\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{service}/aws4_request, \
             SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("write to moto");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read from moto");
        let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_owned());
        (status, body)
    }
}

impl Moto {
    /// Calls a REST-JSON operation on moto without the SDK (`POST /schedules/<name>`, EventBridge
    /// Scheduler's `CreateSchedule`): the request as the API reference writes it. Returns the
    /// status and the body.
    pub fn rest_call(&self, service: &str, method: &str, path: &str, body: &str) -> (u16, String) {
        let port = self.endpoint.rsplit(':').next().expect("endpoint has a port");
        let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect to moto");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{service}/aws4_request, \
             SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("write to moto");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read from moto");
        let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_owned());
        (status, body)
    }
}

/// SDK configuration for any endpoint (a closed port makes every call fail like an outage).
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "convoy-tests"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

fn responds(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /moto-api/data.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// moto's CloudWatch, seeded as AWS would be by the services and operators (AWS JSON 1.0, which
/// moto reads; Convoy itself reads them back through the SDK and the stand-in's bridge).
pub mod cloudwatch {
    use super::Moto;
    use serde_json::{Value, json};

    fn call(operation: &str, body: Value) {
        let target = format!("GraniteServiceVersion20100801.{operation}");
        let (status, answer) =
            Moto::shared().raw_call("monitoring", Some(&target), "application/x-amz-json-1.0", &body.to_string());
        assert_eq!(status, 200, "{operation}: {answer}");
    }

    /// `PutMetricData`: one datapoint of `metric` in `namespace` with `dimensions`, two seconds ago
    /// (a query's `EndTime` is exclusive, and moto truncates it to the second: a datapoint of this
    /// very second would fall outside a window that ends now).
    pub fn put_metric(namespace: &str, metric: &str, dimensions: &[(&str, &str)], value: f64) {
        let dimensions: Vec<Value> = dimensions.iter().map(|(k, v)| json!({"Name": k, "Value": v})).collect();
        let now = chrono::Utc::now().timestamp() - 2;
        call(
            "PutMetricData",
            json!({"Namespace": namespace, "MetricData": [{"MetricName": metric, "Dimensions": dimensions,
                   "Value": value, "Timestamp": now}]}),
        );
    }

    /// `PutMetricAlarm`: an alarm on a target group's 5xx count (it starts INSUFFICIENT_DATA).
    pub fn put_alarm(name: &str, target_group: &str) {
        call(
            "PutMetricAlarm",
            json!({"AlarmName": name, "Namespace": "AWS/ApplicationELB", "MetricName": "HTTPCode_Target_5XX_Count",
                   "Dimensions": [{"Name": "TargetGroup", "Value": target_group}], "Statistic": "Sum",
                   "Period": 60, "EvaluationPeriods": 1, "Threshold": 0.0,
                   "ComparisonOperator": "GreaterThanThreshold"}),
        );
    }

    /// `SetAlarmState`.
    pub fn set_alarm_state(name: &str, state: &str, reason: &str) {
        call("SetAlarmState", json!({"AlarmName": name, "StateValue": state, "StateReason": reason}));
    }
}
