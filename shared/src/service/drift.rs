//! The drift check at the manifest stage: per service of the release, what ECS runs now
//! (`Tasks::live_definition`) against the revision the newest Convoy release that went live
//! deployed (its record), judged by the pure `drift::judge` under the service's `drift` setting.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::Convoy;
use crate::drift::{self, DriftCheck};
use crate::error::{ConvoyError, TasksError};
use crate::names::{ReleaseId, ReleaseKey, ServiceName};
use crate::release::{Admitted, Release};

/// At most this many records of a service are read to find what Convoy deployed last (one
/// `ListObjectsV2` page of 1,000 keys).
const RECORDS_READ: usize = 1000;

/// Records read at once.
const CONCURRENT_READS: usize = 16;

impl Convoy {
    /// The drift check of each service `admitted` releases. A service ECS does not know is not
    /// checked (its migration or deployment is refused later, with ECS's reason, as before).
    pub(super) async fn check_drift(
        &self,
        key: &ReleaseKey,
        admitted: &Admitted,
        now: DateTime<Utc>,
    ) -> Result<Vec<DriftCheck>, ConvoyError> {
        let services: Vec<ServiceName> = match admitted {
            Admitted::Service(_) => vec![key.service.clone()],
            Admitted::Group(opening) => opening.manifest.services.keys().cloned().collect(),
        };
        let mut checks = Vec::new();
        for service in services {
            let live = match self.tasks.live_definition(&self.config.cluster, service.as_str()).await {
                Ok(live) => live,
                Err(TasksError::Rejected(why)) => {
                    warn!(%service, %why, "drift not checked: ECS does not run the service");
                    continue;
                }
                Err(err) => return Err(err.into()),
            };
            let records = self.service_records(&service, key).await?;
            let deployed = drift::last_deployed(&records);
            let setting = self.config.services.get(&service).map(|s| s.drift).unwrap_or_default();
            let check = drift::judge(&service, &live, deployed, setting, now);
            if check.drifted {
                warn!(%service, live = %check.live, action = ?check.action, "drift: {}", check.summary());
            } else {
                info!(%service, "drift: {}", check.summary());
            }
            checks.push(check);
        }
        Ok(checks)
    }

    /// The records of `service` (its own releases and its parts of group releases), but the
    /// release being opened.
    async fn service_records(&self, service: &ServiceName, opening: &ReleaseKey) -> Result<Vec<Release>, ConvoyError> {
        let prefix = format!("state/{service}/");
        let listed = self.manifests.list(&self.config.store.state_bucket, &prefix, None, RECORDS_READ).await?;
        let keys: Vec<ReleaseKey> = listed
            .iter()
            .filter_map(|o| o.key.strip_prefix(&prefix)?.strip_suffix(".json")?.parse::<ReleaseId>().ok())
            .map(|release| ReleaseKey::new(service.clone(), release))
            .filter(|k| k != opening)
            .collect();
        let mut records = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CONCURRENT_READS) {
            let loaded = futures_util::future::try_join_all(chunk.iter().map(|k| self.store.load(k))).await?;
            records.extend(loaded.into_iter().flatten().map(|stored| stored.release));
        }
        Ok(records)
    }
}
