//! Release events on EventBridge: `PutEvents`, one entry per state change, up to ten per call.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::notify::{DETAIL_TYPE, PublishError, ReleaseChange, SOURCE};
use crate::ports::ReleaseEvents;

/// Publishes to one event bus (`CONVOY_EVENT_BUS`: a name or ARN; `default` for the account's).
#[derive(Clone)]
pub struct EventBridgeEvents {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeEvents {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: &str) -> Self {
        Self { client, bus: bus.to_owned() }
    }

    /// Publishes to `bus` with a client of `sdk`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, bus: &str) -> Self {
        Self::new(aws_sdk_eventbridge::Client::new(sdk), bus)
    }
}

/// Codes for an event that cannot be published as made (no such bus, not allowed, malformed).
const REJECTIONS: &[&str] =
    &["ResourceNotFoundException", "AccessDeniedException", "ValidationException", "NotAuthorizedForSourceException"];

/// The most entries one `PutEvents` takes.
const ENTRIES_PER_CALL: usize = 10;

#[async_trait]
impl ReleaseEvents for EventBridgeEvents {
    async fn publish(&self, changes: &[ReleaseChange]) -> Result<(), PublishError> {
        for batch in changes.chunks(ENTRIES_PER_CALL) {
            let mut entries = Vec::with_capacity(batch.len());
            for change in batch {
                let detail = serde_json::to_string(change).map_err(|e| PublishError::Rejected(e.to_string()))?;
                entries.push(
                    PutEventsRequestEntry::builder()
                        .source(SOURCE)
                        .detail_type(DETAIL_TYPE)
                        .event_bus_name(&self.bus)
                        .detail(detail)
                        .build(),
                );
            }
            let answer =
                self.client.put_events().set_entries(Some(entries)).send().await.map_err(|err| {
                    super::sort(err, Some(REJECTIONS), PublishError::Rejected, PublishError::Unavailable)
                })?;
            // PutEvents answers 200 even when entries failed: each failed one says why.
            if answer.failed_entry_count() > 0 {
                let failed = answer.entries().iter().find(|e| e.error_code().is_some());
                let code = failed.and_then(|e| e.error_code()).unwrap_or("unknown");
                let message = failed.and_then(|e| e.error_message()).unwrap_or("no message");
                let why = format!("{code}: {message}");
                return Err(if code == "InternalFailure" || code == "ThrottlingException" {
                    PublishError::Unavailable(why.into())
                } else {
                    PublishError::Rejected(why)
                });
            }
        }
        Ok(())
    }
}
