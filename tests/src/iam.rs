//! template.yaml's resource policies, evaluated here because moto does not enforce bucket (or any
//! resource) policies: a write moto accepts says nothing about what S3 would refuse.
//!
//! Two parts, both small and deliberately partial:
//! - [`Stack`]: the template as written (tests/template_json.py turns its YAML into JSON) with the
//!   intrinsics a policy uses resolved from parameter values: `Ref`, `Fn::Sub`, `Fn::GetAtt`,
//!   `Fn::If` (with the template's `Conditions`: `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`,
//!   `Condition`), `Fn::Join`, `Fn::Split` and `AWS::NoValue`. A role's `GetAtt .Arn` is a synthetic ARN of the
//!   form CloudFormation gives (`arn:aws:iam::<account>:role/<stack>-<logical id>-SYNTHETIC`), the
//!   same one the tests present as the caller; a log group's is built from its name, as AWS does;
//!   any other `.Arn` (a queue, a rule SAM generates) is a synthetic ARN unique to the logical id.
//!   Any other intrinsic panics.
//! - [`evaluate`]: IAM's evaluation of one policy for one request, for exactly what the template
//!   uses (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>):
//!   an explicit Deny wins over any Allow; `Principal` `"*"` or `{"AWS": ...}`; `Action` matched
//!   case-insensitively and `Resource` (or `NotResource`: every resource but those) case-sensitively
//!   with `*` and `?` wildcards (StringLike);
//!   condition operators `StringEquals`, `StringNotEquals`, `StringLike`, `StringNotLike`,
//!   `ArnEquals`, `ArnLike` (each of the ARN's six colon-separated parts matched on its own, with
//!   wildcards), `ArnNotEquals`, `ArnNotLike`, `Bool` and `Null`
//!   (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html>).
//!   Several values of one key: any matches (a negated operator: none matches). A key missing from
//!   the request: a negated operator is true, any other false, `Null` "true" is true. `NotAction`,
//!   `NotPrincipal`, `...IfExists` and set operators (`ForAnyValue:`) panic: the evaluator must
//!   not guess.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::moto::venv_python;

/// The test account, region and stack name every synthetic ARN uses.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "eu-west-1";
pub const STACK: &str = "convoy";

/// template.yaml as written, as JSON (short-form tags in their long form).
pub fn template_json(template: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("template_json.py");
    let output = Command::new(venv_python()).arg(script).arg(template).output().expect("run template_json.py");
    assert!(output.status.success(), "template_json.py: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("template_json.py prints JSON")
}

/// The template with parameter values: resolves the intrinsics of any part of it.
pub struct Stack {
    template: Value,
    parameters: BTreeMap<String, Value>,
}

impl Stack {
    /// Each parameter's value: `given` (a string; a CommaDelimitedList's is split at commas as
    /// CloudFormation does), else its default. A parameter with neither panics when used.
    pub fn new(template: Value, given: &[(&str, &str)]) -> Self {
        let given: BTreeMap<&str, &str> = given.iter().copied().collect();
        let declared = template["Parameters"].as_object().cloned().unwrap_or_default();
        let mut parameters = BTreeMap::new();
        for (name, declaration) in &declared {
            let text = match (given.get(name.as_str()), &declaration["Default"]) {
                (Some(value), _) => (*value).to_owned(),
                (None, Value::String(default)) => default.clone(),
                (None, Value::Number(default)) => default.to_string(),
                (None, _) => continue,
            };
            let value = if declaration["Type"] == "CommaDelimitedList" {
                Value::Array(text.split(',').map(|item| Value::String(item.trim().to_owned())).collect())
            } else {
                Value::String(text)
            };
            parameters.insert(name.clone(), value);
        }
        if let Some(unknown) = given.keys().find(|name| !declared.contains_key(**name)) {
            panic!("{unknown} is not a parameter of the template");
        }
        Self { template, parameters }
    }

    /// The resource `id` as written.
    pub fn resource(&self, id: &str) -> &Value {
        let resource = &self.template["Resources"][id];
        assert!(resource.is_object(), "no resource {id} in the template");
        resource
    }

    /// The logical ids of the resources of `kind` (e.g. `AWS::Serverless::Function`).
    pub fn resources_of(&self, kind: &str) -> Vec<String> {
        let resources = self.template["Resources"].as_object().expect("Resources");
        resources.iter().filter(|(_, r)| r["Type"] == kind).map(|(id, _)| id.clone()).collect()
    }

    /// `node` with its intrinsics resolved; `None` for `AWS::NoValue`.
    pub fn resolve(&self, node: &Value) -> Option<Value> {
        match node {
            Value::Array(items) => Some(Value::Array(items.iter().filter_map(|item| self.resolve(item)).collect())),
            Value::Object(map) if map.len() == 1 && is_intrinsic(map.keys().next().unwrap()) => {
                let (name, argument) = map.iter().next().unwrap();
                self.intrinsic(name, argument)
            }
            Value::Object(map) => Some(Value::Object(
                map.iter().filter_map(|(key, value)| Some((key.clone(), self.resolve(value)?))).collect(),
            )),
            scalar => Some(scalar.clone()),
        }
    }

    fn intrinsic(&self, name: &str, argument: &Value) -> Option<Value> {
        match name {
            "Ref" => self.reference(argument.as_str().expect("Ref names a string")),
            "Fn::GetAtt" => Some(Value::String(self.attribute(argument))),
            "Fn::Sub" => Some(Value::String(self.substitute(argument))),
            "Fn::If" => {
                let [condition, then, otherwise] = argument.as_array().map(Vec::as_slice).unwrap_or_default() else {
                    panic!("Fn::If takes three arguments: {argument}");
                };
                let holds = self.condition(condition.as_str().expect("Fn::If names a condition"));
                self.resolve(if holds { then } else { otherwise })
            }
            "Fn::Join" => {
                let [delimiter, items] = argument.as_array().map(Vec::as_slice).unwrap_or_default() else {
                    panic!("Fn::Join takes two arguments: {argument}");
                };
                let items = self.resolve(items).expect("Fn::Join of a value");
                let items: Vec<&str> = items.as_array().expect("Fn::Join of a list").iter().map(text).collect();
                Some(Value::String(items.join(delimiter.as_str().expect("a literal delimiter"))))
            }
            "Fn::Split" => {
                let [delimiter, source] = argument.as_array().map(Vec::as_slice).unwrap_or_default() else {
                    panic!("Fn::Split takes two arguments: {argument}");
                };
                let source = self.resolve(source).expect("Fn::Split of a value");
                let parts = text(&source).split(delimiter.as_str().expect("a literal delimiter"));
                Some(Value::Array(parts.map(|part| Value::String(part.to_owned())).collect()))
            }
            other => panic!("iam.rs does not resolve {other}: add it, documented, if a policy needs it"),
        }
    }

    fn reference(&self, name: &str) -> Option<Value> {
        let pseudo = match name {
            "AWS::NoValue" => return None,
            "AWS::AccountId" => ACCOUNT,
            "AWS::Region" => REGION,
            "AWS::Partition" => "aws",
            "AWS::StackName" => STACK,
            "AWS::URLSuffix" => "amazonaws.com",
            _ => "",
        };
        if !pseudo.is_empty() {
            return Some(Value::String(pseudo.to_owned()));
        }
        if let Some(value) = self.parameters.get(name) {
            return Some(value.clone());
        }
        assert!(!self.template["Parameters"][name].is_object(), "parameter {name} has no value and no default");
        // A resource's Ref: its physical id, here a synthetic name.
        self.resource(name);
        Some(Value::String(format!("{STACK}-{name}-SYNTHETIC")))
    }

    /// `Fn::GetAtt` of `[id, attribute]` or `"id.attribute"`: a role's or a rule's ARN as
    /// CloudFormation forms it, with a synthetic physical name.
    fn attribute(&self, argument: &Value) -> String {
        let (id, attribute) = match argument {
            Value::String(dotted) => dotted.split_once('.').expect("Fn::GetAtt \"id.attribute\""),
            Value::Array(pair) if pair.len() == 2 => (text(&pair[0]), text(&pair[1])),
            other => panic!("Fn::GetAtt of {other}"),
        };
        let kind = self.template["Resources"][id]["Type"].as_str().unwrap_or("generated by SAM");
        match (kind, attribute) {
            ("AWS::IAM::Role", "Arn") => format!("arn:aws:iam::{ACCOUNT}:role/{STACK}-{id}-SYNTHETIC"),
            ("AWS::Logs::LogGroup", "Arn") => {
                let name = self.resolve(&self.resource(id)["Properties"]["LogGroupName"]).expect("a named log group");
                format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{}:*", text(&name))
            }
            ("AWS::SQS::Queue", "Arn") => format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK}-{id}-SYNTHETIC"),
            (_, "Arn") => format!("arn:aws:synthetic:{REGION}:{ACCOUNT}:{id}"),
            (kind, attribute) => panic!("iam.rs does not resolve GetAtt {id}.{attribute} ({kind})"),
        }
    }

    fn substitute(&self, argument: &Value) -> String {
        let (template, variables) = match argument {
            Value::String(template) => (template.as_str(), serde_json::Map::new()),
            Value::Array(pair) if pair.len() == 2 => {
                (text(&pair[0]), pair[1].as_object().cloned().expect("Fn::Sub variables are a map"))
            }
            other => panic!("Fn::Sub of {other}"),
        };
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').expect("an unclosed ${ in Fn::Sub") + start;
            let name = &rest[start + 2..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str(&format!("${{{literal}}}"));
            } else if let Some(value) = variables.get(name) {
                out.push_str(text(&self.resolve(value).expect("a Fn::Sub variable has a value")));
            } else if name.contains('.') && !name.starts_with("AWS::") {
                out.push_str(&self.attribute(&Value::String(name.to_owned())));
            } else {
                let value = self.reference(name).unwrap_or_else(|| panic!("${{{name}}} is AWS::NoValue"));
                out.push_str(text(&value));
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Whether the template's condition `name` holds.
    pub fn condition(&self, name: &str) -> bool {
        let definition = &self.template["Conditions"][name];
        assert!(!definition.is_null(), "no condition {name}");
        self.holds(definition)
    }

    fn holds(&self, node: &Value) -> bool {
        let (name, argument) = node.as_object().and_then(|m| m.iter().next()).expect("a condition function");
        let items = || argument.as_array().expect("a list of conditions").iter();
        match name.as_str() {
            "Condition" => self.condition(text(argument)),
            "Fn::Not" => !self.holds(&argument[0]),
            "Fn::And" => items().all(|c| self.holds(c)),
            "Fn::Or" => items().any(|c| self.holds(c)),
            "Fn::Equals" => self.resolve(&argument[0]) == self.resolve(&argument[1]),
            other => panic!("iam.rs does not evaluate the condition function {other}"),
        }
    }
}

fn is_intrinsic(key: &str) -> bool {
    key == "Ref" || key.starts_with("Fn::")
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_else(|| panic!("expected a string, got {value}"))
}

/// One request to S3 (or any service) as IAM sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `aws:PrincipalArn`: a role's ARN for any session of it; `None` for an anonymous caller. A
    /// service principal (`Principal: {"Service": ...}`) is given as its name
    /// (`events.amazonaws.com`), and has no `aws:PrincipalArn`.
    pub principal: Option<String>,
    pub action: String,
    pub resource: String,
    /// `aws:SecureTransport`.
    pub tls: bool,
    /// Other condition keys of the request (`aws:SourceArn`, `aws:ResourceTag/...`), by name.
    pub context: BTreeMap<String, String>,
}

impl Request {
    /// A request over TLS with no other condition keys.
    pub fn new(principal: Option<&str>, action: &str, resource: &str) -> Self {
        Self {
            principal: principal.map(str::to_owned),
            action: action.to_owned(),
            resource: resource.to_owned(),
            tls: true,
            context: BTreeMap::new(),
        }
    }

    /// The request with condition key `key` set to `value`.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.context.insert(key.to_lowercase(), value.to_owned());
        self
    }
}

/// What one policy says about a request, by the evaluation logic's first steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A Deny statement matches (its Sid): the request fails whatever else allows it.
    Denied(String),
    /// No Deny matches and an Allow does (its Sid).
    Allowed(String),
    /// No statement matches: other policies decide.
    Silent,
}

impl Outcome {
    pub fn is_denied(&self) -> bool {
        matches!(self, Outcome::Denied(_))
    }
}

/// Evaluates `policy` (resolved: no intrinsics left) for `request`. An explicit Deny wins.
pub fn evaluate(policy: &Value, request: &Request) -> Outcome {
    let statements = match &policy["Statement"] {
        Value::Array(statements) => statements.clone(),
        single @ Value::Object(_) => vec![single.clone()],
        other => panic!("a policy's Statement is a list or an object, not {other}"),
    };
    let mut context: BTreeMap<String, String> = request.context.clone();
    if let Some(principal) = request.principal.as_ref().filter(|p| p.starts_with("arn:")) {
        context.insert("aws:principalarn".into(), principal.clone());
    }
    context.insert("aws:securetransport".into(), request.tls.to_string());

    let matching: Vec<&Value> = statements.iter().filter(|s| applies(s, request, &context)).collect();
    let sid = |s: &Value| s["Sid"].as_str().unwrap_or("(no Sid)").to_owned();
    if let Some(deny) = matching.iter().find(|s| s["Effect"] == "Deny") {
        return Outcome::Denied(sid(deny));
    }
    match matching.iter().find(|s| s["Effect"] == "Allow") {
        Some(allow) => Outcome::Allowed(sid(allow)),
        None => Outcome::Silent,
    }
}

fn applies(statement: &Value, request: &Request, context: &BTreeMap<String, String>) -> bool {
    for unsupported in ["NotAction", "NotPrincipal"] {
        assert!(statement.get(unsupported).is_none(), "iam.rs does not evaluate {unsupported}");
    }
    let resource = match statement.get("NotResource") {
        Some(excluded) => {
            assert!(statement.get("Resource").is_none(), "a statement has Resource or NotResource, not both");
            !strings(excluded).iter().any(|r| glob(r, &request.resource))
        }
        None => strings(&statement["Resource"]).iter().any(|r| glob(r, &request.resource)),
    };
    principal_matches(&statement["Principal"], request.principal.as_deref())
        && strings(&statement["Action"]).iter().any(|a| glob(&a.to_lowercase(), &request.action.to_lowercase()))
        && resource
        && conditions_hold(&statement["Condition"], context)
}

fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().map(text).collect(),
        Value::Null => vec![],
        other => panic!("expected a string or a list of strings, got {other}"),
    }
}

fn principal_matches(principal: &Value, caller: Option<&str>) -> bool {
    match principal {
        // An identity policy has no Principal: it applies to its holder.
        Value::Null => true,
        Value::String(any) if any == "*" => true,
        Value::Object(map) => map.iter().any(|(kind, values)| {
            (kind == "AWS" || kind == "Service") && strings(values).iter().any(|p| *p == "*" || Some(*p) == caller)
        }),
        other => panic!("iam.rs does not evaluate the principal {other}"),
    }
}

fn conditions_hold(conditions: &Value, context: &BTreeMap<String, String>) -> bool {
    let Some(operators) = conditions.as_object() else {
        assert!(conditions.is_null(), "a Condition is a map: {conditions}");
        return true;
    };
    operators.iter().all(|(operator, keys)| {
        keys.as_object().expect("an operator maps keys to values").iter().all(|(key, values)| {
            let present = context.get(key.to_lowercase().as_str()).map(String::as_str);
            condition_holds(operator, present, &strings(values))
        })
    })
}

/// One operator on one key: `present` is the request's value, `None` when the key is missing.
pub fn condition_holds(operator: &str, present: Option<&str>, values: &[&str]) -> bool {
    let any = |matches: &dyn Fn(&str, &str) -> bool| present.is_some_and(|p| values.iter().any(|v| matches(v, p)));
    match operator {
        "StringEquals" => any(&|v, p| v == p),
        "StringNotEquals" => !any(&|v, p| v == p),
        "StringLike" => any(&glob),
        "StringNotLike" => !any(&glob),
        "ArnEquals" | "ArnLike" => any(&arn_like),
        "ArnNotEquals" | "ArnNotLike" => !any(&arn_like),
        "Bool" => any(&|v, p| v.eq_ignore_ascii_case(p)),
        "Null" => values.iter().any(|v| v.eq_ignore_ascii_case(if present.is_none() { "true" } else { "false" })),
        other => panic!("iam.rs does not evaluate the condition operator {other}"),
    }
}

/// StringLike: `*` matches any run of characters (also none), `?` exactly one.
pub fn glob(pattern: &str, value: &str) -> bool {
    let (pattern, value): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    // matched[j]: pattern[..i] matches value[..j], row by row over i.
    let mut matched = vec![false; value.len() + 1];
    matched[0] = true;
    for p in &pattern {
        let previous = matched.clone();
        matched[0] = previous[0] && *p == '*';
        for j in 1..=value.len() {
            matched[j] = match p {
                '*' => previous[j] || matched[j - 1],
                '?' => previous[j - 1],
                literal => previous[j - 1] && *literal == value[j - 1],
            };
        }
    }
    matched[value.len()]
}

/// ArnLike / ArnEquals: both ARNs have six colon-separated parts, each matched on its own.
pub fn arn_like(pattern: &str, value: &str) -> bool {
    let pattern: Vec<&str> = pattern.splitn(6, ':').collect();
    let value: Vec<&str> = value.splitn(6, ':').collect();
    pattern.len() == 6 && value.len() == 6 && pattern.iter().zip(&value).all(|(p, v)| glob(p, v))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn put(principal: Option<&str>, key: &str) -> Request {
        Request::new(principal, "s3:PutObject", &format!("arn:aws:s3:::b/{key}"))
    }

    #[test]
    fn not_resource_applies_to_every_resource_but_those_it_names() {
        let policy = json!({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
            "NotResource": ["arn:*:s3:::*/releases/web/*"]}]});
        assert!(!evaluate(&policy, &put(None, "releases/web/r1.json")).is_denied());
        assert!(evaluate(&policy, &put(None, "releases/api/r1.json")).is_denied());
    }

    #[test]
    fn a_star_matches_any_run_of_characters_and_a_question_mark_exactly_one() {
        assert!(glob("state/*", "state/web/r1.json"));
        assert!(glob("state/*", "state/"));
        assert!(!glob("state/*", "stat/x"));
        assert!(glob("lock/?.json", "lock/a.json"));
        assert!(!glob("lock/?.json", "lock/ab.json"));
        assert!(glob("*-convoy-migration:*", "web-convoy-migration:3"));
    }

    #[test]
    fn a_resource_is_matched_case_sensitively_and_an_action_case_insensitively() {
        let policy = json!({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:putobject",
            "Resource": "arn:aws:s3:::b/state/*"}]});
        assert!(evaluate(&policy, &put(None, "state/x")).is_denied());
        assert!(!evaluate(&policy, &put(None, "State/x")).is_denied());
    }

    #[test]
    fn an_arn_is_matched_part_by_part_and_a_star_does_not_cross_a_colon() {
        assert!(arn_like("arn:aws:iam::123456789012:role/ci-*", "arn:aws:iam::123456789012:role/ci-main"));
        assert!(!arn_like("arn:aws:iam::*:role/ci", "arn:aws:iam::123456789012:role/other"));
        assert!(!arn_like("arn:aws:iam::1234*", "arn:aws:iam::123456789012:role/x"), "five parts is no ARN");
        assert!(arn_like("arn:aws:iam::123456789012:role/x", "arn:aws:iam::123456789012:role/x"));
    }

    #[test]
    fn an_explicit_deny_wins_over_an_allow_for_the_same_request() {
        let policy = json!({"Statement": [
            {"Sid": "Allow", "Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"},
            {"Sid": "No", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "*"}]});
        assert_eq!(evaluate(&policy, &put(None, "k")), Outcome::Denied("No".into()));
        let mut read = put(None, "k");
        read.action = "s3:GetObject".into();
        assert_eq!(evaluate(&policy, &read), Outcome::Allowed("Allow".into()));
    }

    #[test]
    fn a_negated_operator_holds_when_the_key_matches_none_of_the_values_or_is_missing() {
        let values = ["arn:aws:iam::1:role/a", "arn:aws:iam::1:role/b"];
        assert!(!condition_holds("ArnNotEquals", Some("arn:aws:iam::1:role/b"), &values));
        assert!(condition_holds("ArnNotEquals", Some("arn:aws:iam::1:role/c"), &values));
        assert!(condition_holds("ArnNotEquals", None, &values));
        assert!(condition_holds("StringNotEquals", None, &["x"]));
    }

    #[test]
    fn a_positive_operator_fails_when_the_key_is_missing() {
        assert!(!condition_holds("ArnEquals", None, &["arn:aws:iam::1:role/a"]));
        assert!(!condition_holds("StringLike", None, &["*"]));
        assert!(!condition_holds("Bool", None, &["false"]));
    }

    #[test]
    fn null_true_holds_only_for_a_missing_key() {
        assert!(condition_holds("Null", None, &["true"]));
        assert!(!condition_holds("Null", Some("x"), &["true"]));
        assert!(condition_holds("Null", Some("x"), &["false"]));
    }

    #[test]
    fn bool_compares_the_requests_transport() {
        let policy = json!({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]});
        let mut plain = put(None, "k");
        assert!(!evaluate(&policy, &plain).is_denied());
        plain.tls = false;
        assert!(evaluate(&policy, &plain).is_denied());
    }

    #[test]
    fn every_condition_of_a_statement_must_hold() {
        let policy = json!({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "true"},
                          "ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::1:role/a"}}}]});
        assert!(evaluate(&policy, &put(Some("arn:aws:iam::1:role/b"), "k")).is_denied());
        assert!(!evaluate(&policy, &put(Some("arn:aws:iam::1:role/a"), "k")).is_denied());
    }

    #[test]
    fn a_service_principal_is_matched_by_name_and_other_keys_come_from_the_request() {
        let policy = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:r:1:q",
            "Condition": {"ArnEquals": {"aws:SourceArn": ["arn:aws:events:r:1:rule/a"]}}}]});
        let send = |from: &str, rule: &str| {
            evaluate(
                &policy,
                &Request::new(Some(from), "sqs:SendMessage", "arn:aws:sqs:r:1:q").with("aws:SourceArn", rule),
            )
        };
        assert!(matches!(send("events.amazonaws.com", "arn:aws:events:r:1:rule/a"), Outcome::Allowed(_)));
        assert_eq!(send("events.amazonaws.com", "arn:aws:events:r:1:rule/b"), Outcome::Silent);
        assert_eq!(send("sns.amazonaws.com", "arn:aws:events:r:1:rule/a"), Outcome::Silent);
    }

    #[test]
    #[should_panic(expected = "does not evaluate the condition operator StringEqualsIfExists")]
    fn an_operator_the_evaluator_does_not_know_is_refused_not_guessed() {
        condition_holds("StringEqualsIfExists", Some("x"), &["x"]);
    }

    #[test]
    #[should_panic(expected = "does not evaluate NotAction")]
    fn not_action_is_refused_not_guessed() {
        let policy = json!({"Statement": [{"Effect": "Deny", "Principal": "*", "NotAction": "s3:GetObject",
            "Resource": "*"}]});
        evaluate(&policy, &put(None, "k"));
    }

    #[test]
    fn intrinsics_resolve_from_parameters_defaults_and_conditions() {
        let template = json!({
            "Parameters": {
                "Bucket": {"Type": "String"},
                "Publishers": {"Type": "CommaDelimitedList", "Default": ""}
            },
            "Conditions": {"HasPublishers": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "Publishers"}]}, ""]}]}},
            "Resources": {"R": {"Type": "AWS::IAM::Role"}},
            "Value": [
                {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/*"},
                {"Fn::GetAtt": ["R", "Arn"]},
                {"Fn::Sub": "${R.Arn}"},
                {"Fn::If": ["HasPublishers", {"Ref": "Publishers"}, {"Ref": "AWS::NoValue"}]}
            ]
        });
        let stack = Stack::new(template.clone(), &[("Bucket", "b")]);
        let role = format!("arn:aws:iam::{ACCOUNT}:role/{STACK}-R-SYNTHETIC");
        assert_eq!(stack.resolve(&template["Value"]).unwrap(), json!(["arn:aws:s3:::b/*", role, role]));
        let stack = Stack::new(template.clone(), &[("Bucket", "b"), ("Publishers", "x,y")]);
        assert_eq!(stack.resolve(&template["Value"]).unwrap()[3], json!(["x", "y"]));
    }
}
