//! A rollback claim, confirmed at admission from Convoy's own records (`state/<service>/`, read
//! through [`crate::history`]): the manifest's word is never taken. What the records confirm goes
//! into the record (`rollback`); what they do not ends the release at the manifest stage, the
//! reason in its record, before anything runs.

use std::collections::BTreeMap;

use super::Convoy;
use super::confirm;

use crate::error::ConvoyError;
use crate::history;
use crate::manifest::RollbackClaim;
use crate::names::{ReleaseId, ReleaseKey, ServiceName};
use crate::release::{Admitted, Release};
use crate::rollback::{self, Live};

/// What one service's records say, as a rollback needs it.
struct ServiceLive {
    went_live: Vec<ReleaseId>,
    now: Option<(ReleaseId, chrono::DateTime<chrono::Utc>)>,
    records: Vec<Release>,
}

impl ServiceLive {
    fn live(&self) -> Live<'_> {
        Live {
            now: self.now.as_ref().map(|(id, _)| id),
            since: self.now.as_ref().map(|(_, at)| *at),
            went_live: &self.went_live,
        }
    }

    fn record(&self, release: &ReleaseId) -> Option<&Release> {
        self.records.iter().find(|r| r.key.release == *release)
    }
}

impl Convoy {
    /// The admitted manifest with its rollback claim confirmed (`Ok(Ok)`, unchanged when it makes
    /// none), or why the records do not confirm it (`Ok(Err)`: bad input, the release ends).
    ///
    /// # Errors
    /// The records could not be read: worth a retry.
    pub(super) async fn confirm_rollback(
        &self,
        key: &ReleaseKey,
        admitted: Admitted,
    ) -> Result<Result<Admitted, String>, ConvoyError> {
        match admitted {
            Admitted::Service(mut manifest) => {
                let Some(claim) = manifest.rollback.clone() else { return Ok(Ok(Admitted::Service(manifest))) };
                let live = self.service_live(&key.service).await?;
                let (to, of) = (live.record(&claim.to), live.record(&claim.of));
                match rollback::confirm_service(&key.service, &manifest, &claim, live.live(), to, of) {
                    Ok(confirmed) => {
                        manifest.rollback = Some(RollbackClaim { confirmed: Some(confirmed), ..claim });
                        Ok(Ok(Admitted::Service(manifest)))
                    }
                    Err(why) => Ok(Err(refused(key, why))),
                }
            }
            Admitted::Group(mut opening) => {
                let Some(claim) = opening.manifest.rollback.clone() else { return Ok(Ok(Admitted::Group(opening))) };
                let to_group = self.store.load(&ReleaseKey::new(key.service.clone(), claim.to.clone())).await?;
                let mut lives = BTreeMap::new();
                for service in opening.manifest.services.keys() {
                    lives.insert(service.clone(), self.service_live(service).await?);
                }
                let parts = lives.iter().map(|(s, l)| (s.clone(), (l.live(), l.record(&claim.to)))).collect();
                let to_group = to_group.as_ref().map(|stored| &stored.release);
                // Only a down migration needs `of`'s record (its migration): no read otherwise.
                let of_group = if claim.migrate_down {
                    self.store.load(&ReleaseKey::new(key.service.clone(), claim.of.clone())).await?
                } else {
                    None
                };
                let of_group = of_group.as_ref().map(|stored| &stored.release);
                match rollback::confirm_group(&opening.manifest, &claim, to_group, of_group, &parts) {
                    Ok(confirmed) => {
                        opening.manifest.rollback = Some(RollbackClaim { confirmed: Some(confirmed), ..claim });
                        Ok(Ok(Admitted::Group(opening)))
                    }
                    Err(why) => Ok(Err(refused(key, why))),
                }
            }
        }
    }

    /// Every release of `service` that went live, the one live now, and its records: every record
    /// of the service ([`history::load`] with no limit; an unreadable record is left out: a claim
    /// cannot rest on it).
    async fn service_live(&self, service: &ServiceName) -> Result<ServiceLive, ConvoyError> {
        let loaded = history::load(self.records.as_ref(), self.store.as_ref(), service, None).await?;
        let went_live = loaded.history.releases.iter().map(|r| r.key.release.clone()).collect();
        let now = loaded.history.live_now().map(|r| (r.key.release.clone(), r.at));
        Ok(ServiceLive { went_live, now, records: loaded.records })
    }
}

/// A claim the records do not confirm: logged and counted as any unconfirmed observation; the
/// reason ends the release at the manifest stage.
fn refused(key: &ReleaseKey, why: String) -> String {
    confirm::refuse(confirm::kind::ROLLBACK, Some(key), &why);
    format!("rollback not confirmed by Convoy's records: {why}")
}
