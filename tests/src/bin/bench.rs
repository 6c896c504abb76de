//! Convoy's benchmark (docs/measurements.md: scripts/bench): prints figures, asserts nothing, is not a test.
//! Runs the release-built function binaries (CONVOY_BENCH_BIN) through a local Lambda Runtime API
//! against moto, every AWS request passing a counting proxy.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use convoy_tests::fixtures;
use convoy_tests::moto::{ACCOUNT, Moto};
use convoy_tests::runtime::{LambdaProcess, Outcome, binary};
use convoy_tests::standin::StandIn;
use convoy_tests::world::{World, function_env as env, service_settings};
use serde_json::{Value, json};

const FUNCTIONS: [&str; 6] =
    ["image-pushed", "manifest-uploaded", "migration-stopped", "verify", "deployment-changed", "reconciler"];
const STARTS: usize = 25;

fn bin_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("CONVOY_BENCH_BIN").expect("CONVOY_BENCH_BIN: the folder of the release-built functions"),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One measured invocation: wall latency, the function's CPU time, the AWS requests it made.
async fn measure(function: &LambdaProcess, proxy: &StandIn, event: Value) -> (f64, f64, Vec<String>, Value) {
    let (cpu, requests) = (function.cpu_ns(), proxy.forwarded().len());
    let started = Instant::now();
    let outcome = function.invoke(event).await.expect("answer");
    let latency = ms(started.elapsed());
    let cpu = (function.cpu_ns() - cpu) as f64 / 1e6;
    let calls = proxy.forwarded()[requests..].to_vec();
    let value = match outcome {
        Outcome::Response(v) => v,
        Outcome::Error(e) => json!({ "error": e }),
    };
    (latency, cpu, calls, value)
}

#[tokio::main]
async fn main() {
    let bin = bin_dir();
    let moto = Moto::shared();
    let id = format!("bench{}", std::process::id());
    let world = World::named(&format!("convoy-{id}"), &id).await;
    world.create_repositories(&["app", "nginx"]).await;
    let ecs = world.ecs_service("web", &["app", "nginx"]).await;
    let (application, group) = world.codedeploy("web").await;
    let proxy = StandIn::for_missing_operations(&moto.endpoint).await;
    let settings = service_settings("web", &application, &group, "http://127.0.0.1:9", "manual", json!({}));
    let repositories = vec![world.repo("app"), world.repo("nginx")];
    let env = env(&world, &proxy.endpoint, &ecs.cluster, &["web".into()], &repositories, &settings);

    println!("Convoy benchmark — release binaries from {}", bin.display());
    if std::env::var("CONVOY_BENCH_ONLY").as_deref() == Ok("services") {
        convoy_tests::account::services().await;
        return;
    }
    if std::env::var("CONVOY_BENCH_ONLY").as_deref() == Ok("gate") {
        convoy_tests::account::gate(&bin).await;
        return;
    }
    settings_delivery(&bin, &world, &proxy, &ecs.cluster, &application, &group, &repositories).await;
    if std::env::var("CONVOY_BENCH_ONLY").as_deref() == Ok("settings") {
        return;
    }
    println!(
        "\n## init: process start → first Runtime API poll ({STARTS} starts each; SDK config and clients built as in production)"
    );
    println!("{:<20} {:>10} {:>10} {:>10}", "function", "median ms", "min ms", "max ms");
    for name in FUNCTIONS {
        let mut times = Vec::new();
        for _ in 0..STARTS {
            let process = LambdaProcess::spawn(name, &bin.join(name), &env).await;
            times.push(ms(process.init_time(Duration::from_secs(10)).await.expect("init")));
        }
        times.sort_by(f64::total_cmp);
        println!("{name:<20} {:>10.2} {:>10.2} {:>10.2}", times[times.len() / 2], times[0], times[times.len() - 1]);
    }

    println!("\n## per event, against moto (latency = invoke → answer; CPU = the function process's own CPU time)");
    let uploaded = LambdaProcess::spawn("manifest-uploaded", &bin.join("manifest-uploaded"), &env).await;
    let pushed = LambdaProcess::spawn("image-pushed", &bin.join("image-pushed"), &env).await;
    uploaded.init_time(Duration::from_secs(10)).await.expect("init");
    pushed.init_time(Duration::from_secs(10)).await.expect("init");
    let manifest = |release: &str| {
        json!({"version": 1, "release": release, "service": "web",
               "images": {"app": world.uri("app", release), "nginx": world.uri("nginx", release)},
               "migration": {"container": "app", "command": ["./migrate"]}})
        .to_string()
    };
    let upload = |release: &'static str| {
        let body = manifest(release);
        let world = &world;
        async move {
            let key = format!("releases/web/{release}.json");
            let (version, size) = world.upload(&key, &body).await;
            fixtures::s3_eventbridge(&world.bucket, &key, version.as_deref(), size)
        }
    };
    let push = |name: &'static str, tag: &'static str| {
        let world = &world;
        async move {
            let digest = world.push_image(name, tag).await;
            fixtures::ecr_push(ACCOUNT, &world.repo(name), tag, &digest, chrono::Utc::now())
        }
    };
    println!("{:<44} {:>10} {:>8} {:>9}  requests", "event", "latency ms", "CPU ms", "AWS calls");
    let mut rows = Vec::new();
    let first_upload = upload("b1").await;
    rows.push(("manifest upload, first invocation", measure(&uploaded, &proxy, first_upload).await));
    let second_upload = upload("b2").await;
    rows.push(("manifest upload, warm", measure(&uploaded, &proxy, second_upload).await));
    let app_b1 = push("app", "b1").await;
    rows.push(("push, not completing, first invocation", measure(&pushed, &proxy, app_b1.clone()).await));
    let app_b2 = push("app", "b2").await;
    rows.push(("push, not completing, warm", measure(&pushed, &proxy, app_b2).await));
    rows.push(("push, duplicate", measure(&pushed, &proxy, app_b1).await));
    let nginx_b1 = push("nginx", "b1").await;
    rows.push(("push, completing (starts the migration)", measure(&pushed, &proxy, nginx_b1).await));
    for (label, (latency, cpu, calls, _)) in &rows {
        println!("{label:<44} {latency:>10.2} {cpu:>8.2} {:>9}  {}", calls.len(), calls.join(", "));
    }
    drop((uploaded, pushed));

    // The operator's CLI: the release build beside the functions, else the debug one.
    let cli = Some(bin.join("convoy")).filter(|p| p.exists()).unwrap_or_else(|| binary("convoy"));
    convoy_tests::account::run(&bin, &cli).await;
    convoy_tests::account::gate(&bin).await;
    convoy_tests::account::services().await;

    load(&bin, moto).await;

    println!("\n## arm64 zips (scripts/package)");
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| bin.join("..").join(".."));
    for name in FUNCTIONS {
        let zip = target.join("lambda").join(name).join("bootstrap.zip");
        match std::fs::metadata(&zip) {
            Ok(meta) => println!("{name:<20} {:>9} bytes  {:>7.1} KB", meta.len(), meta.len() as f64 / 1024.0),
            Err(_) => println!("{name:<20} (no zip at {}: run scripts/package)", zip.display()),
        }
    }
}

/// Init time with 20 services' settings, delivered in the environment (CONVOY_SERVICE_SETTINGS,
/// the former way: over Lambda's 4 KB, so measured here only to compare) and as the settings file
/// in S3 that the stack names by version (one GetObject at start), starts alternating, side by side.
async fn settings_delivery(
    bin: &std::path::Path,
    world: &World,
    proxy: &StandIn,
    cluster: &str,
    application: &str,
    group: &str,
    repositories: &[String],
) {
    let mut services = serde_json::Map::new();
    for n in 0..20 {
        let name = if n == 0 { "web".to_owned() } else { format!("svc-{n:02}") };
        let (app, grp) =
            if n == 0 { (application.to_owned(), group.to_owned()) } else { ("shop".into(), name.clone()) };
        let one: Value =
            serde_json::from_str(&service_settings(&name, &app, &grp, "http://127.0.0.1:9", "manual", json!({})))
                .expect("JSON");
        services.insert(name.clone(), one[&name].clone());
    }
    let names: Vec<String> = services.keys().cloned().collect();
    let services = Value::Object(services);
    let in_env = services.to_string();
    let file = convoy_tests::world::settings_file(&services);
    let (version, _) = world.upload(convoy::settings_file::SETTINGS_KEY, &file).await;
    let version = version.expect("the state bucket keeps versions");
    let env_json = env(world, &proxy.endpoint, cluster, &names, repositories, &in_env);
    let mut from_file = env(world, &proxy.endpoint, cluster, &names, repositories, "");
    convoy_tests::world::read_settings_version(&mut from_file, &version);
    println!(
        "\n## settings delivery: init with 20 services' settings ({} bytes in the environment, {} bytes as the file; \
         Lambda's environment holds 4096 bytes, an SSM parameter 4096 (standard) or 8192 (advanced)); {STARTS} starts each, alternating",
        in_env.len(),
        file.len()
    );
    println!("{:<20} {:>16} {:>16} {:>10}", "function", "env JSON median", "S3 file median", "S3 − env");
    for name in FUNCTIONS {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..STARTS {
            for (times, env) in [(&mut a, &env_json), (&mut b, &from_file)] {
                let process = LambdaProcess::spawn(name, &bin.join(name), env).await;
                times.push(ms(process.init_time(Duration::from_secs(10)).await.expect("init")));
            }
        }
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        let (a, b) = (a[a.len() / 2], b[b.len() / 2]);
        println!("{name:<20} {a:>13.2} ms {b:>13.2} ms {:>7.2} ms", b - a);
    }
}

/// 10 releases × 10 images × 3 deliveries of every event, all delivered at once to a pool of
/// function processes (as Lambda would scale out), against moto.
async fn load(bin: &std::path::Path, moto: &Moto) {
    const RELEASES: usize = 10;
    const IMAGES: usize = 10;
    const COPIES: usize = 3;
    let id = format!("load{}", std::process::id());
    let world = World::named(&format!("convoy-{id}"), &id).await;
    let repos: Vec<String> = (0..IMAGES).map(|i| format!("r{i}")).collect();
    let repo_names: Vec<&str> = repos.iter().map(String::as_str).collect();
    world.create_repositories(&repo_names).await;
    let services: Vec<String> = (0..RELEASES).map(|i| format!("svc{i}")).collect();
    let containers: Vec<String> = (0..IMAGES).map(|i| format!("c{i}")).collect();
    let container_names: Vec<&str> = containers.iter().map(String::as_str).chain(["nginx"]).collect();
    let mut settings = serde_json::Map::new();
    let mut cluster = String::new();
    for service in &services {
        cluster = world.ecs_service(service, &container_names).await.cluster;
        let (application, group) = world.codedeploy(service).await;
        let one: Value = serde_json::from_str(&service_settings(
            service,
            &application,
            &group,
            "http://127.0.0.1:9",
            "manual",
            json!({}),
        ))
        .unwrap();
        settings.extend(one.as_object().unwrap().clone());
    }
    let proxy = StandIn::for_missing_operations(&moto.endpoint).await;
    let repositories: Vec<String> = repos.iter().map(|r| world.repo(r)).collect();
    let env = env(&world, &proxy.endpoint, &cluster, &services, &repositories, &Value::Object(settings).to_string());

    // What CI does: push every image and upload every manifest (in a shuffled order)...
    let mut events = Vec::new();
    for (r, service) in services.iter().enumerate() {
        let release = format!("l{r}");
        let images: serde_json::Map<String, Value> =
            (0..IMAGES).map(|i| (containers[i].clone(), json!(world.uri(&repos[i], &release)))).collect();
        let body = json!({"version": 1, "release": release, "service": service, "images": images}).to_string();
        let key = format!("releases/{service}/{release}.json");
        let (version, size) = world.upload(&key, &body).await;
        events.push((true, fixtures::s3_eventbridge(&world.bucket, &key, version.as_deref(), size)));
        for repo in &repos {
            let digest = world.push_image(repo, &release).await;
            events.push((false, fixtures::ecr_push(ACCOUNT, &world.repo(repo), &release, &digest, chrono::Utc::now())));
        }
    }
    // ...then EventBridge and S3 deliver every event three times, in any order, all at once.
    let mut deliveries: Vec<(bool, Value)> =
        events.iter().flat_map(|e| std::iter::repeat_n(e.clone(), COPIES)).collect();
    fastrand::shuffle(&mut deliveries);
    let pushers: Vec<Arc<LambdaProcess>> = futures_pool(bin, "image-pushed", 10, &env).await;
    let uploaders: Vec<Arc<LambdaProcess>> = futures_pool(bin, "manifest-uploaded", 3, &env).await;
    let calls_before = proxy.requests();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (n, (is_manifest, event)) in deliveries.iter().cloned().enumerate() {
        let function =
            if is_manifest { uploaders[n % uploaders.len()].clone() } else { pushers[n % pushers.len()].clone() };
        tasks.push(tokio::spawn(async move { function.invoke(event).await }));
    }
    let mut retry = Vec::new();
    for (task, delivery) in tasks.into_iter().zip(deliveries.iter()) {
        if !matches!(task.await, Ok(Ok(Outcome::Response(_)))) {
            retry.push(delivery.clone());
        }
    }
    let failed = retry.len();
    // AWS retries a failed asynchronous invocation; so does the bench, up to twice.
    for _ in 0..2 {
        let mut again = Vec::new();
        for (is_manifest, event) in std::mem::take(&mut retry) {
            let function = if is_manifest { &uploaders[0] } else { &pushers[0] };
            if !matches!(function.invoke(event.clone()).await, Ok(Outcome::Response(_))) {
                again.push((is_manifest, event));
            }
        }
        retry = again;
    }
    let wall = started.elapsed();
    let calls = proxy.requests() - calls_before;

    let store = convoy::adapters::aws::S3Store::new(
        convoy::adapters::aws::s3_client(
            &world.sdk,
            &convoy::config::StoreSettings { state_bucket: world.bucket.clone(), force_path_style: true },
        ),
        &world.bucket,
    );
    use convoy::ports::ReleaseStore;
    let (mut lost, mut doubled, mut deployments) = (0, 0, 0);
    for (r, service) in services.iter().enumerate() {
        let key = convoy::names::ReleaseKey::new(service.parse().unwrap(), format!("l{r}").parse().unwrap());
        let record = store.load(&key).await.unwrap().expect("a record").release;
        let ready = record.timeline.iter().filter(|e| e.event == "ready").count();
        let started = record.timeline.iter().filter(|e| e.event == "deployment-started").count();
        deployments += started;
        match (ready, started) {
            (1, 1) => {}
            (0, _) | (_, 0) => lost += 1,
            _ => doubled += 1,
        }
    }
    println!(
        "\n## load: {RELEASES} releases × {IMAGES} images, every event delivered {COPIES}×, all at once (10 image-pushed + 3 manifest-uploaded processes)"
    );
    println!("deliveries          {}", deliveries.len());
    println!("wall time           {:.0} ms", ms(wall));
    println!("events per second   {:.0}", deliveries.len() as f64 / wall.as_secs_f64());
    println!("AWS requests        {calls} ({:.1} per delivery)", calls as f64 / deliveries.len() as f64);
    println!("failed invocations  {failed}, still failing after two retries {}", retry.len());
    println!(
        "ready transitions   lost {lost}, doubled {doubled}; deployments started {deployments} for {RELEASES} releases"
    );
}

async fn futures_pool(
    bin: &std::path::Path,
    name: &str,
    size: usize,
    env: &[(String, String)],
) -> Vec<Arc<LambdaProcess>> {
    let mut pool = Vec::new();
    for _ in 0..size {
        let process = LambdaProcess::spawn(name, &bin.join(name), env).await;
        process.init_time(Duration::from_secs(10)).await.expect("init");
        pool.push(Arc::new(process));
    }
    pool
}
