//! Verification on the test listener, from either lifecycle hook. Both forms find their release
//! their own way (CodeDeploy names a deployment, ECS names a service), then share one opening
//! ([`Convoy::open_verification`]: the hook answered before, a rollback's re-run, the probe plan,
//! the recorded start), and differ again in how they probe (CodeDeploy: the whole analysis in one
//! invocation; ECS: one probe per invocation) and how they answer (an API call, a return value).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{Instrument, info, warn};

use super::{Convoy, Report, Updated, release_span, update};
use crate::error::{ConvoyError, DeployError};
use crate::manifest::Approval;
use crate::names::{DeploymentId, DeploymentRef, HookExecutionId, ReleaseKey, ServiceDeploymentArn};
use crate::ports::DeploymentOrigin;
use crate::release::{Event, Hook, ProbeResult, Release, State, VerificationOutcome};
use crate::verify::{self, ProbeSpec, Verdict};

/// How much earlier than Convoy's record of the execution's start a deployment may have been
/// created (clocks differ) and still be taken for the execution's.
pub(super) const ADOPTION_CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(2);

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

/// How to verify a release: the probes, and what follows a pass.
#[derive(Debug, Clone, PartialEq)]
struct ProbePlan {
    spec: ProbeSpec,
    /// Policy approves the traffic shift (after `bake_seconds`) instead of a person.
    auto_approve: bool,
    bake_seconds: u64,
    /// The service's metric checks (judged after the probes pass) and alarm gates.
    metric_checks: Vec<crate::gates::MetricCheck>,
    alarms: Vec<String>,
}

/// What the shared opening of a hook decided.
enum Opening {
    /// The hook is answered at once, without probing.
    Settled(Settled),
    /// Verification for this hook is under way: probe with `plan`; `probes` were made before.
    Probe { plan: Box<ProbePlan>, probes: Vec<ProbeResult>, started_at: DateTime<Utc> },
}

/// Why a hook is answered without probing.
enum Settled {
    /// This hook was answered before: the same answer again.
    AnsweredBefore { outcome: VerificationOutcome, probes: usize },
    /// A rollback's re-run of the hooks: let through (the release's evidence stays).
    RollbackRerun,
    /// No verification can run: the hook fails, and this is why.
    Refused(String),
}

/// Whether the release is past verification and rolling back or ended: a hook that runs now is
/// a rollback's re-run, which Convoy lets through without probing (the release's evidence stays).
fn rollback_rerun(release: &Release) -> bool {
    matches!(release.state, State::RollingBack { .. }) || release.state.is_terminal()
}

impl Convoy {
    /// The probe plan for a release: the operator's listener and defaults, the manifest's path and
    /// expectations. `Err` when the service has no settings.
    fn probe_plan(&self, release: &Release) -> Result<ProbePlan, String> {
        let settings = self
            .config
            .services
            .get(&release.key.service)
            .ok_or_else(|| format!("no deployment settings for service {}", release.key.service))?;
        let manifest = release.manifest.as_ref();
        let spec = crate::ceiling::probe_spec(settings, &release.key, manifest).map_err(|e| e.to_string())?;
        let auto_approve =
            crate::ceiling::approval(settings, &release.key, manifest).map_err(|e| e.to_string())? == Approval::Auto;
        Ok(ProbePlan {
            spec,
            auto_approve,
            bake_seconds: settings.bake_seconds,
            metric_checks: settings.metric_checks.clone(),
            alarms: settings.alarms.clone(),
        })
    }

    /// The opening both hook forms share, once they know the release: a hook answered before is
    /// answered the same way, a rollback's re-run is let through, and otherwise the verification
    /// is recorded as started for this hook (or refused, with the reason).
    async fn open_verification(
        &self,
        key: &ReleaseKey,
        hook: &Hook,
        now: DateTime<Utc>,
    ) -> Result<Opening, ConvoyError> {
        let release =
            self.store.load(key).await?.ok_or(ConvoyError::BadEvent(format!("release {key} has no record")))?.release;
        let this_hooks = release.verification.as_ref().filter(|v| v.hook == *hook);
        if let Some(outcome) = this_hooks.and_then(|v| v.outcome.clone()) {
            let probes = this_hooks.map_or(0, |v| v.probes.len());
            return Ok(Opening::Settled(Settled::AnsweredBefore { outcome, probes }));
        }
        if rollback_rerun(&release) {
            info!("a rollback re-run of the hook: let through without probing");
            return Ok(Opening::Settled(Settled::RollbackRerun));
        }
        let plan = match self.probe_plan(&release) {
            Ok(plan) => plan,
            Err(reason) => return Ok(Opening::Settled(Settled::Refused(reason))),
        };
        let event = Event::VerificationStarted { hook: hook.clone(), at: now };
        let started = update(self, key, |r| r.apply(&event)).await?;
        let verifies_this_hook = |release: &Release| {
            matches!(release.state, State::Verifying { .. })
                && release.verification.as_ref().is_some_and(|v| v.hook == *hook)
        };
        match started {
            Some(started) if verifies_this_hook(&started.release) => {
                let verification = started.release.verification;
                let started_at = verification.as_ref().map_or(now, |v| v.started_at);
                let probes = verification.map(|v| v.probes).unwrap_or_default();
                Ok(Opening::Probe { plan: Box::new(plan), probes, started_at })
            }
            other => {
                let state = other.map_or("gone".to_owned(), |u| u.release.state.to_string());
                Ok(Opening::Settled(Settled::Refused(format!("no verification is due: the release is {state}"))))
            }
        }
    }

    /// Records the probes and, when the analysis decided, its outcome.
    async fn record_analysis(
        &self,
        key: &ReleaseKey,
        plan: &ProbePlan,
        probes: Vec<ProbeResult>,
        metrics: Vec<crate::gates::MetricResult>,
        outcome: Option<&VerificationOutcome>,
        at: DateTime<Utc>,
    ) -> Result<Option<Updated>, ConvoyError> {
        let mut events = vec![Event::Probed { probes, at }];
        if !metrics.is_empty() {
            events.push(Event::MetricsChecked { results: metrics, at });
        }
        if let Some(outcome) = outcome {
            events.push(Event::VerificationFinished {
                outcome: outcome.clone(),
                auto: plan.auto_approve,
                bake_seconds: plan.bake_seconds,
                alarms: plan.alarms.clone(),
                at,
            });
        }
        update(self, key, |r| r.apply_all(&events)).await
    }

    /// CodeDeploy's `AfterAllowTestTraffic` hook: verify, record, answer.
    pub async fn verify_codedeploy(
        &self,
        deployment: &DeploymentId,
        hook_execution: &HookExecutionId,
        now: DateTime<Utc>,
    ) -> Result<HookAnswer, ConvoyError> {
        let (known, origin) = match self.deployments.find(&DeploymentRef::CodeDeploy(deployment.clone())).await? {
            Some(key) => (Some(key), None),
            None => {
                let origin = self.deployer.origin(deployment).await?;
                let adopted = match &origin {
                    Some(origin) => self.adopt_pipeline_deployment(deployment, origin).await?,
                    None => None,
                };
                (adopted, origin)
            }
        };
        let Some(key) = known else {
            // Not a deployment Convoy created: a rollback's re-run passes, anything else fails,
            // since nobody told Convoy what version to expect.
            let rollback = origin.is_some_and(|o| o.rollback);
            self.deployer.answer_hook(deployment, hook_execution, rollback).await?;
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
        self.verify_codedeploy_release(&key, &hook, now).instrument(release_span(&key)).await
    }

    async fn verify_codedeploy_release(
        &self,
        key: &ReleaseKey,
        hook: &Hook,
        now: DateTime<Utc>,
    ) -> Result<HookAnswer, ConvoyError> {
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
        let (plan, started_at) = match self.open_verification(key, hook, now).await? {
            Opening::Probe { plan, started_at, .. } => (plan, started_at),
            Opening::Settled(settled) => {
                let (passed, why) = match settled {
                    Settled::AnsweredBefore { outcome, .. } => {
                        (outcome.passed, "answered before; answered again".into())
                    }
                    Settled::RollbackRerun => (true, "a rollback re-run: let through without probing".into()),
                    Settled::Refused(reason) => {
                        warn!(%reason, "failing the hook");
                        (false, reason)
                    }
                };
                self.deployer.answer_hook(deployment, hook_execution, passed).await?;
                return Ok(answer(passed, why, None));
            }
        };
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
        let (outcome, metrics) =
            self.judge_gates(&plan.metric_checks, &plan.alarms, started_at, outcome, Utc::now()).await?;
        let updated = self.record_analysis(key, &plan, probes, metrics, Some(&outcome), Utc::now()).await?;
        // Answer first: the traffic shift (auto approval) can only follow a passed hook.
        self.deployer.answer_hook(deployment, hook_execution, outcome.passed).await?;
        let report = match updated {
            Some(updated) => Some(self.finish_and_perform(updated, now).await?),
            None => None,
        };
        Ok(answer(outcome.passed, outcome.reason, report))
    }

    /// A deployment that a pipeline's deploy action created: CodeDeploy names only its group.
    /// It belongs to the release that holds the deploy lock of the service deploying through that
    /// group, when that release follows its pipeline execution, and CodePipeline reports this
    /// deployment as that execution's (or, before it reports any, the deployment was created
    /// after the execution started: an older, abandoned deployment is never taken for it).
    async fn adopt_pipeline_deployment(
        &self,
        deployment: &DeploymentId,
        origin: &DeploymentOrigin,
    ) -> Result<Option<ReleaseKey>, ConvoyError> {
        if origin.rollback {
            return Ok(None); // a rollback's re-run of the hooks: never a release's deployment
        }
        let services = self.config.services.iter().filter(|(_, settings)| {
            settings.pipeline.is_some()
                && settings.codedeploy.as_ref().is_some_and(|target| {
                    target.application == origin.application && target.deployment_group == origin.deployment_group
                })
        });
        for (service, _) in services {
            let Some((lock, _)) = self.locks.load(service).await? else { continue };
            let Some(holder) = lock.holder else { continue };
            let key = ReleaseKey { service: service.clone(), release: holder.release };
            let Some(stored) = self.store.load(&key).await? else { continue };
            let release = &stored.release;
            let Some((pipeline, execution)) = release.following_pipeline() else { continue };
            let started = release.deployment.as_ref().and_then(|run| run.started_at);
            let created_after_start = match (origin.created_at, started) {
                (Some(created), Some(started)) => created >= started - ADOPTION_CLOCK_SKEW,
                _ => false,
            };
            let belongs = match self.pipelines.deployment_of(pipeline, execution).await {
                Ok(Some(reported)) => reported == *deployment,
                Ok(None) => created_after_start,
                Err(DeployError::Rejected(why)) => {
                    warn!(%why, "CodePipeline does not say which deployment the execution created");
                    created_after_start
                }
                Err(err) => return Err(err.into()),
            };
            if belongs {
                info!(%deployment, release = %key, %execution, "a deployment of the release's pipeline execution: adopted");
                self.deployments.note(&DeploymentRef::CodeDeploy(deployment.clone()), &key).await?;
                return Ok(Some(key));
            }
            info!(%deployment, release = %key, %execution, "not a deployment of the release's pipeline execution");
        }
        Ok(None)
    }

    /// ECS native blue/green's `POST_TEST_TRAFFIC_SHIFT` hook: one probe per invocation, the
    /// analysis state in the record (and its count in `hookDetails`), `IN_PROGRESS` until decided.
    pub async fn verify_ecs_native(
        &self,
        hook_execution: &HookExecutionId,
        service_deployment: &ServiceDeploymentArn,
        service: &str,
        now: DateTime<Utc>,
    ) -> Result<HookReply, ConvoyError> {
        let holder = match service.parse::<crate::names::ServiceName>() {
            Ok(name) => self
                .locks
                .load(&name)
                .await?
                .and_then(|(lock, _)| lock.holder)
                .map(|h| ReleaseKey::new(name, h.release)),
            Err(_) => None,
        };
        let Some(key) = holder else {
            warn!(service, "no Convoy release deploys this service");
            return Ok(HookReply::done(
                false,
                json!({ "convoy": format!("no Convoy release deploys service {service}") }),
            ));
        };
        let hook =
            Hook::EcsNative { execution_id: hook_execution.clone(), service_deployment: service_deployment.clone() };
        self.verify_ecs_native_release(&key, &hook, now).instrument(release_span(&key)).await
    }

    async fn verify_ecs_native_release(
        &self,
        key: &ReleaseKey,
        hook: &Hook,
        now: DateTime<Utc>,
    ) -> Result<HookReply, ConvoyError> {
        let details = |probes: usize| json!({ "release": key.to_string(), "probes": probes });
        let (plan, mut probes, started_at) = match self.open_verification(key, hook, now).await? {
            Opening::Probe { plan, probes, started_at } => (plan, probes, started_at),
            Opening::Settled(Settled::AnsweredBefore { outcome, probes }) => {
                return Ok(HookReply::done(outcome.passed, details(probes)));
            }
            Opening::Settled(Settled::RollbackRerun) => {
                return Ok(HookReply::done(true, json!({ "release": key.to_string(), "rollback": true })));
            }
            Opening::Settled(Settled::Refused(reason)) => {
                warn!(%reason, "failing the hook");
                return Ok(HookReply::done(false, json!({ "convoy": reason })));
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
            Some(outcome) => {
                let (outcome, metrics) =
                    self.judge_gates(&plan.metric_checks, &plan.alarms, started_at, outcome, now).await?;
                (Some(outcome), metrics)
            }
            None => (None, Vec::new()),
        };
        if let Some(updated) = self.record_analysis(key, &plan, vec![latest], metrics, outcome.as_ref(), now).await? {
            self.finish_and_perform(updated, now).await?;
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

    /// A CodeDeploy hook whose verification ran out of the function's time: answered Failed at
    /// once, then the reason noted in the release's record when the store answers in time.
    pub async fn codedeploy_hook_out_of_time(
        &self,
        deployment: &DeploymentId,
        hook_execution: &HookExecutionId,
        now: DateTime<Utc>,
    ) -> Result<HookAnswer, ConvoyError> {
        warn!(%deployment, "{OUT_OF_TIME}");
        self.deployer.answer_hook(deployment, hook_execution, false).await?;
        let hook = Hook::CodeDeploy { deployment_id: deployment.clone(), execution_id: hook_execution.clone() };
        let noted = tokio::time::timeout(OUT_OF_TIME_NOTE_LIMIT, async {
            match self.deployments.find(&DeploymentRef::CodeDeploy(deployment.clone())).await? {
                Some(key) => self.note_out_of_time(&key, &hook, now).await.map(|()| Some(key)),
                None => Ok(None),
            }
        })
        .await;
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
    pub async fn ecs_native_hook_out_of_time(
        &self,
        hook_execution: &HookExecutionId,
        service_deployment: &ServiceDeploymentArn,
        service: &str,
        now: DateTime<Utc>,
    ) -> HookReply {
        warn!(service, "{OUT_OF_TIME}");
        let hook =
            Hook::EcsNative { execution_id: hook_execution.clone(), service_deployment: service_deployment.clone() };
        let noted = tokio::time::timeout(OUT_OF_TIME_NOTE_LIMIT, async {
            let Ok(name) = service.parse::<crate::names::ServiceName>() else { return Ok(None) };
            let Some(holder) = self.locks.load(&name).await?.and_then(|(lock, _)| lock.holder) else { return Ok(None) };
            let key = ReleaseKey::new(name, holder.release);
            self.note_out_of_time(&key, &hook, now).await.map(|()| Some(key))
        })
        .await;
        let release = self.noted_release(noted);
        HookReply::done(false, json!({ "convoy": OUT_OF_TIME, "release": release.map(|k| k.to_string()) }))
    }

    /// Ends the release's verification of `hook` as failed for running out of time (recording the
    /// start too, when the store was too slow to record it before).
    async fn note_out_of_time(&self, key: &ReleaseKey, hook: &Hook, now: DateTime<Utc>) -> Result<(), ConvoyError> {
        let outcome = VerificationOutcome { passed: false, reason: OUT_OF_TIME.into() };
        let events = [
            Event::VerificationStarted { hook: hook.clone(), at: now },
            Event::VerificationFinished { outcome, auto: false, bake_seconds: 0, alarms: Vec::new(), at: now },
        ];
        update(self, key, |r| r.apply_all(&events)).await.map(|_| ())
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
