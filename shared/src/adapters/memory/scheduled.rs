//! EventBridge Scheduler and rules: the scheduled tasks, each with what it runs, and every write.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::ports::{ScheduleError, ScheduledTasks};
use crate::scheduled::{Pointed, ScheduledTarget, ScheduledTask, is_of_family};

/// Schedules and rule targets: each target's task definition, `None` for a target that is not an
/// ECS task (a Lambda function, a queue); each write kept, in order.
#[derive(Default)]
pub struct MemoryScheduledTasks {
    targets: Mutex<BTreeMap<ScheduledTarget, Option<String>>>,
    writes: Mutex<Vec<(ScheduledTarget, String)>>,
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemoryScheduledTasks {
    /// Adds (or replaces) a target running `task_definition` (`None`: not an ECS task).
    pub fn put(&self, target: ScheduledTarget, task_definition: Option<&str>) {
        lock(&self.targets).insert(target, task_definition.map(str::to_owned));
    }

    /// Deletes a target, as someone deleting the schedule or rule would.
    pub fn delete(&self, target: &ScheduledTarget) {
        lock(&self.targets).remove(target);
    }

    /// What `target` runs now.
    pub fn runs(&self, target: &ScheduledTarget) -> Option<String> {
        lock(&self.targets).get(target).cloned().flatten()
    }

    /// Every write (`UpdateSchedule`, `PutTargets`), oldest first.
    pub fn writes(&self) -> Vec<(ScheduledTarget, String)> {
        lock(&self.writes).clone()
    }

    fn down(&self) -> Result<(), ScheduleError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ScheduleError::Unavailable("the memory scheduler is down".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl ScheduledTasks for MemoryScheduledTasks {
    async fn find(&self, family: &str) -> Result<Vec<ScheduledTask>, ScheduleError> {
        self.down()?;
        let targets = lock(&self.targets);
        Ok(targets
            .iter()
            .filter_map(|(target, runs)| {
                let runs = runs.as_ref().filter(|runs| is_of_family(runs, family))?;
                Some(ScheduledTask { target: target.clone(), task_definition: runs.clone() })
            })
            .collect())
    }

    async fn point(&self, target: &ScheduledTarget, revision: &str) -> Result<Pointed, ScheduleError> {
        self.down()?;
        let mut targets = lock(&self.targets);
        let Some(Some(runs)) = targets.get_mut(target) else {
            return Err(ScheduleError::NotFound(target.to_string()));
        };
        if runs == revision {
            return Ok(Pointed::Already);
        }
        let previous = std::mem::replace(runs, revision.to_owned());
        lock(&self.writes).push((target.clone(), revision.to_owned()));
        Ok(Pointed::Moved { previous })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TD: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition";

    fn schedule(name: &str) -> ScheduledTarget {
        ScheduledTarget::Schedule { group: "default".into(), name: name.into() }
    }

    fn rule(name: &str) -> ScheduledTarget {
        ScheduledTarget::Rule { bus: "default".into(), rule: name.into(), target_id: "1".into() }
    }

    fn tasks() -> MemoryScheduledTasks {
        let tasks = MemoryScheduledTasks::default();
        tasks.put(schedule("nightly"), Some(&format!("{TD}/report:6")));
        tasks.put(rule("hourly"), Some(&format!("{TD}/report:5")));
        tasks.put(schedule("other"), Some(&format!("{TD}/billing:2")));
        tasks.put(rule("lambda"), None);
        tasks
    }

    #[tokio::test]
    async fn find_returns_the_ecs_targets_of_the_family_only() {
        let found = tasks().find("report").await.unwrap();
        let targets: Vec<_> = found.iter().map(|t| t.target.clone()).collect();
        assert_eq!(targets, vec![schedule("nightly"), rule("hourly")]);
        assert_eq!(found[0].task_definition, format!("{TD}/report:6"));
    }

    #[tokio::test]
    async fn pointing_twice_at_the_same_revision_writes_once() {
        let tasks = tasks();
        let revision = format!("{TD}/report:7");
        let first = tasks.point(&schedule("nightly"), &revision).await.unwrap();
        let second = tasks.point(&schedule("nightly"), &revision).await.unwrap();
        assert_eq!(first, Pointed::Moved { previous: format!("{TD}/report:6") });
        assert_eq!(second, Pointed::Already);
        assert_eq!(tasks.writes(), vec![(schedule("nightly"), revision.clone())]);
        assert_eq!(tasks.runs(&schedule("nightly")), Some(revision));
    }

    #[tokio::test]
    async fn pointing_back_at_the_previous_revision_restores_it() {
        let tasks = tasks();
        let found = tasks.find("report").await.unwrap();
        let moves: Vec<_> =
            found.iter().map(|t| crate::scheduled::ScheduleMove::of(t, &format!("{TD}/report:7"))).collect();
        for moved in &moves {
            tasks.point(&moved.target, &moved.revision).await.unwrap();
        }
        for moved in &moves {
            tasks.point(&moved.target, &moved.previous).await.unwrap();
        }
        assert_eq!(tasks.runs(&schedule("nightly")), Some(format!("{TD}/report:6")));
        assert_eq!(tasks.runs(&rule("hourly")), Some(format!("{TD}/report:5")));
    }

    #[tokio::test]
    async fn pointing_a_deleted_or_non_ecs_target_is_not_found_and_writes_nothing() {
        let tasks = tasks();
        tasks.delete(&schedule("nightly"));
        let gone = tasks.point(&schedule("nightly"), &format!("{TD}/report:7")).await;
        assert!(matches!(gone, Err(ScheduleError::NotFound(_))), "{gone:?}");
        let lambda = tasks.point(&rule("lambda"), &format!("{TD}/report:7")).await;
        assert!(matches!(lambda, Err(ScheduleError::NotFound(_))), "{lambda:?}");
        assert!(tasks.writes().is_empty());
    }
}
