//! The readiness stage of the state machine: the manifest is accepted (or refused), and each image
//! it names is pinned by digest as ECR pushes and look-ups report it, in whatever order and however
//! often they arrive. The last pinned image makes the release ready for its migration (or, without
//! one, for its deployment); with a [`Context`] that says how, the same write claims the migration.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::gate::{ImageGate, NO_POLICY};
use super::group::GroupOpening;
use super::{Context, Decision, Effect, Release, Stage, StageEvent, State, TransitionError};
use crate::manifest::{ImageRef, Manifest, Reference};
use crate::names::{AccountId, ContainerName, Digest, Excerpt, ImageTag, ReleaseKey, RepositoryName};

/// The readiness stage's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An image tag was found in ECR with this digest.
    ImageFound { image: ImageKey, digest: Digest, at: DateTime<Utc>, via: Sighting },
    /// The manifest object was uploaded (again) for an existing record.
    /// `drift`: the manifest stage's drift check of each service (empty when refused before it).
    ManifestUploaded {
        source: ManifestSource,
        outcome: Result<Admitted, String>,
        drift: Vec<crate::drift::DriftCheck>,
        at: DateTime<Utc>,
    },
    /// The reconciler looked the awaited images up at `at` and found these still missing, each
    /// with why. A release still collecting `deadline` after its manifest was accepted fails.
    ImagesOverdue { missing: Vec<(ImageKey, Absence)>, deadline: chrono::Duration, at: DateTime<Utc> },
    /// One look-up in ECR at `at`: the images `found` (each an [`Event::ImageFound`]), then, with a
    /// `deadline` (the reconciler's look), the images still missing ([`Event::ImagesOverdue`]).
    LookedUp {
        found: Vec<(ImageKey, Digest)>,
        missing: Vec<(ImageKey, Absence)>,
        deadline: Option<chrono::Duration>,
        at: DateTime<Utc>,
    },
}

impl StageEvent for Event {
    fn apply_to(&self, release: &Release, context: &Context) -> Result<Decision, TransitionError> {
        let decision = match self {
            Event::ImageFound { image, digest, at, via } => release.on_image_found(image, digest, *at, *via)?,
            Event::ManifestUploaded { source, outcome, drift, at } => {
                release.on_manifest_uploaded(source, outcome, drift, *at)
            }
            Event::ImagesOverdue { missing, deadline, at } => release.on_images_overdue(missing, *deadline, *at),
            Event::LookedUp { found, missing, deadline, at } => {
                // Found images first: a release whose last image arrives at the deadline is ready.
                let mut decision = Decision::unchanged("nothing was looked up");
                for (image, digest) in found {
                    let found = |r: &Release| r.on_image_found(image, digest, *at, Sighting::RegistryLookup);
                    decision = decision.then(release, found)?;
                }
                if let Some(deadline) = deadline {
                    decision = decision.then(release, |r| Ok(r.on_images_overdue(missing, *deadline, *at)))?;
                }
                decision
            }
        };
        let at = match self {
            Event::ImageFound { at, .. }
            | Event::ManifestUploaded { at, .. }
            | Event::ImagesOverdue { at, .. }
            | Event::LookedUp { at, .. } => *at,
        };
        let decision = gate_when_pinned(decision, context, at);
        Ok(super::migration::claim_when_ready(decision, context, at))
    }
}

/// A readiness decision that made the release ready: with an image policy it gates instead (the
/// next stage's start becomes the judgement); without one it moves on, "no image policy" kept.
fn gate_when_pinned(decision: Decision, context: &Context, at: DateTime<Utc>) -> Decision {
    let Decision::Changed { mut release, effects, passed } = decision else { return decision };
    let State::Ready { next } = release.state else { return Decision::Changed { release, effects, passed } };
    if !context.gate {
        release.gate = Some(ImageGate { since: at, judged_at: None, images: Vec::new(), verdict: NO_POLICY.into() });
        return Decision::Changed { release, effects, passed };
    }
    release.state = State::Gating { next };
    release.gate = Some(ImageGate { since: at, judged_at: None, images: Vec::new(), verdict: "waiting".into() });
    release.record(at, "gating", "every image pinned; judging each digest against the image policy".into());
    let effects = effects
        .into_iter()
        .map(|e| match e {
            Effect::StartMigration | Effect::StartDeployment | Effect::TakeServiceLocks => Effect::JudgeImages,
            other => other,
        })
        .collect();
    Decision::Changed { release, effects, passed }
}

/// A manifest the manifest stage admitted: one service's, or a release group's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    Service(Box<Manifest>),
    Group(Box<GroupOpening>),
}

impl From<Manifest> for Admitted {
    fn from(manifest: Manifest) -> Self {
        Admitted::Service(Box::new(manifest))
    }
}

impl Release {
    /// A new record for an admitted manifest: one service's, or a release group's.
    pub fn open_admitted(key: ReleaseKey, source: ManifestSource, admitted: Admitted, at: DateTime<Utc>) -> Self {
        match admitted {
            Admitted::Service(manifest) => Release::open(key, source, *manifest, at),
            Admitted::Group(opening) => Release::open_group(key, source, *opening, at),
        }
    }
}

/// Where the manifest came from: the exact object version Convoy read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSource {
    pub bucket: String,
    pub key: String,
    /// The object version (versioned buckets); `None` on an unversioned bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl ManifestSource {
    /// Two uploads are the same when their version ids (or, unversioned, their ETags) agree.
    pub fn same_upload(&self, other: &ManifestSource) -> bool {
        match (&self.version_id, &other.version_id) {
            (Some(a), Some(b)) => a == b,
            _ => self.etag.is_some() && self.etag == other.etag,
        }
    }

    pub fn describe(&self) -> String {
        match &self.version_id {
            Some(version) => format!("s3://{}/{} (version {version})", self.bucket, self.key),
            None => format!("s3://{}/{}", self.bucket, self.key),
        }
    }
}

/// An image of the release and, once seen in ECR, the digest it is pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageStatus {
    pub image: ImageRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// When the pinned digest was observed (push time, or the time of the registry look-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_at: Option<DateTime<Utc>>,
}

/// An image as ECR identifies it: registry, repository, and tag (as a push event names it) or
/// digest (as a manifest pinned by digest names it; no push event ever names one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ImageKey {
    pub registry: AccountId,
    pub repository: RepositoryName,
    #[serde(flatten)]
    pub reference: Reference,
}

impl ImageKey {
    pub fn of(image: &ImageRef) -> Self {
        Self {
            registry: image.registry.clone(),
            repository: image.repository.clone(),
            reference: image.reference.clone(),
        }
    }

    /// The image by tag, as an ECR push event names it.
    pub fn tagged(registry: AccountId, repository: RepositoryName, tag: ImageTag) -> Self {
        Self { registry, repository, reference: Reference::Tag(tag) }
    }

    /// The tag, for an image named by one: only those are pushed (and wait-listed).
    pub fn tag(&self) -> Option<&ImageTag> {
        match &self.reference {
            Reference::Tag(tag) => Some(tag),
            Reference::Digest(_) => None,
        }
    }
}

impl fmt::Display for ImageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.repository, self.reference)
    }
}

/// How Convoy learned of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sighting {
    /// An ECR push event (its time is the push time).
    PushEvent,
    /// A look-up in ECR (its time is when Convoy looked).
    RegistryLookup,
}

/// Why ECR did not return an image the release awaits, as one look-up found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "kebab-case")]
pub enum Absence {
    /// The repository exists, the tag does not (ECR's `ImageNotFound`).
    TagAbsent,
    /// The repository exists, the digest a manifest pinned is not in it (ECR's `ImageNotFound`):
    /// deleted, or never pushed there. No push can bring it under that name but the same image.
    DigestAbsent,
    /// No such repository in that registry (`RepositoryNotFoundException`).
    RepositoryUnknown,
    /// ECR refused to read the repository (`AccessDeniedException`): the registry is not one
    /// Convoy's role may read. `detail` is ECR's message.
    AccessDenied { detail: String },
    /// ECR answered for the tag with another failure code (a KMS error, an upstream registry of a
    /// pull-through cache); `detail` is its code and reason.
    Unreadable { detail: String },
}

impl fmt::Display for Absence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Absence::TagAbsent => f.write_str("tag absent (ECR: ImageNotFound)"),
            Absence::DigestAbsent => f.write_str("digest not in the repository (ECR: ImageNotFound)"),
            Absence::RepositoryUnknown => f.write_str("repository unknown (ECR: RepositoryNotFoundException)"),
            Absence::AccessDenied { detail } => write!(f, "access denied, registry not readable ({})", Excerpt(detail)),
            Absence::Unreadable { detail } => write!(f, "ECR could not return it ({})", Excerpt(detail)),
        }
    }
}

impl Release {
    /// The distinct images still without a digest.
    pub fn awaited_images(&self) -> Vec<ImageKey> {
        let mut keys: Vec<ImageKey> = self
            .images
            .values()
            .filter(|status| status.digest.is_none())
            .map(|status| ImageKey::of(&status.image))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    pub(super) fn accept(&mut self, manifest: Manifest, at: DateTime<Utc>) {
        self.images = manifest
            .images
            .iter()
            .map(|(container, image)| {
                (container.clone(), ImageStatus { image: image.clone(), digest: None, seen_at: None })
            })
            .collect();
        let listed = manifest.images.iter().map(|(c, i)| format!("{c}={}", i.uri())).collect::<Vec<_>>().join(", ");
        self.record(at, "manifest-accepted", format!("{}: {listed}", self.source.describe()));
        self.rollback = manifest.rollback.as_ref().and_then(|claim| claim.confirmed.clone());
        self.record_rollback(at);
        self.manifest = Some(manifest);
        self.group = None;
        self.services.clear();
        self.state = State::Collecting;
    }

    /// Notes a confirmed rollback on the timeline: what it reverts, and where the schema stays.
    pub(super) fn record_rollback(&mut self, at: DateTime<Utc>) {
        let Some(rollback) = &self.rollback else { return };
        let detail = format!("rollback of {} to {}: {}", rollback.of, rollback.to, rollback.schema);
        self.record(at, "rollback-confirmed", detail);
    }

    /// Ends the release at the manifest stage. What an earlier upload held (a group's sections)
    /// goes with it: a record describes its last upload.
    pub(super) fn reject(&mut self, reason: String, at: DateTime<Utc>) {
        self.group = None;
        self.rollback = None;
        self.services.clear();
        self.record(at, "manifest-rejected", format!("{}: {reason}", self.source.describe()));
        self.state = State::Failed { stage: Stage::Manifest, reason };
    }

    pub(super) fn on_image_found(
        &self,
        image: &ImageKey,
        digest: &Digest,
        at: DateTime<Utc>,
        via: Sighting,
    ) -> Result<Decision, TransitionError> {
        let matching: Vec<&ContainerName> =
            self.images.iter().filter(|(_, status)| ImageKey::of(&status.image) == *image).map(|(c, _)| c).collect();
        if matching.is_empty() {
            return Err(TransitionError::ImageNotInRelease {
                image: Box::new(image.clone()),
                release: self.key.clone(),
            });
        }
        if self.state.is_terminal() {
            return Ok(Decision::unchanged(format!("{image} pushed, but the release ended: {}", self.state)));
        }
        if self.state != State::Collecting {
            let moved = matching.iter().any(|c| self.images[*c].digest.as_ref() != Some(digest));
            let why = if moved {
                format!("{image} now points to {digest}, but the release is {} and keeps its pinned digest", self.state)
            } else {
                format!("{image} is already pinned; the release is {}", self.state)
            };
            return Ok(Decision::unchanged(why));
        }

        let mut next = self.clone();
        let mut changed = false;
        let mut unordered = false;
        for container in matching {
            let status = next.images.get_mut(container).expect("container came from this map");
            let how = match via {
                Sighting::PushEvent => "pushed",
                Sighting::RegistryLookup => "found in ECR",
            };
            match &status.digest {
                // Unpinned after two same-second pushes of different digests: a push event from
                // that second (a replay of either) cannot say which came last; ECR's answer, or
                // a later push, can.
                None if via == Sighting::PushEvent && status.seen_at.is_some_and(|unordered| at <= unordered) => {}
                None => {
                    status.digest = Some(digest.clone());
                    // After an unordered second, ECR's answer outranks every push of that second
                    // (it counts as the next second at the earliest), even from a clock behind
                    // EventBridge's. A push in that next second is again unordered: ECR is asked
                    // again, and again has the answer.
                    let outranks = |unordered: DateTime<Utc>| (unordered + chrono::Duration::seconds(1)).max(at);
                    status.seen_at = Some(status.seen_at.map_or(at, outranks));
                    let detail = format!("{container}: {image} {how}, pinned to {digest}");
                    next.record(at, "image-pinned", detail);
                    changed = true;
                }
                Some(pinned) if pinned == digest => {}
                // The tag moved before the release was ready: the newer sighting wins, so the
                // release ships what the tag pointed to last, whatever order the events came in.
                Some(pinned) if status.seen_at.is_none_or(|seen| at > seen) => {
                    let detail = format!("{container}: {image} {how} again, re-pinned from {pinned} to {digest}");
                    status.digest = Some(digest.clone());
                    status.seen_at = Some(at);
                    next.record(at, "image-repinned", detail);
                    changed = true;
                }
                // EventBridge's `time` has whole seconds: two pushes of one tag within a second
                // cannot be ordered by it. The pin is dropped (the release waits) and ECR is asked
                // what the tag points to now.
                Some(pinned) if status.seen_at == Some(at) => {
                    let detail = format!(
                        "{container}: {image} {how} as {pinned} and as {digest} within the same second; \
                         asking ECR what the tag points to now"
                    );
                    status.digest = None;
                    next.record(at, "image-unordered", detail);
                    changed = true;
                    unordered = true;
                }
                Some(_) => {}
            }
        }
        if unordered {
            let effects = vec![Effect::ResolveImages { images: vec![image.clone()] }];
            return Ok(Decision::changed(next, effects));
        }
        if !changed {
            return Ok(Decision::unchanged(format!("{image} at {digest} is already known")));
        }
        let mut effects = Vec::new();
        if next.awaited_images().is_empty() {
            let has_migration = next.declared_migration().is_some();
            let (stage, effect, detail) = if has_migration {
                (Stage::Migration, Effect::StartMigration, "all images pinned; next: migration")
            } else {
                let detail = "all images pinned; no migration declared, next: deployment";
                (Stage::Deployment, next.deploy_effect(), detail)
            };
            next.state = State::Ready { next: stage };
            next.record(at, "ready", detail.to_owned());
            effects.push(effect);
        }
        Ok(Decision::changed(next, effects))
    }

    /// When the release began to collect: its (last) accepted manifest. A release reopened by a
    /// fixed manifest gets its full deadline from then.
    pub fn collecting_since(&self) -> DateTime<Utc> {
        let accepted = self.timeline.iter().rev().find(|e| e.event == "manifest-accepted");
        accepted.map_or_else(|| self.opened_at(), |e| e.at)
    }

    pub(super) fn on_images_overdue(
        &self,
        missing: &[(ImageKey, Absence)],
        deadline: chrono::Duration,
        at: DateTime<Utc>,
    ) -> Decision {
        if self.state != State::Collecting {
            return Decision::unchanged(format!("the release is {}, not collecting", self.state));
        }
        let due = self.collecting_since() + deadline;
        if at < due {
            return Decision::unchanged(format!("the images have until {due}"));
        }
        let awaited: Vec<String> = self
            .images
            .iter()
            .filter(|(_, status)| status.digest.is_none())
            .map(|(container, status)| {
                let why = missing
                    .iter()
                    .find(|(image, _)| *image == ImageKey::of(&status.image))
                    .map_or("not found (no reason given)".to_owned(), |(_, why)| why.to_string());
                format!("{} {}: {why}", Excerpt(container.as_str()), Excerpt(&status.image.uri()))
            })
            .collect();
        if awaited.is_empty() {
            return Decision::inconsistent(self, "an awaited image");
        }
        let reason = format!(
            "still collecting {}s after the manifest was accepted (deadline {}s); missing: {}",
            (at - self.collecting_since()).num_seconds(),
            deadline.num_seconds(),
            awaited.join("; ")
        );
        let mut next = self.clone();
        next.record(at, "images-overdue", reason.clone());
        next.state = State::Failed { stage: Stage::Images, reason };
        let mut images: Vec<ImageKey> = self.images.values().map(|status| ImageKey::of(&status.image)).collect();
        images.sort();
        images.dedup();
        Decision::changed(next, vec![Effect::ForgetWaits { images }])
    }

    pub(super) fn on_manifest_uploaded(
        &self,
        source: &ManifestSource,
        outcome: &Result<Admitted, String>,
        drift: &[crate::drift::DriftCheck],
        at: DateTime<Utc>,
    ) -> Decision {
        if self.source.same_upload(source) {
            return Decision::unchanged(format!("{} was already read", source.describe()));
        }
        let mut next = self.clone();
        // A rejected manifest may be fixed by uploading it again; an accepted one is the release's
        // contract and never changes under it.
        if matches!(self.state, State::Failed { stage: Stage::Manifest, .. }) {
            next.source = source.clone();
            match outcome {
                Ok(Admitted::Service(manifest)) => next.accept(manifest.as_ref().clone(), at),
                Ok(Admitted::Group(opening)) => next.accept_group(opening.as_ref().clone(), at),
                Err(reason) => next.reject(reason.clone(), at),
            }
            next.note_drift(drift.to_vec(), at);
            next.submitter = self.submitter.as_ref().map(|submitter| submitter.for_new_upload(at));
            let effects = next.pending_work();
            return Decision::changed(next, effects);
        }
        if next.timeline.iter().any(|e| e.event == "manifest-ignored" && e.detail.starts_with(&source.describe())) {
            return Decision::unchanged(format!("{} was already ignored", source.describe()));
        }
        next.record(
            at,
            "manifest-ignored",
            format!(
                "{}: the release already has its manifest ({}); upload a new release id to change it",
                source.describe(),
                self.source.describe()
            ),
        );
        Decision::changed(next, Vec::new())
    }
}
