//! A local AWS Lambda Runtime API, so the real function binaries run here as they do in Lambda:
//! the process starts, polls `GET /2018-06-01/runtime/invocation/next`, and posts its answer to
//! `.../invocation/{id}/response` (or `/error`). The host records when the first poll came, which
//! is the function's init time.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    /// The function reported an error (AWS would retry an asynchronous invocation).
    Error(Value),
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<(String, Value)>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    arrived: Notify,
    first_poll: Mutex<Option<Instant>>,
    init_error: Mutex<Option<Value>>,
    next_id: Mutex<u64>,
}

/// One function process and the Runtime API it polls.
pub struct LambdaProcess {
    pub name: String,
    /// Locked to ask whether it exited (a function that fails at start exits before polling).
    child: Mutex<Child>,
    pid: u32,
    shared: Arc<Shared>,
    started: Instant,
    server: tokio::task::JoinHandle<()>,
    /// Where its standard output and error go.
    stdout: std::path::PathBuf,
    stderr: std::path::PathBuf,
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        let child = self.child.get_mut().expect("child");
        let _ = child.kill();
        let _ = child.wait();
        self.server.abort();
    }
}

impl LambdaProcess {
    /// Starts `binary` with `env` (plus the variables Lambda sets) against a fresh Runtime API.
    pub async fn spawn(name: &str, binary: &Path, env: &[(String, String)]) -> LambdaProcess {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let address = listener.local_addr().expect("address").to_string();
        let shared = Arc::new(Shared::default());
        let serving = shared.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let shared = serving.clone();
                tokio::spawn(async move {
                    let _ = connection(stream, &shared).await;
                });
            }
        });
        let started = Instant::now();
        // Each process its own files: sandboxes running at once start functions of the same name.
        let sequence = SPAWNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (stdout, stderr) = (log_path(name, "out", sequence), log_path(name, "err", sequence));
        let child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", &address)
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log_file(&stdout))
            .stderr(log_file(&stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let pid = child.id();
        LambdaProcess { name: name.to_owned(), child: Mutex::new(child), pid, shared, started, server, stdout, stderr }
    }

    /// What the function wrote to standard output so far (its log lines and EMF metric lines).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// CPU time the process has used so far (user and system, nanoseconds), from the scheduler.
    pub fn cpu_ns(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/schedstat", self.pid))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    }

    /// Waits for the function's first poll; returns the time from process start to it.
    pub async fn init_time(&self, limit: Duration) -> Result<Duration, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(at) = *self.shared.first_poll.lock().expect("first poll") {
                return Ok(at - self.started);
            }
            if let Some(error) = self.shared.init_error.lock().expect("init error").clone() {
                return Err(format!("{} failed to start: {error}", self.name));
            }
            // As Lambda's Runtime.ExitError: the process ended before asking for an event.
            if let Ok(Some(status)) = self.child.lock().expect("child").try_wait() {
                let said = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                return Err(format!("{} exited before its first poll ({status}): {}", self.name, said.trim()));
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not poll within {limit:?}", self.name));
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// Invokes the function with `event` and waits for its answer.
    pub async fn invoke(&self, event: Value) -> Result<Outcome, String> {
        let id = {
            let mut next = self.shared.next_id.lock().expect("ids");
            *next += 1;
            format!("{}-{:06}", self.name, *next)
        };
        let (tx, rx) = oneshot::channel();
        self.shared.waiting.lock().expect("waiting").insert(id.clone(), tx);
        self.shared.queue.lock().expect("queue").push_back((id, event));
        self.shared.arrived.notify_one();
        match tokio::time::timeout(Duration::from_secs(300), rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(format!("{}: the invocation was dropped", self.name)),
            Err(_) => Err(format!("{}: no answer within 300 s", self.name)),
        }
    }
}

/// Where a function's output goes: a file per function and process, for when a run goes wrong
/// (and, on standard output, for its EMF metric lines).
fn log_file(path: &Path) -> Stdio {
    std::fs::File::create(path).map(Stdio::from).unwrap_or_else(|_| Stdio::null())
}

static SPAWNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn log_path(name: &str, stream: &str, sequence: u64) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("convoy-{name}-{}-{sequence}.{stream}.log", std::process::id()))
}

/// A built binary of the workspace (`image-pushed`, ..., or the `convoy` CLI), checked to be
/// current: built after the last change to any source it is built from. A plain `cargo test`
/// builds the tests, not the binaries they run; this says so instead of testing yesterday's code.
pub fn binary(name: &str) -> std::path::PathBuf {
    let path = binaries_dir().join(name);
    let dep_info = std::fs::read_to_string(path.with_file_name(format!("{name}.d"))).ok();
    let sources = dep_info.as_deref().map(sources_in_dep_info).unwrap_or_else(|| folders_of(name));
    if let Err(stale) = current(&path, &sources) {
        panic!("stale binary: run cargo build --workspace --all-targets ({stale})");
    }
    path
}

/// The files cargo's dep-info (`<binary>.d`, written beside the binary) says the binary was built
/// from, and `Cargo.lock`. A test-only module (`#[cfg(test)]`) is not among them: changing it
/// rebuilds no binary, so it must not make one stale.
fn sources_in_dep_info(dep_info: &str) -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf();
    let listed = dep_info.lines().next().and_then(|line| line.split_once(": ")).map_or("", |(_, files)| files);
    // Make's syntax: a space inside a path is escaped as `\ `.
    let mut sources: Vec<std::path::PathBuf> =
        listed.replace("\\ ", "\0").split(' ').filter(|f| !f.is_empty()).map(|f| f.replace('\0', " ").into()).collect();
    sources.push(root.join("Cargo.lock"));
    sources
}

/// Without a dep-info file: its crate's folder, the library's, and the workspace's `Cargo.toml`
/// and `Cargo.lock`.
fn folders_of(name: &str) -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf();
    let own = if name == "convoy" { root.join("cli") } else { root.join("functions").join(name) };
    vec![own, root.join("shared"), root.join("Cargo.toml"), root.join("Cargo.lock")]
}

/// `Ok` when `binary` was written after every file under `sources` (Rust sources and manifests);
/// otherwise the newest such file, and when it changed.
fn current(binary: &Path, sources: &[std::path::PathBuf]) -> Result<(), String> {
    let built = std::fs::metadata(binary)
        .and_then(|m| m.modified())
        .map_err(|e| format!("{} is not built: {e}", binary.display()))?;
    let mut newest: Option<(std::time::SystemTime, std::path::PathBuf)> = None;
    let mut pending: Vec<std::path::PathBuf> = sources.to_vec();
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path).into_iter().flatten().flatten();
            pending.extend(entries.map(|e| e.path()).filter(|p| !p.ends_with("target")));
        } else if path.extension().is_some_and(|e| e == "rs" || e == "toml" || e == "lock")
            && let Ok(changed) = meta.modified()
            && newest.as_ref().is_none_or(|(at, _)| changed > *at)
        {
            newest = Some((changed, path));
        }
    }
    match newest {
        Some((changed, source)) if changed > built => Err(format!(
            "{} was built before {} changed",
            binary.file_name().unwrap_or_default().to_string_lossy(),
            source.display()
        )),
        _ => Ok(()),
    }
}

/// The folder holding the workspace's built binaries: the one this program runs from, or the
/// folder above it (test binaries run from `deps/`).
pub fn binaries_dir() -> std::path::PathBuf {
    // scripts/bench points the sandbox's runs at the release-built functions and CLI.
    if let Some(dir) = std::env::var_os("CONVOY_BENCH_BIN") {
        return dir.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe folder").to_path_buf();
    for _ in 0..2 {
        if dir.join("image-pushed").exists() {
            return dir;
        }
        dir = dir.parent().expect("parent").to_path_buf();
    }
    panic!(
        "no built function binaries near {}: run `cargo build --workspace --bins` (scripts/test does)",
        exe.display()
    )
}

async fn connection(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut pending = Vec::new();
    loop {
        // One request: head, then body by length (the runtime client keeps the connection open).
        let head_end = loop {
            if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut buffer = [0u8; 8192];
            let n = stream.read(&mut buffer).await?;
            if n == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&buffer[..n]);
        };
        let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-length")))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        while pending.len() < head_end + length {
            let mut buffer = [0u8; 8192];
            let n = stream.read(&mut buffer).await?;
            if n == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&buffer[..n]);
        }
        let body: Value = serde_json::from_slice(&pending[head_end..head_end + length]).unwrap_or(Value::Null);
        pending.drain(..head_end + length);
        let request_line = head.lines().next().unwrap_or_default().to_owned();
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());

        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            shared.first_poll.lock().expect("first poll").get_or_insert_with(Instant::now);
            let (id, event) = loop {
                let notified = shared.arrived.notified();
                if let Some(next) = shared.queue.lock().expect("queue").pop_front() {
                    break next;
                }
                notified.await;
            };
            let deadline = (std::time::SystemTime::now() + Duration::from_secs(300))
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis();
            let payload = event.to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {id}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:local\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\nContent-Length: {}\r\n\r\n{payload}",
                payload.len()
            );
            stream.write_all(response.as_bytes()).await?;
            continue;
        }
        let outcome = if path.ends_with("/response") {
            Some(Outcome::Response(body))
        } else if path.ends_with("/error") && path.contains("/invocation/") {
            Some(Outcome::Error(body))
        } else {
            if path.ends_with("/init/error") {
                *shared.init_error.lock().expect("init error") = Some(body);
            }
            None
        };
        if let Some(outcome) = outcome {
            let id = path.split('/').rev().nth(1).unwrap_or_default();
            if let Some(tx) = shared.waiting.lock().expect("waiting").remove(id) {
                let _ = tx.send(outcome);
            }
        }
        let accepted = "{\"status\":\"OK\"}";
        let response = format!(
            "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{accepted}",
            accepted.len()
        );
        stream.write_all(response.as_bytes()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::{current, sources_in_dep_info};

    #[test]
    fn a_binary_older_than_a_source_it_is_built_from_is_stale_and_a_newer_one_is_current() {
        let dir = std::env::temp_dir().join(format!("convoy-stale-{}", std::process::id()));
        let (src, bin) = (dir.join("src"), dir.join("bin"));
        std::fs::create_dir_all(&src).unwrap();
        let source = src.join("lib.rs");
        std::fs::write(&source, "fn main() {}").unwrap();
        std::fs::write(src.join("notes.md"), "not a source").unwrap();
        std::fs::write(&bin, "built").unwrap();
        let at = |secs| std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        let touch = |path: &std::path::Path, when| {
            std::fs::File::options().write(true).open(path).unwrap().set_modified(when).unwrap()
        };
        touch(&bin, at(2_000_000_000));
        touch(&source, at(2_000_000_100));
        let stale = current(&bin, &[dir.join("src")]).unwrap_err();
        assert!(stale.contains("was built before") && stale.contains("lib.rs"), "{stale}");
        touch(&bin, at(2_000_000_200));
        touch(&src.join("notes.md"), at(2_000_000_300));
        assert_eq!(current(&bin, &[dir.join("src")]), Ok(()), "only sources count");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_binarys_sources_are_the_files_its_dep_info_lists_and_a_test_only_module_is_not_one() {
        let dep_info =
            "/w/target/debug/verify: /w/functions/verify/src/main.rs /w/shared/src/my\\ file.rs\n\n/w/x.rs:\n";
        let sources = sources_in_dep_info(dep_info);
        let names: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(names[..2], ["/w/functions/verify/src/main.rs", "/w/shared/src/my file.rs"]);
        assert!(names[2].ends_with("Cargo.lock"), "{names:?}");
        assert_eq!(names.len(), 3, "only the first rule's files: {names:?}");
    }
}
