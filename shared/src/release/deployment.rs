//! The deployment stage of the state machine: the service's deploy lock, the claimed start (by
//! the release's deploy method), what ECS says of a native deployment, and how the deployment
//! ended. Verification and approval come in between (`verification.rs`, `approval.rs`).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::LockDecision;
use super::{Context, Decision, Effect, Release, Stage, StageEvent, State, TransitionError};
use crate::names::{DeploymentId, DeploymentRef, PipelineExecutionId, ServiceDeploymentArn};

/// The deployment stage's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// What the service's deploy lock said when this release asked for it.
    Lock { decision: LockDecision, at: DateTime<Utc> },
    /// A handler claims the start of the deployment (see `migration::Event::Claimed`). `gate` says
    /// what holds production traffic for the approval (the CodeDeploy group's ready option, the
    /// ECS PAUSE hook's timeout), as checked before the claim.
    Claimed { method: DeployMethod, at: DateTime<Utc>, lease: Duration, gate: Option<String> },
    /// The deployment was started (or found after a crashed holder started it).
    Started { deployment: DeploymentRef, task_definition: Option<String>, at: DateTime<Utc> },
    /// The release's task-definition revision was registered (the `ecs-native` and `ecs-rolling`
    /// methods record it before `UpdateService`); `previous`: the revision the service ran before
    /// (`ecs-rolling`, which puts it back on request).
    RevisionRegistered { task_definition: String, previous: Option<String>, at: DateTime<Utc> },
    /// The pipeline's deploy bundle was written to its S3 source as object `version`.
    BundleWritten { pipeline: String, bundle: String, version: String, at: DateTime<Utc> },
    /// The pipeline execution that deploys the bundle was started (or found again by its token).
    PipelineStarted { execution: PipelineExecutionId, at: DateTime<Utc> },
    /// The pipeline execution ended while the deployment it created still runs: follow that one.
    Adopted { deployment: DeploymentId, reason: String, at: DateTime<Utc> },
    /// The deployment cannot be started (no settings, a container the service lacks, ...).
    Impossible { reason: String, at: DateTime<Utc> },
    /// ECS described the release's service deployment (strategy, traffic shift, stage).
    NativeObserved { progress: NativeProgress },
    /// CodeDeploy (or ECS, or CodePipeline) says how the deployment ended.
    Ended { deployment: DeploymentRef, end: DeploymentEnd, detail: String, at: DateTime<Utc> },
    /// A handler claims putting the service back on the revision it ran before the release
    /// (`ecs-rolling`), before its `UpdateService`; a claim older than `lease` may be taken over.
    PutBackClaimed { at: DateTime<Utc>, lease: Duration },
    /// The service runs the revision it ran before the release again: through the service
    /// deployment `service_deployment` started, or already (`None`: no update was needed).
    PutBack { service_deployment: Option<ServiceDeploymentArn>, at: DateTime<Utc> },
    /// The group's release this part belongs to failed: the part goes back to what its service ran
    /// before (a deployment in flight is rolled back, a completed rolling update put back).
    RevertRequested { reason: String, at: DateTime<Utc> },
}

impl StageEvent for Event {
    fn apply_to(&self, release: &Release, _: &Context) -> Result<Decision, TransitionError> {
        Ok(match self {
            Event::Lock { decision, at } => release.on_deploy_lock(decision, *at),
            Event::Claimed { method, at, lease, gate } => {
                release.on_deployment_claimed(*method, *at, *lease, gate.as_deref())
            }
            Event::Started { deployment, task_definition, at } => {
                release.on_deployment_started(deployment, task_definition.as_deref(), *at)
            }
            Event::RevisionRegistered { task_definition, previous, at } => {
                release.on_revision_registered(task_definition, previous.as_deref(), *at)
            }
            Event::BundleWritten { pipeline, bundle, version, at } => {
                release.on_bundle_written(pipeline, bundle, version, *at)
            }
            Event::PipelineStarted { execution, at } => release.on_pipeline_started(execution, *at),
            Event::Adopted { deployment, reason, at } => release.on_deployment_adopted(deployment, reason, *at),
            Event::Impossible { reason, at } => release.on_deployment_impossible(reason, *at),
            Event::NativeObserved { progress } => release.on_native_observed(progress),
            Event::Ended { deployment, end, detail, at } => release.on_deployment_ended(deployment, *end, detail, *at),
            Event::PutBackClaimed { at, lease } => release.on_put_back_claimed(*at, *lease),
            Event::PutBack { service_deployment, at } => release.on_put_back(service_deployment.as_ref(), *at),
            Event::RevertRequested { reason, at } => release.on_revert_requested(reason, *at),
        })
    }
}

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
    /// An ECS rolling update (`UpdateService`, deployment controller `ECS`, no load balancer
    /// needed): no test traffic, no verification hook, approval by policy only.
    #[serde(rename = "ecs-rolling")]
    EcsRolling,
}

impl DeployMethod {
    /// Whether a service deployed this way takes traffic through a test listener that Convoy
    /// verifies (blue/green, by any of these methods). Deliberately exhaustive: a method added
    /// later (a rolling update takes none) must say.
    pub fn takes_traffic(self) -> bool {
        match self {
            DeployMethod::CodeDeploy | DeployMethod::CodePipeline | DeployMethod::EcsNative => true,
            // A rolling update replaces tasks in place: no test listener, no verification.
            DeployMethod::EcsRolling => false,
        }
    }
}

impl std::fmt::Display for DeployMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeployMethod::CodeDeploy => "codedeploy",
            DeployMethod::CodePipeline => "codepipeline",
            DeployMethod::EcsNative => "ecs-native",
            DeployMethod::EcsRolling => "ecs-rolling",
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
    /// The deployment that shifts traffic once known: CodeDeploy's (directly, or the one the
    /// pipeline's deploy action created) or ECS's service deployment; never the pipeline execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<DeploymentRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    /// With the `ecs-rolling` method: the revision the service ran before, recorded before
    /// `UpdateService` (putting the service back restores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_task_definition: Option<String>,
    /// With the `ecs-rolling` method: the revision the service runs now, as ECS last said (the
    /// release's once its deployment completed, the previous one after ECS rolled it back or
    /// Convoy put it back; none while it deploys, or after ECS stopped it part-way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_runs: Option<String>,
    /// With the `ecs-rolling` method: putting the service back, once asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub put_back: Option<PutBackRun>,
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

/// Putting a rolling service back on the revision it ran before the release: claimed in the record
/// before the `UpdateService`, so it happens at most once per release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutBackRun {
    /// The revision put back (the run's `previous_task_definition`).
    pub task_definition: String,
    pub claims: u32,
    pub claimed_at: DateTime<Utc>,
    /// The service deployment the put back started (none: the service ran that revision already).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_deployment: Option<ServiceDeploymentArn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<DateTime<Utc>>,
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

impl NativeProgress {
    /// Whether ECS says the service deployment went past the approval pause (production traffic
    /// moves), or ended successfully.
    pub fn past_approval(&self) -> bool {
        self.stage.as_deref().is_some_and(|stage| NATIVE_STAGES_PAST_APPROVAL.contains(&stage))
    }

    /// Whether ECS says the service deployment rolls back or was stopped.
    pub fn rolls_back(&self) -> bool {
        self.status.starts_with("ROLLBACK") || self.status.starts_with("STOP")
    }
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
    /// The CodeDeploy deployment this release follows now (none while it follows a pipeline
    /// execution that has not reached its deployment's hook, or an ECS service deployment).
    pub fn codedeploy_deployment(&self) -> Option<DeploymentId> {
        self.state.deployment()?.codedeploy().cloned()
    }

    /// The ECS service deployment this release follows now (the `ecs-native` method, once started).
    pub fn native_deployment(&self) -> Option<ServiceDeploymentArn> {
        self.state.deployment()?.service().cloned()
    }

    /// The pipeline and execution, while the state follows the pipeline execution (its CodeDeploy
    /// deployment is not known yet).
    pub fn following_pipeline(&self) -> Option<(&str, &PipelineExecutionId)> {
        let execution = self.state.deployment()?.pipeline()?;
        let pipeline = self.deployment.as_ref()?.pipeline.as_ref()?;
        Some((pipeline.name.as_str(), execution))
    }
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
        Decision::changed(next, Vec::new())
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
                    previous_task_definition: None,
                    service_runs: None,
                    put_back: None,
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
        Decision::changed(next, Vec::new())
    }

    pub(super) fn on_deployment_started(
        &self,
        id: &DeploymentRef,
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
        next.state = State::Deploying { deployment: id.clone() };
        next.record(at, "deployment-started", format!("{id}{revision}"));
        Decision::changed(next, Vec::new())
    }

    /// The `ecs-native` and `ecs-rolling` methods register the release's revision before
    /// `UpdateService`, and record it first: a takeover finds the service deployment by it instead
    /// of updating again. `previous` (rolling) is what the service ran, for putting it back.
    pub(super) fn on_revision_registered(
        &self,
        task_definition: &str,
        previous: Option<&str>,
        at: DateTime<Utc>,
    ) -> Decision {
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
        run.previous_task_definition = previous.map(str::to_owned);
        let detail = match previous {
            Some(previous) => format!("{task_definition} (the service runs {previous})"),
            None => task_definition.to_owned(),
        };
        next.record(at, "revision-registered", detail);
        Decision::changed(next, Vec::new())
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
        if progress.past_approval() {
            effects.extend(next.continued_unseen(progress.seen_at).into_iter().flatten());
        }
        Decision::changed(next, effects)
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
        Decision::changed(next, Vec::new())
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
        next.state = State::Deploying { deployment: DeploymentRef::Pipeline(execution.clone()) };
        next.record(at, "pipeline-started", detail);
        Decision::changed(next, Vec::new())
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
        let deployment = DeploymentRef::CodeDeploy(deployment.clone());
        run.id = Some(deployment.clone());
        next.state = State::Deploying { deployment };
        next.record(at, "deployment-adopted", detail);
        Decision::changed(next, Vec::new())
    }

    pub(super) fn on_deployment_impossible(&self, reason: &str, at: DateTime<Utc>) -> Decision {
        if !matches!(self.state, State::StartingDeployment) && !self.wants_deploy_lock() {
            return Decision::unchanged(format!("the release is {}", self.state));
        }
        let mut next = self.clone();
        next.state = State::Failed { stage: Stage::Deployment, reason: reason.to_owned() };
        next.record(at, "deployment-impossible", reason.to_owned());
        Decision::changed(next, vec![Effect::ReleaseDeployLock])
    }

    pub(super) fn on_deployment_ended(
        &self,
        deployment: &DeploymentRef,
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
        let rolling = self.deployment.as_ref().is_some_and(|run| run.method == DeployMethod::EcsRolling);
        if let Some(run) = next.deployment.as_mut() {
            run.ended_at = Some(at);
            run.end = Some(end);
            if rolling {
                // What ECS said last (the observation recorded just before this end).
                let rolled_back = run.native.as_ref().is_some_and(|n| n.status == "ROLLBACK_SUCCESSFUL");
                run.service_runs = match end {
                    DeploymentEnd::Succeeded => run.task_definition.clone(),
                    _ if rolled_back => run.previous_task_definition.clone(),
                    _ => None,
                };
            }
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
            // A rolling update has no verification to blame: it failed, or ECS's circuit breaker or
            // one of the service's alarms rolled it back; the deployment stage failed.
            (_, _) if rolling => {
                let reason = format!("deployment {deployment} ended {end:?}{detail}");
                next.state = State::Failed { stage: Stage::Deployment, reason: reason.clone() };
                next.record(at, "deployment-failed", reason);
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
        Decision::changed(next, effects)
    }
}

impl Release {
    /// A rolling release whose deployment ended may put its service back on the revision it ran
    /// before (the multi-service rollback asks it): claimed once, or taken over after `lease`.
    pub(super) fn on_put_back_claimed(&self, at: DateTime<Utc>, lease: Duration) -> Decision {
        let Some(run) = self.deployment.as_ref().filter(|run| run.method == DeployMethod::EcsRolling) else {
            return Decision::unchanged("only an ecs-rolling release puts its service back");
        };
        let Some(previous) = run.previous_task_definition.as_deref() else {
            return Decision::unchanged("no previous revision is recorded: the deployment never started");
        };
        if !self.state.is_terminal() || run.id.is_none() {
            return Decision::unchanged(format!("the deployment has not ended: the release is {}", self.state));
        }
        let mut next = self.clone();
        let Some(next_run) = next.deployment.as_mut() else { return Decision::inconsistent(self, "a deployment run") };
        match &run.put_back {
            None => {
                next_run.put_back = Some(PutBackRun {
                    task_definition: previous.to_owned(),
                    claims: 1,
                    claimed_at: at,
                    service_deployment: None,
                    done_at: None,
                });
                next.record(at, "put-back-claimed", format!("putting the service back on {previous}"));
            }
            Some(put_back) if put_back.done_at.is_none() && put_back.claimed_at + lease <= at => {
                let Some(claim) = next_run.put_back.as_mut() else { return Decision::inconsistent(self, "a put back") };
                claim.claims += 1;
                claim.claimed_at = at;
                next.record(
                    at,
                    "put-back-claim-taken-over",
                    format!("the previous handler did not record the put back within {}s", lease.num_seconds()),
                );
            }
            Some(put_back) if put_back.done_at.is_some() => {
                return Decision::unchanged(format!(
                    "the service was put back on {} already",
                    put_back.task_definition
                ));
            }
            Some(_) => return Decision::unchanged("another handler puts the service back"),
        }
        Decision::changed(next, Vec::new())
    }

    /// The service runs its previous revision again: the record says so.
    pub(super) fn on_put_back(&self, service_deployment: Option<&ServiceDeploymentArn>, at: DateTime<Utc>) -> Decision {
        let Some(put_back) = self.deployment.as_ref().and_then(|run| run.put_back.as_ref()) else {
            return Decision::unchanged("no put back was claimed");
        };
        if put_back.done_at.is_some() {
            return Decision::unchanged("the service was put back already");
        }
        let mut next = self.clone();
        let Some(run) = next.deployment.as_mut() else { return Decision::inconsistent(self, "a deployment run") };
        let Some(claim) = run.put_back.as_mut() else { return Decision::inconsistent(self, "a put back") };
        claim.service_deployment = service_deployment.cloned();
        claim.done_at = Some(at);
        let revision = claim.task_definition.clone();
        run.service_runs = Some(revision.clone());
        let how = match service_deployment {
            Some(arn) => format!("service deployment {arn}"),
            None => "no update: the service ran it already".to_owned(),
        };
        next.record(at, "put-back", format!("the service runs {revision} again ({how})"));
        Decision::changed(next, Vec::new())
    }
}

impl Release {
    /// The group's release failed (`reason`): a deployment in flight is rolled back (CodeDeploy's
    /// `StopDeployment` with its rollback, ECS's `ContinueServiceDeployment` ROLLBACK); a rolling
    /// update that completed is put back on the revision the service ran before. A rolling update
    /// in flight is left to end (ECS has no rollback request for it): the group asks again once
    /// it has. A blue/green deployment that completed is not undone: nothing is asked.
    pub(super) fn on_revert_requested(&self, reason: &str, at: DateTime<Utc>) -> Decision {
        let Some(run) = &self.deployment else {
            return Decision::unchanged(format!("nothing was deployed: the release is {}", self.state));
        };
        let rolling = run.method == DeployMethod::EcsRolling;
        match &self.state {
            State::Deploying { deployment }
            | State::Verifying { deployment }
            | State::AwaitingApproval { deployment }
            | State::ShiftingTraffic { deployment }
                if !rolling && !matches!(deployment, DeploymentRef::Pipeline(_)) =>
            {
                let mut next = self.clone();
                let reason = format!("the release rolls back: {reason}");
                next.state = State::RollingBack { deployment: deployment.clone(), reason: reason.clone() };
                next.record(at, "rolling-back", reason);
                Decision::changed(next, vec![Effect::RollBack { deployment: deployment.clone() }])
            }
            State::Succeeded if rolling && run.put_back.is_none() && run.previous_task_definition.is_some() => {
                let mut next = self.clone();
                next.record(at, "put-back-requested", format!("the release rolls back: {reason}"));
                Decision::changed(next, vec![Effect::PutBack])
            }
            state => Decision::unchanged(format!("nothing to put back now: the release is {state}")),
        }
    }
}
