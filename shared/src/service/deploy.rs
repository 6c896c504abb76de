//! Deploying: one release in flight per service (the deploy lock), a claimed start, the release's
//! task-definition revision, and a CodeDeploy blue/green deployment, created at most once.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::{Convoy, Report, update, update_from};
use crate::bundle;
use crate::error::{ConvoyError, DeployError, TasksError};
use crate::names::{DeploymentId, DeploymentRef, PipelineExecutionId, ReleaseKey};
use crate::ports::{CodeDeployRequest, LockEntry, PipelineStart, ReleaseTaskSpec};
use crate::release::{DeployMethod, Event, LockDecision, Release, Stage, State};

impl Convoy {
    /// Starts the release's deployment if it is due, its service is free, and nobody else holds
    /// the start. At most one deployment per release: the claim is a conditional write, and a
    /// takeover after a crashed holder finds that holder's deployment by its marker.
    pub async fn start_deployment(
        &self,
        key: &ReleaseKey,
        now: DateTime<Utc>,
        known: Option<crate::ports::Stored>,
    ) -> Result<Option<Report>, ConvoyError> {
        let stored = match known {
            Some(stored) => stored,
            None => match self.store.load(key).await? {
                Some(stored) => stored,
                None => return Ok(None),
            },
        };
        let release = stored.release.clone();
        let Some(settings) = self.config.services.get(&key.service).cloned() else {
            let reason = format!("no deployment settings for service {} (CONVOY_SERVICE_SETTINGS)", key.service);
            return self.deployment_impossible(key, reason, now).await;
        };
        let mut gate = None;
        if matches!(release.state, State::Ready { next: Stage::Deployment } | State::Queued { .. }) {
            let entry = LockEntry { opened_at: release.opened_at(), release: key.release.clone() };
            let decision = self.change_lock(key, |lock| lock.acquire(&entry)).await?;
            if decision != LockDecision::Acquired {
                let event = Event::DeployLock { decision, at: now };
                let updated = update(self, key, |r| r.apply(&event)).await?;
                return Ok(updated.map(|u| self.finish(u)));
            }
            // Before the claim, so an outage here leaves the release as it was for a retry, and a
            // takeover (which may find a deployment the first holder made) never asks again.
            let auto = match crate::ceiling::approval(&settings, key, release.manifest.as_ref()) {
                Ok(approval) => approval == crate::manifest::Approval::Auto,
                Err(reason) => return self.deployment_impossible(key, reason.to_string(), now).await,
            };
            // Boxed: an SDK call's future is large, and this one sits in every path to a start.
            match Box::pin(self.approval_gate(&key.service, &settings, auto)).await? {
                Ok(holds) => gate = Some(holds),
                Err(reason) => {
                    warn!(%reason, "the traffic shift would not wait for the approval; nothing is started");
                    return self.deployment_impossible(key, reason, now).await;
                }
            }
        }
        let lease = self.config.claim_lease;
        let method = settings.method();
        let event = Event::DeploymentClaimed { method, at: now, lease, gate };
        let claimed = update_from(self, key, Some(stored), |r| r.apply(&event)).await?;
        let Some(claimed) = claimed else { return Ok(None) };
        if !claimed.changed {
            return Ok(Some(self.finish(claimed)));
        }
        let claim = crate::ports::Stored { release: claimed.release.clone(), version: claimed.version.clone() };
        // A takeover keeps the method of the first claim: switching methods mid-start could
        // deploy the release twice, once each way.
        let claimed_method = claimed.release.deployment.as_ref().map_or(method, |run| run.method);
        if claimed_method != method {
            let reason = format!(
                "the start was claimed for {claimed_method}, but the service's settings now deploy with {method}: \
                 Convoy will not start it twice; check {claimed_method} for a deployment the earlier start may \
                 have made"
            );
            return self.deployment_impossible(key, reason, now).await;
        }
        if let Some(pipeline) = &settings.pipeline {
            return match self.start_pipeline(&settings, pipeline, claim, now).await {
                Err(
                    ConvoyError::Tasks(TasksError::Rejected(reason))
                    | ConvoyError::Deploy(DeployError::Rejected(reason)),
                ) => {
                    warn!(%reason, "the pipeline cannot start");
                    self.deployment_impossible(key, format!("the pipeline cannot start: {reason}"), now).await
                }
                // Unavailable: the claim stays, and the reconciler takes the start over after its lease.
                other => other,
            };
        }
        if claimed_method == DeployMethod::EcsNative {
            return self.start_native(&settings, claim, now).await;
        }
        let target = match settings.codedeploy_target() {
            Ok(target) => target,
            Err(reason) => return self.deployment_impossible(key, reason, now).await,
        };
        let marker = key.tag();
        let claims = claimed.release.deployment.as_ref().map_or(1, |run| run.claims);
        if claims > 1
            && let Some(found) = self.deployer.find(&target.application, &target.deployment_group, &marker).await?
        {
            info!(deployment = %found, "adopting the deployment a previous holder created");
            self.deployments.note(&DeploymentRef::CodeDeploy(found.clone()), key).await?;
            return self.record_deployment_start(key, found, None, now, claim).await;
        }
        match self.launch_deployment(&claimed.release, &settings, &marker).await {
            Ok(created) => {
                self.record_deployment_start(key, created.deployment, Some(created.task_definition), now, claim).await
            }
            Err(
                ConvoyError::Tasks(TasksError::Rejected(reason)) | ConvoyError::Deploy(DeployError::Rejected(reason)),
            ) => {
                warn!(%reason, "the deployment cannot start");
                self.deployment_impossible(key, format!("the deployment cannot start: {reason}"), now).await
            }
            // The claim stays; once its lease is over the reconciler takes the start over.
            Err(err) => Err(err),
        }
    }

    /// What will hold a release's production traffic for its approval (`auto`: policy approves
    /// it): the CodeDeploy group it
    /// deploys in (directly or through its pipeline) must wait for a person
    /// ([`crate::ports::GroupWait::serves`]); an ECS native service must pass
    /// [`super::check_native_service`] (its PAUSE hook rolls back on timeout). `Ok(Ok(what))`
    /// says what holds it and for how long (kept in the record for `convoy status`);
    /// `Ok(Err(why))` when nothing would, or when AWS knows no such group or service.
    pub(super) async fn approval_gate(
        &self,
        service: &crate::names::ServiceName,
        settings: &crate::settings::ServiceSettings,
        auto: bool,
    ) -> Result<Result<String, String>, ConvoyError> {
        let service = service.as_str();
        if let Some(target) = &settings.ecs_native {
            return match self.deployer.native_service(&self.config.cluster, service).await {
                Ok(described) => Ok(super::check_native_service(service, target, &described)
                    .map(|()| super::native::native_gate(target, &described))),
                Err(DeployError::Rejected(reason)) => Ok(Err(reason)),
                Err(err) => Err(err.into()),
            };
        }
        let target = match settings.codedeploy_target() {
            Ok(target) => target,
            Err(reason) => return Ok(Err(reason)),
        };
        let wait = match self.deployer.group_wait(&target.application, &target.deployment_group).await {
            Ok(wait) => wait,
            Err(DeployError::Rejected(reason)) => {
                return Ok(Err(format!("the deployment group cannot be read: {reason}")));
            }
            Err(err) => return Err(err.into()),
        };
        let group = format!("{}/{}", target.application, target.deployment_group);
        Ok(match wait.serves(auto, settings.bake_seconds) {
            Ok(()) if wait.waits_for_a_person() => Ok(format!("CodeDeploy group {group} {}", wait.describe())),
            Ok(()) => Ok(format!(
                "CodeDeploy group {group} {} (accepted: policy approves without bake time)",
                wait.describe()
            )),
            Err(why) => Err(format!("{group}: {why}")),
        })
    }

    async fn launch_deployment(
        &self,
        release: &Release,
        settings: &crate::settings::ServiceSettings,
        marker: &str,
    ) -> Result<CreatedDeployment, ConvoyError> {
        let key = &release.key;
        let shape = self.tasks.service_shape(&self.config.cluster, key.service.as_str()).await?;
        let images = release.pinned_uris();
        let definition =
            self.definitions.register_release(&ReleaseTaskSpec { base: shape.task_definition, images }).await?;
        let target = settings.codedeploy_target().map_err(DeployError::Rejected)?;
        let request = CodeDeployRequest {
            application: target.application.clone(),
            deployment_group: target.deployment_group.clone(),
            task_definition: definition.clone(),
            container: target.container.clone(),
            port: target.port,
            verify_function: target.verify_function.clone(),
            description: format!("{marker} (Convoy release {key})"),
        };
        let deployment = self.deployer.create(&request).await?;
        // Before the record: the hook may come before the record is written.
        self.deployments.note(&DeploymentRef::CodeDeploy(deployment.clone()), key).await?;
        Ok(CreatedDeployment { deployment, task_definition: definition })
    }

    /// The `codepipeline` method: write the bundle once (recorded before anything starts), then
    /// start the execution pinned to it. A takeover restarts with the recorded bundle and the same
    /// `clientRequestToken`, so CodePipeline starts no second execution.
    async fn start_pipeline(
        &self,
        settings: &crate::settings::ServiceSettings,
        pipeline: &crate::settings::PipelineTarget,
        claim: crate::ports::Stored,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let key = claim.release.key.clone();
        let recorded = claim.release.deployment.as_ref().and_then(|run| run.pipeline.clone());
        let (version, claim) = match recorded {
            Some(written) if written.name != pipeline.name => {
                let reason = format!(
                    "the bundle was written for pipeline {}, but the service's settings now name {}: Convoy will \
                     not start a different pipeline on it",
                    written.name, pipeline.name
                );
                return self.deployment_impossible(&key, reason, now).await;
            }
            Some(written) => (written.version, claim),
            None => {
                let bundle = self.render_bundle(&claim.release, settings).await?;
                let version =
                    self.pipelines.write_bundle(&pipeline.source_bucket, &pipeline.source_key, bundle, &key).await?;
                let event = Event::BundleWritten {
                    pipeline: pipeline.name.clone(),
                    bundle: format!("s3://{}/{}", pipeline.source_bucket, pipeline.source_key),
                    version: version.clone(),
                    at: now,
                };
                let Some(updated) = update_from(self, &key, Some(claim), |r| r.apply(&event)).await? else {
                    return Ok(None);
                };
                let recorded = updated.release.deployment.as_ref().and_then(|run| run.pipeline.as_ref());
                let Some(recorded) = recorded.filter(|p| p.version == version) else {
                    // Another handler's bundle was recorded first; its start is that handler's.
                    return Ok(Some(self.finish(updated)));
                };
                let version = recorded.version.clone();
                (version, crate::ports::Stored { release: updated.release, version: updated.version })
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
        let execution = self.pipelines.start(&start).await?;
        info!(%execution, pipeline = %pipeline.name, "pipeline execution started");
        // Before the record: the execution's end event may come before the record is written.
        self.deployments.note(&DeploymentRef::Pipeline(execution.clone()), &key).await?;
        let event = Event::PipelineStarted { execution, at: now };
        let updated = update_from(self, &key, Some(claim), |r| r.apply(&event)).await?;
        Ok(updated.map(|u| self.finish(u)))
    }

    /// The bundle a pipeline's `CodeDeployToECS` action deploys: the service's task definition
    /// verbatim with the release's images pinned, the AppSpec, and the main container's image.
    async fn render_bundle(
        &self,
        release: &Release,
        settings: &crate::settings::ServiceSettings,
    ) -> Result<Vec<u8>, ConvoyError> {
        let shape = self.tasks.service_shape(&self.config.cluster, release.key.service.as_str()).await?;
        let described = self.definitions.describe_verbatim(&shape.task_definition).await?;
        let images = release.pinned_uris();
        let task_definition = bundle::render_task_definition(&described.0, &images)
            .map_err(|reason| TasksError::Rejected(format!("task definition {}: {reason}", shape.task_definition)))?;
        let target = settings.codedeploy_target().map_err(DeployError::Rejected)?;
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

    async fn record_deployment_start(
        &self,
        key: &ReleaseKey,
        deployment: DeploymentId,
        definition: Option<String>,
        now: DateTime<Utc>,
        claim: crate::ports::Stored,
    ) -> Result<Option<Report>, ConvoyError> {
        let event = Event::DeploymentStarted { deployment, task_definition: definition, at: now };
        let updated = update_from(self, key, Some(claim), |r| r.apply(&event)).await?;
        Ok(updated.map(|u| self.finish(u)))
    }

    pub(super) async fn deployment_impossible(
        &self,
        key: &ReleaseKey,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let event = Event::DeploymentImpossible { reason, at: now };
        match update(self, key, |r| r.apply(&event)).await? {
            Some(updated) => self.finish_and_perform(updated, now).await.map(Some),
            None => Ok(None),
        }
    }

    /// CodeDeploy or CodePipeline (an event, or a look-up) says how a deployment ended.
    pub async fn deployment_ended(
        &self,
        deployment: &DeploymentRef,
        end: crate::release::DeploymentEnd,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let Some(key) = self.deployments.find(deployment).await? else {
            info!(%deployment, "not a deployment Convoy started; ignored");
            return Ok(None);
        };
        let Some(stored) = self.store.load(&key).await? else { return Ok(None) };
        if let DeploymentRef::Pipeline(execution) = deployment
            && end != crate::release::DeploymentEnd::Succeeded
            && let Some(report) = self.follow_abandoned_deployment(&stored, execution, end, detail, now).await?
        {
            return Ok(Some(report));
        }
        let event = Event::DeploymentEnded {
            deployment: deployment.as_str().to_owned(),
            end,
            detail: detail.to_owned(),
            at: now,
        };
        match update_from(self, &key, Some(stored), |r| r.apply(&event)).await? {
            Some(updated) => self.finish_and_perform(updated, now).await.map(Some),
            None => Ok(None),
        }
    }
}

/// A CodeDeploy deployment Convoy created, and the task-definition revision it deploys.
struct CreatedDeployment {
    deployment: DeploymentId,
    task_definition: String,
}

impl Convoy {
    /// A pipeline execution that ended without success while the release still followed it: if
    /// its deploy action's deployment still runs (an execution stopped and abandoned), the release
    /// follows that deployment instead of ending, and keeps its service's lock.
    async fn follow_abandoned_deployment(
        &self,
        stored: &crate::ports::Stored,
        execution: &PipelineExecutionId,
        end: crate::release::DeploymentEnd,
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
        if !self.deployer.status(&deployment).await?.running() {
            return Ok(None);
        }
        warn!(%execution, %deployment, "the execution ended, but its deployment still runs: following it");
        self.deployments.note(&DeploymentRef::CodeDeploy(deployment.clone()), key).await?;
        let reason = format!("the execution ended {end:?} ({detail}), but this deployment still runs");
        let event = Event::DeploymentAdopted { deployment, reason, at: now };
        let updated = update_from(self, key, Some(stored.clone()), |r| r.apply(&event)).await?;
        Ok(updated.map(|u| self.finish(u)))
    }
}
