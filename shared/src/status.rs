//! The release record as a person reads it (`convoy status`).

use std::fmt::Write;

use crate::release::Release;

/// The image gate: its verdict, then what it saw of each digest (counts by severity, the failing
/// and allowed findings with their fix state, the signing profiles, the problems).
fn render_gate(out: &mut String, gate: &crate::release::ImageGate) {
    let time = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let judged = gate.judged_at.map(|t| format!(", judged {}", time(t))).unwrap_or_default();
    let _ = writeln!(out, "\nimage gate  {}{judged}", gate.verdict);
    for image in &gate.images {
        let _ = writeln!(out, "  {}  {}", image.container, image.image);
        let counts: Vec<String> = image.by_severity.iter().rev().map(|(s, n)| format!("{n} {s}")).collect();
        let scanned = image.scanned_at.map(|t| format!(" at {}", time(t))).unwrap_or_default();
        let counts = if counts.is_empty() { "no findings".to_owned() } else { counts.join(", ") };
        let _ = writeln!(out, "    scan       {}{scanned}: {counts}", image.scan);
        for finding in &image.failing {
            let _ = writeln!(out, "    failing    {} {} ({})", finding.id, finding.severity, finding.fix);
        }
        for (finding, until) in &image.allowed {
            let _ = writeln!(
                out,
                "    allowed    {} {} ({}) until {}",
                finding.id,
                finding.severity,
                finding.fix,
                time(*until)
            );
        }
        for signature in &image.signatures {
            let _ = writeln!(out, "    signature  {} {}", signature.profile, signature.status);
        }
        for problem in &image.problems {
            let _ = writeln!(out, "    problem    {problem}");
        }
        if let Some(waiting) = &image.waiting {
            let _ = writeln!(out, "    waiting    {waiting}");
        }
        if let Some(note) = &image.note {
            let _ = writeln!(out, "    note       {note}");
        }
    }
}

/// A group's release: a row per service in the manifest's order (its step, method, state, the
/// deployment that carries it, and the revision it ran before → the release's).
fn render_services(out: &mut String, release: &Release) {
    if release.services.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nservices");
    let width = release.services.iter().map(|s| s.service.as_str().len()).max().unwrap_or(0);
    for section in &release.services {
        let state = crate::release::services::section_words(&section.state);
        let method = section.method.to_string();
        let _ = writeln!(out, "  {} {:width$}  {method:<12}  {state}", section.step + 1, section.service.as_str());
        if let Some(deployment) = &section.deployment {
            let _ = writeln!(out, "    deployment  {deployment}");
        }
        match (&section.previous_revision, &section.revision) {
            (Some(previous), Some(revision)) => {
                let _ = writeln!(out, "    revision    {previous} → {revision}");
            }
            (None, Some(revision)) => {
                let _ = writeln!(out, "    revision    {revision}");
            }
            _ => {}
        }
    }
}

/// The drift check of each service: the live revision and since when, Convoy's last, what the
/// release derives from, and the action taken.
fn render_drift(out: &mut String, release: &Release) {
    if release.drift.is_empty() {
        return;
    }
    let time = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let _ = writeln!(
        out,
        "
drift"
    );
    for check in &release.drift {
        let verdict = if check.drifted { "changed outside Convoy" } else { "no drift" };
        let action = serde_json::to_value(check.action).ok().and_then(|v| v.as_str().map(str::to_owned));
        let _ = writeln!(out, "  {}  {verdict} (action: {})", check.service, action.unwrap_or_default());
        let since = check.live_since.map(|t| format!(", ECS started it {}", time(t))).unwrap_or_default();
        let _ = writeln!(out, "    live         {}{since}", check.live);
        match &check.deployed {
            Some(deployed) => {
                let _ = writeln!(out, "    convoy's     {} (release {})", deployed.task_definition, deployed.release);
            }
            None => {
                let _ = writeln!(
                    out,
                    "    convoy's     none known: no earlier release went live, or it deployed through a pipeline"
                );
            }
        }
        let _ = writeln!(out, "    derives from {}", check.base);
        let _ = writeln!(out, "    checked      {}", time(check.checked_at));
    }
}

/// Renders the record: state, images with tag and digest, and the timeline.
pub fn render(release: &Release) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "release   {}", release.key);
    let _ = writeln!(out, "state     {}", release.state);
    let _ = writeln!(out, "manifest  {}", release.source.describe());
    if let Some(submitter) = &release.submitter {
        // From the trail's log files (crate::submitter), never from the manifest.
        let _ = writeln!(out, "submitted {}", submitter.describe());
    }
    if let Some(group) = &release.part_of {
        let _ = writeln!(
            out,
            "part of   {group} (this service's part of that release: `convoy status {} {}`)",
            group.service, group.release
        );
    }
    if let Some(settings) = &release.settings {
        let _ = writeln!(out, "settings  {settings}");
    }
    if let Some(rollback) = &release.rollback {
        // Confirmed from Convoy's records at admission; the names are validated release ids.
        let _ = writeln!(out, "rollback  of {} to {}", rollback.of, rollback.to);
        let _ = writeln!(out, "schema    {}", rollback.schema);
    }
    if !release.images.is_empty() {
        let _ = writeln!(out, "\nimages");
        let width = release.images.keys().map(|c| c.as_str().len()).max().unwrap_or(0);
        for (container, status) in &release.images {
            let digest = status.digest.as_ref().map_or("(waiting for push)".to_owned(), ToString::to_string);
            let _ = writeln!(out, "  {:width$}  {}  {digest}", container.as_str(), status.image.uri());
        }
    }
    if let Some(gate) = &release.gate {
        render_gate(&mut out, gate);
    }
    render_services(&mut out, release);
    render_drift(&mut out, release);
    if let Some(run) = &release.migration {
        let _ = writeln!(out, "\nmigration");
        let field = |out: &mut String, name: &str, value: Option<String>| {
            if let Some(value) = value {
                let _ = writeln!(out, "  {name:<15} {value}");
            }
        };
        let time =
            |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        field(&mut out, "task", run.task.as_ref().map(ToString::to_string));
        field(&mut out, "task definition", run.task_definition.clone());
        field(&mut out, "started", time(run.started_at));
        field(&mut out, "stopped", time(run.stopped_at));
        field(&mut out, "exit code", run.exit_code.map(|c| c.to_string()));
        field(&mut out, "stop code", run.stop_code.clone());
        field(&mut out, "stopped reason", run.stopped_reason.clone());
        field(&mut out, "container", run.container_reason.clone());
        field(&mut out, "logs", run.log.as_ref().map(|l| format!("{} {}", l.group, l.stream)));
        field(&mut out, "deadline", time(Some(run.deadline)));
        if let Some(tail) = run.log_tail.as_ref().filter(|t| !t.is_empty()) {
            let _ = writeln!(
                out,
                "  last log lines (convoy logs {} {} prints them all)",
                release.key.service, release.key.release
            );
            for line in tail {
                let _ = writeln!(out, "    | {line}");
            }
        }
    }
    if let Some(run) = &release.deployment {
        let _ = writeln!(out, "\ndeployment");
        let _ = writeln!(out, "  {:<15} {}", "via", run.method);
        let pipeline = run.pipeline.as_ref();
        for (name, value) in [
            ("pipeline", pipeline.map(|p| p.name.clone())),
            ("bundle", pipeline.map(|p| format!("{} (version {})", p.bundle, p.version))),
            ("execution", pipeline.and_then(|p| p.execution.as_ref().map(ToString::to_string))),
            ("id", run.id.as_ref().map(ToString::to_string)),
            ("task definition", run.task_definition.clone()),
            ("previous", run.previous_task_definition.clone()),
            ("service runs", run.service_runs.clone()),
            (
                "put back",
                run.put_back.as_ref().map(|p| match p.done_at {
                    Some(at) => {
                        format!("{} at {}", p.task_definition, at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    }
                    None => format!("{} (claimed, not confirmed yet)", p.task_definition),
                }),
            ),
            ("started", run.started_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))),
            ("approval gate", run.approval_gate.clone()),
            ("auto-approve at", run.auto_approve_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))),
            ("ended", run.end.map(|e| format!("{e:?}"))),
        ]
        .into_iter()
        .chain(crate::status_native::lines(run.native.as_ref()))
        {
            if let Some(value) = value {
                let _ = writeln!(out, "  {name:<15} {value}");
            }
        }
    }
    if let Some(verification) = &release.verification {
        let _ = writeln!(out, "\nverification");
        let verdict = verification
            .outcome
            .as_ref()
            .map_or("running".to_owned(), |o| format!("{}: {}", if o.passed { "passed" } else { "failed" }, o.reason));
        let _ = writeln!(out, "  {verdict}");
        for probe in &verification.probes {
            let at = probe.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let status = probe.status.map_or("---".to_owned(), |s| s.to_string());
            let mark = if probe.ok { "ok  " } else { "FAIL" };
            let why = probe.failure.as_deref().unwrap_or("");
            let _ = writeln!(out, "  {at}  {mark} {status} {:>5} ms  {}  {why}", probe.latency_ms, probe.url);
        }
        crate::gates::render_metrics(&mut out, &verification.metrics);
    }
    if let Some(gate) = &release.alarms {
        crate::gates::render_alarms(&mut out, gate);
    }
    if let Some(approval) = &release.approval {
        let decision = if approval.approved { "approved" } else { "rejected" };
        let at = approval.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let _ = writeln!(out, "\napproval\n  {decision} by {} at {at}", approval.by);
        for line in approver_lines(approval) {
            let _ = writeln!(out, "  {line}");
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

/// What AWS recorded of who decided: the principal's ARN, session, source IP and CloudTrail
/// event, or why it is not known (yet). Empty for a decision recorded before Convoy kept it.
pub fn approver_lines(approval: &crate::release::ApprovalDecision) -> Vec<String> {
    use crate::release::{Attribution, Via};
    match &approval.actor {
        Some(Attribution::Recorded(actor)) => {
            let via = match actor.via {
                Via::CloudTrailEvent => "delivered by EventBridge",
                Via::LookupEvents => "found in CloudTrail event history (LookupEvents)",
            };
            let mut lines = vec![format!("principal   {}", actor.principal_arn)];
            if let Some(session) = &actor.session_name {
                lines.push(format!("session     {session}"));
            }
            if let Some(ip) = &actor.source_ip {
                lines.push(format!("source IP   {ip}"));
            }
            lines.push(format!("call        {} at {}", actor.operation, actor.event_time.to_rfc3339()));
            lines.push(format!("CloudTrail  event {} ({via})", actor.event_id));
            lines
        }
        Some(Attribution::Pending { since }) => {
            vec![format!(
                "principal   not known yet: CloudTrail is asked for the call made after {}",
                since.to_rfc3339()
            )]
        }
        Some(Attribution::Unknown { why }) => vec![format!("principal   {why}")],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::{SectionState, State};

    #[test]
    fn a_groups_release_shows_a_row_per_service_in_order_with_its_state_and_revisions() {
        let mut release: Release = serde_json::from_value(serde_json::json!({
            "schema": 2, "key": {"service": "shop", "release": "r1"},
            "source": {"bucket": "b", "key": "releases/shop/r1.json"},
            "images": {}, "state": {"name": "DeployingServices", "step": 1}, "timeline": [],
            "services": [
                {"service": "worker", "step": 0, "method": "ecs-rolling", "takes_traffic": false, "containers": {},
                 "state": {"name": "live"}},
                {"service": "web", "step": 1, "method": "codedeploy", "takes_traffic": true, "containers": {},
                 "state": {"name": "waiting"}}
            ]
        }))
        .unwrap();
        release.services[0].previous_revision = Some("worker:1".into());
        release.services[0].revision = Some("worker:2".into());
        release.services[1].state = SectionState::Failed { reason: "verification: 500".into() };
        assert_eq!(release.state, State::DeployingServices { step: 1 });
        let shown = render(&release);
        let services: Vec<&str> =
            shown.lines().skip_while(|l| *l != "services").skip(1).take_while(|l| !l.is_empty()).collect();
        assert_eq!(
            services,
            [
                "  1 worker  ecs-rolling   live",
                "    revision    worker:1 → worker:2",
                "  2 web     codedeploy    failed: verification: 500"
            ]
        );
        assert!(shown.contains("state     Deploying services (step 2)"), "{shown}");
    }
}
