//! Who approved: CloudTrail's record of the continue or stop call, applied to the release whose
//! deployment it names; and, when the deployment moved on with no call recorded, the look-up in
//! CloudTrail's event history.

use chrono::{DateTime, Duration, Utc};
use tracing::{info, warn};

use super::transition::Outbox;
use super::{Convoy, Report, confirm};
use crate::error::ConvoyError;
use crate::names::{DeploymentRef, ReleaseKey};
use crate::release::{ObservedCall, State, approval};

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
        let outbox = Outbox::new(now);
        let result = self.approval_observed_in(&outbox, call, now).await;
        self.publish(outbox).await;
        result
    }

    async fn approval_observed_in(
        &self,
        outbox: &Outbox,
        call: &ObservedCall,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let Some(key) = self.deployments.find(&call.deployment).await? else {
            info!(deployment = %call.deployment, "not a deployment Convoy started; ignored");
            return Ok(None);
        };
        // CloudTrail's record names who; the deployment itself must show that it happened.
        if let Err(why) = self.confirm_approval(call).await? {
            confirm::refuse(confirm::kind::APPROVAL, Some(&key), &why);
            let Some(stored) = self.store.load(&key).await? else { return Ok(None) };
            return Ok(Some(Report::of(&stored.release, false, Some(format!("unconfirmed: {why}")), Vec::new())));
        }
        let event = approval::Event::Observed { call: call.clone(), at: now };
        let outcome = self.transition(outbox, &key, None, &event).await?;
        Ok(outcome.map(|o| o.report()))
    }

    /// Asks CloudTrail's event history who made the decision the release recorded as pending
    /// attribution, and records the answer: the principal, or, once CloudTrail had time to show
    /// the call, that it has none. Best effort: a failure leaves it pending for the reconciler.
    pub(super) async fn find_approver(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        deployment: &DeploymentRef,
        approve: bool,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let calls = match self.api_calls.decisions_on(deployment, approve, since - LOOKUP_CLOCK_SKEW, now).await {
            Ok(calls) => calls,
            Err(err) => {
                warn!(error = %err, %deployment, "could not ask CloudTrail who decided; the reconciler asks again");
                return;
            }
        };
        let event = match calls.into_iter().next() {
            Some(call) => approval::Event::Observed { call, at: now },
            None => {
                let operations: Vec<&str> =
                    crate::cloudtrail::operations_for(approve, deployment).iter().map(|op| op.event_name).collect();
                let why = format!(
                    "CloudTrail event history has no successful {} for {deployment} between {} and {}",
                    operations.join(" or "),
                    (since - LOOKUP_CLOCK_SKEW).to_rfc3339(),
                    now.to_rfc3339()
                );
                approval::Event::ApproverNotFound { why, checked_until: now, at: now }
            }
        };
        if let Err(err) = self.transition(outbox, key, None, &event).await {
            warn!(error = %err, "could not record who decided; the reconciler asks again");
        }
    }

    /// Policy approves the traffic shift (the bake time is over) with Convoy's own role.
    pub(super) async fn approve_by_policy(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        now: DateTime<Utc>,
    ) -> Result<Report, ConvoyError> {
        let stored = self.store.load(key).await?.ok_or_else(|| ConvoyError::Refused(format!("no release {key}")))?;
        let release = &stored.release;
        let State::AwaitingApproval { deployment } = &release.state else {
            return Err(ConvoyError::Refused(format!(
                "release {key} does not await approval: it is {}",
                release.state
            )));
        };
        self.refuse_while_alarmed(release).await?;
        self.steer(release, deployment, false).await?;
        let event = approval::Event::Decided { approve: true, by: "policy (auto, after bake time)".into(), at: now };
        let outcome = self.transition(outbox, key, None, &event).await?;
        outcome.map(|o| o.report()).ok_or(ConvoyError::Refused(format!("no release {key}")))
    }
}
