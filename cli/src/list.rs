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
    /// Instead: each service's live release, since when, who approved it, and whether ECS runs
    /// it (DescribeServices in --cluster) or a revision changed outside Convoy.
    #[arg(long, conflicts_with_all = ["service", "active"])]
    live: bool,
    /// The services' ECS cluster, for --live.
    #[arg(long, env = "CONVOY_CLUSTER", requires = "live")]
    cluster: Option<String>,
}

pub async fn run(args: Args, store: &S3Store, sdk: &aws_config::SdkConfig) -> Result<ExitCode, String> {
    if args.live {
        let tasks = convoy::adapters::aws::EcsTasks::new(aws_sdk_ecs::Client::new(sdk));
        let cluster = args.cluster.as_deref().filter(|c| !c.trim().is_empty());
        return crate::history::list_live(store, &tasks, cluster, args.json).await;
    }
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
                json!({"service": r.key.service.to_string(), "release": r.key.release.to_string(),
                       "state": r.state.to_string(), "terminal": r.state.is_terminal(),
                       "opened_at": r.timeline.first().map(|e| e.at), "stage_seconds": stages,
                       "services": r.services.iter().map(|s| json!({"service": s.service.to_string(),
                           "method": s.method.to_string(), "state": s.state})).collect::<Vec<_>>(),
                       "part_of": r.part_of.as_ref().map(ToString::to_string)})
            })
            .collect();
        outln!("{}", crate::output::json_pretty(&rows));
        return Ok(ExitCode::SUCCESS);
    }
    if releases.is_empty() {
        errln!("no releases");
        return Ok(ExitCode::SUCCESS);
    }
    let key_width = releases.iter().map(|r| label(r).len()).max().unwrap_or(0).max(7);
    let state_width = releases.iter().map(|r| short_state(r).len()).max().unwrap_or(0).max(5);
    outln!("{:key_width$}  {:state_width$}  {:>6}  STAGES", "RELEASE", "STATE", "AGE");
    for release in &releases {
        let age = release.timeline.first().map_or("-".to_owned(), |e| text::span(now - e.at));
        let stages: Vec<String> =
            text::stages(release, now).iter().map(|(s, d)| format!("{s} {}", text::span(*d))).collect();
        outln!("{:key_width$}  {:state_width$}  {age:>6}  {}", label(release), short_state(release), stages.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// The release as the list names it: a group's with its services, a part with the release it
/// belongs to.
fn label(release: &Release) -> String {
    let key = release.key.to_string();
    if let Some(group) = &release.part_of {
        return format!("{key} (part of {group})");
    }
    if convoy::group_view::is_group(release) {
        format!("{key} ({})", convoy::group_view::service_names(release))
    } else {
        key
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(extra: serde_json::Value) -> Release {
        let mut value = json!({
            "schema": 2, "key": {"service": "shop", "release": "r1"},
            "source": {"bucket": "b", "key": "releases/shop/r1.json"},
            "images": {}, "state": {"name": "Succeeded"}, "timeline": []
        });
        for (field, v) in extra.as_object().unwrap() {
            value[field] = v.clone();
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_groups_release_is_listed_with_its_services_and_a_part_with_its_release() {
        let group = record(json!({"services": [
            {"service": "worker", "step": 0, "method": "ecs-rolling", "takes_traffic": false, "containers": {},
             "state": {"name": "live"}},
            {"service": "web", "step": 1, "method": "codedeploy", "takes_traffic": true, "containers": {},
             "state": {"name": "live"}}]}));
        assert_eq!(label(&group), "shop/r1 (worker, web)");
        let mut part = record(json!({"part_of": {"service": "shop", "release": "r1"}}));
        part.key = ReleaseKey::new("web".parse().unwrap(), "r1".parse().unwrap());
        assert_eq!(label(&part), "web/r1 (part of shop/r1)");
        assert_eq!(label(&record(json!({}))), "shop/r1", "a release of one service, as before");
    }
}
