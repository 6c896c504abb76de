//! From what AWS said of a service to its Convoy settings and what it lacks: pure, so every
//! "missing" message is a plain-function test. `discover.rs` fills [`Found`] with the caller's
//! credentials.

use convoy::manifest::Approval;
use convoy::settings::{
    APPROVAL_STAGES, CodeDeployTarget, DeployTarget, EcsNativeTarget, ProbeDefaults, ServiceSettings,
};

use super::iam::Access;

/// What AWS says of one service and what it points to.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub cluster: String,
    pub service: String,
    /// `ECS`, `CODE_DEPLOY` or `EXTERNAL` (`DescribeServices` `deploymentController.type`).
    pub controller: String,
    /// `deploymentConfiguration.strategy`: `ROLLING`, `BLUE_GREEN`, `LINEAR`, `CANARY`.
    pub strategy: Option<String>,
    pub hooks: Vec<Hook>,
    pub load_balancers: Vec<LoadBalancer>,
    pub task_definition: String,
    pub containers: Vec<Container>,
    /// For the `CODE_DEPLOY` controller: the deployment groups whose `ecsServices` name it.
    pub groups: Vec<Group>,
    /// The test listener, when there is one (the group's test traffic route, or the ECS native
    /// load balancer's test listener rule).
    pub test_listener: Option<Listener>,
    /// Whether the group's service role may invoke the verify function.
    pub role_access: Option<RoleAccess>,
    /// The verify function's ARN the role was checked against.
    pub verify_arn: String,
}

/// One lifecycle hook of an ECS native service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub target_type: String,
    pub target: Option<String>,
    pub role: Option<String>,
    pub stages: Vec<String>,
    /// `timeoutConfiguration.action` (`ROLLBACK` when unset).
    pub timeout_action: Option<String>,
}

/// One entry of the service's `loadBalancers`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadBalancer {
    pub target_group: Option<String>,
    pub container: Option<String>,
    pub port: Option<i32>,
    /// ECS native blue/green: `advancedConfiguration.testListenerRule`.
    pub test_listener_rule: Option<String>,
    pub alternate_target_group: Option<String>,
}

/// A container of the service's task definition and where its logs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub log_driver: Option<String>,
    /// `awslogs-group`, with the `awslogs` driver.
    pub log_group: Option<String>,
}

/// A CodeDeploy deployment group that deploys the service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub application: String,
    pub name: String,
    /// `blueGreenDeploymentConfiguration.deploymentReadyOption.actionOnTimeout`.
    pub ready_action: Option<String>,
    pub wait_minutes: i32,
    pub service_role: Option<String>,
    /// `loadBalancerInfo.targetGroupPairInfoList[].testTrafficRoute.listenerArns`.
    pub test_listeners: Vec<String>,
}

/// A load balancer listener, as ELB describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub arn: String,
    /// `HTTP`, `HTTPS`, `TCP`, ...
    pub protocol: String,
    pub port: i32,
    /// The load balancer's DNS name.
    pub dns_name: String,
    /// A rule's conditions other than the default (ECS native's test listener rule), as
    /// `field=values`: requests the probes send must meet them.
    pub conditions: Vec<String>,
}

/// What init could learn of the service role's right to invoke the verify function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleAccess {
    /// The role's policies, read, and IAM's verdict on them.
    Read { role: String, policies: Vec<String>, access: Access },
    /// IAM refused to show them (or could not be reached): what it said.
    Unreadable { role: String, why: String },
}

/// What the operator chose on the command line.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    /// `--verify-function` (name or ARN); by default the ECS hook's target, else `convoy-verify`.
    pub verify_function: Option<String>,
    /// `--test-listener-host`: the name the verify function reaches the test listener by.
    pub test_listener_host: Option<String>,
}

/// The verify function of a stack deployed with samconfig.toml's default name (`convoy`).
pub const DEFAULT_VERIFY_FUNCTION: &str = "convoy-verify";

/// Something the service lacks for Convoy, and how to add it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub what: String,
    pub how: String,
}

/// The settings init writes (none when it cannot: no deploy target or no test listener) and what
/// is missing, in the order an operator fixes it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub settings: Option<ServiceSettings>,
    /// What was read, one line each, for the operator to review.
    pub notes: Vec<String>,
    pub missing: Vec<Missing>,
}

fn missing(what: impl Into<String>, how: impl Into<String>) -> Missing {
    Missing { what: what.into(), how: how.into() }
}

/// The settings for `found`, and what it lacks.
pub fn plan(found: &Found, choices: &Choices) -> Plan {
    let mut notes = Vec::new();
    let mut gaps = Vec::new();
    let service = &found.service;
    notes.push(format!("service {service} in cluster {}: deployment controller {}", found.cluster, found.controller));
    notes.push(format!("task definition {}", found.task_definition));
    for container in &found.containers {
        notes.push(match (&container.log_driver, &container.log_group) {
            (Some(driver), Some(group)) if driver == "awslogs" => {
                format!("container {}: logs to CloudWatch Logs group {group}", container.name)
            }
            (Some(driver), _) => format!(
                "container {}: logs with {driver}; a migration run in it leaves no lines for `convoy logs` \
                 (that needs awslogs)",
                container.name
            ),
            (None, _) => format!(
                "container {}: no log configuration; a migration run in it leaves no lines for `convoy logs`",
                container.name
            ),
        });
    }
    let balanced = found.load_balancers.iter().find(|lb| lb.target_group.is_some());
    let Some(balanced) = balanced else {
        gaps.push(missing(
            format!(
                "service {service} has no load balancer target group: Convoy verifies a release on a test listener"
            ),
            "attach the service to an Application Load Balancer target group (loadBalancers in create-service), \
             with a second listener (the test listener) on the same load balancer",
        ));
        return Plan { settings: None, notes, missing: gaps };
    };
    notes.push(format!(
        "load balancer: target group {} → container {} port {}",
        balanced.target_group.as_deref().unwrap_or_default(),
        balanced.container.as_deref().unwrap_or("?"),
        balanced.port.map_or("?".to_owned(), |p| p.to_string())
    ));
    let (codedeploy, ecs_native) = match found.controller.as_str() {
        "CODE_DEPLOY" => (codedeploy_target(found, balanced, choices, &mut notes, &mut gaps), None),
        "ECS" => match found.strategy.as_deref() {
            Some("BLUE_GREEN" | "LINEAR" | "CANARY") => {
                (None, Some(native_target(found, choices, &mut notes, &mut gaps)))
            }
            other => {
                gaps.push(missing(
                    format!(
                        "service {service} deploys with the ECS {} strategy: Convoy deploys blue/green",
                        other.unwrap_or("ROLLING")
                    ),
                    "set its deploymentConfiguration.strategy to BLUE_GREEN (or LINEAR or CANARY) with \
                     advancedConfiguration on its load balancer (aws ecs update-service), or deploy it with a \
                     CodeDeploy deployment controller",
                ));
                (None, None)
            }
        },
        other => {
            gaps.push(missing(
                format!(
                    "service {service} has the {other} deployment controller: Convoy deploys through ECS or CodeDeploy"
                ),
                "recreate the service with the CODE_DEPLOY controller and a CodeDeploy deployment group, or with \
                 the ECS controller and the BLUE_GREEN strategy",
            ));
            (None, None)
        }
    };
    let test_listener = test_listener_url(found, choices, &mut notes, &mut gaps);
    let deploy = match (codedeploy, ecs_native) {
        (Some(codedeploy), _) => Some(DeployTarget::CodeDeploy(codedeploy)),
        (None, native) => native.map(DeployTarget::EcsNative),
    };
    let settings = match (test_listener, deploy) {
        (Some(test_listener), Some(deploy)) => Some(ServiceSettings {
            deploy,
            test_listener,
            probe: ProbeDefaults::default(),
            approval: Approval::Manual,
            bake_seconds: 0,
            metric_checks: Vec::new(),
            image_policy: None,
            drift: convoy::drift::DriftSetting::default(),
            alarms: Vec::new(),
            rollback: Default::default(),
        }),
        _ => None,
    };
    Plan { settings, notes, missing: gaps }
}

fn codedeploy_target(
    found: &Found,
    balanced: &LoadBalancer,
    choices: &Choices,
    notes: &mut Vec<String>,
    gaps: &mut Vec<Missing>,
) -> Option<CodeDeployTarget> {
    let service = &found.service;
    let group = match found.groups.as_slice() {
        [] => {
            gaps.push(missing(
                format!("no CodeDeploy deployment group deploys service {service} of cluster {}", found.cluster),
                "create one (compute platform ECS; deployment style BLUE_GREEN with traffic control; ecsServices \
                 naming this service and cluster; the load balancer's target group pair, with a test traffic route), \
                 or pass --application if it is in an application you may not list",
            ));
            return None;
        }
        [group] => group,
        several => {
            let names: Vec<String> = several.iter().map(|g| format!("{}/{}", g.application, g.name)).collect();
            gaps.push(missing(
                format!("several CodeDeploy deployment groups deploy service {service}: {}", names.join(", ")),
                "pass --application to choose the one Convoy deploys through",
            ));
            return None;
        }
    };
    notes.push(format!("CodeDeploy deployment group {}/{}", group.application, group.name));
    let waits = group.ready_action.as_deref() == Some("STOP_DEPLOYMENT") && group.wait_minutes > 0;
    if !waits {
        let does = match group.ready_action.as_deref() {
            Some("STOP_DEPLOYMENT") => "stops without waiting (STOP_DEPLOYMENT with a wait time of 0)".to_owned(),
            other => format!(
                "continues by itself ({}): CodeDeploy reroutes production traffic once the hooks pass, without \
                 waiting for `convoy approve`",
                other.unwrap_or("CONTINUE_DEPLOYMENT, unset")
            ),
        };
        gaps.push(missing(
            format!("deployment group {}/{} {does}", group.application, group.name),
            "set its blueGreenDeploymentConfiguration.deploymentReadyOption to actionOnTimeout STOP_DEPLOYMENT \
             with waitTimeInMinutes (up to 2880) for the approval (aws deploy update-deployment-group)",
        ));
    }
    let verify_function = choices.verify_function.clone().unwrap_or_else(|| DEFAULT_VERIFY_FUNCTION.to_owned());
    match &found.role_access {
        Some(RoleAccess::Read { role, access: Access::Allowed { by }, .. }) => {
            notes.push(format!("CodeDeploy's role {role} may invoke {} ({by})", found.verify_arn));
        }
        Some(RoleAccess::Read { role, access: Access::Conditional { by }, .. }) => notes
            .push(format!("CodeDeploy's role {role} may invoke {} if the conditions of {by} hold", found.verify_arn)),
        Some(RoleAccess::Read { role, policies, access }) => {
            let why = match access {
                Access::Denied { by } => format!("{by} denies lambda:InvokeFunction on it"),
                _ if policies.is_empty() => "the role has no policies".to_owned(),
                _ => format!("none of its policies ({}) allows lambda:InvokeFunction on it", policies.join(", ")),
            };
            gaps.push(missing(
                format!("CodeDeploy's role {role} may not invoke the verify function {}: {why}", found.verify_arn),
                "attach AWSCodeDeployRoleForECS (it allows lambda:InvokeFunction on every function; \
                 AWSCodeDeployRoleForECSLimited only on functions named CodeDeployHook_*), or add a statement \
                 allowing lambda:InvokeFunction on that function's ARN (unless its resource policy grants the role)",
            ));
        }
        Some(RoleAccess::Unreadable { role, why }) => gaps.push(missing(
            format!("could not read the policies of CodeDeploy's role {role} ({why})"),
            format!(
                "check that they allow lambda:InvokeFunction on {} (AWSCodeDeployRoleForECS does; \
                 AWSCodeDeployRoleForECSLimited only on functions named CodeDeployHook_*), or run convoy init with \
                 iam:ListAttachedRolePolicies, iam:ListRolePolicies, iam:GetRolePolicy, iam:GetPolicy and \
                 iam:GetPolicyVersion",
                found.verify_arn
            ),
        )),
        None => {}
    }
    let (Some(container), Some(port)) = (balanced.container.clone(), balanced.port) else {
        gaps.push(missing(
            format!("service {service}'s load balancer names no container and port"),
            "set containerName and containerPort on the service's load balancer",
        ));
        return None;
    };
    let port = u16::try_from(port).ok()?;
    Some(CodeDeployTarget {
        application: group.application.clone(),
        deployment_group: group.name.clone(),
        container,
        port,
        verify_function,
    })
}

fn native_target(
    found: &Found,
    choices: &Choices,
    notes: &mut Vec<String>,
    gaps: &mut Vec<Missing>,
) -> EcsNativeTarget {
    let service = &found.service;
    notes.push(format!("ECS native blue/green, strategy {}", found.strategy.as_deref().unwrap_or_default()));
    let at = |hook: &&Hook, stage: &str| hook.stages.iter().any(|s| s == stage);
    let lambda_hooks: Vec<&Hook> =
        found.hooks.iter().filter(|h| h.target_type == "AWS_LAMBDA" && at(h, "POST_TEST_TRAFFIC_SHIFT")).collect();
    let verify = match &choices.verify_function {
        Some(chosen) => lambda_hooks.iter().find(|h| h.target.as_deref().is_some_and(|t| names_function(t, chosen))),
        None => lambda_hooks.first(),
    };
    let verify_function = match (verify, &choices.verify_function) {
        (Some(hook), _) => {
            let target = hook.target.clone().unwrap_or_default();
            notes.push(format!("verify hook at POST_TEST_TRAFFIC_SHIFT: {target}"));
            if hook.role.is_none() {
                gaps.push(missing(
                    "the verify hook has no roleArn for ECS to invoke the function with",
                    "set its roleArn to the stack's EcsHookRoleArn output (or a role ECS may assume with \
                     lambda:InvokeFunction on the verify function)",
                ));
            }
            if hook.timeout_action.as_deref() == Some("CONTINUE") {
                gaps.push(missing(
                    "the verify hook continues when it times out: the deployment would go on unverified",
                    "set its timeoutConfiguration action to ROLLBACK",
                ));
            }
            choices.verify_function.clone().unwrap_or(target)
        }
        (None, chosen) => {
            let function = chosen.clone().unwrap_or_else(|| DEFAULT_VERIFY_FUNCTION.to_owned());
            gaps.push(missing(
                format!("no AWS_LAMBDA lifecycle hook calls {function} at POST_TEST_TRAFFIC_SHIFT"),
                format!(
                    "add {{targetType: AWS_LAMBDA, hookTargetArn: <{function}'s ARN>, roleArn: <the stack's \
                     EcsHookRoleArn>, lifecycleStages: [POST_TEST_TRAFFIC_SHIFT]}} to service {service}'s \
                     deploymentConfiguration.lifecycleHooks (aws ecs update-service --deployment-configuration)"
                ),
            ));
            function
        }
    };
    let pause = found.hooks.iter().find(|h| h.target_type == "PAUSE" && APPROVAL_STAGES.iter().any(|s| at(h, s)));
    let approval_stage = match pause {
        Some(hook) => {
            let stage = APPROVAL_STAGES.iter().find(|s| at(&hook, s)).copied().unwrap_or(APPROVAL_STAGES[1]);
            notes.push(format!("PAUSE hook at {stage}: the approval waits there"));
            if hook.timeout_action.as_deref() == Some("CONTINUE") {
                gaps.push(missing(
                    format!(
                        "the PAUSE hook at {stage} continues when it times out, shifting production traffic without \
                         an approval"
                    ),
                    "set its timeoutConfiguration action to ROLLBACK",
                ));
            }
            stage.to_owned()
        }
        None => {
            gaps.push(missing(
                format!(
                    "service {service} has no PAUSE hook: ECS would shift production traffic without waiting for \
                     `convoy approve`"
                ),
                format!(
                    "add {{targetType: PAUSE, lifecycleStages: [PRE_PRODUCTION_TRAFFIC_SHIFT]}} to service \
                     {service}'s deploymentConfiguration.lifecycleHooks (aws ecs update-service \
                     --deployment-configuration); its timeoutConfiguration action ROLLBACK (the default)"
                ),
            ));
            APPROVAL_STAGES[1].to_owned()
        }
    };
    EcsNativeTarget { verify_function, approval_stage }
}

/// Whether a hook's target (a Lambda ARN, perhaps qualified) is `function` (a name or an ARN).
fn names_function(target: &str, function: &str) -> bool {
    let name = |arn: &str| -> String {
        arn.split_once(":function:").map_or(arn, |(_, rest)| rest.split(':').next().unwrap_or_default()).to_owned()
    };
    target == function || name(target) == name(function)
}

fn test_listener_url(
    found: &Found,
    choices: &Choices,
    notes: &mut Vec<String>,
    gaps: &mut Vec<Missing>,
) -> Option<String> {
    let service = &found.service;
    let Some(listener) = &found.test_listener else {
        let how = if found.controller == "ECS" {
            format!(
                "add a listener for test traffic on the service's load balancer (another port) with a rule forwarding \
                 to both target groups, and name that rule in service {service}'s \
                 loadBalancers[].advancedConfiguration.testListenerRule (aws ecs update-service --load-balancers); \
                 then run convoy init again"
            )
        } else {
            "add a listener for test traffic on the service's load balancer (another port, forwarding to the \
             production target group) and name it in the deployment group's \
             loadBalancerInfo.targetGroupPairInfoList[].testTrafficRoute.listenerArns (aws deploy \
             update-deployment-group --load-balancer-info); then run convoy init again"
                .to_owned()
        };
        let whose = match found.groups.as_slice() {
            [group] if found.controller == "CODE_DEPLOY" => {
                format!("deployment group {}/{}", group.application, group.name)
            }
            _ => format!("service {service}"),
        };
        gaps.push(missing(format!("{whose} has no test listener: Convoy verifies each release there"), how));
        return None;
    };
    let scheme = match listener.protocol.as_str() {
        "HTTP" => "http",
        "HTTPS" => "https",
        other => {
            gaps.push(missing(
                format!("the test listener {} is {other}: Convoy probes over HTTP or HTTPS", listener.arn),
                "use an Application Load Balancer listener (HTTP or HTTPS) for test traffic",
            ));
            return None;
        }
    };
    let host = choices.test_listener_host.as_deref().unwrap_or(&listener.dns_name);
    let url = format!("{scheme}://{host}:{}", listener.port);
    notes.push(format!("test listener {} ({} port {}) → {url}", listener.arn, listener.protocol, listener.port));
    if scheme == "https" && choices.test_listener_host.is_none() {
        notes.push(
            "an HTTPS test listener's certificate names your domain, not the load balancer's DNS name: pass \
             --test-listener-host with the name it covers"
                .to_owned(),
        );
    }
    if !listener.conditions.is_empty() {
        gaps.push(missing(
            format!("the test listener rule matches only requests with {}", listener.conditions.join(", ")),
            "Convoy's probes send a GET of probe.path with no extra headers: set probe.path to a path the rule \
             matches, or make the rule match every request on the test listener",
        ));
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFY: &str = "arn:aws:lambda:us-east-1:123456789012:function:convoy-verify";

    fn balanced() -> LoadBalancer {
        LoadBalancer {
            target_group: Some("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/blue/1".into()),
            container: Some("nginx".into()),
            port: Some(80),
            ..LoadBalancer::default()
        }
    }

    fn listener() -> Listener {
        Listener {
            arn: "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/1/2".into(),
            protocol: "HTTP".into(),
            port: 8080,
            dns_name: "internal-web-1.us-east-1.elb.amazonaws.com".into(),
            conditions: Vec::new(),
        }
    }

    /// A CodeDeploy service with everything Convoy needs.
    fn codedeploy() -> Found {
        Found {
            cluster: "production".into(),
            service: "web".into(),
            controller: "CODE_DEPLOY".into(),
            load_balancers: vec![balanced()],
            task_definition: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7".into(),
            containers: vec![Container {
                name: "nginx".into(),
                log_driver: Some("awslogs".into()),
                log_group: Some("/ecs/web".into()),
            }],
            groups: vec![Group {
                application: "convoy".into(),
                name: "web".into(),
                ready_action: Some("STOP_DEPLOYMENT".into()),
                wait_minutes: 60,
                service_role: Some("arn:aws:iam::123456789012:role/codedeploy".into()),
                test_listeners: vec![listener().arn],
            }],
            test_listener: Some(listener()),
            role_access: Some(RoleAccess::Read {
                role: "arn:aws:iam::123456789012:role/codedeploy".into(),
                policies: vec!["AWSCodeDeployRoleForECS".into()],
                access: Access::Allowed { by: "AWSCodeDeployRoleForECS".into() },
            }),
            verify_arn: VERIFY.into(),
            ..Found::default()
        }
    }

    fn hook(target_type: &str, stage: &str) -> Hook {
        Hook {
            target_type: target_type.into(),
            target: (target_type == "AWS_LAMBDA").then(|| VERIFY.to_owned()),
            role: (target_type == "AWS_LAMBDA").then(|| "arn:aws:iam::123456789012:role/convoy-ecs-hooks".to_owned()),
            stages: vec![stage.into()],
            timeout_action: None,
        }
    }

    /// An ECS native service with everything Convoy needs.
    fn native() -> Found {
        let mut lb = balanced();
        lb.test_listener_rule =
            Some("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/1/2/3".into());
        Found {
            controller: "ECS".into(),
            strategy: Some("BLUE_GREEN".into()),
            hooks: vec![hook("AWS_LAMBDA", "POST_TEST_TRAFFIC_SHIFT"), hook("PAUSE", "PRE_PRODUCTION_TRAFFIC_SHIFT")],
            load_balancers: vec![lb],
            groups: Vec::new(),
            role_access: None,
            ..codedeploy()
        }
    }

    fn whats(plan: &Plan) -> Vec<&str> {
        plan.missing.iter().map(|m| m.what.as_str()).collect()
    }

    #[test]
    fn a_service_with_everything_gets_its_codedeploy_settings_and_nothing_missing() {
        let plan = plan(&codedeploy(), &Choices::default());
        assert!(plan.missing.is_empty(), "{:?}", plan.missing);
        let settings = plan.settings.expect("settings");
        assert_eq!(settings.test_listener, "http://internal-web-1.us-east-1.elb.amazonaws.com:8080");
        let target = settings.deploy.codedeploy().cloned().expect("a CodeDeploy target");
        assert_eq!(
            (target.application.as_str(), target.deployment_group.as_str(), target.container.as_str(), target.port),
            ("convoy", "web", "nginx", 80)
        );
        assert_eq!(target.verify_function, "convoy-verify");
        // What init writes, the functions read back as the same settings.
        let json = serde_json::json!({"web": settings}).to_string();
        let parsed = convoy::settings::parse(&json).expect("the functions accept what init writes");
        assert_eq!(parsed[&"web".parse().unwrap()], settings);
    }

    #[test]
    fn a_group_without_a_test_listener_writes_no_settings_and_says_how_to_add_one() {
        let mut found = codedeploy();
        found.test_listener = None;
        let plan = plan(&found, &Choices::default());
        assert!(plan.settings.is_none());
        assert_eq!(
            whats(&plan),
            ["deployment group convoy/web has no test listener: Convoy verifies each release there"]
        );
        assert!(plan.missing[0].how.contains("testTrafficRoute.listenerArns"), "{}", plan.missing[0].how);
    }

    #[test]
    fn a_group_that_continues_by_itself_is_said_with_how_to_make_it_wait() {
        let mut found = codedeploy();
        found.groups[0].ready_action = Some("CONTINUE_DEPLOYMENT".into());
        found.groups[0].wait_minutes = 0;
        let plan = plan(&found, &Choices::default());
        assert!(plan.settings.is_some(), "the settings are right; the group is not");
        assert_eq!(
            whats(&plan),
            ["deployment group convoy/web continues by itself (CONTINUE_DEPLOYMENT): CodeDeploy reroutes production \
             traffic once the hooks pass, without waiting for `convoy approve`"]
        );
        assert!(plan.missing[0].how.contains("actionOnTimeout STOP_DEPLOYMENT"));
    }

    #[test]
    fn a_role_that_may_not_invoke_the_verify_function_is_said_with_its_policies() {
        let mut found = codedeploy();
        found.role_access = Some(RoleAccess::Read {
            role: "arn:aws:iam::123456789012:role/codedeploy".into(),
            policies: vec!["AWSCodeDeployRoleForECSLimited".into()],
            access: Access::NotAllowed,
        });
        let plan = plan(&found, &Choices::default());
        assert_eq!(
            whats(&plan),
            [format!(
                "CodeDeploy's role arn:aws:iam::123456789012:role/codedeploy may not invoke the verify function {VERIFY}: \
             none of its policies (AWSCodeDeployRoleForECSLimited) allows lambda:InvokeFunction on it"
            )]
        );
    }

    #[test]
    fn a_role_init_may_not_read_is_said_with_what_to_check_by_hand() {
        let mut found = codedeploy();
        found.role_access = Some(RoleAccess::Unreadable {
            role: "arn:aws:iam::123456789012:role/codedeploy".into(),
            why: "iam:ListAttachedRolePolicies: AccessDenied: not authorized".into(),
        });
        let plan = plan(&found, &Choices::default());
        assert_eq!(
            whats(&plan),
            ["could not read the policies of CodeDeploy's role arn:aws:iam::123456789012:role/codedeploy \
             (iam:ListAttachedRolePolicies: AccessDenied: not authorized)"]
        );
        assert!(plan.missing[0].how.starts_with(&format!("check that they allow lambda:InvokeFunction on {VERIFY}")));
        assert!(plan.settings.is_some());
    }

    #[test]
    fn a_native_service_gets_its_hooks_function_and_pause_stage() {
        let plan = plan(&native(), &Choices::default());
        assert!(plan.missing.is_empty(), "{:?}", plan.missing);
        let Some(DeployTarget::EcsNative(target)) = plan.settings.map(|s| s.deploy) else { panic!("a native target") };
        assert_eq!(
            (target.verify_function.as_str(), target.approval_stage.as_str()),
            (VERIFY, "PRE_PRODUCTION_TRAFFIC_SHIFT")
        );
    }

    #[test]
    fn a_native_service_without_a_pause_hook_is_said_with_the_hook_to_add() {
        let mut found = native();
        found.hooks.retain(|h| h.target_type != "PAUSE");
        let plan = plan(&found, &Choices::default());
        assert_eq!(
            whats(&plan),
            ["service web has no PAUSE hook: ECS would shift production traffic without waiting for `convoy approve`"]
        );
        assert!(plan.missing[0].how.contains("{targetType: PAUSE, lifecycleStages: [PRE_PRODUCTION_TRAFFIC_SHIFT]}"));
    }

    #[test]
    fn a_native_service_without_a_test_listener_rule_says_where_to_name_one() {
        let mut found = native();
        found.test_listener = None;
        let plan = plan(&found, &Choices::default());
        assert!(plan.settings.is_none());
        assert_eq!(whats(&plan), ["service web has no test listener: Convoy verifies each release there"]);
        assert!(plan.missing[0].how.contains("advancedConfiguration.testListenerRule"));
    }

    #[test]
    fn a_rolling_service_is_told_to_deploy_blue_green() {
        let mut found = native();
        found.strategy = Some("ROLLING".into());
        let plan = plan(&found, &Choices::default());
        assert!(plan.settings.is_none());
        assert_eq!(whats(&plan), ["service web deploys with the ECS ROLLING strategy: Convoy deploys blue/green"]);
    }

    #[test]
    fn the_test_listener_host_replaces_the_load_balancers_name_and_keeps_scheme_and_port() {
        let mut found = codedeploy();
        found.test_listener.as_mut().unwrap().protocol = "HTTPS".into();
        let choices = Choices { test_listener_host: Some("test.web.example".into()), ..Choices::default() };
        assert_eq!(plan(&found, &choices).settings.unwrap().test_listener, "https://test.web.example:8080");
    }

    #[test]
    fn several_groups_for_one_service_are_named_and_none_chosen() {
        let mut found = codedeploy();
        let mut other = found.groups[0].clone();
        other.application = "legacy".into();
        found.groups.push(other);
        let plan = plan(&found, &Choices::default());
        assert!(plan.settings.is_none());
        assert_eq!(whats(&plan)[0], "several CodeDeploy deployment groups deploy service web: convoy/web, legacy/web");
    }
}
