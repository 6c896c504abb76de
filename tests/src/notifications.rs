//! Release events on moto: an event bus, rules on it (template.yaml's notification rules, or one
//! taking every Convoy event) each delivering to an SQS queue the test reads, and the rendering of
//! the notification rules' input transformers as EventBridge does it.
//!
//! What moto does and does not: its EventBridge routes PutEvents to the rules of the bus and
//! delivers matches to SQS targets (not to SNS), and applies only input templates that are one
//! JSON value. So the notification rules' patterns are put on moto as the template writes them,
//! with a queue in place of the topic, and their multi-line text templates are rendered here
//! ([`render`]). There are no SDK crates for EventBridge's rules or SQS in the harness: these
//! are raw calls ([`Moto::raw_call`]).

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::moto::{ACCOUNT, Moto, REGION, venv_python};

/// One of template.yaml's notification rules, as CloudFormation would create it.
#[derive(Debug, Clone)]
pub struct NotificationRule {
    pub name: String,
    pub pattern: Value,
    pub input_paths: Vec<(String, String)>,
    pub input_template: String,
}

/// The notification rules of `template` (tests/notification_rules.py), by name.
pub fn notification_rules(template: &Path) -> Vec<NotificationRule> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/notification_rules.py");
    let output = Command::new(venv_python()).arg(script).arg(template).output().expect("run notification_rules.py");
    assert!(output.status.success(), "notification_rules.py: {}", String::from_utf8_lossy(&output.stderr));
    let rules: serde_json::Map<String, Value> = serde_json::from_slice(&output.stdout).expect("rules as JSON");
    rules
        .into_iter()
        .map(|(name, rule)| NotificationRule {
            name,
            pattern: rule["pattern"].clone(),
            input_paths: rule["input_paths"]
                .as_object()
                .expect("input paths")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("a path").to_owned()))
                .collect(),
            input_template: rule["input_template"].as_str().expect("a template").to_owned(),
        })
        .collect()
}

/// The repository's template.yaml.
pub fn template_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")
}

/// The text EventBridge sends a target for `event` through an input transformer: each `<name>`
/// replaced by the value at its path (`$.a.b`, dot notation), strings as they are, anything else
/// as JSON (`null` for a null). Text templates keep their quotes, as EventBridge's do.
pub fn render(input_paths: &[(String, String)], template: &str, event: &Value) -> String {
    let mut text = template.to_owned();
    for (name, path) in input_paths {
        let mut value = event;
        for part in path.trim_start_matches("$.").split('.') {
            value = value.get(part).unwrap_or(&Value::Null);
        }
        let shown = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        text = text.replace(&format!("<{name}>"), &shown);
    }
    text
}

/// An SQS queue on moto.
pub struct Queue {
    pub url: String,
    pub arn: String,
}

fn call(service: &str, target: &str, body: Value) -> Value {
    let content_type = if service == "sqs" { "application/x-amz-json-1.0" } else { "application/x-amz-json-1.1" };
    let (status, answer) = Moto::shared().raw_call(service, Some(target), content_type, &body.to_string());
    assert_eq!(status, 200, "{target} on moto: {answer}");
    serde_json::from_str(&answer).unwrap_or(Value::Null)
}

impl Queue {
    pub fn create(name: &str) -> Queue {
        let answer = call("sqs", "AmazonSQS.CreateQueue", json!({"QueueName": name}));
        let url = answer["QueueUrl"].as_str().expect("a queue url").to_owned();
        Queue { url, arn: format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}") }
    }

    /// Every message in the queue, oldest first, each body parsed as JSON; the queue is emptied.
    pub fn drain(&self) -> Vec<Value> {
        let mut bodies = Vec::new();
        loop {
            let answer = call(
                "sqs",
                "AmazonSQS.ReceiveMessage",
                json!({"QueueUrl": self.url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0}),
            );
            let messages = answer["Messages"].as_array().cloned().unwrap_or_default();
            if messages.is_empty() {
                return bodies;
            }
            for message in messages {
                bodies.push(serde_json::from_str(message["Body"].as_str().expect("a body")).expect("a JSON body"));
                call(
                    "sqs",
                    "AmazonSQS.DeleteMessage",
                    json!({"QueueUrl": self.url, "ReceiptHandle": message["ReceiptHandle"]}),
                );
            }
        }
    }
}

/// A custom event bus on moto (its own, so tests running at once do not see each other's events).
pub fn create_bus(name: &str) {
    call("events", "AWSEvents.CreateEventBus", json!({"Name": name}));
}

/// A rule on `bus` with `pattern` that delivers matching events, whole, to `queue`.
pub fn route(bus: &str, rule: &str, pattern: &Value, queue: &Queue) {
    call(
        "events",
        "AWSEvents.PutRule",
        json!({"Name": rule, "EventBusName": bus, "EventPattern": pattern.to_string(), "State": "ENABLED"}),
    );
    call(
        "events",
        "AWSEvents.PutTargets",
        json!({"Rule": rule, "EventBusName": bus, "Targets": [{"Id": "queue", "Arn": queue.arn}]}),
    );
}

/// Every Convoy release event.
pub fn every_release_event() -> Value {
    json!({"source": [convoy::notify::SOURCE], "detail-type": [convoy::notify::DETAIL_TYPE]})
}

/// template.yaml's notification rules on `bus`, each to a queue of its own (in place of the SNS
/// topic): (rule, queue).
pub fn notification_queues(bus: &str, suffix: &str) -> Vec<(NotificationRule, Queue)> {
    notification_rules(&template_path())
        .into_iter()
        .map(|rule| {
            let queue = Queue::create(&format!("{}-{suffix}", rule.name));
            route(bus, &format!("{}-{suffix}", rule.name), &rule.pattern, &queue);
            (rule, queue)
        })
        .collect()
}

/// The SNS messages the notification rules would send for the events their queues hold:
/// (rule, `detail.to`, message text), in the order the events arrived per rule.
pub fn notifications(queues: &[(NotificationRule, Queue)]) -> Vec<(String, String, String)> {
    let mut sent = Vec::new();
    for (rule, queue) in queues {
        for event in queue.drain() {
            let to = event["detail"]["to"].as_str().unwrap_or_default().to_owned();
            sent.push((rule.name.clone(), to, render(&rule.input_paths, &rule.input_template, &event)));
        }
    }
    sent
}
