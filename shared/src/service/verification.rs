//! Verification on the test listener, from either lifecycle hook, and the decision that follows.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::{Convoy, update};
use crate::error::{ConvoyError, DeployError};
use crate::manifest::Approval;
use crate::names::ReleaseKey;
use crate::ports::DeploymentOrigin;
use crate::release::{Event, Hook, Release, State, VerificationOutcome};
use crate::verify::{self, ProbeSpec, Verdict};

/// How much earlier than Convoy's record of the execution's start a deployment may have been
/// created (clocks differ) and still be taken for the execution's.
const ADOPTION_CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(2);

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

/// Whether the release is past verification and rolling back or ended: a hook that runs now is
/// a rollback's re-run, which Convoy lets through without probing (the release's evidence stays).
fn rollback_rerun(release: &Release) -> bool {
    matches!(release.state, State::RollingBack { .. }) || release.state.is_terminal()
}

impl Convoy {
    /// The probe plan for a release: the operator's listener and defaults, the manifest's path and
    /// expectations. `Err` when the service has no settings.
    fn probe_plan(&self, release: &Release) -> Result<(ProbeSpec, bool, u64), String> {
        let settings = self
            .settings
            .services
            .get(&release.key.service)
            .ok_or_else(|| format!("no deployment settings for service {}", release.key.service))?;
        let manifest = release.manifest.as_ref();
        let verify = manifest.and_then(|m| m.verify.as_ref());
        let defaults = &settings.probe;
        let path = verify.map_or(defaults.path.as_str(), |v| v.path.as_str());
        let spec = ProbeSpec {
            url: verify::probe_url(&settings.test_listener, path)?,
            count: defaults.count,
            interval: std::time::Duration::from_millis(defaults.interval_ms),
            failure_limit: defaults.failure_limit,
            consecutive_successes: defaults.consecutive_successes,
            timeout: std::time::Duration::from_millis(defaults.timeout_ms),
            expect_status: verify.map_or(defaults.expect_status, |v| v.expect_status),
            expect_text: verify.and_then(|v| v.expect_body.clone()).unwrap_or_else(|| release.key.release.to_string()),
            expect_header: defaults.expect_header.clone(),
        };
        let auto = manifest.and_then(|m| m.approval).unwrap_or(settings.approval) == Approval::Auto;
        Ok((spec, auto, settings.bake_seconds))
    }

    /// CodeDeploy's `AfterAllowTestTraffic` hook: verify, record, answer.
    pub async fn verify_codedeploy(
        &self,
        deployment: &str,
        execution: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, ConvoyError> {
        let hook = Hook::CodeDeploy { deployment_id: deployment.to_owned(), execution_id: execution.to_owned() };
        let (known, origin) = match self.deployments.find(deployment).await? {
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
            self.deployer.answer_hook(deployment, execution, rollback).await?;
            let why = if rollback { "a rollback re-run: let through" } else { "not a deployment Convoy started" };
            info!(deployment, "{why}");
            return Ok(json!({ "deployment": deployment, "succeeded": rollback, "why": why }));
        };
        let span = tracing::info_span!("release", service = %key.service, release = %key.release);
        let _entered = span.enter();
        let release =
            self.store.load(&key).await?.ok_or(ConvoyError::BadEvent(format!("release {key} has no record")))?.release;
        if let Some(outcome) = release.verification.as_ref().filter(|v| v.hook == hook).and_then(|v| v.outcome.clone())
        {
            self.deployer.answer_hook(deployment, execution, outcome.passed).await?;
            return Ok(
                json!({ "release": key.to_string(), "succeeded": outcome.passed, "why": "answered before; answered again" }),
            );
        }
        if rollback_rerun(&release) {
            self.deployer.answer_hook(deployment, execution, true).await?;
            return Ok(
                json!({ "release": key.to_string(), "succeeded": true, "why": "a rollback re-run: let through without probing" }),
            );
        }
        let (spec, auto, bake) = match self.probe_plan(&release) {
            Ok(plan) => plan,
            Err(reason) => return self.fail_codedeploy_hook(&key, deployment, execution, reason).await,
        };
        let started =
            update(self.store.as_ref(), &key, |r| r.apply(&Event::VerificationStarted { hook: hook.clone(), at: now }))
                .await?;
        let verifies_this_hook = |release: &Release| {
            matches!(release.state, State::Verifying { .. })
                && release.verification.as_ref().is_some_and(|v| v.hook == hook)
        };
        if !started.as_ref().is_some_and(|u| verifies_this_hook(&u.release)) {
            let state = started.map_or("gone".to_owned(), |u| u.release.state.to_string());
            let reason = format!("no verification is due: the release is {state}");
            return self.fail_codedeploy_hook(&key, deployment, execution, reason).await;
        }
        info!(url = %spec.url, count = spec.count, "verifying on the test listener");
        let (probes, verdict) = verify::analyse(&spec, self.prober.as_ref(), Vec::new()).await;
        let outcome = match verdict {
            Verdict::Pass(reason) => VerificationOutcome { passed: true, reason },
            Verdict::Fail(reason) => VerificationOutcome { passed: false, reason },
            Verdict::Continue => {
                VerificationOutcome { passed: false, reason: "the analysis ended without a verdict".into() }
            }
        };
        let finished = Utc::now();
        let events = [
            Event::Probed { probes, at: finished },
            Event::VerificationFinished { outcome: outcome.clone(), auto, bake_seconds: bake, at: finished },
        ];
        let updated = update(self.store.as_ref(), &key, |r| r.apply_all(&events)).await?;
        // Answer first: the traffic shift (auto approval) can only follow a passed hook.
        self.deployer.answer_hook(deployment, execution, outcome.passed).await?;
        let report = match updated {
            Some(updated) => Some(self.finish_and_perform(updated).await?),
            None => None,
        };
        Ok(json!({ "release": key.to_string(), "succeeded": outcome.passed, "why": outcome.reason, "report": report }))
    }

    /// A deployment that a pipeline's deploy action created: CodeDeploy names only its group.
    /// It belongs to the release that holds the deploy lock of the service deploying through that
    /// group, when that release follows its pipeline execution, and CodePipeline reports this
    /// deployment as that execution's (or, before it reports any, the deployment was created
    /// after the execution started: an older, abandoned deployment is never taken for it).
    async fn adopt_pipeline_deployment(
        &self,
        deployment: &str,
        origin: &DeploymentOrigin,
    ) -> Result<Option<ReleaseKey>, ConvoyError> {
        if origin.rollback {
            return Ok(None); // a rollback's re-run of the hooks: never a release's deployment
        }
        let services = self.settings.services.iter().filter(|(_, settings)| {
            settings.pipeline.is_some()
                && settings.codedeploy.application == origin.application
                && settings.codedeploy.deployment_group == origin.deployment_group
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
                Ok(Some(reported)) => reported == deployment,
                Ok(None) => created_after_start,
                Err(DeployError::Rejected(why)) => {
                    warn!(%why, "CodePipeline does not say which deployment the execution created");
                    created_after_start
                }
                Err(err) => return Err(err.into()),
            };
            if belongs {
                info!(deployment, release = %key, execution, "a deployment of the release's pipeline execution: adopted");
                self.deployments.note(deployment, &key).await?;
                return Ok(Some(key));
            }
            info!(deployment, release = %key, execution, "not a deployment of the release's pipeline execution");
        }
        Ok(None)
    }

    async fn fail_codedeploy_hook(
        &self,
        key: &ReleaseKey,
        deployment: &str,
        execution: &str,
        reason: String,
    ) -> Result<Value, ConvoyError> {
        warn!(%reason, "failing the hook");
        self.deployer.answer_hook(deployment, execution, false).await?;
        Ok(json!({ "release": key.to_string(), "succeeded": false, "why": reason }))
    }

    /// ECS native blue/green's `POST_TEST_TRAFFIC_SHIFT` hook: one probe per invocation, the
    /// analysis state in the record (and its count in `hookDetails`), `IN_PROGRESS` until decided.
    pub async fn verify_ecs_native(
        &self,
        execution: &str,
        service_deployment: &str,
        service: &str,
        now: DateTime<Utc>,
    ) -> Result<HookReply, ConvoyError> {
        let hook =
            Hook::EcsNative { execution_id: execution.to_owned(), service_deployment: service_deployment.to_owned() };
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
        let span = tracing::info_span!("release", service = %key.service, release = %key.release);
        let _entered = span.enter();
        let release =
            self.store.load(&key).await?.ok_or(ConvoyError::BadEvent(format!("release {key} has no record")))?.release;
        let details = |probes: usize| json!({ "release": key.to_string(), "probes": probes });
        if let Some(outcome) = release.verification.as_ref().filter(|v| v.hook == hook).and_then(|v| v.outcome.clone())
        {
            return Ok(HookReply::done(
                outcome.passed,
                details(release.verification.as_ref().map_or(0, |v| v.probes.len())),
            ));
        }
        if rollback_rerun(&release) {
            info!("a rollback re-run of the hook: let through without probing");
            return Ok(HookReply::done(true, json!({ "release": key.to_string(), "rollback": true })));
        }
        let (spec, auto, bake) = match self.probe_plan(&release) {
            Ok(plan) => plan,
            Err(reason) => return Ok(HookReply::done(false, json!({ "convoy": reason }))),
        };
        let started =
            update(self.store.as_ref(), &key, |r| r.apply(&Event::VerificationStarted { hook: hook.clone(), at: now }))
                .await?;
        let Some(started) = started.filter(|u| matches!(u.release.state, State::Verifying { .. })) else {
            return Ok(HookReply::done(false, json!({ "convoy": "no verification is due" })));
        };
        let mut probes = started.release.verification.map(|v| v.probes).unwrap_or_default();
        let latest = verify::probe_once(&spec, self.prober.as_ref()).await;
        probes.push(latest.clone());
        let verdict = verify::judge(&spec, &probes);
        let mut events = vec![Event::Probed { probes: vec![latest], at: now }];
        let outcome = match &verdict {
            Verdict::Continue => None,
            Verdict::Pass(reason) => Some(VerificationOutcome { passed: true, reason: reason.clone() }),
            Verdict::Fail(reason) => Some(VerificationOutcome { passed: false, reason: reason.clone() }),
        };
        if let Some(outcome) = &outcome {
            events.push(Event::VerificationFinished { outcome: outcome.clone(), auto, bake_seconds: bake, at: now });
        }
        if let Some(updated) = update(self.store.as_ref(), &key, |r| r.apply_all(&events)).await? {
            self.finish_and_perform(updated).await?;
        }
        Ok(match outcome {
            None => HookReply {
                hook_status: "IN_PROGRESS",
                call_back_delay: Some(spec.interval.as_secs().max(1)),
                hook_details: details(probes.len()),
            },
            Some(outcome) => HookReply::done(outcome.passed, details(probes.len())),
        })
    }

    /// A person approves or rejects the traffic shift (`convoy approve` / `convoy reject`).
    /// Refused unless the release awaits approval with a passed verification.
    pub async fn decide(
        &self,
        key: &ReleaseKey,
        approve: bool,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<super::Report, ConvoyError> {
        let release =
            self.store.load(key).await?.ok_or_else(|| ConvoyError::Refused(format!("no release {key}")))?.release;
        let passed = release.verification.as_ref().and_then(|v| v.outcome.as_ref()).is_some_and(|o| o.passed);
        let State::AwaitingApproval { deployment } = &release.state else {
            return Err(ConvoyError::Refused(format!(
                "release {key} does not await approval: it is {}",
                release.state
            )));
        };
        if !passed {
            return Err(ConvoyError::Refused(format!("release {key} has not passed verification")));
        }
        let hook = release.verification.as_ref().map(|v| v.hook.clone());
        match (hook, approve) {
            (Some(Hook::EcsNative { service_deployment, .. }), _) => {
                self.deployer.continue_native(&service_deployment, !approve).await?;
            }
            (_, true) => self.deployer.continue_traffic(deployment).await?,
            (_, false) => self.deployer.roll_back(deployment).await?,
        }
        let event = Event::Decided { approve, by: by.to_owned(), at: now };
        let updated = update(self.store.as_ref(), key, |r| r.apply(&event))
            .await?
            .ok_or(ConvoyError::Refused(format!("no release {key}")))?;
        Ok(self.finish(updated))
    }
}
