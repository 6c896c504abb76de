//! CloudTrail's event history.

use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::names::DeploymentRef;

/// CloudTrail's event history as a test sets it: the successful calls it recorded, each with its
/// caller; a look-up filters them as `LookupEvents` plus Convoy's deployment filter do. Every
/// look-up is counted (the real one is rate-limited).
#[derive(Default)]
pub struct MemoryApiCalls {
    recorded: Mutex<Vec<crate::release::ObservedCall>>,
    lookups: std::sync::atomic::AtomicUsize,
}

impl MemoryApiCalls {
    pub fn record(&self, call: crate::release::ObservedCall) {
        lock(&self.recorded).push(call);
    }

    pub fn lookups(&self) -> usize {
        self.lookups.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl crate::ports::ApiCalls for MemoryApiCalls {
    async fn decisions_on(
        &self,
        deployment: &DeploymentRef,
        approve: bool,
        since: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<crate::release::ObservedCall>, crate::error::TrailError> {
        self.lookups.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut found: Vec<_> = lock(&self.recorded)
            .iter()
            .filter(|c| c.deployment == *deployment && c.approve == approve)
            .filter(|c| c.actor.event_time >= since && c.actor.event_time <= until)
            .cloned()
            .collect();
        found.sort_by_key(|c| c.actor.event_time);
        Ok(found)
    }
}

#[cfg(test)]
mod api_calls_tests {
    use super::*;
    use crate::ports::ApiCalls;
    use crate::release::{Actor, ObservedCall, Via};
    use chrono::{TimeZone, Utc};

    fn call(deployment: &str, approve: bool, at: i64) -> ObservedCall {
        let actor = Actor {
            principal_arn: "arn:aws:iam::123456789012:user/alice".into(),
            session_name: None,
            source_ip: None,
            event_id: format!("ev-{at}"),
            event_time: Utc.timestamp_opt(at, 0).unwrap(),
            operation: "codedeploy:ContinueDeployment".into(),
            via: Via::LookupEvents,
        };
        ObservedCall { deployment: DeploymentRef::CodeDeploy(deployment.parse().unwrap()), approve, actor }
    }

    #[tokio::test]
    async fn a_look_up_finds_only_the_deployments_decision_within_the_window() {
        let trail = MemoryApiCalls::default();
        for c in [call("d-1", true, 100), call("d-2", true, 110), call("d-1", false, 120), call("d-1", true, 500)] {
            trail.record(c);
        }
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        let d1 = DeploymentRef::CodeDeploy("d-1".parse().unwrap());
        let found = trail.decisions_on(&d1, true, t(50), t(200)).await.unwrap();
        assert_eq!(found.iter().map(|c| c.actor.event_id.as_str()).collect::<Vec<_>>(), vec!["ev-100"]);
        assert_eq!(trail.lookups(), 1);
    }
}
