//! `convoy history` over many records (docs/measurements.md): N releases of `web` that went live
//! (default 300, `CONVOY_HISTORY_RELEASES`), one record each in a state bucket on moto, then the
//! real `convoy` binary times `history web`, `history web --limit 10` and `history web --json`
//! (which says how many records it read). There is no index: the records are listed (1,000 keys a
//! request) and read newest written first. Prints figures, asserts nothing, is not a test.

use std::process::Command;
use std::time::Instant;

use chrono::{Duration, Utc};
use convoy::ports::ReleaseStore;
use convoy::release::Release;
use convoy_tests::moto::{Moto, REGION};
use convoy_tests::runtime::binary;
use convoy_tests::world::World;
use futures_util::StreamExt;
use serde_json::{Value, json};

const SUCCEEDED: &str = include_str!("../../../shared/fixtures/records/succeeded-codedeploy.json");

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("CONVOY_HISTORY_RELEASES").ok().and_then(|n| n.parse().ok()).unwrap_or(300);
    let moto = Moto::shared();
    let id = format!("history{}", std::process::id());
    let world = World::named(&format!("convoy-{id}"), &id).await;
    let store = convoy::adapters::aws::S3Store::new(world.s3.clone(), &world.bucket);
    let convoy_binary = binary("convoy");

    println!("convoy history over {count} records of one service on moto (no index)");
    let setup = Instant::now();
    let start = Utc::now() - Duration::hours(count as i64);
    let store = &store;
    futures_util::stream::iter(0..count)
        .map(|n| async move {
            // One release an hour, each live until the next.
            let mut value: Value = serde_json::from_str(SUCCEEDED).expect("fixture");
            value["key"] = json!({"service": "web", "release": format!("r{n:05}")});
            value["timeline"][0]["at"] = json!(start + Duration::hours(n as i64));
            value["deployment"]["ended_at"] = json!(start + Duration::hours(n as i64) + Duration::minutes(10));
            let record: Release = serde_json::from_value(value).expect("record");
            store.create(&record).await.expect("record on moto");
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    println!("set-up: {count} records in {:.1} s\n", setup.elapsed().as_secs_f64());

    println!("{:<36} {:>9} {:>14}", "command", "seconds", "records read");
    for args in [&["history", "web"][..], &["history", "web", "--limit", "10"], &["history", "web", "--limit", "1"]] {
        let started = Instant::now();
        let output = run(&convoy_binary, &moto.endpoint, &world.bucket, args);
        let elapsed = started.elapsed().as_secs_f64();
        let mut json_args = args.to_vec();
        json_args.push("--json");
        let read = serde_json::from_str::<Value>(&run(&convoy_binary, &moto.endpoint, &world.bucket, &json_args))
            .ok()
            .and_then(|v| v["records_read"].as_u64())
            .map_or("?".to_owned(), |n| n.to_string());
        let rows = output.lines().count().saturating_sub(1);
        println!("{:<36} {elapsed:>9.2} {read:>14}   ({rows} rows)", format!("convoy {}", args.join(" ")));
    }
}

fn run(convoy: &std::path::Path, endpoint: &str, bucket: &str, args: &[&str]) -> String {
    let output = Command::new(convoy)
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("CONVOY_STATE_BUCKET", bucket)
        .env("CONVOY_S3_FORCE_PATH_STYLE", "true")
        .output()
        .expect("run convoy");
    assert!(output.status.success(), "convoy {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}
