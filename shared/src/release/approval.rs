//! The approval of the traffic shift as AWS recorded it: an IAM-authorised call (CodeDeploy
//! `ContinueDeployment` / `StopDeployment`, ECS `ContinueServiceDeployment` /
//! `StopServiceDeployment`) whose caller CloudTrail names. Convoy never takes a typed name: the
//! principal comes from a CloudTrail event ("AWS API Call via CloudTrail" through EventBridge) or
//! from CloudTrail's event history (`LookupEvents`), else the record says plainly that AWS has no
//! record of it.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{Context, Decision, Effect, Release, Stage, StageEvent, State, TransitionError};
use crate::gates::AlarmRecord;
use crate::names::{DeploymentId, DeploymentRef};

/// The approval stage's events: who decided the traffic shift, as AWS says, and the alarms that
/// roll it back while it is gated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Policy (`by: "policy (auto…)"`) approved the traffic shift with Convoy's own role. A
    /// person's decision is [`Event::Observed`]: Convoy takes no typed name.
    Decided { approve: bool, by: String, at: DateTime<Utc> },
    /// CloudTrail recorded a successful continue or stop of a deployment, and who made it.
    Observed { call: ObservedCall, at: DateTime<Utc> },
    /// CloudTrail's event history had no call for a pending attribution (the window looked at
    /// ends at `checked_until`).
    ApproverNotFound { why: String, checked_until: DateTime<Utc>, at: DateTime<Utc> },
    /// CodeDeploy said (at `at`) that `deployment`, still running, rerouted production traffic:
    /// someone continued it past READY_WAIT.
    Rerouted { deployment: DeploymentId, at: DateTime<Utc> },
    /// A CloudWatch alarm is in ALARM (an EventBridge event, or the reconciler's DescribeAlarms).
    AlarmRaised { alarm: String, reason: String, since: Option<DateTime<Utc>>, via: String, at: DateTime<Utc> },
    /// A part of a group's release: a person approved the release (`approver`: who, and on which
    /// service, as the group's record words it), so this service's verified traffic shift goes on
    /// with Convoy's own role, as a policy's would.
    ApprovedWithRelease { approver: String, at: DateTime<Utc> },
}

impl StageEvent for Event {
    fn apply_to(&self, release: &Release, _: &Context) -> Result<Decision, TransitionError> {
        Ok(match self {
            Event::Decided { approve, by, at } => release.on_decided(*approve, by, *at),
            Event::Observed { call, at } => release.on_approval_observed(call, *at),
            Event::ApproverNotFound { why, checked_until, at } => {
                release.on_approver_not_found(why, *checked_until, *at)
            }
            Event::Rerouted { deployment, at } => release.on_rerouted(deployment, *at),
            Event::AlarmRaised { alarm, reason, since, via, at } => {
                release.on_alarm_raised(alarm, reason, *since, via, *at)
            }
            Event::ApprovedWithRelease { approver, at } => release.on_approved_with_release(approver, *at),
        })
    }
}

/// Who decided the traffic shift. `by` is the display text (the principal's ARN, "policy (auto)",
/// or why it is unknown); `actor` is what AWS recorded (records written before it have none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalDecision {
    pub approved: bool,
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Attribution>,
}

/// How Convoy learned of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// EventBridge delivered the "AWS API Call via CloudTrail" event.
    CloudTrailEvent,
    /// CloudTrail's event history (`LookupEvents`) had it.
    LookupEvents,
}

/// Who made a call, as CloudTrail recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `userIdentity.arn`: an IAM user, or an assumed role's session (`…:assumed-role/R/session`).
    pub principal_arn: String,
    /// The role session's name, for an assumed role (the last part of its ARN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    /// `sourceIPAddress` (for a call a service makes, the service's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// `eventID`: the CloudTrail event, unique per call.
    pub event_id: String,
    pub event_time: DateTime<Utc>,
    /// `codedeploy:ContinueDeployment`, `ecs:StopServiceDeployment`, ...
    pub operation: String,
    pub via: Via,
}

impl Actor {
    /// The session name of an assumed-role ARN (`arn:aws:sts::1:assumed-role/Role/session`).
    pub fn session_of(arn: &str) -> Option<String> {
        let (_, resource) = arn.split_once(":assumed-role/")?;
        resource.split_once('/').map(|(_, session)| session.to_owned()).filter(|s| !s.is_empty())
    }

    /// `ARN (CloudTrail event ID)`: how the timeline and reasons name the actor.
    pub fn describe(&self) -> String {
        format!("{} (CloudTrail event {})", self.principal_arn, self.event_id)
    }
}

/// A successful call on a deployment's approval, as CloudTrail recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedCall {
    /// The CodeDeploy deployment or the ECS service deployment the call named.
    pub deployment: DeploymentRef,
    /// Continue (`true`) or stop (`false`).
    pub approve: bool,
    pub actor: Actor,
}

/// Who decided, as far as AWS says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Attribution {
    /// CloudTrail named the principal.
    Recorded(Actor),
    /// The deployment moved on without a recorded call: CloudTrail is being asked.
    Pending {
        /// The call happened after this (the verification's end).
        since: DateTime<Utc>,
    },
    /// AWS has no record of the call; `why` says where Convoy looked.
    Unknown { why: String },
}

/// How long CloudTrail may take to show a call in its event history: until then a look-up that
/// finds nothing leaves the attribution pending (CloudTrail documents delivery "within an average
/// of about 5 minutes"; 15 minutes leaves room).
pub const CLOUDTRAIL_DELAY: Duration = Duration::minutes(15);

/// The display text kept in `ApprovalDecision::by` while CloudTrail is asked.
const PENDING: &str = "pending attribution (CloudTrail)";

impl ApprovalDecision {
    /// A decision seen in CloudTrail.
    fn recorded(approved: bool, actor: &Actor, at: DateTime<Utc>) -> Self {
        Self { approved, by: actor.principal_arn.clone(), at, actor: Some(Attribution::Recorded(actor.clone())) }
    }

    /// The CloudTrail event this decision was recorded from, if any.
    pub fn event_id(&self) -> Option<&str> {
        match &self.actor {
            Some(Attribution::Recorded(actor)) => Some(&actor.event_id),
            _ => None,
        }
    }

    /// Whether Convoy's policy made this decision (auto approval), so that Convoy, and only
    /// Convoy, carries it out with its own role. A person's decision is an act AWS already
    /// carried out: Convoy records it and never repeats it.
    pub fn by_policy(&self) -> bool {
        self.by.starts_with("policy")
    }

    /// Whether CloudTrail may still fill in who decided: a decision made outside Convoy's sight
    /// (pending, unknown) or by policy (Convoy's own role's call).
    fn open_to_attribution(&self) -> bool {
        !matches!(self.actor, Some(Attribution::Recorded(_)))
    }
}

impl Release {
    /// The deployment an approval call must name to be this release's: the one followed now, or,
    /// once it ended, the last one it followed.
    fn approval_deployment(&self) -> Option<&DeploymentRef> {
        self.state.deployment().or_else(|| self.deployment.as_ref()?.id.as_ref())
    }

    pub(super) fn on_approval_observed(&self, call: &ObservedCall, at: DateTime<Utc>) -> Decision {
        let ObservedCall { deployment, approve, actor } = call;
        if self.approval_deployment() != Some(deployment) {
            return Decision::unchanged(format!(
                "{} on {deployment}, which is not this release's deployment ({})",
                actor.operation, self.state
            ));
        }
        if self.approval.as_ref().and_then(ApprovalDecision::event_id) == Some(actor.event_id.as_str()) {
            return Decision::unchanged(format!("CloudTrail event {} is recorded already", actor.event_id));
        }
        let mut next = self.clone();
        let verb = if *approve { "approved" } else { "rejected" };
        match (&self.state, *approve) {
            (State::AwaitingApproval { deployment }, true) => {
                next.approval = Some(ApprovalDecision::recorded(true, actor, at));
                next.state = State::ShiftingTraffic { deployment: deployment.clone() };
                next.record(at, "approved", format!("by {}: production traffic shifts", actor.describe()));
                Decision::changed(next, Vec::new())
            }
            (State::AwaitingApproval { deployment }, false) => {
                let reason = format!("rejected by {}", actor.principal_arn);
                next.approval = Some(ApprovalDecision::recorded(false, actor, at));
                next.state = State::RollingBack { deployment: deployment.clone(), reason: reason.clone() };
                next.record(at, "rejected", format!("by {}; the deployment rolls back", actor.describe()));
                Decision::changed(next, Vec::new())
            }
            // Continued before Convoy recorded a passed verification: CodeDeploy offers the reroute
            // only after the hook succeeded, so this is a record that fell behind or a hook answered
            // by someone else. Convoy does not let it stand.
            (State::Deploying { .. } | State::Verifying { .. }, true) => {
                let reason = format!(
                    "approved by {} (CloudTrail event {}) before Convoy recorded a passed verification",
                    actor.principal_arn, actor.event_id
                );
                next.approval = Some(ApprovalDecision::recorded(true, actor, at));
                next.state = State::Failed { stage: Stage::Approval, reason: reason.clone() };
                next.record(at, "approval-refused", format!("{reason}; the deployment is rolled back"));
                let effects = vec![Effect::RollBack { deployment: deployment.clone() }, Effect::ReleaseDeployLock];
                Decision::changed(next, effects)
            }
            // Stopped by a person before (or while) it shifted: it rolls back; the end event ends it.
            (State::Deploying { .. } | State::Verifying { .. } | State::ShiftingTraffic { .. }, false) => {
                let followed = deployment.clone();
                let reason = format!("stopped by {} while {}", actor.principal_arn, self.state);
                next.approval = Some(ApprovalDecision::recorded(false, actor, at));
                next.state = State::RollingBack { deployment: followed, reason: reason.clone() };
                next.record(at, "rejected", format!("{reason} (CloudTrail event {})", actor.event_id));
                Decision::changed(next, Vec::new())
            }
            // The decision is recorded (by policy, or pending attribution): CloudTrail names who.
            (_, _) if self.approval.as_ref().is_some_and(|a| a.approved == *approve && a.open_to_attribution()) => {
                let Some(decision) = next.approval.as_mut() else { return Decision::inconsistent(self, "an approval") };
                decision.actor = Some(Attribution::Recorded(actor.clone()));
                // Policy's own call keeps its name; a person's takes the principal's.
                if !decision.by_policy() {
                    decision.by = actor.principal_arn.clone();
                }
                next.record(at, "attributed", format!("{verb}: CloudTrail names {}", actor.describe()));
                Decision::changed(next, Vec::new())
            }
            _ => Decision::unchanged(format!(
                "{} by {} changes nothing: the release is {}",
                actor.operation, actor.principal_arn, self.state
            )),
        }
    }

    /// CloudTrail had no record of the call for a pending attribution; `checked_until` is the end
    /// of the window looked at. Unknown only once CloudTrail had time to show it.
    pub(super) fn on_approver_not_found(&self, why: &str, checked_until: DateTime<Utc>, at: DateTime<Utc>) -> Decision {
        let Some(Attribution::Pending { since }) = self.approval.as_ref().and_then(|a| a.actor.as_ref()) else {
            return Decision::unchanged("no attribution is pending");
        };
        let decided_at = self.approval.as_ref().map_or(*since, |a| a.at);
        if checked_until < decided_at + CLOUDTRAIL_DELAY {
            return Decision::unchanged(format!(
                "CloudTrail may not show the call yet (it can take {} minutes); asked again later",
                CLOUDTRAIL_DELAY.num_minutes()
            ));
        }
        let mut next = self.clone();
        let why = format!("unknown: {why}");
        if let Some(decision) = next.approval.as_mut() {
            decision.by = why.clone();
            decision.actor = Some(Attribution::Unknown { why: why.clone() });
        }
        next.record(at, "attributed", why);
        Decision::changed(next, Vec::new())
    }

    /// The deployment moved on (shifted, or was stopped) with no call recorded: the decision is
    /// kept as pending attribution, and CloudTrail is asked who made it.
    pub(super) fn unattributed_decision(
        &mut self,
        approved: bool,
        deployment: &DeploymentRef,
        at: DateTime<Utc>,
    ) -> Option<Effect> {
        let since = self.verification.as_ref().and_then(|v| v.finished_at).unwrap_or(at);
        self.approval =
            Some(ApprovalDecision { approved, by: PENDING.into(), at, actor: Some(Attribution::Pending { since }) });
        let verb = if approved { "approved" } else { "rejected" };
        self.record(
            at,
            verb,
            format!("outside Convoy's sight: deployment {deployment} moved on; CloudTrail is asked who did it"),
        );
        self.attribution_wanted()
    }

    /// The deployment went past the approval while the release awaited it, with no decision
    /// recorded: someone continued it (the console's "Reroute traffic", the CLI, a chat button)
    /// and Convoy has not seen the call yet. The release shifts traffic, the approval pending
    /// attribution, and CloudTrail is asked who (the effects). `None`, and no change, unless the
    /// release awaits approval. Shared by ECS native's stage (`NativeObserved`) and CodeDeploy's
    /// reroute (`Rerouted`).
    pub(super) fn continued_unseen(&mut self, at: DateTime<Utc>) -> Option<Vec<Effect>> {
        let State::AwaitingApproval { deployment } = &self.state else { return None };
        let deployment = deployment.clone();
        self.state = State::ShiftingTraffic { deployment: deployment.clone() };
        Some(self.unattributed_decision(true, &deployment, at).into_iter().collect())
    }

    /// The look-up a pending attribution asks for (`None` when none is pending).
    pub fn attribution_wanted(&self) -> Option<Effect> {
        let decision = self.approval.as_ref()?;
        let Some(Attribution::Pending { since }) = &decision.actor else { return None };
        let deployment = self.approval_deployment()?.clone();
        Some(Effect::FindApprover { deployment, approve: decision.approved, since: *since })
    }

    pub(super) fn on_decided(&self, approve: bool, by: &str, at: DateTime<Utc>) -> Decision {
        let State::AwaitingApproval { deployment } = &self.state else {
            return Decision::unchanged(format!("nothing awaits a decision: the release is {}", self.state));
        };
        let mut next = self.clone();
        next.approval = Some(ApprovalDecision { approved: approve, by: by.to_owned(), at, actor: None });
        if approve {
            next.state = State::ShiftingTraffic { deployment: deployment.clone() };
            next.record(at, "approved", format!("by {by}: production traffic shifts"));
        } else {
            let reason = format!("rejected by {by}");
            next.state = State::RollingBack { deployment: deployment.clone(), reason: reason.clone() };
            next.record(at, "rejected", format!("{reason}; the deployment rolls back"));
        }
        Decision::changed(next, Vec::new())
    }

    /// The group's release was approved by a person: this part's shift, verified and waiting, goes
    /// on with Convoy's role (the effect), once: a part that does not wait for approval is left
    /// as it is. Its decision is the policy's kind (`by_policy`), naming the person it follows.
    pub(super) fn on_approved_with_release(&self, approver: &str, at: DateTime<Utc>) -> Decision {
        let State::AwaitingApproval { deployment } = &self.state else {
            return Decision::unchanged(format!("the release's approval moves nothing: this part is {}", self.state));
        };
        if self.part_of.is_none() {
            return Decision::unchanged("not a part of a group's release: its own approval decides");
        }
        let mut next = self.clone();
        let by = format!("policy (with the release: {approver})");
        next.approval = Some(ApprovalDecision { approved: true, by: by.clone(), at, actor: None });
        next.state = State::ShiftingTraffic { deployment: deployment.clone() };
        next.record(at, "approved", format!("by {by}: production traffic shifts"));
        Decision::changed(next, vec![Effect::ContinueDeployment { deployment: deployment.clone() }])
    }

    /// CodeDeploy rerouted production traffic while the deployment still runs (its termination
    /// wait started): past READY_WAIT, so approved by someone, whose call Convoy has not seen yet.
    pub(super) fn on_rerouted(&self, deployment: &DeploymentId, at: DateTime<Utc>) -> Decision {
        if self.state.deployment().and_then(DeploymentRef::codedeploy) != Some(deployment) {
            return Decision::unchanged(format!(
                "deployment {deployment} is not this release's current one ({})",
                self.state
            ));
        }
        let mut next = self.clone();
        match next.continued_unseen(at) {
            Some(effects) => Decision::changed(next, effects),
            None => Decision::unchanged(format!("traffic rerouted, and the release is {} already", self.state)),
        }
    }

    /// An alarm in ALARM while the traffic shift is gated: the deployment rolls back, once.
    pub(super) fn on_alarm_raised(
        &self,
        alarm: &str,
        reason: &str,
        since: Option<DateTime<Utc>>,
        via: &str,
        at: DateTime<Utc>,
    ) -> Decision {
        let deployment = match &self.state {
            State::AwaitingApproval { deployment } | State::ShiftingTraffic { deployment } => deployment.clone(),
            _ => return Decision::unchanged(format!("alarm {alarm} gates nothing now: the release is {}", self.state)),
        };
        let watched = self.alarms.as_ref().is_some_and(|gate| gate.watched.iter().any(|a| a == alarm));
        if !watched {
            return Decision::unchanged(format!("alarm {alarm} does not gate this release"));
        }
        let when = since.unwrap_or(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let stage = if matches!(self.state, State::ShiftingTraffic { .. }) {
            "after the traffic shift"
        } else {
            "before the traffic shift"
        };
        let cause = format!("alarm {alarm} went to ALARM at {when} {stage}: {reason}");
        let mut next = self.clone();
        let gate = next.alarms.get_or_insert_with(Default::default);
        gate.fired.push(AlarmRecord {
            alarm: alarm.to_owned(),
            state: "ALARM".into(),
            reason: reason.to_owned(),
            since,
            via: via.to_owned(),
            action: "rolled back".into(),
            at,
        });
        next.state = State::RollingBack { deployment: deployment.clone(), reason: cause.clone() };
        next.record(at, "alarm", format!("{cause} (via {via}); the deployment rolls back"));
        Decision::changed(next, vec![Effect::RollBack { deployment }])
    }
}
