//! The operator's settings are a ceiling: a manifest (written by CI, or by whoever may put objects
//! under `releases/`) may ask for more checks than the service's settings, never fewer. This file
//! is the one place that says, field by field, what "more" is; the manifest stage refuses a
//! manifest that asks for less ([`admit`]: `Failed(manifest)` with the reason), and the places that
//! use the plan ([`approval`] for the start and the verification, [`probe_spec`] for the probes,
//! [`migration_timeout`] for the claim) read it through the same rule, so a record accepted before
//! the rule (or under other settings) still gets no less than the operator's checks.
//!
//! | manifest field | the operator's setting | what the manifest may do |
//! |---|---|---|
//! | `approval` | `approval` | `manual` where the operator allows `auto`; `auto` only where the operator says `auto` |
//! | `verify.path` | `probe.path` | add a path: every other probe goes there, the operator's path first; the operator's is always probed |
//! | `verify.expect_status` | `probe.expect_status` | the status of its added path; on the operator's path only the operator's status |
//! | `verify.expect_body` | the release id (body or `probe.expect_header`) | text the body must carry besides, never instead |
//! | `migration.timeout_seconds` | `CONVOY_MIGRATION_TIMEOUT_SECONDS` | a shorter timeout, not a longer one |
//!
//! Everything else that decides how hard a release is checked (the listener, probe count,
//! interval, failure limit, consecutive successes, probe timeout, header, bake time, metric checks,
//! alarms) is the operator's alone: a manifest has no field for it (unknown fields are refused).

use std::time::Duration;

use crate::manifest::{Approval, Manifest, ManifestError};
use crate::names::{Excerpt, ReleaseKey};
use crate::settings::{HOOK_BUDGET, ServiceSettings};
use crate::verify::{self, ExtraTarget, ProbeSpec};

fn asks_for_less(key: &ReleaseKey, field: &'static str, asked: String, operator: String) -> ManifestError {
    ManifestError::AsksForLess { field, asked, operator, service: key.service.to_string() }
}

fn approval_word(approval: Approval) -> &'static str {
    match approval {
        Approval::Manual => "manual",
        Approval::Auto => "auto",
    }
}

/// Who approves the traffic shift: a person unless both the operator and the manifest (when it
/// says anything) allow policy. A manifest's `auto` under the operator's `manual` is refused.
///
/// # Errors
/// [`ManifestError::AsksForLess`] when the manifest asks for `auto` and the operator says `manual`.
pub fn approval(
    settings: &ServiceSettings,
    key: &ReleaseKey,
    manifest: Option<&Manifest>,
) -> Result<Approval, ManifestError> {
    match (settings.approval, manifest.and_then(|m| m.approval)) {
        (Approval::Manual, Some(Approval::Auto)) => Err(asks_for_less(
            key,
            "approval",
            approval_word(Approval::Auto).into(),
            approval_word(Approval::Manual).into(),
        )),
        (operator, None) => Ok(operator),
        (_, Some(asked)) => Ok(asked),
    }
}

/// The probes of a release: the operator's listener, path, status, release check and pacing, and
/// what the manifest adds (a path probed on every other probe, text the body must also carry).
///
/// # Errors
/// [`ManifestError::AsksForLess`] when the manifest asks for another status on the operator's own
/// path; [`ManifestError::ProbeBudget`] when the added path makes the probes outlast a hook;
/// [`ManifestError::VerifyPath`] for a path that is not a plain absolute path.
pub fn probe_spec(
    settings: &ServiceSettings,
    key: &ReleaseKey,
    manifest: Option<&Manifest>,
) -> Result<ProbeSpec, ManifestError> {
    let operator = &settings.probe;
    let url = |path: &str| {
        verify::probe_url(&settings.test_listener, path).map_err(|_| ManifestError::VerifyPath(path.to_owned()))
    };
    let verify = manifest.and_then(|m| m.verify.as_ref());
    let mut spec = ProbeSpec {
        url: url(&operator.path)?,
        count: operator.count,
        interval: Duration::from_millis(operator.interval_ms),
        failure_limit: operator.failure_limit,
        consecutive_successes: operator.consecutive_successes,
        timeout: Duration::from_millis(operator.timeout_ms),
        expect_status: operator.expect_status,
        // A rollback runs the images of the release it returns to: that release's id is what the
        // green version serves.
        expect_text: manifest
            .and_then(|m| m.rollback.as_ref()?.confirmed.as_ref())
            .map_or_else(|| key.release.to_string(), |r| r.to.to_string()),
        expect_header: operator.expect_header.clone(),
        expect_body: verify.and_then(|v| v.expect_body.clone()),
        extra: None,
    };
    let Some(verify) = verify else { return Ok(spec) };
    if verify.path == operator.path {
        if verify.expect_status != operator.expect_status {
            return Err(asks_for_less(
                key,
                "verify.expect_status",
                format!("{} on the operator's path {}", verify.expect_status, Excerpt(&verify.path)),
                operator.expect_status.to_string(),
            ));
        }
        return Ok(spec);
    }
    spec.extra = Some(ExtraTarget { url: url(&verify.path)?, expect_status: verify.expect_status });
    // Both paths are probed at least once.
    spec.count = spec.count.max(2);
    let budget = u64::from(spec.count) * (operator.interval_ms + operator.timeout_ms);
    if budget > HOOK_BUDGET.as_millis() as u64 {
        return Err(ManifestError::ProbeBudget(format!(
            "probing the manifest's path {} besides the operator's {} takes {} probes, {} s; a hook allows {} s",
            Excerpt(&verify.path),
            Excerpt(&operator.path),
            spec.count,
            budget / 1000,
            HOOK_BUDGET.as_secs()
        )));
    }
    Ok(spec)
}

/// What a hook verifies a release with: its probes and who approves the shift after them.
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationPlan {
    pub probes: ProbeSpec,
    pub approval: Approval,
}

/// The plan of a release's verification under the ceiling: [`probe_spec`] and [`approval`] in
/// one reading, as a hook needs both before it probes.
///
/// # Errors
/// As [`probe_spec`] and [`approval`] say.
pub fn verification_plan(
    settings: &ServiceSettings,
    key: &ReleaseKey,
    manifest: Option<&Manifest>,
) -> Result<VerificationPlan, ManifestError> {
    Ok(VerificationPlan { probes: probe_spec(settings, key, manifest)?, approval: approval(settings, key, manifest)? })
}

/// The migration's timeout under the ceiling: the manifest's when it is shorter than the
/// operator's. The rule lives with the claim that applies it (`release/migration.rs`).
pub use crate::release::migration_timeout;

/// The manifest stage's check: every field the operator's settings also decide asks for no less.
/// `settings` is `None` for a service without settings (its release fails at deployment; only the
/// migration's timeout is checked here).
///
/// # Errors
/// The first field that asks for less, as [`approval`], [`probe_spec`] and a migration timeout
/// longer than `default_timeout_seconds` ([`ManifestError::AsksForLess`]) say.
pub fn admit(
    settings: Option<&ServiceSettings>,
    default_timeout_seconds: u64,
    key: &ReleaseKey,
    manifest: &Manifest,
) -> Result<(), ManifestError> {
    if let Some(asked) = manifest.migration.as_ref().and_then(|m| m.timeout_seconds)
        && asked > default_timeout_seconds
    {
        return Err(asks_for_less(
            key,
            "migration.timeout_seconds",
            asked.to_string(),
            format!("at most {default_timeout_seconds}"),
        ));
    }
    if let Some(settings) = settings {
        if let crate::settings::DeployTarget::EcsRolling(_) = settings.deploy {
            return admit_rolling(key, manifest);
        }
        approval(settings, key, Some(manifest))?;
        probe_spec(settings, key, Some(manifest))?;
    }
    Ok(())
}

/// A rolling update takes no test traffic and never pauses: a manifest asking a rolling service
/// for a person's approval or for probes asks for a check nothing could give, so it is refused,
/// not ignored (a manifest may ask for more checks, and must not believe it got them).
fn admit_rolling(key: &ReleaseKey, manifest: &Manifest) -> Result<(), ManifestError> {
    let refuse = |asked, why| ManifestError::NotForMethod {
        asked,
        service: key.service.to_string(),
        method: "ecs-rolling",
        why,
    };
    if manifest.approval == Some(Approval::Manual) {
        return Err(refuse("approval manual", "which has no pause for a person's approval"));
    }
    if manifest.verify.is_some() {
        return Err(refuse("verify", "which takes no test traffic to probe"));
    }
    Ok(())
}

/// The manifest stage's check of a version 2 manifest: [`admit`] for each service of the release,
/// on its part of the manifest (`GroupManifest::one_service_view`: its `verify`, the release's one
/// approval, the migration where it runs) under that service's own settings. Every member of a
/// group has settings (the settings file refuses a group naming a service it lacks).
///
/// # Errors
/// [`ManifestError::ServiceWithoutSettings`] for a service without settings; otherwise the first
/// field that asks for less of a service, as [`admit`] says, naming that service.
pub fn admit_group(
    services: &std::collections::BTreeMap<crate::names::ServiceName, ServiceSettings>,
    default_timeout_seconds: u64,
    key: &ReleaseKey,
    manifest: &crate::manifest::GroupManifest,
) -> Result<(), ManifestError> {
    // The release's one approval holds the traffic shift of the services that take traffic; one
    // that takes none (a rolling update) is not asked for it, unless no service could give it.
    let takes_traffic = |s: &crate::names::ServiceName| services.get(s).is_some_and(|s| s.method().takes_traffic());
    let any_takes_traffic = manifest.services_in_order().any(takes_traffic);
    for service in manifest.services_in_order() {
        let settings =
            services.get(service).ok_or_else(|| ManifestError::ServiceWithoutSettings(service.to_string()))?;
        let mut view = manifest.one_service_view(service).expect("the order names the manifest's services");
        if any_takes_traffic && !takes_traffic(service) {
            view.approval = None;
        }
        let service_key = ReleaseKey::new(service.clone(), key.release.clone());
        admit(Some(settings), default_timeout_seconds, &service_key, &view)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Migration, VerifyExpectation};

    fn key() -> ReleaseKey {
        ReleaseKey::new("web".parse().unwrap(), "4cf03d1".parse().unwrap())
    }

    fn settings(approval: &str) -> ServiceSettings {
        let json = format!(
            r#"{{"web": {{"codedeploy": {{"application": "a", "deployment_group": "g", "container": "c", "port": 80,
                "verify_function": "v"}}, "test_listener": "http://alb:8080", "approval": "{approval}",
                "probe": {{"path": "/health", "count": 3, "interval_ms": 1000, "timeout_ms": 1000}}}}}}"#
        );
        crate::settings::parse(&json).unwrap().remove(&"web".parse().unwrap()).unwrap()
    }

    fn manifest(approval: Option<Approval>, verify: Option<(&str, u16, Option<&str>)>) -> Manifest {
        let image = crate::manifest::ImageRef::parse_uri("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1").unwrap();
        Manifest {
            images: [("app".parse().unwrap(), image)].into(),
            migration: None,
            verify: verify.map(|(path, status, body)| VerifyExpectation {
                path: path.into(),
                expect_status: status,
                expect_body: body.map(Into::into),
            }),
            approval,
            rollback: None,
        }
    }

    #[test]
    fn a_manifest_asking_for_auto_approval_under_the_operators_manual_is_refused_with_the_reason() {
        let err = admit(Some(&settings("manual")), 1800, &key(), &manifest(Some(Approval::Auto), None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the manifest asks for approval auto; the operator's settings for service web say manual: a manifest may \
             only ask for more checks"
        );
        let used = approval(&settings("manual"), &key(), Some(&manifest(Some(Approval::Auto), None)));
        assert!(used.is_err(), "the start and the verification refuse it too");
    }

    #[test]
    fn a_manifest_may_ask_for_a_person_where_the_operator_allows_policy() {
        let asked = manifest(Some(Approval::Manual), None);
        assert_eq!(approval(&settings("auto"), &key(), Some(&asked)).unwrap(), Approval::Manual);
        assert_eq!(approval(&settings("auto"), &key(), Some(&manifest(None, None))).unwrap(), Approval::Auto);
        assert_eq!(approval(&settings("manual"), &key(), None).unwrap(), Approval::Manual);
        assert!(admit(Some(&settings("auto")), 1800, &key(), &asked).is_ok());
    }

    #[test]
    fn a_hooks_plan_is_the_probes_and_the_approval_under_the_same_ceiling() {
        let asked = manifest(Some(Approval::Manual), Some(("/status", 204, None)));
        let plan = verification_plan(&settings("auto"), &key(), Some(&asked)).unwrap();
        assert_eq!(plan.probes, probe_spec(&settings("auto"), &key(), Some(&asked)).unwrap());
        assert_eq!(plan.approval, Approval::Manual, "the manifest asked for a person");
        let refused = manifest(Some(Approval::Auto), None);
        assert!(verification_plan(&settings("manual"), &key(), Some(&refused)).is_err(), "approval's refusal");
        let bad_status = manifest(None, Some(("/health", 404, None)));
        assert!(verification_plan(&settings("auto"), &key(), Some(&bad_status)).is_err(), "the probes' refusal");
    }

    #[test]
    fn a_manifests_path_is_probed_besides_the_operators_never_instead() {
        let asked = manifest(None, Some(("/status", 204, None)));
        let spec = probe_spec(&settings("manual"), &key(), Some(&asked)).unwrap();
        assert_eq!(spec.url, "http://alb:8080/health", "the operator's path stays the first probe's");
        assert_eq!(spec.expect_status, 200);
        assert_eq!(spec.extra, Some(ExtraTarget { url: "http://alb:8080/status".into(), expect_status: 204 }));
        assert_eq!(spec.expect_text, "4cf03d1", "the release check stays");
    }

    #[test]
    fn a_manifest_asking_another_status_of_the_operators_own_path_is_refused() {
        let asked = manifest(None, Some(("/health", 404, None)));
        let err = admit(Some(&settings("manual")), 1800, &key(), &asked).unwrap_err();
        assert!(err.to_string().starts_with("the manifest asks for verify.expect_status 404"), "{err}");
        let same = manifest(None, Some(("/health", 200, Some("db ok"))));
        let spec = probe_spec(&settings("manual"), &key(), Some(&same)).unwrap();
        assert_eq!((spec.extra, spec.expect_body.as_deref()), (None, Some("db ok")));
    }

    #[test]
    fn the_manifests_expect_body_adds_to_the_release_check_instead_of_replacing_it() {
        let asked = manifest(None, Some(("/health", 200, Some("ok"))));
        let spec = probe_spec(&settings("manual"), &key(), Some(&asked)).unwrap();
        assert_eq!((spec.expect_text.as_str(), spec.expect_body.as_deref()), ("4cf03d1", Some("ok")));
    }

    #[test]
    fn a_migration_timeout_longer_than_the_operators_is_refused_and_a_shorter_one_kept() {
        let mut asked = manifest(None, None);
        asked.migration = Some(Migration {
            container: "app".parse().unwrap(),
            command: vec!["m".into()],
            timeout_seconds: Some(7200),
            down: None,
        });
        let err = admit(None, 1800, &key(), &asked).unwrap_err();
        assert!(err.to_string().contains("migration.timeout_seconds 7200"), "{err}");
        assert_eq!(migration_timeout(1800, Some(&asked)), 1800, "an accepted record gets no longer either");
        asked.migration.as_mut().unwrap().timeout_seconds = Some(600);
        assert!(admit(None, 1800, &key(), &asked).is_ok());
        assert_eq!(migration_timeout(1800, Some(&asked)), 600);
        assert_eq!(migration_timeout(1800, None), 1800);
    }

    #[test]
    fn an_added_path_that_would_outlast_a_hook_is_refused() {
        let mut operator = settings("manual");
        operator.probe.count = 1;
        operator.probe.interval_ms = 100_000;
        operator.probe.timeout_ms = 100_000;
        let err = probe_spec(&operator, &key(), Some(&manifest(None, Some(("/x", 200, None))))).unwrap_err();
        assert!(matches!(err, ManifestError::ProbeBudget(_)), "{err}");
    }

    #[test]
    fn an_added_path_that_takes_exactly_a_hooks_budget_is_kept() {
        let mut operator = settings("manual");
        operator.probe.count = 1;
        operator.probe.interval_ms = 100_000;
        operator.probe.timeout_ms = 40_000;
        // Both paths make the count 2: 2 × 140 s = 280 s, the whole of HOOK_BUDGET.
        assert_eq!(HOOK_BUDGET.as_millis(), 280_000);
        let spec = probe_spec(&operator, &key(), Some(&manifest(None, Some(("/x", 200, None))))).unwrap();
        assert_eq!(spec.count, 2);
    }

    #[test]
    fn a_migration_timeout_equal_to_the_operators_is_admitted() {
        let mut asked = manifest(None, None);
        asked.migration = Some(Migration {
            container: "app".parse().unwrap(),
            command: vec!["m".into()],
            timeout_seconds: Some(1800),
            down: None,
        });
        assert!(admit(None, 1800, &key(), &asked).is_ok(), "the operator's own timeout asks for no less");
    }

    #[test]
    fn a_manifest_asking_a_rolling_service_for_a_persons_approval_or_probes_is_refused() {
        let json = r#"{"web": {"deploy": {"method": "ecs-rolling"}, "approval": "auto"}}"#;
        let settings = crate::settings::parse(json).unwrap().remove(&"web".parse().unwrap()).unwrap();
        let mut asked = manifest(None, None);
        asked.approval = Some(Approval::Manual);
        let refused = admit(Some(&settings), 600, &key(), &asked).unwrap_err().to_string();
        assert!(refused.contains("approval manual") && refused.contains("deploys by ecs-rolling"), "{refused}");
        let probed = manifest(None, Some(("/health", 200, None)));
        let refused = admit(Some(&settings), 600, &key(), &probed).unwrap_err().to_string();
        assert!(refused.contains("asks for verify"), "{refused}");
        asked.approval = Some(Approval::Auto);
        assert_eq!(admit(Some(&settings), 600, &key(), &asked), Ok(()));
    }

    #[test]
    fn a_groups_manual_approval_is_asked_of_the_services_that_take_traffic_only() {
        let web = settings("manual");
        let worker = crate::settings::parse(r#"{"worker": {"deploy": {"method": "ecs-rolling"}, "approval": "auto"}}"#)
            .unwrap()
            .remove(&"worker".parse().unwrap())
            .unwrap();
        let group = |services: serde_json::Value, order: serde_json::Value| {
            let text = serde_json::json!({"version": 2, "release": "4cf03d1", "group": "shop",
                "images": {"app": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:4cf03d1"},
                "services": services, "order": order, "approval": "manual"});
            let key = ReleaseKey::new("shop".parse().unwrap(), "4cf03d1".parse().unwrap());
            match crate::manifest::read(text.to_string().as_bytes(), &key).unwrap() {
                crate::manifest::Submitted::Group(manifest) => (key, manifest),
                crate::manifest::Submitted::Service(_) => panic!("a group's manifest"),
            }
        };
        let services =
            std::collections::BTreeMap::from([("web".parse().unwrap(), web), ("worker".parse().unwrap(), worker)]);
        let (key, both) = group(
            serde_json::json!({"web": {"containers": {"app": "app"}}, "worker": {"containers": {"worker": "app"}}}),
            serde_json::json!(["worker", "web"]),
        );
        assert_eq!(
            admit_group(&services, 1800, &key, &both),
            Ok(()),
            "web holds the approval; the worker is not asked"
        );
        let (key, alone) =
            group(serde_json::json!({"worker": {"containers": {"worker": "app"}}}), serde_json::json!(["worker"]));
        let refused = admit_group(&services, 1800, &key, &alone).unwrap_err().to_string();
        assert!(refused.contains("which service worker cannot give"), "no service could hold it: {refused}");
    }
}
