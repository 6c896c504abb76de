//! `convoy list`: the releases with a record, newest first, with state, age and stage durations.

use std::process::ExitCode;

use convoy::adapters::aws::S3Store;
use convoy::names::{ReleaseKey, ServiceName};
use convoy::ports::{ActiveReleases, ReleaseStore};
use convoy::release::Release;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::text;

#[derive(clap::Args)]
pub struct Args {
    /// Only this service's releases.
    service: Option<ServiceName>,
    /// Only releases that have not ended.
    #[arg(long)]
    active: bool,
    /// One JSON array of the releases.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args, store: &S3Store) -> Result<ExitCode, String> {
    let keys: Vec<ReleaseKey> = if args.active {
        let active = store.active().await.map_err(|e| e.to_string())?;
        active.into_iter().filter(|k| args.service.as_ref().is_none_or(|s| *s == k.service)).collect()
    } else {
        store.recorded(args.service.as_ref()).await.map_err(|e| e.to_string())?
    };
    let loaded: Vec<Option<convoy::ports::Stored>> = futures_util::stream::iter(keys.iter().map(|k| store.load(k)))
        .buffered(8)
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    let mut releases: Vec<Release> = loaded.into_iter().flatten().map(|s| s.release).collect();
    if args.active {
        releases.retain(|r| !r.state.is_terminal());
    }
    releases.sort_by_key(|r| std::cmp::Reverse(r.timeline.first().map(|e| e.at)));
    let now = chrono::Utc::now();
    if args.json {
        let rows: Vec<_> = releases
            .iter()
            .map(|r| {
                let stages: serde_json::Map<String, serde_json::Value> =
                    text::stages(r, now).into_iter().map(|(s, d)| (s.to_owned(), json!(d.num_seconds()))).collect();
                let services: Option<Vec<&str>> =
                    convoy::group_view::is_group(r).then(|| r.services.iter().map(|s| s.service.as_str()).collect());
                json!({"service": r.key.service.to_string(), "release": r.key.release.to_string(),
                       "group": r.group.as_ref().map(|g| g.group.to_string()), "services": services,
                       "state": r.state.to_string(), "terminal": r.state.is_terminal(),
                       "opened_at": r.timeline.first().map(|e| e.at), "stage_seconds": stages})
            })
            .collect();
        outln!("{}", crate::output::json_pretty(&rows));
        return Ok(ExitCode::SUCCESS);
    }
    if releases.is_empty() {
        errln!("no releases");
        return Ok(ExitCode::SUCCESS);
    }
    let key_width = releases.iter().map(|r| who(r).chars().count()).max().unwrap_or(0).max(7);
    let state_width = releases.iter().map(|r| short_state(r).len()).max().unwrap_or(0).max(5);
    outln!("{:key_width$}  {:state_width$}  {:>6}  STAGES", "RELEASE", "STATE", "AGE");
    for release in &releases {
        let age = release.timeline.first().map_or("-".to_owned(), |e| text::span(now - e.at));
        let stages: Vec<String> =
            text::stages(release, now).iter().map(|(s, d)| format!("{s} {}", text::span(*d))).collect();
        outln!("{:key_width$}  {:state_width$}  {age:>6}  {}", who(release), short_state(release), stages.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// The release as the RELEASE column shows it: `web/r1`, or for a group's release its group and
/// services, `shop/r1 (web, worker)`.
fn who(release: &Release) -> String {
    if convoy::group_view::is_group(release) {
        format!("{} ({})", release.key, convoy::group_view::service_names(release))
    } else {
        release.key.to_string()
    }
}

/// The state's name without its long detail (a failure's reason goes to `convoy status`).
fn short_state(release: &Release) -> String {
    let full = release.state.to_string();
    match full.split_once(':') {
        Some((head, _)) => head.to_owned(),
        None => full,
    }
}
