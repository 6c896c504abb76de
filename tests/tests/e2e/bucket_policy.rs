//! The state bucket's policy (template.yaml StateBucketPolicy), synthesized from the template with
//! parameter values and evaluated by tests/src/iam.rs: moto does not enforce bucket policies, so a
//! write moto accepts proves nothing about S3. Each test asks whether the policy *denies* a
//! request (an explicit Deny, which no IAM grant overrides); what it allows is left to the callers'
//! own IAM policies.

use std::path::Path;
use std::sync::OnceLock;

use convoy::adapters::aws::S3Store;
use convoy_tests::iam::{ACCOUNT, Outcome, Request, Stack, evaluate, template_json};
use serde_json::Value;

const BUCKET: &str = "convoy-state";
const STRANGER: &str = "arn:aws:iam::123456789012:role/Admin";
const PUBLISHER: &str = "arn:aws:iam::123456789012:role/ci-publisher";

/// The writes a stranger must not make under Convoy's prefixes (a sample of the statement's list,
/// kept here so that dropping one from the template fails a test).
const WRITES: [&str; 6] = [
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObjectTagging",
    "s3:PutObjectAcl",
    "s3:ReplicateObject",
];

fn template() -> &'static Value {
    static TEMPLATE: OnceLock<Value> = OnceLock::new();
    TEMPLATE.get_or_init(|| template_json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")))
}

/// The stack with its required parameters set, and `extra`.
fn stack(extra: &[(&str, &str)]) -> Stack {
    let mut parameters = vec![
        ("StateBucketName", BUCKET),
        ("AllowedServices", "web"),
        ("AllowedRepositories", "web"),
        ("ClusterName", "prod"),
        ("ServiceRoleArns", "arn:aws:iam::123456789012:role/web-task"),
        ("CodeDeployApplication", "shop"),
        ("ServiceSettings", "{}"),
    ];
    parameters.extend_from_slice(extra);
    Stack::new(template().clone(), &parameters)
}

/// StateBucketPolicy's document as CloudFormation would create it with these parameters.
fn policy_of(stack: &Stack) -> Value {
    stack.resolve(&stack.resource("StateBucketPolicy")["Properties"]["PolicyDocument"]).expect("a policy")
}

fn policy(extra: &[(&str, &str)]) -> Value {
    policy_of(&stack(extra))
}

/// Each Convoy function's role ARN, from the function's own `Role` (so the test presents exactly
/// the role the function runs with).
fn function_roles(stack: &Stack) -> Vec<(String, String)> {
    let functions = stack.resources_of("AWS::Serverless::Function");
    assert_eq!(functions.len(), 6, "Convoy's functions: {functions:?}");
    functions
        .into_iter()
        .map(|f| {
            let role = stack.resolve(&stack.resource(&f)["Properties"]["Role"]).expect("each function names its role");
            (f, role.as_str().expect("a role ARN").to_owned())
        })
        .collect()
}

fn request(principal: Option<&str>, action: &str, key: &str) -> Request {
    Request::new(principal, action, &format!("arn:aws:s3:::{BUCKET}/{key}"))
}

fn denied(policy: &Value, principal: Option<&str>, action: &str, key: &str) -> bool {
    evaluate(policy, &request(principal, action, key)).is_denied()
}

#[test]
fn a_stranger_writing_a_record_under_state_is_denied() {
    let outcome = evaluate(&policy(&[]), &request(Some(STRANGER), "s3:PutObject", "state/web/r1.json"));
    assert_eq!(outcome, Outcome::Denied("OnlyConvoyWritesItsPrefixes".into()));
}

#[test]
fn a_stranger_writing_or_deleting_under_any_prefix_convoy_owns_is_denied() {
    let policy = policy(&[]);
    for prefix in S3Store::OWNED_PREFIXES {
        for action in WRITES {
            assert!(denied(&policy, Some(STRANGER), action, &format!("{prefix}web/r1.json")), "{action} {prefix}");
        }
    }
}

#[test]
fn deleting_a_record_or_one_of_its_versions_by_a_stranger_is_denied() {
    let policy = policy(&[]);
    assert!(denied(&policy, Some(STRANGER), "s3:DeleteObject", "state/web/r1.json"));
    assert!(denied(&policy, Some(STRANGER), "s3:DeleteObjectVersion", "state/web/r1.json"));
    assert!(denied(&policy, Some(STRANGER), "s3:DeleteObject", "lock/web.json"));
}

#[test]
fn each_convoy_function_role_writing_its_keys_is_not_denied() {
    let stack = stack(&[]);
    let policy = policy_of(&stack);
    for (function, role) in function_roles(&stack) {
        for prefix in S3Store::OWNED_PREFIXES {
            for action in ["s3:PutObject", "s3:DeleteObject"] {
                let key = format!("{prefix}web/r1.json");
                assert!(!denied(&policy, Some(&role), action, &key), "{function} ({role}) {action} {key}");
            }
        }
    }
}

#[test]
fn a_caller_without_a_principal_arn_writing_a_record_is_denied() {
    assert!(denied(&policy(&[]), None, "s3:PutObject", "state/web/r1.json"));
}

#[test]
fn a_lookalike_of_a_convoy_role_in_another_account_is_denied() {
    let stack = stack(&[]);
    let (_, role) = function_roles(&stack).remove(0);
    let elsewhere = role.replace(ACCOUNT, "999999999999");
    assert!(denied(&policy_of(&stack), Some(&elsewhere), "s3:PutObject", "state/web/r1.json"));
}

#[test]
fn reading_records_is_left_to_iam_not_denied_by_the_bucket_policy() {
    let policy = policy(&[]);
    assert_eq!(evaluate(&policy, &request(Some(STRANGER), "s3:GetObject", "state/web/r1.json")), Outcome::Silent);
}

#[test]
fn a_publisher_writing_a_manifest_is_not_denied_when_listed() {
    let policy = policy(&[("PublisherPrincipalArns", PUBLISHER)]);
    assert!(!denied(&policy, Some(PUBLISHER), "s3:PutObject", "releases/web/r1.json"));
}

#[test]
fn a_stranger_writing_a_manifest_is_denied_when_publishers_are_listed() {
    let policy = policy(&[("PublisherPrincipalArns", PUBLISHER)]);
    let outcome = evaluate(&policy, &request(Some(STRANGER), "s3:PutObject", "releases/web/r1.json"));
    assert_eq!(outcome, Outcome::Denied("OnlyPublishersWriteManifests".into()));
    assert!(denied(&policy, Some(STRANGER), "s3:DeleteObject", "releases/web/r1.json"));
}

#[test]
fn a_stranger_writing_a_manifest_is_not_denied_when_the_list_is_empty() {
    let policy = policy(&[]);
    assert!(!denied(&policy, Some(STRANGER), "s3:PutObject", "releases/web/r1.json"));
    let sids: Vec<&str> = policy["Statement"].as_array().unwrap().iter().filter_map(|s| s["Sid"].as_str()).collect();
    assert!(!sids.contains(&"OnlyPublishersWriteManifests"), "{sids:?}");
}

#[test]
fn a_publisher_pattern_admits_the_roles_it_matches_and_no_other() {
    let policy =
        policy(&[("PublisherPrincipalArns", "arn:aws:iam::123456789012:role/ci-*,arn:aws:iam::123456789012:user/rm")]);
    assert!(!denied(&policy, Some(PUBLISHER), "s3:PutObject", "releases/web/r1.json"));
    assert!(!denied(&policy, Some("arn:aws:iam::123456789012:user/rm"), "s3:PutObject", "releases/web/r1.json"));
    assert!(denied(&policy, Some("arn:aws:iam::123456789012:user/rm2"), "s3:PutObject", "releases/web/r1.json"));
}

#[test]
fn a_listed_publisher_writing_a_record_under_state_is_denied() {
    let policy = policy(&[("PublisherPrincipalArns", PUBLISHER)]);
    assert!(denied(&policy, Some(PUBLISHER), "s3:PutObject", "state/web/r1.json"));
}

#[test]
fn a_non_tls_request_is_denied_even_for_convoy() {
    let stack = stack(&[]);
    let policy = policy_of(&stack);
    let (_, role) = function_roles(&stack).remove(0);
    for (principal, action) in [(Some(role.as_str()), "s3:PutObject"), (Some(STRANGER), "s3:GetObject")] {
        let mut plain = request(principal, action, "state/web/r1.json");
        plain.tls = false;
        assert_eq!(evaluate(&policy, &plain), Outcome::Denied("TlsOnly".into()));
    }
}

/// The checks above must be able to fail: the same questions on policies with one thing taken
/// out give the other answer.
#[test]
fn a_policy_missing_a_function_role_or_the_prefix_statement_is_caught() {
    let stack = stack(&[]);
    let policy = policy_of(&stack);
    let (function, role) = function_roles(&stack).remove(3);

    let mut without_role = policy.clone();
    let statement = without_role["Statement"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["Sid"] == "OnlyConvoyWritesItsPrefixes")
        .unwrap();
    statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"].as_array_mut().unwrap().retain(|r| r != &role);
    assert!(!denied(&policy, Some(&role), "s3:PutObject", "state/web/r1.json"));
    assert!(denied(&without_role, Some(&role), "s3:PutObject", "state/web/r1.json"), "{function} would be locked out");

    let mut without_statement = policy.clone();
    without_statement["Statement"].as_array_mut().unwrap().retain(|s| s["Sid"] != "OnlyConvoyWritesItsPrefixes");
    assert!(denied(&policy, Some(STRANGER), "s3:PutObject", "state/web/r1.json"));
    assert!(!denied(&without_statement, Some(STRANGER), "s3:PutObject", "state/web/r1.json"));
}

/// The figures: who may write where, as the synthesized policy says (printed with --nocapture).
#[test]
fn the_write_matrix_is_convoy_for_its_prefixes_and_the_publishers_for_manifests() {
    let stack = stack(&[("PublisherPrincipalArns", PUBLISHER)]);
    let policy = policy_of(&stack);
    let (_, reconciler) = function_roles(&stack).into_iter().find(|(f, _)| f == "ReconcilerFunction").unwrap();
    let callers =
        [("reconciler role", Some(reconciler.as_str())), ("publisher", Some(PUBLISHER)), ("stranger", Some(STRANGER))];
    let mut table = String::from("PutObject           reconciler role   publisher   stranger\n");
    for prefix in S3Store::OWNED_PREFIXES.iter().chain(&["releases/"]) {
        let row: Vec<bool> = callers
            .iter()
            .map(|(_, who)| denied(&policy, *who, "s3:PutObject", &format!("{prefix}web/r1.json")))
            .collect();
        let expected = if *prefix == "releases/" { [true, false, true] } else { [false, true, true] };
        assert_eq!(row, expected, "{prefix}: denied for {:?}", callers.map(|(name, _)| name));
        let cell = |d: bool| if d { "denied" } else { "-" };
        table.push_str(&format!("{prefix:<18}  {:<16}  {:<10}  {}\n", cell(row[0]), cell(row[1]), cell(row[2])));
    }
    println!(
        "StateBucketPolicy (template.yaml, PublisherPrincipalArns={PUBLISHER}), evaluated by tests/src/iam.rs:\n{table}"
    );
}

// One team's CI ships only its own services (PublisherTeamNArns / PublisherTeamNServices).

const TEAM_WEB: &str = "arn:aws:iam::123456789012:role/ci-web";

fn teams() -> Value {
    policy(&[
        ("AllowedServices", "web,api,billing"),
        ("PublisherTeam1Arns", TEAM_WEB),
        ("PublisherTeam1Services", "web,billing"),
        ("PublisherTeam2Arns", "arn:aws:iam::123456789012:role/ci-api-*"),
        ("PublisherTeam2Services", "api"),
    ])
}

#[test]
fn a_teams_ci_writes_the_manifests_of_its_own_services_only() {
    let policy = teams();
    for key in ["releases/web/r1.json", "releases/billing/r7.json"] {
        assert!(!denied(&policy, Some(TEAM_WEB), "s3:PutObject", key), "{key}");
    }
    let outcome = evaluate(&policy, &request(Some(TEAM_WEB), "s3:PutObject", "releases/api/r1.json"));
    assert_eq!(outcome, Outcome::Denied("Team1WritesOnlyItsServices".into()));
    assert!(denied(&policy, Some(TEAM_WEB), "s3:DeleteObject", "releases/api/r1.json"));
    // A prefix of another service's name is not that service.
    assert!(denied(&policy, Some(TEAM_WEB), "s3:PutObject", "releases/web2/r1.json"));
    let api = "arn:aws:iam::123456789012:role/ci-api-deploy";
    assert!(!denied(&policy, Some(api), "s3:PutObject", "releases/api/r1.json"));
    assert!(denied(&policy, Some(api), "s3:PutObject", "releases/web/r1.json"));
}

#[test]
fn without_teams_no_team_statement_is_in_the_policy() {
    let policy = policy(&[]);
    let sids: Vec<&str> = policy["Statement"].as_array().unwrap().iter().filter_map(|s| s["Sid"].as_str()).collect();
    assert!(!sids.iter().any(|s| s.starts_with("Team")), "{sids:?}");
}

// The bucket's configuration: only the break-glass principal (by default the root user) changes it.

const BUCKET_CONFIGURATION: [&str; 6] = [
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketNotification",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketVersioning",
    "s3:PutBucketOwnershipControls",
];

fn on_bucket(principal: &str, action: &str) -> Request {
    Request::new(Some(principal), action, &format!("arn:aws:s3:::{BUCKET}"))
}

#[test]
fn an_administrator_or_a_convoy_role_changing_the_buckets_lifecycle_notifications_or_policy_is_denied() {
    let stack = stack(&[]);
    let policy = policy_of(&stack);
    let (_, role) = function_roles(&stack).remove(0);
    for action in BUCKET_CONFIGURATION {
        for who in [STRANGER, PUBLISHER, role.as_str()] {
            let outcome = evaluate(&policy, &on_bucket(who, action));
            assert_eq!(outcome, Outcome::Denied("OnlyBreakGlassChangesTheBucket".into()), "{who} {action}");
        }
    }
}

#[test]
fn the_break_glass_principal_or_by_default_the_root_user_may_change_the_bucket() {
    let root = format!("arn:aws:iam::{ACCOUNT}:root");
    let breakglass = "arn:aws:iam::123456789012:role/cfn-deployer";
    let default = policy(&[]);
    let named = policy(&[("BreakGlassPrincipalArn", breakglass)]);
    for action in BUCKET_CONFIGURATION {
        assert!(!evaluate(&default, &on_bucket(&root, action)).is_denied(), "root {action}");
        assert!(!evaluate(&named, &on_bucket(breakglass, action)).is_denied(), "break glass {action}");
        assert!(evaluate(&named, &on_bucket(&root, action)).is_denied(), "once named, root is not it: {action}");
    }
}

// Convoy's event bus: only Convoy's roles put events there.

fn bus_policy(stack: &Stack) -> Value {
    stack.resolve(&stack.resource("ConvoyEventBus")["Properties"]["Policy"]).expect("the bus's policy")
}

#[test]
fn only_convoys_function_roles_put_events_on_its_bus() {
    let stack = stack(&[]);
    let policy = bus_policy(&stack);
    let bus = format!("arn:aws:events:eu-west-1:{ACCOUNT}:event-bus/convoy-convoy");
    let put = |who: &str| Request::new(Some(who), "events:PutEvents", &bus).with("events:source", "convoy");
    assert_eq!(evaluate(&policy, &put(STRANGER)), Outcome::Denied("OnlyConvoyPutsEvents".into()));
    assert!(evaluate(&policy, &put(PUBLISHER)).is_denied());
    for (function, role) in function_roles(&stack) {
        assert!(!evaluate(&policy, &put(&role)).is_denied(), "{function}");
    }
    // The roles' own grant names the same bus.
    let records = stack.resolve(&stack.resource("ReleaseRecordsPolicy")["Properties"]["PolicyDocument"]).unwrap();
    let announce = records["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "AnnounceReleaseStateChanges");
    assert_eq!(announce.unwrap()["Resource"], Value::String(bus));
}

// Reserved concurrency and the state bucket's access logs, as parameters.

#[test]
fn reserved_concurrency_and_access_logging_follow_their_parameters_and_are_off_by_default() {
    let globals = |stack: &Stack| stack.resolve(&template()["Globals"]["Function"]).unwrap();
    assert!(globals(&stack(&[])).get("ReservedConcurrentExecutions").is_none(), "0: unreserved");
    let reserved = stack(&[("ReservedConcurrency", "5")]);
    assert_eq!(globals(&reserved)["ReservedConcurrentExecutions"], Value::String("5".into()));

    let logging = |stack: &Stack| stack.resolve(&stack.resource("StateBucket")["Properties"]).unwrap();
    assert!(logging(&stack(&[])).get("LoggingConfiguration").is_none());
    let logged = logging(&stack(&[("StateBucketAccessLogBucket", "access-logs")]));
    assert_eq!(logged["LoggingConfiguration"]["DestinationBucketName"], "access-logs");
    assert_eq!(logged["LoggingConfiguration"]["LogFilePrefix"], format!("{BUCKET}/"));
}

const SETTINGS: &str = "settings/convoy.json";
const OPERATOR: &str = "arn:aws:iam::123456789012:role/infra-deploy";

#[test]
fn the_settings_file_is_written_only_by_the_settings_publishers_not_by_ci_or_convoy() {
    let stack = stack(&[("SettingsPublisherArns", OPERATOR), ("PublisherPrincipalArns", PUBLISHER)]);
    let policy = policy_of(&stack);
    for action in WRITES {
        assert!(!denied(&policy, Some(OPERATOR), action, SETTINGS), "the operator's {action}");
        for stranger in [STRANGER, PUBLISHER] {
            let outcome = evaluate(&policy, &request(Some(stranger), action, SETTINGS));
            assert_eq!(outcome, Outcome::Denied("OnlySettingsPublishersWriteSettings".into()), "{stranger} {action}");
        }
        // Convoy reads the settings it runs on and never writes them.
        for (function, role) in function_roles(&stack) {
            assert!(denied(&policy, Some(&role), action, SETTINGS), "{function} {action}");
        }
    }
}

#[test]
fn without_settings_publishers_only_the_break_glass_principal_writes_the_settings() {
    let root = format!("arn:aws:iam::{ACCOUNT}:root");
    let by_default = policy(&[]);
    assert!(!denied(&by_default, Some(&root), "s3:PutObject", SETTINGS));
    assert!(denied(&by_default, Some(STRANGER), "s3:PutObject", SETTINGS));
    let glass = "arn:aws:iam::123456789012:role/cfn-deploy";
    let with_glass = policy(&[("BreakGlassPrincipalArn", glass)]);
    assert!(!denied(&with_glass, Some(glass), "s3:PutObject", SETTINGS));
    assert!(denied(&with_glass, Some(&root), "s3:PutObject", SETTINGS));
}
