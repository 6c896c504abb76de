//! Release events: every state change of a stored release record, as Convoy publishes it to
//! EventBridge (`source: convoy`, `detail-type: Convoy Release State Change`). The record stays the
//! truth; an event is a best-effort announcement of a write that already happened, so a lost one
//! is logged and never fails or blocks the transition (see `service/transition.rs`, `publish`).
//!
//! The detail's schema is documented in docs/reference/events.md ("Release events") and pinned by the tests below.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::release::{Release, State};

/// The `source` of every Convoy event.
pub const SOURCE: &str = "convoy";
/// The `detail-type` of a release's state change.
pub const DETAIL_TYPE: &str = "Convoy Release State Change";
/// The version of the detail's schema; it changes only when a field changes meaning or goes away.
pub const SCHEMA: u32 = 1;
/// The longest reason an event carries (characters); the record keeps the whole of it.
pub const MAX_REASON_CHARS: usize = 2000;

/// One image of the release: the manifest's URI and, once pinned, its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageDigest {
    pub image: String,
    pub digest: Option<String>,
}

/// Places a person can open, and the commands they can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Links {
    /// The CodeDeploy deployment in the AWS console, once there is one.
    pub deployment: Option<String>,
    /// The migration's CloudWatch Logs stream in the AWS console, once ECS named it.
    pub migration_logs: Option<String>,
    /// `convoy status SERVICE RELEASE`.
    pub status: String,
    /// `convoy approve SERVICE RELEASE`.
    pub approve: String,
    /// `convoy reject SERVICE RELEASE`.
    pub reject: String,
}

/// The `detail` of a `Convoy Release State Change` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseChange {
    pub schema: u32,
    pub service: String,
    pub release: String,
    /// The state's name before the write (`null` when the write created the record).
    pub from: Option<String>,
    /// The state's name after it: `Collecting`, `Ready`, `StartingMigration`, `Migrating`,
    /// `Queued`, `StartingDeployment`, `Deploying`, `Verifying`, `AwaitingApproval`,
    /// `ShiftingTraffic`, `RollingBack`, `Succeeded`, `RolledBack`, `Superseded`, `Failed`.
    pub to: String,
    /// The new state as `convoy status` words it, e.g. `Failed at migration: exit code 1`.
    pub state: String,
    /// For `Failed`, the stage it failed at.
    pub stage: Option<String>,
    /// Why: the failure, rollback or supersession reason, else the last timeline entry's detail
    /// (at most [`MAX_REASON_CHARS`]).
    pub reason: String,
    /// The timeline entry that made the change (`deployment-started`, `verification-finished`...).
    pub event: String,
    /// When the change happened (the timeline entry's time).
    pub at: DateTime<Utc>,
    pub terminal: bool,
    /// Per container.
    pub images: BTreeMap<String, ImageDigest>,
    /// The CodeDeploy deployment id (or pipeline execution id while a pipeline starts it).
    pub deployment_id: Option<String>,
    /// Who approved or rejected, once someone (or policy) did.
    pub approver: Option<String>,
    /// `true` approved, `false` rejected, `null` not decided.
    pub approved: Option<bool>,
    /// The image gate (added to schema 1: `null` until the images were judged): its verdict and, per image, one line of what
    /// it saw (`app (…@sha256:…): scan COMPLETE, 1 CRITICAL; CVE-… CRITICAL (…) is above …`).
    pub gate: Option<GateSummary>,
    /// A group's release (added to schema 1: `null` for a release of one service): each service in
    /// the manifest's order, with its method, deployment and state.
    pub services: Option<Vec<ServiceChange>>,
    /// A rollback (added to schema 1: `null` for any other release): `{of, to, schema}`, as
    /// Convoy's records confirmed it.
    pub rollback: Option<RollbackChange>,
    /// The services found changed outside Convoy at the manifest stage (added to schema 1: `null`
    /// when none was): one line each, the live revision, Convoy's last and the action taken.
    pub drift: Option<Vec<String>>,
    pub links: Links,
}

/// What a release event says of a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackChange {
    pub of: String,
    pub to: String,
    /// Where the database schema stands (`database schema stays where <of> left it ...`).
    pub schema: String,
}

/// What a release event says of one service of a group's release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceChange {
    pub service: String,
    /// Its step in the manifest's order, from 0.
    pub step: usize,
    /// `codedeploy`, `codepipeline`, `ecs-native` or `ecs-rolling`.
    pub method: String,
    /// `waiting`, `deploying`, `verifying`, `through`, `live`, `rolling-back`, `rolled-back`, `failed`.
    pub state: String,
    /// Why it is rolling back, rolled back or failed (at most [`MAX_REASON_CHARS`]).
    pub reason: Option<String>,
    /// Its CodeDeploy deployment id, pipeline execution id or ECS service deployment ARN.
    pub deployment_id: Option<String>,
    /// The task definition ARN it ran before the release, and the release's.
    pub previous_revision: Option<String>,
    pub revision: Option<String>,
}

impl ServiceChange {
    fn of(section: &crate::release::ServiceSection) -> Self {
        use crate::group_view::{reason, state_name};
        Self {
            service: section.service.to_string(),
            step: section.step,
            method: section.method.to_string(),
            state: state_name(&section.state).to_owned(),
            reason: reason(&section.state).map(|r| one_line(&bounded(r, MAX_REASON_CHARS))),
            deployment_id: section.deployment.as_ref().map(|d| d.as_str().to_owned()),
            previous_revision: section.previous_revision.clone(),
            revision: section.revision.clone(),
        }
    }
}

/// What a release event says of the image gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateSummary {
    pub verdict: String,
    pub images: Vec<String>,
}

/// The name of a state, as its JSON tag in the record (`AwaitingApproval`).
pub fn state_name(state: &State) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "Unknown".into())
}

impl ReleaseChange {
    /// The change from `from` (`None`: the record was created) to the stored `to`, in `region`.
    pub fn of(from: Option<&State>, to: &Release, region: &str) -> Self {
        let (service, release) = (to.key.service.to_string(), to.key.release.to_string());
        let last = to.timeline.last();
        let (stage, reason) = match &to.state {
            State::Failed { stage, reason } => (Some(stage.to_string()), reason.clone()),
            State::RolledBack { reason } | State::RollingBack { reason, .. } => (None, reason.clone()),
            State::Superseded { by } => (None, format!("superseded by release {by}")),
            _ => (None, last.map(|e| e.detail.clone()).unwrap_or_default()),
        };
        let deployment_id = to
            .state
            .deployment()
            .or_else(|| to.deployment.as_ref().and_then(|d| d.id.as_ref()))
            .map(|id| id.to_string());
        // The console link is CodeDeploy's (a native service deployment has none there).
        let codedeploy_id = to.deployment.as_ref().and_then(|d| d.id.as_ref()).map(|id| id.to_string());
        let migration_logs = to
            .migration
            .as_ref()
            .and_then(|m| m.log.as_ref())
            .map(|log| log_stream_url(region, &log.group, &log.stream));
        Self {
            schema: SCHEMA,
            from: from.map(state_name),
            to: state_name(&to.state),
            state: one_line(&to.state.to_string()),
            stage,
            reason: one_line(&bounded(&reason, MAX_REASON_CHARS)),
            event: last.map(|e| e.event.clone()).unwrap_or_default(),
            at: last.map_or_else(Utc::now, |e| e.at),
            terminal: to.state.is_terminal(),
            images: to
                .images
                .iter()
                .map(|(container, status)| {
                    let image = ImageDigest {
                        image: status.image.uri(),
                        digest: status.digest.as_ref().map(|d| d.to_string()),
                    };
                    (container.to_string(), image)
                })
                .collect(),
            deployment_id,
            approver: to.approval.as_ref().map(|a| a.by.clone()),
            approved: to.approval.as_ref().map(|a| a.approved),
            gate: to.gate.as_ref().map(|g| GateSummary {
                verdict: g.verdict.clone(),
                images: g.images.iter().map(|i| one_line(&bounded(&i.summary(), MAX_REASON_CHARS))).collect(),
            }),
            services: crate::group_view::is_group(to).then(|| to.services.iter().map(ServiceChange::of).collect()),
            rollback: to.rollback.as_ref().map(|r| RollbackChange {
                of: r.of.to_string(),
                to: r.to.to_string(),
                schema: one_line(&r.schema),
            }),
            drift: Some(to.drifted().map(|c| one_line(&bounded(&c.summary(), MAX_REASON_CHARS))).collect::<Vec<_>>())
                .filter(|d| !d.is_empty()),
            links: Links {
                deployment: codedeploy_id.map(|id| deployment_url(region, &id)),
                migration_logs,
                status: format!("convoy status {service} {release}"),
                approve: format!("convoy approve {service} {release}"),
                reject: format!("convoy reject {service} {release}"),
            },
            service,
            release,
        }
    }
}

/// A CodeDeploy deployment in the AWS console.
pub fn deployment_url(region: &str, deployment: &str) -> String {
    format!(
        "https://{region}.console.aws.amazon.com/codesuite/codedeploy/deployments/{}?region={region}",
        console_escape(deployment, false)
    )
}

/// A CloudWatch Logs stream in the AWS console. The console's fragment escapes twice: a
/// percent-encoded character's `%` becomes `$25` (`/ecs/app` → `$252Fecs$252Fapp`).
pub fn log_stream_url(region: &str, group: &str, stream: &str) -> String {
    format!(
        "https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{}/log-events/{}",
        console_escape(group, true),
        console_escape(stream, true)
    )
}

fn console_escape(text: &str, fragment: bool) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    const KEEP: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');
    let encoded = utf8_percent_encode(text, KEEP).to_string();
    if fragment { encoded.replace('%', "$25") } else { encoded }
}

/// `text` on one line: a reason can quote what a manifest or a service wrote, and a notification
/// built from it must not gain lines of someone else's ("Approve: <their command>"). Control and
/// format characters become spaces.
fn one_line(text: &str) -> String {
    let hidden = |c: char| {
        c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if text.chars().any(hidden) {
        text.chars().map(|c| if hidden(c) { ' ' } else { c }).collect()
    } else {
        text.to_owned()
    }
}

fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The documented schema (docs/reference/events.md, "Release events"), as data: each field, its JSON type, and whether it may be null.
pub const SCHEMA_FIELDS: &[(&str, &str, bool)] = &[
    ("schema", "number", false),
    ("service", "string", false),
    ("release", "string", false),
    ("from", "string", true),
    ("to", "string", false),
    ("state", "string", false),
    ("stage", "string", true),
    ("reason", "string", false),
    ("event", "string", false),
    ("at", "string", false),
    ("terminal", "boolean", false),
    ("images", "object", false),
    ("deployment_id", "string", true),
    ("approver", "string", true),
    ("approved", "boolean", true),
    ("gate", "object", true),
    ("services", "array", true),
    ("rollback", "object", true),
    ("drift", "array", true),
    ("links", "object", false),
];
/// The fields of each `services` element, their JSON type, and whether each may be null.
pub const SERVICE_FIELDS: &[(&str, &str, bool)] = &[
    ("service", "string", false),
    ("step", "number", false),
    ("method", "string", false),
    ("state", "string", false),
    ("reason", "string", true),
    ("deployment_id", "string", true),
    ("previous_revision", "string", true),
    ("revision", "string", true),
];
/// The fields of `links`, and whether each may be null (all are strings).
pub const LINK_FIELDS: &[(&str, bool)] =
    &[("deployment", true), ("migration_logs", true), ("status", false), ("approve", false), ("reject", false)];

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks an event's `detail` against the documented schema: no field missing, none undocumented, each
/// of its type. Returns what is wrong.
pub fn schema_violations(detail: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    let Some(object) = detail.as_object() else { return vec!["the detail is not an object".into()] };
    for key in object.keys() {
        if !SCHEMA_FIELDS.iter().any(|(name, ..)| name == key) {
            wrong.push(format!("undocumented field {key}"));
        }
    }
    for (name, kind, nullable) in SCHEMA_FIELDS {
        match object.get(*name) {
            None => wrong.push(format!("missing {name}")),
            Some(Value::Null) if *nullable => {}
            Some(value) if type_of(value) == *kind => {}
            Some(value) => wrong.push(format!("{name} is {}, not {kind}", type_of(value))),
        }
    }
    let links = object.get("links").and_then(Value::as_object).cloned().unwrap_or_default();
    for (name, nullable) in LINK_FIELDS {
        match links.get(*name) {
            Some(Value::String(_)) => {}
            Some(Value::Null) if *nullable => {}
            other => wrong.push(format!("links.{name} is {other:?}")),
        }
    }
    for (container, image) in object.get("images").and_then(Value::as_object).into_iter().flatten() {
        if type_of(&image["image"]) != "string" || !matches!(type_of(&image["digest"]), "string" | "null") {
            wrong.push(format!("images.{container} is {image}"));
        }
    }
    for (i, section) in object.get("services").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let Some(section) = section.as_object() else {
            wrong.push(format!("services[{i}] is not an object"));
            continue;
        };
        for key in section.keys() {
            if !SERVICE_FIELDS.iter().any(|(name, ..)| name == key) {
                wrong.push(format!("undocumented field services[{i}].{key}"));
            }
        }
        for (name, kind, nullable) in SERVICE_FIELDS {
            match section.get(*name) {
                None => wrong.push(format!("missing services[{i}].{name}")),
                Some(Value::Null) if *nullable => {}
                Some(value) if type_of(value) == *kind => {}
                Some(value) => wrong.push(format!("services[{i}].{name} is {}, not {kind}", type_of(value))),
            }
        }
    }
    wrong
}

/// A release event was not published. Never fails a transition; the caller logs it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// EventBridge refused the event (no such bus, not allowed, too large): retrying changes nothing.
    #[error("EventBridge refused the event: {0}")]
    Rejected(String),
    /// EventBridge did not answer, or failed the entry internally: a retry may help.
    #[error("EventBridge is unavailable: {0}")]
    Unavailable(#[source] crate::error::Cause),
}

impl PublishError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, PublishError::Unavailable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::test_support::{apply, key, ready, t};
    use crate::release::{DeployMethod, Hook, ManifestSource, VerificationOutcome, deployment, verification};

    fn source() -> ManifestSource {
        ManifestSource { bucket: "b".into(), key: "releases/web/r1.json".into(), version_id: None, etag: None }
    }

    /// A release whose deployment d-ABC123 passed verification and waits for a person.
    fn awaiting_approval_release() -> Release {
        let claim = deployment::Event::Claimed {
            method: DeployMethod::CodeDeploy,
            at: t(2),
            lease: chrono::Duration::seconds(90),
            gate: None,
        };
        let (release, _) = apply(&ready(false), claim);
        let deployment = "d-ABC123";
        let started = deployment::Event::Started {
            deployment: deployment.parse().unwrap(),
            task_definition: Some("web:42".into()),
            at: t(3),
        };
        let (release, _) = apply(&release, started);
        let hook =
            Hook::CodeDeploy { deployment_id: deployment.parse().unwrap(), execution_id: "exec-1".parse().unwrap() };
        let (release, _) = apply(&release, verification::Event::Started { hook, at: t(4) });
        let outcome = VerificationOutcome { passed: true, reason: "10 of 10 probes passed".into() };
        apply(
            &release,
            verification::Event::Finished { outcome, auto: false, bake_seconds: 0, alarms: Vec::new(), at: t(60) },
        )
        .0
    }

    #[test]
    fn a_reason_quoting_a_manifest_cannot_add_lines_to_a_notification() {
        let mut release = awaiting_approval_release();
        release.state = State::Failed {
            stage: crate::release::Stage::Manifest,
            reason: "unknown field `x\n\nApprove now: evil approve\u{202e}`".into(),
        };
        let change = ReleaseChange::of(None, &release, "us-east-1");
        assert!(!change.reason.contains('\n') && !change.state.contains('\n'), "{change:?}");
        assert!(!change.reason.contains('\u{202e}'), "{change:?}");
        assert_eq!(change.links.approve, "convoy approve web r1", "commands come from the validated names");
    }

    #[test]
    fn a_release_opened_on_a_drifted_service_announces_the_drift_and_one_without_announces_none() {
        use crate::drift::{Deployed, DriftSetting, LiveDefinition, judge};
        let mut release = ready(false);
        let live = LiveDefinition { task_definition: "web:5".into(), since: Some(t(0)) };
        let deployed = Deployed { release: "r0".parse().unwrap(), task_definition: "web:4".into(), live_since: None };
        let check = judge(&release.key.service, &live, Some(deployed.clone()), DriftSetting::Warn, t(1));
        release.note_drift(vec![check], t(1));
        let detail = serde_json::to_value(ReleaseChange::of(None, &release, "us-east-1")).unwrap();
        assert_eq!(schema_violations(&detail), Vec::<String>::new());
        let lines = detail["drift"].as_array().expect("the drift is announced");
        let line = lines[0].as_str().unwrap();
        assert!(line.contains("web:5") && line.contains("web:4") && line.contains("replaces"), "{line}");
        assert_eq!(detail["event"], "drift");

        let mut calm = ready(false);
        let same = LiveDefinition { task_definition: "web:4".into(), since: None };
        calm.note_drift(vec![judge(&calm.key.service, &same, Some(deployed), DriftSetting::Warn, t(1))], t(1));
        let detail = serde_json::to_value(ReleaseChange::of(None, &calm, "us-east-1")).unwrap();
        assert_eq!((detail["drift"].clone(), schema_violations(&detail)), (Value::Null, Vec::<String>::new()));
    }

    #[test]
    fn a_release_awaiting_approval_is_announced_with_its_digests_deployment_and_commands() {
        let release = awaiting_approval_release();
        let change = ReleaseChange::of(
            Some(&State::Verifying { deployment: "d-ABC123".parse().unwrap() }),
            &release,
            "eu-west-1",
        );
        let detail = serde_json::to_value(&change).unwrap();
        assert_eq!(schema_violations(&detail), Vec::<String>::new());
        assert_eq!(detail["from"], "Verifying");
        assert_eq!(detail["to"], "AwaitingApproval");
        assert_eq!(detail["deployment_id"], "d-ABC123");
        assert_eq!(detail["terminal"], false);
        let service = release.key.service.to_string();
        let id = release.key.release.to_string();
        assert_eq!(detail["links"]["approve"], format!("convoy approve {service} {id}"));
        assert_eq!(detail["links"]["reject"], format!("convoy reject {service} {id}"));
        assert_eq!(detail["links"]["status"], format!("convoy status {service} {id}"));
        assert_eq!(
            detail["links"]["deployment"],
            "https://eu-west-1.console.aws.amazon.com/codesuite/codedeploy/deployments/d-ABC123?region=eu-west-1"
        );
        for (container, status) in &release.images {
            let digest = status.digest.as_ref().expect("pinned").to_string();
            assert_eq!(detail["images"][container.to_string()]["digest"], digest.as_str());
        }
    }

    #[test]
    fn a_record_created_failed_is_announced_from_nothing_with_its_reason_and_stage() {
        let release = Release::rejected(key(), source(), "images.app: not an ECR image URI".into(), t(0));
        let detail = serde_json::to_value(ReleaseChange::of(None, &release, "us-east-1")).unwrap();
        assert_eq!(schema_violations(&detail), Vec::<String>::new());
        assert_eq!(detail["from"], Value::Null);
        assert_eq!(detail["to"], "Failed");
        assert_eq!(detail["stage"], "manifest");
        assert_eq!(detail["reason"], "images.app: not an ECR image URI");
        assert_eq!(detail["terminal"], true);
        assert_eq!(detail["deployment_id"], Value::Null);
        assert_eq!(detail["links"]["deployment"], Value::Null);
    }

    #[test]
    fn a_long_reason_is_cut_to_its_bound() {
        let long = "x".repeat(MAX_REASON_CHARS * 3);
        let release = Release::rejected(key(), source(), long, t(0));
        let change = ReleaseChange::of(None, &release, "us-east-1");
        assert_eq!(change.reason.chars().count(), MAX_REASON_CHARS + 1);
        assert!(change.reason.ends_with('…'));
    }

    #[test]
    fn an_event_of_a_groups_release_carries_each_services_state_method_and_deployment_in_order() {
        let release = crate::group_view::tests::shop();
        let detail = serde_json::to_value(ReleaseChange::of(None, &release, "us-east-1")).unwrap();
        assert_eq!(schema_violations(&detail), Vec::<String>::new());
        let rows: Vec<(&str, &str, &str, Option<&str>)> = detail["services"]
            .as_array()
            .expect("services")
            .iter()
            .map(|s| {
                let text = |k: &str| s[k].as_str().unwrap();
                (text("service"), text("method"), text("state"), s["deployment_id"].as_str())
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("web", "codedeploy", "live", Some("d-ABCDEFGHI")),
                ("api", "ecs-native", "rolled-back", None),
                ("batch", "codepipeline", "failed", None),
                ("jobs", "ecs-rolling", "waiting", None)
            ]
        );
        assert_eq!(detail["services"][1]["reason"], "2 of 5 probes failed");
        assert_eq!(detail["services"][1]["revision"], "arn:aws:ecs:us-east-1:123456789012:task-definition/api:8");
        assert_eq!(detail["services"][2]["reason"], "pipeline execution  [2J failed", "a reason stays on one line");
        assert_eq!(detail["services"][3]["reason"], Value::Null);
        assert_eq!(detail["service"], "shop", "the existing fields stay");
    }

    #[test]
    fn an_event_of_a_release_of_one_service_has_no_services() {
        let release = Release::rejected(key(), source(), "bad".into(), t(0));
        let detail = serde_json::to_value(ReleaseChange::of(None, &release, "us-east-1")).unwrap();
        assert_eq!(detail["services"], Value::Null);
    }

    #[test]
    fn a_service_of_a_group_with_a_mistyped_field_is_caught_by_the_schema_check() {
        let release = crate::group_view::tests::shop();
        let mut detail = serde_json::to_value(ReleaseChange::of(None, &release, "us-east-1")).unwrap();
        detail["services"][0]["step"] = Value::String("one".into());
        detail["services"][1]["extra"] = Value::Bool(true);
        assert_eq!(
            schema_violations(&detail),
            vec![
                "services[0].step is string, not number".to_owned(),
                "undocumented field services[1].extra".to_owned()
            ]
        );
    }

    #[test]
    fn the_log_stream_link_escapes_like_the_cloudwatch_console() {
        assert_eq!(
            log_stream_url("ap-northeast-1", "/ecs/laravel-app", "convoy/laravel/0123abcd"),
            "https://ap-northeast-1.console.aws.amazon.com/cloudwatch/home?region=ap-northeast-1\
             #logsV2:log-groups/log-group/$252Fecs$252Flaravel-app/log-events/convoy$252Flaravel$252F0123abcd"
        );
    }

    #[test]
    fn a_detail_with_an_undocumented_or_mistyped_field_is_caught_by_the_schema_check() {
        let release = Release::rejected(key(), source(), "bad".into(), t(0));
        let mut detail = serde_json::to_value(ReleaseChange::of(None, &release, "us-east-1")).unwrap();
        detail["extra"] = Value::Bool(true);
        detail["terminal"] = Value::String("yes".into());
        assert_eq!(
            schema_violations(&detail),
            vec!["undocumented field extra".to_owned(), "terminal is string, not boolean".to_owned()]
        );
    }
}
