//! The release record as a person reads it (`convoy status`).

use std::fmt::Write;

use crate::release::Release;

/// Renders the record: state, images with tag and digest, and the timeline.
pub fn render(release: &Release) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "release   {}", release.key);
    let _ = writeln!(out, "state     {}", release.state);
    let _ = writeln!(out, "manifest  {}", release.source.describe());
    if !release.images.is_empty() {
        let _ = writeln!(out, "\nimages");
        let width = release.images.keys().map(|c| c.as_str().len()).max().unwrap_or(0);
        for (container, status) in &release.images {
            let digest = status.digest.as_ref().map_or("(waiting for push)".to_owned(), ToString::to_string);
            let _ = writeln!(out, "  {:width$}  {}  {digest}", container.as_str(), status.image.uri());
        }
    }
    let _ = writeln!(out, "\ntimeline");
    let width = release.timeline.iter().map(|e| e.event.len()).max().unwrap_or(0);
    for entry in &release.timeline {
        let at = entry.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let _ = writeln!(out, "  {at}  {:width$}  {}", entry.event, entry.detail);
    }
    out
}
