//! The image gate: every pinned digest of the release is judged against its service's image
//! policy (ECR's scan findings and managed signatures) before anything runs. A completed scan's
//! ECR "Image Scan" event is a hint: it only makes Convoy ask ECR again about the releases that
//! wait on that digest, and ECR's answer decides.

use chrono::{DateTime, Utc};
use tracing::{Instrument, info, warn};

use super::transition::Outbox;
use super::{Convoy, Report, release_span};
use crate::error::ConvoyError;
use crate::events::ScanCompleted;
use crate::image_policy::{self, ImageEvidence, ImagePolicy};
use crate::names::ReleaseKey;
use crate::ports::Stored;
use crate::release::{State, gate};

impl Convoy {
    /// Judges a gating release's digests now: one `DescribeImageScanFindings` (every page) per
    /// digest, and one `DescribeImageSigningStatus` per digest when the policy names signing
    /// profiles. Nothing is asked of a release that is not gating.
    pub(super) async fn judge_images(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        known: Option<Stored>,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        let Some(stored) = self.known_or_loaded(key, known).await? else { return Ok(None) };
        if !matches!(stored.release.state, State::Gating { .. }) {
            info!(state = %stored.release.state, "not gating: nothing to judge");
            return Ok(None);
        }
        let release = &stored.release;
        // Each policy that applies, and the image names its service runs (`None`: every image,
        // a release of one service); a group's images are judged under each member's policy.
        let policies: Vec<(Option<&crate::release::ServiceSection>, ImagePolicy)> = if release.group.is_some() {
            let policy_of =
                |s: &crate::release::ServiceSection| self.config.services.get(&s.service)?.image_policy.clone();
            release.services.iter().filter_map(|s| Some((Some(s), policy_of(s)?))).collect()
        } else {
            let policy = self.config.services.get(&key.service).and_then(|s| s.image_policy.clone());
            policy.into_iter().map(|p| (None, p)).collect()
        };
        let mut images: Vec<ImageEvidence> = Vec::new();
        let wait = chrono::Duration::seconds(policies.iter().map(|(_, p)| p.wait_seconds).max().unwrap_or(0) as i64);
        if policies.is_empty() {
            // The policy was removed while the release gated: it passes as any release without one.
            info!("the service has no image policy now: the gate passes");
        }
        for (slot, image, digest) in release.pinned_images() {
            let applying: Vec<&(Option<&crate::release::ServiceSection>, ImagePolicy)> = policies
                .iter()
                .filter(|(section, _)| {
                    section.is_none_or(|s| s.containers.values().any(|n| n.as_str() == slot.as_str()))
                })
                .collect();
            if applying.is_empty() {
                continue;
            }
            let Some(digest) = digest else { return Ok(None) };
            let scan = self.image_checks.scan(&image.registry, &image.repository, digest).await?;
            let signatures = if applying.iter().all(|(_, p)| p.signing_profiles.is_empty()) {
                Vec::new()
            } else {
                self.image_checks.signatures(&image.registry, &image.repository, digest).await?
            };
            let uri = image.pinned_uri(digest);
            for (section, policy) in applying {
                let label = match section {
                    Some(section) => format!("{slot} of {}", section.service),
                    None => slot.to_string(),
                };
                images.push(image_policy::judge(policy, &label, &uri, &scan, &signatures, now));
            }
        }
        let event = gate::Event::Judged { images, wait, at: now };
        let Some(outcome) = self.transition(outbox, key, Some(stored), &event).await? else { return Ok(None) };
        Ok(Some(outcome.report()))
    }

    /// ECR finished a scan of `scan.digest`: each active release gating on that digest is judged
    /// again (its answer from ECR, not from the event). A digest no release waits on is logged.
    pub async fn image_scanned(&self, scan: &ScanCompleted, now: DateTime<Utc>) -> Result<Vec<Report>, ConvoyError> {
        let outbox = Outbox::new(now);
        let result = self.image_scanned_in(&outbox, scan, now).await;
        self.publish(outbox).await;
        result
    }

    async fn image_scanned_in(
        &self,
        outbox: &Outbox,
        scan: &ScanCompleted,
        now: DateTime<Utc>,
    ) -> Result<Vec<Report>, ConvoyError> {
        let mut reports = Vec::new();
        for key in self.active.active().await? {
            let judged = async {
                let Some(stored) = self.store.load(&key).await? else { return Ok(None) };
                let waits_on = stored.release.pinned_images().any(|(_, image, digest)| {
                    digest == Some(&scan.digest)
                        && image.repository == scan.repository
                        && image.registry == scan.registry
                });
                if !waits_on || !matches!(stored.release.state, State::Gating { .. }) {
                    return Ok(None);
                }
                info!(digest = %scan.digest, "a scan completed: judging the release's images again");
                self.judge_images(outbox, &key, Some(stored), now).await
            };
            match judged.instrument(release_span(&key)).await {
                Ok(Some(report)) => reports.push(report),
                Ok(None) => {}
                Err(err) => return Err(err),
            }
        }
        if reports.is_empty() {
            warn!(repository = %scan.repository, digest = %scan.digest, "scan completed; no gating release has that digest");
        }
        Ok(reports)
    }
}
