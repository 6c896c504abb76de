//! CloudTrail records of the four calls that decide a traffic shift, read from either place AWS
//! keeps them: the EventBridge "AWS API Call via CloudTrail" event (its `detail` is the record)
//! and CloudTrail's event history (`LookupEvents`, whose `CloudTrailEvent` is the same record as a
//! JSON string). Each record is hostile until checked: the operation is one of the four, the call
//! succeeded (no `errorCode`: a refused call is not a decision), it names a deployment, and
//! CloudTrail names the caller (`userIdentity.arn`).

use aws_lambda_events::cloudwatch_events::cloudtrail::AWSAPICall;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::names::{DeploymentId, DeploymentRef, ServiceDeploymentArn};
use crate::release::{Actor, ObservedCall, Via};

/// EventBridge's `detail-type` for CloudTrail management events.
pub const API_CALL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

/// One of the four operations: its CloudTrail `eventSource` and `eventName`, and the request
/// parameter that names the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub event_source: &'static str,
    pub event_name: &'static str,
    pub deployment_parameter: &'static str,
    /// Whether a successful call continues the deployment (for `ContinueServiceDeployment`, the
    /// request's `action` decides).
    pub continues: bool,
}

pub const OPERATIONS: [Operation; 4] = [
    Operation {
        event_source: "codedeploy.amazonaws.com",
        event_name: "ContinueDeployment",
        deployment_parameter: "deploymentId",
        continues: true,
    },
    Operation {
        event_source: "codedeploy.amazonaws.com",
        event_name: "StopDeployment",
        deployment_parameter: "deploymentId",
        continues: false,
    },
    Operation {
        event_source: "ecs.amazonaws.com",
        event_name: "ContinueServiceDeployment",
        deployment_parameter: "serviceDeploymentArn",
        continues: true,
    },
    Operation {
        event_source: "ecs.amazonaws.com",
        event_name: "StopServiceDeployment",
        deployment_parameter: "serviceDeploymentArn",
        continues: false,
    },
];

/// The operations that make the decision `approve` on `deployment` (CodeDeploy's, or ECS's service
/// deployment): what a look-up asks CloudTrail for.
pub fn operations_for(approve: bool, deployment: &DeploymentRef) -> Vec<Operation> {
    let native = matches!(deployment, DeploymentRef::Service(_));
    let source = if native { "ecs.amazonaws.com" } else { "codedeploy.amazonaws.com" };
    OPERATIONS
        .into_iter()
        .filter(|op| op.event_source == source)
        // A native rejection may be a ROLLBACK through ContinueServiceDeployment.
        .filter(|op| op.continues == approve || (native && op.continues && !approve))
        .collect()
}

/// Reads an EventBridge "AWS API Call via CloudTrail" event. `Err` says why it is not a decision.
pub fn parse_api_call_event(payload: &Value) -> Result<ObservedCall, String> {
    if payload["detail-type"].as_str() != Some(API_CALL_DETAIL_TYPE) {
        return Err(format!("not an {API_CALL_DETAIL_TYPE:?} event"));
    }
    read_record(&payload["detail"], Via::CloudTrailEvent)
}

/// Reads one CloudTrail record (an event's `detail`, or a parsed `CloudTrailEvent`).
pub fn read_record(record: &Value, via: Via) -> Result<ObservedCall, String> {
    // The shape is checked by aws_lambda_events' type; `errorCode` is not one of its fields.
    if let Some(code) = record.get("errorCode").filter(|c| !c.is_null()) {
        return Err(format!("the call was refused ({code}): a refused call is not a decision"));
    }
    let call: AWSAPICall<Value, Value> =
        serde_json::from_value(record.clone()).map_err(|e| format!("not a CloudTrail record: {e}"))?;
    let operation = OPERATIONS
        .into_iter()
        .find(|op| op.event_source == call.event_source && op.event_name == call.event_name)
        .ok_or_else(|| format!("{} {} does not decide a traffic shift", call.event_source, call.event_name))?;
    let named = call.request_parameters[operation.deployment_parameter]
        .as_str()
        .filter(|d| !d.is_empty() && d.len() <= 2048)
        .ok_or_else(|| format!("{} names no {}", call.event_name, operation.deployment_parameter))?;
    let deployment = match operation.event_source {
        "ecs.amazonaws.com" => ServiceDeploymentArn::new(named).map(DeploymentRef::Service),
        _ => DeploymentId::new(named).map(DeploymentRef::CodeDeploy),
    }
    .map_err(|e| e.to_string())?;
    let approve = match operation.event_name {
        // TERMINATION_WAIT ends the original task set after a shift: not the approval.
        "ContinueDeployment" if call.request_parameters["deploymentWaitType"].as_str() == Some("TERMINATION_WAIT") => {
            return Err("ContinueDeployment with TERMINATION_WAIT ends the original tasks; not a decision".into());
        }
        "ContinueServiceDeployment" => call.request_parameters["action"].as_str() != Some("ROLLBACK"),
        _ => operation.continues,
    };
    let principal_arn = call
        .user_identity
        .arn
        .clone()
        .filter(|arn| arn.starts_with("arn:"))
        .ok_or("CloudTrail names no principal ARN (userIdentity.arn)")?;
    if call.event_id.is_empty() {
        return Err("the record has no eventID".into());
    }
    let event_time: DateTime<Utc> =
        call.event_time.parse().map_err(|e| format!("eventTime {:?} is not a time: {e}", call.event_time))?;
    let source_ip = Some(call.source_ipaddress.clone()).filter(|ip| !ip.is_empty());
    let actor = Actor {
        session_name: Actor::session_of(&principal_arn),
        principal_arn,
        source_ip,
        event_id: call.event_id.clone(),
        event_time,
        operation: format!("{}:{}", operation.event_source.trim_end_matches(".amazonaws.com"), operation.event_name),
        via,
    };
    Ok(ObservedCall { deployment, approve, actor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_decision_is_looked_up_as_the_calls_that_make_it_and_no_other() {
        let names = |approve: bool, deployment: &DeploymentRef| {
            operations_for(approve, deployment).iter().map(|op| op.event_name).collect::<Vec<_>>()
        };
        let codedeploy = DeploymentRef::CodeDeploy(DeploymentId::new("d-ABCDEF123").unwrap());
        let native = DeploymentRef::Service(
            ServiceDeploymentArn::new("arn:aws:ecs:us-east-1:123456789012:service-deployment/c/web/abc").unwrap(),
        );
        assert_eq!(names(true, &codedeploy), ["ContinueDeployment"]);
        // A CodeDeploy rejection is a StopDeployment: a ContinueDeployment never rejects.
        assert_eq!(names(false, &codedeploy), ["StopDeployment"]);
        assert_eq!(names(true, &native), ["ContinueServiceDeployment"]);
        // A native rejection is a stop, or a ROLLBACK through ContinueServiceDeployment.
        assert_eq!(names(false, &native), ["ContinueServiceDeployment", "StopServiceDeployment"]);
    }

    fn fixture() -> Value {
        serde_json::from_str(include_str!("../../tests/fixtures/events/example-cloudtrail-continue-deployment.json"))
            .unwrap()
    }

    #[test]
    fn the_documented_event_names_its_principal_session_ip_and_event() {
        let call = parse_api_call_event(&fixture()).unwrap();
        assert!(call.approve);
        assert!(matches!(&call.deployment, DeploymentRef::CodeDeploy(id) if id.as_str().starts_with("d-")));
        assert!(call.actor.principal_arn.contains(":assumed-role/"));
        assert!(call.actor.session_name.is_some());
        assert!(call.actor.source_ip.is_some());
        assert!(!call.actor.event_id.is_empty());
        assert_eq!(call.actor.via, Via::CloudTrailEvent);
    }

    #[test]
    fn a_refused_call_is_not_a_decision() {
        let mut event = fixture();
        event["detail"]["errorCode"] = "DeploymentIsNotInReadyStateException".into();
        assert!(parse_api_call_event(&event).unwrap_err().contains("refused"));
    }

    #[test]
    fn a_call_without_a_principal_arn_is_refused() {
        let mut event = fixture();
        event["detail"]["userIdentity"].as_object_mut().unwrap().remove("arn");
        assert!(parse_api_call_event(&event).unwrap_err().contains("userIdentity.arn"));
    }

    #[test]
    fn a_call_without_a_deployment_id_is_refused() {
        let mut event = fixture();
        event["detail"]["requestParameters"] = serde_json::json!({});
        assert!(parse_api_call_event(&event).unwrap_err().contains("deploymentId"));
    }

    #[test]
    fn another_operation_is_not_a_decision() {
        let mut event = fixture();
        event["detail"]["eventName"] = "CreateDeployment".into();
        assert!(parse_api_call_event(&event).is_err());
    }

    #[test]
    fn a_stop_is_a_rejection() {
        let mut event = fixture();
        event["detail"]["eventName"] = "StopDeployment".into();
        assert!(!parse_api_call_event(&event).unwrap().approve);
    }

    #[test]
    fn a_termination_wait_continue_is_not_an_approval() {
        let mut event = fixture();
        event["detail"]["requestParameters"]["deploymentWaitType"] = "TERMINATION_WAIT".into();
        assert!(parse_api_call_event(&event).is_err());
    }

    #[test]
    fn a_native_rollback_through_continue_is_a_rejection() {
        let mut event = fixture();
        event["source"] = "aws.ecs".into();
        event["detail"]["eventSource"] = "ecs.amazonaws.com".into();
        event["detail"]["eventName"] = "ContinueServiceDeployment".into();
        event["detail"]["requestParameters"] = serde_json::json!({
            "serviceDeploymentArn": "arn:aws:ecs:us-east-1:123456789012:service-deployment/c/web/abc",
            "hookId": "h-1", "action": "ROLLBACK"
        });
        assert!(!parse_api_call_event(&event).unwrap().approve);
    }

    #[test]
    fn a_native_continue_names_the_service_deployment_it_continues() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:service-deployment/c/web/abc";
        let mut event = fixture();
        event["source"] = "aws.ecs".into();
        event["detail"]["eventSource"] = "ecs.amazonaws.com".into();
        event["detail"]["eventName"] = "ContinueServiceDeployment".into();
        event["detail"]["requestParameters"] = serde_json::json!({"serviceDeploymentArn": arn, "hookId": "h-1"});
        let call = parse_api_call_event(&event).unwrap();
        assert!(call.approve);
        assert!(
            matches!(&call.deployment, DeploymentRef::Service(named) if named.as_str() == arn),
            "an ECS call is about a service deployment, not a CodeDeploy one: {:?}",
            call.deployment
        );
    }

    #[test]
    fn an_empty_or_overlong_deployment_id_is_named_as_missing() {
        for named in [String::new(), "d-".to_owned() + &"A".repeat(2047)] {
            let mut event = fixture();
            event["detail"]["requestParameters"]["deploymentId"] = named.into();
            let err = parse_api_call_event(&event).unwrap_err();
            assert!(err.contains("names no deploymentId"), "{err}");
        }
    }
}
