//! Lambda handlers: an event in, one use-case call, a JSON summary out. They take the raw payload
//! so a malformed event is logged and acknowledged here instead of failing deserialisation in the
//! runtime (which AWS would retry forever). They fail the invocation only when a retry can help.

use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent};
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{error, info, warn};

use crate::error::ConvoyError;
use crate::events::{self, PushEvent};
use crate::service::Convoy;

/// EventBridge "ECR Image Action".
pub async fn image_pushed(convoy: &Convoy, event: LambdaEvent<Value>) -> Result<Value, Error> {
    match events::parse_push(event.payload, Utc::now()) {
        Err(why) => {
            warn!("ignored: {why}");
            Ok(json!({ "ignored": why }))
        }
        Ok(PushEvent::NotAPush(why)) => {
            info!("ignored: {why}");
            Ok(json!({ "ignored": why }))
        }
        Ok(PushEvent::Push(push)) => respond(convoy.image_pushed(&push).await),
    }
}

/// S3 ObjectCreated, as an S3 notification or through EventBridge.
pub async fn manifest_uploaded(convoy: &Convoy, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let uploads = match events::parse_uploads(event.payload) {
        Ok(uploads) => uploads,
        Err(why) => {
            warn!("ignored: {why}");
            return Ok(json!({ "ignored": why }));
        }
    };
    let mut reports = Vec::new();
    let mut retryable = None;
    for upload in &uploads {
        match convoy.manifest_uploaded(upload, Utc::now()).await {
            Ok(report) => reports.extend(report),
            // Finish the other records first; the retry is idempotent for them.
            Err(err) if err.is_retryable() => retryable = Some(err),
            Err(err) => error!(error = %err, key = %upload.object.key, "upload not processed; not retried"),
        }
    }
    match retryable {
        Some(err) => respond::<()>(Err(err)),
        None => respond(Ok(reports)),
    }
}

fn respond<T: Serialize>(result: Result<T, ConvoyError>) -> Result<Value, Error> {
    match result {
        Ok(value) => Ok(serde_json::to_value(value)?),
        Err(err) if err.is_retryable() => {
            error!(error = %err, "failed; the invocation fails so that AWS retries it");
            Err(err.into())
        }
        Err(err) => {
            error!(error = %err, "failed; acknowledged, since a retry cannot help");
            Ok(json!({ "error": err.to_string() }))
        }
    }
}
