//! The AWS events Convoy reads, turned into domain inputs. `aws_lambda_events` has the S3
//! notification and the EventBridge envelope; the ECR push detail and S3's EventBridge detail are
//! written here. Parsing never panics and says why an event was not for Convoy.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::s3::S3Event;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::{
    AccountId, DeploymentId, DeploymentRef, Digest, HookExecutionId, ImageTag, PipelineExecutionId, RepositoryName,
    ServiceDeploymentArn, TaskArn,
};
use crate::ports::ObjectRef;
use crate::release::ImageKey;

/// `detail` of an EventBridge "ECR Image Action" event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EcrImageAction {
    pub result: String,
    pub repository_name: String,
    pub image_digest: String,
    pub action_type: String,
    #[serde(default)]
    pub image_tag: Option<String>,
}

/// A completed push of a tagged image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub image: ImageKey,
    pub digest: Digest,
    pub at: DateTime<Utc>,
}

/// What an ECR event means to Convoy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    Push(Push),
    /// Not a completed push of a tag (a delete, a failure, an untagged push): why.
    NotAPush(String),
}

/// An EventBridge event whose `detail-type` and `source` are the ones given, its detail read as
/// `T`; `named` is how the errors name it ("an ECR Image Action"). `Err` when it is not one.
fn eventbridge_event<T: serde::de::DeserializeOwned + serde::Serialize>(
    payload: serde_json::Value,
    named: &str,
    detail_type: &str,
    source: &str,
) -> Result<EventBridgeEvent<T>, String> {
    let event: EventBridgeEvent<T> = serde_json::from_value(payload).map_err(|e| format!("not {named} event: {e}"))?;
    if event.detail_type != detail_type || event.source != source {
        return Err(format!("expected {named} from {source}, got {:?} from {:?}", event.detail_type, event.source));
    }
    Ok(event)
}

/// Where an EventBridge event must come from to be read at all: one of the (`detail-type`,
/// `source`) kinds a handler reads, from one of `accounts` (none: not checked), in `region` (empty:
/// not checked). Checked before anything else; `Err` says which field is not AWS's, as the log
/// line and the handler's answer say it.
pub struct Envelope<'a> {
    pub kinds: &'a [(&'a str, &'a str)],
    pub accounts: &'a [&'a AccountId],
    pub region: &'a str,
}

impl Envelope<'_> {
    pub fn check(&self, payload: &serde_json::Value) -> Result<(), String> {
        let field = |name: &str| payload.get(name).and_then(serde_json::Value::as_str).unwrap_or_default();
        let (detail_type, source) = (field("detail-type"), field("source"));
        if !self.kinds.iter().any(|(kind, from)| *kind == detail_type && *from == source) {
            let expected: Vec<String> = self.kinds.iter().map(|(kind, from)| format!("{kind:?} from {from}")).collect();
            return Err(format!("envelope: expected {}, got {detail_type:?} from {source:?}", expected.join(" or ")));
        }
        let account = field("account");
        if !self.accounts.is_empty() && !self.accounts.iter().any(|a| a.as_str() == account) {
            return Err(format!("envelope: {detail_type:?} from account {account:?}, not Convoy's"));
        }
        let region = field("region");
        if !self.region.is_empty() && region != self.region {
            return Err(format!("envelope: {detail_type:?} from region {region:?}, not Convoy's {}", self.region));
        }
        Ok(())
    }
}

/// Reads an EventBridge ECR event. `Err` means the payload is not an ECR event at all.
pub fn parse_push(payload: serde_json::Value, received_at: DateTime<Utc>) -> Result<PushEvent, String> {
    let event: EventBridgeEvent<EcrImageAction> =
        eventbridge_event(payload, "an ECR Image Action", "ECR Image Action", "aws.ecr")?;
    let detail = event.detail;
    if detail.action_type != "PUSH" {
        return Ok(PushEvent::NotAPush(format!("action {} is not a push", detail.action_type)));
    }
    if detail.result != "SUCCESS" {
        return Ok(PushEvent::NotAPush(format!("the push of {} ended with {}", detail.repository_name, detail.result)));
    }
    let Some(tag) = detail.image_tag.filter(|t| !t.is_empty()) else {
        return Ok(PushEvent::NotAPush(format!("an untagged push to {}", detail.repository_name)));
    };
    let account = event.account.ok_or("the event has no account")?;
    let image = ImageKey::tagged(
        AccountId::new(&account).map_err(|e| e.to_string())?,
        RepositoryName::new(&detail.repository_name).map_err(|e| e.to_string())?,
        ImageTag::new(&tag).map_err(|e| e.to_string())?,
    );
    let digest = Digest::new(&detail.image_digest).map_err(|e| e.to_string())?;
    Ok(PushEvent::Push(Push { image, digest, at: event.time.unwrap_or(received_at) }))
}

/// What reaches the image-pushed function: ECR's "Image Scan" event or its "Image Action" event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageEvent {
    /// A scan completed (a hint for a release the image gate holds).
    Scanned(ScanCompleted),
    /// An image action: a push, or one that is not.
    Action(PushEvent),
}

/// Reads either event the image-pushed function hears ([`parse_scan`], else [`parse_push`]).
///
/// # Errors
/// Why the payload is neither event, as those two say.
pub fn parse_image_event(payload: serde_json::Value, received_at: DateTime<Utc>) -> Result<ImageEvent, String> {
    if let Some(scan) = parse_scan(&payload)? {
        return Ok(ImageEvent::Scanned(scan));
    }
    parse_push(payload, received_at).map(ImageEvent::Action)
}

/// `detail` of ECR's "ECR Image Scan" event (Amazon ECR User Guide, "Amazon ECR events and
/// EventBridge", "Event for a completed image scan"; `aws_lambda_events` has no type for it).
/// Only what the gate needs: which digest of which repository was scanned, and how it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct EcrImageScan {
    scan_status: String,
    repository_name: String,
    image_digest: String,
}

/// A completed scan of a digest: a hint that the release gating on it may be judged now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanCompleted {
    pub registry: AccountId,
    pub repository: RepositoryName,
    pub digest: Digest,
    pub status: String,
}

/// Reads an "ECR Image Scan" event. `Ok(None)` when the payload is another ECR event (the push
/// rule's), `Err` when it claims to be a scan event but cannot be read.
pub fn parse_scan(payload: &serde_json::Value) -> Result<Option<ScanCompleted>, String> {
    if payload.get("detail-type").and_then(|t| t.as_str()) != Some("ECR Image Scan") {
        return Ok(None);
    }
    let event: EventBridgeEvent<EcrImageScan> =
        eventbridge_event(payload.clone(), "an ECR Image Scan", "ECR Image Scan", "aws.ecr")?;
    let account = event.account.ok_or("the event has no account")?;
    Ok(Some(ScanCompleted {
        registry: AccountId::new(&account).map_err(|e| e.to_string())?,
        repository: RepositoryName::new(&event.detail.repository_name).map_err(|e| e.to_string())?,
        digest: Digest::new(&event.detail.image_digest).map_err(|e| e.to_string())?,
        status: event.detail.scan_status,
    }))
}

/// `detail` of an EventBridge S3 "Object Created" event.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct S3ObjectCreated {
    bucket: S3Bucket,
    object: S3Object,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct S3Bucket {
    name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct S3Object {
    key: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    version_id: Option<String>,
}

/// A created object, from either event form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub object: ObjectRef,
    pub size: Option<u64>,
    pub etag: Option<String>,
}

/// Reads an S3 notification (`Records`) or an EventBridge "Object Created" event.
pub fn parse_uploads(payload: serde_json::Value) -> Result<Vec<Upload>, String> {
    if payload.get("Records").is_some() {
        let event: S3Event = serde_json::from_value(payload).map_err(|e| format!("not an S3 notification: {e}"))?;
        let mut uploads = Vec::new();
        for record in event.records {
            if !record.event_name.as_deref().unwrap_or_default().starts_with("ObjectCreated:") {
                continue;
            }
            let (Some(bucket), Some(key)) = (record.s3.bucket.name, record.s3.object.key) else {
                return Err("an S3 record without bucket or key".into());
            };
            uploads.push(Upload {
                object: ObjectRef {
                    bucket,
                    key: decode_notification_key(&key)?,
                    version_id: record.s3.object.version_id,
                },
                size: record.s3.object.size.map(|s| s.max(0) as u64),
                etag: record.s3.object.e_tag,
            });
        }
        return Ok(uploads);
    }
    let event: EventBridgeEvent<S3ObjectCreated> = serde_json::from_value(payload)
        .map_err(|e| format!("neither an S3 notification nor an S3 EventBridge event: {e}"))?;
    if event.source != "aws.s3" || event.detail_type != "Object Created" {
        return Err(format!(
            "expected Object Created from aws.s3, got {:?} from {:?}",
            event.detail_type, event.source
        ));
    }
    let detail = event.detail;
    Ok(vec![Upload {
        object: ObjectRef { bucket: detail.bucket.name, key: detail.object.key, version_id: detail.object.version_id },
        size: detail.object.size,
        etag: detail.object.etag,
    }])
}

/// S3 notification keys are URL-encoded with `+` for a space.
fn decode_notification_key(key: &str) -> Result<String, String> {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| format!("the object key {key:?} is not UTF-8 once decoded"))
}

/// `detail` of an EventBridge "ECS Task State Change" event (the fields Convoy reads).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EcsTaskStateChange {
    task_arn: String,
    last_status: String,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    stop_code: Option<String>,
    #[serde(default)]
    stopped_reason: Option<String>,
    #[serde(default)]
    containers: Vec<EcsContainer>,
    version: u64,
    #[serde(default)]
    started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    stopped_at: Option<DateTime<Utc>>,
    #[serde(default)]
    started_by: Option<String>,
    #[serde(default)]
    task_definition_arn: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EcsContainer {
    name: String,
    #[serde(default)]
    exit_code: Option<i32>,
    #[serde(default)]
    reason: Option<String>,
}

/// What an ECS task event means to Convoy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEvent {
    /// A task of a release's migration group.
    Migration { release: crate::names::ReleaseKey, report: Box<crate::release::TaskReport> },
    /// Not a Convoy migration task: why.
    NotOurs(String),
}

/// Reads an EventBridge "ECS Task State Change". `Err` means it is not such an event at all.
pub fn parse_task_change(payload: serde_json::Value) -> Result<TaskEvent, String> {
    let event: EventBridgeEvent<EcsTaskStateChange> =
        eventbridge_event(payload, "an ECS Task State Change", "ECS Task State Change", "aws.ecs")?;
    let detail = event.detail;
    let group = detail.group.unwrap_or_default();
    let Some(release) = crate::names::ReleaseKey::from_tag(&group) else {
        return Ok(TaskEvent::NotOurs(format!(
            "task {} is in group {group:?}, not a Convoy migration",
            detail.task_arn
        )));
    };
    Ok(TaskEvent::Migration {
        release,
        report: Box::new(crate::release::TaskReport {
            task: TaskArn::new(&detail.task_arn).map_err(|e| e.to_string())?,
            version: Some(detail.version),
            last_status: detail.last_status,
            stop_code: detail.stop_code,
            stopped_reason: detail.stopped_reason,
            containers: detail
                .containers
                .into_iter()
                .map(|c| crate::release::ContainerReport { name: c.name, exit_code: c.exit_code, reason: c.reason })
                .collect(),
            started_at: detail.started_at,
            stopped_at: detail.stopped_at,
            started_by: detail.started_by,
            task_definition: detail.task_definition_arn,
        }),
    })
}

/// A lifecycle hook invocation asking for verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEvent {
    /// CodeDeploy (`aws_lambda_events`' `CodeDeployLifecycleEvent`).
    CodeDeploy { deployment: DeploymentId, execution: HookExecutionId },
    /// ECS native blue/green: the payload of the Amazon ECS Developer Guide's "Lambda hooks for
    /// Amazon ECS service deployments" (`executionId`, `lifecycleStage`, `resourceArn`,
    /// `executionDetails.serviceArn`), and what Convoy carried in `hookDetails`, if anything.
    EcsNative {
        execution: HookExecutionId,
        stage: String,
        service_deployment: ServiceDeploymentArn,
        service: String,
        carried: Option<Carried>,
    },
}

/// What Convoy returned in `hookDetails` with `IN_PROGRESS`, which ECS passes back on the next
/// invocation of the same hook ("Passing state with hookDetails", the same guide page): the
/// release and the hook execution its verification is keyed on, so a re-invocation continues it
/// even under another `executionId`. A hint like the rest of the payload: it is only followed
/// when it names the release that holds the service and a verification that release recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    pub release: String,
    pub execution: HookExecutionId,
}

/// The keys of Convoy's state in `hookDetails` (ECS merges them with the hook's configured
/// details, which Convoy leaves alone).
pub const CARRIED_RELEASE: &str = "release";
pub const CARRIED_EXECUTION: &str = "execution";

// No `deny_unknown_fields`: AWS adds fields to its payloads, and a hook that ignores them keeps
// working.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EcsLifecycleHook {
    execution_id: String,
    lifecycle_stage: String,
    resource_arn: String,
    execution_details: EcsExecutionDetails,
    #[serde(default)]
    hook_details: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EcsExecutionDetails {
    service_arn: String,
}

/// Reads a CodeDeploy hook (`DeploymentId`, `LifecycleEventHookExecutionId`) or an ECS native hook.
pub fn parse_hook(payload: &serde_json::Value) -> Result<HookEvent, String> {
    if payload.get("DeploymentId").is_some() {
        let event = aws_lambda_events::codedeploy::CodeDeployLifecycleEvent::deserialize(payload)
            .map_err(|e| format!("not a CodeDeploy lifecycle hook: {e}"))?;
        return Ok(HookEvent::CodeDeploy {
            deployment: DeploymentId::new(&event.deployment_id).map_err(|e| e.to_string())?,
            execution: HookExecutionId::new(&event.lifecycle_event_hook_execution_id).map_err(|e| e.to_string())?,
        });
    }
    let hook = EcsLifecycleHook::deserialize(payload)
        .map_err(|e| format!("neither a CodeDeploy nor an ECS lifecycle hook: {e}"))?;
    let service = hook.execution_details.service_arn.rsplit('/').next().unwrap_or_default().to_owned();
    let carried = hook.hook_details.as_ref().and_then(|details| {
        let release = details.get(CARRIED_RELEASE)?.as_str()?.to_owned();
        let execution = HookExecutionId::new(details.get(CARRIED_EXECUTION)?.as_str()?).ok()?;
        Some(Carried { release, execution })
    });
    Ok(HookEvent::EcsNative {
        execution: HookExecutionId::new(&hook.execution_id).map_err(|e| e.to_string())?,
        stage: hook.lifecycle_stage,
        service_deployment: ServiceDeploymentArn::new(&hook.resource_arn).map_err(|e| e.to_string())?,
        service,
        carried,
    })
}

/// The service an ECS native hook names, read as far as the payload allows (from
/// `executionDetails.serviceArn`, else from `resourceArn`): a hook whose payload cannot be read
/// is still answered with a reason in that service's release record. `None` for a CodeDeploy
/// hook, or when neither names a service.
pub fn hook_service(payload: &serde_json::Value) -> Option<String> {
    if payload.get("DeploymentId").is_some() {
        return None;
    }
    let from_service = payload["executionDetails"]["serviceArn"].as_str().and_then(|arn| {
        let (_, path) = arn.split_once(":service/")?;
        path.rsplit('/').next().map(str::to_owned)
    });
    // `arn:aws:ecs:region:account:service-deployment/cluster/service/id`
    let from_deployment = || {
        let (_, path) = payload["resourceArn"].as_str()?.split_once(":service-deployment/")?;
        let mut parts = path.split('/');
        let (_, service) = (parts.next()?, parts.next()?);
        Some(service.to_owned())
    };
    from_service.or_else(from_deployment).filter(|s| !s.is_empty())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CodeDeployStateChange {
    deployment_id: String,
    state: String,
}

/// Reads an EventBridge "CodeDeploy Deployment State-change Notification": `Some` when it ended.
pub fn parse_deployment_change(
    payload: serde_json::Value,
) -> Result<Option<(DeploymentId, crate::release::DeploymentEnd)>, String> {
    let event: EventBridgeEvent<CodeDeployStateChange> = serde_json::from_value(payload)
        .map_err(|e| format!("not a CodeDeploy Deployment State-change Notification: {e}"))?;
    if event.source != "aws.codedeploy" {
        return Err(format!("expected an event from aws.codedeploy, got one from {:?}", event.source));
    }
    use crate::release::DeploymentEnd;
    let end = match event.detail.state.as_str() {
        "SUCCESS" => DeploymentEnd::Succeeded,
        "FAILURE" => DeploymentEnd::Failed,
        "STOP" => DeploymentEnd::Stopped,
        _ => return Ok(None),
    };
    Ok(Some((DeploymentId::new(&event.detail.deployment_id).map_err(|e| e.to_string())?, end)))
}

/// `detail` of an EventBridge "CodePipeline Pipeline Execution State Change" (the fields Convoy
/// reads). Not `aws_lambda_events`' `CodePipelineCloudWatchEvent`: its `detail.version` is an
/// `i64`, and CodePipeline sends the pipeline's version as a float (`"version": 4.0` in the
/// CodePipeline User Guide's examples and in real events), which that type fails to read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct PipelineExecutionStateChange {
    pipeline: String,
    execution_id: String,
    state: String,
    /// Set on STOPPING and STOPPED when whoever stopped the execution gave a reason.
    #[serde(default)]
    stop_execution_comments: Option<String>,
}

/// A pipeline execution that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineEnded {
    pub pipeline: String,
    /// The pipeline execution id (what `StartPipelineExecution` returned).
    pub execution: PipelineExecutionId,
    pub end: crate::release::DeploymentEnd,
    /// A short line for the release's timeline, e.g. "pipeline web-deploy execution <id> FAILED".
    pub detail: String,
}

/// Reads an EventBridge "CodePipeline Pipeline Execution State Change": `Some` when the execution
/// ended (SUCCEEDED; FAILED; STOPPED, SUPERSEDED or CANCELED), `None` while it runs (STARTED,
/// RESUMED, STOPPING). `Err` means it is not such an event, or a state CodePipeline did not document.
pub fn parse_pipeline_change(payload: serde_json::Value) -> Result<Option<PipelineEnded>, String> {
    let event: EventBridgeEvent<PipelineExecutionStateChange> = eventbridge_event(
        payload,
        "a CodePipeline Pipeline Execution State Change",
        "CodePipeline Pipeline Execution State Change",
        "aws.codepipeline",
    )?;
    use crate::release::DeploymentEnd;
    let detail = event.detail;
    let end = match detail.state.as_str() {
        "SUCCEEDED" => DeploymentEnd::Succeeded,
        "FAILED" => DeploymentEnd::Failed,
        "STOPPED" | "SUPERSEDED" | "CANCELED" => DeploymentEnd::Stopped,
        "STARTED" | "RESUMED" | "STOPPING" => return Ok(None),
        other => {
            return Err(format!(
                "pipeline {} execution {} is in state {other:?}, which Convoy does not know",
                detail.pipeline, detail.execution_id
            ));
        }
    };
    let mut line = format!("pipeline {} execution {} {}", detail.pipeline, detail.execution_id, detail.state);
    if let Some(comments) = detail.stop_execution_comments.filter(|c| !c.trim().is_empty()) {
        line.push_str(": ");
        line.push_str(comments.trim());
    }
    let execution = PipelineExecutionId::new(&detail.execution_id).map_err(|e| e.to_string())?;
    Ok(Some(PipelineEnded { pipeline: detail.pipeline, execution, end, detail: line }))
}

/// `detail` of an EventBridge "ECS Deployment State Change" (the fields Convoy reads).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EcsDeploymentStateChange {
    event_name: String,
    #[serde(default)]
    deployment_id: String,
    #[serde(default)]
    reason: String,
}

/// An ECS service deployment changed state: the service (from the event's `resources`), ECS's
/// event name and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeChange {
    pub service: String,
    pub event_name: String,
    /// ECS's reason, with its deployment id: "ecs-svc/123: ECS deployment ... rolling back ...".
    pub reason: String,
    /// ECS says it is rolling back (`reason`), whatever the event name.
    pub rollback: bool,
}

/// Reads an EventBridge "ECS Deployment State Change" (SERVICE_DEPLOYMENT_IN_PROGRESS, _COMPLETED,
/// _FAILED). `Err` when it is not one, or names no service.
pub fn parse_native_change(payload: serde_json::Value) -> Result<NativeChange, String> {
    let event: EventBridgeEvent<EcsDeploymentStateChange> =
        eventbridge_event(payload, "an ECS Deployment State Change", "ECS Deployment State Change", "aws.ecs")?;
    let detail = event.detail;
    if !detail.event_name.starts_with("SERVICE_DEPLOYMENT_") {
        return Err(format!("ECS event {:?} is not a service deployment's", detail.event_name));
    }
    // `arn:aws:ecs:<region>:<account>:service/<cluster>/<service>`
    let service = event
        .resources
        .iter()
        .flatten()
        .find_map(|arn| arn.split_once(":service/").map(|(_, rest)| rest.rsplit('/').next().unwrap_or_default()))
        .filter(|name| !name.is_empty())
        .ok_or_else(|| "the ECS Deployment State Change names no service ARN in resources".to_owned())?;
    let rollback = detail.reason.to_ascii_lowercase().contains("rolling back")
        || detail.reason.to_ascii_lowercase().contains("rollback");
    let reason = match (detail.deployment_id.is_empty(), detail.reason.is_empty()) {
        (true, _) => detail.reason,
        (false, true) => detail.deployment_id,
        (false, false) => format!("{}: {}", detail.deployment_id, detail.reason),
    };
    Ok(NativeChange { service: service.to_owned(), event_name: detail.event_name, reason, rollback })
}

/// What a deployment-changed event says.
#[derive(Debug, PartialEq, Eq)]
pub enum DeploymentChange {
    /// Not ended yet: why nothing is done.
    Running(&'static str),
    /// An ECS service deployment changed: Convoy asks ECS whether the release's ended.
    Native(NativeChange),
    Ended {
        deployment: DeploymentRef,
        end: crate::release::DeploymentEnd,
        detail: String,
    },
}

/// Reads the event by its `source`; `Err` says why it is not one Convoy handles.
pub fn parse_deployment_end(payload: serde_json::Value) -> Result<DeploymentChange, String> {
    let source = payload.get("source").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
    match source.as_str() {
        "aws.codedeploy" => Ok(match parse_deployment_change(payload)? {
            None => DeploymentChange::Running("the deployment has not ended"),
            Some((deployment, end)) => DeploymentChange::Ended {
                deployment: DeploymentRef::CodeDeploy(deployment),
                end,
                detail: String::new(),
            },
        }),
        "aws.codepipeline" => Ok(match parse_pipeline_change(payload)? {
            None => DeploymentChange::Running("the pipeline execution has not ended"),
            Some(ended) => {
                let deployment = DeploymentRef::Pipeline(ended.execution);
                DeploymentChange::Ended { deployment, end: ended.end, detail: ended.detail }
            }
        }),
        "aws.ecs" => Ok(DeploymentChange::Native(parse_native_change(payload)?)),
        _ => {
            Err(format!("expected an event from aws.codedeploy, aws.codepipeline or aws.ecs, got one from {source:?}"))
        }
    }
}

#[cfg(test)]
mod pipeline_tests {
    use super::*;
    use crate::release::DeploymentEnd;

    const FAILED: &str = include_str!("../../tests/fixtures/events/codepipeline-execution-state-change-failed.json");

    fn failed() -> serde_json::Value {
        serde_json::from_str(FAILED).unwrap()
    }

    fn in_state(state: &str) -> serde_json::Value {
        let mut event = failed();
        event["detail"]["state"] = serde_json::json!(state);
        event
    }

    #[test]
    fn a_failed_execution_ends_the_deployment_as_failed() {
        let ended = parse_pipeline_change(failed()).unwrap().unwrap();
        assert_eq!(ended.pipeline, "web-deploy");
        assert_eq!(ended.execution.as_str(), "12345678-1234-5678-abcd-12345678abcd");
        assert_eq!(ended.end, DeploymentEnd::Failed);
        assert_eq!(ended.detail, "pipeline web-deploy execution 12345678-1234-5678-abcd-12345678abcd FAILED");
    }

    #[test]
    fn a_succeeded_execution_ends_the_deployment_as_succeeded() {
        assert_eq!(parse_pipeline_change(in_state("SUCCEEDED")).unwrap().unwrap().end, DeploymentEnd::Succeeded);
    }

    #[test]
    fn a_stopped_superseded_or_canceled_execution_ends_the_deployment_as_stopped() {
        for state in ["STOPPED", "SUPERSEDED", "CANCELED"] {
            let ended = parse_pipeline_change(in_state(state)).unwrap().unwrap();
            assert_eq!(ended.end, DeploymentEnd::Stopped, "{state}");
            assert!(ended.detail.ends_with(state), "{}", ended.detail);
        }
    }

    #[test]
    fn a_stopped_execution_keeps_the_reason_it_was_stopped_for() {
        let mut event = in_state("STOPPED");
        event["detail"]["stop-execution-comments"] = serde_json::json!("Stopping the pipeline for an update");
        let ended = parse_pipeline_change(event).unwrap().unwrap();
        assert!(ended.detail.ends_with("STOPPED: Stopping the pipeline for an update"), "{}", ended.detail);
    }

    #[test]
    fn a_running_execution_has_not_ended() {
        for state in ["STARTED", "RESUMED", "STOPPING"] {
            assert_eq!(parse_pipeline_change(in_state(state)).unwrap(), None, "{state}");
        }
    }

    #[test]
    fn an_undocumented_state_is_refused_with_its_name() {
        assert!(parse_pipeline_change(in_state("PAUSED")).unwrap_err().contains("\"PAUSED\""));
    }

    #[test]
    fn a_codedeploy_event_is_not_a_pipeline_event() {
        let mut event = failed();
        event["source"] = serde_json::json!("aws.codedeploy");
        assert!(parse_pipeline_change(event).unwrap_err().contains("aws.codedeploy"));
    }

    #[test]
    fn a_stage_change_is_not_a_pipeline_execution_change() {
        let mut event = failed();
        event["detail-type"] = serde_json::json!("CodePipeline Stage Execution State Change");
        event["detail"]["stage"] = serde_json::json!("Deploy");
        assert!(parse_pipeline_change(event).unwrap_err().contains("Stage Execution"));
    }

    #[test]
    fn an_event_without_an_execution_id_is_refused() {
        let mut event = failed();
        event["detail"].as_object_mut().unwrap().remove("execution-id");
        assert!(parse_pipeline_change(event).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_push_is_read_with_the_time_of_the_event() {
        let payload = serde_json::json!({
            "version": "0", "id": "1", "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": "2019-11-16T01:54:34Z", "region": "us-west-2", "resources": [],
            "detail": {"result": "SUCCESS", "repository-name": "app", "image-digest": "sha256:ab",
                       "action-type": "PUSH", "image-tag": "v1"}
        });
        let PushEvent::Push(push) = parse_push(payload, at()).unwrap() else { panic!("a push") };
        assert_eq!(push.image.to_string(), "app:v1");
        assert_eq!(push.at.to_rfc3339(), "2019-11-16T01:54:34+00:00");
    }

    #[test]
    fn an_ec2_event_is_not_an_ecr_event() {
        // The documented ECR push, whole, under EC2's detail-type or source: it deserialises, so
        // only the kind check can refuse it.
        let documented: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/events/ecr-image-action-push.json")).unwrap();
        assert!(matches!(parse_push(documented.clone(), at()), Ok(PushEvent::Push(_))));
        for (field, other) in [("detail-type", "EC2 Instance State-change Notification"), ("source", "aws.ec2")] {
            let mut event = documented.clone();
            event[field] = serde_json::json!(other);
            let refused = parse_push(event, at()).unwrap_err();
            assert!(refused.starts_with("expected an ECR Image Action from aws.ecr, got"), "{field}: {refused}");
        }
    }

    #[test]
    fn the_image_functions_two_events_are_told_apart_in_one_reading() {
        let fixture = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        let scan = fixture(include_str!("../../tests/fixtures/events/ecr-image-scan.json"));
        assert!(matches!(parse_image_event(scan, at()), Ok(ImageEvent::Scanned(_))));
        let push = fixture(include_str!("../../tests/fixtures/events/ecr-image-action-push.json"));
        assert!(matches!(parse_image_event(push.clone(), at()), Ok(ImageEvent::Action(PushEvent::Push(_)))));
        let mut delete = push;
        delete["detail"]["action-type"] = serde_json::json!("DELETE");
        assert!(matches!(parse_image_event(delete, at()), Ok(ImageEvent::Action(PushEvent::NotAPush(_)))));
    }

    #[test]
    fn a_notification_key_with_plus_and_percent_is_decoded() {
        assert_eq!(decode_notification_key("releases/web/a+b%2Bc.json").unwrap(), "releases/web/a b+c.json");
    }
}

#[cfg(test)]
mod deployment_change_tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::release::DeploymentEnd;

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
            parse_deployment_end(event).unwrap(),
            DeploymentChange::Ended {
                deployment: DeploymentRef::CodeDeploy("d-ABC123".parse().unwrap()),
                end: DeploymentEnd::Failed,
                detail: String::new()
            }
        );
    }

    #[test]
    fn a_pipeline_event_ends_the_deployment_named_by_its_execution() {
        let DeploymentChange::Ended { deployment, end, detail } = parse_deployment_end(pipeline_failed()).unwrap()
        else {
            panic!("ended")
        };
        assert_eq!(deployment.as_str(), "12345678-1234-5678-abcd-12345678abcd");
        assert_eq!(end, DeploymentEnd::Failed);
        assert!(detail.starts_with("pipeline web-deploy execution "), "{detail}");
    }

    #[test]
    fn a_pipeline_that_started_has_not_ended() {
        let mut event = pipeline_failed();
        event["detail"]["state"] = json!("STARTED");
        assert!(matches!(parse_deployment_end(event), Ok(DeploymentChange::Running(_))));
    }

    #[test]
    fn an_event_from_another_source_is_refused_with_the_source() {
        let event = json!({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}});
        assert!(parse_deployment_end(event).unwrap_err().contains("aws.ec2"));
        assert!(parse_deployment_end(json!("not an object")).is_err());
    }
}

#[cfg(test)]
mod native_tests {
    use super::*;

    const FAILED: &str = include_str!("../../tests/fixtures/events/ecs-deployment-state-change-failed.json");

    fn failed() -> serde_json::Value {
        serde_json::from_str(FAILED).unwrap()
    }

    #[test]
    fn a_failed_service_deployment_names_its_service_and_ecss_reason() {
        let DeploymentChange::Native(change) = parse_deployment_end(failed()).unwrap() else {
            panic!("an ECS Deployment State Change is native")
        };
        assert_eq!(change.service, "servicetest");
        assert_eq!(change.event_name, "SERVICE_DEPLOYMENT_FAILED");
        assert_eq!(change.reason, "ecs-svc/123: ECS deployment circuit breaker: task failed to start.");
        assert!(!change.rollback);
    }

    #[test]
    fn a_rollback_is_told_apart_by_its_reason() {
        let mut event = failed();
        event["detail"]["eventName"] = serde_json::json!("SERVICE_DEPLOYMENT_IN_PROGRESS");
        event["detail"]["reason"] =
            serde_json::json!("ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/122.");
        let change = parse_native_change(event).unwrap();
        assert!(change.rollback);
        assert_eq!(change.event_name, "SERVICE_DEPLOYMENT_IN_PROGRESS");
    }

    #[test]
    fn an_ecs_event_of_another_kind_or_without_a_service_is_refused() {
        let mut task = failed();
        task["detail-type"] = serde_json::json!("ECS Task State Change");
        assert!(parse_native_change(task).unwrap_err().contains("expected an ECS Deployment State Change"));
        let mut anonymous = failed();
        anonymous["resources"] = serde_json::json!([]);
        assert!(parse_native_change(anonymous).unwrap_err().contains("names no service"));
    }
}
