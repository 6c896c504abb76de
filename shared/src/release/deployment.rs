//! The deployment stages of the state machine: the service's deploy lock, the claimed start, the
//! verification on the test listener, the approval of the traffic shift, and how it all ended.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::LockDecision;
use super::{Decision, Effect, Release, Stage, State};
use crate::names::{DeploymentId, HookExecutionId, PipelineExecutionId, ServiceDeploymentArn};

/// ECS native lifecycle stages that come after the approval pause (a `PAUSE` hook at
/// `POST_TEST_TRAFFIC_SHIFT` or `PRE_PRODUCTION_TRAFFIC_SHIFT`): production traffic moves.
const NATIVE_STAGES_PAST_APPROVAL: [&str; 4] =
    ["PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME", "CLEAN_UP"];

/// How CodeDeploy (or ECS) says a deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentEnd {
    Succeeded,
    Failed,
    Stopped,
}

/// How a service deploys: Convoy creates the CodeDeploy deployment itself, starts the service's
/// pipeline, whose deploy action creates it, or updates an ECS service that deploys blue/green
/// natively (`UpdateService`; ECS creates a service deployment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployMethod {
    CodeDeploy,
    CodePipeline,
    #[serde(rename = "ecs-native")]
    EcsNative,
}

impl std::fmt::Display for DeployMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeployMethod::CodeDeploy => "codedeploy",
            DeployMethod::CodePipeline => "codepipeline",
            DeployMethod::EcsNative => "ecs-native",
        })
    }
}

/// The deployment's run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRun {
    pub method: DeployMethod,
    /// The idempotency token of the start (`clientRequestToken`), derived from the release.
    pub token: String,
    pub claims: u32,
    pub claimed_at: DateTime<Utc>,
    /// The CodeDeploy deployment id or pipeline execution id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<DeploymentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// Policy approves the traffic shift at this time (auto approval with a bake time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_approve_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DeploymentEnd>,
    /// With the `codepipeline` method: the bundle and the execution that deploys it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineRun>,
    /// With the `ecs-native` method: what ECS last said of the service deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<NativeProgress>,
    /// What holds production traffic for the approval, and for how long, as checked before the
    /// start (the CodeDeploy group's ready option, or the ECS PAUSE hook's timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_gate: Option<String>,
}

/// An ECS native blue/green service deployment as `DescribeServiceDeployments` last described it:
/// what `convoy status` shows of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeProgress {
    /// `all-at-once`, `linear 10% every 5 min`, `canary 10% for 5 min`, as ECS configured it.
    pub strategy: String,
    /// The deployment's bake time after the production shift, in minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_minutes: Option<i32>,
    /// The share of production traffic (percent, rounded) the target revision is asked to take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_percent: Option<u32>,
    /// ECS's lifecycle stage (`POST_TEST_TRAFFIC_SHIFT`, `PRODUCTION_TRAFFIC_SHIFT`, `BAKE_TIME`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// ECS's status of the service deployment (`IN_PROGRESS`, `SUCCESSFUL`, `ROLLBACK_SUCCESSFUL`, ...).
    pub status: String,
    pub seen_at: DateTime<Utc>,
}

/// A deployment through CodePipeline: the bundle Convoy wrote, and the execution pinned to it.
/// The pipeline's deploy action creates the CodeDeploy deployment; Convoy learns its id from the
/// lifecycle hook, and from then on follows that deployment (`DeploymentRun::id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineRun {
    pub name: String,
    /// `s3://bucket/key` of the bundle.
    pub bundle: String,
    /// The bundle's object version: the execution's pinned source revision.
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<PipelineExecutionId>,
}

impl Release {
    /// The pipeline and execution, while the state follows the pipeline execution (its CodeDeploy
    /// deployment is not known yet).
    /// The CodeDeploy deployment this release follows now (none while it follows a pipeline
    /// execution that has not reached its deployment's hook).
    pub fn codedeploy_deployment(&self) -> Option<DeploymentId> {
        if self.native_deployment().is_some() {
            return None;
        }
        match &self.state {
            State::Deploying { .. } if self.following_pipeline().is_some() => None,
            State::Deploying { deployment } => DeploymentId::new(deployment).ok(),
            State::Verifying { deployment }
            | State::AwaitingApproval { deployment }
            | State::ShiftingTraffic { deployment }
            | State::RollingBack { deployment, .. } => Some(deployment.clone()),
            _ => None,
        }
    }

    /// The ECS service deployment this release follows now (the `ecs-native` method, once started).
    pub fn native_deployment(&self) -> Option<ServiceDeploymentArn> {
        let run = self.deployment.as_ref()?;
        if run.method != DeployMethod::EcsNative {
            return None;
        }
        ServiceDeploymentArn::new(self.state.deployment()?).ok()
    }

    pub fn following_pipeline(&self) -> Option<(&str, &PipelineExecutionId)> {
        let pipeline = self.deployment.as_ref()?.pipeline.as_ref()?;
        let execution = pipeline.execution.as_ref()?;
        (self.state.deployment() == Some(execution.as_str())).then_some((pipeline.name.as_str(), execution))
    }
}

/// The lifecycle hook that asked for verification, and how to answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Hook {
    /// CodeDeploy `AfterAllowTestTraffic`: answered with `PutLifecycleEventHookExecutionStatus`.
    CodeDeploy { deployment_id: DeploymentId, execution_id: HookExecutionId },
    /// ECS native blue/green `POST_TEST_TRAFFIC_SHIFT`: answered by the function's return value.
    EcsNative { execution_id: HookExecutionId, service_deployment: ServiceDeploymentArn },
}

/// One probe of the test listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub at: DateTime<Utc>,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationOutcome {
    pub passed: bool,
    pub reason: String,
}

/// The verification and its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub hook: Hook,
    pub started_at: DateTime<Utc>,
    pub probes: Vec<ProbeResult>,
    /// The metric checks, judged after the probes passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<crate::gates::MetricResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<VerificationOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// Who decided the traffic shift. `by` is the display text (the principal's ARN, "policy (auto)",
/// or why it is unknown); `actor` is what AWS recorded (records written before it have none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalDecision {
    pub approved: bool,
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<super::Attribution>,
}

impl Release {
    /// When the release was opened (its first timeline entry): deploy order follows it.
    pub fn opened_at(&self) -> DateTime<Utc> {
        self.timeline.first().map_or(DateTime::<Utc>::MIN_UTC, |e| e.at)
    }

    fn wants_deploy_lock(&self) -> bool {
        matches!(self.state, State::Ready { next: Stage::Deployment } | State::Queued { .. })
    }

    pub(super) fn on_deploy_lock(&self, decision: &LockDecision, at: DateTime<Utc>) -> Decision {
        if !self.wants_deploy_lock() {
            return Decision::unchanged(format!("the release is {}", self.state));
        }
        let mut next = self.clone();
        match decision {
            LockDecision::Acquired => return Decision::unchanged("the deploy lock is this release's"),
            LockDecision::HeldBy(other) => {
                if self.state == (State::Queued { behind: other.clone() }) {
                    return Decision::unchanged(format!("still queued behind release {other}"));
                }
                next.state = State::Queued { behind: other.clone() };
                next.record(
                    at,
                    "queued",
                    format!("release {other} of {} is deploying; this one waits", self.key.service),
                );
            }
            LockDecision::SupersededBy(newer) => {
                next.state = State::Superseded { by: newer.clone() };
                next.record(at, "superseded", format!("newer release {newer} deploys instead; this one never will"));
            }
        }
        Decision::Changed { release: Box::new(next), effects: Vec::new() }
    }

    pub(super) fn on_deployment_claimed(
        &self,
        method: DeployMethod,
        at: DateTime<Utc>,
        lease: Duration,
        gate: Option<&str>,
    ) -> Decision {
        let mut next = self.clone();
        match (&self.state, &self.deployment) {
            (State::Ready { next: Stage::Deployment } | State::Queued { .. }, _) => {
                next.deployment = Some(DeploymentRun {
                    method,
                    token: self.key.client_token("deployment"),
                    claims: 1,
                    claimed_at: at,
                    id: None,
                    task_definition: None,
                    started_at: None,
                    auto_approve_at: None,
                    ended_at: None,
                    end: None,
                    pipeline: None,
                    native: None,
                    approval_gate: gate.map(str::to_owned),
                });
                next.state = State::StartingDeployment;
                let detail = match gate {
                    Some(gate) => format!("via {method}; {gate}"),
                    None => format!("via {method}"),
                };
                next.record(at, "deployment-starting", detail);
            }
            (State::StartingDeployment, Some(run)) if run.claimed_at + lease <= at => {
                let Some(run) = next.deployment.as_mut() else {
                    return Decision::inconsistent(self, "a deployment run");
                };
                run.claims += 1;
                run.claimed_at = at;
                next.record(
                    at,
                    "deployment-claim-taken-over",
                    format!("the previous handler did not record a deployment within {}s", lease.num_seconds()),
                );
            }
            _ => return Decision::unchanged(format!("the deployment is not due: the release is {}", self.state)),
        }
        Decision::Changed { release: Box::new(next), effects: Vec::new() }
    }

    pub(super) fn on_deployment_started(
        &self,
        id: &DeploymentId,
        task_definition: Option<&str>,
        at: DateTime<Utc>,
    ) -> Decision {
        if self.state != State::StartingDeployment {
            return Decision::unchanged(format!("deployment {id} started, but the release is {}", self.state));
        }
        let mut next = self.clone();
        let Some(run) = next.deployment.as_mut() else { return Decision::inconsistent(self, "a deployment run") };
        run.id = Some(id.clone());
        run.task_definition = task_definition.map(str::to_owned).or(run.task_definition.take());
        run.started_at = Some(at);
        let revision = task_definition.map_or(String::new(), |t| format!(" with {t}"));
        next.state = State::Deploying { deployment: id.to_string() };
        next.record(at, "deployment-started", format!("{id}{revision}"));
        Decision::Changed { release: Box::new(next), effects: Vec::new() }
    }

    /// The `ecs-native` method registers the release's revision before `UpdateService`, and
    /// records it first: a takeover finds the service deployment by it instead of updating again.
    pub(super) fn on_revision_registered(&self, task_definition: &str, at: DateTime<Utc>) -> Decision {
        let (State::StartingDeployment, Some(run)) = (&self.state, &self.deployment) else {
            return Decision::unchanged(format!(
                "revision {task_definition} registered, but the release is {}",
                self.state
            ));
        };
        if let Some(recorded) = &run.task_definition {
            // Only the first revision is ever deployed: a takeover reuses it.
            return Decision::unchanged(format!("the release's revision is {recorded} already"));
        }
        let mut next = self.clone();
        let Some(run) = next.deployment.as_mut() else { return Decision::inconsistent(self, "a deployment run") };
        run.task_definition = Some(task_definition.to_owned());
        next.record(at, "revision-registered", task_definition.to_owned());
        Decision::Changed { release: Box::new(next), effects: Vec::new() }
    }

    /// What ECS says of the service deployment now (strategy, shift, stage); kept for `status`.
    pub(super) fn on_native_observed(&self, progress: &NativeProgress) -> Decision {
        let (Some(run), Some(_)) = (&self.deployment, self.native_deployment()) else {
            return Decision::unchanged(format!("no service deployment is followed: the release is {}", self.state));
        };
        let same = run
            .native
            .as_ref()
            .is_some_and(|known| NativeProgress { seen_at: progress.seen_at, ..known.clone() } == *progress);
        if same {
            return Decision::unchanged("the service deployment is where it was");
        }
        let mut next = self.clone();
        let Some(run) = next.deployment.as_mut() else { return Decision::inconsistent(self, "a deployment run") };
        run.native = Some(progress.clone());
        let mut effects = Vec::new();
        if progress.stage.as_deref().is_some_and(|stage| NATIVE_STAGES_PAST_APPROVAL.contains(&stage)) {
            effects.extend(next.continued_unseen(progress.seen_at).into_iter().flatten());
        }
        Decision::Changed { release: Box::new(next), effects }
    }

    /// CodeDeploy rerouted production traffic while the deployment still runs (its termination
    /// wait started): past READY_WAIT, so approved by someone, whose call Convoy has not seen yet.
    pub(super) fn on_rerouted(&self, deployment: &DeploymentId, at: DateTime<Utc>) -> Decision {
        if self.state.deployment() != Some(deployment.as_str()) {
            return Decision::unchanged(format!(
                "deployment {deployment} is not this release's current one ({})",
                self.state
            ));
        }
        let mut next = self.clone();
        match next.continued_unseen(at) {
            Some(effects) => Decision::Changed { release: Box::new(next), effects },
            None => Decision::unchanged(format!("traffic rerouted, and the release is {} already", self.state)),
        }
    }

    pub(super) fn on_bundle_written(&self, pipeline: &str, bundle: &str, version: &str, at: DateTime<Utc>) -> Decision {
        let (State::StartingDeployment, Some(run)) = (&self.state, &self.deployment) else {
            return Decision::unchanged(format!("bundle version {version} written, but the release is {}", self.state));
        };
        if let Some(written) = &run.pipeline {
            // Only the first bundle is ever started: a takeover reuses it.
            return Decision::unchanged(format!("the bundle is version {} already", written.version));
        }
        let mut next = self.clone();
        let Some(run) = next.deployment.as_mut() else { return Decision::inconsistent(self, "a deployment run") };
        run.pipeline = Some(PipelineRun {
            name: pipeline.to_owned(),
            bundle: bundle.to_owned(),
            version: version.to_owned(),
            execution: None,
        });
        next.record(at, "bundle-written", format!("{bundle} (version {version}) for pipeline {pipeline}"));
        Decision::Changed { release: Box::new(next), effects: Vec::new() }
    }

    pub(super) fn on_pipeline_started(&self, execution: &PipelineExecutionId, at: DateTime<Utc>) -> Decision {
        if self.state != State::StartingDeployment {
            return Decision::unchanged(format!(
                "pipeline execution {execution} started, but the release is {}",
                self.state
            ));
        }
        let mut next = self.clone();
        let Some(run) = next.deployment.as_mut() else { return Decision::inconsistent(self, "a deployment run") };
        let Some(pipeline) = run.pipeline.as_mut() else { return Decision::inconsistent(self, "a written bundle") };
        pipeline.execution = Some(execution.clone());
        run.started_at = Some(at);
        let detail = format!(
            "execution {execution} of pipeline {}, pinned to {} version {}",
            pipeline.name, pipeline.bundle, pipeline.version
        );
        next.state = State::Deploying { deployment: execution.to_string() };
        next.record(at, "pipeline-started", detail);
        Decision::Changed { release: Box::new(next), effects: Vec::new() }
    }

    /// The pipeline execution ended, but the deployment it created still runs (an execution
    /// stopped and abandoned): the release follows that deployment now.
    pub(super) fn on_deployment_adopted(&self, deployment: &DeploymentId, reason: &str, at: DateTime<Utc>) -> Decision {
        let Some((_, execution)) = self.following_pipeline() else {
            return Decision::unchanged(format!("deployment {deployment} not adopted: the release is {}", self.state));
        };
        let detail = format!("CodeDeploy deployment {deployment}, created by pipeline execution {execution}: {reason}");
        let mut next = self.clone();
        let Some(run) = next.deployment.as_mut() else { return Decision::inconsistent(self, "a deployment run") };
        run.id = Some(deployment.clone());
        next.state = State::Deploying { deployment: deployment.to_string() };
        next.record(at, "deployment-adopted", detail);
        Decision::Changed { release: Box::new(next), effects: Vec::new() }
    }

    pub(super) fn on_deployment_impossible(&self, reason: &str, at: DateTime<Utc>) -> Decision {
        if !matches!(self.state, State::StartingDeployment) && !self.wants_deploy_lock() {
            return Decision::unchanged(format!("the release is {}", self.state));
        }
        let mut next = self.clone();
        next.state = State::Failed { stage: Stage::Deployment, reason: reason.to_owned() };
        next.record(at, "deployment-impossible", reason.to_owned());
        Decision::Changed { release: Box::new(next), effects: vec![Effect::ReleaseDeployLock] }
    }

    pub(super) fn on_verification_started(&self, hook: &Hook, at: DateTime<Utc>) -> Decision {
        let pipeline_execution = self.following_pipeline().map(|(_, execution)| execution.to_owned());
        let native = self.deployment.as_ref().is_some_and(|run| run.method == DeployMethod::EcsNative);
        let deployment = match (&self.state, hook) {
            // Convoy's own service deployment: only its hook verifies it (a hook of another
            // service deployment of the service, or of the rollback, is not this release's).
            (State::Deploying { .. } | State::Verifying { .. }, Hook::EcsNative { service_deployment, .. })
                if native && self.state.deployment() != Some(service_deployment.as_str()) =>
            {
                return Decision::unchanged(format!(
                    "the hook is of service deployment {service_deployment}; this release follows {}",
                    self.state.deployment().unwrap_or("none")
                ));
            }
            // The hook can overtake the record of the start (a crash between `UpdateService` and
            // the record): the service deployment it names is the one the claimed start made.
            (State::StartingDeployment, Hook::EcsNative { service_deployment, .. }) if native => {
                match DeploymentId::new(service_deployment.as_str()) {
                    Ok(deployment) => deployment,
                    Err(_) => return Decision::inconsistent(self, "a service deployment ARN"),
                }
            }
            // The pipeline's deploy action created this deployment: from now on it is the one
            // Convoy follows, approves and rolls back.
            (State::Deploying { .. }, Hook::CodeDeploy { deployment_id, .. }) if pipeline_execution.is_some() => {
                deployment_id.clone()
            }
            // CodeDeploy's deployment (a pipeline's execution is handled above); an unreadable id
            // is a record edited by hand.
            (State::Deploying { deployment }, _) => match DeploymentId::new(deployment) {
                Ok(deployment) => deployment,
                Err(_) => return Decision::inconsistent(self, "a deployment id"),
            },
            // The hook can overtake the record of the start (a crashed holder): its deployment id
            // is adopted, as CodeDeploy runs only deployments of this release's group here.
            (State::StartingDeployment, Hook::CodeDeploy { deployment_id, .. })
                if self.deployment.as_ref().is_none_or(|run| run.pipeline.is_none()) =>
            {
                deployment_id.clone()
            }
            (State::Verifying { .. }, _) if self.verification.as_ref().is_some_and(|v| v.hook == *hook) => {
                return Decision::unchanged("this hook's verification is under way");
            }
            (State::Verifying { deployment }, Hook::CodeDeploy { deployment_id, .. })
                if deployment_id != deployment =>
            {
                return Decision::unchanged(format!(
                    "the hook is of deployment {deployment_id}; this release verifies {deployment}"
                ));
            }
            (State::Verifying { deployment }, _) => deployment.clone(),
            _ => return Decision::unchanged(format!("no verification is due: the release is {}", self.state)),
        };
        let mut next = self.clone();
        if let Some(run) = next.deployment.as_mut() {
            run.id.get_or_insert_with(|| deployment.clone());
        }
        if let Some(execution) = pipeline_execution.filter(|e| e.as_str() != deployment.as_str()) {
            next.record(
                at,
                "deployment-adopted",
                format!("CodeDeploy deployment {deployment}, created by pipeline execution {execution}"),
            );
        }
        next.verification = Some(Verification {
            hook: hook.clone(),
            started_at: at,
            probes: Vec::new(),
            metrics: Vec::new(),
            outcome: None,
            finished_at: None,
        });
        next.state = State::Verifying { deployment };
        next.record(at, "verification-started", format!("{} hook", hook_name(hook)));
        Decision::Changed { release: Box::new(next), effects: Vec::new() }
    }

    pub(super) fn on_probed(&self, probes: &[ProbeResult], at: DateTime<Utc>) -> Decision {
        let (State::Verifying { .. }, Some(verification)) = (&self.state, &self.verification) else {
            return Decision::unchanged(format!("no verification runs: the release is {}", self.state));
        };
        let fresh: Vec<&ProbeResult> = probes.iter().filter(|p| !verification.probes.contains(p)).collect();
        if fresh.is_empty() {
            return Decision::unchanged("these probes are recorded already");
        }
        let mut next = self.clone();
        let Some(recorded) = next.verification.as_mut() else { return Decision::inconsistent(self, "a verification") };
        recorded.probes.extend(fresh.into_iter().cloned());
        let _ = at;
        Decision::Changed { release: Box::new(next), effects: Vec::new() }
    }

    pub(super) fn on_verification_finished(
        &self,
        outcome: &VerificationOutcome,
        auto: bool,
        bake_seconds: u64,
        alarms: &[String],
        at: DateTime<Utc>,
    ) -> Decision {
        let State::Verifying { deployment } = &self.state else {
            return Decision::unchanged(format!("no verification runs: the release is {}", self.state));
        };
        let mut next = self.clone();
        if !alarms.is_empty() {
            next.alarms = Some(crate::gates::AlarmGate { watched: alarms.to_vec(), fired: Vec::new() });
        }
        let Some(verification) = next.verification.as_mut() else {
            return Decision::inconsistent(self, "a verification");
        };
        verification.outcome = Some(outcome.clone());
        verification.finished_at = Some(at);
        let mut effects = Vec::new();
        if !outcome.passed {
            next.state = State::RollingBack { deployment: deployment.clone(), reason: outcome.reason.clone() };
            next.record(at, "verification-failed", format!("{}; the deployment rolls back", outcome.reason));
        } else if auto && bake_seconds == 0 {
            next.state = State::ShiftingTraffic { deployment: deployment.clone() };
            next.approval = Some(ApprovalDecision { approved: true, by: "policy (auto)".into(), at, actor: None });
            next.record(at, "verification-passed", outcome.reason.clone());
            next.record(at, "approved", "by policy (auto): production traffic shifts".into());
            effects.push(Effect::ContinueDeployment { deployment: deployment.clone() });
        } else {
            next.state = State::AwaitingApproval { deployment: deployment.clone() };
            next.record(at, "verification-passed", outcome.reason.clone());
            if auto {
                let when = at + Duration::seconds(bake_seconds as i64);
                if let Some(run) = next.deployment.as_mut() {
                    run.auto_approve_at = Some(when);
                }
                next.record(
                    at,
                    "baking",
                    format!("policy approves at {} unless a person decides first", when.to_rfc3339()),
                );
            }
        }
        Decision::Changed { release: Box::new(next), effects }
    }

    pub(super) fn on_decided(&self, approve: bool, by: &str, at: DateTime<Utc>) -> Decision {
        let State::AwaitingApproval { deployment } = &self.state else {
            return Decision::unchanged(format!("nothing awaits a decision: the release is {}", self.state));
        };
        let mut next = self.clone();
        next.approval = Some(ApprovalDecision { approved: approve, by: by.to_owned(), at, actor: None });
        if approve {
            next.state = State::ShiftingTraffic { deployment: deployment.clone() };
            next.record(at, "approved", format!("by {by}: production traffic shifts"));
        } else {
            let reason = format!("rejected by {by}");
            next.state = State::RollingBack { deployment: deployment.clone(), reason: reason.clone() };
            next.record(at, "rejected", format!("{reason}; the deployment rolls back"));
        }
        Decision::Changed { release: Box::new(next), effects: Vec::new() }
    }

    pub(super) fn on_deployment_ended(
        &self,
        deployment: &str,
        end: DeploymentEnd,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Decision {
        if self.state.deployment() != Some(deployment) {
            return Decision::unchanged(format!(
                "deployment {deployment} is not this release's current one ({})",
                self.state
            ));
        }
        let mut next = self.clone();
        let mut effects = vec![Effect::ReleaseDeployLock];
        if let Some(run) = next.deployment.as_mut() {
            run.ended_at = Some(at);
            run.end = Some(end);
        }
        let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
        match (end, &self.state) {
            (DeploymentEnd::Succeeded, _) if self.following_pipeline().is_some() => {
                next.state = State::Succeeded;
                next.record(
                    at,
                    "succeeded",
                    format!(
                        "pipeline execution {deployment} succeeded{detail}, but no deployment of it reached Convoy's \
                         verify hook: deployed without Convoy's verification or approval"
                    ),
                );
            }
            (DeploymentEnd::Succeeded, State::AwaitingApproval { .. }) => {
                // Nobody's call reached Convoy, yet traffic shifted: CloudTrail is asked who made it.
                effects.extend(next.unattributed_decision(true, deployment, at));
                next.state = State::Succeeded;
                next.record(at, "succeeded", format!("deployment {deployment} succeeded{detail}"));
            }
            (DeploymentEnd::Stopped, State::AwaitingApproval { .. }) => {
                // Stopped while it waited for a person: someone rejected it outside Convoy's sight.
                effects.extend(next.unattributed_decision(false, deployment, at));
                let reason = format!("deployment {deployment} ended {end:?}{detail}");
                next.state = State::RolledBack { reason: reason.clone() };
                next.record(at, "rolled-back", reason);
            }
            (DeploymentEnd::Succeeded, _) => {
                next.state = State::Succeeded;
                next.record(at, "succeeded", format!("deployment {deployment} succeeded{detail}"));
            }
            (_, State::RollingBack { reason, .. }) => {
                let verification_failed =
                    self.verification.as_ref().and_then(|v| v.outcome.as_ref()).is_some_and(|o| !o.passed);
                next.state = if verification_failed {
                    State::Failed { stage: Stage::Verification, reason: reason.clone() }
                } else {
                    State::RolledBack { reason: reason.clone() }
                };
                next.record(at, "rolled-back", format!("deployment {deployment} ended {end:?}{detail}"));
            }
            // No CodeDeploy deployment is known: the pipeline ended before one reached the test
            // listener (a failed source or build stage, a task definition ECS refused, ...).
            (_, _) if self.following_pipeline().is_some() => {
                let reason = format!("pipeline execution {deployment} ended {end:?}{detail}");
                next.state = State::Failed { stage: Stage::Deployment, reason: reason.clone() };
                next.record(at, "deployment-failed", reason);
            }
            (_, _) => {
                let reason = format!("deployment {deployment} ended {end:?}{detail}");
                next.state = State::RolledBack { reason: reason.clone() };
                next.record(at, "rolled-back", reason);
            }
        }
        Decision::Changed { release: Box::new(next), effects }
    }
}

fn hook_name(hook: &Hook) -> &'static str {
    match hook {
        Hook::CodeDeploy { .. } => "CodeDeploy AfterAllowTestTraffic",
        Hook::EcsNative { .. } => "ECS POST_TEST_TRAFFIC_SHIFT",
    }
}
