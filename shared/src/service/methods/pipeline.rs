//! The `codepipeline` method: Convoy writes the deploy bundle once (recorded before anything
//! starts) and starts the service's pipeline pinned to it; the pipeline's `CodeDeployToECS`
//! action creates the CodeDeploy deployment, which the release follows from its hook on (or once
//! the execution ends while that deployment still runs).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::Method;
use super::codedeploy::group_gate;
use crate::bundle;
use crate::error::{ConvoyError, DeployError, TasksError};
use crate::names::{DeploymentId, DeploymentRef, PipelineExecutionId, ReleaseKey, ServiceName};
use crate::ports::{DeploymentOrigin, PipelineStart, Stored};
use crate::release::{DeploymentEnd, Release, deployment};
use crate::service::transition::Outbox;
use crate::service::{Convoy, Report};
use crate::settings::{CodeDeployTarget, DeployTarget, PipelineTarget};

/// How much earlier than Convoy's record of the execution's start a deployment may have been
/// created (clocks differ) and still be taken for the execution's.
const ADOPTION_CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(2);

pub(super) struct PipelineMethod<'a> {
    pub codedeploy: &'a CodeDeployTarget,
    pub pipeline: &'a PipelineTarget,
}

#[async_trait]
impl Method for PipelineMethod<'_> {
    async fn approval_gate(
        &self,
        convoy: &Convoy,
        _: &ServiceName,
        auto: bool,
        bake_seconds: u64,
    ) -> Result<Result<String, String>, ConvoyError> {
        group_gate(convoy, self.codedeploy, auto, bake_seconds).await
    }

    /// A takeover restarts with the recorded bundle and the same `clientRequestToken`, so
    /// CodePipeline starts no second execution.
    async fn start(
        &self,
        convoy: &Convoy,
        outbox: &Outbox,
        claim: Stored,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let key = claim.release.key.clone();
        match self.start_execution(convoy, outbox, claim, now).await {
            Err(
                ConvoyError::Tasks(TasksError::Rejected(reason)) | ConvoyError::Deploy(DeployError::Rejected(reason)),
            ) => {
                warn!(%reason, "the pipeline cannot start");
                convoy.deployment_impossible(outbox, &key, format!("the pipeline cannot start: {reason}"), now).await
            }
            // Unavailable: the claim stays, and the reconciler takes the start over after its lease.
            other => other,
        }
    }
}

impl PipelineMethod<'_> {
    async fn start_execution(
        &self,
        convoy: &Convoy,
        outbox: &Outbox,
        claim: Stored,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let pipeline = self.pipeline;
        let key = claim.release.key.clone();
        let recorded = claim.release.deployment.as_ref().and_then(|run| run.pipeline.clone());
        let (version, claim) = match recorded {
            Some(written) if written.name != pipeline.name => {
                let reason = format!(
                    "the bundle was written for pipeline {}, but the service's settings now name {}: Convoy will \
                     not start a different pipeline on it",
                    written.name, pipeline.name
                );
                return convoy.deployment_impossible(outbox, &key, reason, now).await;
            }
            Some(written) => (written.version, claim),
            None => {
                let bundle = self.render_bundle(convoy, &claim.release).await?;
                let version =
                    convoy.pipelines.write_bundle(&pipeline.source_bucket, &pipeline.source_key, bundle, &key).await?;
                let event = deployment::Event::BundleWritten {
                    pipeline: pipeline.name.clone(),
                    bundle: format!("s3://{}/{}", pipeline.source_bucket, pipeline.source_key),
                    version: version.clone(),
                    at: now,
                };
                let Some(written) = convoy.transition(outbox, &key, Some(claim), &event).await? else {
                    return Ok(None);
                };
                let recorded = written.release.deployment.as_ref().and_then(|run| run.pipeline.as_ref());
                if recorded.is_none_or(|p| p.version != version) {
                    // Another handler's bundle was recorded first; its start is that handler's.
                    return Ok(Some(written.report()));
                }
                (version, written.stored())
            }
        };
        let token = claim.release.deployment.as_ref().map(|run| run.token.clone()).unwrap_or_default();
        let start = PipelineStart {
            pipeline: pipeline.name.clone(),
            source_action: pipeline.source_action.clone(),
            source_version: version,
            variables: vec![(pipeline.release_variable.clone(), key.release.to_string())],
            token,
        };
        let execution = convoy.pipelines.start(&start).await?;
        info!(%execution, pipeline = %pipeline.name, "pipeline execution started");
        // Before the record: the execution's end event may come before the record is written.
        convoy.deployments.note(&DeploymentRef::Pipeline(execution.clone()), &key).await?;
        let event = deployment::Event::PipelineStarted { execution, at: now };
        let outcome = convoy.transition(outbox, &key, Some(claim), &event).await?;
        Ok(outcome.map(|o| o.report()))
    }

    /// The bundle a pipeline's `CodeDeployToECS` action deploys: the service's task definition
    /// verbatim with the release's images pinned, the AppSpec, and the main container's image.
    async fn render_bundle(&self, convoy: &Convoy, release: &Release) -> Result<Vec<u8>, ConvoyError> {
        let shape = convoy.tasks.service_shape(&convoy.config.cluster, release.key.service.as_str()).await?;
        let base = release.derivation_base(&release.key.service).unwrap_or(&shape.task_definition);
        let described = convoy.definitions.describe_verbatim(base).await?;
        let images = release.pinned_uris();
        let task_definition = bundle::render_task_definition(&described.0, &images)
            .map_err(|reason| TasksError::Rejected(format!("task definition {base}: {reason}")))?;
        let target = self.codedeploy;
        let main_image = bundle::container_image(&task_definition, &target.container).ok_or_else(|| {
            TasksError::Rejected(format!(
                "the load balancer's container {:?} is not in task definition {}",
                target.container, shape.task_definition
            ))
        })?;
        let bundle = bundle::Bundle {
            task_definition,
            app_spec: bundle::app_spec(
                bundle::TASK_DEFINITION_PLACEHOLDER,
                &target.container,
                target.port,
                &target.verify_function,
            ),
            image_detail: bundle::image_detail(&main_image),
        };
        Ok(bundle.to_zip().map_err(TasksError::Rejected)?)
    }
}

/// Whether a deployment created at `created_at` may be the one an execution started at `started`
/// made, when CodePipeline does not say.
fn created_after(created_at: Option<DateTime<Utc>>, started: Option<DateTime<Utc>>) -> bool {
    match (created_at, started) {
        (Some(created), Some(started)) => created >= started - ADOPTION_CLOCK_SKEW,
        _ => false,
    }
}

impl Convoy {
    /// Whether CodePipeline reports `deployment` as the one the release's pipeline execution
    /// created; before it reports any, whether the deployment was created after the execution
    /// started (the rule by which `verify` adopted it; the start time is the record's, so for a
    /// pipeline whose action reports nothing this check trusts the record that far).
    pub(super) async fn pipeline_reports(
        &self,
        key: &ReleaseKey,
        deployment: &DeploymentId,
        created_at: Option<DateTime<Utc>>,
    ) -> Result<bool, ConvoyError> {
        let Some(stored) = self.store.load(key).await? else { return Ok(false) };
        // The execution the release started (its record keeps it after adopting the deployment).
        let run = stored.release.deployment.as_ref().and_then(|d| d.pipeline.as_ref());
        let Some(execution) = run.and_then(|p| p.execution.as_ref()) else { return Ok(false) };
        // The operator's pipeline; without the settings (CLI, dashboard), the one the record names,
        // which CodePipeline must still report as having created this deployment.
        let configured = match self.config.services.get(&key.service).map(|s| &s.deploy) {
            Some(DeployTarget::CodePipeline { pipeline, .. }) => Some(&pipeline.name),
            _ => None,
        };
        let Some(pipeline) = configured.or(run.map(|p| &p.name)) else { return Ok(false) };
        let started = stored.release.deployment.as_ref().and_then(|run| run.started_at);
        match self.pipelines.deployment_of(pipeline, execution).await {
            Ok(Some(reported)) => Ok(reported == *deployment),
            Ok(None) | Err(DeployError::Rejected(_)) => Ok(created_after(created_at, started)),
            Err(err) => Err(err.into()),
        }
    }

    /// A deployment that a pipeline's deploy action created: CodeDeploy names only its group.
    /// It belongs to the release that holds the deploy lock of the service deploying through that
    /// group, when that release follows its pipeline execution, and CodePipeline reports this
    /// deployment as that execution's (or, before it reports any, the deployment was created
    /// after the execution started: an older, abandoned deployment is never taken for it).
    pub(in crate::service) async fn adopt_pipeline_deployment(
        &self,
        deployment: &DeploymentId,
        origin: &DeploymentOrigin,
    ) -> Result<Option<ReleaseKey>, ConvoyError> {
        if origin.rollback {
            return Ok(None); // a rollback's re-run of the hooks: never a release's deployment
        }
        let services = self.config.services.iter().filter(|(_, settings)| match &settings.deploy {
            DeployTarget::CodePipeline { codedeploy, .. } => {
                codedeploy.application == origin.application && codedeploy.deployment_group == origin.deployment_group
            }
            _ => false,
        });
        for (service, _) in services {
            let Some((lock, _)) = self.locks.load(service).await? else { continue };
            let Some(holder) = lock.holder else { continue };
            let key = ReleaseKey { service: service.clone(), release: holder.release };
            let Some(stored) = self.store.load(&key).await? else { continue };
            let release = &stored.release;
            let Some((pipeline, execution)) = release.following_pipeline() else { continue };
            let created_after_start =
                created_after(origin.created_at, release.deployment.as_ref().and_then(|r| r.started_at));
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

    /// A pipeline execution that ended without success while the release still followed it: if
    /// its deploy action's deployment still runs (an execution stopped and abandoned), the release
    /// follows that deployment instead of ending, and keeps its service's lock.
    pub(in crate::service) async fn follow_abandoned_deployment(
        &self,
        outbox: &Outbox,
        stored: &Stored,
        execution: &PipelineExecutionId,
        end: DeploymentEnd,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let key = &stored.release.key;
        let Some((pipeline, followed)) = stored.release.following_pipeline() else { return Ok(None) };
        if followed != execution {
            return Ok(None);
        }
        let deployment = match self.pipelines.deployment_of(pipeline, execution).await {
            Ok(Some(deployment)) => deployment,
            Ok(None) | Err(DeployError::Rejected(_)) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        if !self.codedeploy.status(&deployment).await?.running() {
            return Ok(None);
        }
        warn!(%execution, %deployment, "the execution ended, but its deployment still runs: following it");
        self.deployments.note(&DeploymentRef::CodeDeploy(deployment.clone()), key).await?;
        let reason = format!("the execution ended {end:?} ({detail}), but this deployment still runs");
        let event = deployment::Event::Adopted { deployment, reason, at: now };
        let outcome = self.transition(outbox, key, Some(stored.clone()), &event).await?;
        Ok(outcome.map(|o| o.report()))
    }
}
