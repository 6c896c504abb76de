//! The reconciler: on a schedule, re-derives every release in progress from AWS, so a lost event
//! delays a release by one period at most. ECR push events are best effort (a Collecting release
//! looks its images up again, and fails at images once past its deadline); a STOPPED task event can be missed (a Migrating release asks ECS);
//! a migration that overran its timeout fails; a start whose holder died is taken over; a
//! manifest whose upload event was lost is opened (`lost_manifests.rs`).

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use tracing::{Instrument, info, warn};

use super::transition::Outbox;
use super::{Convoy, Report, release_span};
use crate::error::{ConvoyError, StoreError};
use crate::names::{DeploymentId, DeploymentRef, ReleaseKey};
use crate::ports::{DeploymentStatus, STATUS_BATCH, Stored};
use crate::release::{Effect, Release, Stage, State, approval, migration};

/// How many releases one reconciler run visits at once: enough that thousands fit one period
/// (each visit waits on S3 and one AWS call or two), few enough to stay far below S3's and the
/// deployment services' request rates.
pub const CONCURRENT_VISITS: usize = 16;

/// How many records one run loads at once, ahead of the visits: S3 GETs only (S3 serves 5,500 a
/// second per prefix; this many at ~20 ms each is under half of that), so more than the visits.
pub const CONCURRENT_LOADS: usize = 48;

/// What one reconciler run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reconciliation {
    /// The releases whose record changed or whose stage was started.
    pub reports: Vec<Report>,
    /// Active releases visited, and those left for the next run because the time ran out.
    pub visited: usize,
    pub left: usize,
}

impl Convoy {
    /// Visits every active release once, without a time limit.
    pub async fn reconcile(&self, now: DateTime<Utc>) -> Result<Vec<Report>, ConvoyError> {
        Ok(self.reconcile_within(now, None).await?.reports)
    }

    /// Visits the active releases, [`CONCURRENT_VISITS`] at a time, starting no visit once
    /// `budget` is spent (the function's own deadline, less a margin for the visits under way).
    /// Each run starts at a random place in the list, so when the time does not suffice for all,
    /// no release is always last: every one is visited within a few periods.
    pub async fn reconcile_within(
        &self,
        now: DateTime<Utc>,
        budget: Option<std::time::Duration>,
    ) -> Result<Reconciliation, ConvoyError> {
        let outbox = Outbox::new(now);
        let result = self.reconcile_in(&outbox, now, budget).await;
        self.publish(outbox).await;
        result
    }

    async fn reconcile_in(
        &self,
        outbox: &Outbox,
        now: DateTime<Utc>,
        budget: Option<std::time::Duration>,
    ) -> Result<Reconciliation, ConvoyError> {
        let deadline = budget.map(|budget| std::time::Instant::now() + budget);
        let active = self.active.active().await?;
        let start = if active.is_empty() { 0 } else { fastrand::usize(..active.len()) };
        let order = active[start..].iter().chain(&active[..start]);
        // Each record is loaded first; then the CodeDeploy deployments of a batch of loaded
        // records are asked in one `BatchGetDeployments` (not one `GetDeployment` per visit);
        // then each release is visited with what AWS said, as before.
        let mut visits = futures_util::stream::iter(order)
            .take_while(|_| std::future::ready(deadline.is_none_or(|deadline| std::time::Instant::now() < deadline)))
            .map(|key| async move { (key, self.store.load(key).await) })
            .buffered(CONCURRENT_LOADS)
            .chunks(STATUS_BATCH)
            .map(|loaded| self.deployment_statuses(loaded))
            .buffered(2)
            .flat_map(futures_util::stream::iter)
            .map(|(key, loaded, known)| {
                let span = release_span(key);
                async move { (self.reconcile_one(outbox, key, loaded, known, now).instrument(span.clone()).await, span) }
            })
            .buffer_unordered(CONCURRENT_VISITS);
        let (mut reports, mut visited, mut retryable) = (Vec::new(), 0, None);
        while let Some((result, span)) = visits.next().await {
            visited += 1;
            match result {
                Ok(report) => reports.extend(report),
                Err(err) if err.is_retryable() => {
                    span.in_scope(|| warn!(error = %err, "could not reconcile; next period tries again"));
                    retryable = Some(err);
                }
                Err(err) => span.in_scope(|| warn!(error = %err, "could not reconcile")),
            }
        }
        let left = active.len() - visited;
        if left > 0 {
            warn!(visited, left, "the time ran out; the next run visits the rest (from another place in the list)");
        }
        // After the releases in progress, with the time left: manifests whose event was lost.
        // Boxed: opening a release may start its stage, a deep future for the reconciler's stack.
        match Box::pin(self.open_lost_manifests(outbox, now, deadline)).await {
            Ok(opened) => reports.extend(opened),
            Err(err) if err.is_retryable() => {
                warn!(error = %err, "could not look for lost manifests; next period tries again");
                retryable = Some(err);
            }
            Err(err) => warn!(error = %err, "could not look for lost manifests"),
        }
        match retryable {
            Some(err) if reports.is_empty() => Err(err),
            _ => Ok(Reconciliation { reports, visited, left }),
        }
    }

    /// Where the CodeDeploy deployment of each loaded release in a deploying state stands, asked
    /// in one request. A deployment CodeDeploy's answer leaves out, or every one when the request
    /// fails, gets no status here: its visit asks it alone, as it would without the batch.
    async fn deployment_statuses<'k>(
        &self,
        loaded: Vec<(&'k ReleaseKey, Result<Option<Stored>, StoreError>)>,
    ) -> Vec<(&'k ReleaseKey, Result<Option<Stored>, StoreError>, Option<DeploymentStatus>)> {
        let followed = |loaded: &Result<Option<Stored>, StoreError>| match loaded {
            Ok(Some(stored)) => match stored.release.state.deployment() {
                Some(DeploymentRef::CodeDeploy(id)) => Some(id.clone()),
                _ => None,
            },
            _ => None,
        };
        let ids: Vec<DeploymentId> = loaded.iter().filter_map(|(_, loaded)| followed(loaded)).collect();
        let statuses = match self.codedeploy.statuses(&ids).await {
            Ok(statuses) => statuses,
            Err(err) => {
                warn!(error = %err, deployments = ids.len(), "could not ask CodeDeploy in one batch; each visit asks alone");
                Vec::new()
            }
        };
        loaded
            .into_iter()
            .map(|(key, loaded)| {
                let id = followed(&loaded);
                let known =
                    id.and_then(|id| statuses.iter().find(|(of, _)| *of == id).map(|(_, status)| status.clone()));
                (key, loaded, known)
            })
            .collect()
    }

    /// One release's visit, with its record as loaded and, when the batch had it, where its
    /// CodeDeploy deployment stands (`known`).
    async fn reconcile_one(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        loaded: Result<Option<Stored>, StoreError>,
        known: Option<DeploymentStatus>,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let Some(stored) = loaded? else {
            self.active.mark_done(key).await?;
            return Ok(None);
        };
        let release = stored.release.clone();
        if let Some(report) = self.recheck_alarms(outbox, &release, now).await? {
            return Ok(Some(report));
        }
        // Traffic shifts after a continue Convoy saw no call for (seen past the approval): who
        // made it is asked again while CloudTrail's event history has no answer yet (it lags by
        // minutes), as for an ended release below; the visit goes on.
        if matches!(release.state, State::ShiftingTraffic { .. }) {
            self.attribute(outbox, &release, now).await;
        }
        // Who submitted it is looked for in the trail's log files whatever the state: they arrive
        // minutes after the upload, when the release may have ended.
        if release.submitter_wanted().is_some() {
            self.find_submitter(outbox, &release, now).await;
        }
        match &release.state {
            // Who decided (or submitted) is still asked of CloudTrail: the release stays active
            // until it answers.
            state
                if state.is_terminal()
                    && (release.attribution_wanted().is_some() || release.submitter_wanted().is_some()) =>
            {
                if release.attribution_wanted().is_some() {
                    self.attribute(outbox, &release, now).await;
                }
                Ok(None)
            }
            state if state.is_terminal() => {
                info!("ended; no longer active");
                self.active.mark_done(key).await?;
                Ok(None)
            }
            State::Collecting => {
                let deadline = Some(self.config.collecting_deadline());
                self.resolve_images(outbox, key, &release.awaited_images(), now, deadline).await
            }
            State::Gating { .. } => Box::pin(self.judge_images(outbox, key, Some(stored), now)).await,
            State::Ready { next: Stage::Migration } => {
                Box::pin(self.start_migration_in(outbox, key, Some(stored), false, now)).await
            }
            State::Ready { .. } | State::Queued { .. } | State::StartingDeployment => {
                Box::pin(self.start_deployment_in(outbox, key, Some(stored), now)).await
            }
            State::AwaitingApproval { .. }
                if release.deployment.as_ref().and_then(|d| d.auto_approve_at).is_some_and(|at| at <= now) =>
            {
                info!("the bake time is over: policy approves");
                self.approve_by_policy(outbox, key, now).await.map(Some)
            }
            State::Deploying { .. }
            | State::Verifying { .. }
            | State::AwaitingApproval { .. }
            | State::ShiftingTraffic { .. }
            | State::RollingBack { .. } => match self.status_of_deployment(outbox, &release, known).await? {
                Some((deployment, DeploymentStatus::Ended { end, detail })) => {
                    info!(%deployment, ?end, "the deployment ended without Convoy hearing of it");
                    self.deployment_ended_in(outbox, &deployment, end, &detail, now).await
                }
                Some((
                    running @ (DeploymentRef::CodeDeploy(_) | DeploymentRef::Service(_)),
                    DeploymentStatus::Running,
                )) if matches!(release.state, State::ShiftingTraffic { .. })
                    && release.approval.as_ref().is_some_and(|decision| decision.approved && decision.by_policy()) =>
                {
                    // Only Convoy's own decision (policy) is carried out with Convoy's role; a
                    // person's continue is AWS's to carry out, and is never repeated.
                    // ECS native too: a policy approval's continue can come before ECS pauses
                    // (the verify hook is answered after it), so it is tried again here.
                    self.steer_as_convoy(&release, &running, false).await;
                    Ok(None)
                }
                // Rerouted while it awaited a decision: someone continued it (the console's
                // "Reroute traffic") and no CloudTrail event reached Convoy. The release shifts,
                // and CloudTrail's event history is asked who, once: the next visit finds it
                // ShiftingTraffic. (A rerouted deployment needs no ContinueDeployment again.)
                Some((DeploymentRef::CodeDeploy(deployment), DeploymentStatus::Rerouted))
                    if matches!(release.state, State::AwaitingApproval { .. }) =>
                {
                    info!(%deployment, "production traffic was rerouted without Convoy hearing of it");
                    let event = approval::Event::Rerouted { deployment, at: now };
                    let outcome = self.transition(outbox, key, None, &event).await?;
                    Ok(outcome.filter(|o| o.changed).map(|o| o.report()))
                }
                // An alarm's rollback whose request failed: asked again while the deployment runs.
                Some((
                    deployment @ DeploymentRef::CodeDeploy(_),
                    DeploymentStatus::Running | DeploymentStatus::Rerouted,
                )) if matches!(release.state, State::RollingBack { .. })
                    && release.alarms.as_ref().is_some_and(|gate| !gate.fired.is_empty()) =>
                {
                    self.steer_as_convoy(&release, &deployment, true).await;
                    Ok(None)
                }
                _ => Ok(None),
            },
            State::StartingMigration => {
                if let Some(report) = self.fail_if_overdue(outbox, key, now).await? {
                    return Ok(Some(report));
                }
                Box::pin(self.start_migration_in(outbox, key, None, false, now)).await
            }
            State::Migrating { task } => match self.tasks.describe(&self.config.cluster, task).await? {
                Some(report) if report.last_status == "STOPPED" => {
                    info!(%task, "the task stopped without Convoy hearing of it; applying what ECS says");
                    self.task_stopped_in(outbox, key, Some(stored), &report, now).await
                }
                _ => self.fail_if_overdue(outbox, key, now).await,
            },
            State::DeployingServices { .. } | State::RevertingServices { .. } => {
                Box::pin(self.observe_parts(outbox, &release, now)).await
            }
            State::Succeeded | State::RolledBack { .. } | State::Superseded { .. } | State::Failed { .. } => Ok(None),
        }
    }

    /// Where the release's deployment stands: what the batch said of its CodeDeploy deployment,
    /// else asked now.
    async fn status_of_deployment(
        &self,
        outbox: &Outbox,
        release: &Release,
        known: Option<DeploymentStatus>,
    ) -> Result<Option<(DeploymentRef, DeploymentStatus)>, ConvoyError> {
        match (release.state.deployment(), known) {
            (Some(deployment @ DeploymentRef::CodeDeploy(_)), Some(status)) => Ok(Some((deployment.clone(), status))),
            _ => self.deployment_status(outbox, release).await,
        }
    }

    /// Asks CloudTrail who made the decision the release records as pending attribution, if any.
    async fn attribute(&self, outbox: &Outbox, release: &Release, now: DateTime<Utc>) {
        if let Some(Effect::FindApprover { deployment, approve, since }) = release.attribution_wanted() {
            self.find_approver(outbox, &release.key, &deployment, approve, since, now).await;
        }
    }

    /// Fails a migration past its deadline and stops its task.
    async fn fail_if_overdue(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let outcome = self.transition(outbox, key, None, &migration::Event::Overdue { at: now }).await?;
        Ok(outcome.filter(|o| o.changed).map(|o| o.report()))
    }
}
