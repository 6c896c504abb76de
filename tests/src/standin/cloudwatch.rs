//! CloudWatch: the SDK speaks Smithy RPC v2 CBOR to CloudWatch, which moto 5.2.5 does not read.
//! `GetMetricData` and `DescribeAlarms` go on to moto as the same AWS JSON 1.0 operation, and
//! moto's answer comes back as CBOR ([`crate::cbor`]); moto keeps the metrics and alarm states.

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Shared, header, json_response, respond};

/// A Smithy RPC v2 CBOR request (CloudWatch's protocol in the SDK, which moto does not read):
/// sent on to moto as the same AWS JSON 1.0 operation, and moto's answer returned as CBOR. Only
/// the encoding changes; moto answers (see [`crate::cbor`]).
pub(super) async fn bridge_cbor(
    mut client: TcpStream,
    shared: &Shared,
    head: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let path = head.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or_default().to_owned();
    // /service/<Service>/operation/<Operation>
    let mut parts = path.trim_start_matches('/').split('/');
    let (service, operation) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("service"), Some(service), Some("operation"), Some(operation)) => (service, operation),
        _ => {
            return respond(&mut client, 400, &json!({"__type": "UnknownOperation", "message": path}).to_string())
                .await;
        }
    };
    let target = format!("{service}.{operation}");
    shared.passed.lock().expect("forwarded").push(target.clone());
    let document = crate::cbor::to_json(body).unwrap_or(Value::Null).to_string();
    let authorization = header(head, "authorization").unwrap_or_default();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: {target}\r\n\
         Authorization: {authorization}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{document}",
        shared.upstream,
        document.len()
    );
    let mut moto = TcpStream::connect(&shared.upstream).await?;
    moto.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    moto.read_to_end(&mut response).await?;
    let (status, answer) = json_response(&response).unwrap_or((500, json!({"__type": "InternalFailure"})));
    let bytes = crate::cbor::from_json(&answer);
    let reason = if status == 200 { "OK" } else { "Bad Request" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/cbor\r\nsmithy-protocol: rpc-v2-cbor\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    client.write_all(head.as_bytes()).await?;
    client.write_all(&bytes).await?;
    client.shutdown().await
}
