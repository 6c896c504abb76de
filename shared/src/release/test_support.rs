//! What the state machine's tests share: a release key, a clock, and ways to apply an event.

use chrono::{DateTime, TimeZone, Utc};

use super::{Decision, Digest, Effect, ImageKey, ManifestSource, Release, Sighting, StageEvent, readiness};
use crate::manifest;
use crate::names::{ReleaseId, ReleaseKey, ServiceName};

pub(crate) const APP: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:r1";

pub(crate) fn key() -> ReleaseKey {
    ReleaseKey::new(ServiceName::new("web").unwrap(), ReleaseId::new("r1").unwrap())
}

/// A fixed instant plus `seconds`: tests read as a timeline.
pub(crate) fn t(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
}

pub(crate) fn changed(decision: Decision) -> (Release, Vec<Effect>) {
    match decision {
        Decision::Changed { release, effects, .. } => (*release, effects),
        Decision::Unchanged { why } => panic!("expected a change, got unchanged: {why}"),
    }
}

pub(crate) fn unchanged(decision: Decision) -> bool {
    matches!(decision, Decision::Unchanged { .. })
}

pub(crate) fn apply(release: &Release, event: impl StageEvent) -> (Release, Vec<Effect>) {
    changed(release.apply(&event).unwrap())
}

/// A release of one image (`app`), pinned, with or without a migration.
pub(crate) fn ready(migration: bool) -> Release {
    let (release, event) = opened_with_its_image_found(migration);
    apply(&release, event).0
}

/// A release of one image (`app`) just opened, with or without a migration, and the sighting that
/// pins its image (`sha256:aa`), not yet applied.
pub(crate) fn opened_with_its_image_found(migration: bool) -> (Release, readiness::Event) {
    let migration = if migration { r#", "migration": {"container": "app", "command": ["migrate"]}"# } else { "" };
    let text =
        format!(r#"{{"version": 1, "release": "r1", "service": "web", "images": {{"app": "{APP}"}}{migration}}}"#);
    let source =
        ManifestSource { bucket: "b".into(), key: "releases/web/r1.json".into(), version_id: None, etag: None };
    let release = Release::open(key(), source, manifest::parse(text.as_bytes(), &key()).unwrap(), t(0));
    let image = ImageKey::of(&release.images.values().next().unwrap().image);
    let event = readiness::Event::ImageFound {
        image,
        digest: Digest::new("sha256:aa").unwrap(),
        at: t(1),
        via: Sighting::PushEvent,
    };
    (release, event)
}
