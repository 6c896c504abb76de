//! The `ecs-native` deploy method: Convoy updates a service that deploys blue/green natively
//! (`UpdateService` with the release's revision, at most once per release), then follows ECS's
//! service deployment: its `POST_TEST_TRAFFIC_SHIFT` hook verifies (`verification.rs`), its
//! `PAUSE` hook waits for `convoy approve`/`reject` (`decide.rs`), and "ECS Deployment State
//! Change" events (or the reconciler's `DescribeServiceDeployments`) end the record.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::{Convoy, Report, update, update_from};
use crate::error::{ConvoyError, DeployError, TasksError};
use crate::names::{DeploymentId, DeploymentRef, ServiceDeploymentArn, ServiceName};
use crate::ports::{DeploymentStatus, NativeService, ReleaseTaskSpec, Stored};
use crate::release::Event;
use crate::settings::{EcsNativeTarget, ServiceSettings};

/// The deployment strategies of ECS native blue/green (all at once, linear, canary): each shifts
/// test traffic first and runs lifecycle hooks.
pub const BLUE_GREEN_STRATEGIES: [&str; 3] = ["BLUE_GREEN", "LINEAR", "CANARY"];

/// Whether `hook_target` (a Lambda ARN, possibly qualified) names `function` (a name or an ARN).
fn calls_function(hook_target: &str, function: &str) -> bool {
    let name_of = |arn: &str| -> String {
        match arn.split_once(":function:") {
            Some((_, rest)) => rest.split(':').next().unwrap_or_default().to_owned(),
            None => arn.to_owned(),
        }
    };
    hook_target == function || name_of(hook_target) == name_of(function)
}

/// What a service on the `ecs-native` method lacks, each item said the way an operator fixes it;
/// `Ok` when nothing.
pub fn check_native_service(service: &str, target: &EcsNativeTarget, described: &NativeService) -> Result<(), String> {
    let mut missing = Vec::new();
    if let Some(controller) = described.controller.as_deref().filter(|c| *c != "ECS") {
        missing.push(format!("its deployment controller is {controller}, not ECS"));
    }
    match described.strategy.as_deref() {
        Some(strategy) if BLUE_GREEN_STRATEGIES.contains(&strategy) => {}
        other => missing.push(format!(
            "its deployment strategy is {}, not BLUE_GREEN (or LINEAR or CANARY)",
            other.unwrap_or("unset (ROLLING)")
        )),
    }
    let verify = described.hooks.iter().find(|h| {
        h.target_type == "AWS_LAMBDA"
            && h.stages.iter().any(|s| s == "POST_TEST_TRAFFIC_SHIFT")
            && h.target.as_deref().is_some_and(|t| calls_function(t, &target.verify_function))
    });
    match verify {
        None => missing
            .push(format!("no AWS_LAMBDA lifecycle hook calls {} at POST_TEST_TRAFFIC_SHIFT", target.verify_function)),
        Some(hook) if hook.role.is_none() => {
            missing.push("the verify hook has no roleArn for ECS to invoke the function with".into())
        }
        // A verify hook that times out must not let the deployment go on unverified.
        Some(hook) if hook.continues_on_timeout() => missing
            .push(format!("the verify hook {}: set its timeoutConfiguration action to ROLLBACK", hook.on_timeout())),
        Some(_) => {}
    }
    match approval_hook(target, described) {
        None => {
            missing.push(format!("no PAUSE lifecycle hook at {} for the approval to wait at", target.approval_stage))
        }
        // ECS has no "wait for ever": a pause ends at its timeout, and with CONTINUE production
        // traffic would move without anyone approving.
        Some(hook) if hook.continues_on_timeout() => missing.push(format!(
            "the PAUSE hook at {} {}, shifting production traffic without an approval: set its \
             timeoutConfiguration action to ROLLBACK",
            target.approval_stage,
            hook.on_timeout()
        )),
        Some(_) => {}
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!("service {service} cannot deploy through ECS native blue/green: {}", missing.join("; ")))
}

/// The `PAUSE` hook the approval waits at.
fn approval_hook<'a>(target: &EcsNativeTarget, described: &'a NativeService) -> Option<&'a crate::ports::NativeHook> {
    described.hooks.iter().find(|h| h.target_type == "PAUSE" && h.stages.contains(&target.approval_stage))
}

/// What holds a checked native service's production traffic for the approval, and what bounds
/// the wait: ECS's per-hook timeout (its action, `ROLLBACK` by default, and its minutes, 1440 by
/// default). For `convoy check` and the record (`convoy status`).
pub(crate) fn native_gate(target: &EcsNativeTarget, described: &NativeService) -> String {
    match approval_hook(target, described) {
        Some(hook) => format!("ECS PAUSE hook at {} waits for a person; {}", target.approval_stage, hook.on_timeout()),
        None => format!("no PAUSE hook at {}", target.approval_stage),
    }
}

impl Convoy {
    /// Checks every service of the settings the way a release's start meets it
    /// ([`Convoy::approval_gate`], with the service's own approval policy): an ECS native service
    /// against what ECS says of it (strategy, hooks, the PAUSE hook's timeout), a CodeDeploy (or
    /// pipeline) service's group for a ready option that waits for a person. `Ok` lists each
    /// service with what holds its traffic shift; `Err` says what each failing one lacks.
    pub async fn check_services(&self) -> Result<Vec<(ServiceName, String)>, ConvoyError> {
        let mut problems = Vec::new();
        let mut checked = Vec::new();
        for (service, settings) in &self.config.services {
            let auto = settings.approval == crate::manifest::Approval::Auto;
            match self.approval_gate(service, settings, auto).await? {
                Ok(gate) => checked.push((service.clone(), gate)),
                Err(problem) if problem.starts_with(&format!("service {service}")) => problems.push(problem),
                Err(problem) => problems.push(format!("service {service}: {problem}")),
            }
        }
        if problems.is_empty() { Ok(checked) } else { Err(ConvoyError::Refused(problems.join("\n"))) }
    }

    /// The `ecs-native` start, once claimed: check the service, register the release's revision
    /// and record it, then `UpdateService`. A takeover that finds a recorded revision first asks
    /// ECS for a service deployment of it (`ListServiceDeployments`), and adopts it instead of
    /// updating the service again.
    pub(super) async fn start_native(
        &self,
        settings: &ServiceSettings,
        claim: Stored,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let key = claim.release.key.clone();
        let (cluster, service) = (self.config.cluster.clone(), key.service.to_string());
        let Some(target) = &settings.ecs_native else {
            return self
                .deployment_impossible(&key, "the service's settings name no ecs_native target".into(), now)
                .await;
        };
        let checked = match self.deployer.native_service(&cluster, &service).await {
            Ok(described) => check_native_service(&service, target, &described),
            Err(DeployError::Rejected(reason)) => Err(reason),
            Err(err) => return Err(err.into()),
        };
        if let Err(reason) = checked {
            warn!(%reason, "the service cannot deploy natively");
            return self.deployment_impossible(&key, reason, now).await;
        }
        let recorded = claim.release.deployment.as_ref().and_then(|run| run.task_definition.clone());
        let (definition, claim) = match recorded {
            Some(definition) => {
                if let Some(found) = self.deployer.find_native(&cluster, &service, &definition).await? {
                    info!(service_deployment = %found, "adopting the service deployment a previous holder started");
                    self.deployments.note(&DeploymentRef::Service(found.clone()), &key).await?;
                    return self.record_native_start(found, definition, now, claim).await;
                }
                (definition, claim)
            }
            None => {
                let shape = self.tasks.service_shape(&cluster, &service).await?;
                let spec = ReleaseTaskSpec { base: shape.task_definition, images: claim.release.pinned_uris() };
                let definition = match self.definitions.register_release(&spec).await {
                    Ok(definition) => definition,
                    Err(TasksError::Rejected(reason)) => {
                        let reason = format!("the deployment cannot start: {reason}");
                        return self.deployment_impossible(&key, reason, now).await;
                    }
                    Err(err) => return Err(err.into()),
                };
                let event = Event::RevisionRegistered { task_definition: definition.clone(), at: now };
                let Some(updated) = update_from(self, &key, Some(claim), |r| r.apply(&event)).await? else {
                    return Ok(None);
                };
                let ours = updated.release.deployment.as_ref().and_then(|run| run.task_definition.as_deref())
                    == Some(definition.as_str());
                if !ours || !updated.changed {
                    // Another handler's revision was recorded first; the update is that handler's.
                    return Ok(Some(self.finish(updated)));
                }
                (definition, Stored { release: updated.release, version: updated.version })
            }
        };
        let started = match self.deployer.start_native(&cluster, &service, &definition).await {
            Ok(started) => started,
            Err(DeployError::Rejected(reason)) => {
                warn!(%reason, "ECS refused the update");
                return self.deployment_impossible(&key, format!("UpdateService was refused: {reason}"), now).await;
            }
            // The claim and the revision stay; a takeover after the lease looks for the deployment.
            Err(err) => return Err(err.into()),
        };
        info!(service_deployment = %started, task_definition = %definition, "service deployment started");
        // Before the record: the hook may come before the record is written.
        self.deployments.note(&DeploymentRef::Service(started.clone()), &key).await?;
        self.record_native_start(started, definition, now, claim).await
    }

    async fn record_native_start(
        &self,
        started: ServiceDeploymentArn,
        definition: String,
        now: DateTime<Utc>,
        claim: Stored,
    ) -> Result<Option<Report>, ConvoyError> {
        let key = claim.release.key.clone();
        let deployment = DeploymentId::new(started.as_str()).map_err(|e| DeployError::Unavailable(e.to_string()))?;
        let event = Event::DeploymentStarted { deployment, task_definition: Some(definition), at: now };
        let updated = update_from(self, &key, Some(claim), |r| r.apply(&event)).await?;
        Ok(updated.map(|u| self.finish(u)))
    }

    /// Where the release's service deployment stands, with what ECS says of its progress recorded.
    pub(super) async fn observe_native(
        &self,
        release: &crate::release::Release,
        arn: &ServiceDeploymentArn,
    ) -> Result<DeploymentStatus, ConvoyError> {
        let described = self.deployer.native_status(arn).await?;
        let now = described.progress.seen_at;
        let event = Event::NativeObserved { progress: described.progress };
        // It may have gone past the approval pause unattributed: CloudTrail is asked who.
        if let Some(updated) = update(self, &release.key, |r| r.apply(&event)).await? {
            let hook = updated.release.verification.as_ref().map(|v| v.hook.clone());
            self.perform(&release.key, &updated.effects, hook.as_ref(), now).await?;
        }
        Ok(described.status)
    }

    /// An "ECS Deployment State Change" for `service`: the event names ECS's deployment id, not
    /// the service deployment, so Convoy asks ECS about the service deployment of the release that
    /// holds the service (`DescribeServiceDeployments`), and ends the record if it ended.
    pub async fn native_deployment_changed(
        &self,
        service: &str,
        event_name: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let Ok(name) = service.parse::<ServiceName>() else {
            return Err(ConvoyError::BadEvent(format!("{service:?} is not a service name")));
        };
        let holder = self.locks.load(&name).await?.and_then(|(lock, _)| lock.holder);
        let Some(holder) = holder else {
            info!(service, event_name, "no Convoy release deploys the service; ignored");
            return Ok(None);
        };
        let key = crate::names::ReleaseKey::new(name, holder.release);
        let Some(stored) = self.store.load(&key).await? else { return Ok(None) };
        let Some(arn) = stored.release.native_deployment() else {
            info!(release = %key, event_name, "the release follows no service deployment; ignored");
            return Ok(None);
        };
        match self.observe_native(&stored.release, &arn).await? {
            DeploymentStatus::Ended { end, detail } => {
                let detail = if reason.is_empty() { detail } else { format!("{detail} ({event_name}: {reason})") };
                self.deployment_ended(&DeploymentRef::Service(arn), end, &detail, now).await
            }
            DeploymentStatus::Running | DeploymentStatus::Rerouted => {
                info!(release = %key, %arn, event_name, reason, "the service deployment runs");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::NativeHook;

    fn target() -> EcsNativeTarget {
        EcsNativeTarget {
            verify_function: "convoy-verify".into(),
            approval_stage: "PRE_PRODUCTION_TRAFFIC_SHIFT".into(),
        }
    }

    fn ready() -> NativeService {
        NativeService {
            controller: Some("ECS".into()),
            strategy: Some("BLUE_GREEN".into()),
            hooks: vec![
                NativeHook {
                    target_type: "AWS_LAMBDA".into(),
                    target: Some("arn:aws:lambda:us-east-1:123456789012:function:convoy-verify".into()),
                    role: Some("arn:aws:iam::123456789012:role/ecs-hooks".into()),
                    stages: vec!["POST_TEST_TRAFFIC_SHIFT".into()],
                    timeout_action: None,
                    timeout_minutes: None,
                },
                NativeHook {
                    target_type: "PAUSE".into(),
                    target: None,
                    role: None,
                    stages: vec!["PRE_PRODUCTION_TRAFFIC_SHIFT".into()],
                    timeout_action: None,
                    timeout_minutes: None,
                },
            ],
        }
    }

    #[test]
    fn a_blue_green_service_with_the_verify_hook_and_a_pause_hook_passes_the_checks() {
        assert_eq!(check_native_service("web", &target(), &ready()), Ok(()));
        let canary = NativeService { strategy: Some("CANARY".into()), ..ready() };
        assert_eq!(check_native_service("web", &target(), &canary), Ok(()));
    }

    #[test]
    fn a_rolling_service_without_hooks_is_told_everything_it_lacks() {
        let rolling = NativeService { controller: Some("ECS".into()), strategy: Some("ROLLING".into()), hooks: vec![] };
        let err = check_native_service("web", &target(), &rolling).unwrap_err();
        assert_eq!(
            err,
            "service web cannot deploy through ECS native blue/green: its deployment strategy is ROLLING, not \
             BLUE_GREEN (or LINEAR or CANARY); no AWS_LAMBDA lifecycle hook calls convoy-verify at \
             POST_TEST_TRAFFIC_SHIFT; no PAUSE lifecycle hook at PRE_PRODUCTION_TRAFFIC_SHIFT for the approval to \
             wait at"
        );
    }

    #[test]
    fn a_hook_calling_another_function_or_without_a_role_does_not_count() {
        let mut other = ready();
        other.hooks[0].target = Some("arn:aws:lambda:us-east-1:123456789012:function:someone-else".into());
        assert!(check_native_service("web", &target(), &other).unwrap_err().contains("no AWS_LAMBDA lifecycle hook"));
        let mut roleless = ready();
        roleless.hooks[0].role = None;
        assert!(check_native_service("web", &target(), &roleless).unwrap_err().contains("no roleArn"));
    }

    #[test]
    fn a_pause_hook_that_continues_on_timeout_is_refused() {
        let mut continuing = ready();
        continuing.hooks[1].timeout_action = Some("CONTINUE".into());
        continuing.hooks[1].timeout_minutes = Some(30);
        let err = check_native_service("web", &target(), &continuing).unwrap_err();
        assert!(err.contains("the PAUSE hook at PRE_PRODUCTION_TRAFFIC_SHIFT continues after 30 min"), "{err}");
        assert!(err.contains("set its timeoutConfiguration action to ROLLBACK"), "{err}");
    }

    #[test]
    fn a_verify_hook_that_continues_on_timeout_is_refused() {
        let mut continuing = ready();
        continuing.hooks[0].timeout_action = Some("CONTINUE".into());
        let err = check_native_service("web", &target(), &continuing).unwrap_err();
        assert!(err.contains("the verify hook continues after 1440 min (partly ECS defaults)"), "{err}");
    }

    #[test]
    fn a_pause_hook_that_rolls_back_on_timeout_passes_and_the_gate_says_when() {
        let mut bounded = ready();
        bounded.hooks[1].timeout_action = Some("ROLLBACK".into());
        bounded.hooks[1].timeout_minutes = Some(120);
        assert_eq!(check_native_service("web", &target(), &bounded), Ok(()));
        assert_eq!(
            native_gate(&target(), &bounded),
            "ECS PAUSE hook at PRE_PRODUCTION_TRAFFIC_SHIFT waits for a person; rolls back after 120 min"
        );
    }

    #[test]
    fn an_unset_timeout_is_ecs_default_rollback_after_a_day() {
        assert_eq!(
            native_gate(&target(), &ready()),
            "ECS PAUSE hook at PRE_PRODUCTION_TRAFFIC_SHIFT waits for a person; rolls back after 1440 min (ECS defaults)"
        );
    }

    #[test]
    fn a_codedeploy_controlled_service_is_refused() {
        let codedeploy = NativeService { controller: Some("CODE_DEPLOY".into()), ..ready() };
        assert!(check_native_service("web", &target(), &codedeploy).unwrap_err().contains("CODE_DEPLOY, not ECS"));
    }
}
