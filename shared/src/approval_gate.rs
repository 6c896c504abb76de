//! What holds production traffic for the approval, as AWS configures it, and Convoy's rules about
//! it: a CodeDeploy deployment group's ready option ([`GroupWait`]) must wait for a person, and an
//! ECS native service's lifecycle hooks ([`NativeService`]) must verify with Convoy's function and
//! pause, rolling back (never continuing) when nobody decides in time. Checked before a start
//! claims anything, and by `convoy check`.

use crate::settings::EcsNativeTarget;

/// A CodeDeploy deployment group's `deploymentReadyOption`: with `STOP_DEPLOYMENT` and a wait
/// time, CodeDeploy holds the new version at READY_WAIT until `ContinueDeployment` (and stops the
/// deployment when nobody continues it in time); with `CONTINUE_DEPLOYMENT` (CodeDeploy's
/// default, also when the group sets nothing) it reroutes production traffic by itself as soon as
/// the hooks pass, and no approval ever happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupWait {
    /// `STOP_DEPLOYMENT`, `CONTINUE_DEPLOYMENT`; `None` when the group sets none.
    pub action_on_timeout: Option<String>,
    pub wait_minutes: i32,
}

impl GroupWait {
    /// A group that waits for a person: `STOP_DEPLOYMENT` with a wait time.
    pub fn waits_for_a_person(&self) -> bool {
        self.action_on_timeout.as_deref() == Some("STOP_DEPLOYMENT") && self.wait_minutes > 0
    }

    /// One line for `convoy status` and `convoy check`.
    pub fn describe(&self) -> String {
        let action = self.action_on_timeout.as_deref().unwrap_or("CONTINUE_DEPLOYMENT (unset)");
        if self.waits_for_a_person() {
            format!("waits for a person: {action} after {} min at READY_WAIT", self.wait_minutes)
        } else if self.action_on_timeout.as_deref() == Some("STOP_DEPLOYMENT") {
            format!("does not wait for a person: {action} with a wait time of {} min", self.wait_minutes)
        } else {
            format!("does not wait for a person: {action} reroutes production traffic once the hooks pass")
        }
    }

    /// Whether Convoy may start a deployment in this group for a release approved `auto` with
    /// `bake_seconds`. A group that waits always serves. One that does not serves only a release
    /// policy approves without bake time: Convoy would continue it at once after the verify hook
    /// passed, which is what CodeDeploy does by itself, and the hook still gates the reroute.
    /// `Err(why)` otherwise.
    pub fn serves(&self, auto: bool, bake_seconds: u64) -> Result<(), String> {
        if self.waits_for_a_person() || (auto && bake_seconds == 0) {
            return Ok(());
        }
        Err(format!(
            "the deployment group {}; Convoy needs blueGreenDeploymentConfiguration.deploymentReadyOption \
             actionOnTimeout STOP_DEPLOYMENT with waitTimeInMinutes > 0, so that the traffic shift waits for \
             the approval (only an auto approval without bake time may use CONTINUE_DEPLOYMENT)",
            self.describe()
        ))
    }
}

/// How an ECS service deploys, as far as Convoy's native checks need.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NativeService {
    /// `ECS` for ECS's own deployment controller (native blue/green needs it).
    pub controller: Option<String>,
    /// `BLUE_GREEN`, `ROLLING`, ...
    pub strategy: Option<String>,
    pub hooks: Vec<NativeHook>,
    /// The task definition the service runs (`taskDefinition`: the last `UpdateService`'s).
    pub task_definition: Option<String>,
    /// `deploymentConfiguration.deploymentCircuitBreaker` when it is enabled: whether it rolls a
    /// failed rolling update back.
    pub circuit_breaker: Option<bool>,
    /// `deploymentConfiguration.alarms` when enabled: the alarms that fail a rolling update, and
    /// whether they roll it back.
    pub alarms: Option<(Vec<String>, bool)>,
}

/// One lifecycle hook of a service's deployment configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeHook {
    /// `AWS_LAMBDA` (the default) or `PAUSE`.
    pub target_type: String,
    pub target: Option<String>,
    pub role: Option<String>,
    pub stages: Vec<String>,
    /// `timeoutConfiguration.action`: what ECS does when the hook is not resolved in time,
    /// `ROLLBACK` or `CONTINUE`; `None` when unset (ECS then rolls back).
    pub timeout_action: Option<String>,
    /// `timeoutConfiguration.timeoutInMinutes`; `None` when unset (ECS then waits 1440 minutes).
    pub timeout_minutes: Option<i32>,
}

impl NativeHook {
    /// ECS's default timeout of a lifecycle hook, in minutes.
    pub const DEFAULT_TIMEOUT_MINUTES: i32 = 1440;

    /// Whether ECS moves the deployment on by itself when the hook times out.
    pub fn continues_on_timeout(&self) -> bool {
        self.timeout_action.as_deref() == Some("CONTINUE")
    }

    /// What bounds the hook: `rolls back after 1440 min (ECS default)`.
    pub fn on_timeout(&self) -> String {
        let action = if self.continues_on_timeout() { "continues" } else { "rolls back" };
        let minutes = self.timeout_minutes.unwrap_or(Self::DEFAULT_TIMEOUT_MINUTES);
        let defaulted = match (&self.timeout_action, self.timeout_minutes) {
            (None, None) => " (ECS defaults)",
            (None, Some(_)) | (Some(_), None) => " (partly ECS defaults)",
            (Some(_), Some(_)) => "",
        };
        format!("{action} after {minutes} min{defaulted}")
    }
}

/// The deployment strategies of ECS native blue/green (all at once, linear, canary): each shifts
/// test traffic first and runs lifecycle hooks.
pub const BLUE_GREEN_STRATEGIES: [&str; 3] = ["BLUE_GREEN", "LINEAR", "CANARY"];

/// Whether `hook_target` (a Lambda ARN, possibly qualified) names `function` (a name or an ARN).
fn calls_function(hook_target: &str, function: &str) -> bool {
    let name_of = |arn: &str| -> String {
        match arn.split_once(":function:") {
            Some((_, rest)) => rest.split(':').next().unwrap_or_default().to_owned(),
            None => arn.to_owned(),
        }
    };
    hook_target == function || name_of(hook_target) == name_of(function)
}

/// What a service on the `ecs-native` method lacks, each item said the way an operator fixes it;
/// `Ok` when nothing.
pub fn check_native_service(service: &str, target: &EcsNativeTarget, described: &NativeService) -> Result<(), String> {
    let mut missing = Vec::new();
    if let Some(controller) = described.controller.as_deref().filter(|c| *c != "ECS") {
        missing.push(format!("its deployment controller is {controller}, not ECS"));
    }
    match described.strategy.as_deref() {
        Some(strategy) if BLUE_GREEN_STRATEGIES.contains(&strategy) => {}
        other => missing.push(format!(
            "its deployment strategy is {}, not BLUE_GREEN (or LINEAR or CANARY)",
            other.unwrap_or("unset (ROLLING)")
        )),
    }
    let verify = described.hooks.iter().find(|h| {
        h.target_type == "AWS_LAMBDA"
            && h.stages.iter().any(|s| s == "POST_TEST_TRAFFIC_SHIFT")
            && h.target.as_deref().is_some_and(|t| calls_function(t, &target.verify_function))
    });
    match verify {
        None => missing
            .push(format!("no AWS_LAMBDA lifecycle hook calls {} at POST_TEST_TRAFFIC_SHIFT", target.verify_function)),
        Some(hook) if hook.role.is_none() => {
            missing.push("the verify hook has no roleArn for ECS to invoke the function with".into())
        }
        // A verify hook that times out must not let the deployment go on unverified.
        Some(hook) if hook.continues_on_timeout() => missing
            .push(format!("the verify hook {}: set its timeoutConfiguration action to ROLLBACK", hook.on_timeout())),
        Some(_) => {}
    }
    match approval_hook(target, described) {
        None => {
            missing.push(format!("no PAUSE lifecycle hook at {} for the approval to wait at", target.approval_stage))
        }
        // ECS has no "wait for ever": a pause ends at its timeout, and with CONTINUE production
        // traffic would move without anyone approving.
        Some(hook) if hook.continues_on_timeout() => missing.push(format!(
            "the PAUSE hook at {} {}, shifting production traffic without an approval: set its \
             timeoutConfiguration action to ROLLBACK",
            target.approval_stage,
            hook.on_timeout()
        )),
        Some(_) => {}
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!("service {service} cannot deploy through ECS native blue/green: {}", missing.join("; ")))
}

/// The `PAUSE` hook the approval waits at.
fn approval_hook<'a>(target: &EcsNativeTarget, described: &'a NativeService) -> Option<&'a NativeHook> {
    described.hooks.iter().find(|h| h.target_type == "PAUSE" && h.stages.contains(&target.approval_stage))
}

/// What holds a checked native service's production traffic for the approval, and what bounds
/// the wait: ECS's per-hook timeout (its action, `ROLLBACK` by default, and its minutes, 1440 by
/// default). For `convoy check` and the record (`convoy status`).
pub(crate) fn native_gate(target: &EcsNativeTarget, described: &NativeService) -> String {
    match approval_hook(target, described) {
        Some(hook) => format!("ECS PAUSE hook at {} waits for a person; {}", target.approval_stage, hook.on_timeout()),
        None => format!("no PAUSE hook at {}", target.approval_stage),
    }
}

#[cfg(test)]
mod group_wait_tests {
    use super::GroupWait;

    fn group(action: Option<&str>, wait_minutes: i32) -> GroupWait {
        GroupWait { action_on_timeout: action.map(str::to_owned), wait_minutes }
    }

    #[test]
    fn a_group_that_stops_after_a_wait_time_waits_for_a_person() {
        assert!(group(Some("STOP_DEPLOYMENT"), 60).waits_for_a_person());
        assert_eq!(group(Some("STOP_DEPLOYMENT"), 60).serves(false, 0), Ok(()));
    }

    #[test]
    fn a_group_that_continues_by_itself_does_not_serve_a_manual_approval() {
        let refused = group(Some("CONTINUE_DEPLOYMENT"), 0).serves(false, 0).unwrap_err();
        assert!(refused.contains("CONTINUE_DEPLOYMENT reroutes production traffic once the hooks pass"), "{refused}");
    }

    #[test]
    fn a_group_that_sets_no_ready_option_continues_by_itself() {
        let unset = group(None, 0);
        assert!(!unset.waits_for_a_person());
        assert!(unset.describe().contains("CONTINUE_DEPLOYMENT (unset)"), "{}", unset.describe());
    }

    #[test]
    fn a_group_that_stops_without_a_wait_time_does_not_wait_for_a_person() {
        let refused = group(Some("STOP_DEPLOYMENT"), 0).serves(false, 0).unwrap_err();
        assert!(refused.contains("wait time of 0 min"), "{refused}");
    }

    #[test]
    fn an_auto_approval_without_bake_time_may_use_a_group_that_continues() {
        assert_eq!(group(Some("CONTINUE_DEPLOYMENT"), 0).serves(true, 0), Ok(()));
    }

    #[test]
    fn an_auto_approval_with_bake_time_needs_a_group_that_waits() {
        assert!(group(Some("CONTINUE_DEPLOYMENT"), 0).serves(true, 300).is_err());
    }
}

#[cfg(test)]
mod native_tests {
    use super::*;

    fn target() -> EcsNativeTarget {
        EcsNativeTarget {
            verify_function: "convoy-verify".into(),
            approval_stage: "PRE_PRODUCTION_TRAFFIC_SHIFT".into(),
        }
    }

    fn ready() -> NativeService {
        NativeService {
            controller: Some("ECS".into()),
            strategy: Some("BLUE_GREEN".into()),
            hooks: vec![
                NativeHook {
                    target_type: "AWS_LAMBDA".into(),
                    target: Some("arn:aws:lambda:us-east-1:123456789012:function:convoy-verify".into()),
                    role: Some("arn:aws:iam::123456789012:role/ecs-hooks".into()),
                    stages: vec!["POST_TEST_TRAFFIC_SHIFT".into()],
                    timeout_action: None,
                    timeout_minutes: None,
                },
                NativeHook {
                    target_type: "PAUSE".into(),
                    target: None,
                    role: None,
                    stages: vec!["PRE_PRODUCTION_TRAFFIC_SHIFT".into()],
                    timeout_action: None,
                    timeout_minutes: None,
                },
            ],
            ..NativeService::default()
        }
    }

    #[test]
    fn a_blue_green_service_with_the_verify_hook_and_a_pause_hook_passes_the_checks() {
        assert_eq!(check_native_service("web", &target(), &ready()), Ok(()));
        let canary = NativeService { strategy: Some("CANARY".into()), ..ready() };
        assert_eq!(check_native_service("web", &target(), &canary), Ok(()));
    }

    #[test]
    fn a_rolling_service_without_hooks_is_told_everything_it_lacks() {
        let rolling = NativeService {
            controller: Some("ECS".into()),
            strategy: Some("ROLLING".into()),
            ..NativeService::default()
        };
        let err = check_native_service("web", &target(), &rolling).unwrap_err();
        assert_eq!(
            err,
            "service web cannot deploy through ECS native blue/green: its deployment strategy is ROLLING, not \
             BLUE_GREEN (or LINEAR or CANARY); no AWS_LAMBDA lifecycle hook calls convoy-verify at \
             POST_TEST_TRAFFIC_SHIFT; no PAUSE lifecycle hook at PRE_PRODUCTION_TRAFFIC_SHIFT for the approval to \
             wait at"
        );
    }

    #[test]
    fn a_hook_calling_another_function_or_without_a_role_does_not_count() {
        let mut other = ready();
        other.hooks[0].target = Some("arn:aws:lambda:us-east-1:123456789012:function:someone-else".into());
        assert!(check_native_service("web", &target(), &other).unwrap_err().contains("no AWS_LAMBDA lifecycle hook"));
        let mut roleless = ready();
        roleless.hooks[0].role = None;
        assert!(check_native_service("web", &target(), &roleless).unwrap_err().contains("no roleArn"));
    }

    #[test]
    fn a_pause_hook_that_continues_on_timeout_is_refused() {
        let mut continuing = ready();
        continuing.hooks[1].timeout_action = Some("CONTINUE".into());
        continuing.hooks[1].timeout_minutes = Some(30);
        let err = check_native_service("web", &target(), &continuing).unwrap_err();
        assert!(err.contains("the PAUSE hook at PRE_PRODUCTION_TRAFFIC_SHIFT continues after 30 min"), "{err}");
        assert!(err.contains("set its timeoutConfiguration action to ROLLBACK"), "{err}");
    }

    #[test]
    fn a_verify_hook_that_continues_on_timeout_is_refused() {
        let mut continuing = ready();
        continuing.hooks[0].timeout_action = Some("CONTINUE".into());
        let err = check_native_service("web", &target(), &continuing).unwrap_err();
        assert!(err.contains("the verify hook continues after 1440 min (partly ECS defaults)"), "{err}");
    }

    #[test]
    fn a_pause_hook_that_rolls_back_on_timeout_passes_and_the_gate_says_when() {
        let mut bounded = ready();
        bounded.hooks[1].timeout_action = Some("ROLLBACK".into());
        bounded.hooks[1].timeout_minutes = Some(120);
        assert_eq!(check_native_service("web", &target(), &bounded), Ok(()));
        assert_eq!(
            native_gate(&target(), &bounded),
            "ECS PAUSE hook at PRE_PRODUCTION_TRAFFIC_SHIFT waits for a person; rolls back after 120 min"
        );
    }

    #[test]
    fn an_unset_timeout_is_ecs_default_rollback_after_a_day() {
        assert_eq!(
            native_gate(&target(), &ready()),
            "ECS PAUSE hook at PRE_PRODUCTION_TRAFFIC_SHIFT waits for a person; rolls back after 1440 min (ECS defaults)"
        );
    }

    #[test]
    fn a_codedeploy_controlled_service_is_refused() {
        let codedeploy = NativeService { controller: Some("CODE_DEPLOY".into()), ..ready() };
        assert!(check_native_service("web", &target(), &codedeploy).unwrap_err().contains("CODE_DEPLOY, not ECS"));
    }
}
