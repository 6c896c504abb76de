//! The image gate stage: once every image is pinned, the set of digests of the release is judged
//! against the operator's image policy before anything runs (`Collecting → Gating → Ready`, or
//! `Failed(gate)`). The judgement itself is pure (`image_policy::judge`); this stage keeps what it
//! saw, waits while a scan is in progress (up to the policy's wait) and decides. Readiness hands a
//! pinned release over (`release/readiness.rs`: `Gating` under a policy, else `Ready`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Context, Decision, Effect, Release, Stage, StageEvent, State, TransitionError};
use crate::image_policy::ImageEvidence;

/// What the record keeps of the gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageGate {
    /// When the gate began (every image pinned).
    pub since: DateTime<Utc>,
    /// When the gate last looked, and what it saw of each digest (empty: no image policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judged_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageEvidence>,
    /// `passed`, `failed`, `waiting`, or `no image policy`.
    pub verdict: String,
}

/// The gate stage's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// ECR was asked about every digest of the release at `at`; `images` is the verdict on each.
    /// While one waits (a scan in progress), the release stays `Gating` until `wait` has passed
    /// since the gate began; then it fails.
    Judged { images: Vec<ImageEvidence>, wait: chrono::Duration, at: DateTime<Utc> },
}

impl StageEvent for Event {
    fn apply_to(&self, release: &Release, context: &Context) -> Result<Decision, TransitionError> {
        let Event::Judged { images, wait, at } = self;
        let decision = release.on_judged(images, *wait, *at);
        Ok(super::migration::claim_when_ready(decision, context, *at))
    }
}

/// The verdict a service without an image policy records.
pub const NO_POLICY: &str = "no image policy";

impl Release {
    fn on_judged(&self, images: &[ImageEvidence], wait: chrono::Duration, at: DateTime<Utc>) -> Decision {
        let State::Gating { next } = self.state else {
            return Decision::unchanged(format!("the images were judged, but the release is {}", self.state));
        };
        let Some(gate) = &self.gate else { return Decision::inconsistent(self, "its gate") };
        let mut next_release = self.clone();
        let judged =
            ImageGate { since: gate.since, judged_at: Some(at), images: images.to_vec(), verdict: String::new() };
        let failed: Vec<&ImageEvidence> = images.iter().filter(|i| !i.problems.is_empty()).collect();
        let waiting: Vec<&ImageEvidence> = images.iter().filter(|i| i.waiting.is_some()).collect();
        if !failed.is_empty() || (!waiting.is_empty() && at >= gate.since + wait) {
            let mut reasons: Vec<String> =
                failed.iter().map(|i| format!("{} ({}): {}", i.container, i.image, i.problems.join("; "))).collect();
            for image in waiting.iter().filter(|i| i.problems.is_empty()) {
                let waited = image.waiting.as_deref().unwrap_or_default();
                reasons.push(format!("{} ({}): {waited} after {} s", image.container, image.image, wait.num_seconds()));
            }
            let reason = format!("the image policy refused: {}", reasons.join(" | "));
            next_release.gate = Some(ImageGate { verdict: "failed".into(), ..judged });
            next_release.record(at, "gate-failed", reason.clone());
            next_release.state = State::Failed { stage: Stage::Gate, reason };
            return Decision::changed(next_release, Vec::new());
        }
        if !waiting.is_empty() {
            if gate.images.as_slice() == images {
                return Decision::unchanged("the gate still waits for the same scans");
            }
            let detail = waiting.iter().map(|i| i.summary()).collect::<Vec<_>>().join(" | ");
            next_release.gate = Some(ImageGate { verdict: "waiting".into(), ..judged });
            next_release.record(at, "gate-waiting", detail);
            return Decision::changed(next_release, Vec::new());
        }
        let detail = images.iter().map(|i| i.summary()).collect::<Vec<_>>().join(" | ");
        next_release.gate = Some(ImageGate { verdict: "passed".into(), ..judged });
        next_release.record(at, "gate-passed", detail);
        next_release.state = State::Ready { next };
        let effect = if next == Stage::Migration { Effect::StartMigration } else { next_release.deploy_effect() };
        Decision::changed(next_release, vec![effect])
    }
}
