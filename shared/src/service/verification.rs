//! Verification on the test listener, from either lifecycle hook. Both forms find their release
//! their own way (CodeDeploy names a deployment, ECS names a service), then share one opening
//! (the pure [`Release::hook_opening`]: a foreign hook, the hook answered before, a rollback's
//! re-run, the probe plan, the recorded start), and differ again in how they probe (CodeDeploy: the whole analysis in one
//! invocation; ECS: one probe per invocation) and how they answer (an API call, a return value).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{Instrument, info, warn};

use super::transition::{Outbox, Outcome};
use super::{Convoy, Report, confirm, release_span};
use crate::error::{ConvoyError, DeployError};
use crate::events::{CARRIED_EXECUTION, CARRIED_RELEASE, Carried};
use crate::names::{DeploymentId, DeploymentRef, HookExecutionId, ReleaseKey, ServiceDeploymentArn};
use crate::ports::Stored;
use crate::release::{
    Hook, NATIVE_VERIFY_STAGE, Opening, ProbePlan, ProbeResult, Release, Settled, VerificationOutcome, verification,
};
use crate::verify::{self, Verdict};

/// How long a hook cut short by the function's deadline may spend noting why in the record (the
/// store may be what was slow); the hook itself is answered first.
pub const OUT_OF_TIME_NOTE_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

const OUT_OF_TIME: &str = "the verification did not decide before the verify function's deadline (slow probes \
     or a slow store); the hook is failed so the deployment rolls back instead of waiting for its own timeout";

/// What an ECS native lifecycle hook returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookReply {
    pub hook_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_back_delay: Option<u64>,
    pub hook_details: Value,
}

impl HookReply {
    fn done(passed: bool, details: Value) -> Self {
        Self { hook_status: if passed { "SUCCEEDED" } else { "FAILED" }, call_back_delay: None, hook_details: details }
    }
}

/// How Convoy answered a CodeDeploy hook (the handler's return value; CodeDeploy itself hears
/// the answer through `PutLifecycleEventHookExecutionStatus`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HookAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentId>,
    pub succeeded: bool,
    pub why: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
}

impl Convoy {
    /// The release's opening for `hook` under the service's settings ([`Release::hook_opening`]).
    fn opening(&self, release: &Release, hook: &Hook, now: DateTime<Utc>) -> Opening {
        let opening = release.hook_opening(hook, self.config.services.get(&release.key.service), now);
        if opening == Opening::Settled(Settled::RollbackRerun) {
            info!("a rollback re-run of the hook: let through without probing");
        }
        opening
    }

    /// The analysis of this invocation, as the state machine's event.
    fn analysed(
        hook: &Hook,
        plan: &ProbePlan,
        probes: Vec<ProbeResult>,
        metrics: Vec<crate::gates::MetricResult>,
        outcome: Option<VerificationOutcome>,
        started: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> verification::Event {
        let plan = plan.approval.clone();
        verification::Event::Analysed { hook: hook.clone(), started, probes, metrics, outcome, plan, at }
    }

    /// CodeDeploy's `AfterAllowTestTraffic` hook: verify, record, answer.
    pub async fn verify_codedeploy(
        &self,
        deployment: &DeploymentId,
        hook_execution: &HookExecutionId,
        now: DateTime<Utc>,
    ) -> Result<HookAnswer, ConvoyError> {
        let outbox = Outbox::new(now);
        let result = self.verify_codedeploy_in(&outbox, deployment, hook_execution, now).await;
        self.publish(outbox).await;
        result
    }

    async fn verify_codedeploy_in(
        &self,
        outbox: &Outbox,
        deployment: &DeploymentId,
        hook_execution: &HookExecutionId,
        now: DateTime<Utc>,
    ) -> Result<HookAnswer, ConvoyError> {
        let (known, origin) = match self.deployments.find_record(&DeploymentRef::CodeDeploy(deployment.clone())).await?
        {
            Some(stored) => (Some(stored), None),
            None => {
                let origin = self.codedeploy.origin(deployment).await?;
                let adopted = match &origin {
                    Some(origin) => match self.adopt_pipeline_deployment(deployment, origin).await? {
                        Some(key) => Some(self.stored(&key).await?),
                        None => None,
                    },
                    None => None,
                };
                (adopted, origin)
            }
        };
        let Some(stored) = known else {
            // Not a deployment Convoy created: a rollback's re-run passes, anything else fails,
            // since nobody told Convoy what version to expect.
            let rollback = origin.is_some_and(|o| o.rollback);
            self.codedeploy.answer_hook(deployment, hook_execution, rollback).await?;
            let why = if rollback { "a rollback re-run: let through" } else { "not a deployment Convoy started" };
            info!(%deployment, "{why}");
            return Ok(HookAnswer {
                release: None,
                deployment: Some(deployment.clone()),
                succeeded: rollback,
                why: why.into(),
                report: None,
            });
        };
        let hook = Hook::CodeDeploy { deployment_id: deployment.clone(), execution_id: hook_execution.clone() };
        let span = release_span(&stored.release.key);
        self.verify_codedeploy_release(outbox, stored, &hook, now).instrument(span).await
    }

    /// The whole analysis in one invocation, recorded in one write whose effects answer the hook
    /// (and continue the deployment, when policy approves without bake time).
    async fn verify_codedeploy_release(
        &self,
        outbox: &Outbox,
        stored: Stored,
        hook: &Hook,
        now: DateTime<Utc>,
    ) -> Result<HookAnswer, ConvoyError> {
        let key = &stored.release.key.clone();
        let Hook::CodeDeploy { deployment_id: deployment, execution_id: hook_execution } = hook else {
            return Err(ConvoyError::BadEvent("a CodeDeploy hook was expected".into()));
        };
        let answer = |succeeded: bool, why: String, report: Option<Report>| HookAnswer {
            release: Some(key.to_string()),
            deployment: None,
            succeeded,
            why,
            report,
        };
        let (plan, started_at) = match self.opening(&stored.release, hook, now) {
            Opening::Probe { plan, started_at, .. } => (plan, started_at),
            Opening::Settled(settled) => {
                let (passed, why) = settled.answer();
                self.codedeploy.answer_hook(deployment, hook_execution, passed).await?;
                return Ok(answer(passed, why, None));
            }
        };
        // The payload is a hint: CodeDeploy must be running this deployment's test traffic hook
        // now, or nothing is probed, recorded or answered. Retryable: an asynchronous invocation is
        // delivered again by Lambda, should CodeDeploy's own record lag its invocation.
        let target = format!("{}:{}", self.config.cluster, key.service);
        let running = self.codedeploy.test_traffic_hook(deployment, &target).await?;
        if running.as_deref() != Some("InProgress") {
            let said = running.unwrap_or_else(|| "unknown to CodeDeploy".into());
            let why = format!(
                "CodeDeploy says the AfterAllowTestTraffic event of {deployment} on {target} is {said}, \
                 not InProgress: not a hook CodeDeploy runs now"
            );
            confirm::refuse(confirm::kind::HOOK, Some(key), &why);
            return Err(DeployError::NotYet(why).into());
        }
        info!(url = %plan.spec.url, count = plan.spec.count, "verifying on the test listener");
        let (probes, verdict) = verify::analyse(&plan.spec, self.prober.as_ref(), Vec::new()).await;
        crate::telemetry::probe_latencies(key, &probes);
        let outcome = match verdict {
            Verdict::Pass(reason) => VerificationOutcome { passed: true, reason },
            Verdict::Fail(reason) => VerificationOutcome { passed: false, reason },
            Verdict::Continue => {
                VerificationOutcome { passed: false, reason: "the analysis ended without a verdict".into() }
            }
        };
        let (outcome, metrics) = match plan.has_gates() {
            true => {
                self.judge_gates(&plan.metric_checks, &plan.approval.alarms, started_at, outcome, Utc::now()).await?
            }
            false => (outcome, Vec::new()),
        };
        let event = Self::analysed(hook, &plan, probes, metrics, Some(outcome.clone()), now, Utc::now());
        let recorded = self.transition(outbox, key, Some(stored), &event).await?;
        match recorded {
            // The transition answered the hook (its first effect), the verdict stored.
            Some(recorded) if recorded.changed => Ok(answer(outcome.passed, outcome.reason, Some(recorded.report()))),
            other => {
                let (passed, why) = unrecorded(other.as_ref(), hook);
                warn!(%why, "the analysis was not recorded");
                self.codedeploy.answer_hook(deployment, hook_execution, passed).await?;
                Ok(answer(passed, why, other.map(|o| o.report())))
            }
        }
    }

    /// The release's record, which a hook that found the release needs.
    async fn stored(&self, key: &ReleaseKey) -> Result<Stored, ConvoyError> {
        self.store.load(key).await?.ok_or(ConvoyError::BadEvent(format!("release {key} has no record")))
    }

    /// ECS native blue/green's `POST_TEST_TRAFFIC_SHIFT` hook: one probe per invocation, the
    /// analysis state in the record, `IN_PROGRESS` until decided. The reply's `hookDetails` carry
    /// the release and the hook execution its verification is keyed on ([`Carried`]), which ECS
    /// passes back on the next invocation, so a re-invocation under another `executionId`
    /// continues the same verification. At any other `stage` nothing is probed.
    pub async fn verify_ecs_native(&self, hook: &NativeHook<'_>, now: DateTime<Utc>) -> Result<HookReply, ConvoyError> {
        let outbox = Outbox::new(now);
        let result = self.verify_ecs_native_in(&outbox, hook, now).await;
        self.publish(outbox).await;
        result
    }

    /// The release that holds the deploy lock of the service an ECS native hook names.
    async fn native_holder(&self, service: &str) -> Result<Option<ReleaseKey>, ConvoyError> {
        let Ok(name) = service.parse::<crate::names::ServiceName>() else { return Ok(None) };
        let holder = self.locks.load(&name).await?.and_then(|(lock, _)| lock.holder);
        Ok(holder.map(|h| ReleaseKey::new(name, h.release)))
    }

    async fn verify_ecs_native_in(
        &self,
        outbox: &Outbox,
        native: &NativeHook<'_>,
        now: DateTime<Utc>,
    ) -> Result<HookReply, ConvoyError> {
        let Some(key) = self.native_holder(native.service).await? else {
            warn!(service = native.service, "no Convoy release deploys this service");
            return Ok(HookReply::done(
                false,
                json!({ "convoy": format!("no Convoy release deploys service {}", native.service) }),
            ));
        };
        let hook = native.keyed_for(&key);
        self.verify_ecs_native_release(outbox, &key, &hook, native.stage, now).instrument(release_span(&key)).await
    }

    async fn verify_ecs_native_release(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        hook: &Hook,
        stage: &str,
        now: DateTime<Utc>,
    ) -> Result<HookReply, ConvoyError> {
        let Hook::EcsNative { execution_id, .. } = hook else {
            return Err(ConvoyError::BadEvent("an ECS native hook was expected".into()));
        };
        let details = |probes: usize| json!({ CARRIED_RELEASE: key.to_string(), CARRIED_EXECUTION: execution_id.to_string(), "probes": probes });
        let stored = self.stored(key).await?;
        // A hook of another deploy method is foreign whatever its stage (the opening says so).
        if stage != NATIVE_VERIFY_STAGE && stored.release.foreign_hook(hook).is_none() {
            return Ok(not_verified_at(key, stage, &stored.release));
        }
        let (plan, mut probes, started_at) = match self.opening(&stored.release, hook, now) {
            Opening::Probe { plan, probes, started_at } => (plan, probes, started_at),
            Opening::Settled(Settled::AnsweredBefore { outcome, probes }) => {
                return Ok(HookReply::done(outcome.passed, details(probes)));
            }
            Opening::Settled(Settled::RollbackRerun) => {
                return Ok(HookReply::done(true, json!({ "release": key.to_string(), "rollback": true })));
            }
            Opening::Settled(Settled::Refused(reason)) => {
                warn!(%reason, "failing the hook");
                return Ok(HookReply::done(false, json!({ "convoy": reason, "release": key.to_string() })));
            }
        };
        let latest = verify::probe_once(&plan.spec.nth(probes.len()), self.prober.as_ref()).await;
        crate::telemetry::probe_latencies(key, std::slice::from_ref(&latest));
        probes.push(latest.clone());
        let outcome = match verify::judge(&plan.spec, &probes) {
            Verdict::Continue => None,
            Verdict::Pass(reason) => Some(VerificationOutcome { passed: true, reason }),
            Verdict::Fail(reason) => Some(VerificationOutcome { passed: false, reason }),
        };
        let (outcome, metrics) = match outcome {
            Some(outcome) if plan.has_gates() => {
                let judged = self.judge_gates(&plan.metric_checks, &plan.approval.alarms, started_at, outcome, now);
                let (outcome, metrics) = judged.await?;
                (Some(outcome), metrics)
            }
            outcome => (outcome, Vec::new()),
        };
        let event = Self::analysed(hook, &plan, vec![latest], metrics, outcome.clone(), now, now);
        let recorded = self.transition(outbox, key, Some(stored), &event).await?;
        if recorded.as_ref().is_none_or(|r| !r.changed) {
            let (passed, why) = unrecorded(recorded.as_ref(), hook);
            warn!(%why, "the probe was not recorded");
            return Ok(HookReply::done(passed, json!({ "convoy": why, "release": key.to_string() })));
        }
        Ok(match outcome {
            None => HookReply {
                hook_status: "IN_PROGRESS",
                call_back_delay: Some(plan.spec.interval.as_secs().max(1)),
                hook_details: details(probes.len()),
            },
            Some(outcome) => HookReply::done(outcome.passed, details(probes.len())),
        })
    }

    /// An ECS native hook whose payload could not be read (`why`), naming `service` as far as it
    /// could be read: answered FAILED, and the reason noted in the record of the release that
    /// deploys the service natively, when there is one.
    pub async fn ecs_native_hook_unreadable(&self, service: &str, why: &str, now: DateTime<Utc>) -> HookReply {
        let outbox = Outbox::new(now);
        let noted = async {
            let Some(key) = self.native_holder(service).await? else { return Ok(None) };
            let event = verification::Event::Unreadable { reason: why.to_owned(), at: now };
            let span = release_span(&key);
            let outcome = self.transition(&outbox, &key, None, &event).instrument(span).await?;
            Ok::<_, ConvoyError>(outcome.filter(|o| o.changed).map(|_| key))
        };
        let noted = tokio::time::timeout(OUT_OF_TIME_NOTE_LIMIT, noted).await;
        self.publish(outbox).await;
        let release = self.noted_release(noted);
        if let Some(key) = &release {
            warn!(release = %key, %why, "an unreadable ECS native hook; the reason is in the record");
        }
        HookReply::done(false, json!({ "convoy": why, "release": release.map(|k| k.to_string()) }))
    }

    /// A CodeDeploy hook whose verification ran out of the function's time: answered Failed at
    /// once, then the reason noted in the release's record when the store answers in time.
    pub async fn codedeploy_hook_out_of_time(
        &self,
        deployment: &DeploymentId,
        hook_execution: &HookExecutionId,
        now: DateTime<Utc>,
    ) -> Result<HookAnswer, ConvoyError> {
        warn!(%deployment, "{OUT_OF_TIME}");
        self.codedeploy.answer_hook(deployment, hook_execution, false).await?;
        let hook = Hook::CodeDeploy { deployment_id: deployment.clone(), execution_id: hook_execution.clone() };
        let outbox = Outbox::new(now);
        let noted = tokio::time::timeout(OUT_OF_TIME_NOTE_LIMIT, async {
            match self.deployments.find(&DeploymentRef::CodeDeploy(deployment.clone())).await? {
                Some(key) => self.note_out_of_time(&outbox, &key, &hook, now).await.map(|()| Some(key)),
                None => Ok(None),
            }
        })
        .await;
        self.publish(outbox).await;
        let release = self.noted_release(noted);
        Ok(HookAnswer {
            release: release.map(|k| k.to_string()),
            deployment: Some(deployment.clone()),
            succeeded: false,
            why: OUT_OF_TIME.into(),
            report: None,
        })
    }

    /// The same for an ECS native hook: the reply is FAILED, the reason noted when possible.
    pub async fn ecs_native_hook_out_of_time(&self, native: &NativeHook<'_>, now: DateTime<Utc>) -> HookReply {
        warn!(service = native.service, "{OUT_OF_TIME}");
        let outbox = Outbox::new(now);
        let noted = tokio::time::timeout(OUT_OF_TIME_NOTE_LIMIT, async {
            let Some(key) = self.native_holder(native.service).await? else { return Ok(None) };
            let hook = native.keyed_for(&key);
            self.note_out_of_time(&outbox, &key, &hook, now).await.map(|()| Some(key))
        })
        .await;
        self.publish(outbox).await;
        let release = self.noted_release(noted);
        HookReply::done(false, json!({ "convoy": OUT_OF_TIME, "release": release.map(|k| k.to_string()) }))
    }

    /// Ends the release's verification of `hook` as failed for running out of time (recording the
    /// start too, when the store was too slow to record it before).
    async fn note_out_of_time(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        hook: &Hook,
        now: DateTime<Utc>,
    ) -> Result<(), ConvoyError> {
        let event = verification::Event::TimedOut { hook: hook.clone(), reason: OUT_OF_TIME.into(), at: now };
        self.transition(outbox, key, None, &event).await.map(|_| ())
    }

    fn noted_release(
        &self,
        noted: Result<Result<Option<ReleaseKey>, ConvoyError>, tokio::time::error::Elapsed>,
    ) -> Option<ReleaseKey> {
        match noted {
            Ok(Ok(key)) => key,
            Ok(Err(err)) => {
                warn!(error = %err, "the record could not note why the hook failed; its deployment's end will be recorded");
                None
            }
            Err(_) => {
                warn!(
                    "the store did not answer in time to note why the hook failed; its deployment's end will be recorded"
                );
                None
            }
        }
    }
}

/// An ECS native hook invocation, as the payload has it.
#[derive(Debug, Clone, Copy)]
pub struct NativeHook<'a> {
    pub execution: &'a HookExecutionId,
    pub stage: &'a str,
    pub service_deployment: &'a ServiceDeploymentArn,
    pub service: &'a str,
    pub carried: Option<&'a Carried>,
}

impl NativeHook<'_> {
    /// The hook as the release `key` keys its verification: under the execution carried in
    /// `hookDetails` when they name this release (a re-invocation of the same hook), else under
    /// the payload's `executionId`. A carried execution that the record never verified starts
    /// nothing the payload's own id could not: the state machine checks the service deployment.
    fn keyed_for(&self, key: &ReleaseKey) -> Hook {
        let carried = self.carried.filter(|c| c.release == key.to_string());
        if carried.is_none() && self.carried.is_some() {
            info!("hookDetails name another release; keyed on the payload's executionId");
        }
        let execution = carried.map_or(self.execution, |c| &c.execution);
        Hook::EcsNative { execution_id: execution.clone(), service_deployment: self.service_deployment.clone() }
    }
}

/// The ECS lifecycle stages a hook may be invoked at (the guide's "Supported lifecycle stages").
const NATIVE_STAGES: [&str; 8] = [
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
];

/// The reply at a stage other than [`NATIVE_VERIFY_STAGE`]: SUCCEEDED, nothing probed, the record
/// untouched. An operator who lists Convoy's verify function at several stages (or ECS re-running
/// TEST_ and PRODUCTION_TRAFFIC_SHIFT during a rollback) expects it to verify where it verifies
/// and not to stand in the way elsewhere: FAILED would roll back every deployment before the test
/// traffic could be probed, or stall a rollback. It skips no check: `check_native_service` refuses
/// a service whose verify hook is not at POST_TEST_TRAFFIC_SHIFT.
fn not_verified_at(key: &ReleaseKey, stage: &str, release: &Release) -> HookReply {
    // The stage is the payload's: named back only when it is one ECS documents.
    let stage = NATIVE_STAGES.iter().find(|s| **s == stage).copied().unwrap_or("an undocumented stage");
    let why = format!("Convoy verifies at {NATIVE_VERIFY_STAGE}; nothing is checked at {stage}");
    info!(stage, state = %release.state, "{why}");
    let rollback = release.rollback_rerun();
    HookReply::done(true, json!({ "release": key.to_string(), "convoy": why, "rollback": rollback }))
}

impl Settled {
    /// How a settled hook is answered, and why.
    fn answer(self) -> (bool, String) {
        match self {
            Settled::AnsweredBefore { outcome, .. } => (outcome.passed, "answered before; answered again".into()),
            Settled::RollbackRerun => (true, "a rollback re-run: let through without probing".into()),
            Settled::Refused(reason) => {
                warn!(%reason, "failing the hook");
                (false, reason)
            }
        }
    }
}

/// How to answer a hook whose analysis the record did not take: with the outcome recorded for
/// this hook by another invocation, else failed, saying why.
fn unrecorded(outcome: Option<&Outcome>, hook: &Hook) -> (bool, String) {
    let Some(outcome) = outcome else { return (false, "the release's record is gone".into()) };
    let this_hooks = outcome.release.verification.as_ref().filter(|v| v.hook == *hook);
    match this_hooks.and_then(|v| v.outcome.as_ref()) {
        Some(recorded) => (recorded.passed, "answered before; answered again".into()),
        None => (false, outcome.note.clone().unwrap_or_else(|| "no verification is due".into())),
    }
}
