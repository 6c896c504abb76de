//! Who approved: CloudTrail's record of the continue or stop call, applied to the release whose
//! deployment it names; and, when the deployment moved on with no call recorded, the look-up in
//! CloudTrail's event history.

use chrono::{DateTime, Duration, Utc};
use tracing::{info, warn};

use super::{Convoy, Report, update};
use crate::error::ConvoyError;
use crate::names::{DeploymentId, DeploymentRef, ReleaseKey, ServiceDeploymentArn};
use crate::release::{Event, ObservedCall};

/// How far before the recorded `since` a look-up starts: clocks of CloudTrail and of the handler
/// that recorded the verification's end differ a little.
const LOOKUP_CLOCK_SKEW: Duration = Duration::minutes(2);

impl Convoy {
    /// A continue or stop CloudTrail recorded ("AWS API Call via CloudTrail"): applied to the
    /// release whose deployment it names. `None` when no release of Convoy's has that deployment.
    pub async fn approval_observed(
        &self,
        call: &ObservedCall,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let reference = if call.deployment.starts_with("arn:") {
            ServiceDeploymentArn::new(&call.deployment).ok().map(DeploymentRef::Service)
        } else {
            DeploymentId::new(&call.deployment).ok().map(DeploymentRef::CodeDeploy)
        };
        let Some(reference) = reference else {
            info!(deployment = %call.deployment, "not a deployment id; ignored");
            return Ok(None);
        };
        let Some(key) = self.deployments.find(&reference).await? else {
            info!(deployment = %call.deployment, "not a deployment Convoy started; ignored");
            return Ok(None);
        };
        let event = Event::ApprovalObserved { call: call.clone(), at: now };
        match update(self, &key, |r| r.apply(&event)).await? {
            Some(updated) => self.finish_and_perform(updated, now).await.map(Some),
            None => Ok(None),
        }
    }

    /// Asks CloudTrail's event history who made the decision the release recorded as pending
    /// attribution, and records the answer: the principal, or, once CloudTrail had time to show
    /// the call, that it has none. Best effort: a failure leaves it pending for the reconciler.
    pub(super) async fn find_approver(
        &self,
        key: &ReleaseKey,
        deployment: &str,
        approve: bool,
        native: bool,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let calls = match self.api_calls.decisions_on(deployment, approve, native, since - LOOKUP_CLOCK_SKEW, now).await
        {
            Ok(calls) => calls,
            Err(err) => {
                warn!(error = %err, %deployment, "could not ask CloudTrail who decided; the reconciler asks again");
                return;
            }
        };
        let event = match calls.into_iter().next() {
            Some(call) => Event::ApprovalObserved { call, at: now },
            None => {
                let operations: Vec<&str> =
                    crate::cloudtrail::operations_for(approve, native).iter().map(|op| op.event_name).collect();
                let why = format!(
                    "CloudTrail event history has no successful {} for {deployment} between {} and {}",
                    operations.join(" or "),
                    (since - LOOKUP_CLOCK_SKEW).to_rfc3339(),
                    now.to_rfc3339()
                );
                Event::ApproverNotFound { why, checked_until: now, at: now }
            }
        };
        if let Err(err) = update(self, key, |r| r.apply(&event)).await {
            warn!(error = %err, "could not record who decided; the reconciler asks again");
        }
    }

    /// Policy approves the traffic shift (the bake time is over) with Convoy's own role.
    pub(super) async fn approve_by_policy(&self, key: &ReleaseKey, now: DateTime<Utc>) -> Result<Report, ConvoyError> {
        let release =
            self.store.load(key).await?.ok_or_else(|| ConvoyError::Refused(format!("no release {key}")))?.release;
        let crate::release::State::AwaitingApproval { deployment } = &release.state else {
            return Err(ConvoyError::Refused(format!(
                "release {key} does not await approval: it is {}",
                release.state
            )));
        };
        self.refuse_while_alarmed(&release).await?;
        let hook = release.verification.as_ref().map(|v| &v.hook);
        self.steer_deployment(key, deployment, hook, false).await?;
        let event = Event::Decided { approve: true, by: "policy (auto, after bake time)".into(), at: now };
        let updated =
            update(self, key, |r| r.apply(&event)).await?.ok_or(ConvoyError::Refused(format!("no release {key}")))?;
        Ok(self.finish(updated))
    }
}
