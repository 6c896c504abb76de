//! template.yaml's grants, evaluated by tests/src/iam.rs with the template's own intrinsics
//! resolved (moto enforces no IAM, so nothing run against it shows what a role may do): each
//! function's role (its managed and inline policies), the dead-letter queue's policy, and the two
//! managed policies the stack outputs for people (ConvoyPublisherPolicy, ConvoyApproverPolicy).

use std::path::Path;
use std::sync::OnceLock;

use convoy_tests::iam::{ACCOUNT, Outcome, REGION, Request, STACK, Stack, evaluate, template_json};
use serde_json::Value;

const CLUSTER: &str = "prod";

fn template() -> &'static Value {
    static TEMPLATE: OnceLock<Value> = OnceLock::new();
    TEMPLATE.get_or_init(|| template_json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")))
}

fn stack(extra: &[(&str, &str)]) -> Stack {
    let mut parameters = vec![
        ("StateBucketName", "convoy-state"),
        ("AllowedServices", "web"),
        ("AllowedRepositories", "web"),
        ("ClusterName", CLUSTER),
        ("ServiceRoleArns", "arn:aws:iam::123456789012:role/web-task"),
        ("CodeDeployApplication", "shop"),
        ("ServiceSettings", "{}"),
    ];
    parameters.extend_from_slice(extra);
    Stack::new(template().clone(), &parameters)
}

/// Every optional part switched on: the pipeline, ECS native, notifications, the verify VPC.
fn everything() -> Stack {
    stack(&[
        ("PipelineName", "web-deploy"),
        ("PipelineSourceBucket", "web-source"),
        ("PipelineSourceKey", "web/bundle.zip"),
        ("EcsNativeServices", "api"),
        ("NotificationEmail", "ops@example.com"),
        ("MigrationLogGroupName", "/ecs/web"),
        ("VerifySubnetIds", "subnet-1,subnet-2"),
        ("VerifySecurityGroupIds", "sg-1"),
    ])
}

/// The policy documents of a role of the template: its managed policies (those of the template,
/// resolved; an AWS managed policy's ARN is kept as a string) and its inline policies.
fn role_policies(stack: &Stack, role: &str) -> (Vec<Value>, Vec<String>) {
    let properties = &stack.resource(role)["Properties"];
    let mut documents = Vec::new();
    let mut aws_managed = Vec::new();
    for managed in stack.resolve(&properties["ManagedPolicyArns"]).unwrap_or(Value::Array(vec![])).as_array().unwrap() {
        let arn = managed.as_str().unwrap();
        // A template policy's Ref resolves to "<stack>-<logical id>-SYNTHETIC".
        match arn.strip_prefix(&format!("{STACK}-")).and_then(|id| id.strip_suffix("-SYNTHETIC")) {
            Some(id) => documents.push(stack.resolve(&stack.resource(id)["Properties"]["PolicyDocument"]).unwrap()),
            None => aws_managed.push(arn.to_owned()),
        }
    }
    for inline in stack.resolve(&properties["Policies"]).unwrap_or(Value::Array(vec![])).as_array().unwrap() {
        documents.push(inline["PolicyDocument"].clone());
    }
    (documents, aws_managed)
}

/// Whether the policies allow `request`: one allows it and none denies it.
fn allowed(policies: &[Value], request: &Request) -> bool {
    let outcomes: Vec<Outcome> = policies.iter().map(|p| evaluate(p, request)).collect();
    !outcomes.iter().any(Outcome::is_denied) && outcomes.iter().any(|o| matches!(o, Outcome::Allowed(_)))
}

fn function_role(function: &str) -> String {
    format!("{function}Role")
}

fn managed_policy(stack: &Stack, id: &str) -> Value {
    stack.resolve(&stack.resource(id)["Properties"]["PolicyDocument"]).unwrap()
}

fn task(id: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/{id}")
}

#[test]
fn the_functions_that_gate_images_read_scan_findings_and_signing_status_of_the_accounts_repositories_only() {
    let stack = everything();
    let repository = format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/web");
    let foreign = "arn:aws:ecr:us-west-2:999999999999:repository/web";
    for function in ["ImagePushedFunction", "ManifestUploadedFunction", "ReconcilerFunction"] {
        let (policies, _) = role_policies(&stack, &function_role(function));
        for action in ["ecr:DescribeImageScanFindings", "ecr:DescribeImageSigningStatus"] {
            assert!(allowed(&policies, &Request::new(None, action, &repository)), "{function} may {action}");
            assert!(!allowed(&policies, &Request::new(None, action, foreign)), "{function} may not {action} elsewhere");
        }
        assert!(
            !allowed(&policies, &Request::new(None, "ecr:StartImageScan", &repository)),
            "{function} reads scans, never starts them"
        );
    }
    for function in ["MigrationStoppedFunction", "VerifyFunction", "DeploymentChangedFunction"] {
        let (policies, _) = role_policies(&stack, &function_role(function));
        let request = Request::new(None, "ecr:DescribeImageScanFindings", &repository);
        assert!(!allowed(&policies, &request), "{function} does not gate images");
    }
}

#[test]
fn only_the_reconciler_reads_deployments_in_batches_and_only_in_the_applications_groups() {
    let stack = everything();
    let group = |app: &str| format!("arn:aws:codedeploy:{REGION}:{ACCOUNT}:deploymentgroup:{app}/web");
    let (policies, _) = role_policies(&stack, &function_role("ReconcilerFunction"));
    let batch = |app: &str| Request::new(None, "codedeploy:BatchGetDeployments", &group(app));
    assert!(allowed(&policies, &batch("shop")), "the reconciler asks its deployments 25 at a time");
    assert!(!allowed(&policies, &batch("other")), "not another application's");
    for function in [
        "ImagePushedFunction",
        "ManifestUploadedFunction",
        "MigrationStoppedFunction",
        "VerifyFunction",
        "DeploymentChangedFunction",
    ] {
        let (policies, _) = role_policies(&stack, &function_role(function));
        assert!(!allowed(&policies, &batch("shop")), "{function} asks one deployment at a time, if any");
    }
}

#[test]
fn each_function_role_writes_logs_to_its_own_group_only() {
    let stack = everything();
    let functions = stack.resources_of("AWS::Serverless::Function");
    let groups: Vec<String> = functions
        .iter()
        .map(|f| {
            let group = stack.resolve(&stack.resource(&format!("{f}LogGroup"))["Properties"]["LogGroupName"]).unwrap();
            group.as_str().unwrap().to_owned()
        })
        .collect();
    for (function, own) in functions.iter().zip(&groups) {
        let logging = stack.resolve(&stack.resource(function)["Properties"]["LoggingConfig"]["LogGroup"]).unwrap();
        assert_eq!(logging, format!("{STACK}-{function}LogGroup-SYNTHETIC"), "{function} logs to its LogGroup");
        let (policies, aws_managed) = role_policies(&stack, &function_role(function));
        assert!(
            aws_managed.is_empty(),
            "{function}: {aws_managed:?} (AWSLambdaBasicExecutionRole writes to every group)"
        );
        for group in &groups {
            let stream =
                format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:log-stream:2026/11/26/[$LATEST]abc");
            let may = allowed(&policies, &Request::new(None, "logs:PutLogEvents", &stream));
            assert_eq!(may, group == own, "{function} PutLogEvents to {group}");
        }
        let creates =
            Request::new(None, "logs:CreateLogGroup", &format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:x:*"));
        assert!(!allowed(&policies, &creates), "{function} creates no log group");
    }
}

#[test]
fn the_log_groups_keep_their_events_for_the_configured_retention() {
    let stack = stack(&[("LogRetentionDays", "90")]);
    for function in stack.resources_of("AWS::Serverless::Function") {
        let retention = stack.resolve(&stack.resource(&format!("{function}LogGroup"))["Properties"]["RetentionInDays"]);
        assert_eq!(retention.unwrap(), "90", "{function}");
    }
    assert_eq!(template()["Parameters"]["LogRetentionDays"]["Default"], 30);
}

#[test]
fn stop_task_reaches_only_tasks_tagged_as_convoy_migrations() {
    let (policies, _) = role_policies(&stack(&[]), "ReconcilerFunctionRole");
    let stop = |arn: &str| Request::new(None, "ecs:StopTask", arn);
    assert!(allowed(&policies, &stop(&task("abc")).with("aws:ResourceTag/convoy:migration", "true")));
    assert!(!allowed(&policies, &stop(&task("abc"))), "an untagged task of the cluster");
    assert!(!allowed(&policies, &stop(&task("abc")).with("aws:ResourceTag/convoy:migration", "yes")));
    let elsewhere = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/other/abc");
    assert!(!allowed(&policies, &stop(&elsewhere).with("aws:ResourceTag/convoy:migration", "true")));
}

#[test]
fn run_task_starts_only_tagged_migration_definitions_in_the_cluster_and_tags_only_then() {
    let (policies, _) = role_policies(&stack(&[]), "ImagePushedFunctionRole");
    let cluster = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}");
    let run = |family: &str| {
        Request::new(None, "ecs:RunTask", &format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:3"))
            .with("ecs:cluster", &cluster)
    };
    let tagged = |r: Request| r.with("aws:ResourceTag/convoy:migration", "true");
    assert!(allowed(&policies, &tagged(run("web-convoy-migration"))));
    assert!(!allowed(&policies, &run("web-convoy-migration")), "a migration-named definition someone else registered");
    assert!(!allowed(&policies, &tagged(run("web"))), "the service's own definition");
    let other_cluster =
        tagged(run("web-convoy-migration")).with("ecs:cluster", "arn:aws:ecs:eu-west-1:123456789012:cluster/x");
    assert!(!allowed(&policies, &other_cluster));

    let tag = Request::new(None, "ecs:TagResource", &task("abc"));
    assert!(allowed(&policies, &tag.clone().with("ecs:CreateAction", "RunTask")));
    assert!(!allowed(&policies, &tag), "tagging an existing task");
}

#[test]
fn the_pipeline_bundle_may_be_written_to_the_source_key_only() {
    let stack = everything();
    let (policies, _) = role_policies(&stack, "ImagePushedFunctionRole");
    let put = |key: &str| Request::new(None, "s3:PutObject", &format!("arn:aws:s3:::web-source/{key}"));
    assert!(allowed(&policies, &put("web/bundle.zip")));
    assert!(!allowed(&policies, &put("web/other.zip")));
    assert!(!allowed(&policies, &put("artifacts/web-deploy/x.zip")));
}

#[test]
fn verify_runs_in_a_vpc_with_its_network_interfaces_only_when_subnets_are_given() {
    let eni = Request::new(None, "ec2:CreateNetworkInterface", "*");
    let outside = stack(&[]);
    assert!(outside.resolve(&outside.resource("VerifyFunction")["Properties"]["VpcConfig"]).is_none());
    assert!(!allowed(&role_policies(&outside, "VerifyFunctionRole").0, &eni));

    let inside = everything();
    let vpc = inside.resolve(&inside.resource("VerifyFunction")["Properties"]["VpcConfig"]).unwrap();
    assert_eq!(vpc["SubnetIds"], serde_json::json!(["subnet-1", "subnet-2"]));
    assert_eq!(vpc["SecurityGroupIds"], serde_json::json!(["sg-1"]));
    assert!(allowed(&role_policies(&inside, "VerifyFunctionRole").0, &eni));
    assert!(!allowed(&role_policies(&inside, "ReconcilerFunctionRole").0, &eni), "only verify runs in the VPC");
}

/// The rules that name the dead-letter queue in their DeadLetterConfig, as SAM and CloudFormation
/// name them (a function's event rule is `<function><event>`), with every optional part on.
fn dead_lettering_rules(stack: &Stack) -> Vec<String> {
    let mut rules = Vec::new();
    let resources = template()["Resources"].as_object().unwrap();
    for (id, resource) in resources {
        let condition = resource["Condition"].as_str();
        if condition.is_some_and(|c| !stack.condition(c)) {
            continue;
        }
        match resource["Type"].as_str() {
            Some("AWS::Serverless::Function") => {
                for (event, spec) in resource["Properties"]["Events"].as_object().into_iter().flatten() {
                    if !spec["Properties"]["DeadLetterConfig"].is_null() {
                        rules.push(format!("{id}{event}"));
                    }
                }
            }
            Some("AWS::Events::Rule") => {
                let targets = resource["Properties"]["Targets"].as_array().unwrap();
                if targets.iter().any(|t| !t["DeadLetterConfig"].is_null()) {
                    rules.push(id.clone());
                }
            }
            _ => {}
        }
    }
    rules
}

#[test]
fn the_dead_letter_queue_takes_messages_from_convoys_rules_and_no_other() {
    let stack = everything();
    let policy = stack.resolve(&stack.resource("DeadLetterQueuePolicy")["Properties"]["PolicyDocument"]).unwrap();
    let queue = stack.resolve(&serde_json::json!({"Fn::GetAtt": ["DeadLetterQueue", "Arn"]})).unwrap();
    let send = |rule: &str| {
        Request::new(Some("events.amazonaws.com"), "sqs:SendMessage", queue.as_str().unwrap())
            .with("aws:SourceArn", rule)
    };
    let rules = dead_lettering_rules(&stack);
    assert!(rules.len() >= 9, "{rules:?}");
    for rule in &rules {
        let arn = stack.resolve(&serde_json::json!({"Fn::GetAtt": [rule, "Arn"]})).unwrap();
        assert!(allowed(std::slice::from_ref(&policy), &send(arn.as_str().unwrap())), "{rule} may dead-letter");
    }
    let foreign = format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/someone-elses");
    assert!(!allowed(std::slice::from_ref(&policy), &send(&foreign)));
    let without_source = Request::new(Some("events.amazonaws.com"), "sqs:SendMessage", queue.as_str().unwrap());
    assert!(!allowed(&[policy], &without_source));
}

#[test]
fn verify_confirms_and_answers_hooks_of_the_applications_deployments_only() {
    let stack = everything();
    let (policies, _) = role_policies(&stack, "VerifyFunctionRole");
    let group = |app: &str| format!("arn:aws:codedeploy:{REGION}:{ACCOUNT}:deploymentgroup:{app}/web");
    for action in ["codedeploy:GetDeploymentTarget", "codedeploy:PutLifecycleEventHookExecutionStatus"] {
        assert!(allowed(&policies, &Request::new(None, action, &group("shop"))), "{action}");
        assert!(!allowed(&policies, &Request::new(None, action, &group("other"))), "{action} in another application");
    }
}

#[test]
fn the_approver_policy_continues_and_stops_the_applications_deployments_and_reads_records() {
    let native = everything();
    let policy = [managed_policy(&native, "ConvoyApproverPolicy")];
    let group = |app: &str| format!("arn:aws:codedeploy:{REGION}:{ACCOUNT}:deploymentgroup:{app}/web");
    for action in ["codedeploy:ContinueDeployment", "codedeploy:StopDeployment", "codedeploy:GetDeployment"] {
        assert!(allowed(&policy, &Request::new(None, action, &group("shop"))), "{action}");
        assert!(!allowed(&policy, &Request::new(None, action, &group("other"))), "{action} in another application");
    }
    let service_deployment = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{CLUSTER}/api/abc");
    for action in ["ecs:ContinueServiceDeployment", "ecs:StopServiceDeployment"] {
        assert!(allowed(&policy, &Request::new(None, action, &service_deployment)), "{action}");
    }
    let record = "arn:aws:s3:::convoy-state/state/web/r1.json";
    assert!(allowed(&policy, &Request::new(None, "s3:GetObject", record)));
    assert!(allowed(&policy, &Request::new(None, "s3:ListBucket", "arn:aws:s3:::convoy-state")));
    assert!(!allowed(&policy, &Request::new(None, "s3:PutObject", record)), "approving is not writing the record");
    // What `convoy approve` reads before the call: the gating alarms, the pipeline's deployment.
    let alarm = format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:web-5xx");
    assert!(allowed(&policy, &Request::new(None, "cloudwatch:DescribeAlarms", &alarm)));
    let pipeline = format!("arn:aws:codepipeline:{REGION}:{ACCOUNT}:web-deploy");
    assert!(allowed(&policy, &Request::new(None, "codepipeline:ListActionExecutions", &pipeline)));

    let codedeploy_only = stack(&[]);
    let policy = [managed_policy(&codedeploy_only, "ConvoyApproverPolicy")];
    assert!(!allowed(&policy, &Request::new(None, "ecs:ContinueServiceDeployment", &service_deployment)));
    assert!(!allowed(&policy, &Request::new(None, "codepipeline:ListActionExecutions", &pipeline)));
}

#[test]
fn the_publisher_policy_submits_manifests_and_reads_records_but_writes_none() {
    let stack = stack(&[]);
    let policy = [managed_policy(&stack, "ConvoyPublisherPolicy")];
    let object = |key: &str| format!("arn:aws:s3:::convoy-state/{key}");
    assert!(allowed(&policy, &Request::new(None, "s3:PutObject", &object("releases/web/r1.json"))));
    assert!(allowed(&policy, &Request::new(None, "s3:GetObject", &object("state/web/r1.json"))));
    for key in ["state/web/r1.json", "active/web/r1", "lock/web.json"] {
        assert!(!allowed(&policy, &Request::new(None, "s3:PutObject", &object(key))), "{key}");
    }
    let repository = format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/web");
    assert!(allowed(&policy, &Request::new(None, "ecr:PutImage", &repository)));
    assert!(
        !allowed(&policy, &Request::new(None, "codedeploy:ContinueDeployment", "*")),
        "publishing is not approving"
    );
}

/// No Allow statement anywhere in the template names a wildcard action (the TLS-only Deny's
/// `s3:*` is a Deny, which a wildcard can only make stricter).
#[test]
fn no_allow_statement_of_the_template_has_a_wildcard_action() {
    let stack = everything();
    let mut documents = Vec::new();
    fn collect(node: &Value, found: &mut Vec<Value>) {
        match node {
            Value::Object(map) => {
                if let Some(document) = map.get("PolicyDocument").or(map.get("AssumeRolePolicyDocument")) {
                    found.push(document.clone());
                }
                map.values().for_each(|v| collect(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| collect(v, found)),
            _ => {}
        }
    }
    collect(&template()["Resources"], &mut documents);
    assert!(documents.len() > 20, "{} policy documents", documents.len());
    for document in documents.iter().filter_map(|d| stack.resolve(d)) {
        for statement in document["Statement"].as_array().unwrap().iter().filter(|s| s["Effect"] == "Allow") {
            let actions = match &statement["Action"] {
                Value::String(one) => vec![one.clone()],
                Value::Array(many) => many.iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
                other => panic!("{other}"),
            };
            assert!(actions.iter().all(|a| !a.contains('*')), "{statement}");
        }
    }
}

#[test]
fn each_function_reads_the_settings_file_by_version_only_when_the_stack_names_one_and_writes_it_never() {
    let version = Request::new(None, "s3:GetObjectVersion", "arn:aws:s3:::convoy-state/settings/convoy.json");
    let other = Request::new(None, "s3:GetObjectVersion", "arn:aws:s3:::convoy-state/settings/other.json");
    let write = Request::new(None, "s3:PutObject", "arn:aws:s3:::convoy-state/settings/convoy.json");
    let with_file = stack(&[("SettingsVersion", "3HL4kqtJvjVBH40Nrjfkd"), ("ServiceSettings", "")]);
    let functions = with_file.resources_of("AWS::Serverless::Function");
    assert_eq!(functions.len(), 6);
    for function in &functions {
        let (policies, _) = role_policies(&with_file, &function_role(function));
        assert!(allowed(&policies, &version), "{function} reads the settings version");
        assert!(!allowed(&policies, &other), "{function} reads only settings/convoy.json");
        assert!(!allowed(&policies, &write), "{function} never writes the settings");
        let (without, _) = role_policies(&stack(&[]), &function_role(function));
        assert!(!allowed(&without, &version), "{function}: no grant while the stack names no version");
    }
    let publisher = managed_policy(&with_file, "ConvoySettingsPublisherPolicy");
    assert!(allowed(std::slice::from_ref(&publisher), &write));
    assert!(!allowed(&[publisher], &Request::new(None, "s3:PutObject", "arn:aws:s3:::convoy-state/state/web/r.json")));
}

#[test]
fn a_rolling_service_is_updated_and_followed_on_the_clusters_services_only_and_never_continued() {
    let rolling = stack(&[("EcsRollingServices", "worker")]);
    let service = |cluster: &str| format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/worker");
    let deployment = |cluster: &str| format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{cluster}/worker/sd1");
    let revision = |cluster: &str| format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service-revision/{cluster}/worker/1");
    for function in
        ["ManifestUploadedFunction", "MigrationStoppedFunction", "DeploymentChangedFunction", "ReconcilerFunction"]
    {
        let (policies, _) = role_policies(&rolling, &function_role(function));
        let may = |action: &str, resource: &str| allowed(&policies, &Request::new(None, action, resource));
        for (action, arn) in [
            ("ecs:DescribeServices", service as fn(&str) -> String),
            ("ecs:UpdateService", service),
            ("ecs:ListServiceDeployments", service),
            ("ecs:DescribeServiceDeployments", deployment),
            ("ecs:DescribeServiceRevisions", revision),
        ] {
            assert!(may(action, &arn(CLUSTER)), "{function}: {action}");
            assert!(!may(action, &arn("other")), "{function}: {action} in another cluster");
        }
        assert!(
            !may("ecs:ContinueServiceDeployment", &deployment(CLUSTER)),
            "{function}: a rolling update never pauses"
        );
        assert!(!may("ecs:StopServiceDeployment", &deployment(CLUSTER)), "{function}");
    }
    let (policies, _) = role_policies(&stack(&[]), &function_role("ReconcilerFunction"));
    let update = Request::new(None, "ecs:UpdateService", &service(CLUSTER));
    assert!(!allowed(&policies, &update), "neither ECS method on: no UpdateService at all");
}

#[test]
fn scheduled_tasks_are_pointed_only_at_the_clusters_tasks_passing_only_the_named_roles() {
    let role = "arn:aws:iam::123456789012:role/scheduled-report";
    let moving = stack(&[("ScheduledTaskRoleArns", role)]);
    let schedule = format!("arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/jobs/nightly");
    let rule = format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/hourly");
    let cluster = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}");
    for function in [
        "ImagePushedFunction",
        "ManifestUploadedFunction",
        "MigrationStoppedFunction",
        "DeploymentChangedFunction",
        "ReconcilerFunction",
        // A failed verification of a group's service puts the others' scheduled tasks back.
        "VerifyFunction",
    ] {
        let (policies, _) = role_policies(&moving, &function_role(function));
        let may = |request: Request| allowed(&policies, &request);
        assert!(may(Request::new(None, "scheduler:ListSchedules", "*")), "{function}: ListSchedules");
        assert!(may(Request::new(None, "events:ListRules", "*")), "{function}: ListRules");
        for action in ["scheduler:GetSchedule", "scheduler:UpdateSchedule"] {
            assert!(may(Request::new(None, action, &schedule)), "{function}: {action}");
            let elsewhere = "arn:aws:scheduler:us-west-2:999999999999:schedule/jobs/nightly";
            assert!(!may(Request::new(None, action, elsewhere)), "{function}: {action} in another account");
        }
        assert!(!may(Request::new(None, "scheduler:DeleteSchedule", &schedule)), "{function}: never deletes");
        assert!(may(Request::new(None, "events:ListTargetsByRule", &rule)), "{function}: ListTargetsByRule");
        let put = |target: &str| Request::new(None, "events:PutTargets", &rule).with("events:TargetArn", target);
        assert!(may(put(&cluster)), "{function}: PutTargets for the cluster's tasks");
        let other = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/other");
        assert!(!may(put(&other)), "{function}: PutTargets for another cluster");
        assert!(!may(put("arn:aws:lambda:us-east-1:123456789012:function:x")), "{function}: a Lambda target");
        assert!(!may(Request::new(None, "events:RemoveTargets", &rule)), "{function}: never removes a target");
        let pass = |role: &str, to: &str| Request::new(None, "iam:PassRole", role).with("iam:PassedToService", to);
        for service in ["scheduler.amazonaws.com", "events.amazonaws.com"] {
            assert!(may(pass(role, service)), "{function}: passes the named role to {service}");
        }
        assert!(!may(pass(role, "lambda.amazonaws.com")), "{function}: to another service");
        let admin = "arn:aws:iam::123456789012:role/admin";
        assert!(!may(pass(admin, "scheduler.amazonaws.com")), "{function}: another role");
    }
    let (policies, _) = role_policies(&stack(&[]), &function_role("ReconcilerFunction"));
    assert!(
        !allowed(&policies, &Request::new(None, "scheduler:UpdateSchedule", &schedule)),
        "no role named: no scheduled task moves"
    );
    assert!(!allowed(&policies, &Request::new(None, "events:ListRules", "*")), "no role named: nothing listed");
}

#[test]
fn only_the_reconciler_reads_the_named_trail_and_its_log_files_of_this_account_and_region() {
    let trail = format!("arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/audit");
    let key = format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab");
    let finding =
        stack(&[("ManifestTrailArn", &trail), ("ManifestTrailBucket", "audit-logs"), ("ManifestTrailKmsKeyArn", &key)]);
    let file = |path: &str| format!("arn:aws:s3:::audit-logs/{path}");
    let ours = format!(
        "AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/2026/12/07/{ACCOUNT}_CloudTrail_{REGION}_20261207T1010Z_x.json.gz"
    );
    let (policies, _) = role_policies(&finding, &function_role("ReconcilerFunction"));
    let may = |request: Request| allowed(&policies, &request);
    for action in ["cloudtrail:GetTrail", "cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors"] {
        assert!(may(Request::new(None, action, &trail)), "{action}");
        let other = format!("arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/other");
        assert!(!may(Request::new(None, action, &other)), "{action} on another trail");
    }
    assert!(!may(Request::new(None, "cloudtrail:StopLogging", &trail)), "never changes the trail");
    assert!(!may(Request::new(None, "cloudtrail:PutEventSelectors", &trail)), "never changes its selectors");
    assert!(may(Request::new(None, "s3:ListBucket", "arn:aws:s3:::audit-logs")));
    assert!(may(Request::new(None, "s3:GetObject", &file(&ours))), "this account's files");
    assert!(may(Request::new(None, "s3:GetObject", &file(&format!("audit/AWSLogs/o-abc/{ours}")))), "under a prefix");
    let elsewhere = ours.replace(ACCOUNT, "999999999999");
    assert!(!may(Request::new(None, "s3:GetObject", &file(&elsewhere))), "another account's files");
    assert!(!may(Request::new(None, "s3:GetObject", &file("secrets.txt"))), "anything else in the bucket");
    assert!(!may(Request::new(None, "s3:PutObject", &file(&ours))), "never writes a log file");
    assert!(may(Request::new(None, "kms:Decrypt", &key)), "the trail's key");
    for function in ["ImagePushedFunction", "ManifestUploadedFunction", "VerifyFunction", "DeploymentChangedFunction"] {
        let (policies, _) = role_policies(&finding, &function_role(function));
        assert!(!allowed(&policies, &Request::new(None, "s3:GetObject", &file(&ours))), "{function}");
        assert!(!allowed(&policies, &Request::new(None, "cloudtrail:GetTrail", &trail)), "{function}");
    }
    let (policies, _) = role_policies(&stack(&[]), &function_role("ReconcilerFunction"));
    assert!(!allowed(&policies, &Request::new(None, "cloudtrail:GetTrail", &trail)), "no trail named: nothing granted");
    assert!(!allowed(&policies, &Request::new(None, "s3:ListBucket", "arn:aws:s3:::audit-logs")));
}
