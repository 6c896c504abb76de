//! Whether a role's identity policies let it call `lambda:InvokeFunction` on the verify function:
//! CodeDeploy invokes a hook's function with the deployment group's service role. This reads the
//! statements as IAM's policy evaluation logic does for one principal in one account: an explicit
//! `Deny` wins, then any `Allow` (`Action`/`NotAction`, `Resource`/`NotResource`, `*` and `?`
//! wildcards; actions match without regard to case, ARNs with it). Conditions are not evaluated:
//! a matching statement with a `Condition` is reported as such. What it cannot see (permissions
//! boundaries, SCPs, the function's own resource policy) is said with the verdict.

use serde_json::Value;

/// One policy document, with the name a person knows it by.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub document: Value,
}

/// The verdict on one action on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// An `Allow` statement of this policy matches (and no `Deny`).
    Allowed { by: String },
    /// Only statements with a `Condition` allow it: allowed when their conditions hold.
    Conditional { by: String },
    /// A `Deny` statement of this policy matches.
    Denied { by: String },
    /// No statement allows it.
    NotAllowed,
}

/// IAM's verdict on `action` against `resource` for a principal whose policies are `policies`.
pub fn access(policies: &[Policy], action: &str, resource: &str) -> Access {
    let mut allowed = None;
    let mut conditional = None;
    for policy in policies {
        for statement in statements(&policy.document) {
            if !matches_action(statement, action) || !matches_resource(statement, resource) {
                continue;
            }
            let conditioned = statement.get("Condition").is_some_and(|c| c.as_object().is_some_and(|o| !o.is_empty()));
            match statement.get("Effect").and_then(Value::as_str) {
                Some("Deny") if !conditioned => return Access::Denied { by: policy.name.clone() },
                Some("Allow") if conditioned => conditional = conditional.or(Some(policy.name.clone())),
                Some("Allow") => allowed = allowed.or(Some(policy.name.clone())),
                _ => {}
            }
        }
    }
    match (allowed, conditional) {
        (Some(by), _) => Access::Allowed { by },
        (None, Some(by)) => Access::Conditional { by },
        (None, None) => Access::NotAllowed,
    }
}

/// A document's statements: `Statement` is one object or a list of them.
fn statements(document: &Value) -> Vec<&Value> {
    match document.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    }
}

/// A string or a list of strings.
fn patterns(value: Option<&Value>) -> Option<Vec<&str>> {
    match value? {
        Value::String(one) => Some(vec![one.as_str()]),
        Value::Array(list) => Some(list.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

fn matches_action(statement: &Value, action: &str) -> bool {
    let fits = |p: &str| glob(&p.to_ascii_lowercase(), &action.to_ascii_lowercase());
    match (patterns(statement.get("Action")), patterns(statement.get("NotAction"))) {
        (Some(actions), _) => actions.into_iter().any(fits),
        (None, Some(excluded)) => !excluded.into_iter().any(fits),
        (None, None) => false,
    }
}

fn matches_resource(statement: &Value, resource: &str) -> bool {
    match (patterns(statement.get("Resource")), patterns(statement.get("NotResource"))) {
        (Some(resources), _) => resources.into_iter().any(|p| glob(p, resource)),
        (None, Some(excluded)) => !excluded.into_iter().any(|p| glob(p, resource)),
        (None, None) => false,
    }
}

/// IAM's wildcards: `*` any run of characters (`:` included), `?` any one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// IAM answers policy documents URL-encoded (RFC 3986); a plain JSON document is taken as is.
pub fn decode_document(text: &str) -> Result<Value, String> {
    let trimmed = text.trim_start();
    let json = if trimmed.starts_with('{') {
        trimmed.to_owned()
    } else {
        percent_encoding::percent_decode_str(trimmed)
            .decode_utf8()
            .map_err(|e| format!("the policy document is not URL-encoded UTF-8: {e}"))?
            .into_owned()
    };
    serde_json::from_str(&json).map_err(|e| format!("the policy document is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VERIFY: &str = "arn:aws:lambda:us-east-1:123456789012:function:convoy-verify";

    /// AWSCodeDeployRoleForECS (v3), as the AWS Managed Policy Reference prints it.
    fn for_ecs() -> Policy {
        let document = json!({"Version": "2012-10-17", "Statement": [
            {"Action": ["ecs:DescribeServices", "ecs:CreateTaskSet", "ecs:UpdateServicePrimaryTaskSet",
                        "ecs:DeleteTaskSet", "elasticloadbalancing:DescribeTargetGroups",
                        "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:ModifyListener",
                        "elasticloadbalancing:DescribeRules", "elasticloadbalancing:ModifyRule",
                        "lambda:InvokeFunction", "cloudwatch:DescribeAlarms", "sns:Publish", "s3:GetObject",
                        "s3:GetObjectVersion"],
             "Resource": "*", "Effect": "Allow"},
            {"Action": ["iam:PassRole"], "Effect": "Allow", "Resource": "*",
             "Condition": {"StringLike": {"iam:PassedToService": ["ecs-tasks.amazonaws.com"]}}}]});
        Policy { name: "AWSCodeDeployRoleForECS".into(), document }
    }

    /// AWSCodeDeployRoleForECSLimited (v3): hooks only on functions named `CodeDeployHook_*`.
    fn limited() -> Policy {
        let document = json!({"Version": "2012-10-17", "Statement": [
            {"Action": ["ecs:DescribeServices", "ecs:CreateTaskSet", "ecs:UpdateServicePrimaryTaskSet",
                        "ecs:DeleteTaskSet", "cloudwatch:DescribeAlarms"], "Resource": "*", "Effect": "Allow"},
            {"Action": ["lambda:InvokeFunction"], "Resource": "arn:aws:lambda:*:*:function:CodeDeployHook_*",
             "Effect": "Allow"}]});
        Policy { name: "AWSCodeDeployRoleForECSLimited".into(), document }
    }

    #[test]
    fn the_full_codedeploy_policy_lets_the_role_invoke_any_function() {
        assert_eq!(
            access(&[for_ecs()], "lambda:InvokeFunction", VERIFY),
            Access::Allowed { by: "AWSCodeDeployRoleForECS".into() }
        );
    }

    #[test]
    fn the_limited_policy_lets_the_role_invoke_only_functions_named_codedeployhook() {
        assert_eq!(access(&[limited()], "lambda:InvokeFunction", VERIFY), Access::NotAllowed);
        let hook = "arn:aws:lambda:us-east-1:123456789012:function:CodeDeployHook_verify";
        assert_eq!(
            access(&[limited()], "lambda:InvokeFunction", hook),
            Access::Allowed { by: "AWSCodeDeployRoleForECSLimited".into() }
        );
    }

    #[test]
    fn an_explicit_deny_wins_over_an_allow() {
        let deny = Policy {
            name: "no-lambda".into(),
            document: json!({"Statement": {"Effect": "Deny", "Action": "lambda:*", "Resource": "*"}}),
        };
        assert_eq!(
            access(&[for_ecs(), deny], "lambda:InvokeFunction", VERIFY),
            Access::Denied { by: "no-lambda".into() }
        );
    }

    #[test]
    fn actions_match_without_case_and_not_action_and_conditions_are_read() {
        let inline = |statement: Value| Policy { name: "inline".into(), document: json!({"Statement": [statement]}) };
        let lower = inline(json!({"Effect": "Allow", "Action": "LAMBDA:invoke*", "Resource": VERIFY}));
        assert!(matches!(access(&[lower], "lambda:InvokeFunction", VERIFY), Access::Allowed { .. }));
        let not_action = inline(json!({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}));
        assert!(matches!(access(&[not_action], "lambda:InvokeFunction", VERIFY), Access::Allowed { .. }));
        let elsewhere = inline(json!({"Effect": "Allow", "Action": "lambda:InvokeFunction",
                                      "Resource": "arn:aws:lambda:eu-west-1:123456789012:function:convoy-verify"}));
        assert_eq!(access(&[elsewhere], "lambda:InvokeFunction", VERIFY), Access::NotAllowed);
        let conditioned = inline(json!({"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*",
                                        "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}}));
        assert_eq!(
            access(&[conditioned], "lambda:InvokeFunction", VERIFY),
            Access::Conditional { by: "inline".into() }
        );
    }

    #[test]
    fn a_url_encoded_document_is_decoded_and_a_plain_one_taken_as_is() {
        let encoded = "%7B%22Statement%22%3A%5B%5D%7D";
        assert_eq!(decode_document(encoded).unwrap(), json!({"Statement": []}));
        assert_eq!(decode_document("{\"Statement\": []}").unwrap(), json!({"Statement": []}));
        assert!(decode_document("%7Bnot json").is_err());
    }
}
