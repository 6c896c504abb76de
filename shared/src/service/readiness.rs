//! The readiness gate: a release is ready once every image its manifest names is in ECR, pinned
//! by digest, whatever order the manifest and the pushes arrive in and however often they repeat.

use chrono::{DateTime, Utc};
use tracing::{Instrument, info, warn};

use super::confirm::{self, Confirmed};
use super::transition::Outbox;
use super::{Convoy, Report, release_span};
use crate::error::{ConvoyError, ReadError, StoreError};
use crate::events::{Push, Upload};
use crate::manifest::{self, MAX_MANIFEST_BYTES, Submitted};
use crate::names::{Digest, ReleaseKey};
use crate::release::{Admitted, Effect, GroupOpening, ImageKey, ManifestSource, Release, Sighting, State, readiness};
use crate::submitter::Submitter;

impl Convoy {
    /// A manifest was uploaded: read it, create (or update) the release record, and pin the images
    /// that are already in ECR. Safe to call again with the same upload.
    pub async fn manifest_uploaded(&self, upload: &Upload, now: DateTime<Utc>) -> Result<Option<Report>, ConvoyError> {
        let outbox = Outbox::new(now);
        let result = self.manifest_uploaded_in(&outbox, upload, now).await;
        self.publish(outbox).await;
        result
    }

    pub(super) async fn manifest_uploaded_in(
        &self,
        outbox: &Outbox,
        upload: &Upload,
        now: DateTime<Utc>,
    ) -> Result<Option<Report>, ConvoyError> {
        if upload.object.bucket != self.config.store.state_bucket {
            warn!(bucket = %upload.object.bucket, key = %upload.object.key, "ignored: not Convoy's bucket");
            return Ok(None);
        }
        let key = match self.config.release_of(&upload.object.key) {
            Ok(key) => key,
            Err(why) => {
                // Without a safe service and release id there is no record to write the reason in.
                warn!(key = %upload.object.key, "ignored: {why}");
                return Ok(None);
            }
        };
        self.open_release(outbox, upload, &key, now).instrument(release_span(&key)).await.map(Some)
    }

    /// Creates the release's record from the manifest (or updates it, for a repeated upload) and
    /// looks up the images it awaits.
    async fn open_release(
        &self,
        outbox: &Outbox,
        upload: &Upload,
        key: &ReleaseKey,
        now: DateTime<Utc>,
    ) -> Result<Report, ConvoyError> {
        let (source, outcome) = self.read_manifest(upload, key).await?;
        // Drift is checked before anything of the release runs: the migration and the revision
        // both derive from the base the check records (ARCHITECTURE.md, "Drift").
        let (outcome, drift) = match outcome {
            Ok(admitted) => {
                let drift = self.check_drift(key, &admitted, now).await?;
                match crate::drift::refusal(&drift) {
                    Some(reason) => (Err(reason), drift),
                    None => (Ok(admitted), drift),
                }
            }
            Err(reason) => (Err(reason), Vec::new()),
        };
        if let Err(reason) = &outcome {
            warn!(%reason, "manifest rejected");
        }
        let mut fresh = match &outcome {
            Ok(admitted) => Release::open_admitted(key.clone(), source.clone(), admitted.clone(), now),
            Err(reason) => Release::rejected(key.clone(), source.clone(), reason.clone(), now),
        };
        fresh.settings = self.config.settings_version.clone();
        fresh.note_drift(drift.clone(), now);
        fresh.submitter = Some(Submitter::at_creation(self.config.manifest_trail.as_deref(), now));
        let stored = match self.create(outbox, fresh).await? {
            Some(created) => created,
            None => {
                let event = readiness::Event::ManifestUploaded { source, outcome, drift, at: now };
                // Created and gone again: the event is retried.
                self.transition(outbox, key, None, &event).await?.ok_or(StoreError::Conflict)?
            }
        };
        if !stored.release.state.is_terminal() {
            // So the reconciler finds the release whatever happens next.
            self.active.mark_active(key).await?;
        }
        // The look-up follows from the stored state, so a retry after a crash between the record
        // write and the wait-list resumes it (unless this write's own effects did it).
        let looked_up = stored.effects.iter().any(|e| matches!(e, Effect::ResolveImages { .. }));
        if stored.release.state == State::Collecting && !looked_up {
            let images = stored.release.awaited_images();
            if let Some(resolved) = self.resolve_images(outbox, key, &images, now, None).await? {
                return Ok(resolved);
            }
        }
        Ok(stored.report())
    }

    /// Reads and validates the manifest object. `Err(reason)` in the outcome is bad input (it ends
    /// the release); a returned error is a failure to read, worth a retry.
    async fn read_manifest(
        &self,
        upload: &Upload,
        key: &ReleaseKey,
    ) -> Result<(ManifestSource, Result<Admitted, String>), ConvoyError> {
        let mut source = ManifestSource {
            bucket: upload.object.bucket.clone(),
            key: upload.object.key.clone(),
            version_id: upload.object.version_id.clone(),
            etag: upload.etag.clone(),
        };
        if let Some(size) = upload.size.filter(|s| *s > MAX_MANIFEST_BYTES as u64) {
            let reason = manifest::ManifestError::TooLarge { size: size as usize }.to_string();
            return Ok((source, Err(reason)));
        }
        let fetched = match self.manifests.read(&upload.object, MAX_MANIFEST_BYTES).await {
            Ok(fetched) => fetched,
            Err(err @ (ReadError::NotFound | ReadError::TooLarge { .. })) => return Ok((source, Err(err.to_string()))),
            Err(err) => return Err(err.into()),
        };
        source.version_id = fetched.version_id.or(source.version_id);
        source.etag = fetched.etag.or(source.etag);
        let outcome = manifest::read(&fetched.bytes, key).and_then(|m| self.admit(key, m)).map_err(|e| e.to_string());
        let outcome = match outcome {
            // A rollback's claim is the manifest's word: Convoy's records confirm it, or it ends here.
            // Boxed: the records' reads would otherwise grow every caller's future.
            Ok(admitted) => Box::pin(self.confirm_rollback(key, admitted)).await?,
            Err(reason) => Err(reason),
        };
        Ok((source, outcome))
    }

    /// The manifest stage's checks under the operator's settings: the allow-lists, the release
    /// group (a group's manifest under its own key, naming only the group's services; a service's
    /// manifest never under a group's key), and the ceiling, per service.
    fn admit(&self, key: &ReleaseKey, submitted: Submitted) -> Result<Admitted, manifest::ManifestError> {
        let timeout = self.config.migration_timeout_seconds;
        match submitted {
            Submitted::Service(manifest) => {
                if self.config.release_groups.contains_key(key.service.as_str()) {
                    return Err(manifest::ManifestError::GroupNeedsVersion2 {
                        key: format!("{}{}/{}.json", self.config.manifest_prefix, key.service, key.release),
                        group: key.service.to_string(),
                    });
                }
                self.config.policy.admit(key, &manifest)?;
                crate::ceiling::admit(self.config.services.get(&key.service), timeout, key, &manifest)?;
                Ok(Admitted::Service(Box::new(manifest)))
            }
            Submitted::Group(manifest) => {
                let groups = self.config.release_groups.keys().map(String::as_str).collect();
                let members = self.config.release_groups.get(manifest.group.as_str()).map(Vec::as_slice);
                self.config.policy.admit_group(key, &manifest, members, &groups)?;
                crate::ceiling::admit_group(&self.config.services, timeout, key, &manifest)?;
                let methods = manifest
                    .services
                    .keys()
                    .filter_map(|service| Some((service.clone(), self.config.services.get(service)?.deploy.method())))
                    .collect();
                Ok(Admitted::Group(Box::new(GroupOpening { manifest, methods })))
            }
        }
    }

    /// Notes the release as waiting for `images` (so their pushes find it), then pins those already
    /// in ECR. The wait-list is written before ECR is asked: a push that lands in between is then
    /// seen by one side or the other, never by neither. With a `deadline` (the reconciler's look
    /// at every awaited image), a release still collecting past it fails at images, each image
    /// still missing named with why, in the same write as the images this look-up found.
    pub(super) async fn resolve_images(
        &self,
        outbox: &Outbox,
        key: &ReleaseKey,
        images: &[ImageKey],
        now: DateTime<Utc>,
        deadline: Option<chrono::Duration>,
    ) -> Result<Option<Report>, ConvoyError> {
        // Only a tag is pushed by name: an image pinned by digest is ECR's answer alone.
        for image in images.iter().filter(|image| image.tag().is_some()) {
            self.waits.add(image, key).await?;
        }
        let lookup = self.registry.resolve(images).await?;
        for (image, why) in &lookup.missing {
            info!(%image, %why, "not in ECR");
        }
        let found_any = !lookup.found.is_empty();
        if !found_any && deadline.is_none() {
            info!(awaited = images.len(), "no image of the release is in ECR yet");
            return Ok(None);
        }
        let event = readiness::Event::LookedUp { found: lookup.found, missing: lookup.missing, deadline, at: now };
        let Some(outcome) = self.transition(outbox, key, None, &event).await? else { return Ok(None) };
        if !outcome.changed && !found_any {
            // Only the deadline was judged, and it is not due: nothing to report.
            return Ok(None);
        }
        Ok(Some(outcome.report()))
    }

    /// An image was pushed: pin it in every release that waits for it. Safe to call again.
    pub async fn image_pushed(&self, push: &Push, now: DateTime<Utc>) -> Result<Vec<Report>, ConvoyError> {
        let outbox = Outbox::new(now);
        let result = self.image_pushed_in(&outbox, push, now).await;
        self.publish(outbox).await;
        result
    }

    async fn image_pushed_in(
        &self,
        outbox: &Outbox,
        push: &Push,
        now: DateTime<Utc>,
    ) -> Result<Vec<Report>, ConvoyError> {
        if !self.config.policy.allowed_repositories.contains(&push.image.repository) {
            info!(image = %push.image, "ignored: not an allowed repository");
            return Ok(Vec::new());
        }
        if !self.config.policy.registries.contains(&push.image.registry) {
            warn!(image = %push.image, "ignored: a push to a registry of an account Convoy does not pin from");
            return Ok(Vec::new());
        }
        let waiting = self.waits.waiting_for(&push.image).await?;
        if waiting.is_empty() {
            info!(image = %push.image, "no release waits for this image (yet): a manifest uploaded later will find it in ECR");
            return Ok(Vec::new());
        }
        // The event is a hint: what is pinned is the digest ECR names for the tag now, seen now
        // (so a look-up earlier in the same second as the push never outranks it).
        let digest = match self.confirmed_digest(push).await? {
            Ok(digest) => digest,
            Err(why) => {
                for key in &waiting {
                    confirm::refuse(confirm::kind::PUSH, Some(key), &why);
                }
                return Ok(Vec::new());
            }
        };
        let event =
            readiness::Event::ImageFound { image: push.image.clone(), digest, at: now, via: Sighting::RegistryLookup };
        let mut reports = Vec::new();
        let mut retryable = None;
        for key in waiting {
            let pinned = async {
                let result = self.transition(outbox, &key, None, &event).await;
                match &result {
                    Ok(Some(_)) => {}
                    Ok(None) => warn!("the wait-list names this release, but it has no record"),
                    Err(err) if err.is_retryable() => {
                        warn!(error = %err, "could not update the release; the event will be retried");
                    }
                    Err(err) => warn!(error = %err, "event ignored for this release"),
                }
                result
            };
            match pinned.instrument(release_span(&key)).await {
                Ok(Some(outcome)) => reports.push(outcome.report()),
                Err(err) if err.is_retryable() => retryable = Some(err),
                Ok(None) | Err(_) => {}
            }
        }
        // Every other release was updated; a retry of the whole event is idempotent for them.
        match retryable {
            Some(err) => Err(err),
            None => Ok(reports),
        }
    }

    /// The digest ECR names for the pushed tag now (`BatchGetImage` in the push's repository):
    /// what is pinned, whatever digest the event carried.
    async fn confirmed_digest(&self, push: &Push) -> Result<Confirmed<Digest>, ConvoyError> {
        let lookup = self.registry.resolve(std::slice::from_ref(&push.image)).await?;
        if let Some((_, digest)) = lookup.found.into_iter().find(|(image, _)| *image == push.image) {
            if digest != push.digest {
                warn!(image = %push.image, event = %push.digest, ecr = %digest, "ECR names another digest for the tag; pinning ECR's");
            }
            return Ok(Ok(digest));
        }
        let why = lookup.missing.first().map_or_else(|| "not found".to_owned(), |(_, why)| why.to_string());
        Ok(Err(format!("ECR does not have {} ({why}), whatever the event says", push.image)))
    }
}
