//! A person's decision on the traffic shift: the CodeDeploy (or ECS) call itself, made with the
//! caller's own credentials. Convoy records the decision only from CloudTrail, never from here.

use super::Convoy;
use crate::error::ConvoyError;
use crate::names::ReleaseKey;
use crate::release::State;

impl Convoy {
    /// Approves (CodeDeploy `ContinueDeployment` READY_WAIT, or ECS `ContinueServiceDeployment`)
    /// or rejects (`StopDeployment` with auto rollback, or the ECS rollback) the release's
    /// deployment with the credentials this Convoy was wired with: the CLI's and the dashboard's
    /// are the person's. Writes nothing: who decided is recorded from CloudTrail's record of this
    /// call. Refused early, as a courtesy, unless the record says the release awaits approval
    /// with a passed verification (the state machine is the rule: an approval it did not expect
    /// fails the release). Returns the deployment the call was made on.
    pub async fn decide(&self, key: &ReleaseKey, approve: bool) -> Result<String, ConvoyError> {
        let release =
            self.store.load(key).await?.ok_or_else(|| ConvoyError::Refused(format!("no release {key}")))?.release;
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
        Ok(deployment.to_string())
    }
}
