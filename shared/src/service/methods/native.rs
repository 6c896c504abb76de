//! The `ecs-native` method: Convoy updates a service that deploys blue/green natively
//! (`UpdateService` with the release's revision, at most once per release), then follows ECS's
//! service deployment: its `POST_TEST_TRAFFIC_SHIFT` hook verifies (`verification.rs`), its
//! `PAUSE` hook waits for `convoy approve`/`reject` (`decide.rs`), and "ECS Deployment State
//! Change" events (or the reconciler's `DescribeServiceDeployments`) end the record.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::Method;
use crate::approval_gate::{check_native_service, native_gate};
use crate::error::{ConvoyError, DeployError, TasksError};
use crate::names::{DeploymentRef, ReleaseKey, ServiceDeploymentArn, ServiceName};
use crate::ports::{DeploymentStatus, ReleaseTaskSpec, Stored};
use crate::release::{Release, deployment};
use crate::service::confirm;
use crate::service::transition::Outbox;
use crate::service::{Convoy, Report};
use crate::settings::EcsNativeTarget;

pub(super) struct NativeMethod<'a> {
    pub target: &'a EcsNativeTarget,
}

#[async_trait]
impl Method for NativeMethod<'_> {
    /// The service must pass [`check_native_service`]: its PAUSE hook rolls back on timeout.
    async fn approval_gate(
        &self,
        convoy: &Convoy,
        service: &ServiceName,
        _: bool,
        _: u64,
    ) -> Result<Result<String, String>, ConvoyError> {
        let service = service.as_str();
        match convoy.service_deployments.describe_service(&convoy.config.cluster, service).await {
            Ok(described) => {
                Ok(check_native_service(service, self.target, &described)
                    .map(|()| native_gate(self.target, &described)))
            }
            Err(DeployError::Rejected(reason)) => Ok(Err(reason)),
            Err(err) => Err(err.into()),
        }
    }

    /// Checks the service, registers the release's revision and records it, then `UpdateService`.
    /// A takeover that finds a recorded revision first asks ECS for a service deployment of it
    /// (`ListServiceDeployments`), and adopts it instead of updating the service again.
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
            Ok(described) => check_native_service(&service, self.target, &described),
            Err(DeployError::Rejected(reason)) => Err(reason),
            Err(err) => return Err(err.into()),
        };
        if let Err(reason) = checked {
            warn!(%reason, "the service cannot deploy natively");
            return convoy.deployment_impossible(outbox, &key, reason, now).await;
        }
        update_service_once(convoy, outbox, claim, Previous::Skip, now).await
    }
}

/// Whether the revision the service ran before is recorded with the release's (the rolling
/// method puts the service back on it; blue/green keeps the old task set itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Previous {
    Record,
    Skip,
}

/// The start both ECS methods share, once the service is checked: register the release's
/// revision and record it (with the previous one, `keep`), then `UpdateService` once. A takeover
/// that finds a recorded revision asks ECS for a service deployment of it first
/// (`ListServiceDeployments`) and adopts it instead of updating the service again.
pub(super) async fn update_service_once(
    convoy: &Convoy,
    outbox: &Outbox,
    claim: Stored,
    keep: Previous,
    now: DateTime<Utc>,
) -> Result<Option<Report>, ConvoyError> {
    let key = claim.release.key.clone();
    let (cluster, service) = (convoy.config.cluster.clone(), key.service.to_string());
    let recorded = claim.release.deployment.as_ref().and_then(|run| run.task_definition.clone());
    let (definition, claim) = match recorded {
        Some(definition) => {
            if let Some(found) = convoy.service_deployments.find(&cluster, &service, &definition).await? {
                info!(service_deployment = %found, "adopting the service deployment a previous holder started");
                convoy.deployments.note(&DeploymentRef::Service(found.clone()), &key).await?;
                return record_start(convoy, outbox, found, definition, now, claim).await;
            }
            (definition, claim)
        }
        None => {
            let shape = convoy.tasks.service_shape(&cluster, &service).await?;
            let previous = shape.task_definition.clone();
            // The base the drift check chose; `previous` stays what the service runs (put back to it).
            let base = claim.release.derivation_base(&key.service).map_or(shape.task_definition, str::to_owned);
            let spec = ReleaseTaskSpec { base, images: claim.release.pinned_uris() };
            let definition = match convoy.definitions.register_release(&spec).await {
                Ok(definition) => definition,
                Err(TasksError::Rejected(reason)) => {
                    let reason = format!("the deployment cannot start: {reason}");
                    return convoy.deployment_impossible(outbox, &key, reason, now).await;
                }
                Err(err) => return Err(err.into()),
            };
            let previous = match keep {
                Previous::Record => Some(previous),
                Previous::Skip => None,
            };
            let event =
                deployment::Event::RevisionRegistered { task_definition: definition.clone(), previous, at: now };
            let Some(registered) = convoy.transition(outbox, &key, Some(claim), &event).await? else {
                return Ok(None);
            };
            let ours = registered.release.deployment.as_ref().and_then(|run| run.task_definition.as_deref())
                == Some(definition.as_str());
            if !ours || !registered.changed {
                // Another handler's revision was recorded first; the update is that handler's.
                return Ok(Some(registered.report()));
            }
            (definition, registered.stored())
        }
    };
    let started = match convoy.service_deployments.start(&cluster, &service, &definition).await {
        Ok(started) => started,
        Err(DeployError::Rejected(reason)) => {
            warn!(%reason, "ECS refused the update");
            let reason = format!("UpdateService was refused: {reason}");
            return convoy.deployment_impossible(outbox, &key, reason, now).await;
        }
        // The claim and the revision stay; a takeover after the lease looks for the deployment.
        Err(err) => return Err(err.into()),
    };
    info!(service_deployment = %started, task_definition = %definition, "service deployment started");
    // Before the record: the hook may come before the record is written.
    convoy.deployments.note(&DeploymentRef::Service(started.clone()), &key).await?;
    record_start(convoy, outbox, started, definition, now, claim).await
}

pub(super) async fn record_start(
    convoy: &Convoy,
    outbox: &Outbox,
    started: ServiceDeploymentArn,
    definition: String,
    now: DateTime<Utc>,
    claim: Stored,
) -> Result<Option<Report>, ConvoyError> {
    let key = claim.release.key.clone();
    let event = deployment::Event::Started { deployment: started.into(), task_definition: Some(definition), at: now };
    let outcome = convoy.transition(outbox, &key, Some(claim), &event).await?;
    Ok(outcome.map(|o| o.report()))
}

impl Convoy {
    /// Continues (or rolls back) a service deployment paused at its pause hook.
    pub(super) async fn steer_service_deployment(
        &self,
        arn: &ServiceDeploymentArn,
        roll_back: bool,
    ) -> Result<(), ConvoyError> {
        if roll_back {
            self.service_deployments.roll_back(arn).await?;
        } else {
            self.service_deployments.continue_deployment(arn).await?;
        }
        Ok(())
    }

    /// Where the release's service deployment stands, with what ECS says of its progress recorded
    /// (it may have gone past the approval pause unattributed: CloudTrail is then asked who).
    pub(super) async fn observe_native(
        &self,
        outbox: &Outbox,
        release: &Release,
        arn: &ServiceDeploymentArn,
    ) -> Result<DeploymentStatus, ConvoyError> {
        let described = self.service_deployments.status(arn).await?;
        let event = deployment::Event::NativeObserved { progress: described.progress };
        self.transition(outbox, &release.key, None, &event).await?;
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
        let outbox = Outbox::new(now);
        let result = self.native_deployment_changed_in(&outbox, service, event_name, reason, now).await;
        self.publish(outbox).await;
        result
    }

    async fn native_deployment_changed_in(
        &self,
        outbox: &Outbox,
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
        let key = ReleaseKey::new(name, holder.release);
        let Some(stored) = self.store.load(&key).await? else { return Ok(None) };
        let Some(arn) = stored.release.native_deployment() else {
            info!(release = %key, event_name, "the release follows no service deployment; ignored");
            return Ok(None);
        };
        // Asked first, recorded only once confirmed: a forged end costs no write.
        let described = self.service_deployments.status(&arn).await?;
        let deployment = DeploymentRef::Service(arn);
        let confirmed = Convoy::confirm_native_change(&deployment, event_name, described.status);
        if confirmed.is_ok() {
            let event = deployment::Event::NativeObserved { progress: described.progress };
            self.transition(outbox, &key, Some(stored), &event).await?;
        }
        match confirmed {
            Ok(Some((end, detail))) => {
                let detail = if reason.is_empty() { detail } else { format!("{detail} ({event_name}: {reason})") };
                self.deployment_ended_in(outbox, &deployment, end, &detail, now).await
            }
            Ok(None) => {
                info!(release = %key, %deployment, event_name, reason, "the service deployment runs");
                Ok(None)
            }
            Err(why) => {
                confirm::refuse(confirm::kind::DEPLOYMENT_END, Some(&key), &why);
                Ok(None)
            }
        }
    }
}
