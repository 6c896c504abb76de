//! Small text helpers shared by the subcommands.

use chrono::{DateTime, SecondsFormat, Utc};
use convoy::release::{Entry, Release};

/// A span as a person reads it: `42s`, `3m05s`, `2h04m`, `3d07h`.
pub fn span(duration: chrono::Duration) -> String {
    let s = duration.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// The longest span a flag takes (3650 days): a deadline beyond it would overflow the clock.
pub const MAX_SPAN_SECONDS: u64 = 3650 * 86_400;

/// Parses `30m`, `90s`, `1h`, `1h30m` or a plain number of seconds, at most [`MAX_SPAN_SECONDS`].
pub fn parse_span(text: &str) -> Result<std::time::Duration, String> {
    let seconds = parse_seconds(text)?;
    if seconds > MAX_SPAN_SECONDS {
        return Err(format!("{} is longer than {}d", crate::output::clean(text), MAX_SPAN_SECONDS / 86_400));
    }
    Ok(std::time::Duration::from_secs(seconds))
}

fn parse_seconds(text: &str) -> Result<u64, String> {
    let bad = || format!("{:?} is not a duration like 90s, 30m, 1h or 1h30m", crate::output::clean(text));
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(seconds);
    }
    let (mut total, mut number) = (0u64, String::new());
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = total.checked_add(n.checked_mul(unit).ok_or_else(bad)?).ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || text.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// One timeline entry on one line, as `convoy status` prints it.
pub fn entry_line(entry: &Entry) -> String {
    format!("{}  {:<22}  {}", entry.at.to_rfc3339_opts(SecondsFormat::Secs, true), entry.event, entry.detail)
}

/// Where each stage of a release spent its time, from its timeline: each stage runs from its
/// first entry to the next stage's first entry (or the end, or `now` while the release runs).
pub fn stages(release: &Release, now: DateTime<Utc>) -> Vec<(&'static str, chrono::Duration)> {
    let mut marks: Vec<(&'static str, DateTime<Utc>)> = Vec::new();
    for entry in &release.timeline {
        let Some(stage) = stage_opened_by(&entry.event) else { continue };
        if !marks.iter().any(|(s, _)| *s == stage) {
            marks.push((stage, entry.at));
        }
    }
    let end = if release.state.is_terminal() { release.timeline.last().map_or(now, |e| e.at) } else { now };
    let mut out = Vec::with_capacity(marks.len());
    for (i, (stage, start)) in marks.iter().enumerate() {
        let until = marks.get(i + 1).map_or(end, |(_, next)| *next);
        out.push((*stage, until - *start));
    }
    out
}

fn stage_opened_by(event: &str) -> Option<&'static str> {
    Some(match event {
        "manifest-accepted" | "manifest-rejected" => "images",
        "migration-starting" => "migration",
        "deployment-starting" => "deploy",
        "verification-started" => "verify",
        "verification-passed" => "approval",
        "approved" => "shift",
        "verification-failed" | "rejected" => "rollback",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_a_clock() {
        assert_eq!(span(chrono::Duration::seconds(42)), "42s");
        assert_eq!(span(chrono::Duration::seconds(185)), "3m05s");
        assert_eq!(span(chrono::Duration::seconds(7440)), "2h04m");
        assert_eq!(span(chrono::Duration::seconds(-3)), "0s");
    }

    #[test]
    fn durations_are_parsed_with_units_or_as_seconds() {
        assert_eq!(parse_span("30m").unwrap().as_secs(), 1800);
        assert_eq!(parse_span("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_span("90").unwrap().as_secs(), 90);
        assert_eq!(parse_span("2s").unwrap().as_secs(), 2);
        for bad in ["", "m", "30x", "5m3"] {
            assert!(parse_span(bad).is_err(), "{bad:?}");
        }
    }
}
