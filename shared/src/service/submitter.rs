//! Who submitted a release (`crate::submitter`): the reconciler asks the trail Convoy was given
//! whether it logs the manifest's write, then looks for that write in the log files it delivered
//! since the upload. What it finds is applied as a [`submission`] event; a trail that cannot be
//! read now is asked again next period, until the window is over.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::Convoy;
use super::transition::Outbox;
use crate::release::{Release, submission};
use crate::submitter::{Coverage, SEARCH_WINDOW, Submitter, UPLOAD_LEAD};

impl Convoy {
    /// Settles who submitted `release` if it can be settled now; logs and leaves it otherwise.
    pub(super) async fn find_submitter(&self, outbox: &Outbox, release: &Release, now: DateTime<Utc>) {
        let Some(Submitter::Looking { trail, until }) = &release.submitter else { return };
        let created = *until - SEARCH_WINDOW;
        let source = &release.source;
        let event = match self.upload_trail.coverage(trail, &source.bucket, &source.key).await {
            Ok(Coverage::NotLogged(reason)) => submission::Event::NotLogged { reason, at: now },
            Ok(Coverage::Logged(delivery)) => {
                match self.upload_trail.find_upload(&delivery, source, created, created - UPLOAD_LEAD, *until).await {
                    Ok(Some(uploader)) => submission::Event::Found { uploader, at: now },
                    Ok(None) => submission::Event::NotYetFound { at: now },
                    Err(err) if now < *until => {
                        warn!(error = %err, %trail, "could not read the trail's log files; the reconciler asks again");
                        return;
                    }
                    Err(err) => submission::Event::NotLogged {
                        reason: format!("trail {trail}'s log files could not be read until {until}: {err}"),
                        at: now,
                    },
                }
            }
            Err(err) if now < *until => {
                warn!(error = %err, %trail, "could not ask CloudTrail about the trail; the reconciler asks again");
                return;
            }
            Err(err) => submission::Event::NotLogged {
                reason: format!("trail {trail} could not be read until {until}: {err}"),
                at: now,
            },
        };
        match self.transition(outbox, &release.key, None, &event).await {
            Ok(Some(outcome)) if outcome.changed => {
                info!(submitter = ?outcome.release.submitter, "who submitted is settled")
            }
            Ok(_) => {}
            Err(err) => warn!(error = %err, "could not record who submitted; the reconciler tries again"),
        }
    }
}
