//! `convoy history <service>`: every release of the service that went live, newest first; and
//! `convoy list --live`: each service's live release, confirmed with ECS. Both read the records
//! through `convoy::history` (no index), the dashboard's Services page too.

use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use convoy::adapters::aws::S3Store;
use convoy::history::{self, Live, LiveCheck, WentLive};
use convoy::names::ServiceName;
use convoy::ports::Tasks;
use serde_json::{Value, json};

use crate::text;

#[derive(clap::Args)]
pub struct Args {
    service: ServiceName,
    /// Only the newest N releases that went live (reads only as many records as that needs).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// One JSON object: the service, its releases newest first, and what was read.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args, store: &S3Store) -> Result<ExitCode, String> {
    let loaded = history::load(store, store, &args.service, args.limit).await.map_err(|e| e.to_string())?;
    let now = Utc::now();
    for (key, why) in &loaded.unreadable {
        errln!("convoy: record {key} cannot be read, left out: {why}");
    }
    if args.json {
        let value = json!({
            "service": args.service.to_string(),
            "releases": loaded.history.releases.iter().map(|r| went_live_json(r, now)).collect::<Vec<_>>(),
            "live_now": loaded.history.live_now().map(|r| r.key.release.to_string()),
            "live_before": loaded.history.live_before().map(|r| r.key.release.to_string()),
            "records_listed": loaded.listed,
            "records_read": loaded.read,
        });
        outln!("{}", crate::output::json_pretty(&value));
        return Ok(ExitCode::SUCCESS);
    }
    if loaded.history.releases.is_empty() {
        errln!("no release of {} went live ({} records)", args.service, loaded.listed);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 7]> = loaded.history.releases.iter().map(|r| row(r, now)).collect();
    table(&["RELEASE", "WENT LIVE", "LIVE FOR", "OUTCOME", "MIGRATION", "APPROVED BY", "IMAGES"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// One release that went live, as JSON: its fields, plus how long it was live in seconds.
pub fn went_live_json(release: &WentLive, now: DateTime<Utc>) -> Value {
    let mut value = serde_json::to_value(release).unwrap_or(Value::Null);
    value["live_seconds"] = json!(release.live_for(now).num_seconds());
    value
}

fn row(release: &WentLive, now: DateTime<Utc>) -> [String; 7] {
    let label = match &release.part_of {
        Some(group) => format!("{} (part of {group})", release.key.release),
        None => release.key.release.to_string(),
    };
    [
        label,
        when(release.at),
        text::span(release.live_for(now)),
        release.outcome.to_string(),
        release.migration.to_string(),
        release.approved_by.clone().unwrap_or_else(|| "-".into()),
        images(release),
    ]
}

/// `container=repository@sha256:<first 12>` for each image: the digest, short enough for a row
/// (`--json` has it whole).
pub fn images(release: &WentLive) -> String {
    let short = |uri: &str| -> String {
        let (repository, digest) = uri.split_once('@').unwrap_or((uri, ""));
        let repository = repository.rsplit('/').next().unwrap_or(repository);
        let digest = digest.get(..19).unwrap_or(digest);
        format!("{repository}@{digest}")
    };
    release.images.iter().map(|(container, uri)| format!("{container}={}", short(uri))).collect::<Vec<_>>().join(" ")
}

pub fn when(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Left-aligned columns, the last one unpadded.
fn table<const N: usize>(head: &[&str; N], rows: &[[String; N]]) {
    let mut widths = head.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out
    };
    outln!("{}", line(head.to_vec()));
    for row in rows {
        outln!("{}", line(row.iter().map(String::as_str).collect()));
    }
}

/// Each service with records (a release group's own name is left out), its live release
/// confirmed with ECS in `cluster`, with its `newest` releases that went live.
pub async fn services_live(
    store: &S3Store,
    tasks: &dyn Tasks,
    cluster: Option<&str>,
    newest: usize,
) -> Result<Vec<(ServiceName, Live)>, String> {
    let mut live = Vec::new();
    for name in store.record_names().await.map_err(|e| e.to_string())? {
        let found = match cluster {
            Some(cluster) => history::live_newest(store, store, tasks, cluster, &name, newest).await,
            None => history::load(store, store, &name, Some(newest.max(1))).await.map(|loaded| Live {
                loaded,
                check: LiveCheck::NotAsked { why: "no cluster: pass --cluster or set CONVOY_CLUSTER".into() },
            }),
        }
        .map_err(|e| e.to_string())?;
        // A group's own records: only its services' parts ever deploy anything.
        if !found.loaded.records.is_empty() && found.loaded.records.iter().all(|r| r.group.is_some()) {
            continue;
        }
        live.push((name, found));
    }
    Ok(live)
}

/// `convoy list --live`.
pub async fn list_live(
    store: &S3Store,
    tasks: &dyn Tasks,
    cluster: Option<&str>,
    json: bool,
) -> Result<ExitCode, String> {
    let services = services_live(store, tasks, cluster, 2).await?;
    let now = Utc::now();
    if json {
        let rows: Vec<Value> = services.iter().map(|(service, live)| live_json(service, live, now)).collect();
        outln!("{}", crate::output::json_pretty(&rows));
        return Ok(ExitCode::SUCCESS);
    }
    if services.is_empty() {
        errln!("no services with records");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 5]> = services
        .iter()
        .map(|(service, live)| {
            let current = live.loaded.history.live_now();
            [
                service.to_string(),
                current.map_or("- (none went live)".into(), |r| r.key.release.to_string()),
                current.map_or("-".into(), |r| format!("{} ({} ago)", when(r.at), text::span(now - r.at))),
                current.and_then(|r| r.approved_by.clone()).unwrap_or_else(|| "-".into()),
                live.check.to_string(),
            ]
        })
        .collect();
    table(&["SERVICE", "LIVE", "SINCE", "APPROVED BY", "ECS"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// One service's live release as JSON (`convoy list --live --json`).
pub fn live_json(service: &ServiceName, live: &Live, now: DateTime<Utc>) -> Value {
    let history = &live.loaded.history;
    json!({
        "service": service.to_string(),
        "live": history.live_now().map(|r| went_live_json(r, now)),
        "before": history.live_before().map(|r| r.key.release.to_string()),
        "ecs": live.check,
        "changed_outside_convoy": matches!(live.check, LiveCheck::ChangedOutsideConvoy { .. }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_shows_each_image_by_repository_and_a_short_digest() {
        assert_eq!(images(&sample()), "app=app-13347-20@sha256:7252717ba17f nginx=nginx-13347-20@sha256:e9fc3a55d9c2");
    }

    fn sample() -> WentLive {
        let record: convoy::release::Release =
            serde_json::from_str(include_str!("../../shared/fixtures/records/succeeded-codedeploy.json")).unwrap();
        history::history(&record.key.service.clone(), &[record]).releases.remove(0)
    }
}
