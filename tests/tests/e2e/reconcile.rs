//! The reconciler's pace, on the in-memory fakes: how many releases it visits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use convoy::error::RegistryError;
use convoy::ports::{Lookup, Registry};
use convoy::release::{ImageKey, State};

use crate::scenario::*;

/// ECR as the reconciler meets it: each look-up takes a while, and the most asked at once is kept.
struct Slow {
    inner: Arc<dyn Registry>,
    in_flight: AtomicUsize,
    most: AtomicUsize,
    asked: AtomicUsize,
}

#[async_trait]
impl Registry for Slow {
    async fn resolve(&self, images: &[ImageKey]) -> Result<Lookup, RegistryError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.inner.resolve(images).await
    }
}

/// 40 releases still collecting (each visit looks its images up in ECR again): the reconciler
/// visits them 16 at a time (docs/concepts.md, "How a release flows"; `CONCURRENT_VISITS`), never more,
/// and visits each. On tokio's paused clock, so the look-ups' time costs nothing.
#[tokio::test(start_paused = true)]
async fn the_reconciler_visits_sixteen_releases_at_a_time_and_every_one() {
    let mut backend = MemoryBackend::new(&["app".to_owned()]);
    for n in 0..40 {
        let release = format!("c{n}");
        let manifest = manifest_v1(&backend, &release, &["app".to_owned()], false);
        let upload = backend.upload(&format!("releases/web/{release}.json"), &manifest).await;
        invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    }
    let slow =
        Arc::new(Slow { inner: backend.convoy.registry.clone(), in_flight: 0.into(), most: 0.into(), asked: 0.into() });
    backend.convoy.registry = slow.clone();
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(slow.most.load(Ordering::SeqCst), 16, "16 visits at a time");
    assert_eq!(slow.asked.load(Ordering::SeqCst), 40, "each release visited once");
    for n in 0..40 {
        let record = backend.record(&release_key(&format!("c{n}"))).await.unwrap();
        assert_eq!(record.state, State::Collecting);
    }
}
