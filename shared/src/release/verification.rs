//! The verification stage of the state machine: a lifecycle hook asks for it, probes and metric
//! checks are recorded as they are made, and the outcome moves the release to its approval (or
//! straight to the traffic shift, with auto approval and no bake time) or to its rollback.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{ApprovalDecision, Context, Decision, DeployMethod, Effect, Release, StageEvent, State, TransitionError};
use crate::names::{DeploymentId, DeploymentRef, HookExecutionId, ServiceDeploymentArn};

/// The verification stage's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A lifecycle hook asks Convoy to verify the deployment on the test listener.
    Started { hook: Hook, at: DateTime<Utc> },
    /// Probes were made (more may follow).
    Probed { probes: Vec<ProbeResult>, at: DateTime<Utc> },
    /// The metric checks were judged (after the probes passed).
    MetricsChecked { results: Vec<crate::gates::MetricResult>, at: DateTime<Utc> },
    /// The analysis ended. `auto` says whether policy approves (after `bake_seconds`); `alarms`
    /// gate the traffic shift from now on (an [`ApprovalPlan`]).
    Finished { outcome: VerificationOutcome, auto: bool, bake_seconds: u64, alarms: Vec<String>, at: DateTime<Utc> },
    /// One invocation of `verify` for `hook`, begun at `started`: its probes, metric checks and,
    /// once decided, its outcome, recorded together at `at` (the verification starts with it,
    /// unless under way). A CodeDeploy hook's verdict is then answered (`Effect::AnswerHook`).
    Analysed {
        hook: Hook,
        started: DateTime<Utc>,
        probes: Vec<ProbeResult>,
        metrics: Vec<crate::gates::MetricResult>,
        outcome: Option<VerificationOutcome>,
        plan: ApprovalPlan,
        at: DateTime<Utc>,
    },
    /// The verification of `hook` ran out of the verify function's time: it fails with `reason`
    /// (started at `at` too, when the store was too slow to record the start before). The hook
    /// was answered already.
    TimedOut { hook: Hook, reason: String, at: DateTime<Utc> },
    /// An ECS native hook naming the release's service could not be read: it is answered FAILED
    /// (ECS then rolls the deployment back), and the record says why.
    Unreadable { reason: String, at: DateTime<Utc> },
}

/// The lifecycle stage at which Convoy's verify hook probes an ECS native deployment
/// (`approval_gate::check_native_service` refuses a service whose verify hook is not there).
pub const NATIVE_VERIFY_STAGE: &str = "POST_TEST_TRAFFIC_SHIFT";

/// What follows a passed verification, from the service's settings and the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApprovalPlan {
    /// Policy approves the traffic shift (after `bake_seconds`) instead of a person.
    pub auto: bool,
    pub bake_seconds: u64,
    /// The CloudWatch alarms that gate the traffic shift from now on.
    pub alarms: Vec<String>,
    /// Why policy approves where the settings would ask a person: a rollback inside the
    /// operator's rollback window ([`crate::rollback::Rollback::fast_path`]).
    pub fast_path: Option<String>,
}

impl StageEvent for Event {
    fn apply_to(&self, release: &Release, _: &Context) -> Result<Decision, TransitionError> {
        Ok(match self {
            Event::Started { hook, at } => release.on_verification_started(hook, *at),
            Event::Probed { probes, at } => release.on_probed(probes, *at),
            Event::MetricsChecked { results, at } => release.on_metrics_checked(results, *at),
            Event::Finished { outcome, auto, bake_seconds, alarms, at } => {
                let plan =
                    ApprovalPlan { auto: *auto, bake_seconds: *bake_seconds, alarms: alarms.clone(), fast_path: None };
                release.on_verification_finished(outcome, &plan, *at)
            }
            Event::Analysed { hook, started, probes, metrics, outcome, plan, at } => {
                release.on_analysed(hook, *started, probes, metrics, outcome.as_ref(), plan, *at)
            }
            Event::TimedOut { hook, reason, at } => release.on_timed_out(hook, reason, *at),
            Event::Unreadable { reason, at } => release.on_hook_unreadable(reason, *at),
        })
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

impl Hook {
    /// The deployment whose hook this is.
    pub fn deployment(&self) -> DeploymentRef {
        match self {
            Hook::CodeDeploy { deployment_id, .. } => DeploymentRef::CodeDeploy(deployment_id.clone()),
            Hook::EcsNative { service_deployment, .. } => DeploymentRef::Service(service_deployment.clone()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Hook::CodeDeploy { .. } => "CodeDeploy AfterAllowTestTraffic",
            Hook::EcsNative { .. } => "ECS POST_TEST_TRAFFIC_SHIFT",
        }
    }
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

/// Whether a hook may verify the release now.
enum Start {
    /// Yes: verify `deployment` (the hook may adopt it).
    Due(DeploymentRef),
    /// This hook's verification is already under way.
    UnderWay,
    /// No, and why.
    NotDue(String),
}

impl Release {
    /// Why `hook` is not this release's, if it is not: an ECS native hook meets only a release
    /// that deploys natively, a CodeDeploy hook only one that does not (a foreign hook, answered
    /// FAILED and never verifying the release).
    pub fn foreign_hook(&self, hook: &Hook) -> Option<String> {
        let method = self.deployment.as_ref().map(|run| run.method);
        match (hook, method) {
            (Hook::EcsNative { .. }, Some(method)) if method != DeployMethod::EcsNative => {
                Some(format!("an ECS native hook is not this release's: it deploys by {method}"))
            }
            (Hook::CodeDeploy { .. }, Some(method @ (DeployMethod::EcsNative | DeployMethod::EcsRolling))) => {
                Some(format!("a CodeDeploy hook is not this release's: it deploys by {method}"))
            }
            _ => None,
        }
    }

    /// Whether `hook` starts (or continues) this release's verification.
    fn verification_start(&self, hook: &Hook) -> Start {
        if let Some(why) = self.foreign_hook(hook) {
            return Start::NotDue(why);
        }
        let following_pipeline = self.following_pipeline().is_some();
        let native = self.deployment.as_ref().is_some_and(|run| run.method == DeployMethod::EcsNative);
        let deployment = match (&self.state, hook) {
            (State::Verifying { .. }, _) if self.verification.as_ref().is_some_and(|v| v.hook == *hook) => {
                return Start::UnderWay;
            }
            // Convoy's own service deployment: only its hook verifies it (a hook of another
            // service deployment of the service, or of the rollback, is not this release's).
            (State::Deploying { deployment } | State::Verifying { deployment }, Hook::EcsNative { .. })
                if native && *deployment != hook.deployment() =>
            {
                return Start::NotDue(format!(
                    "the hook is of service deployment {}; this release follows {deployment}",
                    hook.deployment()
                ));
            }
            // The hook can overtake the record of the start (a crash between `UpdateService` and
            // the record): the service deployment it names is the one the claimed start made.
            (State::StartingDeployment, Hook::EcsNative { .. }) if native => hook.deployment(),
            // The pipeline's deploy action created this deployment: from now on it is the one
            // Convoy follows, approves and rolls back.
            (State::Deploying { .. }, Hook::CodeDeploy { .. }) if following_pipeline => hook.deployment(),
            (State::Deploying { deployment }, _) => deployment.clone(),
            // The hook can overtake the record of the start (a crashed holder): its deployment id
            // is adopted, as CodeDeploy runs only deployments of this release's group here.
            (State::StartingDeployment, Hook::CodeDeploy { .. })
                if self.deployment.as_ref().is_none_or(|run| run.pipeline.is_none()) =>
            {
                hook.deployment()
            }
            (State::Verifying { deployment }, Hook::CodeDeploy { .. }) if *deployment != hook.deployment() => {
                return Start::NotDue(format!(
                    "the hook is of deployment {}; this release verifies {deployment}",
                    hook.deployment()
                ));
            }
            (State::Verifying { deployment }, _) => deployment.clone(),
            _ => return Start::NotDue(format!("no verification is due: the release is {}", self.state)),
        };
        Start::Due(deployment)
    }

    /// Starts the verification of `deployment` for `hook` (the state may not say it yet).
    fn start_verification(&mut self, hook: &Hook, deployment: DeploymentRef, at: DateTime<Utc>) {
        let pipeline_execution = self.following_pipeline().map(|(_, execution)| execution.to_owned());
        if let Some(run) = self.deployment.as_mut() {
            run.id.get_or_insert_with(|| deployment.clone());
        }
        if let Some(execution) = pipeline_execution.filter(|e| e.as_str() != deployment.as_str()) {
            self.record(
                at,
                "deployment-adopted",
                format!("CodeDeploy deployment {deployment}, created by pipeline execution {execution}"),
            );
        }
        self.verification = Some(Verification {
            hook: hook.clone(),
            started_at: at,
            probes: Vec::new(),
            metrics: Vec::new(),
            outcome: None,
            finished_at: None,
        });
        self.state = State::Verifying { deployment };
        self.record(at, "verification-started", format!("{} hook", hook.name()));
    }

    /// Notes an unreadable ECS native hook while the release deploys natively (a hook could be
    /// due); at any other time it is not this release's and changes nothing.
    pub(super) fn on_hook_unreadable(&self, reason: &str, at: DateTime<Utc>) -> Decision {
        let native = self.deployment.as_ref().is_some_and(|run| run.method == DeployMethod::EcsNative);
        let deploying =
            matches!(self.state, State::StartingDeployment | State::Deploying { .. } | State::Verifying { .. });
        if !(native && deploying) {
            return Decision::unchanged(format!("no ECS native hook is due: the release is {}", self.state));
        }
        let mut next = self.clone();
        next.record(at, "hook-unreadable", format!("an ECS native hook was answered FAILED: {reason}"));
        Decision::changed(next, Vec::new())
    }

    pub(super) fn on_verification_started(&self, hook: &Hook, at: DateTime<Utc>) -> Decision {
        match self.verification_start(hook) {
            Start::Due(deployment) => {
                let mut next = self.clone();
                next.start_verification(hook, deployment, at);
                Decision::changed(next, Vec::new())
            }
            Start::UnderWay => Decision::unchanged("this hook's verification is under way"),
            Start::NotDue(why) => Decision::unchanged(why),
        }
    }

    /// Adds the probes not recorded yet; `false` when there were none.
    fn add_probes(&mut self, probes: &[ProbeResult]) -> bool {
        let Some(recorded) = self.verification.as_mut() else { return false };
        let fresh: Vec<ProbeResult> = probes.iter().filter(|p| !recorded.probes.contains(p)).cloned().collect();
        recorded.probes.extend(fresh.iter().cloned());
        !fresh.is_empty()
    }

    pub(super) fn on_probed(&self, probes: &[ProbeResult], _at: DateTime<Utc>) -> Decision {
        let (State::Verifying { .. }, Some(_)) = (&self.state, &self.verification) else {
            return Decision::unchanged(format!("no verification runs: the release is {}", self.state));
        };
        let mut next = self.clone();
        if !next.add_probes(probes) {
            return Decision::unchanged("these probes are recorded already");
        }
        Decision::changed(next, Vec::new())
    }

    /// Records the metric checks; `false` when there is nothing new to record.
    fn add_metrics(&mut self, results: &[crate::gates::MetricResult], at: DateTime<Utc>) -> bool {
        let Some(recorded) = self.verification.as_mut() else { return false };
        if recorded.outcome.is_some() || results.is_empty() || recorded.metrics == results {
            return false;
        }
        recorded.metrics = results.to_vec();
        let failed = results.iter().filter(|r| !r.passed).count();
        self.record(
            at,
            "metrics-checked",
            format!("{} of {} metric checks passed", results.len() - failed, results.len()),
        );
        true
    }

    pub(super) fn on_metrics_checked(&self, results: &[crate::gates::MetricResult], at: DateTime<Utc>) -> Decision {
        let (State::Verifying { .. }, Some(_)) = (&self.state, &self.verification) else {
            return Decision::unchanged(format!("no verification runs: the release is {}", self.state));
        };
        let mut next = self.clone();
        if !next.add_metrics(results, at) {
            return Decision::unchanged("these metric checks are recorded already");
        }
        Decision::changed(next, Vec::new())
    }

    /// Ends the verification with `outcome`: the effects of what follows (the policy's continue).
    /// `Err` names what the record lacks.
    fn finish_verification(
        &mut self,
        outcome: &VerificationOutcome,
        plan: &ApprovalPlan,
        at: DateTime<Utc>,
    ) -> Result<Vec<Effect>, &'static str> {
        let State::Verifying { deployment } = &self.state else { return Err("a verification") };
        let deployment = deployment.clone();
        if !plan.alarms.is_empty() {
            self.alarms = Some(crate::gates::AlarmGate { watched: plan.alarms.clone(), fired: Vec::new() });
        }
        let Some(verification) = self.verification.as_mut() else { return Err("a verification") };
        verification.outcome = Some(outcome.clone());
        verification.finished_at = Some(at);
        let mut effects = Vec::new();
        if !outcome.passed {
            self.state = State::RollingBack { deployment, reason: outcome.reason.clone() };
            self.record(at, "verification-failed", format!("{}; the deployment rolls back", outcome.reason));
        } else if plan.auto && plan.bake_seconds == 0 {
            self.state = State::ShiftingTraffic { deployment: deployment.clone() };
            let by = if plan.fast_path.is_some() { "policy (rollback window)" } else { "policy (auto)" };
            self.approval = Some(ApprovalDecision { approved: true, by: by.into(), at, actor: None });
            self.record(at, "verification-passed", outcome.reason.clone());
            let detail = match &plan.fast_path {
                Some(why) => format!("by policy: {why}; production traffic shifts"),
                None => "by policy (auto): production traffic shifts".into(),
            };
            self.record(at, "approved", detail);
            effects.push(Effect::ContinueDeployment { deployment });
        } else {
            self.state = State::AwaitingApproval { deployment };
            self.record(at, "verification-passed", outcome.reason.clone());
            if plan.auto {
                let when = at + Duration::seconds(plan.bake_seconds as i64);
                if let Some(run) = self.deployment.as_mut() {
                    run.auto_approve_at = Some(when);
                }
                let why = plan.fast_path.as_ref().map(|w| format!(" ({w})")).unwrap_or_default();
                self.record(
                    at,
                    "baking",
                    format!("policy approves at {}{why} unless a person decides first", when.to_rfc3339()),
                );
            }
        }
        Ok(effects)
    }

    pub(super) fn on_verification_finished(
        &self,
        outcome: &VerificationOutcome,
        plan: &ApprovalPlan,
        at: DateTime<Utc>,
    ) -> Decision {
        if !matches!(self.state, State::Verifying { .. }) {
            return Decision::unchanged(format!("no verification runs: the release is {}", self.state));
        }
        let mut next = self.clone();
        match next.finish_verification(outcome, plan, at) {
            Ok(effects) => Decision::changed(next, effects),
            Err(missing) => Decision::inconsistent(self, missing),
        }
    }

    /// One invocation's analysis, as one write: the start (unless under way), the new probes and
    /// metric checks, the outcome once decided, and for a CodeDeploy hook its answer.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_analysed(
        &self,
        hook: &Hook,
        started: DateTime<Utc>,
        probes: &[ProbeResult],
        metrics: &[crate::gates::MetricResult],
        outcome: Option<&VerificationOutcome>,
        plan: &ApprovalPlan,
        at: DateTime<Utc>,
    ) -> Decision {
        let mut next = self.clone();
        let mut passed = Vec::new();
        match self.verification_start(hook) {
            Start::Due(deployment) => {
                next.start_verification(hook, deployment, started);
                // Announced on its own: the release is Verifying before its outcome.
                if outcome.is_some() {
                    passed.push(next.clone());
                }
            }
            Start::UnderWay => {}
            Start::NotDue(why) => return Decision::unchanged(why),
        }
        let mut changed = next.add_probes(probes);
        changed |= next.add_metrics(metrics, at);
        let mut effects = Vec::new();
        if let Some(outcome) = outcome {
            effects = match next.finish_verification(outcome, plan, at) {
                Ok(effects) => effects,
                Err(missing) => return Decision::inconsistent(self, missing),
            };
            // Answered once the verdict is stored, before what follows a pass.
            if let Hook::CodeDeploy { deployment_id, execution_id } = hook {
                let answer = Effect::AnswerHook {
                    deployment: deployment_id.clone(),
                    execution: execution_id.clone(),
                    succeeded: outcome.passed,
                };
                effects.insert(0, answer);
            }
            changed = true;
        }
        if !changed && next == *self {
            return Decision::unchanged("these probes are recorded already");
        }
        Decision::Changed { release: Box::new(next), effects, passed }
    }

    pub(super) fn on_timed_out(&self, hook: &Hook, reason: &str, at: DateTime<Utc>) -> Decision {
        let mut next = self.clone();
        let mut passed = Vec::new();
        match self.verification_start(hook) {
            Start::Due(deployment) => {
                next.start_verification(hook, deployment, at);
                passed.push(next.clone());
            }
            Start::UnderWay => {}
            Start::NotDue(why) => return Decision::unchanged(why),
        }
        let outcome = VerificationOutcome { passed: false, reason: reason.to_owned() };
        match next.finish_verification(&outcome, &ApprovalPlan::default(), at) {
            Ok(effects) => Decision::Changed { release: Box::new(next), effects, passed },
            Err(missing) => Decision::inconsistent(self, missing),
        }
    }
}

/// How to verify a release: the probes, the gates after them, and what follows a pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbePlan {
    pub spec: crate::verify::ProbeSpec,
    /// The service's metric checks (judged after the probes pass).
    pub metric_checks: Vec<crate::gates::MetricCheck>,
    /// Policy's part, and the alarm gates.
    pub approval: ApprovalPlan,
}

impl ProbePlan {
    /// Whether anything beyond the probes is judged (metric checks, alarm gates).
    pub fn has_gates(&self) -> bool {
        !self.metric_checks.is_empty() || !self.approval.alarms.is_empty()
    }
}

/// What the opening of a hook decided, before anything is probed.
#[derive(Debug, Clone, PartialEq)]
pub enum Opening {
    /// The hook is answered at once, without probing.
    Settled(Settled),
    /// Verification for this hook is under way: probe with `plan`; `probes` were made before.
    Probe { plan: Box<ProbePlan>, probes: Vec<ProbeResult>, started_at: DateTime<Utc> },
}

/// Why a hook is answered without probing.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// This hook was answered before: the same answer again.
    AnsweredBefore { outcome: VerificationOutcome, probes: usize },
    /// A rollback's re-run of the hooks: let through (the release's evidence stays).
    RollbackRerun,
    /// No verification can run: the hook fails, and this is why.
    Refused(String),
}

impl Release {
    /// Whether the release is past verification and rolling back or ended: a hook that runs now
    /// is a rollback's re-run, which Convoy lets through without probing (the evidence stays).
    pub fn rollback_rerun(&self) -> bool {
        matches!(self.state, State::RollingBack { .. }) || self.state.is_terminal()
    }

    /// The opening both hook forms share: a hook of another deploy method is refused, a hook
    /// answered before is answered the same way, a rollback's re-run is let through, a release
    /// that is not deploying is refused, and otherwise the hook is probed with the plan the
    /// operator's `settings` and the manifest make under the ceiling (the transition then decides
    /// whether it may verify this deployment). `probes` and `started_at` are what the
    /// verification under way for this hook recorded before; `now` starts a new one.
    pub fn hook_opening(
        &self,
        hook: &Hook,
        settings: Option<&crate::settings::ServiceSettings>,
        now: DateTime<Utc>,
    ) -> Opening {
        if let Some(why) = self.foreign_hook(hook) {
            return Opening::Settled(Settled::Refused(why));
        }
        let this_hooks = self.verification.as_ref().filter(|v| v.hook == *hook);
        if let Some(outcome) = this_hooks.and_then(|v| v.outcome.clone()) {
            let probes = this_hooks.map_or(0, |v| v.probes.len());
            return Opening::Settled(Settled::AnsweredBefore { outcome, probes });
        }
        if self.rollback_rerun() {
            return Opening::Settled(Settled::RollbackRerun);
        }
        let Some(settings) = settings else {
            return Opening::Settled(Settled::Refused(format!(
                "no deployment settings for service {}",
                self.key.service
            )));
        };
        let plan = match crate::ceiling::verification_plan(settings, &self.key, self.manifest.as_ref()) {
            Ok(plan) => plan,
            Err(refused) => return Opening::Settled(Settled::Refused(refused.to_string())),
        };
        // No probe for a release that deploys nothing now; which deployment a deploying one may
        // verify is the state machine's to say.
        if !matches!(self.state, State::Deploying { .. } | State::StartingDeployment | State::Verifying { .. }) {
            return Opening::Settled(Settled::Refused(format!(
                "no verification is due: the release is {}",
                self.state
            )));
        }
        // The operator's rollback window approves a confirmed rollback by policy, unless the
        // manifest asked for a person (a manifest may ask for more, never less).
        let asked_for_a_person =
            self.manifest.as_ref().and_then(|m| m.approval) == Some(crate::manifest::Approval::Manual);
        let fast_path = self
            .rollback
            .as_ref()
            // A group's parts share the group's one approval: no window for them (yet).
            .filter(|_| !asked_for_a_person && self.part_of.is_none())
            .and_then(|r| r.fast_path(settings.rollback.approval_window_hours, now));
        let approval = ApprovalPlan {
            auto: plan.approval == crate::manifest::Approval::Auto || fast_path.is_some(),
            bake_seconds: settings.bake_seconds,
            alarms: settings.alarms.clone(),
            fast_path,
        };
        let plan = ProbePlan { spec: plan.probes, metric_checks: settings.metric_checks.clone(), approval };
        let probes = this_hooks.map(|v| v.probes.clone()).unwrap_or_default();
        let started_at = this_hooks.map_or(now, |v| v.started_at);
        Opening::Probe { plan: Box::new(plan), probes, started_at }
    }
}
