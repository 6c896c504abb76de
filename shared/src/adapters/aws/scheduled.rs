//! Scheduled tasks over EventBridge Scheduler (`ListSchedules`, `GetSchedule`, `UpdateSchedule`)
//! and EventBridge rules on the default bus (`ListRules`, `ListTargetsByRule`, `PutTargets`).
//!
//! - EventBridge Scheduler API Reference, `UpdateSchedule`: "EventBridge Scheduler uses all
//!   values, including empty values, specified in the request and overrides the existing
//!   schedule ... we recommend that you call the GetSchedule API operation and make a note of all
//!   optional parameters": so a point reads the schedule and sends every field back.
//! - `ListSchedules`: each `ScheduleSummary` names its target's ARN only (`TargetSummary`), so
//!   each schedule is read with `GetSchedule` for its `EcsParameters`.
//! - EventBridge API Reference, `PutTargets`: "If you update a target, ... the existing target is
//!   replaced by the new one": the target goes back as `ListTargetsByRule` returned it (the same
//!   SDK type), only `EcsParameters.TaskDefinitionArn` changed. It answers 200 with
//!   `FailedEntries` for a target it refused.

use async_trait::async_trait;
use aws_sdk_eventbridge::error::ProvideErrorMetadata;

use crate::ports::{ScheduleError, ScheduledTasks};
use crate::scheduled::{Pointed, ScheduledTarget, ScheduledTask, is_of_family};

/// The account's default event bus: the only one whose rules are searched.
pub const DEFAULT_BUS: &str = "default";

#[derive(Clone)]
pub struct EventBridgeSchedules {
    scheduler: aws_sdk_scheduler::Client,
    events: aws_sdk_eventbridge::Client,
}

impl EventBridgeSchedules {
    pub fn new(scheduler: aws_sdk_scheduler::Client, events: aws_sdk_eventbridge::Client) -> Self {
        Self { scheduler, events }
    }

    async fn schedules(&self, family: &str) -> Result<Vec<ScheduledTask>, ScheduleError> {
        let mut found = Vec::new();
        let mut pages = self.scheduler.list_schedules().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sorted)?;
            for summary in page.schedules() {
                let (Some(group), Some(name)) = (summary.group_name(), summary.name()) else { continue };
                let schedule = match self.scheduler.get_schedule().group_name(group).name(name).send().await {
                    Ok(schedule) => schedule,
                    // Deleted between the list and the read: nothing to move.
                    Err(err) if err.code() == Some("ResourceNotFoundException") => continue,
                    Err(err) => return Err(sorted(err)),
                };
                let Some(ecs) = schedule.target.as_ref().and_then(|t| t.ecs_parameters.as_ref()) else { continue };
                if is_of_family(&ecs.task_definition_arn, family) {
                    found.push(ScheduledTask {
                        target: ScheduledTarget::Schedule { group: group.to_owned(), name: name.to_owned() },
                        task_definition: ecs.task_definition_arn.clone(),
                    });
                }
            }
        }
        Ok(found)
    }

    async fn rules(&self, family: &str) -> Result<Vec<ScheduledTask>, ScheduleError> {
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .events
                .list_rules()
                .event_bus_name(DEFAULT_BUS)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(sorted)?;
            for rule in page.rules() {
                // A rule another AWS service manages refuses PutTargets (ManagedRuleException).
                let (Some(name), None) = (rule.name(), rule.managed_by()) else { continue };
                let targets = match self.targets(name).await {
                    Ok(targets) => targets,
                    // Deleted between the list and the read: nothing to move.
                    Err(ScheduleError::NotFound(_)) => continue,
                    Err(err) => return Err(err),
                };
                for target in targets {
                    let Some(ecs) = target.ecs_parameters() else { continue };
                    if is_of_family(ecs.task_definition_arn(), family) {
                        found.push(ScheduledTask {
                            target: ScheduledTarget::Rule {
                                bus: DEFAULT_BUS.to_owned(),
                                rule: name.to_owned(),
                                target_id: target.id().to_owned(),
                            },
                            task_definition: ecs.task_definition_arn().to_owned(),
                        });
                    }
                }
            }
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                return Ok(found);
            }
        }
    }

    async fn targets(&self, rule: &str) -> Result<Vec<aws_sdk_eventbridge::types::Target>, ScheduleError> {
        let mut targets = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = match self
                .events
                .list_targets_by_rule()
                .event_bus_name(DEFAULT_BUS)
                .rule(rule)
                .set_next_token(next.take())
                .send()
                .await
            {
                Ok(page) => page,
                Err(err) if err.code() == Some("ResourceNotFoundException") => {
                    return Err(ScheduleError::NotFound(format!("rule {DEFAULT_BUS}/{rule}")));
                }
                Err(err) => return Err(sorted(err)),
            };
            targets.extend(page.targets().iter().cloned());
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                return Ok(targets);
            }
        }
    }

    async fn point_schedule(&self, group: &str, name: &str, revision: &str) -> Result<Pointed, ScheduleError> {
        let gone = || ScheduleError::NotFound(format!("schedule {group}/{name}"));
        let schedule = match self.scheduler.get_schedule().group_name(group).name(name).send().await {
            Ok(schedule) => schedule,
            Err(err) if err.code() == Some("ResourceNotFoundException") => return Err(gone()),
            Err(err) => return Err(sorted(err)),
        };
        let mut target = schedule.target.ok_or_else(gone)?;
        let Some(ecs) = target.ecs_parameters.as_mut() else { return Err(gone()) };
        if ecs.task_definition_arn == revision {
            return Ok(Pointed::Already);
        }
        let previous = std::mem::replace(&mut ecs.task_definition_arn, revision.to_owned());
        // Every field GetSchedule returned goes back: UpdateSchedule resets any field left out.
        let update = self
            .scheduler
            .update_schedule()
            .name(name)
            .group_name(group)
            .set_schedule_expression(schedule.schedule_expression)
            .set_schedule_expression_timezone(schedule.schedule_expression_timezone)
            .set_start_date(schedule.start_date)
            .set_end_date(schedule.end_date)
            .set_description(schedule.description)
            .set_state(schedule.state)
            .set_kms_key_arn(schedule.kms_key_arn)
            .set_flexible_time_window(schedule.flexible_time_window)
            .set_action_after_completion(schedule.action_after_completion)
            .target(target);
        match update.send().await {
            Ok(_) => Ok(Pointed::Moved { previous }),
            Err(err) if err.code() == Some("ResourceNotFoundException") => Err(gone()),
            Err(err) => Err(sorted(err)),
        }
    }

    async fn point_rule(&self, rule: &str, target_id: &str, revision: &str) -> Result<Pointed, ScheduleError> {
        let gone = || ScheduleError::NotFound(format!("rule {DEFAULT_BUS}/{rule} target {target_id}"));
        let targets = self.targets(rule).await?;
        let mut target = targets.into_iter().find(|t| t.id() == target_id).ok_or_else(gone)?;
        let Some(ecs) = target.ecs_parameters.as_mut() else { return Err(gone()) };
        if ecs.task_definition_arn == revision {
            return Ok(Pointed::Already);
        }
        let previous = std::mem::replace(&mut ecs.task_definition_arn, revision.to_owned());
        let answer = match self.events.put_targets().event_bus_name(DEFAULT_BUS).rule(rule).targets(target).send().await
        {
            Ok(answer) => answer,
            Err(err) if err.code() == Some("ResourceNotFoundException") => return Err(gone()),
            Err(err) => return Err(sorted(err)),
        };
        if let Some(failed) = answer.failed_entries().first() {
            let code = failed.error_code().unwrap_or("unknown");
            let why =
                format!("PutTargets {rule}/{target_id}: {code}: {}", failed.error_message().unwrap_or("no message"));
            return Err(if code == "ConcurrentModificationException" || code.contains("Internal") {
                ScheduleError::Unavailable(why.into())
            } else {
                ScheduleError::Rejected(why)
            });
        }
        Ok(Pointed::Moved { previous })
    }
}

/// Codes that are refusals for good (the rest, throttling and conflicts among them, may pass later).
const REJECTIONS: &[&str] = &[
    "ValidationException",
    "AccessDeniedException",
    "ManagedRuleException",
    "LimitExceededException",
    "ServiceQuotaExceededException",
];

fn sorted<E, R>(err: aws_sdk_s3::error::SdkError<E, R>) -> ScheduleError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    super::sort(err, Some(REJECTIONS), ScheduleError::Rejected, ScheduleError::Unavailable)
}

#[async_trait]
impl ScheduledTasks for EventBridgeSchedules {
    async fn find(&self, family: &str) -> Result<Vec<ScheduledTask>, ScheduleError> {
        let mut found = self.schedules(family).await?;
        found.extend(self.rules(family).await?);
        found.sort_by(|a, b| a.target.cmp(&b.target));
        Ok(found)
    }

    async fn point(&self, target: &ScheduledTarget, revision: &str) -> Result<Pointed, ScheduleError> {
        match target {
            ScheduledTarget::Schedule { group, name } => self.point_schedule(group, name, revision).await,
            ScheduledTarget::Rule { bus, rule, target_id } if bus == DEFAULT_BUS => {
                self.point_rule(rule, target_id, revision).await
            }
            ScheduledTarget::Rule { bus, .. } => {
                Err(ScheduleError::Rejected(format!("rules on the event bus {bus} are not moved (default bus only)")))
            }
        }
    }
}
