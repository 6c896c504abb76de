//! A person's decision on the traffic shift: the CodeDeploy (or ECS) call itself, made with the
//! caller's own credentials. Convoy records the decision only from CloudTrail, never from here.

use super::Convoy;
use crate::error::ConvoyError;
use crate::names::ReleaseKey;
use crate::release::{Release, State};

impl Convoy {
    /// Approves (CodeDeploy `ContinueDeployment` READY_WAIT, or ECS `ContinueServiceDeployment`)
    /// or rejects (`StopDeployment` with auto rollback, or the ECS rollback) the release's
    /// deployment with the credentials this Convoy was wired with: the CLI's and the dashboard's
    /// are the person's. Writes nothing: who decided is recorded from CloudTrail's record of this
    /// call. Refused early, as a courtesy, unless the record says the release awaits approval
    /// with a passed verification (the state machine is the rule: an approval it did not expect
    /// fails the release). Returns the deployment the call was made on.
    ///
    /// A group's release is decided on its first service (in the manifest's order) that takes
    /// traffic and awaits approval: approving it approves the release, whose other verified
    /// services shift with it; rejecting it rolls every service back as one. Returns that part's
    /// key and its deployment.
    pub async fn decide(&self, key: &ReleaseKey, approve: bool) -> Result<Decided, ConvoyError> {
        let mut release =
            self.store.load(key).await?.ok_or_else(|| ConvoyError::Refused(format!("no release {key}")))?.release;
        if release.group.is_some() {
            release = self.awaiting_part(&release).await?;
        }
        let key = &release.key;
        let passed = release.verification.as_ref().and_then(|v| v.outcome.as_ref()).is_some_and(|o| o.passed);
        let State::AwaitingApproval { deployment } = &release.state else {
            return Err(ConvoyError::Refused(format!(
                "release {key} does not await approval: it is {}",
                release.state
            )));
        };
        if !passed {
            return Err(ConvoyError::Refused(format!("release {key} has not passed verification")));
        }
        if approve {
            self.refuse_while_alarmed(&release).await?;
        }
        self.steer(&release, deployment, !approve).await?;
        Ok(Decided { key: key.clone(), deployment: deployment.to_string() })
    }

    /// The first part of `group`'s release, in the manifest's order, that awaits approval.
    async fn awaiting_part(&self, group: &Release) -> Result<Release, ConvoyError> {
        for section in group.services.iter().filter(|s| s.takes_traffic) {
            let part = ReleaseKey::new(section.service.clone(), group.key.release.clone());
            if let Some(stored) = self.store.load(&part).await?
                && matches!(stored.release.state, State::AwaitingApproval { .. })
            {
                return Ok(stored.release);
            }
        }
        Err(ConvoyError::Refused(format!(
            "release {} does not await approval: no service of it that takes traffic awaits one (it is {})",
            group.key, group.state
        )))
    }
}

/// The record a decision was made on, and its deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub key: ReleaseKey,
    pub deployment: String,
}
