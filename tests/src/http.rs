//! Real HTTP servers on loopback that play the blue and green versions of a service behind the
//! test listener: a version, a status, a delay, a flapping pattern. Each counts its requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How a server answers its n-th request.
#[derive(Clone)]
pub struct Behaviour {
    pub version: String,
    pub status: u16,
    pub delay: Duration,
    /// When non-empty, request n passes (status and version) iff `pattern[n % len]`; otherwise 503.
    pub pattern: Vec<bool>,
}

impl Behaviour {
    pub fn version(version: &str) -> Self {
        Self { version: version.into(), status: 200, delay: Duration::ZERO, pattern: Vec::new() }
    }
}

/// A server and its request count; it stops when dropped.
pub struct Server {
    pub url: String,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a server on a free loopback port.
pub async fn serve(behaviour: Behaviour) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let behaviour = behaviour.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                tokio::time::sleep(behaviour.delay).await;
                let passes = behaviour.pattern.is_empty() || behaviour.pattern[n % behaviour.pattern.len()];
                let (status, version) =
                    if passes { (behaviour.status, behaviour.version.as_str()) } else { (503, "unavailable") };
                let body = format!("<html><body>version {version}</body></html>");
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: text/html\r\nx-release: {version}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Server { url, requests, task }
}

/// A loopback URL where nothing listens (connection refused).
pub fn refused_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    format!("http://127.0.0.1:{port}")
}
