//! The `ecs-rolling` method, for services without a load balancer (queue workers): Convoy records
//! the revision the service runs and the release's revision, then calls `UpdateService` once, and
//! ECS replaces the tasks. Done when ECS says the service deployment succeeded; failed when ECS
//! stopped it or its circuit breaker or one of the service's alarms rolled it back. "ECS
//! Deployment State Change" events and the reconciler follow it as they follow `ecs-native`
//! (`native.rs`): each end is what `DescribeServiceDeployments` says. A rolling update takes no
//! test traffic and never pauses, so it has no verification hook, and only policy approves it
//! (`settings::check_rolling`). [`Convoy::put_back`] returns the service to the revision it ran
//! before, at most once per release.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::Method;
use super::native::{Previous, update_service_once};
use crate::error::{ConvoyError, DeployError};
use crate::names::{ReleaseKey, ServiceName};
use crate::ports::{NativeService, Stored};
use crate::release::{DeployMethod, deployment};
use crate::service::transition::Outbox;
use crate::service::{Convoy, Report};
use crate::settings::EcsRollingTarget;

pub(super) struct RollingMethod<'a> {
    /// No field yet: the target says only that the service rolls (the cluster is Convoy's, the
    /// ECS service is named as the Convoy service).
    #[allow(dead_code)]
    pub target: &'a EcsRollingTarget,
}

/// Why `service` cannot deploy by a rolling update through ECS, if it cannot: another deployment
/// controller (CodeDeploy, external) ignores or refuses the update's revision, a blue/green
/// strategy would wait at hooks nobody verifies, and without the circuit breaker or alarms ECS
/// retries a failing rollout for ever (the release would never end).
pub(crate) fn check_rolling_service(service: &str, described: &NativeService) -> Result<(), String> {
    let mut missing = Vec::new();
    if let Some(controller) = described.controller.as_deref().filter(|c| *c != "ECS") {
        missing.push(format!("it deploys through the {controller} deployment controller, not ECS"));
    }
    if let Some(strategy) = described.strategy.as_deref().filter(|s| *s != "ROLLING") {
        missing.push(format!("its deployment strategy is {strategy}, not ROLLING"));
    }
    if described.circuit_breaker.is_none() && described.alarms.is_none() {
        missing.push(
            "neither its deployment circuit breaker nor deploymentConfiguration.alarms is enabled, so ECS would \
             retry a failing rollout for ever"
                .to_owned(),
        );
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!("service {service} cannot deploy by an ECS rolling update: {}", missing.join("; ")))
}

/// What ends a failed rollout of `described`, for `convoy status` (kept as the record's gate).
fn rolling_gate(described: &NativeService) -> String {
    let mut ends = Vec::new();
    if let Some(rollback) = described.circuit_breaker {
        ends.push(format!("the deployment circuit breaker {}", if rollback { "rolls back" } else { "stops it" }));
    }
    if let Some((names, rollback)) = &described.alarms {
        let what = if *rollback { "roll back" } else { "stop it" };
        ends.push(format!("alarms {} {what}", names.join(", ")));
    }
    format!("a rolling update approved by policy; on failure {}", ends.join(", "))
}

#[async_trait]
impl Method for RollingMethod<'_> {
    /// Nothing holds the new tasks: ECS replaces the old ones as the new become healthy. Only
    /// policy approves (the settings check refuses a person's approval for a rolling service).
    async fn approval_gate(
        &self,
        convoy: &Convoy,
        service: &ServiceName,
        auto: bool,
        _: u64,
    ) -> Result<Result<String, String>, ConvoyError> {
        if !auto {
            return Ok(Err(format!(
                "service {service} deploys by ecs-rolling, which has no pause for a person's approval"
            )));
        }
        let service = service.as_str();
        match convoy.service_deployments.describe_service(&convoy.config.cluster, service).await {
            Ok(described) => Ok(check_rolling_service(service, &described).map(|()| rolling_gate(&described))),
            Err(DeployError::Rejected(reason)) => Ok(Err(reason)),
            Err(err) => Err(err.into()),
        }
    }

    /// Records the service's current revision and the release's, then `UpdateService` once. A
    /// takeover that finds a recorded revision asks ECS for its service deployment first.
    async fn start(
        &self,
        convoy: &Convoy,
        outbox: &Outbox,
        claim: Stored,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let key = claim.release.key.clone();
        let (cluster, service) = (convoy.config.cluster.clone(), key.service.to_string());
        let checked = match convoy.service_deployments.describe_service(&cluster, &service).await {
            Ok(described) => check_rolling_service(&service, &described),
            Err(DeployError::Rejected(reason)) => Err(reason),
            Err(err) => return Err(err.into()),
        };
        if let Err(reason) = checked {
            warn!(%reason, "the service cannot deploy by a rolling update");
            return convoy.deployment_impossible(outbox, &key, reason, now).await;
        }
        update_service_once(convoy, outbox, claim, Previous::Record, now).await
    }
}

impl Convoy {
    /// Puts the service of `key`, an `ecs-rolling` release whose deployment ended, back on the
    /// revision it ran before the release (the multi-service rollback calls it per service). At
    /// most once per release: the claim is written before the `UpdateService`, and a takeover
    /// after the claim's lease asks ECS what the service runs before it updates again. Idempotent:
    /// once put back, a call changes nothing and calls nothing.
    ///
    /// # Errors
    /// [`ConvoyError`] when ECS or the store cannot be reached (the claim stays; a call after its
    /// lease takes it over), or ECS refuses the update ([`DeployError::Rejected`], not retryable).
    pub async fn put_back(&self, key: &ReleaseKey, now: DateTime<Utc>) -> Result<Option<Report>, ConvoyError> {
        let outbox = Outbox::new(now);
        let result = self.put_back_in(&outbox, key, now).await;
        self.publish(outbox).await;
        result
    }

    pub(crate) async fn put_back_in(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let event = deployment::Event::PutBackClaimed { at: now, lease: self.config.claim_lease };
        let Some(claimed) = self.transition(outbox, key, None, &event).await? else { return Ok(None) };
        if !claimed.changed {
            info!(release = %key, note = ?claimed.note, "nothing to put back");
            return Ok(Some(claimed.report()));
        }
        let run = claimed.release.deployment.as_ref().filter(|run| run.method == DeployMethod::EcsRolling);
        let Some(previous) = run.and_then(|run| run.put_back.as_ref()).map(|p| p.task_definition.clone()) else {
            return Ok(Some(claimed.report()));
        };
        let (cluster, service) = (self.config.cluster.clone(), key.service.to_string());
        // A takeover, or ECS's own rollback, may have put it back already: no second update.
        let runs = self.service_deployments.describe_service(&cluster, &service).await?.task_definition;
        let started = if runs.as_deref() == Some(previous.as_str()) {
            info!(release = %key, task_definition = %previous, "the service runs its previous revision already");
            None
        } else {
            let started = self.service_deployments.start(&cluster, &service, &previous).await?;
            info!(release = %key, service_deployment = %started, task_definition = %previous, "service put back");
            Some(started)
        };
        let done = deployment::Event::PutBack { service_deployment: started, at: now };
        let outcome = self.transition(outbox, key, Some(claimed.stored()), &done).await?;
        Ok(outcome.map(|o| o.report()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(controller: Option<&str>, strategy: Option<&str>) -> NativeService {
        NativeService {
            controller: controller.map(Into::into),
            strategy: strategy.map(Into::into),
            circuit_breaker: Some(true),
            ..NativeService::default()
        }
    }

    #[test]
    fn a_service_on_ecs_rolling_or_ecs_defaults_with_a_circuit_breaker_may_deploy_by_ecs_rolling() {
        assert_eq!(check_rolling_service("worker", &service(Some("ECS"), Some("ROLLING"))), Ok(()));
        assert_eq!(check_rolling_service("worker", &service(None, None)), Ok(()));
        let alarms =
            NativeService { circuit_breaker: None, alarms: Some((vec!["errors".into()], true)), ..service(None, None) };
        assert_eq!(check_rolling_service("worker", &alarms), Ok(()));
    }

    #[test]
    fn a_codedeploy_controlled_or_blue_green_service_is_refused_with_why() {
        let why = check_rolling_service("worker", &service(Some("CODE_DEPLOY"), None)).unwrap_err();
        assert!(why.contains("the CODE_DEPLOY deployment controller"), "{why}");
        let why = check_rolling_service("worker", &service(Some("ECS"), Some("BLUE_GREEN"))).unwrap_err();
        assert!(why.contains("strategy is BLUE_GREEN, not ROLLING"), "{why}");
    }

    #[test]
    fn a_service_without_a_circuit_breaker_or_alarms_is_refused_since_its_failure_would_never_end() {
        let bare = NativeService { circuit_breaker: None, ..service(Some("ECS"), Some("ROLLING")) };
        let why = check_rolling_service("worker", &bare).unwrap_err();
        assert!(why.contains("retry a failing rollout for ever"), "{why}");
    }

    #[test]
    fn the_gate_says_what_ends_a_failed_rollout() {
        let both = NativeService { alarms: Some((vec!["errors".into()], false)), ..service(None, None) };
        assert_eq!(
            rolling_gate(&both),
            "a rolling update approved by policy; on failure the deployment circuit breaker rolls back, alarms errors \
             stop it"
        );
    }
}
