//! Waiting on a condition with a deadline, never on a sleep: the tests ask again until the
//! condition holds, and fail saying what they waited for once the deadline is past.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is asked again.
const POLL: Duration = Duration::from_millis(50);

/// Asks `check` until it answers `Some`, and returns that; panics naming `what` once `limit` has
/// passed without it.
pub async fn wait_until<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// [`wait_until`] for a condition that only holds or not.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, mut holds: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until(limit, what, || {
        let asked = holds();
        async move { asked.await.then_some(()) }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_condition_that_comes_true_is_returned_as_soon_as_it_holds() {
        let started = Instant::now();
        let mut asked = 0;
        let found = wait_until(Duration::from_secs(5), "the third answer", || {
            asked += 1;
            let answer = (asked == 3).then_some(asked);
            async move { answer }
        })
        .await;
        assert_eq!(found, 3);
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[tokio::test]
    #[should_panic(expected = "not within 200ms: what never happens")]
    async fn a_condition_that_never_holds_fails_at_its_deadline_saying_what_was_awaited() {
        wait_for(Duration::from_millis(200), "what never happens", || async { false }).await;
    }
}
