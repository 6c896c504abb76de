//! The release page's pictures, as inline SVG: the stages on a time axis, and the probes' latency.

use chrono::{DateTime, Utc};
use convoy::release::ProbeResult;
use maud::{Markup, html};

use super::stages::{Outcome, StageSpan, human};

const WIDTH: f64 = 860.0;
const LABEL: f64 = 120.0;
const ROW: f64 = 30.0;
const TOP: f64 = 10.0;

/// One bar per stage on a common time axis from the first stage's start to the last one's end;
/// each bar says its duration; a failed stage ends in a red mark with the failing event.
pub fn timeline(spans: &[StageSpan]) -> Markup {
    let (Some(first), Some(last)) = (spans.iter().map(|s| s.start).min(), spans.iter().map(|s| s.end).max()) else {
        return html! { p.muted { "No stage has started yet." } };
    };
    let total = (last - first).num_milliseconds().max(1) as f64;
    let plot = WIDTH - LABEL - 150.0;
    let x = |at: DateTime<Utc>| LABEL + (at - first).num_milliseconds() as f64 / total * plot;
    let height = TOP + ROW * spans.len() as f64 + 34.0;
    let axis_y = TOP + ROW * spans.len() as f64 + 4.0;
    html! {
        svg #timeline xmlns="http://www.w3.org/2000/svg" role="img" width=(WIDTH) height=(height)
            viewBox={ "0 0 " (WIDTH) " " (height) } aria-label="release timeline" {
            @for (row, span) in spans.iter().enumerate() {
                @let y = TOP + ROW * row as f64;
                @let x0 = x(span.start);
                @let w = (x(span.end) - x0).max(2.0);
                @let class = match &span.outcome {
                    Outcome::Running => "bar running",
                    Outcome::Done => "bar done",
                    Outcome::Failed { .. } => "bar failed",
                };
                g.stage data-stage=(span.kind.label()) {
                    text x="4" y=(y + 19.0) class="label" { (span.kind.label()) }
                    rect class=(class) x=(fmt(x0)) y=(y + 5.0) width=(fmt(w)) height="20" rx="3" {
                        title { (span.kind.label()) ": " (human(span.duration())) }
                    }
                    text x=(fmt(x0 + w + 6.0)) y=(y + 19.0) class="duration" {
                        (human(span.duration()))
                        @if span.outcome == Outcome::Running { " (running)" }
                    }
                    @if let Outcome::Failed { event, detail } = &span.outcome {
                        @let fx = x0 + w;
                        g.failure {
                            title { (event) ": " (detail) }
                            line x1=(fmt(fx - 6.0)) y1=(y + 4.0) x2=(fmt(fx + 6.0)) y2=(y + 26.0) class="cross" {}
                            line x1=(fmt(fx + 6.0)) y1=(y + 4.0) x2=(fmt(fx - 6.0)) y2=(y + 26.0) class="cross" {}
                        }
                    }
                }
            }
            line x1=(LABEL) y1=(axis_y) x2=(LABEL + plot) y2=(axis_y) class="axis" {}
            @for i in 0..=4 {
                @let tx = LABEL + plot * f64::from(i) / 4.0;
                line x1=(fmt(tx)) y1=(axis_y) x2=(fmt(tx)) y2=(axis_y + 5.0) class="axis" {}
                text x=(fmt(tx)) y=(axis_y + 18.0) class="tick" text-anchor="middle" {
                    "+" (human(chrono::Duration::milliseconds((total * f64::from(i) / 4.0) as i64)))
                }
            }
        }
    }
}

/// The probes' latencies in order, a dot each; failed probes are red crosses at their latency.
pub fn latency(probes: &[ProbeResult]) -> Markup {
    if probes.is_empty() {
        return html! { p.muted { "No probe yet." } };
    }
    let (w, h, left, bottom) = (560.0, 180.0, 50.0, 24.0);
    let max = probes.iter().map(|p| p.latency_ms).max().unwrap_or(1).max(1) as f64 * 1.15;
    let step = if probes.len() > 1 { (w - left - 20.0) / (probes.len() - 1) as f64 } else { 0.0 };
    let px = |i: usize| left + 10.0 + step * i as f64;
    let py = |ms: u64| 10.0 + (h - bottom - 10.0) * (1.0 - ms as f64 / max);
    let points: Vec<String> =
        probes.iter().enumerate().map(|(i, p)| format!("{},{}", fmt(px(i)), fmt(py(p.latency_ms)))).collect();
    html! {
        svg #latency xmlns="http://www.w3.org/2000/svg" role="img" width=(w) height=(h)
            viewBox={ "0 0 " (w) " " (h) } aria-label="probe latency" {
            line x1=(left) y1=(h - bottom) x2=(w - 5.0) y2=(h - bottom) class="axis" {}
            line x1=(left) y1="10" x2=(left) y2=(h - bottom) class="axis" {}
            text x=(left - 6.0) y="16" class="tick" text-anchor="end" { (max as u64) " ms" }
            text x=(left - 6.0) y=(h - bottom) class="tick" text-anchor="end" { "0" }
            polyline points=(points.join(" ")) class="trend" {}
            @for (i, probe) in probes.iter().enumerate() {
                @let (cx, cy) = (px(i), py(probe.latency_ms));
                @let label = format!(
                    "#{} {} {} ms {}",
                    i + 1,
                    probe.status.map_or("---".to_owned(), |s| s.to_string()),
                    probe.latency_ms,
                    probe.failure.as_deref().unwrap_or("ok")
                );
                @if probe.ok {
                    circle.probe.ok cx=(fmt(cx)) cy=(fmt(cy)) r="4" { title { (label) } }
                } @else {
                    g.probe.failed {
                        title { (label) }
                        line x1=(fmt(cx - 5.0)) y1=(fmt(cy - 5.0)) x2=(fmt(cx + 5.0)) y2=(fmt(cy + 5.0)) class="cross" {}
                        line x1=(fmt(cx + 5.0)) y1=(fmt(cy - 5.0)) x2=(fmt(cx - 5.0)) y2=(fmt(cy + 5.0)) class="cross" {}
                    }
                }
                text x=(fmt(cx)) y=(h - 8.0) class="tick" text-anchor="middle" { (i + 1) }
            }
        }
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}
