//! Lambda handlers: an event in, one use-case call, a JSON summary out. They take the raw payload
//! so a malformed event is logged and acknowledged here instead of failing deserialisation in the
//! runtime (which AWS would retry forever). They fail the invocation only when a retry can help.

use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent};
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{error, info, warn};

use crate::error::ConvoyError;
use crate::events::{self, HookEvent, PushEvent, TaskEvent};
use crate::release::DeploymentEnd;
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
        Ok(PushEvent::Push(push)) => respond(convoy.image_pushed(&push, Utc::now()).await),
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

/// EventBridge "ECS Task State Change" (the rule passes only Convoy's tasks).
pub async fn migration_stopped(convoy: &Convoy, event: LambdaEvent<Value>) -> Result<Value, Error> {
    match events::parse_task_change(event.payload) {
        Err(why) => {
            warn!("ignored: {why}");
            Ok(json!({ "ignored": why }))
        }
        Ok(TaskEvent::NotOurs(why)) => {
            info!("ignored: {why}");
            Ok(json!({ "ignored": why }))
        }
        Ok(TaskEvent::Migration { release, report }) => {
            let span = tracing::info_span!("release", service = %release.service, release = %release.release);
            let _entered = span.enter();
            respond(convoy.migration_task_changed(&release, &report, Utc::now()).await)
        }
    }
}

/// A lifecycle hook: CodeDeploy's `AfterAllowTestTraffic` (answered through the API) or ECS
/// native blue/green's `POST_TEST_TRAFFIC_SHIFT` (answered by the return value). A malformed
/// event is answered FAILED for ECS, since a hook that returns nothing rolls back anyway.
pub async fn verify(convoy: &Convoy, event: LambdaEvent<Value>) -> Result<Value, Error> {
    match events::parse_hook(event.payload) {
        Err(why) => {
            warn!("not a hook: {why}");
            Ok(json!({ "hookStatus": "FAILED", "hookDetails": { "convoy": why } }))
        }
        Ok(HookEvent::CodeDeploy { deployment, execution }) => {
            respond(convoy.verify_codedeploy(&deployment, &execution, Utc::now()).await)
        }
        Ok(HookEvent::EcsNative { execution, stage, service_deployment, service }) => {
            info!(%stage, %service, "ECS lifecycle hook");
            match convoy.verify_ecs_native(&execution, &service_deployment, &service, Utc::now()).await {
                Ok(reply) => Ok(serde_json::to_value(reply)?),
                // ECS rolls back a deployment whose hook fails: a transient error asks to be
                // called again instead, a permanent one answers FAILED with the reason.
                Err(err) if err.is_retryable() => {
                    warn!(error = %err, "transient error; ECS calls the hook again");
                    Ok(
                        json!({ "hookStatus": "IN_PROGRESS", "callBackDelay": 15, "hookDetails": { "convoy": err.to_string() } }),
                    )
                }
                Err(err) => {
                    error!(error = %err, "verification cannot run");
                    Ok(json!({ "hookStatus": "FAILED", "hookDetails": { "convoy": err.to_string() } }))
                }
            }
        }
    }
}

/// How a deployment ended: a CodeDeploy deployment (EventBridge "CodeDeploy Deployment
/// State-change Notification") or a pipeline execution that deploys through CodeDeploy
/// ("CodePipeline Pipeline Execution State Change"). Any other event is acknowledged and logged.
pub async fn deployment_changed(convoy: &Convoy, event: LambdaEvent<Value>) -> Result<Value, Error> {
    match deployment_end(event.payload) {
        Err(why) => {
            warn!("ignored: {why}");
            Ok(json!({ "ignored": why }))
        }
        Ok(DeploymentChange::Running(why)) => Ok(json!({ "ignored": why })),
        Ok(DeploymentChange::Ended { deployment, end, detail }) => {
            respond(convoy.deployment_ended(&deployment, end, &detail, Utc::now()).await)
        }
    }
}

/// What a deployment-changed event says.
#[derive(Debug, PartialEq, Eq)]
enum DeploymentChange {
    /// Not ended yet: why nothing is done.
    Running(&'static str),
    /// `deployment` is a CodeDeploy deployment id or a pipeline execution id.
    Ended { deployment: String, end: DeploymentEnd, detail: String },
}

/// Reads the event by its `source`; `Err` says why it is not one Convoy handles.
fn deployment_end(payload: Value) -> Result<DeploymentChange, String> {
    let source = payload.get("source").and_then(Value::as_str).unwrap_or_default().to_owned();
    match source.as_str() {
        "aws.codedeploy" => Ok(match events::parse_deployment_change(payload)? {
            None => DeploymentChange::Running("the deployment has not ended"),
            Some((deployment, end)) => DeploymentChange::Ended { deployment, end, detail: String::new() },
        }),
        "aws.codepipeline" => Ok(match events::parse_pipeline_change(payload)? {
            None => DeploymentChange::Running("the pipeline execution has not ended"),
            Some(ended) => {
                DeploymentChange::Ended { deployment: ended.execution, end: ended.end, detail: ended.detail }
            }
        }),
        _ => Err(format!("expected an event from aws.codedeploy or aws.codepipeline, got one from {source:?}")),
    }
}

/// The schedule: re-derive every release in progress from AWS.
pub async fn reconcile(convoy: &Convoy, _event: LambdaEvent<Value>) -> Result<Value, Error> {
    respond(convoy.reconcile(Utc::now()).await)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline_failed() -> Value {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/events/codepipeline-execution-state-change-failed.json"
        ))
        .unwrap()
    }

    #[test]
    fn a_codedeploy_event_ends_its_deployment() {
        let event = json!({
            "version": "0", "id": "1", "detail-type": "CodeDeploy Deployment State-change Notification",
            "source": "aws.codedeploy", "account": "123456789012", "time": "2026-01-01T00:00:00Z",
            "region": "us-east-1", "resources": [],
            "detail": {"deploymentId": "d-ABC123", "state": "FAILURE", "application": "convoy", "deploymentGroup": "web"}
        });
        assert_eq!(
            deployment_end(event).unwrap(),
            DeploymentChange::Ended {
                deployment: "d-ABC123".into(),
                end: DeploymentEnd::Failed,
                detail: String::new()
            }
        );
    }

    #[test]
    fn a_pipeline_event_ends_the_deployment_named_by_its_execution() {
        let DeploymentChange::Ended { deployment, end, detail } = deployment_end(pipeline_failed()).unwrap() else {
            panic!("ended")
        };
        assert_eq!(deployment, "12345678-1234-5678-abcd-12345678abcd");
        assert_eq!(end, DeploymentEnd::Failed);
        assert!(detail.starts_with("pipeline web-deploy execution "), "{detail}");
    }

    #[test]
    fn a_pipeline_that_started_has_not_ended() {
        let mut event = pipeline_failed();
        event["detail"]["state"] = json!("STARTED");
        assert!(matches!(deployment_end(event), Ok(DeploymentChange::Running(_))));
    }

    #[test]
    fn an_event_from_another_source_is_refused_with_the_source() {
        let event = json!({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}});
        assert!(deployment_end(event).unwrap_err().contains("aws.ec2"));
        assert!(deployment_end(json!("not an object")).is_err());
    }
}
