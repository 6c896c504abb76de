//! `convoy wait`: polls the record with back-off and prints each new timeline entry as it
//! happens. On a terminal, a live line under them shows the current state and how long it has
//! lasted; in CI logs (no terminal) only the entries are printed.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use convoy::adapters::aws::S3Store;
use convoy::group_view;
use convoy::names::{ReleaseId, ReleaseKey, ServiceName};
use convoy::ports::ReleaseStore;
use convoy::release::{Release, State};
use serde_json::json;

use crate::{exit, text};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Until {
    /// Until the release has ended (Succeeded: 0, and for a group's release only once every service
    /// is live; Failed, RolledBack, Superseded, or a service rolled back or failed: 1).
    Ended,
    /// Until it awaits approval, or went past it (0), or ended without getting there (1).
    AwaitingApproval,
}

#[derive(clap::Args)]
// Its help after the options: `help.rs`.
pub struct Args {
    service: ServiceName,
    release: ReleaseId,
    /// How far to follow the release.
    #[arg(long, value_enum, default_value = "ended")]
    until: Until,
    /// Give up after this long (90s, 30m, 1h30m).
    #[arg(long, default_value = "30m", value_parser = text::parse_span)]
    timeout: Duration,
    /// The longest pause between two reads of the record (the pause starts at 1s and grows).
    #[arg(long, default_value = "15s", value_parser = text::parse_span)]
    max_interval: Duration,
    /// One JSON object per line: each timeline entry, then the outcome.
    #[arg(long)]
    json: bool,
}

/// Where a release is, for `--until`.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Reached,
    EndedBadly,
    NotYet,
}

fn outcome(until: Until, release: &Release) -> Outcome {
    let state = &release.state;
    if exit::ended_badly(state) || group_view::first_ended_badly(release).is_some() {
        return Outcome::EndedBadly;
    }
    // A group's release is done only when every service runs it; one that ended otherwise never will.
    if matches!(state, State::Succeeded) && group_view::is_group(release) && !group_view::all_live(release) {
        return Outcome::EndedBadly;
    }
    let reached = match until {
        Until::Ended => matches!(state, State::Succeeded),
        Until::AwaitingApproval => {
            matches!(state, State::AwaitingApproval { .. } | State::ShiftingTraffic { .. } | State::Succeeded)
        }
    };
    if reached { Outcome::Reached } else { Outcome::NotYet }
}

pub async fn run(args: Args, store: &S3Store) -> Result<ExitCode, String> {
    let key = ReleaseKey::new(args.service.clone(), args.release.clone());
    let live = !args.json && std::io::stderr().is_terminal();
    let started = Instant::now();
    // parse_span bounds both spans; checked all the same, since an Instant that overflows panics.
    let deadline = started.checked_add(args.timeout).ok_or_else(|| "--timeout is too long".to_owned())?;
    let first_pause = Duration::from_secs(1).min(args.max_interval);
    let mut pause = first_pause;
    let mut printed = 0usize;
    let mut said_missing = false;
    // A group's release: each service's state as last printed, so a line is printed when it changes.
    let mut sections = std::collections::HashMap::<String, String>::new();
    loop {
        let record = store.load(&key).await.map_err(|e| format!("reading the record of {key}: {e}"))?;
        match &record {
            None if !said_missing => {
                said_missing = true;
                if !args.json {
                    clear(live);
                    errln!("waiting for the record of {key} (the manifest is not read yet, or was never uploaded)");
                }
            }
            None => {}
            Some(stored) => {
                let release = &stored.release;
                if release.timeline.len() > printed {
                    pause = first_pause;
                    clear(live);
                    for entry in &release.timeline[printed..] {
                        if args.json {
                            outln!(
                                "{}",
                                crate::output::json(
                                    &json!({"at": entry.at, "event": entry.event, "detail": entry.detail})
                                )
                            );
                        } else {
                            outln!("{}", text::entry_line(entry));
                        }
                    }
                    printed = release.timeline.len();
                }
                for section in &release.services {
                    let now = group_view::state_text(&section.state);
                    if sections.get(section.service.as_str()) == Some(&now) {
                        continue;
                    }
                    pause = first_pause;
                    clear(live);
                    if args.json {
                        let (state, reason) =
                            (group_view::state_name(&section.state), group_view::reason(&section.state));
                        outln!(
                            "{}",
                            crate::output::json(
                                &json!({"service": section.service.as_str(), "section": state, "reason": reason})
                            )
                        );
                    } else {
                        outln!("service {}: {now}", section.service);
                    }
                    sections.insert(section.service.to_string(), now);
                }
                match outcome(args.until, release) {
                    Outcome::NotYet => {}
                    Outcome::Reached => return Ok(finish(args.json, release, "reached", 0, live)),
                    Outcome::EndedBadly => return Ok(finish(args.json, release, "ended", exit::REFUSED, live)),
                }
            }
        }
        let now = Instant::now();
        if now >= deadline {
            clear(live);
            let state = record.as_ref().map_or("no record".to_owned(), |s| s.release.state.to_string());
            if args.json {
                outln!(
                    "{}",
                    crate::output::json(&json!({"release": key.to_string(), "state": state, "outcome": "timeout"}))
                );
            }
            errln!("convoy: timed out after {}: {key} is {state}", text::span(chrono_of(args.timeout)));
            return Ok(ExitCode::from(exit::TIMEOUT));
        }
        let sleep_until = now.checked_add(pause).map_or(deadline, |then| then.min(deadline));
        // On a terminal, redraw the live line every second while pausing.
        while Instant::now() < sleep_until {
            if live {
                draw(record.as_ref().map(|s| &s.release), started);
            }
            let step = if live { Duration::from_secs(1) } else { pause };
            tokio::time::sleep(step.min(sleep_until.saturating_duration_since(Instant::now()))).await;
        }
        pause = (pause.mul_f32(1.5)).min(args.max_interval);
    }
}

fn finish(json: bool, release: &Release, outcome: &str, code: u8, live: bool) -> ExitCode {
    clear(live);
    if json {
        outln!(
            "{}",
            crate::output::json(
                &json!({"release": release.key.to_string(), "state": release.state.to_string(), "outcome": outcome})
            )
        );
    } else if group_view::is_group(release) {
        let services: Vec<String> =
            release.services.iter().map(|s| format!("{} {}", s.service, group_view::state_name(&s.state))).collect();
        outln!("{}: {} ({})", release.key, release.state, services.join(", "));
    } else {
        outln!("{}: {}", release.key, release.state);
    }
    ExitCode::from(code)
}

fn chrono_of(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// The live line: the current state and how long since its stage's last entry.
fn draw(release: Option<&Release>, started: Instant) {
    let line = match release {
        None => format!("waiting for the record  {}", text::span(chrono_of(started.elapsed()))),
        Some(release) => {
            let since = release.timeline.last().map_or(chrono::Duration::zero(), |e| chrono::Utc::now() - e.at);
            format!("{}  {}", release.state, text::span(since))
        }
    };
    let mut err = std::io::stderr();
    let _ = write!(err, "\r\x1b[2K… {}", crate::output::clean(&line));
    let _ = err.flush();
}

fn clear(live: bool) {
    if live {
        let mut err = std::io::stderr();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A release of one service in `state`.
    fn single(state: State) -> Release {
        let mut release = group(&[]);
        release.state = state;
        release
    }

    /// A group's release that succeeded, one service per state (`live`, `rolled-back`...).
    fn group(states: &[&str]) -> Release {
        let services: Vec<_> = states
            .iter()
            .enumerate()
            .map(|(i, state)| {
                let mut tag = json!({"name": state});
                if matches!(*state, "rolling-back" | "rolled-back" | "failed") {
                    tag["reason"] = json!("probes failed");
                }
                json!({"service": format!("s{i}"), "step": i, "method": "ecs-native", "takes_traffic": true,
                       "containers": {}, "state": tag})
            })
            .collect();
        serde_json::from_value(json!({
            "schema": 1, "key": {"service": "shop", "release": "r1"},
            "source": {"bucket": "b", "key": "releases/shop/r1.json"},
            "images": {}, "state": {"name": "Succeeded"}, "timeline": [], "services": services
        }))
        .expect("a record")
    }

    #[test]
    fn a_groups_release_is_reached_only_when_it_succeeded_and_every_service_is_live() {
        assert_eq!(outcome(Until::Ended, &group(&["live", "live"])), Outcome::Reached);
        let mut running = group(&["live", "deploying"]);
        running.state =
            State::Deploying { deployment: convoy::names::DeploymentRef::CodeDeploy("d-ABCDEFGHI".parse().unwrap()) };
        assert_eq!(outcome(Until::Ended, &running), Outcome::NotYet);
        for until in [Until::Ended, Until::AwaitingApproval] {
            assert_eq!(outcome(until, &group(&["live", "through"])), Outcome::EndedBadly, "succeeded, not all live");
        }
    }

    #[test]
    fn a_service_rolled_back_or_failed_ends_a_groups_wait_badly_before_the_release_ends() {
        for bad in ["rolled-back", "failed"] {
            let mut release = group(&["live", bad, "waiting"]);
            release.state = State::RollingBack {
                deployment: convoy::names::DeploymentRef::CodeDeploy("d-ABCDEFGHI".parse().unwrap()),
                reason: "s1 failed".into(),
            };
            for until in [Until::Ended, Until::AwaitingApproval] {
                assert_eq!(outcome(until, &release), Outcome::EndedBadly, "{bad}");
            }
        }
        let rolling = group(&["live", "rolling-back"]);
        assert_eq!(outcome(Until::Ended, &rolling), Outcome::EndedBadly, "succeeded with a service not live");
    }

    #[test]
    fn awaiting_approval_is_reached_by_a_release_that_went_past_it() {
        let deployment = convoy::names::DeploymentRef::CodeDeploy("d-ABCDEFGHI".parse().unwrap());
        for state in [
            State::AwaitingApproval { deployment: deployment.clone() },
            State::ShiftingTraffic { deployment: deployment.clone() },
            State::Succeeded,
        ] {
            assert_eq!(outcome(Until::AwaitingApproval, &single(state.clone())), Outcome::Reached, "{state}");
        }
        assert_eq!(outcome(Until::Ended, &single(State::AwaitingApproval { deployment })), Outcome::NotYet);
    }

    #[test]
    fn a_release_that_ended_without_production_ends_the_wait_badly_whatever_was_asked() {
        let superseded = State::Superseded { by: "r9".parse().unwrap() };
        let rolled_back = State::RolledBack { reason: "rejected".into() };
        for until in [Until::Ended, Until::AwaitingApproval] {
            assert_eq!(outcome(until, &single(superseded.clone())), Outcome::EndedBadly);
            assert_eq!(outcome(until, &single(rolled_back.clone())), Outcome::EndedBadly);
        }
        assert_eq!(outcome(Until::Ended, &single(State::Collecting)), Outcome::NotYet);
        assert_eq!(outcome(Until::Ended, &single(State::Succeeded)), Outcome::Reached, "one service has no section");
    }
}
