//! The bench's per-release account and hand-off latencies (docs/measurements.md: scripts/bench): one whole
//! release through the real function binaries and the real `convoy` CLI against moto, every AWS
//! request passing the stand-in, which logs each with its time, service and operation.
//!
//! The release: a manifest uploaded (S3 delivers it twice), both images pushed (EventBridge
//! delivers the completing push twice), the migration's task stopped with exit 0, CodeDeploy's
//! `AfterAllowTestTraffic` hook, `convoy approve`, and CodeDeploy's SUCCESS event. Then, for the
//! last hand-off, a release deploying and one queued behind it: the first one's end starts the
//! queued one. Prints figures; asserts nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use convoy::names::ReleaseKey;
use convoy::ports::ReleaseStore;
use convoy::release::{Release, State};
use serde_json::{Value, json};

use crate::fixtures;
use crate::http::{self, Behaviour};
use crate::moto::{ACCOUNT, Moto, REGION};
use crate::runtime::{LambdaProcess, Outcome};
use crate::standin::{Phase, Request, StandIn};
use crate::world::{World, function_env, service_settings};

const SERVICE: &str = "shop";
/// The sandbox's probes: five, 200 ms apart.
const PROBE_COUNT: u32 = 5;
const PROBE_INTERVAL_MS: u64 = 200;

/// Today's public prices (US East (N. Virginia), on demand, before the free tier), and where
/// they come from. Looked up 2026-11-26.
mod price {
    /// https://aws.amazon.com/lambda/pricing/ (Arm): duration per GB-second, and per request.
    pub const LAMBDA_ARM_GB_S: f64 = 0.000_013_333_4;
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    /// https://aws.amazon.com/s3/pricing/ (S3 Standard): PUT, COPY, POST, LIST per request;
    /// GET, SELECT and all other requests (HEAD) per request; DELETE is free.
    pub const S3_TIER1: f64 = 0.005 / 1000.0;
    pub const S3_TIER2: f64 = 0.0004 / 1000.0;
    /// https://aws.amazon.com/eventbridge/pricing/: events AWS services send to the default bus
    /// are free; custom events (PutEvents) $1.00 per million.
    pub const EVENTBRIDGE_CUSTOM: f64 = 1.00 / 1e6;
    /// https://aws.amazon.com/codepipeline/pricing/: V2 pipelines, per action execution minute,
    /// each action rounded up to the minute (every action type but manual approval and custom).
    pub const PIPELINE_ACTION_MINUTE: f64 = 0.002;
    /// https://aws.amazon.com/codebuild/pricing/: on-demand EC2 `general1.small` (Linux), per
    /// build minute.
    pub const CODEBUILD_SMALL_MINUTE: f64 = 0.005;
}

/// The seeds' way, as assumed: one CodePipeline V2 execution per release with a source action, a
/// CodeBuild build and a CodeDeployToECS deploy action (which lasts as long as the blue/green
/// deployment it runs, test traffic and the wait for the reroute included).
const SEED_SOURCE_MINUTES: f64 = 1.0;
const SEED_BUILD_MINUTES: f64 = 5.0;
const SEED_DEPLOY_MINUTES: f64 = 10.0;
/// The artifact store's requests: the CI's source upload, the build's GET of it and PUT of its
/// output, the deploy action's GET.
const SEED_S3_PUTS: f64 = 2.0;
const SEED_S3_GETS: f64 = 2.0;

/// One step of the release: who handled it, how long, and the AWS requests it made.
struct Step {
    label: String,
    /// The Lambda function, or `None` for the operator's CLI (not billed by Lambda).
    function: Option<&'static str>,
    started: Instant,
    wall: Duration,
    requests: Vec<Request>,
}

struct Run {
    proxy: StandIn,
    steps: Vec<Step>,
    cli: PathBuf,
    bucket: String,
}

impl Run {
    async fn invoke(&mut self, label: &str, function: &LambdaProcess, name: &'static str, event: Value) -> Value {
        let before = self.proxy.log().len();
        let started = Instant::now();
        let outcome = function.invoke(event).await.expect("an answer");
        let wall = started.elapsed();
        let requests = self.proxy.log()[before..].to_vec();
        self.steps.push(Step { label: label.into(), function: Some(name), started, wall, requests });
        match outcome {
            Outcome::Response(value) => value,
            Outcome::Error(error) => panic!("{name} failed on {label}: {error}"),
        }
    }

    fn cli(&mut self, label: &str, args: &[&str]) {
        let before = self.proxy.log().len();
        let started = Instant::now();
        let output = std::process::Command::new(&self.cli)
            .args(args)
            .env("AWS_ENDPOINT_URL", &self.proxy.endpoint)
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("CONVOY_STATE_BUCKET", &self.bucket)
            .env("CONVOY_S3_FORCE_PATH_STYLE", "true")
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.cli.display()));
        let wall = started.elapsed();
        assert!(output.status.success(), "convoy {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        let requests = self.proxy.log()[before..].to_vec();
        self.steps.push(Step { label: label.into(), function: None, started, wall, requests });
    }

    /// From the start of step `label` to its first request of `operation`.
    fn handoff(&self, label: &str, operation: &str) -> Option<Duration> {
        let step = self.steps.iter().find(|s| s.label == label)?;
        step.requests.iter().find(|r| r.operation == operation).map(|r| r.at - step.started)
    }
}

/// The template's function memory (the first `MemorySize`, Globals'), in MB.
fn template_memory_mb() -> u64 {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    std::fs::read_to_string(&template)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| l.trim().strip_prefix("MemorySize:").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or_else(|| panic!("no MemorySize in {}", template.display()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Billed milliseconds: rounded up to the next whole millisecond, as Lambda bills.
fn billed(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000) as u64
}

/// S3's price tier of an operation: PUT/COPY/POST/LIST, or GET and the rest; DELETE is free.
fn s3_price(operation: &str) -> f64 {
    match operation {
        "DeleteObject" | "DeleteObjects" => 0.0,
        o if o.starts_with("Put") || o.starts_with("List") || o == "CopyObject" || o.starts_with("POST") => {
            price::S3_TIER1
        }
        _ => price::S3_TIER2,
    }
}

/// Runs the release and prints the account, the comparison and the hand-off latencies. `bin`:
/// the function binaries; `cli`: the `convoy` binary.
pub async fn run(bin: &Path, cli: &Path) {
    let moto = Moto::shared();
    let id = format!("acct{}", std::process::id());
    let world = World::named(&format!("convoy-{id}"), &id).await;
    world.create_repositories(&["app", "nginx"]).await;
    let ecs = world.ecs_service(SERVICE, &["app", "nginx"]).await;
    let (application, group) = world.codedeploy(SERVICE).await;
    let proxy = StandIn::for_missing_operations(&moto.endpoint).await;
    let green = http::serve(Behaviour::version("a1")).await;
    let probe = json!({"count": PROBE_COUNT, "interval_ms": PROBE_INTERVAL_MS, "failure_limit": 1, "timeout_ms": 1000});
    let settings = service_settings(SERVICE, &application, &group, &green.url, "manual", probe);
    let repositories = [world.repo("app"), world.repo("nginx")];
    let env = function_env(&world, &proxy.endpoint, &ecs.cluster, &[SERVICE.to_owned()], &repositories, &settings);

    let names = ["manifest-uploaded", "image-pushed", "migration-stopped", "verify", "deployment-changed"];
    let mut processes = Vec::new();
    let mut inits = Vec::new();
    for name in names {
        let process = LambdaProcess::spawn(name, &bin.join(name), &env).await;
        inits.push((name, process.init_time(Duration::from_secs(30)).await.expect("init")));
        processes.push(process);
    }
    let [uploaded, pushed, stopped, verify, changed] = &processes[..] else { unreachable!() };
    let mut run = Run { proxy, steps: Vec::new(), cli: cli.to_owned(), bucket: world.bucket.clone() };
    let store = convoy::adapters::aws::S3Store::new(
        convoy::adapters::aws::s3_client(
            &world.sdk,
            &convoy::config::StoreSettings { state_bucket: world.bucket.clone(), force_path_style: true },
        ),
        &world.bucket,
    );
    let record = |release: &str| {
        let key = ReleaseKey::new(SERVICE.parse().expect("service"), release.parse().expect("release"));
        let store = &store;
        async move { store.load(&key).await.expect("load").expect("a record").release }
    };
    let manifest = |release: &str, migration: bool| {
        let mut body = json!({"version": 1, "release": release, "service": SERVICE,
            "images": {"app": world.uri("app", release), "nginx": world.uri("nginx", release)},
            "verify": {"path": "/", "expect_status": 200, "expect_body": release}, "approval": "manual"});
        if migration {
            body["migration"] = json!({"container": "app", "command": ["./migrate"]});
        }
        body.to_string()
    };
    let push_event = |name: &str, tag: &str, digest: &str| {
        fixtures::ecr_push(ACCOUNT, &world.repo(name), tag, digest, chrono::Utc::now())
    };

    // The release: CI uploads the manifest, then pushes both images.
    let (version, size) = world.upload(&format!("releases/{SERVICE}/a1.json"), &manifest("a1", true)).await;
    let upload =
        fixtures::s3_eventbridge(&world.bucket, &format!("releases/{SERVICE}/a1.json"), version.as_deref(), size);
    run.invoke("manifest uploaded", uploaded, "manifest-uploaded", upload.clone()).await;
    run.invoke("manifest uploaded (S3 delivers it again)", uploaded, "manifest-uploaded", upload).await;
    let app = world.push_image("app", "a1").await;
    run.invoke("push app", pushed, "image-pushed", push_event("app", "a1", &app)).await;
    let nginx = world.push_image("nginx", "a1").await;
    let last_push = push_event("nginx", "a1", &nginx);
    run.invoke("last push (starts the migration)", pushed, "image-pushed", last_push.clone()).await;
    run.invoke("last push (EventBridge delivers it again)", pushed, "image-pushed", last_push).await;

    let State::Migrating { task } = record("a1").await.state else { panic!("a1 is not migrating") };
    let key = ReleaseKey::new(SERVICE.parse().expect("service"), "a1".parse().expect("release"));
    let containers = [fixtures::ContainerExit::exited("app", 0), fixtures::ContainerExit::exited("nginx", 0)];
    let task_definition =
        record("a1").await.migration.and_then(|m| m.task_definition).expect("a migration task definition");
    let task_stopped = fixtures::ecs_task_stopped(&fixtures::TaskStopped {
        cluster: &ecs.cluster,
        task: task.as_str(),
        group: &key.tag(),
        started_by: &key.migration_started_by(),
        task_definition: &task_definition,
        overridden: "app",
        containers: &containers,
        stop_code: "EssentialContainerExited",
        version: 3,
    });
    run.proxy.task_stops(&task_stopped);
    run.invoke("migration exited 0", stopped, "migration-stopped", task_stopped).await;

    let State::Deploying { deployment } = record("a1").await.state else { panic!("a1 is not deploying") };
    let deployment = deployment.to_string();
    run.proxy.hook_invoked(&deployment, "acct-hook-1");
    run.invoke("AfterAllowTestTraffic hook", verify, "verify", fixtures::codedeploy_hook(&deployment, "acct-hook-1"))
        .await;
    if run.proxy.phase(&deployment) == Some(Phase::HookPassed) {
        run.proxy.waits(&deployment);
    }
    run.cli("convoy approve", &["approve", SERVICE, "a1", "--wait", "0"]);
    if run.proxy.phase(&deployment) == Some(Phase::Shifting) {
        run.proxy.finish(&deployment);
    }
    let ended = fixtures::codedeploy_state_change(&application, &group, &deployment, "SUCCESS");
    run.invoke("deployment SUCCESS", changed, "deployment-changed", ended).await;
    let released: Release = record("a1").await;
    let probes = released.verification.as_ref().map_or(0, |v| v.probes.len());
    let account_steps = run.steps.len();

    // The last hand-off: b1 deploys (no migration), b2 queues behind it, b1's end starts b2.
    for release in ["b1", "b2"] {
        for image in ["app", "nginx"] {
            world.push_image(image, release).await;
        }
        let key_name = format!("releases/{SERVICE}/{release}.json");
        let (version, size) = world.upload(&key_name, &manifest(release, false)).await;
        let upload = fixtures::s3_eventbridge(&world.bucket, &key_name, version.as_deref(), size);
        run.invoke(&format!("{release} uploaded"), uploaded, "manifest-uploaded", upload).await;
    }
    let queued = matches!(record("b2").await.state, State::Queued { .. });
    let State::Deploying { deployment: holder } = record("b1").await.state else { panic!("b1 is not deploying") };
    run.proxy.ended_elsewhere(holder.as_str(), Phase::Succeeded);
    let ended = fixtures::codedeploy_state_change(&application, &group, holder.as_str(), "SUCCESS");
    run.invoke("holder b1 ends (starts queued b2)", changed, "deployment-changed", ended).await;

    print_account(&run.steps[..account_steps], &inits, &released);
    println!("\n## hand-offs Convoy owns, on moto (from the event's delivery to the AWS call it leads to)");
    println!("{:<58} {:>10}", "hand-off", "ms");
    let probe_wait = Duration::from_millis(PROBE_INTERVAL_MS * probes.saturating_sub(1) as u64);
    let rows = [
        ("last push → RunTask", run.handoff("last push (starts the migration)", "RunTask")),
        ("migration exit → CreateDeployment", run.handoff("migration exited 0", "CreateDeployment")),
        (
            "hook → answer (PutLifecycleEventHookExecutionStatus)",
            run.handoff("AfterAllowTestTraffic hook", "PutLifecycleEventHookExecutionStatus")
                .map(|d| d.saturating_sub(probe_wait)),
        ),
        ("approval (convoy approve) → ContinueDeployment", run.handoff("convoy approve", "ContinueDeployment")),
        (
            "holder's end → queued release's CreateDeployment",
            run.handoff("holder b1 ends (starts queued b2)", "CreateDeployment"),
        ),
    ];
    for (label, took) in rows {
        match took {
            Some(d) => println!("{label:<58} {:>10.1}", ms(d)),
            None => println!("{label:<58} {:>10}", "no call"),
        }
    }
    println!(
        "(hook → answer minus the probes' own intervals: {probes} probes, {} ms between them, {} ms taken off; \
         b2 was {} behind b1 before its end; approval is the `convoy` CLI process, from its start)",
        PROBE_INTERVAL_MS,
        ms(probe_wait),
        if queued { "queued" } else { "NOT queued" }
    );
}

fn print_account(steps: &[Step], inits: &[(&str, Duration)], released: &Release) {
    let memory_mb = template_memory_mb();
    let gb = memory_mb as f64 / 1024.0;
    println!(
        "\n## per-release account: release a1 ({}) through the real binaries, {memory_mb} MB (template.yaml), on moto",
        released.state
    );
    println!("{:<42} {:<20} {:>8} {:>8}  AWS requests", "step", "function", "wall ms", "billed");
    let mut invocations = 0u64;
    let mut billed_ms = 0u64;
    let mut all: Vec<&Request> = Vec::new();
    for step in steps {
        let billed_here = step.function.map(|_| billed(step.wall));
        if billed_here.is_some() {
            invocations += 1;
        }
        billed_ms += billed_here.unwrap_or(0);
        let ops: Vec<String> = step.requests.iter().map(|r| format!("{}:{}", r.service, r.operation)).collect();
        println!(
            "{:<42} {:<20} {:>8.1} {:>8}  {} {}",
            step.label,
            step.function.unwrap_or("(operator's CLI)"),
            ms(step.wall),
            billed_here.map_or("-".into(), |b| b.to_string()),
            step.requests.len(),
            ops.join(" ")
        );
        all.extend(&step.requests);
    }
    let init_ms: u64 = inits.iter().map(|(_, d)| billed(*d)).sum();
    println!(
        "init (one cold start per function, billed since 2025-08-01): {}",
        inits.iter().map(|(n, d)| format!("{n} {}", billed(*d))).collect::<Vec<_>>().join(", ")
    );

    println!("\nAWS requests by service and operation (functions and CLI):");
    let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for r in &all {
        *counts.entry((r.service.clone(), r.operation.clone())).or_default() += 1;
    }
    let (mut s3_cost, mut s3_count, mut custom_events) = (0.0, 0, 0u64);
    for ((service, operation), n) in &counts {
        println!("  {service:<12} {operation:<40} {n:>4}");
        if service == "s3" {
            s3_cost += *n as f64 * s3_price(operation);
            s3_count += n;
        }
        if service == "events" && operation == "PutEvents" {
            custom_events += n;
        }
    }
    let total_ms = billed_ms + init_ms;
    let gb_s = total_ms as f64 / 1000.0 * gb;
    let lambda_duration = gb_s * price::LAMBDA_ARM_GB_S;
    let lambda_requests = invocations as f64 * price::LAMBDA_REQUEST;
    let events = custom_events as f64 * price::EVENTBRIDGE_CUSTOM;
    // Every function but verify (which CodeDeploy invokes itself) is a target of an EventBridge
    // rule on an AWS service's event (template.yaml).
    let delivered = steps.iter().filter(|s| s.function.is_some_and(|f| f != "verify")).count();
    let convoy_total = lambda_duration + lambda_requests + s3_cost + events;
    println!("  total {} requests; ECR, ECS and CodeDeploy API requests carry no charge", all.len());

    println!("\n## cost of one release (US East prices, on demand, before the free tier)");
    println!("{:<74} {:>12}", "Convoy", "USD");
    println!(
        "{:<74} {:>12.8}",
        format!("Lambda arm64 duration: {billed_ms} ms handlers + {init_ms} ms init × {memory_mb} MB = {gb_s:.4} GB-s"),
        lambda_duration
    );
    println!("{:<74} {:>12.8}", format!("Lambda requests: {invocations} invocations"), lambda_requests);
    println!(
        "{:<74} {:>12.8}",
        format!("S3 requests: {s3_count} (PUT/LIST $0.005, GET/HEAD $0.0004 per 1,000)"),
        s3_cost
    );
    println!(
        "{:<74} {:>12.8}",
        format!("EventBridge: {delivered} AWS service events (free), {custom_events} custom"),
        events
    );
    println!("{:<74} {:>12.8}", "total", convoy_total);
    let pipeline_minutes = SEED_SOURCE_MINUTES + SEED_BUILD_MINUTES + SEED_DEPLOY_MINUTES;
    let pipeline = pipeline_minutes * price::PIPELINE_ACTION_MINUTE;
    let build = SEED_BUILD_MINUTES * price::CODEBUILD_SMALL_MINUTE;
    let seed_s3 = SEED_S3_PUTS * price::S3_TIER1 + SEED_S3_GETS * price::S3_TIER2;
    let seed_total = pipeline + build + seed_s3;
    println!("{:<74} {:>12}", "the seeds' way (CodePipeline V2 + CodeBuild per release)", "USD");
    println!(
        "{:<74} {:>12.8}",
        format!(
            "action minutes: source {SEED_SOURCE_MINUTES} + build {SEED_BUILD_MINUTES} + deploy {SEED_DEPLOY_MINUTES} × $0.002"
        ),
        pipeline
    );
    println!("{:<74} {:>12.8}", format!("CodeBuild general1.small: {SEED_BUILD_MINUTES} min × $0.005"), build);
    println!("{:<74} {:>12.8}", format!("S3 artifact requests: {SEED_S3_PUTS} PUT + {SEED_S3_GETS} GET"), seed_s3);
    println!("{:<74} {:>12.8}", "total", seed_total);
    println!(
        "Convoy costs {:.5}% of the seeds' way ({:.0}× less). Not counted on either side: the migration's \
         ECS task and the deployment's tasks (the same both ways), CloudWatch Logs, storage.",
        convoy_total / seed_total * 100.0,
        seed_total / convoy_total
    );
    println!(
        "Prices: aws.amazon.com/lambda/pricing (Arm $0.0000133334/GB-s, $0.20/1M requests), /s3/pricing, \
         /eventbridge/pricing, /codepipeline/pricing (V2 $0.002/action minute, rounded up per action), \
         /codebuild/pricing (general1.small $0.005/min); minutes assumed as shown."
    );
}

/// The image gate's cost per release: one release of two images under an image policy, one scan
/// still in progress when the last image is pinned, then ECR's "Image Scan" event that resumes it.
/// Prints each step's AWS requests and time, and the hand-off "scan event → RunTask".
pub async fn gate(bin: &Path) {
    let moto = Moto::shared();
    let id = format!("gate{}", std::process::id());
    let world = World::named(&format!("convoy-{id}"), &id).await;
    world.create_repositories(&["app", "nginx"]).await;
    let ecs = world.ecs_service(SERVICE, &["app", "nginx"]).await;
    let (application, group) = world.codedeploy(SERVICE).await;
    let proxy = StandIn::for_missing_operations(&moto.endpoint).await;
    let base = service_settings(SERVICE, &application, &group, "http://127.0.0.1:9", "manual", json!({}));
    let mut settings: Value = serde_json::from_str(&base).expect("settings");
    settings[SERVICE]["image_policy"] = json!({"max_severity": "HIGH"});
    let repositories = [world.repo("app"), world.repo("nginx")];
    let env = function_env(
        &world,
        &proxy.endpoint,
        &ecs.cluster,
        &[SERVICE.to_owned()],
        &repositories,
        &settings.to_string(),
    );
    let uploaded = LambdaProcess::spawn("manifest-uploaded", &bin.join("manifest-uploaded"), &env).await;
    let pushed = LambdaProcess::spawn("image-pushed", &bin.join("image-pushed"), &env).await;
    let mut run = Run { proxy, steps: Vec::new(), cli: PathBuf::new(), bucket: world.bucket.clone() };

    let app = world.push_image("app", "g1").await;
    let nginx = world.push_image("nginx", "g1").await;
    run.proxy.scan_in_progress(&world.repo("app"), &app);
    let findings = vec![crate::standin::ecr::ScanFinding::basic("CVE-2026-0003", "LOW")];
    run.proxy.scan_complete(&world.repo("nginx"), &nginx, findings.clone());
    let body = json!({"version": 1, "release": "g1", "service": SERVICE,
        "images": {"app": world.uri("app", "g1"), "nginx": world.uri("nginx", "g1")},
        "migration": {"container": "app", "command": ["./migrate"]}});
    let key_name = format!("releases/{SERVICE}/g1.json");
    let (version, size) = world.upload(&key_name, &body.to_string()).await;
    let upload = fixtures::s3_eventbridge(&world.bucket, &key_name, version.as_deref(), size);
    run.invoke("manifest uploaded (pins both, gates: app scanning)", &uploaded, "manifest-uploaded", upload).await;
    run.proxy.scan_complete(&world.repo("app"), &app, findings);
    let scanned = fixtures::ecr_scan(ACCOUNT, &world.repo("app"), &app);
    run.invoke("app's scan completed (gate passes)", &pushed, "image-pushed", scanned.clone()).await;
    run.invoke("app's scan event again (EventBridge)", &pushed, "image-pushed", scanned).await;

    println!("\n## the image gate per release (2 images, one scan in progress at first; {})", bin.display());
    println!("{:<52} {:>8}  AWS requests", "step", "wall ms");
    for step in &run.steps {
        let ops: Vec<String> = step.requests.iter().map(|r| format!("{}:{}", r.service, r.operation)).collect();
        println!("{:<52} {:>8.1}  {:>3}  {}", step.label, ms(step.wall), step.requests.len(), ops.join(" "));
    }
    let gate_calls: usize = run
        .steps
        .iter()
        .flat_map(|s| &s.requests)
        .filter(|r| r.operation == "DescribeImageScanFindings" || r.operation == "DescribeImageSigningStatus")
        .count();
    let took = run.handoff("app's scan completed (gate passes)", "RunTask");
    println!(
        "gate requests in all: {gate_calls} (DescribeImageScanFindings/DescribeImageSigningStatus); scan event → RunTask: {}",
        took.map_or("no call".to_owned(), |d| format!("{:.1} ms", ms(d)))
    );
}

/// A release of three services from one manifest (`sandbox_services::run_three_services`, the
/// worker by a rolling update, web by CodeDeploy blue/green approved by a person, then the
/// scheduler by a rolling update) through the release-built binaries: the AWS requests of each
/// step, each hand-off (one service through → the next one's start) and the cost beside the
/// seeds' way, where each service had its own pipeline (three executions).
pub async fn services() {
    let options = crate::sandbox::Options { id: format!("bench{}", std::process::id()), ..Default::default() };
    let finished = crate::sandbox_services::run_three_services(options).await.expect("the three-service release runs");
    println!(
        "\n## a release of three services (worker, web, scheduler; one manifest, one migration): {}",
        finished.release.state
    );
    println!("{:<62} {:>12}", "step (every request through the stand-in)", "AWS requests");
    for (step, requests) in &finished.steps {
        println!("{step:<62} {requests:>12}");
    }
    println!("\nhand-offs (one service through → the next one's start; the goal: under 1 s on moto)");
    for (handoff, took) in &finished.handoffs {
        println!("  {handoff:<66} {:>8.1} ms", ms(*took));
    }
    let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for (service, operation) in &finished.requests {
        *counts.entry((service.clone(), operation.clone())).or_default() += 1;
    }
    println!("\nAWS requests by service and operation:");
    let (mut s3_cost, mut s3_count, mut custom_events) = (0.0, 0, 0u64);
    for ((service, operation), n) in &counts {
        println!("  {service:<12} {operation:<40} {n:>4}");
        if service == "s3" {
            s3_cost += *n as f64 * s3_price(operation);
            s3_count += n;
        }
        if service == "events" && operation == "PutEvents" {
            custom_events += n;
        }
    }
    let memory_mb = template_memory_mb();
    let billed_ms: u64 = finished.invocations.iter().map(|(_, took)| billed(*took)).sum();
    let invocations = finished.invocations.len() as u64;
    let gb_s = billed_ms as f64 / 1000.0 * (memory_mb as f64 / 1024.0);
    let lambda = gb_s * price::LAMBDA_ARM_GB_S + invocations as f64 * price::LAMBDA_REQUEST;
    let events = custom_events as f64 * price::EVENTBRIDGE_CUSTOM;
    let convoy_total = lambda + s3_cost + events;
    println!("\n## cost of the three-service release (US East prices, on demand, before the free tier)");
    println!(
        "{:<74} {:>12.8}",
        format!("Lambda: {invocations} invocations, {billed_ms} ms billed × {memory_mb} MB = {gb_s:.4} GB-s"),
        lambda
    );
    println!("{:<74} {:>12.8}", format!("S3 requests: {s3_count}"), s3_cost);
    println!("{:<74} {:>12.8}", format!("EventBridge custom events: {custom_events}"), events);
    println!("{:<74} {:>12.8}", "Convoy total", convoy_total);
    let per_execution = (SEED_SOURCE_MINUTES + SEED_BUILD_MINUTES + SEED_DEPLOY_MINUTES)
        * price::PIPELINE_ACTION_MINUTE
        + SEED_BUILD_MINUTES * price::CODEBUILD_SMALL_MINUTE
        + SEED_S3_PUTS * price::S3_TIER1
        + SEED_S3_GETS * price::S3_TIER2;
    let seed_total = 3.0 * per_execution;
    println!(
        "{:<74} {:>12.8}",
        format!("the seeds' way: 3 pipeline executions (one per service) × {per_execution:.5}"),
        seed_total
    );
    println!(
        "Convoy costs {:.5}% of the seeds' way ({:.0}× less); the seeds' way also ran the migration once per \
         service's pipeline. Not counted: ECS tasks, CloudWatch Logs, storage (the same both ways).",
        convoy_total / seed_total * 100.0,
        seed_total / convoy_total
    );
}
