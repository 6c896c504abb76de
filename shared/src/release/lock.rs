//! A service's deploy lock: one release deploys at a time; a newer ready release waits behind the
//! holder, and an older one that has not started is superseded. Pure: the service layer stores the
//! lock with conditional writes and applies these decisions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::ReleaseId;

/// What the service's deploy lock answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockDecision {
    /// This release holds the lock: it may deploy.
    Acquired,
    /// Another release deploys; this one waits.
    HeldBy(ReleaseId),
    /// A newer release deploys or waits to: this one never will.
    SupersededBy(ReleaseId),
}

/// Who holds a service's deploy lock, and the newest releases that deployed or wait.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeployLock {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<LockEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_started: Option<LockEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_waiting: Option<LockEntry>,
}

/// A release and when it was opened (deploy order follows it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LockEntry {
    pub opened_at: DateTime<Utc>,
    pub release: ReleaseId,
    /// The group whose release holds (or waits for) the lock, when a group's does: its record is
    /// `<group>/<release>`, not `<service>/<release>` (the record a freed lock wakes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<crate::names::ServiceName>,
}

impl DeployLock {
    /// What `entry` gets when it asks for the lock, and the lock to store if it changed.
    pub fn acquire(&self, entry: &LockEntry) -> (LockDecision, Option<DeployLock>) {
        if self.holder.as_ref().is_some_and(|h| h.release == entry.release) {
            return (LockDecision::Acquired, None);
        }
        for newer in [&self.newest_started, &self.newest_waiting].into_iter().flatten() {
            if newer > entry {
                return (LockDecision::SupersededBy(newer.release.clone()), None);
            }
        }
        let mut next = self.clone();
        if let Some(holder) = &self.holder {
            next.newest_waiting = Some(entry.clone());
            let changed = (next != *self).then_some(next);
            return (LockDecision::HeldBy(holder.release.clone()), changed);
        }
        next.holder = Some(entry.clone());
        next.newest_started = Some(entry.clone());
        if next.newest_waiting.as_ref() == Some(entry) {
            next.newest_waiting = None;
        }
        (LockDecision::Acquired, Some(next))
    }

    /// The lock after `release` stops deploying (unchanged unless it held it).
    pub fn release(&self, release: &ReleaseId) -> Option<DeployLock> {
        if self.holder.as_ref().is_some_and(|h| h.release == *release) {
            return Some(DeployLock { holder: None, ..self.clone() });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::test_support::t;

    fn entry(release: &str, minute: i64) -> LockEntry {
        LockEntry { opened_at: t(minute * 60), release: release.parse().unwrap(), group: None }
    }

    #[test]
    fn a_free_lock_is_acquired() {
        let (decision, next) = DeployLock::default().acquire(&entry("a", 1));
        assert_eq!(decision, LockDecision::Acquired);
        assert_eq!(next.unwrap().holder, Some(entry("a", 1)));
    }

    #[test]
    fn the_holder_acquires_again_without_a_write() {
        let lock = DeployLock::default().acquire(&entry("a", 1)).1.unwrap();
        assert_eq!(lock.acquire(&entry("a", 1)), (LockDecision::Acquired, None));
    }

    #[test]
    fn a_newer_release_waits_for_the_holder() {
        let lock = DeployLock::default().acquire(&entry("a", 1)).1.unwrap();
        let (decision, next) = lock.acquire(&entry("b", 2));
        assert_eq!(decision, LockDecision::HeldBy("a".parse().unwrap()));
        assert_eq!(next.unwrap().newest_waiting, Some(entry("b", 2)));
    }

    #[test]
    fn an_older_release_is_superseded_by_one_that_started() {
        let lock = DeployLock::default().acquire(&entry("b", 2)).1.unwrap();
        let released = lock.release(&"b".parse().unwrap()).unwrap();
        assert_eq!(released.acquire(&entry("a", 1)).0, LockDecision::SupersededBy("b".parse().unwrap()));
    }

    #[test]
    fn an_older_waiting_release_is_superseded_by_a_newer_waiting_one() {
        let lock = DeployLock::default().acquire(&entry("a", 1)).1.unwrap();
        let lock = lock.acquire(&entry("c", 3)).1.unwrap();
        assert_eq!(lock.acquire(&entry("b", 2)).0, LockDecision::SupersededBy("c".parse().unwrap()));
    }

    #[test]
    fn the_newest_waiting_release_takes_the_freed_lock() {
        let lock = DeployLock::default().acquire(&entry("a", 1)).1.unwrap();
        let lock = lock.acquire(&entry("c", 3)).1.unwrap();
        let freed = lock.release(&"a".parse().unwrap()).unwrap();
        let (decision, next) = freed.acquire(&entry("c", 3));
        assert_eq!(decision, LockDecision::Acquired);
        assert_eq!(next.unwrap().newest_waiting, None);
    }

    #[test]
    fn only_the_holder_releases_the_lock() {
        let lock = DeployLock::default().acquire(&entry("a", 1)).1.unwrap();
        assert_eq!(lock.release(&"b".parse().unwrap()), None);
    }
}
