//! The reads behind `convoy init`, with the caller's credentials: ECS (`DescribeServices`,
//! `DescribeTaskDefinition`), CodeDeploy (`ListApplications`, `ListDeploymentGroups`,
//! `GetDeploymentGroup`), Elastic Load Balancing (`DescribeRules`, `DescribeListeners`,
//! `DescribeLoadBalancers`) and IAM (the deployment group's service role's policies). Read only:
//! init changes nothing in AWS.

use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use futures_util::{StreamExt, TryStreamExt};

use super::iam::{self, Policy};
use super::plan::{
    Choices, Container, DEFAULT_VERIFY_FUNCTION, Found, Group, Hook, Listener, LoadBalancer, RoleAccess,
};

/// The clients init reads with.
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub codedeploy: aws_sdk_codedeploy::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub iam: aws_sdk_iam::Client,
    pub region: String,
}

impl Clients {
    pub fn new(sdk: &aws_config::SdkConfig) -> Clients {
        Clients {
            ecs: aws_sdk_ecs::Client::new(sdk),
            codedeploy: aws_sdk_codedeploy::Client::new(sdk),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(sdk),
            iam: aws_sdk_iam::Client::new(sdk),
            region: sdk.region().map(ToString::to_string).unwrap_or_default(),
        }
    }
}

/// What AWS said when a read failed: its error code and message (`AccessDeniedException: ...`),
/// or why no answer came.
fn said<E, R>(operation: &str, err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let why = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(err).to_string(),
    };
    format!("{operation}: {why}")
}

/// Reads the service and everything its settings need. `Err` when the service itself cannot be
/// read (no such service, access denied, AWS unreachable); what is missing around it is in
/// [`Found`] for the plan to say.
pub async fn discover(
    clients: &Clients,
    cluster: &str,
    service: &str,
    application: Option<&str>,
    choices: &Choices,
) -> Result<Found, String> {
    let described = clients
        .ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .map_err(|e| said("ecs:DescribeServices", &e))?;
    let Some(live) = described.services().iter().find(|s| s.status() != Some("INACTIVE")) else {
        let why = described.failures().first().and_then(|f| f.reason()).unwrap_or("not found");
        return Err(format!("service {service} of cluster {cluster}: {why}"));
    };
    let config = live.deployment_configuration();
    let mut found = Found {
        cluster: cluster.to_owned(),
        service: service.to_owned(),
        controller: live.deployment_controller().map_or("ECS", |c| c.r#type().as_str()).to_owned(),
        strategy: config.and_then(|c| c.strategy()).map(|s| s.as_str().to_owned()),
        hooks: config
            .map(|c| c.lifecycle_hooks())
            .unwrap_or_default()
            .iter()
            .map(|h| Hook {
                target_type: h.target_type().map_or("AWS_LAMBDA", |t| t.as_str()).to_owned(),
                target: h.hook_target_arn().map(str::to_owned),
                role: h.role_arn().map(str::to_owned),
                stages: h.lifecycle_stages().iter().map(|s| s.as_str().to_owned()).collect(),
                timeout_action: h.timeout_configuration().and_then(|t| t.action()).map(|a| a.as_str().to_owned()),
            })
            .collect(),
        load_balancers: live
            .load_balancers()
            .iter()
            .map(|lb| LoadBalancer {
                target_group: lb.target_group_arn().map(str::to_owned),
                container: lb.container_name().map(str::to_owned),
                port: lb.container_port(),
                test_listener_rule: lb.advanced_configuration().and_then(|a| a.test_listener_rule()).map(str::to_owned),
                alternate_target_group: lb
                    .advanced_configuration()
                    .and_then(|a| a.alternate_target_group_arn())
                    .map(str::to_owned),
            })
            .collect(),
        task_definition: live.task_definition().unwrap_or_default().to_owned(),
        ..Found::default()
    };
    found.containers = containers(clients, &found.task_definition).await?;
    let cluster_name = live.cluster_arn().and_then(|a| a.rsplit('/').next()).unwrap_or(cluster).to_owned();
    match found.controller.as_str() {
        "CODE_DEPLOY" => {
            found.groups = groups(clients, &cluster_name, service, application).await?;
            if let [group] = found.groups.as_slice() {
                if let Some(arn) = group.test_listeners.first() {
                    found.test_listener = Some(listener(clients, arn, Vec::new()).await?);
                }
                if let Some(role) = &group.service_role {
                    let function = choices.verify_function.as_deref().unwrap_or(DEFAULT_VERIFY_FUNCTION);
                    found.verify_arn = function_arn(function, role, &clients.region);
                    found.role_access = Some(role_access(clients, role, &found.verify_arn).await);
                }
            }
        }
        "ECS" => {
            let rule = found.load_balancers.iter().find_map(|lb| lb.test_listener_rule.clone());
            if let Some(rule) = rule {
                found.test_listener = Some(test_rule_listener(clients, &rule).await?);
            }
        }
        _ => {}
    }
    Ok(found)
}

async fn containers(clients: &Clients, task_definition: &str) -> Result<Vec<Container>, String> {
    if task_definition.is_empty() {
        return Ok(Vec::new());
    }
    let described = clients
        .ecs
        .describe_task_definition()
        .task_definition(task_definition)
        .send()
        .await
        .map_err(|e| said("ecs:DescribeTaskDefinition", &e))?;
    let definitions = described.task_definition().map(|t| t.container_definitions()).unwrap_or_default();
    Ok(definitions
        .iter()
        .map(|c| Container {
            name: c.name().unwrap_or_default().to_owned(),
            log_driver: c.log_configuration().map(|l| l.log_driver().as_str().to_owned()),
            log_group: c.log_configuration().and_then(|l| l.options()).and_then(|o| o.get("awslogs-group")).cloned(),
        })
        .collect())
}

/// The deployment groups (of `application`, or of every application the caller may list) whose
/// `ecsServices` name the service in the cluster. `GetDeploymentGroup` one group at a time, 8 at
/// once: init runs once per service, and it is the call every CodeDeploy endpoint answers.
async fn groups(
    clients: &Clients,
    cluster: &str,
    service: &str,
    application: Option<&str>,
) -> Result<Vec<Group>, String> {
    let applications = match application {
        Some(one) => vec![one.to_owned()],
        None => {
            let mut names = Vec::new();
            let mut pages = clients.codedeploy.list_applications().into_paginator().send();
            while let Some(page) = pages.next().await {
                names.extend(page.map_err(|e| said("codedeploy:ListApplications", &e))?.applications().to_vec());
            }
            names
        }
    };
    let mut pairs = Vec::new();
    for application in applications {
        let mut pages =
            clients.codedeploy.list_deployment_groups().application_name(&application).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| said("codedeploy:ListDeploymentGroups", &e))?;
            pairs.extend(page.deployment_groups().iter().map(|g| (application.clone(), g.clone())));
        }
    }
    let described: Vec<Option<Group>> =
        futures_util::stream::iter(pairs.into_iter().map(|(application, name)| async move {
            let got = clients
                .codedeploy
                .get_deployment_group()
                .application_name(&application)
                .deployment_group_name(&name)
                .send()
                .await
                .map_err(|e| said("codedeploy:GetDeploymentGroup", &e))?;
            let Some(info) = got.deployment_group_info() else { return Ok(None) };
            let deploys_it = info.ecs_services().iter().any(|s| {
                s.service_name() == Some(service)
                    && s.cluster_name().is_some_and(|c| c == cluster || c.ends_with(&format!("/{cluster}")))
            });
            if !deploys_it {
                return Ok(None);
            }
            let ready = info.blue_green_deployment_configuration().and_then(|b| b.deployment_ready_option());
            let test_listeners = info
                .load_balancer_info()
                .map(|l| l.target_group_pair_info_list())
                .unwrap_or_default()
                .iter()
                .filter_map(|pair| pair.test_traffic_route())
                .flat_map(|route| route.listener_arns().iter().cloned())
                .collect();
            Ok::<_, String>(Some(Group {
                application,
                name,
                ready_action: ready.and_then(|r| r.action_on_timeout()).map(|a| a.as_str().to_owned()),
                wait_minutes: ready.map_or(0, |r| r.wait_time_in_minutes()),
                service_role: info.service_role_arn().map(str::to_owned),
                test_listeners,
            }))
        }))
        .buffered(8)
        .try_collect()
        .await?;
    Ok(described.into_iter().flatten().collect())
}

/// A listener and its load balancer's DNS name.
async fn listener(clients: &Clients, arn: &str, conditions: Vec<String>) -> Result<Listener, String> {
    let described = clients
        .elb
        .describe_listeners()
        .listener_arns(arn)
        .send()
        .await
        .map_err(|e| said("elasticloadbalancing:DescribeListeners", &e))?;
    let Some(found) = described.listeners().first() else { return Err(format!("listener {arn}: not found")) };
    let balancer = found.load_balancer_arn().unwrap_or_default();
    let balancers = clients
        .elb
        .describe_load_balancers()
        .load_balancer_arns(balancer)
        .send()
        .await
        .map_err(|e| said("elasticloadbalancing:DescribeLoadBalancers", &e))?;
    let dns_name = balancers.load_balancers().first().and_then(|b| b.dns_name()).unwrap_or_default().to_owned();
    Ok(Listener {
        arn: arn.to_owned(),
        protocol: found.protocol().map_or("?", |p| p.as_str()).to_owned(),
        port: found.port().unwrap_or_default(),
        dns_name,
        conditions,
    })
}

/// ECS native's test listener: the rule's listener (its ARN names it: `listener-rule/app/<lb>/<lb
/// id>/<listener id>/<rule id>`, Elastic Load Balancing's ARN format), with the rule's conditions.
async fn test_rule_listener(clients: &Clients, rule: &str) -> Result<Listener, String> {
    let described = clients
        .elb
        .describe_rules()
        .rule_arns(rule)
        .send()
        .await
        .map_err(|e| said("elasticloadbalancing:DescribeRules", &e))?;
    let conditions = described
        .rules()
        .iter()
        .filter(|r| r.is_default() != Some(true))
        .flat_map(|r| r.conditions())
        .map(|c| format!("{}={}", c.field().unwrap_or("?"), c.values().join("|")))
        .collect();
    let listener_arn = listener_of_rule(rule).ok_or_else(|| format!("{rule} is not a listener rule's ARN"))?;
    listener(clients, &listener_arn, conditions).await
}

fn listener_of_rule(rule: &str) -> Option<String> {
    let (head, path) = rule.split_once(":listener-rule/")?;
    let (listener, _rule_id) = path.rsplit_once('/')?;
    Some(format!("{head}:listener/{listener}"))
}

/// The verify function's ARN: as given, or in the role's partition and account and this region.
fn function_arn(function: &str, role: &str, region: &str) -> String {
    if function.starts_with("arn:") {
        return function.to_owned();
    }
    let parts: Vec<&str> = role.split(':').collect();
    let (partition, account) = (parts.get(1).copied().unwrap_or("aws"), parts.get(4).copied().unwrap_or_default());
    format!("arn:{partition}:lambda:{region}:{account}:function:{function}")
}

/// The role's attached and inline policies, and IAM's verdict on `lambda:InvokeFunction` on the
/// verify function. A refusal (or no answer) is what the plan says to check by hand.
async fn role_access(clients: &Clients, role: &str, function: &str) -> RoleAccess {
    match role_policies(clients, role).await {
        Ok(policies) => RoleAccess::Read {
            role: role.to_owned(),
            policies: policies.iter().map(|p| p.name.clone()).collect(),
            access: iam::access(&policies, "lambda:InvokeFunction", function),
        },
        Err(why) => RoleAccess::Unreadable { role: role.to_owned(), why },
    }
}

async fn role_policies(clients: &Clients, role: &str) -> Result<Vec<Policy>, String> {
    let name = role.rsplit('/').next().unwrap_or(role);
    let iam_client = &clients.iam;
    let mut policies = Vec::new();
    let mut attached = iam_client.list_attached_role_policies().role_name(name).into_paginator().send();
    while let Some(page) = attached.next().await {
        let page = page.map_err(|e| said("iam:ListAttachedRolePolicies", &e))?;
        for policy in page.attached_policies() {
            let arn = policy.policy_arn().unwrap_or_default();
            let got = iam_client.get_policy().policy_arn(arn).send().await.map_err(|e| said("iam:GetPolicy", &e))?;
            let version = got.policy().and_then(|p| p.default_version_id()).unwrap_or("v1");
            let document = iam_client
                .get_policy_version()
                .policy_arn(arn)
                .version_id(version)
                .send()
                .await
                .map_err(|e| said("iam:GetPolicyVersion", &e))?;
            let text = document.policy_version().and_then(|v| v.document()).unwrap_or("{}");
            let name = policy.policy_name().unwrap_or(arn).to_owned();
            policies.push(Policy { document: iam::decode_document(text).map_err(|e| format!("{name}: {e}"))?, name });
        }
    }
    let mut inline = iam_client.list_role_policies().role_name(name).into_paginator().send();
    while let Some(page) = inline.next().await {
        let page = page.map_err(|e| said("iam:ListRolePolicies", &e))?;
        for policy in page.policy_names() {
            let got = iam_client
                .get_role_policy()
                .role_name(name)
                .policy_name(policy)
                .send()
                .await
                .map_err(|e| said("iam:GetRolePolicy", &e))?;
            let document = iam::decode_document(got.policy_document()).map_err(|e| format!("{policy}: {e}"))?;
            policies.push(Policy { name: format!("{policy} (inline)"), document });
        }
    }
    Ok(policies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rules_listener_is_named_by_the_rules_arn() {
        let rule = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/50dc6c495c0c9188/\
                    f2f7dc8efc522ab2/9683b2d02a6cabee";
        assert_eq!(
            listener_of_rule(rule).as_deref(),
            Some(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2"
            )
        );
        assert_eq!(listener_of_rule("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/1"), None);
    }

    #[test]
    fn a_function_name_gets_the_roles_partition_and_account_and_an_arn_is_kept() {
        let role = "arn:aws-cn:iam::123456789012:role/service-role/codedeploy";
        assert_eq!(
            function_arn("convoy-verify", role, "cn-north-1"),
            "arn:aws-cn:lambda:cn-north-1:123456789012:function:convoy-verify"
        );
        let arn = "arn:aws:lambda:us-east-1:1:function:v";
        assert_eq!(function_arn(arn, role, "us-east-1"), arn);
    }
}
