//! What the views show of a group's release (a version 2 manifest) beyond its rows (which
//! `status.rs` `render_services` prints): a section's state by its record name and reason, whether
//! every service is live (`convoy wait`), the label `shop (web, worker)` (the dashboard's
//! overview). Read-only: the sections move in `release/`.

use crate::release::{Release, SectionState, ServiceSection};

/// A section's state as the record's JSON tag names it (`rolled-back`).
pub fn state_name(state: &SectionState) -> &'static str {
    match state {
        SectionState::Waiting => "waiting",
        SectionState::Deploying => "deploying",
        SectionState::Verifying => "verifying",
        SectionState::Through => "through",
        SectionState::Live => "live",
        SectionState::RollingBack { .. } => "rolling-back",
        SectionState::RolledBack { .. } => "rolled-back",
        SectionState::Failed { .. } => "failed",
    }
}

/// Why a section is rolling back, rolled back or failed.
pub fn reason(state: &SectionState) -> Option<&str> {
    match state {
        SectionState::RollingBack { reason }
        | SectionState::RolledBack { reason }
        | SectionState::Failed { reason } => Some(reason),
        _ => None,
    }
}

/// The state with its reason, on one line: `rolled-back: 2 of 5 probes failed`.
pub fn state_text(state: &SectionState) -> String {
    match reason(state) {
        Some(reason) => format!("{}: {reason}", state_name(state)),
        None => state_name(state).to_owned(),
    }
}

/// Whether the section ended without the release's revision running: it cannot become live again
/// in this release, so the release cannot succeed.
pub fn ended_badly(state: &SectionState) -> bool {
    matches!(state, SectionState::RolledBack { .. } | SectionState::Failed { .. })
}

/// Whether `release` is a group's release (it has sections).
pub fn is_group(release: &Release) -> bool {
    !release.services.is_empty()
}

/// Whether every section of a group's release runs the release's revision (`false` for a release
/// of one service, which has no section).
pub fn all_live(release: &Release) -> bool {
    is_group(release) && release.services.iter().all(|s| s.state == SectionState::Live)
}

/// The first section (in the manifest's order) that ended badly.
pub fn first_ended_badly(release: &Release) -> Option<&ServiceSection> {
    release.services.iter().find(|s| ended_badly(&s.state))
}

/// The services of a group's release, in the manifest's order: `web, worker`.
pub fn service_names(release: &Release) -> String {
    release.services.iter().map(|s| s.service.as_str()).collect::<Vec<_>>().join(", ")
}

/// Who the release is of: `shop (web, worker)` for a group's release, the service otherwise.
pub fn label(release: &Release) -> String {
    let name = release.group.as_ref().map_or(&release.key.service, |g| &g.group);
    if is_group(release) { format!("{name} ({})", service_names(release)) } else { name.to_string() }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const ARN: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/";

    /// A group `shop` of four services: web live, api rolled back, batch failed, jobs waiting.
    pub(crate) fn shop() -> Release {
        serde_json::from_value(serde_json::json!({
            "schema": 1,
            "key": {"service": "shop", "release": "r1"},
            "source": {"bucket": "b", "key": "releases/shop/r1.json"},
            "images": {},
            "state": {"name": "RollingBack", "reason": "api: verification failed", "deployment": {"codedeploy": "d-ABCDEFGHI"}},
            "timeline": [],
            "services": [
                {"service": "web", "step": 0, "method": "codedeploy", "takes_traffic": true, "containers": {},
                 "previous_revision": format!("{ARN}web:41"), "revision": format!("{ARN}web:42"),
                 "deployment": {"codedeploy": "d-ABCDEFGHI"}, "state": {"name": "live"}},
                {"service": "api", "step": 1, "method": "ecs-native", "takes_traffic": true, "containers": {},
                 "previous_revision": format!("{ARN}api:7"), "revision": format!("{ARN}api:8"),
                 "state": {"name": "rolled-back", "reason": "2 of 5 probes failed"}},
                {"service": "batch", "step": 1, "method": "codepipeline", "takes_traffic": true, "containers": {},
                 "state": {"name": "failed", "reason": "pipeline execution \u{1b}[2J failed"}},
                {"service": "jobs", "step": 2, "method": "ecs-rolling", "takes_traffic": false, "containers": {},
                 "state": {"name": "waiting"}}
            ]
        }))
        .expect("a group's record")
    }

    #[test]
    fn a_release_of_one_service_is_labelled_by_its_service_and_is_never_all_live() {
        let mut release = shop();
        assert_eq!(label(&release), "shop (web, api, batch, jobs)");
        release.services.clear();
        assert_eq!(label(&release), "shop");
        assert!(!all_live(&release), "no section is not all live");
    }

    #[test]
    fn a_group_is_all_live_only_when_every_section_is_live() {
        let mut release = shop();
        assert!(!all_live(&release));
        assert_eq!(first_ended_badly(&release).map(|s| s.service.as_str()), Some("api"));
        for section in &mut release.services {
            section.state = SectionState::Live;
        }
        assert!(all_live(&release) && first_ended_badly(&release).is_none());
        release.services[3].state = SectionState::Through;
        assert!(!all_live(&release), "a service through its step is not live yet");
    }

    #[test]
    fn every_section_state_is_named_as_the_record_tags_it() {
        let reason = || "r".to_owned();
        for state in [
            SectionState::Waiting,
            SectionState::Deploying,
            SectionState::Verifying,
            SectionState::Through,
            SectionState::Live,
            SectionState::RollingBack { reason: reason() },
            SectionState::RolledBack { reason: reason() },
            SectionState::Failed { reason: reason() },
        ] {
            let tag = serde_json::to_value(&state).unwrap()["name"].as_str().unwrap().to_owned();
            assert_eq!(state_name(&state), tag);
            assert_eq!(state_text(&state).ends_with(": r"), reason_of(&state).is_some(), "{tag}");
        }
    }

    fn reason_of(state: &SectionState) -> Option<&str> {
        reason(state)
    }
}
