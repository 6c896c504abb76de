//! Scheduled tasks that move with a release: EventBridge Scheduler schedules and EventBridge rules
//! whose ECS target runs a revision of a service's task family. When the release goes live they
//! run its revision; when it is rolled back, the one they ran before (kept in a [`ScheduleMove`]).

use serde::{Deserialize, Serialize};

/// Where an ECS `RunTask` target lives: a schedule (its group and name) or one target of a rule
/// on an event bus (EventBridge rules may have several targets; each moves on its own).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ScheduledTarget {
    Schedule {
        group: String,
        name: String,
    },
    Rule {
        bus: String,
        rule: String,
        #[serde(rename = "target-id")]
        target_id: String,
    },
}

impl std::fmt::Display for ScheduledTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScheduledTarget::Schedule { group, name } => write!(f, "schedule {group}/{name}"),
            ScheduledTarget::Rule { bus, rule, target_id } => write!(f, "rule {bus}/{rule} target {target_id}"),
        }
    }
}

/// A scheduled task found for a family: where it is and the task definition it runs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledTask {
    pub target: ScheduledTarget,
    /// The target's `EcsParameters.TaskDefinitionArn`, as AWS returned it.
    #[serde(rename = "task-definition")]
    pub task_definition: String,
}

/// What a release moved: kept in the record, so a rollback points `target` back at `previous`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleMove {
    pub target: ScheduledTarget,
    /// The task definition it ran before the release.
    pub previous: String,
    /// The release's revision.
    pub revision: String,
}

impl ScheduleMove {
    /// The move of `task` to `revision`.
    pub fn of(task: &ScheduledTask, revision: &str) -> Self {
        Self { target: task.target.clone(), previous: task.task_definition.clone(), revision: revision.to_owned() }
    }
}

/// What [`point`](crate::ports::ScheduledTasks::point) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pointed {
    /// It ran `previous`; it runs the revision now (one write).
    Moved { previous: String },
    /// It ran the revision already: nothing was written.
    Already,
}

/// Whether `task_definition` (an ECS task definition ARN, `...:task-definition/<family>:<n>`, or
/// one without the revision, which ECS reads as the family's latest) is of `family`.
pub fn is_of_family(task_definition: &str, family: &str) -> bool {
    let Some((_, named)) = task_definition.split_once(":task-definition/") else { return false };
    let named_family = named.split_once(':').map_or(named, |(family, _)| family);
    !family.is_empty() && named_family == family
}

#[cfg(test)]
mod tests {
    use super::*;

    const TD: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition";

    #[test]
    fn a_revision_of_the_family_is_of_the_family() {
        assert!(is_of_family(&format!("{TD}/report:7"), "report"));
        assert!(is_of_family(&format!("{TD}/report"), "report"));
    }

    #[test]
    fn a_family_that_only_starts_with_the_name_is_another_family() {
        assert!(!is_of_family(&format!("{TD}/report-nightly:3"), "report"));
        assert!(!is_of_family(&format!("{TD}/rep:3"), "report"));
        assert!(!is_of_family("arn:aws:lambda:eu-west-1:123456789012:function:report", "report"));
        assert!(!is_of_family(&format!("{TD}/report:1"), ""));
    }

    #[test]
    fn a_move_serialises_with_the_target_kind_and_reads_back_equal() {
        let task = ScheduledTask {
            target: ScheduledTarget::Rule { bus: "default".into(), rule: "nightly".into(), target_id: "run".into() },
            task_definition: format!("{TD}/report:6"),
        };
        let moved = ScheduleMove::of(&task, &format!("{TD}/report:7"));
        let json = serde_json::to_value(&moved).unwrap();
        assert_eq!(json["target"]["kind"], "rule");
        assert_eq!(json["target"]["target-id"], "run");
        assert_eq!(json["previous"], format!("{TD}/report:6"));
        assert_eq!(serde_json::from_value::<ScheduleMove>(json).unwrap(), moved);
    }
}
