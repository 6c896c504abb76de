//! What every view shows of a group's release (a version 2 manifest): one row per service, in the
//! manifest's order, with its method, its deployment, its state and the revision it runs. `convoy
//! status`, `wait`, `list`, the dashboard and the release events all read a section through these
//! helpers, so they word a state the same way. Read-only: the sections move in `release/`.

use std::fmt::Write;

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

/// A task definition ARN as a person reads it: its `family:revision`.
pub fn short_revision(arn: &str) -> &str {
    arn.rsplit_once("task-definition/").map_or(arn, |(_, family)| family)
}

/// The revision a section runs: `web:41 → web:42` (previous → the release's), `—` for none yet.
pub fn revisions(section: &ServiceSection) -> String {
    let (before, after) = (section.previous_revision.as_deref(), section.revision.as_deref());
    match (before.map(short_revision), after.map(short_revision)) {
        (Some(before), Some(after)) => format!("{before} → {after}"),
        (Some(before), None) => format!("{before} → (not registered yet)"),
        (None, Some(after)) => format!("(none recorded) → {after}"),
        (None, None) => "—".to_owned(),
    }
}

/// The services table of `convoy status` for a group's release: a row per service in the
/// manifest's order (steps counted from 1), a section's reason on the line under its row. Nothing
/// for a release of one service.
pub fn render(out: &mut String, release: &Release) {
    if !is_group(release) {
        return;
    }
    let deployment = |s: &ServiceSection| s.deployment.as_ref().map_or("—".to_owned(), |d| d.as_str().to_owned());
    let rows: Vec<[String; 6]> = release
        .services
        .iter()
        .map(|s| {
            let step = (s.step + 1).to_string();
            let state = state_name(&s.state).to_owned();
            [step, s.service.to_string(), s.method.to_string(), deployment(s), state, revisions(s)]
        })
        .collect();
    let header = ["STEP", "SERVICE", "METHOD", "DEPLOYMENT", "STATE", "REVISION"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: [&str; 6]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = if i + 1 == cells.len() { 0 } else { widths[i] - cell.chars().count() };
            let _ = write!(text, "  {cell}{}", " ".repeat(pad));
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    let _ = writeln!(out, "\nservices  {}", label(release));
    line(out, header);
    for (row, section) in rows.iter().zip(&release.services) {
        line(out, row.each_ref().map(String::as_str));
        if let Some(why) = reason(&section.state) {
            // Under its row, from the service's column: a reason can be long.
            let _ = writeln!(out, "  {}  {}: {why}", " ".repeat(widths[0]), state_name(&section.state));
        }
    }
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
    fn status_shows_a_row_per_service_in_the_manifests_order_with_method_deployment_state_and_revisions() {
        let mut out = String::new();
        render(&mut out, &shop());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "services  shop (web, api, batch, jobs)", "{out}");
        assert_eq!(lines[2].split_whitespace().collect::<Vec<_>>(), header_words(), "{out}");
        let words = |line: &str| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(words(lines[3]), ["1", "web", "codedeploy", "d-ABCDEFGHI", "live", "web:41", "→", "web:42"]);
        assert_eq!(words(lines[4]), ["2", "api", "ecs-native", "—", "rolled-back", "api:7", "→", "api:8"]);
        assert_eq!(lines[5].trim(), "rolled-back: 2 of 5 probes failed");
        assert_eq!(words(lines[6]), ["2", "batch", "codepipeline", "—", "failed", "—"]);
        assert_eq!(lines[7].trim(), "failed: pipeline execution \u{1b}[2J failed", "the terminal cleans it, not here");
        assert_eq!(words(lines[8]), ["3", "jobs", "ecs-rolling", "—", "waiting", "—"]);
        assert_eq!(lines.len(), 9, "{out}");
    }

    #[test]
    fn status_shows_the_services_table_after_the_releases_own_timeline() {
        let text = crate::status::render(&shop());
        let timeline = text.find("\ntimeline").expect("a timeline");
        let services = text.find("\nservices  shop (web, api, batch, jobs)").expect("a services table");
        assert!(timeline < services, "{text}");
    }

    fn header_words() -> Vec<&'static str> {
        vec!["STEP", "SERVICE", "METHOD", "DEPLOYMENT", "STATE", "REVISION"]
    }

    #[test]
    fn a_release_of_one_service_has_no_services_table() {
        let mut release = shop();
        release.services.clear();
        let mut out = String::new();
        render(&mut out, &release);
        assert_eq!(out, "");
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
