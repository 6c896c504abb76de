//! The reconciler at scale (docs/measurements.md: scripts/bench): N active releases on moto, each following a
//! real (moto) CodeDeploy deployment, visited by one reconciler run. Prints how long the run took,
//! its rate, and what fits one run's budget. Prints figures, asserts nothing, is not a test.
//!
//! It runs Convoy's library in this process (the build it was compiled as: debug under the tests, release for the figure in docs/measurements.md): a visit waits on S3
//! and CodeDeploy, so the figures measure round trips to moto more than Convoy's own CPU. Each
//! visit reads its record (S3 `GetObject`); the deployments are asked 25 to a
//! `BatchGetDeployments`.

use std::time::{Duration, Instant};

use chrono::Utc;
use convoy::manifest;
use convoy::names::ReleaseKey;
use convoy::ports::CodeDeployRequest;
use convoy::release::{DeployMethod, Event, ImageKey, ManifestSource, Release, Sighting, deployment, readiness};
use convoy::service::CONCURRENT_VISITS;
use convoy_tests::moto::Moto;
use convoy_tests::world::{World, service_settings};
use futures_util::StreamExt;
use serde_json::json;

/// The reconciler's timeout in template.yaml, less the margin its handler keeps for the visits
/// under way (`handlers::RECONCILE_MARGIN`).
const BUDGET: Duration = Duration::from_secs(60 - 15);

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("CONVOY_RECONCILE_RELEASES").ok().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let _moto = Moto::shared();
    let id = format!("scale{}", std::process::id());
    let world = World::named(&format!("convoy-{id}"), &id).await;
    world.create_repositories(&["app"]).await;
    let (application, group) = world.codedeploy("web").await;
    let settings = service_settings("web", &application, &group, "http://127.0.0.1:9", "manual", json!({}));
    let convoy = world.convoy_with(&["web"], &[&world.repo("app")], &settings);

    println!("Convoy reconciler at scale — {count} active releases on moto, {CONCURRENT_VISITS} visits at a time");
    let setup = Instant::now();
    let convoy_ref = &convoy;
    let (world_ref, application_ref, group_ref) = (&world, &application, &group);
    futures_util::stream::iter(0..count)
        .map(|n| async move {
            let release = format!("r{n:05}");
            let key = ReleaseKey::new("web".parse().expect("service"), release.parse().expect("release id"));
            let deployment = convoy_ref
                .codedeploy
                .create(&CodeDeployRequest {
                    application: application_ref.clone(),
                    deployment_group: group_ref.clone(),
                    task_definition: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1".into(),
                    container: "app".into(),
                    port: 80,
                    verify_function: "convoy-verify".into(),
                    description: key.tag(),
                })
                .await
                .expect("deployment on moto");
            let record = deploying(world_ref, &key, deployment);
            convoy_ref.store.create(&record).await.expect("record");
            convoy_ref.active.mark_active(&key).await.expect("active");
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    println!("set-up: {count} deployments, records and active entries in {:.1} s", setup.elapsed().as_secs_f64());

    let started = Instant::now();
    let listed = convoy.active.active().await.expect("active list").len();
    println!("listing active/ alone: {listed} keys in {:.2} s", started.elapsed().as_secs_f64());

    let (started, cpu) = (Instant::now(), own_cpu_seconds());
    let run = convoy.reconcile_within(Utc::now(), None).await.expect("reconcile");
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = own_cpu_seconds() - cpu;
    let rate = run.visited as f64 / elapsed;
    println!("\n## one run, no time limit");
    println!("{:<32} {:>10}", "releases visited", run.visited);
    println!("{:<32} {:>10.2}", "seconds", elapsed);
    println!("{:<32} {:>10.0}", "visits per second", rate);
    println!("{:<32} {:>10.1}", "ms per visit (wall, amortised)", 1000.0 / rate);
    let build = if cfg!(debug_assertions) { "a debug build" } else { "a release build, as Lambda runs" };
    println!("{:<32} {:>10.2}   (this process: Convoy's library and the SDK, {build})", "CPU seconds", cpu);
    println!(
        "{:<32} {:>10.0}   (budget {} s = 60 s timeout − 15 s margin, at this rate)",
        "releases within one run",
        rate * BUDGET.as_secs_f64(),
        BUDGET.as_secs()
    );

    let short = Duration::from_secs(2);
    let started = Instant::now();
    let run = convoy.reconcile_within(Utc::now(), Some(short)).await.expect("reconcile");
    println!("\n## one run with a {} s budget", short.as_secs());
    println!(
        "visited {} and left {} for the next run, in {:.2} s (visits under way finish after the budget)",
        run.visited,
        run.left,
        started.elapsed().as_secs_f64()
    );
}

/// A release of one image, pinned, following `deployment` (as a start that went well leaves it).
fn deploying(world: &World, key: &ReleaseKey, deployment_id: convoy::names::DeploymentId) -> Release {
    let text = json!({"version": 1, "release": key.release.as_str(), "service": "web",
        "images": {"app": world.uri("app", key.release.as_str())}})
    .to_string();
    let manifest = manifest::parse(text.as_bytes(), key).expect("manifest");
    let source = ManifestSource {
        bucket: world.bucket.clone(),
        key: format!("releases/{key}.json"),
        version_id: None,
        etag: Some(format!("\"{}\"", key.release)),
    };
    let now = Utc::now();
    let release = Release::open(key.clone(), source, manifest, now);
    let image = ImageKey::of(&release.images.values().next().expect("one image").image);
    let digest = format!("sha256:{}", "ab".repeat(32)).parse().expect("digest");
    let events = [
        Event::from(readiness::Event::ImageFound { image, digest, at: now, via: Sighting::RegistryLookup }),
        Event::from(deployment::Event::Claimed {
            method: DeployMethod::CodeDeploy,
            at: now,
            lease: convoy::config::CLAIM_LEASE,
            gate: None,
        }),
        Event::from(deployment::Event::Started { deployment: deployment_id.into(), task_definition: None, at: now }),
    ];
    match release.apply_all(&events).expect("transitions") {
        convoy::release::Decision::Changed { release, .. } => *release,
        convoy::release::Decision::Unchanged { why } => panic!("no transition: {why}"),
    }
}

/// This process's CPU time so far (user + system, from /proc/self/stat; 0 where there is none).
fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |n: usize| fields.get(n).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are the 14th and 15th fields of the line, the 12th and 13th after ')'.
    (ticks(11) + ticks(12)) / 100.0
}
