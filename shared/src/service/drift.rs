//! The drift check at the manifest stage: per service of the release, what ECS runs now
//! (`Tasks::service_shape`: the task definition and since when) against the revision the release
//! live now deployed (`convoy::history` over the service's records), judged by the pure
//! `drift::judge` under the service's `drift` setting.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::Convoy;
use crate::drift::{self, Deployed, DriftCheck, LiveDefinition};
use crate::error::{ConvoyError, TasksError};
use crate::names::{ReleaseKey, ServiceName};
use crate::release::Admitted;

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
            let shape = match self.tasks.service_shape(&self.config.cluster, service.as_str()).await {
                Ok(shape) => shape,
                Err(TasksError::Rejected(why)) => {
                    warn!(%service, %why, "drift not checked: ECS does not run the service");
                    continue;
                }
                Err(err) => return Err(err.into()),
            };
            let live = LiveDefinition { task_definition: shape.task_definition, since: shape.since };
            let deployed = self.deployed_last(&service).await?;
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

    /// The revision the release of `service` live now deployed, as its record keeps it (none: no
    /// release went live, or the one live deployed through a pipeline, which keeps no revision).
    /// Reads the newest records only, until no older one can be the live one.
    async fn deployed_last(&self, service: &ServiceName) -> Result<Option<Deployed>, ConvoyError> {
        let loaded = crate::history::load(self.records.as_ref(), self.store.as_ref(), service, Some(1)).await?;
        Ok(loaded.history.live_now().and_then(|live| {
            Some(Deployed {
                release: live.key.release.clone(),
                task_definition: live.task_definition.clone()?,
                live_since: Some(live.at),
            })
        }))
    }
}
