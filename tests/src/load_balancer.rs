//! A service as an operator has it before Convoy, on moto, for `convoy init` to read: an
//! Application Load Balancer with a production listener and (unless a test takes it away) a test
//! listener, a blue and a green target group, the ECS service behind them (with ECS native's
//! `advancedConfiguration` on its load balancer), and for CodeDeploy a deployment group with the
//! target group pair, its traffic routes, and a service role in IAM with an AWS managed policy.
//! moto keeps all of it as AWS does and answers ELB's, ECS's, CodeDeploy's and IAM's reads (IAM's
//! managed policies: moto is started with `MOTO_IAM_LOAD_MANAGED_POLICIES`).

use aws_sdk_codedeploy::types::{
    DeploymentReadyAction, LoadBalancerInfo, TargetGroupInfo, TargetGroupPairInfo, TrafficRoute,
};
use aws_sdk_ecs::types::DeploymentControllerType;
use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, ProtocolEnum, TargetTypeEnum};

use crate::moto::{ACCOUNT, Moto};
use crate::world::{EcsWorld, World, ec2, xml_text};

/// The load balancer of one service.
pub struct Balancer {
    pub dns_name: String,
    pub blue: String,
    pub green: String,
    pub production: String,
    /// The test listener, and its default rule (ECS native names a rule, CodeDeploy a listener).
    pub test: Option<(String, String)>,
}

/// What surrounds the service; [`Shape::ready`] has everything Convoy needs, a test takes a part away.
#[derive(Debug, Clone)]
pub struct Shape {
    pub controller: DeploymentControllerType,
    /// The production listener's port.
    pub production_port: u16,
    /// The test listener's port; `None`: no test listener.
    pub test_port: Option<u16>,
    /// The CodeDeploy group's `deploymentReadyOption`.
    pub ready: DeploymentReadyAction,
    pub wait_minutes: i32,
    /// The AWS managed policy CodeDeploy's role has.
    pub role_policy: &'static str,
}

impl Shape {
    /// A blue/green service (CodeDeploy, or ECS native with `Ecs`) with listeners on these ports.
    pub fn ready(controller: DeploymentControllerType, production_port: u16, test_port: u16) -> Shape {
        Shape {
            controller,
            production_port,
            test_port: Some(test_port),
            ready: DeploymentReadyAction::StopDeployment,
            wait_minutes: 60,
            role_policy: "AWSCodeDeployRoleForECS",
        }
    }
}

/// The service, its load balancer and (for CodeDeploy) its application and group.
pub struct Balanced {
    pub ecs: EcsWorld,
    pub balancer: Balancer,
    pub codedeploy: Option<(String, String)>,
    pub role: String,
}

impl World {
    /// `service` (containers `containers`, the load balancer routing to `nginx` port 80) shaped as `shape`.
    pub async fn balanced_service(&self, service: &str, containers: &[&str], shape: &Shape) -> Balanced {
        let balancer = self.balancer(service, shape).await;
        let native = shape.controller == DeploymentControllerType::Ecs;
        let role = self.codedeploy_role(service, shape.role_policy).await;
        let mut load_balancer = aws_sdk_ecs::types::LoadBalancer::builder()
            .target_group_arn(&balancer.blue)
            .container_name("nginx")
            .container_port(80);
        if native {
            let production_rule = default_rule(&self.sdk, &balancer.production).await;
            let mut advanced = aws_sdk_ecs::types::AdvancedConfiguration::builder()
                .alternate_target_group_arn(&balancer.green)
                .production_listener_rule(production_rule)
                .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/convoy-ecs-load-balancing"));
            if let Some((_, rule)) = &balancer.test {
                advanced = advanced.test_listener_rule(rule);
            }
            load_balancer = load_balancer.advanced_configuration(advanced.build());
        }
        let ecs =
            self.ecs_service_balanced(service, containers, shape.controller.clone(), vec![load_balancer.build()]).await;
        let codedeploy = match native {
            true => None,
            false => {
                let group = |name: &str| TargetGroupInfo::builder().name(name).build();
                let route = |listener: &str| TrafficRoute::builder().listener_arns(listener).build();
                let mut pair = TargetGroupPairInfo::builder()
                    .target_groups(group(&target_group_name(&balancer.blue)))
                    .target_groups(group(&target_group_name(&balancer.green)))
                    .prod_traffic_route(route(&balancer.production));
                if let Some((listener, _)) = &balancer.test {
                    pair = pair.test_traffic_route(route(listener));
                }
                let info = LoadBalancerInfo::builder().target_group_pair_info_list(pair.build()).build();
                Some(
                    self.codedeploy_group_with(
                        service,
                        service,
                        shape.ready.clone(),
                        shape.wait_minutes,
                        &role,
                        Some(info),
                    )
                    .await,
                )
            }
        };
        Balanced { ecs, balancer, codedeploy, role }
    }

    /// An internal ALB in a VPC of its own with a blue and a green target group (IP targets, as
    /// Fargate's), a production listener forwarding to blue and, with `shape.test_port`, a test
    /// listener forwarding to it too (CodeDeploy and ECS move them to green).
    async fn balancer(&self, service: &str, shape: &Shape) -> Balancer {
        let moto = Moto::shared();
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&self.sdk);
        let vpc = ec2(moto, "CreateVpc", &[("CidrBlock", "10.1.0.0/16")]);
        let vpc = xml_text(&vpc, "vpcId").expect("a vpcId").to_owned();
        let subnet = |cidr: &str, zone: &str| {
            let made = ec2(moto, "CreateSubnet", &[("VpcId", &vpc), ("CidrBlock", cidr), ("AvailabilityZone", zone)]);
            xml_text(&made, "subnetId").expect("a subnetId").to_owned()
        };
        let subnets = [subnet("10.1.1.0/24", "us-east-1a"), subnet("10.1.2.0/24", "us-east-1b")];
        // ELB names are at most 32 characters, unique per account and region: this world's own.
        let name = format!("{}-{:08x}", &service[..service.len().min(12)], fastrand::u32(..));
        let created = elb
            .create_load_balancer()
            .name(&name)
            .scheme(aws_sdk_elasticloadbalancingv2::types::LoadBalancerSchemeEnum::Internal)
            .set_subnets(Some(subnets.to_vec()))
            .send()
            .await
            .expect("create the load balancer");
        let lb = created.load_balancers().first().expect("a load balancer");
        let (lb_arn, dns_name) =
            (lb.load_balancer_arn().expect("an arn").to_owned(), lb.dns_name().expect("a DNS name").to_owned());
        let mut groups = Vec::new();
        for colour in ["blue", "green"] {
            let made = elb
                .create_target_group()
                .name(format!("{name}-{colour}"))
                .protocol(ProtocolEnum::Http)
                .port(80)
                .vpc_id(&vpc)
                .target_type(TargetTypeEnum::Ip)
                .send()
                .await
                .expect("create a target group");
            groups.push(made.target_groups()[0].target_group_arn().expect("an arn").to_owned());
        }
        let listener = |port: u16| {
            let elb = elb.clone();
            let (lb_arn, blue) = (lb_arn.clone(), groups[0].clone());
            async move {
                let forward = Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(blue).build();
                let made = elb
                    .create_listener()
                    .load_balancer_arn(lb_arn)
                    .protocol(ProtocolEnum::Http)
                    .port(i32::from(port))
                    .default_actions(forward)
                    .send()
                    .await
                    .expect("create a listener");
                made.listeners()[0].listener_arn().expect("an arn").to_owned()
            }
        };
        let production = listener(shape.production_port).await;
        let test = match shape.test_port {
            Some(port) => {
                let arn = listener(port).await;
                let rule = default_rule(&self.sdk, &arn).await;
                Some((arn, rule))
            }
            None => None,
        };
        Balancer { dns_name, blue: groups[0].clone(), green: groups[1].clone(), production, test }
    }

    /// CodeDeploy's service role for `service`, trusting codedeploy.amazonaws.com, with the AWS
    /// managed policy `policy` attached. Returns its ARN.
    pub async fn codedeploy_role(&self, service: &str, policy: &str) -> String {
        let iam = aws_sdk_iam::Client::new(&self.sdk);
        let name = format!("codedeploy-{}", self.repo(service));
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"codedeploy.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let created = iam.create_role().role_name(&name).assume_role_policy_document(trust).send().await;
        let arn = created.expect("create CodeDeploy's role").role().map(|r| r.arn().to_owned()).expect("a role");
        iam.attach_role_policy()
            .role_name(&name)
            .policy_arn(format!("arn:aws:iam::aws:policy/{policy}"))
            .send()
            .await
            .expect("attach the AWS managed policy (moto loads them: MOTO_IAM_LOAD_MANAGED_POLICIES)");
        arn
    }
}

/// A listener's default rule (every listener has one; ECS native names rules).
async fn default_rule(sdk: &aws_config::SdkConfig, listener: &str) -> String {
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(sdk);
    let rules = elb.describe_rules().listener_arn(listener).send().await.expect("describe the listener's rules");
    let default = rules.rules().iter().find(|r| r.is_default() == Some(true)).expect("a default rule");
    default.rule_arn().expect("an arn").to_owned()
}

/// A target group's name, from its ARN (`…:targetgroup/<name>/<id>`): CodeDeploy names them.
fn target_group_name(arn: &str) -> String {
    arn.rsplit('/').nth(1).unwrap_or_default().to_owned()
}
