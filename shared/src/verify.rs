//! Verification on the test listener, Argo-style: up to `count` probes, `interval` apart; the
//! analysis fails once more than `failure_limit` probes failed, passes once
//! `consecutive_successes` probes in a row passed (or, when that is 0, after `count` probes within
//! the failure limit). The judging is pure; the probing goes through the
//! [`Prober`](crate::ports::Prober) port.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ports::{ProbeResponse, Prober};
use crate::release::ProbeResult;

/// What to probe and what a good answer is. The URL is always the operator's test listener with
/// the (validated) path appended: nothing in a manifest can change the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub url: String,
    pub count: u32,
    pub interval: Duration,
    pub failure_limit: u32,
    pub consecutive_successes: u32,
    pub timeout: Duration,
    pub expect_status: u16,
    /// The text a good answer carries (the release id, unless the manifest says otherwise).
    pub expect_text: String,
    /// When set, the text may be in this response header instead of the body.
    pub expect_header: Option<String>,
    /// Text the body must carry besides `expect_text` (the manifest's `expect_body`: a manifest
    /// may add checks, never replace the operator's).
    pub expect_body: Option<String>,
    /// A second path the manifest asked for: every other probe goes there, the operator's path
    /// first (see [`crate::ceiling`]).
    pub extra: Option<ExtraTarget>,
}

/// A path the manifest adds to the operator's, with the status it must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraTarget {
    pub url: String,
    pub expect_status: u16,
}

impl ProbeSpec {
    /// What probe number `n` (from 0) checks: the operator's path on even probes, the manifest's
    /// added path (with its status) on odd ones; every probe keeps the operator's other checks.
    pub fn nth(&self, n: usize) -> ProbeSpec {
        let mut spec = ProbeSpec { extra: None, ..self.clone() };
        if let Some(extra) = self.extra.as_ref().filter(|_| n % 2 == 1) {
            spec.url = extra.url.clone();
            spec.expect_status = extra.expect_status;
        }
        spec
    }
}

/// The analysis so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    Pass(String),
    Fail(String),
}

/// Judges one answer against the spec.
pub fn evaluate(
    spec: &ProbeSpec,
    answer: Result<ProbeResponse, String>,
    at: DateTime<Utc>,
    latency: Duration,
) -> ProbeResult {
    let latency_ms = latency.as_millis() as u64;
    let (status, failure) = match answer {
        Err(why) => (None, Some(why)),
        Ok(response) => {
            let in_header = spec.expect_header.as_ref().is_some_and(|name| {
                response.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case(name) && v.contains(&spec.expect_text))
            });
            let failure = if response.status != spec.expect_status {
                Some(format!("status {} (expected {})", response.status, spec.expect_status))
            } else if !in_header && !response.body.contains(&spec.expect_text) {
                let place =
                    spec.expect_header.as_ref().map_or("the body".to_owned(), |h| format!("the body or header {h}"));
                Some(format!("{place} does not contain {:?}", spec.expect_text))
            } else {
                let missing = spec.expect_body.as_ref().filter(|t| !response.body.contains(t.as_str()));
                missing.map(|text| format!("the body does not contain {text:?} (the manifest's expect_body)"))
            };
            (Some(response.status), failure)
        }
    };
    ProbeResult { at, url: spec.url.clone(), status, latency_ms, ok: failure.is_none(), failure }
}

/// Judges the probes made so far.
pub fn judge(spec: &ProbeSpec, probes: &[ProbeResult]) -> Verdict {
    let failures = probes.iter().filter(|p| !p.ok).count() as u32;
    if failures > spec.failure_limit {
        let last = probes.iter().rev().find(|p| !p.ok).and_then(|p| p.failure.clone()).unwrap_or_default();
        return Verdict::Fail(format!(
            "{failures} of {} probes failed (limit {}); last failure: {last}",
            probes.len(),
            spec.failure_limit
        ));
    }
    let streak = probes.iter().rev().take_while(|p| p.ok).count() as u32;
    if spec.consecutive_successes > 0 && streak >= spec.consecutive_successes {
        return Verdict::Pass(format!(
            "{streak} consecutive probes passed ({failures} failed of {}, limit {})",
            probes.len(),
            spec.failure_limit
        ));
    }
    if probes.len() as u32 >= spec.count {
        if spec.consecutive_successes > 0 {
            return Verdict::Fail(format!(
                "no {} consecutive passes in {} probes (last streak {streak})",
                spec.consecutive_successes,
                probes.len()
            ));
        }
        return Verdict::Pass(format!(
            "{} of {} probes passed (limit {} failures)",
            probes.len() as u32 - failures,
            probes.len(),
            spec.failure_limit
        ));
    }
    Verdict::Continue
}

/// Runs the analysis to its verdict, sleeping `interval` between probes.
pub async fn analyse(
    spec: &ProbeSpec,
    prober: &dyn Prober,
    mut probes: Vec<ProbeResult>,
) -> (Vec<ProbeResult>, Verdict) {
    loop {
        match judge(spec, &probes) {
            Verdict::Continue => {}
            verdict => return (probes, verdict),
        }
        if !probes.is_empty() {
            tokio::time::sleep(spec.interval).await;
        }
        probes.push(probe_once(&spec.nth(probes.len()), prober).await);
    }
}

/// One probe, timed.
pub async fn probe_once(spec: &ProbeSpec, prober: &dyn Prober) -> ProbeResult {
    let at = Utc::now();
    let started = std::time::Instant::now();
    let answer = prober.get(&spec.url, spec.timeout).await;
    evaluate(spec, answer, at, started.elapsed())
}

/// The probe URL: the operator's listener and a path that cannot name another host (checked by
/// the manifest parser and again here).
pub fn probe_url(listener: &str, path: &str) -> Result<String, String> {
    if !path.starts_with('/') || path.starts_with("//") || path.contains(['\\', '@', '#']) || path.contains("://") {
        return Err(format!("the verify path {path:?} is not a plain absolute path"));
    }
    Ok(format!("{}{path}", listener.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ProbeSpec {
        ProbeSpec {
            url: "http://127.0.0.1:8080/".into(),
            count: 5,
            interval: Duration::from_millis(1),
            failure_limit: 1,
            consecutive_successes: 0,
            timeout: Duration::from_millis(100),
            expect_status: 200,
            expect_text: "4cf03d1".into(),
            expect_header: Some("x-release".into()),
            expect_body: None,
            extra: None,
        }
    }

    #[test]
    fn a_manifests_added_path_takes_every_other_probe_and_the_operators_path_the_first() {
        let extra = ExtraTarget { url: "http://127.0.0.1:8080/status".into(), expect_status: 204 };
        let added = ProbeSpec { extra: Some(extra), ..spec() };
        let urls: Vec<(String, u16)> = (0..4).map(|n| added.nth(n)).map(|s| (s.url, s.expect_status)).collect();
        assert_eq!(urls[0], ("http://127.0.0.1:8080/".into(), 200));
        assert_eq!(urls[1], ("http://127.0.0.1:8080/status".into(), 204));
        assert_eq!(urls[2], urls[0]);
        assert_eq!(urls[3], urls[1]);
        assert_eq!(spec().nth(1), spec(), "without an added path every probe is the operator's");
    }

    #[test]
    fn the_manifests_expect_body_is_checked_besides_the_release_id_not_instead() {
        let spec = ProbeSpec { expect_body: Some("db: ok".into()), ..spec() };
        let judged = |body: &str| evaluate(&spec, answer(200, body), Utc::now(), Duration::from_millis(1));
        assert!(judged("4cf03d1 db: ok").ok);
        assert!(!judged("db: ok").ok, "the operator's release check still holds");
        let missing = judged("4cf03d1");
        assert!(missing.failure.unwrap().contains("expect_body"));
    }

    fn answer(status: u16, body: &str) -> Result<ProbeResponse, String> {
        Ok(ProbeResponse { status, headers: Vec::new(), body: body.into() })
    }

    fn probe(answer: Result<ProbeResponse, String>) -> ProbeResult {
        evaluate(&spec(), answer, Utc::now(), Duration::from_millis(2))
    }

    fn ok() -> ProbeResult {
        probe(answer(200, "version 4cf03d1"))
    }

    fn bad() -> ProbeResult {
        probe(answer(503, "down"))
    }

    #[test]
    fn the_right_status_and_version_pass_a_probe() {
        assert!(ok().ok);
    }

    #[test]
    fn a_wrong_status_fails_a_probe_with_the_status() {
        let result = bad();
        assert_eq!(result.failure.as_deref(), Some("status 503 (expected 200)"));
        assert_eq!(result.status, Some(503));
    }

    #[test]
    fn the_old_version_fails_a_probe() {
        let result = probe(answer(200, "version 0000000"));
        assert!(result.failure.unwrap().contains("does not contain \"4cf03d1\""));
    }

    #[test]
    fn the_version_in_the_configured_header_passes() {
        let response =
            ProbeResponse { status: 200, headers: vec![("X-Release".into(), "4cf03d1".into())], body: String::new() };
        assert!(probe(Ok(response)).ok);
    }

    #[test]
    fn no_answer_fails_a_probe_with_the_reason() {
        let result = probe(Err("connection refused".into()));
        assert_eq!((result.status, result.failure.as_deref()), (None, Some("connection refused")));
    }

    #[test]
    fn all_probes_passing_passes_after_count() {
        let probes = vec![ok(); 5];
        assert!(matches!(judge(&spec(), &probes[..4]), Verdict::Continue));
        assert!(matches!(judge(&spec(), &probes), Verdict::Pass(_)));
    }

    #[test]
    fn failures_within_the_limit_still_pass() {
        assert!(matches!(judge(&spec(), &[ok(), bad(), ok(), ok(), ok()]), Verdict::Pass(_)));
    }

    #[test]
    fn failures_beyond_the_limit_fail_at_once() {
        let Verdict::Fail(reason) = judge(&spec(), &[ok(), bad(), bad()]) else { panic!("must fail") };
        assert!(reason.starts_with("2 of 3 probes failed (limit 1)"), "{reason}");
        assert!(reason.ends_with("last failure: status 503 (expected 200)"), "names the last failure: {reason}");
    }

    #[test]
    fn consecutive_successes_pass_early() {
        let spec = ProbeSpec { consecutive_successes: 3, ..spec() };
        assert!(matches!(judge(&spec, &[bad(), ok(), ok()]), Verdict::Continue));
        assert!(matches!(judge(&spec, &[bad(), ok(), ok(), ok()]), Verdict::Pass(_)));
    }

    #[test]
    fn flapping_without_the_required_streak_fails_at_count() {
        let spec = ProbeSpec { consecutive_successes: 3, failure_limit: 5, ..spec() };
        assert!(matches!(judge(&spec, &[ok(), bad(), ok(), bad(), ok()]), Verdict::Fail(_)));
    }

    #[test]
    fn the_probe_url_keeps_the_listeners_host() {
        assert_eq!(probe_url("http://alb:8080/", "/health").unwrap(), "http://alb:8080/health");
        for path in ["//evil/", "/@evil", "http://evil/", "/\\evil", "evil"] {
            assert!(probe_url("http://alb:8080", path).is_err(), "{path}");
        }
    }

    #[test]
    fn the_release_in_another_header_does_not_stand_for_the_configured_one() {
        let headers = vec![("X-Release".into(), "0000000".into()), ("Server".into(), "4cf03d1".into())];
        let response = ProbeResponse { status: 200, headers, body: String::new() };
        let result = probe(Ok(response));
        assert!(!result.ok, "the configured header names another version; another header's text is not it");
    }

    #[test]
    fn each_probe_checks_one_target_the_operators_path_then_the_manifests() {
        let extra = ExtraTarget { url: "http://127.0.0.1:8080/status".into(), expect_status: 204 };
        let spec = ProbeSpec { extra: Some(extra), ..spec() };
        let (first, second) = (spec.nth(0), spec.nth(1));
        assert_eq!((first.url.as_str(), first.expect_status), ("http://127.0.0.1:8080/", 200));
        assert_eq!((second.url.as_str(), second.expect_status), ("http://127.0.0.1:8080/status", 204));
        assert_eq!((first.extra, second.extra), (None, None), "a probe's own spec names no second target");
    }

    /// A prober that answers every GET with the release and notes when it was asked.
    #[derive(Default)]
    struct Clocked(std::sync::Mutex<Vec<tokio::time::Instant>>);

    #[async_trait::async_trait]
    impl Prober for Clocked {
        async fn get(&self, _: &str, _: Duration) -> Result<ProbeResponse, String> {
            self.0.lock().unwrap().push(tokio::time::Instant::now());
            answer(200, "version 4cf03d1")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_probe_goes_at_once_and_the_next_ones_an_interval_apart() {
        let spec = ProbeSpec { count: 3, interval: Duration::from_secs(5), expect_header: None, ..spec() };
        let prober = Clocked::default();
        let started = tokio::time::Instant::now();
        let (probes, verdict) = analyse(&spec, &prober, Vec::new()).await;
        assert!(matches!(verdict, Verdict::Pass(_)), "{verdict:?}");
        assert_eq!(probes.len(), 3);
        let asked: Vec<Duration> = prober.0.lock().unwrap().iter().map(|at| *at - started).collect();
        assert_eq!(asked, [Duration::ZERO, Duration::from_secs(5), Duration::from_secs(10)]);
    }
}
