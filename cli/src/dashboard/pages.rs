//! The dashboard's pages (maud templates, checked and compiled with the binary; the stylesheet is
//! embedded). Every value from a record is escaped by maud.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use convoy::names::ReleaseKey;
use convoy::release::{Release, State};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::stages::{Outcome, human, stages};
use super::{Filter, Loaded, svg};

const STYLE: &str = include_str!("style.css");
/// Seconds between reloads of a page that shows something in flight.
const REFRESH_SECONDS: u32 = 5;

fn layout(title: &str, refresh: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh { meta http-equiv="refresh" content=(REFRESH_SECONDS); }
                title { (title) " · convoy" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href="/" { "convoy" } span.muted { " dashboard" }
                    nav { a href="/" { "Releases" } " · " a #nav-services href="/services" { "Services" } }
                }
                main { (body) }
            }
        }
    }
}

/// A page that only says something (refusals, missing and unreadable records, bad addresses).
pub fn message(title: &str, text: &str) -> Markup {
    layout(title, false, html! { h1 { (title) } p #message { (text) } p { a href="/" { "Back to every release" } } })
}

/// The state's name as the record spells it (`AwaitingApproval`), for filters and badges.
pub fn state_name(state: &State) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "Unknown".into())
}

fn badge_class(state: &State) -> &'static str {
    match state {
        State::Succeeded => "badge ok",
        State::Failed { .. } | State::RolledBack { .. } => "badge bad",
        State::Superseded { .. } => "badge muted",
        State::AwaitingApproval { .. } => "badge wait",
        _ => "badge live",
    }
}

fn ago(now: DateTime<Utc>, at: Option<DateTime<Utc>>) -> String {
    at.map_or("—".into(), |at| format!("{} ago", human(now - at)))
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn release_href(key: &ReleaseKey) -> String {
    format!("/release/{}/{}", key.service, key.release)
}

pub fn overview(bucket: &str, loaded: Vec<Loaded>, more: bool, filter: &Filter, now: DateTime<Utc>) -> Markup {
    let mut releases = Vec::new();
    let mut unreadable = Vec::new();
    for item in loaded {
        match item {
            Loaded::Read(release) => releases.push(*release),
            Loaded::Unreadable { key, why } => unreadable.push((key, why)),
        }
    }
    let services: BTreeSet<String> = releases.iter().map(|r| r.key.service.to_string()).collect();
    let states: BTreeSet<String> = releases.iter().map(|r| state_name(&r.state)).collect();
    let wanted_service = filter.service.as_deref().filter(|s| !s.is_empty());
    let wanted_state = filter.state.as_deref().filter(|s| !s.is_empty());
    let total = releases.len();
    releases.retain(|r| {
        wanted_service.is_none_or(|s| r.key.service.as_str() == s)
            && wanted_state.is_none_or(|s| match s {
                "active" => !r.state.is_terminal(),
                s => state_name(&r.state) == s,
            })
    });
    let last = |r: &Release| r.timeline.last().map(|e| e.at);
    // Active first, then the most recently changed.
    releases.sort_by(|a, b| a.state.is_terminal().cmp(&b.state.is_terminal()).then(last(b).cmp(&last(a))));
    let in_flight = releases.iter().any(|r| !r.state.is_terminal());
    html! {
        (layout("Releases", in_flight, html! {
            h1 { "Releases" }
            p.muted { "Records in s3://" (bucket) "/state/" @if in_flight { " · something is in flight: this page reloads every " (REFRESH_SECONDS) " s" } }
            form.filters method="get" action="/" {
                label { "service " select name="service" {
                    option value="" { "all" }
                    @for s in &services { option value=(s) selected[wanted_service == Some(s.as_str())] { (s) } }
                } }
                label { "state " select name="state" {
                    option value="" { "all" }
                    option value="active" selected[wanted_state == Some("active")] { "in flight" }
                    @for s in &states { option value=(s) selected[wanted_state == Some(s.as_str())] { (s) } }
                } }
                button type="submit" { "Filter" }
            }
            @if total == 0 && unreadable.is_empty() {
                p #empty { "No release yet: nothing under s3://" (bucket) "/state/. A release appears here once its manifest is uploaded." }
            } @else if releases.is_empty() {
                p #empty { "No release matches these filters. " a href="/" { "Show all" } }
            } @else {
                table #releases {
                    thead { tr { th { "service" } th { "release" } th { "state" } th { "age" } th { "last change" } th { "approval" } } }
                    tbody {
                        @for r in &releases {
                            tr.release data-state=(state_name(&r.state)) {
                                td.who { (convoy::group_view::label(r)) }
                                td { a href=(release_href(&r.key)) { (r.key.release) } }
                                td { span class=(badge_class(&r.state)) { (state_name(&r.state)) } div.detail { (r.state) } }
                                td { (ago(now, r.timeline.first().map(|e| e.at))) }
                                td { (ago(now, last(r))) }
                                td { @match &r.approval {
                                    Some(a) => { (if a.approved { "approved" } else { "rejected" }) " by " (a.by) },
                                    None => { span.muted { "—" } },
                                } }
                            }
                        }
                    }
                }
            }
            @if more { p.note { "Only the first " (super::MAX_RECORDS) " records are shown." } }
            @if !unreadable.is_empty() {
                h2 { "Unreadable records" }
                ul #unreadable { @for (key, why) in &unreadable { li { code { (key) } ": " (why) } } }
            }
        }))
    }
}

/// Each service's live release (from its records: since when, who approved it), what ECS runs
/// (confirmed, or changed outside Convoy), and every release that went live, newest first.
pub fn services(
    bucket: &str,
    services: &[(convoy::names::ServiceName, convoy::history::Live)],
    cluster: Option<&str>,
    now: DateTime<Utc>,
) -> Markup {
    use convoy::history::LiveCheck;
    let ecs_class = |check: &LiveCheck| match check {
        LiveCheck::Confirmed => "ecs ok",
        LiveCheck::ChangedOutsideConvoy { .. } => "ecs bad",
        _ => "ecs muted",
    };
    html! {
        (layout("Services", false, html! {
            h1 { "Services" }
            p.muted {
                "What each service runs, from its records in s3://" (bucket) "/state/ (no index), "
                @match cluster {
                    Some(cluster) => { "confirmed with ECS (DescribeServices in cluster " code { (cluster) } ")" },
                    None => { "not confirmed with ECS: start the dashboard with --cluster (or CONVOY_CLUSTER)" },
                }
            }
            @if services.is_empty() {
                p #empty { "No service has a record yet." }
            } @else {
                table #live {
                    thead { tr { th { "service" } th { "live release" } th { "since" } th { "approved by" } th { "ECS" } th {} } }
                    tbody { @for (service, live) in services {
                        @let current = live.loaded.history.live_now();
                        tr.service data-service=(service) data-ecs=(serde_json::to_value(&live.check).ok().and_then(|v| v["kind"].as_str().map(str::to_owned)).unwrap_or_default()) {
                            td { a href={ "#history-" (service) } { (service) } }
                            td { @match current {
                                Some(r) => { a href=(release_href(&r.key)) { (r.key.release) } },
                                None => { span.muted { "none went live" } },
                            } }
                            td { @if let Some(r) = current { (time(r.at)) div.detail { (ago(now, Some(r.at))) } } }
                            td { @match current.and_then(|r| r.approved_by.as_deref()) {
                                Some(by) => { (by) },
                                None => { span.muted { "—" } },
                            } }
                            td { span class=(ecs_class(&live.check)) { (live.check) } }
                            td { @if live.loaded.history.live_before().is_some() {
                                a.button.reject.rollback href=(rollback_href(service, None)) { "Roll back…" }
                            } }
                        }
                    } }
                }
                @for (service, live) in services {
                    section.history id={ "history-" (service) } {
                        h2 { (service) }
                        @if live.loaded.history.releases.is_empty() {
                            p.muted { "No release of " (service) " went live (" (live.loaded.listed) " records)." }
                        } @else {
                            table.history {
                                thead { tr { th { "release" } th { "went live" } th { "live for" } th { "outcome" } th { "migration" } th { "approved by" } th { "images" } th {} } }
                                @let current = live.loaded.history.live_now();
                                tbody { @for r in &live.loaded.history.releases { tr.went-live data-release=(r.key.release) {
                                    td { a href=(release_href(&r.key)) { (r.key.release) }
                                         @if let Some(group) = &r.part_of { div.detail { "part of " a href=(release_href(group)) { (group) } } } }
                                    td { (time(r.at)) }
                                    td { (human(r.live_for(now))) }
                                    td { (r.outcome) }
                                    td { (r.migration) }
                                    td { @match &r.approved_by { Some(by) => { (by) }, None => { span.muted { "—" } } } }
                                    td { @for (container, uri) in &r.images { div title=(uri) { (container) " " code { (short_image(uri)) } } } }
                                    // Any earlier release that went live may be returned to (what `--to` allows).
                                    td { @if current.is_some_and(|c| r.at < c.at) {
                                        a.rollback-to href=(rollback_href(service, Some(&r.key.release))) { "Roll back to this" }
                                    } }
                                } } }
                            }
                            @if live.loaded.read < live.loaded.listed {
                                p.note { "The newest releases, from " (live.loaded.read) " of " (live.loaded.listed) " records: " code { "convoy history " (service) } " lists them all." }
                            }
                        }
                    }
                }
            }
        }))
    }
}

/// The confirmation page of a rollback of `service` (to `to`; `None`: the release live before).
fn rollback_href(service: &convoy::names::ServiceName, to: Option<&convoy::names::ReleaseId>) -> String {
    match to {
        Some(to) => format!("/services/{service}/rollback?to={to}"),
        None => format!("/services/{service}/rollback"),
    }
}

/// The confirmation of a rollback: what [`crate::rollback::plan`] found it would submit, said
/// plainly (which release is reverted, which returns, the digests, the schema, the approval), and
/// the form that submits exactly that (`of`, `to` and the moment `at` that names it).
pub fn rollback_confirm(
    service: &convoy::names::ServiceName,
    plan: &crate::rollback::Plan,
    token: &str,
    at: DateTime<Utc>,
) -> Markup {
    let (of, to) = (&plan.of, &plan.to);
    html! {
        (layout(&format!("roll back {service}"), false, html! {
            h1 { "Confirm: roll back " (service) " from " (of) " to " (to) }
            dl #plan {
                dt { "live now (reverted)" } dd #of { (of) span.muted { " · went live " (time(plan.of_went_live)) } }
                dt { "returns to" } dd #to { (to) }
                dt { "new release" } dd #new-release { code { (plan.release) } span.muted { " · manifest " (plan.object) } }
            }
            @if let Some(group) = &plan.group {
                p #group { (to) " is " (service) "'s part of group release " a href=(release_href(group)) { (group) }
                    ": the rollback returns every service of it (" (plan.services().join(", ")) "), as one release." }
            }
            p { "It deploys these images, pinned by digest as " (to) " deployed them (a tag may point elsewhere now; nothing is rebuilt):" }
            table #rollback-images {
                thead { tr { th { "image" } th { "pinned" } } }
                tbody { @for (name, uri) in plan.images() { tr { td { (name) } td { code { (uri) } } } } }
            }
            p #schema {
                @if plan.down.is_some() { "Unless migrate down is ticked below, no " } @else { "No " }
                "migration runs: the database schema stays where " (of) " left it."
            }
            p #approval {
                "It then goes through the same verification and approval as any release: the test listener is probed for "
                (to) "'s code, and a person approves the traffic shift, unless the operator's settings give rollbacks a window "
                "(" code { "rollback.approval_window_hours" } ") and " (of) " went live within it, when policy approves once the verification passed."
            }
            form #roll-back method="post" action=(rollback_href(service, None)) {
                input type="hidden" name="token" value=(token);
                input type="hidden" name="of" value=(of);
                input type="hidden" name="to" value=(to);
                input type="hidden" name="at" value=(at.timestamp());
                @if let Some((container, command)) = &plan.down {
                    p #migrate-down { label {
                        input type="checkbox" name="migrate_down" value="yes";
                        " Migrate down first: run " (of) "'s down command " code { (command.join(" ")) } " in container "
                        code { (container) } ", from " (of) "'s image, once, before deploying."
                    } }
                }
                p.note { "The manifest is uploaded with the AWS credentials this dashboard runs with. This page submits one release however often it is sent (a double click, a reload); a fresh confirmation page is a fresh rollback." }
                button #confirm type="submit" class="button reject" { "Yes, roll back to " (to) }
                " "
                a href="/services" { "Cancel" }
            }
        }))
    }
}

/// A rollback submitted (or found submitted already, by the same confirmation), with the link to
/// its release page.
pub fn rollback_submitted(submitted: &crate::rollback::Submitted, migrate_down: bool) -> Markup {
    let key = &submitted.release;
    html! {
        (layout(&format!("rollback {key}"), false, html! {
            h1 #submitted { @if submitted.written { "Submitted: " } @else { "Submitted already: " } (key) }
            p #message {
                "A rollback of " (submitted.of) " to " (submitted.to) " (" (submitted.manifest) ")"
                @if submitted.written { "." } @else { " was submitted by this confirmation before: nothing new was written, no second release." }
                @if !migrate_down { " No migration runs: the database schema stays where " (submitted.of) " left it." }
            }
            p { "Convoy reads the manifest within seconds; then the release has its page: "
                a #release-link href=(release_href(key)) { (key) } "." }
            p.muted { "From a terminal: " code { "convoy wait " (key.service) " " (key.release) } }
        }))
    }
}

/// Why a rollback was not submitted (nothing was written).
pub fn rollback_refused(service: &convoy::names::ServiceName, why: &str) -> Markup {
    layout(
        "Refused",
        false,
        html! {
            h1 { "Convoy refused to roll back " (service) }
            p #message { (why) }
            p { "Nothing was submitted. " a href="/services" { "Back to the services" } }
        },
    )
}

/// `repository@sha256:<first 12 hex>` of a pinned image URI (the page's title has it whole).
fn short_image(uri: &str) -> String {
    let (repository, digest) = uri.split_once('@').unwrap_or((uri, ""));
    let repository = repository.rsplit('/').next().unwrap_or(repository);
    format!("{repository}@{}", digest.get(..19).unwrap_or(digest))
}

pub fn release(release: &Release, bucket: &str, now: DateTime<Utc>) -> Markup {
    let spans = stages(release, now);
    let raw = serde_json::to_string_pretty(release).unwrap_or_else(|e| format!("(cannot show: {e})"));
    let key = &release.key;
    html! {
        (layout(&key.to_string(), !release.state.is_terminal(), html! {
            h1 { (key.service) " / " (key.release) " " span class=(badge_class(&release.state)) { (state_name(&release.state)) } }
            p #state { (release.state) }
            p.muted { "manifest " (release.source.describe()) " · record s3://" (bucket) "/state/" (key.service) "/" (key.release) ".json" }
            @if let Some(submitter) = &release.submitter {
                p.muted.submitter { "submitted by " (submitter.describe()) }
            }
            @if let State::AwaitingApproval { deployment } = &release.state {
                section.decide {
                    p { "Deployment " code { (deployment) } " passed verification and waits for the traffic shift." }
                    a.button.approve #approve href={ (release_href(key)) "/approve" } { "Approve…" }
                    " "
                    a.button.reject #reject href={ (release_href(key)) "/reject" } { "Reject…" }
                }
            }
            h2 { "Timeline" }
            (svg::timeline(&spans))
            table.stages {
                thead { tr { th { "stage" } th { "started" } th { "took" } th { "outcome" } } }
                tbody { @for s in &spans { tr {
                    td { (s.kind.label()) } td { (time(s.start)) } td { (human(s.duration())) }
                    td { @match &s.outcome {
                        Outcome::Running => { "running" },
                        Outcome::Done => { "done" },
                        Outcome::Failed { event, detail } => { span.bad { (event) } ": " (detail) },
                    } }
                } } }
            }
            @if let Some(rollback) = &release.rollback {
                p #rollback { "A rollback of " (rollback.of) " to " (rollback.to) ": " (rollback.schema) "." }
            }
            @if let Some(group) = &release.part_of {
                p #part-of { "This service's part of release " a href=(release_href(group)) { (group) } "." }
            }
            @if !release.services.is_empty() {
                h2 { "Services" }
                table #services {
                    thead { tr { th { "step" } th { "service" } th { "method" } th { "state" } th { "deployment" } th { "revision" } } }
                    tbody { @for section in &release.services { tr.section data-service=(section.service) data-state=(convoy::group_view::state_name(&section.state)) {
                        td { (section.step + 1) }
                        td { a href=(release_href(&ReleaseKey::new(section.service.clone(), key.release.clone()))) { (section.service) } }
                        td { (section.method) }
                        td { (convoy::release::services::section_words(&section.state)) }
                        td { @if let Some(d) = &section.deployment { code { (d) } } }
                        td { @if let Some(p) = &section.previous_revision { code { (p) } " → " }
                             @if let Some(r) = &section.revision { code { (r) } } }
                    } } }
                }
            }
            h2 { "Images" }
            table #images {
                thead { tr { th { "container" } th { "image" } th { "digest" } } }
                tbody { @for (container, status) in &release.images { tr {
                    td { (container.as_str()) } td { code { (status.image.uri()) } }
                    td { @match &status.digest { Some(d) => { code { (d) } }, None => { span.muted { "waiting for push" } } } }
                } } }
            }
            @if let Some(gate) = &release.gate {
                h2 { "Image gate" }
                p #gate-verdict { "verdict: " (gate.verdict) }
                @if !gate.images.is_empty() {
                    table #gate {
                        thead { tr { th { "container" } th { "scan" } th { "findings" } th { "signatures" } th { "problems" } } }
                        tbody { @for image in &gate.images { tr {
                            td { (image.container) }
                            td { (image.scan) }
                            td { @for (severity, n) in image.by_severity.iter().rev() { (n) " " (severity) " " }
                                 @for f in &image.failing { br; span.bad { (f.id) " " (f.severity) " (" (f.fix) ")" } }
                                 @for (f, until) in &image.allowed { br; (f.id) " allowed until " (time(*until)) } }
                            td { @for s in &image.signatures { code { (s.profile) } " " (s.status) br; } }
                            td { @for p in &image.problems { span.bad { (p) } br; }
                                 @if let Some(w) = &image.waiting { "waiting: " (w) }
                                 @if let Some(n) = &image.note { (n) } }
                        } } }
                    }
                }
            }
            @if !release.drift.is_empty() {
                h2 { "Drift" }
                table #drift {
                    thead { tr { th { "service" } th { "live" } th { "Convoy's last" } th { "derives from" } th { "action" } } }
                    tbody { @for check in &release.drift { tr.drift data-drifted=(check.drifted) {
                        td { (check.service) }
                        td { code { (check.live) } @if let Some(at) = check.live_since { br; span.muted { "since " (time(at)) } } }
                        td { @match &check.deployed {
                            Some(d) => { code { (d.task_definition) } br; span.muted { "release " (d.release) } },
                            None => { span.muted { "none known: no earlier release went live" } },
                        } }
                        td { code { (check.base) } }
                        td { @if check.drifted { span.bad { "changed outside Convoy" } br; } (check.summary()) }
                    } } }
                }
            }
            @if let Some(run) = &release.migration {
                h2 { "Migration" }
                dl #migration {
                    @if let Some(task) = &run.task { dt { "task" } dd { code { (task) } } }
                    @if let Some(td) = &run.task_definition { dt { "task definition" } dd { code { (td) } } }
                    @if let Some(at) = run.started_at { dt { "started" } dd { (time(at)) } }
                    @if let Some(at) = run.stopped_at { dt { "stopped" } dd { (time(at)) } }
                    @if let Some(code) = run.exit_code { dt { "exit code" } dd class=(if code == 0 { "ok" } else { "bad" }) { (code) } }
                    @if let Some(code) = &run.stop_code { dt { "stop code" } dd { (code) } }
                    @if let Some(why) = &run.stopped_reason { dt { "stopped reason" } dd { (why) } }
                    @if let Some(why) = &run.container_reason { dt { "container reason" } dd { (why) } }
                    @if let Some(log) = &run.log { dt { "log stream" } dd { code { (log.group) " " (log.stream) } } }
                    dt { "deadline" } dd { (time(run.deadline)) }
                }
                @if let Some(lines) = run.log_tail.as_ref().filter(|l| !l.is_empty()) {
                    p.muted { "The log's last lines, as the record keeps them (convoy logs prints them all):" }
                    pre #log-tail { @for line in lines { (line) "\n" } }
                }
            }
            @if let Some(run) = &release.deployment {
                h2 { "Deployment" }
                dl #deployment {
                    dt { "via" } dd { (run.method) }
                    @if let Some(id) = &run.id { dt { "id" } dd { code { (id) } } }
                    @if let Some(p) = &run.pipeline { dt { "pipeline" } dd { (p.name) " · bundle " (p.bundle) " (version " (p.version) ")" } }
                    @if let Some(td) = &run.task_definition { dt { "task definition" } dd { code { (td) } } }
                    @if let Some(at) = run.auto_approve_at { dt { "policy approves at" } dd { (time(at)) } }
                    @if let Some(end) = &run.end { dt { "ended" } dd { (format!("{end:?}")) } }
                }
            }
            @if let Some(v) = &release.verification {
                h2 { "Verification" }
                p #verdict { @match &v.outcome {
                    Some(o) => { span class=(if o.passed { "ok" } else { "bad" }) { (if o.passed { "passed" } else { "failed" }) } ": " (o.reason) },
                    None => { "running" },
                } }
                (svg::latency(&v.probes))
                table #probes {
                    thead { tr { th { "#" } th { "at" } th { "status" } th { "latency" } th { "result" } } }
                    tbody { @for (i, p) in v.probes.iter().enumerate() { tr class=(if p.ok { "" } else { "bad" }) {
                        td { (i + 1) } td { (p.at.to_rfc3339_opts(SecondsFormat::Millis, true)) }
                        td { (p.status.map_or("—".to_owned(), |s| s.to_string())) } td { (p.latency_ms) " ms" }
                        td { (p.failure.as_deref().unwrap_or("ok")) }
                    } } }
                }
                @if !v.metrics.is_empty() {
                    table #metrics {
                        thead { tr { th { "metric check" } th { "value" } th { "pass if" } th { "verdict" } th { "query" } } }
                        tbody { @for m in &v.metrics { tr class=(if m.passed { "" } else { "bad" }) {
                            td { (m.name) }
                            td { (m.value.map_or("no datapoint".to_owned(), |v| v.to_string())) }
                            td { (m.condition) }
                            td { (if m.passed { "pass" } else { "fail" }) }
                            td { code { (m.query) " over " (m.window_seconds) " s" } }
                        } } }
                    }
                }
            }
            h2 { "Approval" }
            p #approval { @match &release.approval {
                Some(a) => { (if a.approved { "Approved" } else { "Rejected" }) " by " (a.by) " at " (time(a.at)) },
                None => { span.muted { "No decision yet." } },
            } }
            @if let Some(a) = &release.approval {
                ul #approver { @for line in convoy::status::approver_lines(a) { li { code { (line) } } } }
            }
            h2 { "History" }
            table #history {
                tbody { @for e in &release.timeline { tr {
                    td { (e.at.to_rfc3339_opts(SecondsFormat::Millis, true)) } td { code { (e.event) } } td { (e.detail) }
                } } }
            }
            details #raw { summary { "Raw record" } pre { (raw) } }
        }))
    }
}

pub fn confirm(release: &Release, approve: bool, token: &str) -> Markup {
    let key = &release.key;
    let (verb, what) = if approve {
        ("approve", "CodeDeploy continues the deployment: production traffic shifts to this release.")
    } else {
        ("reject", "CodeDeploy stops the deployment and rolls it back; production stays on the current version.")
    };
    html! {
        (layout(&format!("{verb} {key}"), false, html! {
            h1 { "Confirm: " (verb) " " (key.service) " / " (key.release) }
            p { "Now: " (release.state) }
            p { (what) }
            @if !matches!(release.state, State::AwaitingApproval { .. }) {
                p.note { "This release does not await approval: Convoy will refuse, as `convoy " (verb) "` would." }
            }
            form #decide method="post" action={ (release_href(key)) "/" (verb) } {
                input type="hidden" name="token" value=(token);
                p.note { "The call is made with the AWS credentials this dashboard runs with; Convoy records the principal CloudTrail names, not a typed name." }
                button #confirm type="submit" class=(if approve { "button approve" } else { "button reject" }) { "Yes, " (verb) }
                " "
                a href=(release_href(key)) { "Cancel" }
            }
        }))
    }
}

pub fn refused(key: &ReleaseKey, verb: &str, why: &str) -> Markup {
    layout(
        "Refused",
        false,
        html! {
            h1 { "Convoy refused to " (verb) " " (key) }
            p #message { (why) }
            p { a href=(release_href(key)) { "Back to the release" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use convoy::gates::{Condition, MetricResult, MetricVerdict, Number};
    use convoy::release::{Hook, MigrationRun, Verification, VerificationOutcome};

    use super::*;

    /// A release whose migration failed with its log's last lines, verified by a failed metric check.
    fn evidence() -> Release {
        let at = Utc::now();
        let mut release: Release = serde_json::from_value(serde_json::json!({
            "schema": 1,
            "key": {"service": "web", "release": "r1"},
            "source": {"bucket": "b", "key": "releases/web/r1.json"},
            "images": {},
            "state": {"name": "Collecting"},
            "timeline": [],
        }))
        .expect("a record");
        release.migration = Some(MigrationRun {
            token: "t".into(),
            claims: 1,
            claimed_at: at,
            deadline: at,
            task_definition: None,
            task: None,
            log: None,
            log_tail: Some(vec!["migrating orders".into(), "SQLSTATE[42S01]: table orders already exists".into()]),
            started_at: None,
            stopped_at: None,
            event_version: None,
            exit_code: Some(1),
            stop_code: None,
            stopped_reason: None,
            container_reason: None,
        });
        release.verification = Some(Verification {
            hook: Hook::CodeDeploy {
                deployment_id: "d-1".parse().expect("id"),
                execution_id: "x".parse().expect("id"),
            },
            started_at: at,
            probes: Vec::new(),
            outcome: Some(VerificationOutcome { passed: false, reason: "metric check green-5xx failed".into() }),
            finished_at: Some(at),
            metrics: vec![MetricResult {
                name: "green-5xx".into(),
                query: "AWS/ApplicationELB HTTPCode_Target_5XX_Count Sum".into(),
                window_seconds: 60,
                condition: Condition::try_from("<= 0".to_owned()).expect("a condition"),
                value: Some(Number(7.0)),
                verdict: MetricVerdict::Fail,
                passed: false,
                at,
            }],
        });
        release
    }

    /// A group `shop`: web live on d-ABCDEFGHI, api rolled back with a reason that carries markup.
    fn group() -> Release {
        serde_json::from_value(serde_json::json!({
            "schema": 1,
            "key": {"service": "shop", "release": "r1"},
            "source": {"bucket": "b", "key": "releases/shop/r1.json"},
            "images": {}, "state": {"name": "Succeeded"}, "timeline": [],
            "services": [
                {"service": "web", "step": 0, "method": "codedeploy", "takes_traffic": true, "containers": {},
                 "previous_revision": "arn:aws:ecs:us-east-1:1:task-definition/web:41",
                 "revision": "arn:aws:ecs:us-east-1:1:task-definition/web:42",
                 "deployment": {"codedeploy": "d-ABCDEFGHI"}, "state": {"name": "live"}},
                {"service": "api", "step": 1, "method": "ecs-native", "takes_traffic": true, "containers": {},
                 "state": {"name": "rolled-back", "reason": "<script>alert(1)</script> 5xx"}}
            ]
        }))
        .expect("a group's record")
    }

    #[test]
    fn a_groups_release_page_marks_each_services_row_with_its_state_and_escapes_its_reason() {
        let page = release(&group(), "b", Utc::now()).into_string();
        let web = page.find("data-service=\"web\" data-state=\"live\"").expect("web's row");
        let api = page.find("data-service=\"api\" data-state=\"rolled-back\"").expect("api's row");
        assert!(web < api, "in the manifest's order");
        assert!(page.contains("<code>d-ABCDEFGHI</code>"), "{page}");
        assert!(page.contains("task-definition/web:41</code> → <code>arn:aws:ecs:us-east-1:1:task-definition/web:42"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; 5xx"), "{page}");
        assert!(!page.contains("<script>alert"), "the reason is text, not markup");
    }

    #[test]
    fn a_release_page_shows_the_drift_check_with_both_revisions_and_the_action() {
        let mut drifted = evidence();
        drifted.drift = serde_json::from_value(serde_json::json!([{
            "service": "web", "checked_at": "2026-12-07T10:00:00Z",
            "live": "arn:aws:ecs:us-east-1:1:task-definition/web:5", "live_since": "2026-12-07T09:00:00Z",
            "deployed": {"release": "r0", "task_definition": "arn:aws:ecs:us-east-1:1:task-definition/web:4"},
            "drifted": true, "action": "warned", "base": "arn:aws:ecs:us-east-1:1:task-definition/web:4"
        }]))
        .expect("a drift check");
        let page = release(&drifted, "b", Utc::now()).into_string();
        assert!(page.contains("id=\"drift\"") && page.contains("data-drifted=\"true\""), "{page}");
        assert!(page.contains("<span class=\"bad\">changed outside Convoy</span>"), "{page}");
        assert!(page.contains("release r0") && page.contains("replaces the change"), "{page}");
        assert!(!release(&evidence(), "b", Utc::now()).into_string().contains("id=\"drift\""), "no check, no table");
    }

    /// The plan of a rollback of web from v2 to v1; `down`: v2's recorded down command.
    fn rollback_plan(down: Option<Vec<String>>) -> crate::rollback::Plan {
        let uri = |repo: &str, hex: &str| {
            format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo}@sha256:{}", hex.repeat(64))
        };
        crate::rollback::Plan {
            release: ReleaseKey::new("web".parse().expect("name"), "rollback-v1-1800000000".parse().expect("id")),
            of: "v2".parse().expect("id"),
            of_went_live: Utc::now(),
            to: "v1".parse().expect("id"),
            group: None,
            down: down.map(|command| ("app".to_owned(), command)),
            object: "releases/web/rollback-v1-1800000000.json".into(),
            manifest: serde_json::json!({"images": {"app": uri("app", "a"), "nginx": uri("nginx", "b")},
                                         "rollback": {"of": "v2", "to": "v1", "migrate_down": false}}),
        }
    }

    #[test]
    fn the_rollback_confirmation_names_of_and_to_the_pinned_digests_the_schema_and_the_approval() {
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a moment");
        let page = rollback_confirm(&"web".parse().expect("name"), &rollback_plan(None), "tok", at).into_string();
        assert!(page.contains("Confirm: roll back web from v2 to v1"), "{page}");
        assert!(page.contains(&format!("/app@sha256:{}", "a".repeat(64))), "{page}");
        assert!(page.contains(&format!("/nginx@sha256:{}", "b".repeat(64))), "{page}");
        assert!(page.contains("No migration runs: the database schema stays where v2 left it."), "{page}");
        assert!(page.contains("the same verification and approval as any release"), "{page}");
        assert!(page.contains("rollback.approval_window_hours"), "{page}");
        for field in [
            r#"name="token" value="tok""#,
            r#"name="of" value="v2""#,
            r#"name="to" value="v1""#,
            r#"name="at" value="1800000000""#,
        ] {
            assert!(page.contains(field), "{field}: {page}");
        }
        assert!(page.contains(r#"action="/services/web/rollback""#), "{page}");
        assert!(!page.contains("migrate_down"), "no down command recorded: no checkbox");
    }

    #[test]
    fn the_rollback_confirmation_offers_migrate_down_with_the_recorded_command_escaped() {
        let down = vec!["./migrate".to_owned(), "--down".to_owned(), "<script>x</script>".to_owned()];
        let at = Utc::now();
        let page = rollback_confirm(&"web".parse().expect("name"), &rollback_plan(Some(down)), "tok", at).into_string();
        assert!(page.contains(r#"type="checkbox" name="migrate_down""#), "{page}");
        assert!(
            page.contains("run v2's down command <code>./migrate --down &lt;script&gt;x&lt;/script&gt;</code>"),
            "{page}"
        );
        assert!(!page.contains("<script>"), "the command is text, not markup");
        assert!(page.contains("Unless migrate down is ticked below, no migration runs"), "{page}");
    }

    #[test]
    fn the_rollback_confirmation_of_a_groups_part_says_every_service_of_the_group_rolls_back() {
        let mut plan = rollback_plan(None);
        plan.group = Some(ReleaseKey::new("shop".parse().expect("name"), "v1".parse().expect("id")));
        plan.manifest["services"] = serde_json::json!({"web": {}, "worker": {}});
        let page = rollback_confirm(&"web".parse().expect("name"), &plan, "tok", Utc::now()).into_string();
        assert!(page.contains(r#"part of group release <a href="/release/shop/v1">shop/v1</a>"#), "{page}");
        assert!(page.contains("returns every service of it (web, worker), as one release"), "{page}");
    }

    #[test]
    fn a_rollback_submitted_again_says_nothing_new_was_written_and_links_the_release() {
        let plan = rollback_plan(None);
        let mut submitted = crate::rollback::Submitted {
            release: plan.release.clone(),
            of: plan.of.clone(),
            to: plan.to.clone(),
            manifest: "s3://b/releases/web/rollback-v1-1800000000.json".into(),
            manifest_json: plan.manifest.clone(),
            written: true,
        };
        let first = rollback_submitted(&submitted, false).into_string();
        assert!(first.contains("Submitted: web/rollback-v1-1800000000"), "{first}");
        assert!(first.contains(r#"href="/release/web/rollback-v1-1800000000""#), "{first}");
        submitted.written = false;
        let again = rollback_submitted(&submitted, false).into_string();
        assert!(again.contains("Submitted already: web/rollback-v1-1800000000"), "{again}");
        assert!(again.contains("nothing new was written, no second release"), "{again}");
    }

    #[test]
    fn the_services_page_offers_a_rollback_for_a_service_with_an_earlier_live_release_and_each_earlier_row() {
        let records =
            [crate::rollback::tests::went_live("v1", 5, None), crate::rollback::tests::went_live("v2", 1, None)];
        let web: convoy::names::ServiceName = "web".parse().expect("name");
        let live = |records: &[Release]| convoy::history::Live {
            loaded: convoy::history::Loaded {
                history: convoy::history::history(&web, records),
                listed: records.len(),
                read: records.len(),
                unreadable: Vec::new(),
                records: records.to_vec(),
            },
            check: convoy::history::LiveCheck::NotAsked { why: "no cluster".into() },
        };
        let page = services("b", &[(web.clone(), live(&records))], None, Utc::now()).into_string();
        assert!(page.contains(r#"href="/services/web/rollback">Roll back…</a>"#), "{page}");
        assert_eq!(page.matches("Roll back to this").count(), 1, "v1's row only: {page}");
        assert!(page.contains(r#"href="/services/web/rollback?to=v1""#), "{page}");
        let alone = services("b", &[(web.clone(), live(&records[1..]))], None, Utc::now()).into_string();
        assert!(!alone.contains("Roll back"), "nothing earlier went live: {alone}");
    }

    #[test]
    fn the_overview_names_a_groups_release_by_its_group_and_services() {
        let loaded = vec![super::super::Loaded::Read(Box::new(group()))];
        let page = overview("b", loaded, false, &Filter::default(), Utc::now()).into_string();
        assert!(page.contains("<td class=\"who\">shop (web, api)</td>"), "{page}");
    }

    #[test]
    fn a_groups_release_page_has_a_row_per_service_with_its_state_escaped() {
        let mut group = evidence();
        group.key = ReleaseKey::new("shop".parse().expect("name"), "r1".parse().expect("id"));
        group.services = serde_json::from_value(serde_json::json!([
            {"service": "worker", "step": 0, "method": "ecs-rolling", "takes_traffic": false, "containers": {},
             "state": {"name": "rolled-back", "reason": "put back on <worker:1>"}},
            {"service": "web", "step": 1, "method": "codedeploy", "takes_traffic": true, "containers": {},
             "state": {"name": "failed", "reason": "verification: 500"}}
        ]))
        .expect("sections");
        let page = release(&group, "b", Utc::now()).into_string();
        assert!(page.contains("id=\"services\""), "{page}");
        assert!(page.contains("<td>rolled back: put back on &lt;worker:1&gt;</td>"), "escaped: {page}");
        assert!(
            page.contains("<td>failed: verification: 500</td>") && page.contains("href=\"/release/web/r1\""),
            "{page}"
        );
    }

    #[test]
    fn the_release_page_shows_the_migrations_last_log_lines_and_the_metric_checks() {
        let page = release(&evidence(), "b", Utc::now()).into_string();
        assert!(page.contains("id=\"log-tail\""), "{page}");
        assert!(page.contains("SQLSTATE[42S01]: table orders already exists"));
        assert!(page.contains("id=\"metrics\""));
        assert!(page.contains("green-5xx") && page.contains("<td>7</td>") && page.contains("<td>fail</td>"), "{page}");
    }
}
