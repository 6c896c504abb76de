//! How a release deploys: one strategy per method, behind [`Method`], chosen once from the
//! service's settings ([`of`]); a release keeps the method it was claimed with. What concerns a
//! deployment already running follows its typed id ([`DeploymentRef`]): a CodeDeploy deployment,
//! a pipeline execution or an ECS service deployment. A new method is a file here, a variant of
//! [`DeployTarget`] and of [`DeployMethod`](crate::release::DeployMethod), and an arm in [`of`].

mod codedeploy;
mod native;
mod pipeline;
mod rolling;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::transition::Outbox;
use super::{Convoy, Report};
use crate::error::ConvoyError;
use crate::names::{DeploymentRef, ServiceName};
use crate::ports::{DeploymentStatus, Stored};
use crate::release::{Hook, Release};
use crate::settings::DeployTarget;

/// One deploy method's start.
#[async_trait]
pub(super) trait Method: Send + Sync {
    /// What will hold the release's production traffic for its approval (`auto`: policy approves
    /// it, after `bake_seconds`), checked before its start is claimed. `Ok(Ok(what))` says what
    /// holds it and for how long (kept in the record for `convoy status`); `Ok(Err(why))` when
    /// nothing would, or AWS knows no such group or service.
    ///
    /// # Errors
    /// [`ConvoyError`] when AWS cannot be asked (worth a retry).
    async fn approval_gate(
        &self,
        convoy: &Convoy,
        service: &ServiceName,
        auto: bool,
        bake_seconds: u64,
    ) -> Result<Result<String, String>, ConvoyError>;

    /// Starts the deployment whose start `claim` (the record as the claim stored it) holds, at
    /// most once per release: a takeover (`claims > 1`) finds what the first holder started
    /// before it would start anything. What AWS refuses for good ends the release
    /// `Failed(deployment)` with the reason.
    ///
    /// # Errors
    /// [`ConvoyError`] when AWS or the store cannot be reached: the claim stays, and a takeover
    /// after its lease starts over.
    async fn start(
        &self,
        convoy: &Convoy,
        outbox: &Outbox,
        claim: Stored,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError>;
}

/// The strategy of the method `target` chooses.
pub(super) fn of(target: &DeployTarget) -> Box<dyn Method + '_> {
    match target {
        DeployTarget::CodeDeploy(target) => Box::new(codedeploy::CodeDeployMethod { target }),
        DeployTarget::CodePipeline { codedeploy, pipeline } => {
            Box::new(pipeline::PipelineMethod { codedeploy, pipeline })
        }
        DeployTarget::EcsNative(target) => Box::new(native::NativeMethod { target }),
        DeployTarget::EcsRolling(target) => Box::new(rolling::RollingMethod { target }),
    }
}

impl Convoy {
    /// Where the release's deployment stands (the reconciler's look): the pipeline execution's
    /// while the release follows it, else its CodeDeploy or ECS deployment's. What ECS says of a
    /// service deployment is recorded on the way.
    pub(super) async fn deployment_status(
        &self,
        outbox: &Outbox,
        release: &Release,
    ) -> Result<Option<(DeploymentRef, DeploymentStatus)>, ConvoyError> {
        let Some(deployment) = release.state.deployment() else { return Ok(None) };
        let status = match deployment {
            DeploymentRef::Pipeline(execution) => match release.following_pipeline() {
                Some((pipeline, _)) => self.pipelines.status(pipeline, execution).await?,
                None => return Ok(None),
            },
            DeploymentRef::Service(arn) => self.observe_native(outbox, release, arn).await?,
            DeploymentRef::CodeDeploy(id) => self.codedeploy.status(id).await?,
        };
        Ok(Some((deployment.clone(), status)))
    }

    /// Continues (or, with `roll_back`, rolls back) the release's deployment with the credentials
    /// this Convoy was wired with: an ECS service deployment through its pause hook; a CodeDeploy
    /// one only once AWS confirms it is Convoy's, for this release, else [`ConvoyError::Refused`]
    /// with why. A pipeline execution has no pause to continue. An ECS native hook that verified
    /// the release names the service deployment that pauses for the approval, whatever the state
    /// follows.
    pub(super) async fn steer(
        &self,
        release: &Release,
        deployment: &DeploymentRef,
        roll_back: bool,
    ) -> Result<(), ConvoyError> {
        if let Some(Hook::EcsNative { service_deployment, .. }) = release.verification.as_ref().map(|v| &v.hook) {
            return self.steer_service_deployment(service_deployment, roll_back).await;
        }
        match deployment {
            DeploymentRef::Service(arn) => self.steer_service_deployment(arn, roll_back).await,
            DeploymentRef::CodeDeploy(id) => self.steer_codedeploy(release, id, roll_back).await,
            DeploymentRef::Pipeline(execution) => Err(ConvoyError::Refused(format!(
                "release {}: pipeline execution {execution} has not reached a deployment to continue yet",
                release.key
            ))),
        }
    }

    /// [`Convoy::steer`] for a decision of Convoy's own (policy's continue, an alarm's rollback):
    /// a refusal or failure is logged, and the reconciler asks again while the deployment runs.
    pub(super) async fn steer_as_convoy(&self, release: &Release, deployment: &DeploymentRef, roll_back: bool) {
        match self.steer(release, deployment, roll_back).await {
            Ok(()) => {}
            Err(ConvoyError::Refused(why)) => {
                tracing::warn!(%deployment, %why, "not steered: AWS does not confirm the record");
            }
            // CodeDeploy may not be waiting yet (or at all, without a wait configured), or be
            // unreachable: the reconciler asks again while the deployment runs.
            Err(err) => {
                tracing::info!(error = %err, roll_back, "could not steer the deployment now; the reconciler retries")
            }
        }
    }
}
