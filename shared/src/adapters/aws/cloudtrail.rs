//! CloudTrail's event history (`LookupEvents`): the management events of the last 90 days, with
//! no trail needed. `LookupEvents` filters by one attribute only: Convoy asks by `EventName` (one
//! of the four operations) within the time window and keeps the records whose
//! `requestParameters` name the deployment. Not by `ResourceName`: CloudTrail fills `Resources`
//! only for the resource types it knows, and does not reliably name a CodeDeploy deployment or an
//! ECS service deployment there.

use aws_sdk_cloudtrail::primitives::DateTime as SdkTime;
use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use chrono::{DateTime, Utc};

use crate::cloudtrail::{operations_for, read_record};
use crate::error::TrailError;
use crate::names::DeploymentRef;
use crate::release::{ObservedCall, Via};

/// Pages read per operation (50 events each): a deployment's window holds few calls of these.
const MAX_PAGES: usize = 10;
/// Attempts per page when throttled (2 requests per second per account and region), beyond the
/// SDK's own retries.
const THROTTLED_ATTEMPTS: u32 = 3;

pub struct CloudTrailHistory {
    client: aws_sdk_cloudtrail::Client,
}

impl CloudTrailHistory {
    pub fn new(client: aws_sdk_cloudtrail::Client) -> Self {
        Self { client }
    }

    async fn page(
        &self,
        event_name: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        token: Option<String>,
    ) -> Result<aws_sdk_cloudtrail::operation::lookup_events::LookupEventsOutput, TrailError> {
        let attribute = LookupAttribute::builder()
            .attribute_key(LookupAttributeKey::EventName)
            .attribute_value(event_name)
            .build()
            .map_err(|e| TrailError::Unavailable(crate::error::Cause::caused_by("the LookupEvents attribute", e)))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .client
                .lookup_events()
                .lookup_attributes(attribute.clone())
                .start_time(SdkTime::from_secs(since.timestamp()))
                .end_time(SdkTime::from_secs(until.timestamp() + 1))
                .max_results(50)
                .set_next_token(token.clone())
                .send()
                .await;
            match sent {
                Ok(output) => return Ok(output),
                Err(err) => {
                    let throttled = super::refusal(&err, Some(&["ThrottlingException"])).is_some();
                    if !throttled {
                        return Err(TrailError::Unavailable(super::cause(err)));
                    }
                    if attempt >= THROTTLED_ATTEMPTS {
                        return Err(TrailError::Throttled(super::cause(err)));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(600 * u64::from(attempt))).await;
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl crate::ports::ApiCalls for CloudTrailHistory {
    async fn decisions_on(
        &self,
        deployment: &DeploymentRef,
        approve: bool,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<ObservedCall>, TrailError> {
        let mut found = Vec::new();
        for operation in operations_for(approve, deployment) {
            let mut token = None;
            for _ in 0..MAX_PAGES {
                let output = self.page(operation.event_name, since, until, token.take()).await?;
                for event in output.events() {
                    if event.event_source() != Some(operation.event_source) {
                        continue;
                    }
                    let Some(text) = event.cloud_trail_event() else { continue };
                    let Ok(record) = serde_json::from_str::<serde_json::Value>(text) else { continue };
                    match read_record(&record, Via::LookupEvents) {
                        Ok(call) if call.deployment == *deployment && call.approve == approve => found.push(call),
                        Ok(_) => {}
                        Err(why) => tracing::debug!(%why, "a CloudTrail record that is not a decision"),
                    }
                }
                match output.next_token() {
                    Some(next) => token = Some(next.to_owned()),
                    None => break,
                }
            }
        }
        found.sort_by_key(|call| call.actor.event_time);
        found.dedup_by(|a, b| a.actor.event_id == b.actor.event_id);
        Ok(found)
    }
}

/// For functions that never look CloudTrail up (their events never ask who approved): a look-up
/// that would reach here is left to `deployment-changed` and the reconciler, which have the
/// client. Keeps the CloudTrail client out of the other functions' zips.
pub struct NoCloudTrail;

#[async_trait::async_trait]
impl crate::ports::ApiCalls for NoCloudTrail {
    async fn decisions_on(
        &self,
        _deployment: &DeploymentRef,
        _approve: bool,
        _since: DateTime<Utc>,
        _until: DateTime<Utc>,
    ) -> Result<Vec<ObservedCall>, TrailError> {
        Err(TrailError::Unavailable("this function does not read CloudTrail; the reconciler asks".into()))
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudtrail::Client;
    use aws_sdk_cloudtrail::config::retry::RetryConfig;
    use aws_sdk_cloudtrail::error::ErrorMetadata;
    use aws_sdk_cloudtrail::operation::lookup_events::{LookupEventsError, LookupEventsOutput};
    use aws_sdk_cloudtrail::types::Event;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::ports::ApiCalls;

    /// A CloudTrail record as `LookupEvents` returns it (`CloudTrailEvent`), from the documented
    /// fixture's `detail`, for `deployment`, with `error` as its `errorCode` if any.
    fn event(deployment: &str, id: &str, error: Option<&str>) -> Event {
        let fixture: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../tests/fixtures/events/example-cloudtrail-continue-deployment.json"
        ))
        .unwrap();
        let mut record = fixture["detail"].clone();
        record["requestParameters"]["deploymentId"] = deployment.into();
        record["eventID"] = id.into();
        if let Some(code) = error {
            record["errorCode"] = code.into();
        }
        Event::builder()
            .event_id(id)
            .event_name("ContinueDeployment")
            .event_source("codedeploy.amazonaws.com")
            .cloud_trail_event(record.to_string())
            .build()
    }

    fn window() -> (DateTime<Utc>, DateTime<Utc>) {
        (Utc.timestamp_opt(1_700_000_000, 0).unwrap(), Utc.timestamp_opt(1_700_000_600, 0).unwrap())
    }

    #[tokio::test]
    async fn a_look_up_asks_by_event_name_pages_on_and_keeps_only_the_deployments_successful_calls() {
        let first = mock!(Client::lookup_events)
            .match_requests(|input| {
                let attribute = input.lookup_attributes().first();
                input.next_token().is_none()
                    && attribute.map(|a| (a.attribute_key().as_str(), a.attribute_value()))
                        == Some(("EventName", "ContinueDeployment"))
            })
            .then_output(|| {
                LookupEventsOutput::builder()
                    .events(event("d-OTHER", "ev-other", None))
                    .events(event("d-1", "ev-refused", Some("DeploymentIsNotInReadyStateException")))
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(Client::lookup_events)
            .match_requests(|input| input.next_token() == Some("page-2"))
            .then_output(|| LookupEventsOutput::builder().events(event("d-1", "ev-ours", None)).build());
        let client = mock_client!(aws_sdk_cloudtrail, RuleMode::Sequential, [&first, &second]);
        let (since, until) = window();
        let found = CloudTrailHistory::new(client)
            .decisions_on(&DeploymentRef::CodeDeploy("d-1".parse().unwrap()), true, since, until)
            .await
            .unwrap();
        assert_eq!(found.iter().map(|c| c.actor.event_id.as_str()).collect::<Vec<_>>(), ["ev-ours"]);
        assert_eq!(found[0].actor.via, Via::LookupEvents);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_retried_a_bounded_number_of_times_then_reported_as_throttled() {
        let throttled = mock!(Client::lookup_events).then_error(|| {
            LookupEventsError::generic(
                ErrorMetadata::builder().code("ThrottlingException").message("Rate exceeded").build(),
            )
        });
        let client = mock_client!(aws_sdk_cloudtrail, RuleMode::MatchAny, [&throttled], |c| c
            .retry_config(RetryConfig::disabled()));
        let (since, until) = window();
        let err = CloudTrailHistory::new(client)
            .decisions_on(&DeploymentRef::CodeDeploy("d-1".parse().unwrap()), true, since, until)
            .await
            .unwrap_err();
        assert!(matches!(err, TrailError::Throttled(_)), "{err}");
        assert_eq!(throttled.num_calls(), THROTTLED_ATTEMPTS as usize);
    }
}
