//! Per-service operator settings (`CONVOY_SERVICE_SETTINGS`, a JSON object keyed by service):
//! where to deploy, which test listener to probe and how, and the approval policy. None of it
//! comes from a manifest. They serialise back to the same JSON (`convoy init` writes them).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::manifest::Approval;
use crate::names::ServiceName;

/// The budget of one CodeDeploy hook invocation: the verify function's timeout (300 s in
/// template.yaml) less a margin for the record writes and the hook answer.
pub const HOOK_BUDGET: Duration = Duration::from_secs(280);

/// One service's settings, as Convoy uses them. Read from [`RawSettings`]: the explicit form
/// (`"deploy": {"method": …}`) or the one that predates [`DeployTarget`] (`codedeploy`, `pipeline`,
/// `ecs_native` beside each other), which is also how they are written (`convoy init`), so that
/// what [`parse`] reads back is the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "RawSettings")]
pub struct ServiceSettings {
    /// How the service deploys: the method, chosen once here, with what it needs.
    pub deploy: DeployTarget,
    /// The ALB test listener, e.g. `http://internal-alb.example:8080`.
    pub test_listener: String,
    pub probe: ProbeDefaults,
    /// Used when the manifest says nothing.
    pub approval: Approval,
    /// With auto approval: how long the new version takes test traffic before policy approves.
    pub bake_seconds: u64,
    /// CloudWatch metric checks judged after the probes (see [`crate::gates`]).
    pub metric_checks: Vec<crate::gates::MetricCheck>,
    /// CloudWatch alarms that hold the traffic shift and roll the release back while it awaits
    /// approval, bakes, or waits before the blue tasks are terminated.
    pub alarms: Vec<String>,
    /// The image gate: scan findings and signatures every pinned digest must pass before the
    /// migration (none: the gate passes at once, "no image policy").
    pub image_policy: Option<crate::image_policy::ImagePolicy>,
    /// What a release does when the service runs a task definition Convoy did not deploy.
    pub drift: crate::drift::DriftSetting,
    /// What a confirmed rollback of the service may skip ([`RollbackSettings`]).
    pub rollback: RollbackSettings,
}

/// The operator's fast path for rollbacks (`"rollback": {"approval_window_hours": N}`): never the
/// manifest's to set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackSettings {
    /// A confirmed rollback whose reverted release went live less than this many hours ago is
    /// approved by policy (after the verification passed) instead of by a person, as Argo
    /// Rollouts' rollback window skips its steps. Absent: a rollback is approved as any release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_window_hours: Option<u32>,
}

impl RollbackSettings {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// How a service deploys. `"deploy": {"method": "codedeploy" | "codepipeline" | "ecs-native", ...}`;
/// a new method is a new variant here, one in [`DeployMethod`](crate::release::DeployMethod), and
/// its strategy under `service/methods/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "method")]
pub enum DeployTarget {
    /// Convoy creates the CodeDeploy (ECS blue/green) deployment itself.
    #[serde(rename = "codedeploy")]
    CodeDeploy(CodeDeployTarget),
    /// Convoy writes a deploy bundle and starts the pipeline, whose `CodeDeployToECS` action
    /// creates the deployment in `codedeploy`'s group (whose AppSpec Convoy writes into the bundle).
    #[serde(rename = "codepipeline")]
    CodePipeline { codedeploy: CodeDeployTarget, pipeline: PipelineTarget },
    /// Convoy updates a service that deploys through ECS native blue/green (`UpdateService`).
    #[serde(rename = "ecs-native")]
    EcsNative(EcsNativeTarget),
    /// Convoy updates a service without a load balancer (queue workers) by an ECS rolling update
    /// (`UpdateService`); ECS's circuit breaker and the service's alarms roll a failure back.
    #[serde(rename = "ecs-rolling")]
    EcsRolling(EcsRollingTarget),
}

impl DeployTarget {
    pub fn method(&self) -> crate::release::DeployMethod {
        use crate::release::DeployMethod;
        match self {
            DeployTarget::CodeDeploy(_) => DeployMethod::CodeDeploy,
            DeployTarget::CodePipeline { .. } => DeployMethod::CodePipeline,
            DeployTarget::EcsNative(_) => DeployMethod::EcsNative,
            DeployTarget::EcsRolling(_) => DeployMethod::EcsRolling,
        }
    }

    /// The CodeDeploy group the deployments run in (`codedeploy`, `codepipeline`).
    pub fn codedeploy(&self) -> Option<&CodeDeployTarget> {
        match self {
            DeployTarget::CodeDeploy(target) | DeployTarget::CodePipeline { codedeploy: target, .. } => Some(target),
            DeployTarget::EcsNative(_) | DeployTarget::EcsRolling(_) => None,
        }
    }
}

impl ServiceSettings {
    /// The deploy method these settings choose.
    pub fn method(&self) -> crate::release::DeployMethod {
        self.deploy.method()
    }
}

/// The settings as written: `deploy`, or the older `codedeploy` (with `pipeline`) or `ecs_native`
/// (the settings file's schema is this shape; [`parse`] turns it into [`ServiceSettings`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deploy: Option<DeployTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    codedeploy: Option<CodeDeployTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ecs_native: Option<EcsNativeTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pipeline: Option<PipelineTarget>,
    /// Every method but `ecs-rolling` needs it (a rolling service takes no test traffic).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    test_listener: String,
    #[serde(default)]
    probe: ProbeDefaults,
    #[serde(default = "manual")]
    approval: Approval,
    #[serde(default)]
    bake_seconds: u64,
    #[serde(default)]
    metric_checks: Vec<crate::gates::MetricCheck>,
    #[serde(default)]
    alarms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image_policy: Option<crate::image_policy::ImagePolicy>,
    #[serde(default, skip_serializing_if = "RollbackSettings::is_default")]
    rollback: RollbackSettings,
    /// What a release does when the service runs a task definition Convoy did not deploy: `warn`
    /// (the default), `adopt` or `refuse` (docs/reference/settings.md, "Drift").
    #[serde(default, skip_serializing_if = "is_default")]
    drift: crate::drift::DriftSetting,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl From<ServiceSettings> for RawSettings {
    fn from(settings: ServiceSettings) -> Self {
        let (deploy, codedeploy, pipeline, ecs_native) = match settings.deploy {
            DeployTarget::CodeDeploy(target) => (None, Some(target), None, None),
            DeployTarget::CodePipeline { codedeploy, pipeline } => (None, Some(codedeploy), Some(pipeline), None),
            DeployTarget::EcsNative(target) => (None, None, None, Some(target)),
            // No older form: written as it is read.
            rolling @ DeployTarget::EcsRolling(_) => (Some(rolling), None, None, None),
        };
        RawSettings {
            deploy,
            codedeploy,
            ecs_native,
            pipeline,
            test_listener: settings.test_listener,
            probe: settings.probe,
            approval: settings.approval,
            bake_seconds: settings.bake_seconds,
            metric_checks: settings.metric_checks,
            alarms: settings.alarms,
            image_policy: settings.image_policy,
            rollback: settings.rollback,
            drift: settings.drift,
        }
    }
}

impl TryFrom<RawSettings> for ServiceSettings {
    type Error = String;

    fn try_from(raw: RawSettings) -> Result<Self, String> {
        let deploy = match (raw.deploy, raw.codedeploy, raw.ecs_native, raw.pipeline) {
            (Some(deploy), None, None, None) => deploy,
            (Some(_), ..) => return Err("set deploy, or the older codedeploy/pipeline/ecs_native, not both".into()),
            (None, None, None, _) => return Err("set codedeploy (or ecs_native for ECS native blue/green)".into()),
            (None, Some(_), Some(_), _) => {
                return Err("codedeploy and ecs_native both set: choose one deploy method".into());
            }
            (None, None, Some(_), Some(_)) => {
                return Err("pipeline needs codedeploy; ecs_native deploys without one".into());
            }
            (None, Some(codedeploy), None, Some(pipeline)) => DeployTarget::CodePipeline { codedeploy, pipeline },
            (None, Some(codedeploy), None, None) => DeployTarget::CodeDeploy(codedeploy),
            (None, None, Some(native), None) => DeployTarget::EcsNative(native),
        };
        Ok(ServiceSettings {
            deploy,
            test_listener: raw.test_listener,
            probe: raw.probe,
            approval: raw.approval,
            bake_seconds: raw.bake_seconds,
            metric_checks: raw.metric_checks,
            alarms: raw.alarms,
            image_policy: raw.image_policy,
            rollback: raw.rollback,
            drift: raw.drift,
        })
    }
}

/// The lifecycle stages at which ECS lets a `PAUSE` hook wait for Convoy's approval: after the
/// test traffic shift Convoy verifies at, before production traffic moves.
pub const APPROVAL_STAGES: [&str; 2] = ["POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT"];

/// ECS native blue/green: the service's own deployment configuration (strategy `BLUE_GREEN`,
/// lifecycle hooks, bake time) drives the deployment; Convoy starts it with `UpdateService`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EcsNativeTarget {
    /// The verify function's name or ARN: the service must have an `AWS_LAMBDA` hook on it at
    /// `POST_TEST_TRAFFIC_SHIFT`.
    pub verify_function: String,
    /// Where the service's `PAUSE` hook waits for `convoy approve` (one of [`APPROVAL_STAGES`]).
    #[serde(default = "approval_stage")]
    pub approval_stage: String,
}

/// An ECS rolling update: the service's deployment controller is `ECS` with the rolling strategy,
/// and its own `deploymentConfiguration` (circuit breaker, alarms) decides a failure and rolls it
/// back. The cluster is Convoy's (`CONVOY_CLUSTER`) and the ECS service is named as the Convoy
/// service, as with every method: the grants in template.yaml and the "ECS Deployment State
/// Change" events name them so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EcsRollingTarget {}

/// Why `ecs-rolling` settings cannot hold what they ask for, if they cannot: a rolling update
/// has no test traffic and no pause, so nothing could verify it or hold it for a person's
/// approval (docs/reference/settings.md, "ecs-rolling").
fn check_rolling(settings: &ServiceSettings) -> Result<(), String> {
    let refuse = |what: &str| Err(format!("deploy.method ecs-rolling {what}"));
    if settings.approval != Approval::Auto {
        return refuse(
            "needs approval auto: a rolling update has no pause where a person's approval could hold the new tasks",
        );
    }
    if !settings.test_listener.is_empty() {
        return refuse("takes no test traffic: drop test_listener");
    }
    if settings.bake_seconds != 0 || !settings.metric_checks.is_empty() || !settings.alarms.is_empty() {
        return refuse(
            "has no verification to bake or check: drop bake_seconds, metric_checks and alarms (the service's \
             deploymentConfiguration.alarms roll a rolling update back)",
        );
    }
    Ok(())
}

fn approval_stage() -> String {
    "PRE_PRODUCTION_TRAFFIC_SHIFT".into()
}

fn manual() -> Approval {
    Approval::Manual
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeDeployTarget {
    pub application: String,
    pub deployment_group: String,
    /// The container and port the load balancer routes to (the AppSpec's `LoadBalancerInfo`).
    pub container: String,
    pub port: u16,
    /// The verify function's name or ARN, named in the AppSpec's `AfterAllowTestTraffic` hook.
    pub verify_function: String,
}

/// A CodePipeline (V2) whose S3 source action reads Convoy's deploy bundle and whose
/// `CodeDeployToECS` action deploys it. The source must not start executions by itself (no
/// EventBridge rule or polling on the object): Convoy starts each execution, pinned to the version
/// it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineTarget {
    pub name: String,
    /// The S3 source action's bucket (versioned) and object key.
    pub source_bucket: String,
    pub source_key: String,
    /// The S3 source action's name, for `sourceRevisions`.
    pub source_action: String,
    /// The pipeline-level variable that receives the release id.
    #[serde(default = "release_variable")]
    pub release_variable: String,
}

fn release_variable() -> String {
    "CONVOY_RELEASE".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeDefaults {
    pub count: u32,
    pub interval_ms: u64,
    pub failure_limit: u32,
    pub consecutive_successes: u32,
    pub timeout_ms: u64,
    pub path: String,
    pub expect_status: u16,
    /// A response header that may carry the version instead of the body.
    pub expect_header: Option<String>,
}

impl Default for ProbeDefaults {
    fn default() -> Self {
        Self {
            count: 10,
            interval_ms: 3000,
            failure_limit: 1,
            consecutive_successes: 0,
            timeout_ms: 2000,
            path: "/".into(),
            expect_status: 200,
            expect_header: Some("x-release".into()),
        }
    }
}

/// Reads and checks the settings; the message names the service and the field.
pub fn parse(json: &str) -> Result<BTreeMap<ServiceName, ServiceSettings>, String> {
    let raw: BTreeMap<String, RawSettings> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut settings = BTreeMap::new();
    for (service, value) in raw {
        let name = ServiceName::new(&service).map_err(|e| e.to_string())?;
        let value = ServiceSettings::try_from(value)
            .and_then(|value| check(&value).map(|()| value))
            .map_err(|e| format!("service {service}: {e}"))?;
        settings.insert(name, value);
    }
    Ok(settings)
}

fn check(settings: &ServiceSettings) -> Result<(), String> {
    if let DeployTarget::EcsRolling(_) = settings.deploy {
        return check_rolling(settings);
    }
    let listener = &settings.test_listener;
    let rest = listener
        .strip_prefix("http://")
        .or_else(|| listener.strip_prefix("https://"))
        .ok_or_else(|| format!("test_listener {listener:?} must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains(['?', '#', '@']) {
        return Err(format!(
            "test_listener {listener:?} must be scheme://host[:port][/path], without user, query or fragment"
        ));
    }
    let probe = &settings.probe;
    if !(1..=100).contains(&probe.count) {
        return Err(format!("probe.count must be 1 to 100, not {}", probe.count));
    }
    let budget = probe.count as u64 * (probe.interval_ms + probe.timeout_ms);
    if budget > HOOK_BUDGET.as_millis() as u64 {
        return Err(format!(
            "probe.count × (interval + timeout) is {} s; a CodeDeploy hook invocation allows {} s",
            budget / 1000,
            HOOK_BUDGET.as_secs()
        ));
    }
    crate::verify::probe_url(listener, &probe.path)?;
    if let DeployTarget::CodePipeline { pipeline, .. } = &settings.deploy {
        check_pipeline(pipeline)?;
    }
    if let DeployTarget::EcsNative(native) = &settings.deploy {
        if native.verify_function.trim().is_empty() {
            return Err("ecs_native.verify_function must name the verify function".into());
        }
        if !APPROVAL_STAGES.contains(&native.approval_stage.as_str()) {
            return Err(format!(
                "ecs_native.approval_stage {:?} must be one of {} (a PAUSE hook after verification, before production \
                 traffic moves)",
                native.approval_stage,
                APPROVAL_STAGES.join(", ")
            ));
        }
    }
    crate::gates::check_settings(&settings.metric_checks, &settings.alarms)?;
    Ok(())
}

/// The names CodePipeline accepts (its API patterns), so a typo fails at start-up, not mid-release.
fn check_pipeline(pipeline: &PipelineTarget) -> Result<(), String> {
    let names = [
        ("pipeline.name", &pipeline.name, "A-Za-z0-9.@-_", 100),
        ("pipeline.source_action", &pipeline.source_action, "A-Za-z0-9.@-_", 100),
        ("pipeline.release_variable", &pipeline.release_variable, "A-Za-z0-9@-_", 128),
    ];
    for (field, value, allowed, max) in names {
        let fits = |c: char| c.is_ascii_alphanumeric() || "@-_".contains(c) || (c == '.' && allowed.contains('.'));
        if value.is_empty() || value.len() > max || !value.chars().all(fits) {
            return Err(format!("{field} {value:?} must be 1 to {max} of [{allowed}]"));
        }
    }
    if pipeline.source_bucket.is_empty() || pipeline.source_key.is_empty() || pipeline.source_key.ends_with('/') {
        return Err("pipeline.source_bucket and pipeline.source_key must name one object".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"web": {"codedeploy": {"application": "convoy", "deployment_group": "web",
        "container": "nginx", "port": 80, "verify_function": "convoy-verify"},
        "test_listener": "http://internal-alb:8080"}}"#;

    #[test]
    fn settings_take_defaults_for_the_probe_and_approval() {
        let settings = parse(GOOD).unwrap();
        let web = &settings[&"web".parse().unwrap()];
        assert_eq!(web.approval, Approval::Manual);
        assert_eq!(web.probe.count, 10);
        assert_eq!(web.deploy.codedeploy().unwrap().port, 80);
        assert_eq!(web.method(), crate::release::DeployMethod::CodeDeploy);
    }

    #[test]
    fn a_listener_that_is_not_a_url_is_refused() {
        let err = parse(&GOOD.replace("http://internal-alb:8080", "internal-alb:8080")).unwrap_err();
        assert!(err.contains("service web: test_listener"), "{err}");
    }

    #[test]
    fn a_probe_plan_longer_than_a_hook_invocation_is_refused() {
        let json =
            GOOD.replace(r#""test_listener""#, r#""probe": {"count": 100, "interval_ms": 5000}, "test_listener""#);
        assert!(parse(&json).unwrap_err().contains("allows 280 s"));
    }

    #[test]
    fn a_pipeline_takes_the_default_release_variable() {
        let json = GOOD.replace(
            r#""test_listener""#,
            r#""pipeline": {"name": "web-deploy", "source_bucket": "b", "source_key": "web/bundle.zip",
                "source_action": "Bundle"}, "test_listener""#,
        );
        let settings = parse(&json).unwrap();
        let DeployTarget::CodePipeline { pipeline, .. } = settings[&"web".parse().unwrap()].deploy.clone() else {
            panic!("not the pipeline method")
        };
        assert_eq!(pipeline.release_variable, "CONVOY_RELEASE");
        assert_eq!(pipeline.source_action, "Bundle");
    }

    #[test]
    fn a_pipeline_variable_codepipeline_would_refuse_is_refused_at_start_up() {
        let json = GOOD.replace(
            r#""test_listener""#,
            r#""pipeline": {"name": "web-deploy", "source_bucket": "b", "source_key": "k",
                "source_action": "Bundle", "release_variable": "convoy.release"}, "test_listener""#,
        );
        assert!(parse(&json).unwrap_err().contains("pipeline.release_variable"));
    }

    const NATIVE: &str = r#"{"web": {"ecs_native": {"verify_function": "convoy-verify"},
        "test_listener": "http://internal-alb:8080"}}"#;

    #[test]
    fn ecs_native_settings_choose_the_native_method_and_wait_before_production_traffic() {
        let settings = parse(NATIVE).unwrap();
        let web = &settings[&"web".parse().unwrap()];
        assert_eq!(web.method(), crate::release::DeployMethod::EcsNative);
        let DeployTarget::EcsNative(native) = &web.deploy else { panic!("not the native method") };
        assert_eq!(native.approval_stage, "PRE_PRODUCTION_TRAFFIC_SHIFT");
    }

    #[test]
    fn an_approval_stage_ecs_cannot_pause_at_is_refused_with_the_field_named() {
        let json =
            NATIVE.replace(r#""convoy-verify""#, r#""convoy-verify", "approval_stage": "PRODUCTION_TRAFFIC_SHIFT""#);
        let err = parse(&json).unwrap_err();
        assert!(err.contains("service web: ecs_native.approval_stage \"PRODUCTION_TRAFFIC_SHIFT\""), "{err}");
    }

    #[test]
    fn settings_with_both_or_neither_deploy_target_are_refused() {
        let both = NATIVE.replace(
            r#""test_listener""#,
            r#""codedeploy": {"application": "a", "deployment_group": "g", "container": "c", "port": 80,
                "verify_function": "v"}, "test_listener""#,
        );
        assert!(parse(&both).unwrap_err().contains("choose one deploy method"));
        let neither = NATIVE.replace(r#""ecs_native": {"verify_function": "convoy-verify"},"#, "");
        assert!(parse(&neither).unwrap_err().contains("set codedeploy"));
    }

    #[test]
    fn a_metric_check_without_a_query_is_refused_naming_the_service_and_field() {
        let json = GOOD.replace(
            r#""test_listener""#,
            r#""metric_checks": [{"name": "p95", "pass_if": "<= 0.5"}], "alarms": ["web-5xx"], "test_listener""#,
        );
        let err = parse(&json).unwrap_err();
        assert!(err.starts_with("service web: metric_checks[0] (p95) needs either"), "{err}");
    }

    #[test]
    fn an_unknown_field_is_refused() {
        assert!(
            parse(&GOOD.replace(r#""port": 80"#, r#""port": 80, "prot": 1"#)).unwrap_err().contains("unknown field")
        );
    }

    #[test]
    fn the_explicit_deploy_form_chooses_each_method() {
        let codedeploy = r#"{"web": {"deploy": {"method": "codedeploy", "application": "convoy",
            "deployment_group": "web", "container": "nginx", "port": 80, "verify_function": "convoy-verify"},
            "test_listener": "http://internal-alb:8080"}}"#;
        let web = &parse(codedeploy).unwrap()[&"web".parse().unwrap()];
        assert_eq!(web.method(), crate::release::DeployMethod::CodeDeploy);
        assert_eq!(web.deploy.codedeploy().unwrap().deployment_group, "web");

        let pipeline = r#"{"web": {"deploy": {"method": "codepipeline", "codedeploy": {"application": "convoy",
            "deployment_group": "web", "container": "nginx", "port": 80, "verify_function": "convoy-verify"},
            "pipeline": {"name": "web-deploy", "source_bucket": "b", "source_key": "web/bundle.zip",
            "source_action": "Bundle"}}, "test_listener": "http://internal-alb:8080"}}"#;
        let web = &parse(pipeline).unwrap()[&"web".parse().unwrap()];
        assert_eq!(web.method(), crate::release::DeployMethod::CodePipeline);

        let native = r#"{"web": {"deploy": {"method": "ecs-native", "verify_function": "convoy-verify"},
            "test_listener": "http://internal-alb:8080"}}"#;
        let web = &parse(native).unwrap()[&"web".parse().unwrap()];
        assert_eq!(web.method(), crate::release::DeployMethod::EcsNative);
    }

    #[test]
    fn the_older_form_reads_as_the_same_deploy_target_as_the_explicit_one() {
        let older = parse(GOOD).unwrap();
        let explicit = parse(&GOOD.replace(r#""codedeploy": {"#, r#""deploy": {"method": "codedeploy", "#)).unwrap();
        assert_eq!(older, explicit);
    }

    #[test]
    fn deploy_beside_an_older_deploy_field_is_refused() {
        let both = GOOD.replace(
            r#""test_listener""#,
            r#""deploy": {"method": "ecs-native", "verify_function": "v"}, "test_listener""#,
        );
        assert!(parse(&both).unwrap_err().contains("set deploy, or the older"));
    }

    #[test]
    fn an_unknown_method_is_refused() {
        let json = r#"{"web": {"deploy": {"method": "rolling"}, "test_listener": "http://internal-alb:8080"}}"#;
        assert!(parse(json).unwrap_err().contains("unknown variant `rolling`"), "{}", parse(json).unwrap_err());
    }

    #[test]
    fn settings_are_written_in_the_older_form_and_read_back_the_same() {
        for json in [GOOD, NATIVE] {
            let settings = parse(json).unwrap();
            let written = serde_json::to_value(&settings).unwrap();
            assert!(written["web"].get("deploy").is_none(), "{written}");
            assert_eq!(parse(&written.to_string()).unwrap(), settings);
        }
    }

    const ROLLING: &str = r#"{"worker": {"deploy": {"method": "ecs-rolling"}, "approval": "auto"}}"#;

    #[test]
    fn an_ecs_rolling_service_needs_no_test_listener_and_is_written_as_it_is_read() {
        let settings = parse(ROLLING).unwrap();
        let worker = &settings[&"worker".parse().unwrap()];
        assert_eq!(worker.method(), crate::release::DeployMethod::EcsRolling);
        let written = serde_json::to_value(&settings).unwrap();
        assert_eq!(written["worker"]["deploy"]["method"], "ecs-rolling", "{written}");
        assert!(written["worker"].get("test_listener").is_none(), "{written}");
        assert_eq!(parse(&written.to_string()).unwrap(), settings);
    }

    #[test]
    fn an_ecs_rolling_service_with_a_persons_approval_is_refused_with_why() {
        let manual = ROLLING.replace(r#""auto""#, r#""manual""#);
        let why = parse(&manual).unwrap_err();
        assert!(why.contains("service worker: deploy.method ecs-rolling needs approval auto"), "{why}");
        let why = parse(r#"{"worker": {"deploy": {"method": "ecs-rolling"}}}"#).unwrap_err();
        assert!(why.contains("needs approval auto"), "the default, manual, is refused too: {why}");
    }

    #[test]
    fn an_ecs_rolling_service_with_a_test_listener_a_bake_time_or_alarms_is_refused() {
        let listener = ROLLING.replace(r#""approval""#, r#""test_listener": "http://alb:8080", "approval""#);
        assert!(parse(&listener).unwrap_err().contains("takes no test traffic"));
        let bake = ROLLING.replace(r#""approval""#, r#""bake_seconds": 60, "approval""#);
        assert!(parse(&bake).unwrap_err().contains("no verification to bake"));
        let alarms = ROLLING.replace(r#""approval""#, r#""alarms": ["errors"], "approval""#);
        assert!(parse(&alarms).unwrap_err().contains("deploymentConfiguration.alarms"));
    }

    #[test]
    fn every_other_method_still_needs_its_test_listener() {
        let without = GOOD.replace(r#""test_listener": "http://internal-alb:8080""#, r#""approval": "auto""#);
        assert!(parse(&without).unwrap_err().contains("test_listener"), "a codedeploy service without one");
    }
}
