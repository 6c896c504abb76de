//! Drift: whether a service runs the task definition Convoy deployed last, checked at the manifest
//! stage before a release opens. Someone's `update-service` by hand, or another tool's deployment,
//! shows as a live revision that is not Convoy's; the operator's per-service setting decides what
//! follows. The decision is pure; the ECS read (`Tasks::live_definition`) and the records' read are
//! the service layer's (`service/drift.rs`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::{ReleaseId, ServiceName};
use crate::release::Release;

/// What Convoy does when a service drifted (`"drift"` in the service's settings; default `warn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DriftSetting {
    /// Go on from the revision Convoy deployed last: the change made outside Convoy is replaced,
    /// and the record and the release event say so.
    #[default]
    Warn,
    /// Go on from the live revision: the migration and the release's task definition keep the
    /// change made outside Convoy.
    Adopt,
    /// End the release at the manifest stage, before anything runs.
    Refuse,
}

/// The task definition ECS runs for a service now: a `CODE_DEPLOY` service's `PRIMARY` task set's,
/// an `ECS` controller's `PRIMARY` deployment's (Amazon ECS API Reference, `DescribeServices`:
/// `Service.taskSets`, `Service.deployments`), with when ECS created that set or deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveDefinition {
    pub task_definition: String,
    /// When ECS started running it (`createdAt`); `None` when ECS does not say.
    pub since: Option<DateTime<Utc>>,
}

/// The revision the Convoy release of a service live now deployed (`convoy::history`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    pub release: ReleaseId,
    pub task_definition: String,
    /// When it went live (its deployment's end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_since: Option<DateTime<Utc>>,
}

/// What the check found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftAction {
    /// Nothing to do: no drift, or no earlier Convoy release to compare with.
    None,
    /// Drifted, `warn`: derived from the revision Convoy deployed last.
    Warned,
    /// Drifted, `adopt`: derived from the live revision.
    Adopted,
    /// Drifted, `refuse`: the release ended at the manifest stage.
    Refused,
}

/// One service's drift check, kept in the record (`Release::drift`, one per service of a group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftCheck {
    pub service: ServiceName,
    pub checked_at: DateTime<Utc>,
    /// The task definition ECS ran at the check.
    pub live: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_since: Option<DateTime<Utc>>,
    /// What Convoy deployed last; `None`: no earlier release went live (or it kept no revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed: Option<Deployed>,
    pub drifted: bool,
    pub action: DriftAction,
    /// The revision the migration and the release's task definition are derived from.
    pub base: String,
}

impl DriftCheck {
    /// One line for the timeline, `convoy status` and the release event.
    pub fn summary(&self) -> String {
        let since = self.live_since.map_or_else(String::new, |t| format!(" (ECS started it at {})", t.to_rfc3339()));
        let Some(deployed) = &self.deployed else {
            return format!(
                "{}: no revision Convoy deployed is known (no earlier release went live, or it deployed \
                 through a pipeline), nothing to compare; it runs {}{since}",
                self.service,
                short(&self.live)
            );
        };
        if !self.drifted {
            return format!(
                "{}: no drift, it runs {} as release {} deployed it",
                self.service,
                short(&self.live),
                deployed.release
            );
        }
        let what = format!(
            "{}: changed outside Convoy: it runs {}{since}, not {} that release {} deployed",
            self.service,
            short(&self.live),
            short(&deployed.task_definition),
            deployed.release
        );
        match self.action {
            DriftAction::Warned => format!(
                "{what}; warn: this release derives from {} and replaces the change",
                short(&deployed.task_definition)
            ),
            DriftAction::Adopted => {
                format!("{what}; adopt: this release derives from {} and keeps the change", short(&self.live))
            }
            DriftAction::Refused => format!("{what}; refuse: the release ends here, nothing ran"),
            DriftAction::None => what,
        }
    }
}

/// The check of one service: `live` against what Convoy `deployed` last, under `setting`.
pub fn judge(
    service: &ServiceName,
    live: &LiveDefinition,
    deployed: Option<Deployed>,
    setting: DriftSetting,
    at: DateTime<Utc>,
) -> DriftCheck {
    let drifted = deployed.as_ref().is_some_and(|d| !same_revision(&d.task_definition, &live.task_definition));
    let action = match (drifted, setting) {
        (false, _) => DriftAction::None,
        (true, DriftSetting::Warn) => DriftAction::Warned,
        (true, DriftSetting::Adopt) => DriftAction::Adopted,
        (true, DriftSetting::Refuse) => DriftAction::Refused,
    };
    let base = match (&deployed, action) {
        (Some(deployed), DriftAction::Warned) => deployed.task_definition.clone(),
        _ => live.task_definition.clone(),
    };
    DriftCheck {
        service: service.clone(),
        checked_at: at,
        live: live.task_definition.clone(),
        live_since: live.since,
        deployed,
        drifted,
        action,
        base,
    }
}

/// Why the release is refused, when a check's setting refused it.
pub fn refusal(checks: &[DriftCheck]) -> Option<String> {
    let refused: Vec<String> =
        checks.iter().filter(|c| c.action == DriftAction::Refused).map(DriftCheck::summary).collect();
    (!refused.is_empty()).then(|| {
        format!(
            "drift: {} (the settings say \"drift\": \"refuse\"; put the service back on Convoy's revision, or \
             change the setting, then upload the manifest again)",
            refused.join("; ")
        )
    })
}

/// Whether two task definition references name the same revision: an ARN and `family:revision`
/// name it alike (`DescribeServices` answers ARNs; a record may keep either).
pub fn same_revision(a: &str, b: &str) -> bool {
    short(a) == short(b)
}

/// `family:revision` of a task definition ARN (the text itself otherwise).
fn short(task_definition: &str) -> &str {
    task_definition.rsplit_once("task-definition/").map_or(task_definition, |(_, tail)| tail)
}

impl Release {
    /// Keeps the manifest stage's checks; each drifted service gets a `drift` timeline entry too,
    /// so the record's creation announces it (a check without drift is in `drift` only).
    pub(crate) fn note_drift(&mut self, checks: Vec<DriftCheck>, at: DateTime<Utc>) {
        for check in checks.iter().filter(|c| c.drifted) {
            self.record(at, "drift", check.summary());
        }
        self.drift = checks;
    }

    /// The task definition this release derives `service`'s migration and revision from, as its
    /// drift check chose; `None` (no check: an older record, or ECS did not know the service) means
    /// the one ECS runs when the stage starts, as before the check.
    pub fn derivation_base(&self, service: &ServiceName) -> Option<&str> {
        self.drift.iter().find(|c| c.service == *service).map(|c| c.base.as_str())
    }

    /// The checks that found the service changed outside Convoy.
    pub fn drifted(&self) -> impl Iterator<Item = &DriftCheck> {
        self.drift.iter().filter(|c| c.drifted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::test_support::t;

    fn web() -> ServiceName {
        "web".parse().unwrap()
    }

    fn arn(revision: u32) -> String {
        format!("arn:aws:ecs:us-east-1:123456789012:task-definition/web:{revision}")
    }

    fn live(revision: u32) -> LiveDefinition {
        LiveDefinition { task_definition: arn(revision), since: Some(t(5)) }
    }

    fn deployed(revision: u32) -> Option<Deployed> {
        Some(Deployed { release: "r1".parse().unwrap(), task_definition: arn(revision), live_since: Some(t(1)) })
    }

    #[test]
    fn a_service_running_convoys_revision_has_not_drifted_and_derives_from_it() {
        let check = judge(&web(), &live(4), deployed(4), DriftSetting::Refuse, t(9));
        assert_eq!((check.drifted, check.action, check.base.as_str()), (false, DriftAction::None, arn(4).as_str()));
        assert!(refusal(&[check]).is_none());
    }

    #[test]
    fn a_family_and_revision_names_the_same_revision_as_its_arn() {
        let mut known = deployed(4);
        known.as_mut().unwrap().task_definition = "web:4".into();
        assert!(!judge(&web(), &live(4), known, DriftSetting::Warn, t(9)).drifted);
    }

    #[test]
    fn with_no_earlier_release_there_is_nothing_to_compare_and_the_record_says_so() {
        let check = judge(&web(), &live(4), None, DriftSetting::Refuse, t(9));
        assert_eq!((check.drifted, check.action), (false, DriftAction::None));
        assert!(check.summary().contains("nothing to compare"), "{}", check.summary());
    }

    #[test]
    fn warn_derives_from_the_revision_convoy_deployed_and_says_the_change_is_replaced() {
        let check = judge(&web(), &live(5), deployed(4), DriftSetting::Warn, t(9));
        assert_eq!((check.drifted, check.action, check.base.as_str()), (true, DriftAction::Warned, arn(4).as_str()));
        let summary = check.summary();
        assert!(summary.contains("runs web:5") && summary.contains("not web:4") && summary.contains("replaces"));
        assert!(refusal(&[check]).is_none());
    }

    #[test]
    fn adopt_derives_from_the_live_revision() {
        let check = judge(&web(), &live(5), deployed(4), DriftSetting::Adopt, t(9));
        assert_eq!((check.action, check.base.as_str()), (DriftAction::Adopted, arn(5).as_str()));
        assert!(check.summary().contains("keeps the change"));
    }

    #[test]
    fn refuse_gives_a_reason_naming_both_revisions_and_when_ecs_started_the_live_one() {
        let check = judge(&web(), &live(5), deployed(4), DriftSetting::Refuse, t(9));
        assert_eq!(check.action, DriftAction::Refused);
        let reason = refusal(&[check]).expect("refused");
        assert!(
            reason.contains("web:5") && reason.contains("web:4") && reason.contains(&t(5).to_rfc3339()),
            "{reason}"
        );
    }
}
