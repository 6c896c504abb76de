//! The `codedeploy` method: Convoy registers the release's task-definition revision and creates
//! the CodeDeploy (ECS blue/green) deployment itself, at most once per release. Also what every
//! CodeDeploy deployment shares, a pipeline's among them: the group must wait for a person, and
//! Convoy continues or rolls one back only once CodeDeploy confirms it is the release's.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::Method;
use crate::error::{ConvoyError, DeployError, TasksError};
use crate::names::{DeploymentId, DeploymentRef, ReleaseKey, ServiceName};
use crate::ports::{CodeDeployRequest, ReleaseTaskSpec, Stored};
use crate::release::{Release, deployment};
use crate::service::transition::Outbox;
use crate::service::{Convoy, Report};
use crate::settings::CodeDeployTarget;

pub(super) struct CodeDeployMethod<'a> {
    pub target: &'a CodeDeployTarget,
}

#[async_trait]
impl Method for CodeDeployMethod<'_> {
    async fn approval_gate(
        &self,
        convoy: &Convoy,
        _: &ServiceName,
        auto: bool,
        bake_seconds: u64,
    ) -> Result<Result<String, String>, ConvoyError> {
        group_gate(convoy, self.target, auto, bake_seconds).await
    }

    async fn start(
        &self,
        convoy: &Convoy,
        outbox: &Outbox,
        claim: Stored,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let key = claim.release.key.clone();
        let marker = key.tag();
        let claims = claim.release.deployment.as_ref().map_or(1, |run| run.claims);
        let target = self.target;
        if claims > 1
            && let Some(found) = convoy.codedeploy.find(&target.application, &target.deployment_group, &marker).await?
        {
            info!(deployment = %found, "adopting the deployment a previous holder created");
            convoy.deployments.note(&DeploymentRef::CodeDeploy(found.clone()), &key).await?;
            return record_start(convoy, outbox, found, None, now, claim).await;
        }
        match launch(convoy, &claim.release, target, &marker).await {
            Ok((deployment, definition)) => {
                record_start(convoy, outbox, deployment, Some(definition), now, claim).await
            }
            Err(
                ConvoyError::Tasks(TasksError::Rejected(reason)) | ConvoyError::Deploy(DeployError::Rejected(reason)),
            ) => {
                warn!(%reason, "the deployment cannot start");
                let reason = format!("the deployment cannot start: {reason}");
                convoy.deployment_impossible(outbox, &key, reason, now).await
            }
            // The claim stays; once its lease is over the reconciler takes the start over.
            Err(err) => Err(err),
        }
    }
}

/// What holds the traffic shift of a deployment in `target`'s group: its ready option must wait
/// for a person ([`crate::ports::GroupWait::serves`]).
pub(super) async fn group_gate(
    convoy: &Convoy,
    target: &CodeDeployTarget,
    auto: bool,
    bake_seconds: u64,
) -> Result<Result<String, String>, ConvoyError> {
    let wait = match convoy.codedeploy.group_wait(&target.application, &target.deployment_group).await {
        Ok(wait) => wait,
        Err(DeployError::Rejected(reason)) => return Ok(Err(format!("the deployment group cannot be read: {reason}"))),
        Err(err) => return Err(err.into()),
    };
    let group = format!("{}/{}", target.application, target.deployment_group);
    Ok(match wait.serves(auto, bake_seconds) {
        Ok(()) if wait.waits_for_a_person() => Ok(format!("CodeDeploy group {group} {}", wait.describe())),
        Ok(()) => {
            Ok(format!("CodeDeploy group {group} {} (accepted: policy approves without bake time)", wait.describe()))
        }
        Err(why) => Err(format!("{group}: {why}")),
    })
}

/// Registers the release's revision and creates its deployment, noted in the index before the
/// record (the hook may come first).
async fn launch(
    convoy: &Convoy,
    release: &Release,
    target: &CodeDeployTarget,
    marker: &str,
) -> Result<(DeploymentId, String), ConvoyError> {
    let key = &release.key;
    let shape = convoy.tasks.service_shape(&convoy.config.cluster, key.service.as_str()).await?;
    let images = release.pinned_uris();
    let base = release.derivation_base(&key.service).map_or(shape.task_definition, str::to_owned);
    let definition = convoy.definitions.register_release(&ReleaseTaskSpec { base, images }).await?;
    let request = CodeDeployRequest {
        application: target.application.clone(),
        deployment_group: target.deployment_group.clone(),
        task_definition: definition.clone(),
        container: target.container.clone(),
        port: target.port,
        verify_function: target.verify_function.clone(),
        description: format!("{marker} (Convoy release {key})"),
    };
    let deployment = convoy.codedeploy.create(&request).await?;
    convoy.deployments.note(&DeploymentRef::CodeDeploy(deployment.clone()), key).await?;
    Ok((deployment, definition))
}

async fn record_start(
    convoy: &Convoy,
    outbox: &Outbox,
    deployment: DeploymentId,
    definition: Option<String>,
    now: DateTime<Utc>,
    claim: Stored,
) -> Result<Option<Report>, ConvoyError> {
    let key = claim.release.key.clone();
    let event = deployment::Event::Started { deployment: deployment.into(), task_definition: definition, at: now };
    let outcome = convoy.transition(outbox, &key, Some(claim), &event).await?;
    Ok(outcome.map(|o| o.report()))
}

impl Convoy {
    /// Continues (or rolls back) a CodeDeploy deployment, once CodeDeploy confirms it is the
    /// release's ([`Convoy::confirm_convoys_deployment`]).
    pub(super) async fn steer_codedeploy(
        &self,
        release: &Release,
        deployment: &DeploymentId,
        roll_back: bool,
    ) -> Result<(), ConvoyError> {
        let key = &release.key;
        if let Err(why) = self.confirm_convoys_deployment(key, deployment).await? {
            return Err(ConvoyError::Refused(format!("release {key}: {why}")));
        }
        if roll_back {
            self.codedeploy.roll_back(deployment).await?;
        } else {
            self.codedeploy.continue_traffic(deployment).await?;
        }
        Ok(())
    }

    /// Whether AWS confirms what the record says before Convoy reroutes production traffic (or
    /// rolls it back): the deployment is in the deployment group of the release's service, Convoy
    /// created it for this release (its description carries the release's marker, or, for the
    /// pipeline method, CodePipeline reports it as the release's execution's). The record alone is
    /// not enough: anyone who can write to the state bucket could have written it. That the
    /// deployment waits for the reroute is CodeDeploy's own check: it refuses `ContinueDeployment`
    /// otherwise (`DeploymentIsNotInReadyStateException`), and an unknown deployment with
    /// `DeploymentDoesNotExistException`, which the call then reports. `Ok(Err(why))` when AWS
    /// does not confirm.
    async fn confirm_convoys_deployment(
        &self,
        key: &ReleaseKey,
        deployment: &DeploymentId,
    ) -> Result<Result<(), String>, ConvoyError> {
        let Some(origin) = self.codedeploy.origin(deployment).await? else { return Ok(Ok(())) };
        // The CLI and the dashboard run without the operator's service settings: there the group
        // is not checked, the marker (or the pipeline's report) still is.
        let settings = self.config.services.get(&key.service);
        if let Some(group) = settings.and_then(|s| s.deploy.codedeploy())
            && (origin.application != group.application || origin.deployment_group != group.deployment_group)
        {
            return Ok(Err(format!(
                "deployment {deployment} is in {}/{}, not the service's {}/{}",
                origin.application, origin.deployment_group, group.application, group.deployment_group
            )));
        }
        let marked = origin.description.as_deref().is_some_and(|d| crate::names::carries_marker(d, &key.tag()));
        if !marked && !self.pipeline_reports(key, deployment, origin.created_at).await? {
            return Ok(Err(format!("deployment {deployment} was not created by Convoy for release {key}")));
        }
        Ok(Ok(()))
    }
}
