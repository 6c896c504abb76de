//! Property-style runs of the readiness gate: for releases of 1 to 10 images, sampled orders of
//! (manifest upload, image pushes), every event delivered 1 to 3 times, deliveries of one moment
//! handled concurrently. Always: exactly one ready transition, digests equal to the pushed ones,
//! and exactly one migration task, or (with no migration declared) exactly one deployment; on the
//! fakes, each state change announced exactly once, the announcements one path from creation to
//! the record's state.
//! The same scenarios run on moto (real adapters) and on the in-memory fakes.

use std::collections::BTreeMap;
use std::sync::Arc;

use convoy::release::State;
use serde_json::Value;

use crate::scenario::*;

enum Action {
    Upload,
    Push(usize),
}

/// Runs one sampled scenario and checks the properties. `seed` makes it reproducible.
async fn run(backend: Arc<dyn Backend>, images: usize, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let release = format!("r{seed}");
    let containers: Vec<String> = (0..images).map(|i| format!("c{i}")).collect();
    let migration = rng.bool();
    let manifest = manifest_v1(backend.as_ref(), &release, &containers, migration);

    let mut actions: Vec<Action> = std::iter::once(Action::Upload).chain((0..images).map(Action::Push)).collect();
    rng.shuffle(&mut actions);
    let steps = actions.len();

    // Each event is delivered 1 to 3 times, at moments at or after the action that caused it.
    let mut deliveries: BTreeMap<usize, Vec<(bool, Value)>> = BTreeMap::new();
    let mut pushed = BTreeMap::new();
    for (step, action) in actions.iter().enumerate() {
        let (is_manifest, event) = match action {
            Action::Upload => (true, backend.upload(&format!("releases/web/{release}.json"), &manifest).await),
            Action::Push(i) => {
                let (digest, event) = backend.push(&containers[*i], &release).await;
                pushed.insert(containers[*i].clone(), digest);
                (false, event)
            }
        };
        for _ in 0..rng.usize(1..=3) {
            deliveries.entry(rng.usize(step..=steps)).or_default().push((is_manifest, event.clone()));
        }
        // Deliver what is due at this moment, concurrently, before the next action happens.
        deliver(&backend, deliveries.remove(&step).unwrap_or_default()).await;
    }
    for (_, due) in std::mem::take(&mut deliveries) {
        deliver(&backend, due).await;
    }

    let key = release_key(&release);
    let record = backend.record(&key).await.expect("a record");
    if migration {
        assert!(matches!(record.state, State::Migrating { .. }), "seed {seed}, {images} images: {}", record.state);
        let starts = record.timeline.iter().filter(|e| e.event == "migration-starting").count();
        assert_eq!(starts, 1, "one claim (seed {seed})");
        assert_eq!(backend.migration_tasks(&key).await, 1, "exactly one migration task (seed {seed})");
        assert_eq!(backend.deployments(&key).await, 0, "nothing deploys before the migration ends (seed {seed})");
    } else {
        assert!(matches!(record.state, State::Deploying { .. }), "seed {seed}, {images} images: {}", record.state);
        assert_eq!(backend.migration_tasks(&key).await, 0, "no migration task (seed {seed})");
        assert_eq!(backend.deployments(&key).await, 1, "exactly one deployment (seed {seed})");
    }
    let ready = record.timeline.iter().filter(|e| e.event == "ready").count();
    assert_eq!(ready, 1, "exactly one ready transition (seed {seed})");
    if let Some(published) = backend.published() {
        // Handlers run concurrently, so announcements may arrive out of order; followed from the
        // creation, they must make one path, each step once, ending at the record's state.
        let mut steps: Vec<(Option<String>, String)> =
            published.into_iter().filter(|c| c.release == release).map(|c| (c.from, c.to)).collect();
        let total = steps.len();
        let mut at: Option<String> = None;
        let mut path = Vec::new();
        while let Some(i) = steps.iter().position(|(from, _)| *from == at) {
            let (_, to) = steps.remove(i);
            path.push(to.clone());
            at = Some(to);
        }
        assert!(steps.is_empty(), "seed {seed}: announcements off the path {path:?}: {steps:?} (of {total})");
        assert_eq!(at.as_deref(), Some(convoy::notify::state_name(&record.state).as_str()), "seed {seed}: {path:?}");
        let mut unique = path.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), path.len(), "seed {seed}: a state announced twice: {path:?}");
    }
    for (container, digest) in &pushed {
        let pinned = record.images[&container.parse().unwrap()].digest.as_ref().expect("pinned");
        assert_eq!(pinned.as_str(), digest, "seed {seed}: {container} pinned to what was pushed");
    }
}

/// Delivers events at one moment, all at once, and counts the side effects they request.
async fn deliver(backend: &Arc<dyn Backend>, due: Vec<(bool, Value)>) {
    let tasks: Vec<_> = due
        .into_iter()
        .map(|(is_manifest, event)| {
            let backend = backend.clone();
            tokio::spawn(async move {
                let convoy = backend.convoy();
                let response = if is_manifest {
                    invoke_manifest_uploaded(convoy, event).await
                } else {
                    invoke_image_pushed(convoy, event).await
                };
                let response = response.expect("no delivery fails");
                REQUESTS.fetch_add(count_requests(&response), std::sync::atomic::Ordering::SeqCst);
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a delivery panicked");
    }
}

static REQUESTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_requests(response: &Value) -> usize {
    response.as_array().map_or(0, |reports| reports.iter().map(|r| r["requested"].as_array().map_or(0, Vec::len)).sum())
}

/// Runs scenarios with their own request counter: the next stage must be requested exactly once.
async fn check_scenarios(make: impl Fn(&[String]) -> futures_backend::Pending, cases: &[(usize, u64)]) {
    for &(images, seed) in cases {
        let containers: Vec<String> = (0..images).map(|i| format!("c{i}")).collect();
        let backend = make(&containers).await;
        let before = REQUESTS.load(std::sync::atomic::Ordering::SeqCst);
        run(backend, images, seed).await;
        let requested = REQUESTS.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert_eq!(requested, 1, "seed {seed}: the next stage was requested {requested} times");
    }
}

mod futures_backend {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;

    pub type Pending = Pin<Box<dyn Future<Output = Arc<dyn super::Backend>> + Send>>;
}

// The counter is process-wide: scenarios that count must not overlap.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_the_in_memory_fakes_every_sampled_order_is_ready_exactly_once() {
    let _serial = SERIAL.lock().await;
    let cases: Vec<(usize, u64)> = (1..=10).flat_map(|n| (0..20).map(move |s| (n, 1000 * n as u64 + s))).collect();
    check_scenarios(
        |containers| {
            let containers = containers.to_vec();
            Box::pin(async move { Arc::new(MemoryBackend::new(&containers)) as Arc<dyn Backend> })
        },
        &cases,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_moto_every_sampled_order_is_ready_exactly_once() {
    let _serial = SERIAL.lock().await;
    let cases: Vec<(usize, u64)> = (1..=10).flat_map(|n| [(n, 10 * n as u64), (n, 10 * n as u64 + 1)]).collect();
    check_scenarios(
        |containers| {
            let containers = containers.to_vec();
            Box::pin(async move { Arc::new(MotoBackend::new(&containers).await) as Arc<dyn Backend> })
        },
        &cases,
    )
    .await;
}
