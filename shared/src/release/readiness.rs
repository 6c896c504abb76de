//! The readiness stage of the state machine: the manifest is accepted (or refused), and each image
//! it names is pinned by digest as ECR pushes and look-ups report it, in whatever order and however
//! often they arrive. The last pinned image makes the release ready for its migration (or, without
//! one, for its deployment).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Decision, Effect, ImageKey, ImageStatus, ManifestSource, Release, Sighting, Stage, State, TransitionError,
};
use crate::manifest::Manifest;
use crate::names::{ContainerName, Digest, Excerpt};

/// Why ECR did not return an image the release awaits, as one look-up found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "kebab-case")]
pub enum Absence {
    /// The repository exists, the tag does not (ECR's `ImageNotFound`).
    TagAbsent,
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
            Absence::RepositoryUnknown => f.write_str("repository unknown (ECR: RepositoryNotFoundException)"),
            Absence::AccessDenied { detail } => write!(f, "access denied, registry not readable ({})", Excerpt(detail)),
            Absence::Unreadable { detail } => write!(f, "ECR could not return it ({})", Excerpt(detail)),
        }
    }
}

impl Release {
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
        self.manifest = Some(manifest);
        self.state = State::Collecting;
    }

    pub(super) fn reject(&mut self, reason: String, at: DateTime<Utc>) {
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
            return Err(TransitionError::ImageNotInRelease { image: image.clone(), release: self.key.clone() });
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
            return Ok(Decision::Changed { release: Box::new(next), effects });
        }
        if !changed {
            return Ok(Decision::unchanged(format!("{image} at {digest} is already known")));
        }
        if next.awaited_images().is_empty() {
            let has_migration = next.manifest.as_ref().is_some_and(|m| m.migration.is_some());
            let (stage, detail) = if has_migration {
                (Stage::Migration, "all images pinned; next: migration")
            } else {
                (Stage::Deployment, "all images pinned; no migration declared, next: deployment")
            };
            next.state = State::Ready { next: stage };
            next.record(at, "ready", detail.to_owned());
        }
        let effects = if next.state == self.state { Vec::new() } else { next.pending_work() };
        Ok(Decision::Changed { release: Box::new(next), effects })
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
        Decision::Changed { release: Box::new(next), effects: vec![Effect::ForgetWaits { images }] }
    }

    pub(super) fn on_manifest_uploaded(
        &self,
        source: &ManifestSource,
        outcome: &Result<Manifest, String>,
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
                Ok(manifest) => next.accept(manifest.clone(), at),
                Err(reason) => next.reject(reason.clone(), at),
            }
            let effects = next.pending_work();
            return Decision::Changed { release: Box::new(next), effects };
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
        Decision::Changed { release: Box::new(next), effects: Vec::new() }
    }
}
