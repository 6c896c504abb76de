//! Deploying: one release in flight per service (the deploy lock), what holds its traffic shift
//! for the approval, a claimed start by the service's deploy method (`methods/`), and the end.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::transition::Outbox;
use super::{Convoy, Report, confirm, methods};
use crate::error::ConvoyError;
use crate::manifest::Approval;
use crate::names::{DeploymentRef, ReleaseKey, ServiceName};
use crate::ports::{LockEntry, Stored};
use crate::release::{DeploymentEnd, LockDecision, Stage, State, deployment};

impl Convoy {
    /// Starts the release's deployment if it is due, its service is free, and nobody else holds
    /// the start (the reconciler's and a test's way in; an event's is the `StartDeployment`
    /// effect).
    pub async fn start_deployment(
        &self,
        key: &ReleaseKey,
        now: DateTime<Utc>,
        known: Option<Stored>,
    ) -> Result<Option<Report>, ConvoyError> {
        let outbox = Outbox::new(now);
        let result = self.start_deployment_in(&outbox, key, known, now).await;
        self.publish(outbox).await;
        result
    }

    /// At most one deployment per release: the claim is a conditional write, and the method's
    /// start finds, on a takeover, what a crashed holder started.
    pub(super) async fn start_deployment_in(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        known: Option<Stored>,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let Some(stored) = self.known_or_loaded(key, known).await? else { return Ok(None) };
        if stored.release.group.is_some() {
            // A group's release deploys through its services' parts, once it holds their locks.
            return Box::pin(self.take_service_locks_in(outbox, key, Some(stored), now)).await;
        }
        let Some(settings) = self.config.services.get(&key.service) else {
            let reason = format!("no deployment settings for service {} (CONVOY_SERVICE_SETTINGS)", key.service);
            return self.deployment_impossible(outbox, key, reason, now).await;
        };
        let method = methods::of(&settings.deploy);
        let mut gate = None;
        let release = &stored.release;
        if matches!(release.state, State::Ready { next: Stage::Deployment } | State::Queued { .. }) {
            let entry = LockEntry { opened_at: release.opened_at(), release: key.release.clone(), group: None };
            let decision = self.change_lock(key, |lock| lock.acquire(&entry)).await?;
            if decision != LockDecision::Acquired {
                let event = deployment::Event::Lock { decision, at: now };
                let outcome = self.transition(outbox, key, Some(stored), &event).await?;
                return Ok(outcome.map(|o| o.report()));
            }
            // Before the claim, so an outage here leaves the release as it was for a retry, and a
            // takeover (which may find a deployment the first holder made) never asks again.
            let auto = match crate::ceiling::approval(settings, key, release.manifest.as_ref()) {
                Ok(approval) => approval == Approval::Auto,
                Err(reason) => return self.deployment_impossible(outbox, key, reason.to_string(), now).await,
            };
            // Boxed: an SDK call's future is large, and this one sits in every path to a start.
            match Box::pin(method.approval_gate(self, &key.service, auto, settings.bake_seconds)).await? {
                Ok(holds) => gate = Some(holds),
                Err(reason) => {
                    warn!(%reason, "the traffic shift would not wait for the approval; nothing is started");
                    return self.deployment_impossible(outbox, key, reason, now).await;
                }
            }
        }
        let chosen = settings.method();
        let event = deployment::Event::Claimed { method: chosen, at: now, lease: self.config.claim_lease, gate };
        let Some(claimed) = self.transition(outbox, key, Some(stored), &event).await? else { return Ok(None) };
        if !claimed.changed {
            return Ok(Some(claimed.report()));
        }
        // A takeover keeps the method of the first claim: switching methods mid-start could
        // deploy the release twice, once each way.
        let claimed_method = claimed.release.deployment.as_ref().map_or(chosen, |run| run.method);
        if claimed_method != chosen {
            let reason = format!(
                "the start was claimed for {claimed_method}, but the service's settings now deploy with {chosen}: \
                 Convoy will not start it twice; check {claimed_method} for a deployment the earlier start may \
                 have made"
            );
            return self.deployment_impossible(outbox, key, reason, now).await;
        }
        method.start(self, outbox, claimed.stored(), now).await
    }

    pub(super) async fn deployment_impossible(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let event = deployment::Event::Impossible { reason, at: now };
        let outcome = self.transition(outbox, key, None, &event).await?;
        Ok(outcome.map(|o| o.report()))
    }

    /// An event says how a deployment ended (CodeDeploy's or CodePipeline's state change): the
    /// end applied is the one AWS names, and only once AWS says it ended.
    pub async fn deployment_ended(
        &self,
        deployment: &DeploymentRef,
        end: DeploymentEnd,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let outbox = Outbox::new(now);
        let result = self.deployment_end_observed_in(&outbox, deployment, end, detail, now).await;
        self.publish(outbox).await;
        result
    }

    async fn deployment_end_observed_in(
        &self,
        outbox: &Outbox,
        deployment: &DeploymentRef,
        end: DeploymentEnd,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let Some((key, stored)) = self.record_of(deployment).await? else { return Ok(None) };
        let (end, detail) = match self.confirm_deployment_end(&stored.release, deployment, end, detail).await? {
            Ok(confirmed) => confirmed,
            Err(why) => {
                confirm::refuse(confirm::kind::DEPLOYMENT_END, Some(&key), &why);
                let note = Some(format!("unconfirmed: {why}"));
                return Ok(Some(Report::of(&stored.release, false, note, Vec::new())));
            }
        };
        self.end_deployment(outbox, stored, deployment, end, &detail, now).await
    }

    /// AWS says how a deployment ended (the reconciler's look, ECS's `DescribeServiceDeployments`).
    pub(super) async fn deployment_ended_in(
        &self,
        outbox: &Outbox,
        deployment: &DeploymentRef,
        end: DeploymentEnd,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let Some((_, stored)) = self.record_of(deployment).await? else { return Ok(None) };
        self.end_deployment(outbox, stored, deployment, end, detail, now).await
    }

    /// The release that started `deployment`, and its record (`None`: not Convoy's, or gone).
    async fn record_of(&self, deployment: &DeploymentRef) -> Result<Option<(ReleaseKey, Stored)>, ConvoyError> {
        let Some(key) = self.deployments.find(deployment).await? else {
            info!(%deployment, "not a deployment Convoy started; ignored");
            return Ok(None);
        };
        Ok(self.store.load(&key).await?.map(|stored| (key, stored)))
    }

    /// Applies an end AWS confirmed.
    async fn end_deployment(
        &self,
        outbox: &Outbox,
        stored: Stored,
        deployment: &DeploymentRef,
        end: DeploymentEnd,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let key = stored.release.key.clone();
        if let DeploymentRef::Pipeline(execution) = deployment
            && end != DeploymentEnd::Succeeded
            && let Some(report) = self.follow_abandoned_deployment(outbox, &stored, execution, end, detail, now).await?
        {
            return Ok(Some(report));
        }
        let event =
            deployment::Event::Ended { deployment: deployment.clone(), end, detail: detail.to_owned(), at: now };
        let outcome = self.transition(outbox, &key, Some(stored), &event).await?;
        Ok(outcome.map(|o| o.report()))
    }

    /// Checks every service of the settings the way a release's start meets it (the method's
    /// approval gate, with the service's own approval policy): an ECS native service against what
    /// ECS says of it (strategy, hooks, the PAUSE hook's timeout), a CodeDeploy (or pipeline)
    /// service's group for a ready option that waits for a person. `Ok` lists each service with
    /// what holds its traffic shift; `Err` says what each failing one lacks.
    pub async fn check_services(&self) -> Result<Vec<(ServiceName, String)>, ConvoyError> {
        let mut problems = Vec::new();
        let mut checked = Vec::new();
        for (service, settings) in &self.config.services {
            let auto = settings.approval == Approval::Auto;
            let gate = methods::of(&settings.deploy).approval_gate(self, service, auto, settings.bake_seconds).await?;
            match gate {
                Ok(gate) => checked.push((service.clone(), gate)),
                Err(problem) if problem.starts_with(&format!("service {service}")) => problems.push(problem),
                Err(problem) => problems.push(format!("service {service}: {problem}")),
            }
        }
        if problems.is_empty() { Ok(checked) } else { Err(ConvoyError::Refused(problems.join("\n"))) }
    }
}
