//! Lambda handlers: an event in, one use-case call, a JSON summary out. They take the raw payload
//! so a malformed event is logged and acknowledged here instead of failing deserialisation in the
//! runtime (which AWS would retry forever). They fail the invocation only when a retry can help.

use chrono::Utc;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{Instrument, error, info, warn};

use crate::error::ConvoyError;
use crate::events::{self, DeploymentChange, HookEvent, ImageEvent, PushEvent, TaskEvent};
use crate::names::AccountId;
use crate::service::{Convoy, NativeHook, release_span};

/// EventBridge "ECR Image Action".
pub async fn image_pushed(convoy: &Convoy, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    // A push may come from a registry account the operator lists, not only Convoy's own.
    let accounts: Vec<&AccountId> = convoy.config.policy.registries.iter().collect();
    if let Err(why) = envelope(convoy, &event.payload, &[ECR_PUSH, ECR_SCAN], &accounts) {
        return Ok(json!({ "ignored": why }));
    }
    // The same function hears ECR's "Image Scan" events: a completed scan resumes a gating release
    // (a hint: ECR's findings, asked again, decide).
    match events::parse_image_event(event.payload, Utc::now()) {
        Err(why) => {
            warn!("ignored: {why}");
            Ok(json!({ "ignored": why }))
        }
        Ok(ImageEvent::Scanned(scan)) => respond(convoy.image_scanned(&scan, Utc::now()).await),
        Ok(ImageEvent::Action(PushEvent::NotAPush(why))) => {
            info!("ignored: {why}");
            Ok(json!({ "ignored": why }))
        }
        Ok(ImageEvent::Action(PushEvent::Push(push))) => respond(convoy.image_pushed(&push, Utc::now()).await),
    }
}

/// S3 ObjectCreated, as an S3 notification or through EventBridge.
pub async fn manifest_uploaded(convoy: &Convoy, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    // An S3 notification (`Records`) is S3's own delivery, with no EventBridge envelope.
    if event.payload.get("Records").is_none()
        && let Err(why) = envelope(convoy, &event.payload, &[S3_OBJECT_CREATED], &own_account(convoy))
    {
        return Ok(json!({ "ignored": why }));
    }
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
pub async fn migration_stopped(convoy: &Convoy, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    if let Err(why) = envelope(convoy, &event.payload, &[ECS_TASK_STATE_CHANGE], &own_account(convoy)) {
        return Ok(json!({ "ignored": why }));
    }
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
            let changed = convoy.migration_task_changed(&release, &report, Utc::now());
            respond(changed.instrument(release_span(&release)).await)
        }
    }
}

/// A lifecycle hook: CodeDeploy's `AfterAllowTestTraffic` (answered through the API) or ECS
/// native blue/green's `POST_TEST_TRAFFIC_SHIFT` (answered by the return value). A malformed
/// event is answered FAILED for ECS, since a hook that returns nothing rolls back anyway.
///
/// The hook is always answered before the function's deadline: an analysis that has not decided
/// [`HOOK_ANSWER_MARGIN`] before it (slow probes, a slow store) is cut short and the hook failed
/// with the reason, rather than left to CodeDeploy's or ECS's own hour-long timeout.
pub async fn verify(convoy: &Convoy, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let budget = time_left(&event.context).map(|left| left.saturating_sub(HOOK_ANSWER_MARGIN));
    match events::parse_hook(&event.payload) {
        Err(why) => {
            warn!("not a hook: {why}");
            match events::hook_service(&event.payload) {
                // An ECS hook that names a service: the reason goes to its release's record too.
                Some(service) => json_of(convoy.ecs_native_hook_unreadable(&service, &why, Utc::now()).await),
                None => Ok(json!({ "hookStatus": "FAILED", "hookDetails": { "convoy": why } })),
            }
        }
        Ok(HookEvent::CodeDeploy { deployment, execution }) => {
            match within(budget, convoy.verify_codedeploy(&deployment, &execution, Utc::now())).await {
                Some(result) => respond(result),
                None => respond(convoy.codedeploy_hook_out_of_time(&deployment, &execution, Utc::now()).await),
            }
        }
        Ok(HookEvent::EcsNative { execution, stage, service_deployment, service, carried }) => {
            info!(%stage, %service, "ECS lifecycle hook");
            let hook = NativeHook {
                execution: &execution,
                stage: &stage,
                service_deployment: &service_deployment,
                service: &service,
                carried: carried.as_ref(),
            };
            let Some(result) = within(budget, convoy.verify_ecs_native(&hook, Utc::now())).await else {
                return json_of(convoy.ecs_native_hook_out_of_time(&hook, Utc::now()).await);
            };
            match result {
                Ok(reply) => json_of(reply),
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
///
/// It also reads "CloudWatch Alarm State Change": an alarm that gates a release in flight rolls
/// its deployment back.
///
/// And "AWS API Call via CloudTrail" for the four calls that decide a traffic shift (CodeDeploy
/// `ContinueDeployment`/`StopDeployment`, ECS `ContinueServiceDeployment`/`StopServiceDeployment`):
/// the release records who decided, as CloudTrail names them.
pub async fn deployment_changed(convoy: &Convoy, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    if let Err(why) = envelope(convoy, &event.payload, DEPLOYMENT_CHANGED_KINDS, &own_account(convoy)) {
        return Ok(json!({ "ignored": why }));
    }
    if event.payload["detail-type"].as_str() == Some(crate::cloudtrail::API_CALL_DETAIL_TYPE) {
        return match crate::cloudtrail::parse_api_call_event(&event.payload) {
            Err(why) => {
                info!("ignored: {why}");
                Ok(json!({ "ignored": why }))
            }
            Ok(call) => respond(convoy.approval_observed(&call, Utc::now()).await),
        };
    }
    if event.payload["detail-type"].as_str() == Some(crate::gates::ALARM_DETAIL_TYPE) {
        return match crate::gates::parse_alarm_change(&event.payload) {
            Err(why) => {
                warn!("ignored: {why}");
                Ok(json!({ "ignored": why }))
            }
            Ok(change) => respond(convoy.alarm_changed(&change, Utc::now()).await),
        };
    }
    match events::parse_deployment_end(event.payload) {
        Err(why) => {
            warn!("ignored: {why}");
            Ok(json!({ "ignored": why }))
        }
        Ok(DeploymentChange::Running(why)) => Ok(json!({ "ignored": why })),
        Ok(DeploymentChange::Native(change)) => {
            let reason = if change.rollback { format!("{} (ECS rolls back)", change.reason) } else { change.reason };
            respond(convoy.native_deployment_changed(&change.service, &change.event_name, &reason, Utc::now()).await)
        }
        Ok(DeploymentChange::Ended { deployment, end, detail }) => {
            respond(convoy.deployment_ended(&deployment, end, &detail, Utc::now()).await)
        }
    }
}

/// The kinds of EventBridge event each handler reads: (`detail-type`, `source`). "AWS API Call
/// via CloudTrail" events carry the called service's source (EventBridge User Guide, "Events from
/// AWS services delivered via AWS CloudTrail"); only AWS services put `aws.` sources on a bus.
const ECR_PUSH: (&str, &str) = ("ECR Image Action", "aws.ecr");
const ECR_SCAN: (&str, &str) = ("ECR Image Scan", "aws.ecr");
const S3_OBJECT_CREATED: (&str, &str) = ("Object Created", "aws.s3");
const ECS_TASK_STATE_CHANGE: (&str, &str) = ("ECS Task State Change", "aws.ecs");
const DEPLOYMENT_CHANGED_KINDS: &[(&str, &str)] = &[
    ("CodeDeploy Deployment State-change Notification", "aws.codedeploy"),
    ("CodePipeline Pipeline Execution State Change", "aws.codepipeline"),
    ("ECS Deployment State Change", "aws.ecs"),
    (crate::gates::ALARM_DETAIL_TYPE, "aws.cloudwatch"),
    (crate::cloudtrail::API_CALL_DETAIL_TYPE, "aws.codedeploy"),
    (crate::cloudtrail::API_CALL_DETAIL_TYPE, "aws.ecs"),
];

fn own_account(convoy: &Convoy) -> Vec<&AccountId> {
    convoy.config.policy.account.iter().collect()
}

/// Checks the envelope before anything else is read: what is not AWS's changes nothing, and is
/// logged and counted.
fn envelope(convoy: &Convoy, payload: &Value, kinds: &[(&str, &str)], accounts: &[&AccountId]) -> Result<(), String> {
    let region = convoy.config.policy.region.as_str();
    let checked = events::Envelope { kinds, accounts, region }.check(payload);
    if let Err(why) = &checked {
        warn!(%why, "unconfirmed event: refused, nothing changed");
        crate::telemetry::unconfirmed_event("envelope", None);
    }
    checked
}

/// How long before `verify`'s deadline an undecided analysis is cut short: enough to answer the
/// hook and, within [`crate::service::OUT_OF_TIME_NOTE_LIMIT`], to note why in the record.
pub const HOOK_ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_secs(8);

/// The time left before the invocation's deadline; `None` for a context without one (a local
/// runtime, a test), which gets the whole time the template sets.
fn time_left(context: &lambda_runtime::Context) -> Option<std::time::Duration> {
    if context.deadline == 0 {
        return None;
    }
    let now = Utc::now().timestamp_millis().max(0) as u64;
    Some(std::time::Duration::from_millis(context.deadline.saturating_sub(now)))
}

/// `work`'s result, or `None` when `budget` ran out first.
async fn within<T>(budget: Option<std::time::Duration>, work: impl std::future::Future<Output = T>) -> Option<T> {
    match budget {
        None => Some(work.await),
        Some(budget) => tokio::time::timeout(budget, work).await.ok(),
    }
}

/// How long before the function's deadline the reconciler starts no more visits: the visits under
/// way (a stage start among them) finish within it.
const RECONCILE_MARGIN: std::time::Duration = std::time::Duration::from_secs(15);

/// The schedule: re-derive the releases in progress from AWS, as many as the invocation's time
/// allows (the rest next period).
pub async fn reconcile(convoy: &Convoy, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let budget = time_left(&event.context).map(|left| left.saturating_sub(RECONCILE_MARGIN));
    respond(convoy.reconcile_within(Utc::now(), budget).await)
}

fn respond<T: Serialize>(result: Result<T, ConvoyError>) -> Result<Value, Diagnostic> {
    match result {
        Ok(value) => json_of(value),
        Err(err) if err.is_retryable() => {
            crate::telemetry::handler_error(true);
            error!(error = %err, "failed; the invocation fails so that AWS retries it");
            Err(err.into())
        }
        Err(err) => {
            crate::telemetry::handler_error(false);
            error!(error = %err, "failed; acknowledged, since a retry cannot help");
            Ok(json!({ "error": err.to_string() }))
        }
    }
}

/// A reply as JSON. Convoy's replies always serialise; were one not to, Lambda would be told why.
fn json_of(value: impl Serialize) -> Result<Value, Diagnostic> {
    serde_json::to_value(value)
        .map_err(|err| Diagnostic { error_type: "Convoy.Internal".into(), error_message: err.to_string() })
}
