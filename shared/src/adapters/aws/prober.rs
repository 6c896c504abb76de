use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::ports::{ProbeResponse, Prober};

/// How much of a body the prober reads: enough for a version page, bounded against a huge one.
const BODY_LIMIT: usize = 64 * 1024;

/// HTTP(S) probes over hyper and rustls (the stack the SDK already brings), one client per process.
#[derive(Clone)]
pub struct HttpProber {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl HttpProber {
    pub fn new() -> Result<Self, String> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| format!("no TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self { client: Client::builder(TokioExecutor::new()).build(connector) })
    }
}

/// An error and its causes on one line ("client error (Connect): tcp connect error: refused").
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait::async_trait]
impl Prober for HttpProber {
    async fn get(&self, url: &str, timeout: Duration) -> Result<ProbeResponse, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
        let exchange = async {
            let response = self.client.get(uri).await.map_err(|e| chain(&e))?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            let body = Limited::new(response.into_body(), BODY_LIMIT)
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_else(|e| format!("(body unread: {e})"));
            Ok(ProbeResponse { status, headers, body })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
    }
}
