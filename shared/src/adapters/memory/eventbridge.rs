//! EventBridge: the release events published.

use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;

/// Release events, kept in order; `fail` makes every publish fail (EventBridge down).
#[derive(Default)]
pub struct MemoryEvents {
    published: Mutex<Vec<crate::notify::ReleaseChange>>,
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemoryEvents {
    /// Every change published so far, oldest first.
    pub fn published(&self) -> Vec<crate::notify::ReleaseChange> {
        lock(&self.published).clone()
    }
}

#[async_trait]
impl crate::ports::ReleaseEvents for MemoryEvents {
    async fn publish(&self, changes: &[crate::notify::ReleaseChange]) -> Result<(), crate::notify::PublishError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::notify::PublishError::Unavailable("the memory event bus is down".into()));
        }
        lock(&self.published).extend(changes.iter().cloned());
        Ok(())
    }
}
