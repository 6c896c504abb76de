//! A person's (or policy's) decision on the traffic shift: approve or reject a verified release.

use chrono::{DateTime, Utc};

use super::{Convoy, Report, update};
use crate::error::ConvoyError;
use crate::names::ReleaseKey;
use crate::release::{Event, State};

impl Convoy {
    /// A person approves or rejects the traffic shift (`convoy approve` / `convoy reject`).
    /// Refused unless the release awaits approval with a passed verification.
    pub async fn decide(
        &self,
        key: &ReleaseKey,
        approve: bool,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Report, ConvoyError> {
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
        let hook = release.verification.as_ref().map(|v| &v.hook);
        self.steer_deployment(key, deployment, hook, !approve).await?;
        let event = Event::Decided { approve, by: by.to_owned(), at: now };
        let updated =
            update(self, key, |r| r.apply(&event)).await?.ok_or(ConvoyError::Refused(format!("no release {key}")))?;
        Ok(self.finish(updated))
    }
}
