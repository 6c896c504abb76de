//! A group's release across its services: its locks, its steps, its parts, and its rollback as one.

use std::collections::BTreeMap;

use chrono::Duration;

use super::test_support::{apply, t, unchanged};
use super::*;
use crate::manifest::{self, Submitted};
use crate::names::{DeploymentId, ServiceDeploymentArn};

const APP: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:r1";
const NGINX: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/nginx:r1";

fn service(name: &str) -> ServiceName {
    name.parse().unwrap()
}

fn revision(family: &str, n: u32) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{family}:{n}")
}

/// `order` of web (CodeDeploy: takes traffic), worker (rolling) and cron (rolling), no migration,
/// its images pinned: ready to deploy.
fn ready_group(order: serde_json::Value) -> Release {
    let key = ReleaseKey::new(service("shop"), "r1".parse().unwrap());
    let all = serde_json::json!({"web": {"containers": {"laravel": "app", "nginx": "nginx"}},
                                 "worker": {"containers": {"worker": "app"}},
                                 "cron": {"containers": {"cron": "app"}},
                                 "api": {"containers": {"api": "app"}}});
    // The services the order names, each with its containers.
    let named = order.to_string();
    let services: serde_json::Map<String, serde_json::Value> = all
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| named.contains(&format!("\"{name}\"")))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let text = serde_json::json!({
        "version": 2, "release": "r1", "group": "shop",
        "images": {"app": APP, "nginx": NGINX},
        "services": services,
        "order": order,
        "approval": "manual"
    })
    .to_string();
    let Submitted::Group(manifest) = manifest::read(text.as_bytes(), &key).unwrap() else { panic!("a group") };
    let methods = BTreeMap::from([
        (service("web"), DeployMethod::CodeDeploy),
        (service("worker"), DeployMethod::EcsRolling),
        (service("cron"), DeployMethod::EcsRolling),
        (service("api"), DeployMethod::CodeDeploy),
    ]);
    let source =
        ManifestSource { bucket: "b".into(), key: "releases/shop/r1.json".into(), version_id: None, etag: None };
    let release = Release::open_group(key, source, group::GroupOpening { manifest, methods }, t(0));
    let (release, _) = apply(&release, found(APP, "sha256:aa"));
    apply(&release, found(NGINX, "sha256:bb")).0
}

fn found(image: &str, digest: &str) -> readiness::Event {
    let image = ImageKey::of(&manifest::ImageRef::parse_uri(image).unwrap());
    readiness::Event::ImageFound { image, digest: Digest::new(digest).unwrap(), at: t(1), via: Sighting::PushEvent }
}

/// The group's release with its locks taken: its first step opened.
fn deploying(order: serde_json::Value) -> Release {
    apply(&ready_group(order), services::Event::LocksTaken { at: t(2) }).0
}

/// `service`'s part, its deployment started (CodeDeploy's `d-…`, or a rolling update that
/// recorded the revision its service ran), then put in `state`.
fn part_in(group: &Release, name: &str, state: State) -> Release {
    let part = group.part(&service(name), t(3)).expect("a service of the release");
    let rolling = !["web", "api"].contains(&name);
    let method = if rolling { DeployMethod::EcsRolling } else { DeployMethod::CodeDeploy };
    let claimed = deployment::Event::Claimed { method, at: t(3), lease: Duration::seconds(60), gate: None };
    let (part, _) = apply(&part, claimed);
    let part = if rolling {
        let registered = deployment::Event::RevisionRegistered {
            task_definition: revision(name, 8),
            previous: Some(revision(name, 7)),
            at: t(4),
        };
        apply(&part, registered).0
    } else {
        part
    };
    let id = if rolling {
        let arn = format!("arn:aws:ecs:us-east-1:123456789012:service-deployment/c/{name}/x");
        DeploymentRef::from(ServiceDeploymentArn::new(&arn).unwrap())
    } else {
        code_deployment(name)
    };
    let started = deployment::Event::Started { deployment: id, task_definition: Some(revision(name, 8)), at: t(5) };
    let (mut part, _) = apply(&part, started);
    part.state = state;
    part
}

fn moved(part: &Release, at: i64) -> services::Event {
    services::Event::PartMoved { part: Box::new(part.clone()), at: t(at) }
}

fn web_deployment() -> DeploymentRef {
    code_deployment("web")
}

/// The CodeDeploy deployment of `web` or `api`.
fn code_deployment(name: &str) -> DeploymentRef {
    let id = if name == "web" { "d-ABCDEFGHI" } else { "d-APIAPIAPI" };
    DeploymentRef::from(DeploymentId::new(id).unwrap())
}

fn sections(release: &Release) -> Vec<(&str, &SectionState)> {
    release.services.iter().map(|s| (s.service.as_str(), &s.state)).collect()
}

#[test]
fn the_last_pin_of_a_groups_release_without_a_migration_takes_its_services_locks_not_one_deployment() {
    let release = ready_group(serde_json::json!(["web", "worker", "cron"]));
    assert_eq!(release.state, State::Ready { next: Stage::Deployment });
    assert_eq!(release.pending_work(), [Effect::TakeServiceLocks]);
}

#[test]
fn the_locks_taken_open_the_first_step_only_and_once() {
    let release = deploying(serde_json::json!([["web", "worker"], "cron"]));
    assert_eq!(release.state, State::DeployingServices { step: 0 });
    let (_, effects) =
        apply(&ready_group(serde_json::json!([["web", "worker"], "cron"])), services::Event::LocksTaken { at: t(2) });
    assert_eq!(effects, [Effect::OpenServices { services: vec![service("web"), service("worker")] }]);
    assert!(unchanged(release.apply(&services::Event::LocksTaken { at: t(3) }).unwrap()), "taken once");
}

#[test]
fn a_part_is_a_release_of_its_service_ready_to_deploy_the_groups_pinned_digests() {
    let group = deploying(serde_json::json!(["web", "worker", "cron"]));
    let web = group.part(&service("web"), t(3)).unwrap();
    assert_eq!(web.key.to_string(), "web/r1");
    assert_eq!(web.part_of.as_ref(), Some(&group.key));
    assert_eq!(web.state, State::Ready { next: Stage::Deployment });
    assert_eq!(web.pending_work(), [Effect::StartDeployment], "a part deploys its service by its method");
    assert_eq!(
        web.pinned_uris(),
        [
            ("laravel".into(), "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:aa".into()),
            ("nginx".into(), "123456789012.dkr.ecr.us-east-1.amazonaws.com/nginx@sha256:bb".into())
        ]
    );
    let manifest = web.manifest.as_ref().unwrap();
    assert_eq!(manifest.approval, Some(manifest::Approval::Manual), "the release's one approval holds web's shift");
    assert!(manifest.migration.is_none(), "the release's migration ran once, before any part");
    let worker = group.part(&service("worker"), t(3)).unwrap();
    assert_eq!(worker.manifest.as_ref().unwrap().approval, None, "a service that takes no traffic has no approval");
    assert_eq!(
        worker.pinned_uris(),
        [("worker".into(), "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:aa".into())]
    );
    assert!(group.part(&service("billing"), t(3)).is_none());
}

#[test]
fn each_part_derives_from_its_own_services_drift_check() {
    use crate::drift::{Deployed, DriftSetting, LiveDefinition, judge};
    let mut group = deploying(serde_json::json!(["web", "worker", "cron"]));
    let check = |name: &str, live: u32, setting| {
        let live = LiveDefinition { task_definition: revision(name, live), since: None };
        let ours = Deployed { release: "r0".parse().unwrap(), task_definition: revision(name, 4), live_since: None };
        judge(&service(name), &live, Some(ours), setting, t(1))
    };
    group.drift = vec![check("web", 5, DriftSetting::Warn), check("worker", 5, DriftSetting::Adopt)];
    let web = group.part(&service("web"), t(3)).unwrap();
    assert_eq!(web.drift.len(), 1, "only web's check");
    assert_eq!(web.derivation_base(&service("web")), Some(revision("web", 4).as_str()), "warn: Convoy's revision");
    let worker = group.part(&service("worker"), t(3)).unwrap();
    assert_eq!(worker.derivation_base(&service("worker")), Some(revision("worker", 5).as_str()), "adopt: the live one");
    let cron = group.part(&service("cron"), t(3)).unwrap();
    assert_eq!(cron.derivation_base(&service("cron")), None, "not checked: what ECS runs when the stage starts");
}

#[test]
fn the_next_step_opens_once_the_services_verification_passed_and_a_replayed_part_changes_nothing() {
    let group = deploying(serde_json::json!(["web", "worker", "cron"]));
    let web = part_in(&group, "web", State::Deploying { deployment: web_deployment() });
    let (group, effects) = apply(&group, moved(&web, 6));
    assert_eq!((group.state.clone(), effects), (State::DeployingServices { step: 0 }, vec![]));
    assert_eq!(group.services[0].deployment, Some(web_deployment()));
    assert_eq!(group.services[0].revision.as_deref(), Some(revision("web", 8).as_str()));

    let web = part_in(&group, "web", State::AwaitingApproval { deployment: web_deployment() });
    let (group, effects) = apply(&group, moved(&web, 7));
    assert_eq!(group.state, State::DeployingServices { step: 1 });
    assert_eq!(effects, [Effect::OpenServices { services: vec![service("worker")] }]);
    assert!(unchanged(group.apply(&moved(&web, 8)).unwrap()), "the same part again: nothing to do");
}

#[test]
fn the_release_succeeds_once_every_service_is_live_and_frees_every_lock_once() {
    let group = deploying(serde_json::json!(["web", "worker"]));
    let (group, _) =
        apply(&group, moved(&part_in(&group, "web", State::AwaitingApproval { deployment: web_deployment() }), 6));
    let (group, effects) = apply(&group, moved(&part_in(&group, "worker", State::Succeeded), 7));
    assert_eq!(
        (group.state.clone(), effects),
        (State::DeployingServices { step: 1 }, vec![Effect::MoveSchedules { service: service("worker") }]),
        "web waits for the approval; the live worker's scheduled tasks move"
    );
    assert_eq!(sections(&group), [("web", &SectionState::Through), ("worker", &SectionState::Live)]);
    let (group, effects) = apply(&group, moved(&part_in(&group, "web", State::Succeeded), 8));
    assert_eq!(group.state, State::Succeeded);
    assert_eq!(effects, [Effect::MoveSchedules { service: service("web") }, Effect::ReleaseServiceLocks]);
    assert!(unchanged(group.apply(&moved(&part_in(&group, "web", State::Succeeded), 9)).unwrap()));
}

#[test]
fn a_failure_of_the_second_service_puts_the_first_back_never_opens_the_third_and_fails_once_all_are_back() {
    let group = deploying(serde_json::json!(["web", "worker", "cron"]));
    let (group, _) =
        apply(&group, moved(&part_in(&group, "web", State::AwaitingApproval { deployment: web_deployment() }), 6));
    let failed = State::Failed { stage: Stage::Deployment, reason: "the circuit breaker rolled it back".into() };
    let (group, effects) = apply(&group, moved(&part_in(&group, "worker", failed), 7));
    let reason = "service worker: failed: deployment: the circuit breaker rolled it back".to_owned();
    assert_eq!(group.state, State::RevertingServices { stage: Some(Stage::Deployment), reason: reason.clone() });
    assert_eq!(effects, [Effect::RevertService { service: service("web") }], "web only: cron never started");

    let rolling_back = State::RollingBack { deployment: web_deployment(), reason: "the release rolls back".into() };
    let (group, effects) = apply(&group, moved(&part_in(&group, "web", rolling_back), 8));
    assert!(effects.is_empty(), "still going back: {effects:?}");
    let (group, effects) =
        apply(&group, moved(&part_in(&group, "web", State::RolledBack { reason: "stopped".into() }), 9));
    assert_eq!(group.state, State::Failed { stage: Stage::Deployment, reason });
    assert_eq!(effects, [Effect::ReleaseServiceLocks]);
    assert_eq!(group.section(&service("cron")).unwrap().state, SectionState::Waiting);
    let back = group.timeline.last().unwrap();
    assert_eq!(back.event, "services-back");
    assert!(
        back.detail.contains("web rolled back: stopped") && back.detail.contains("cron waiting"),
        "{}",
        back.detail
    );
}

#[test]
fn a_worker_that_went_first_is_put_back_when_web_fails_its_verification() {
    let group = deploying(serde_json::json!(["worker", "web"]));
    let (group, effects) = apply(&group, moved(&part_in(&group, "worker", State::Succeeded), 6));
    assert_eq!(
        effects,
        [Effect::MoveSchedules { service: service("worker") }, Effect::OpenServices { services: vec![service("web")] }]
    );
    let mut web =
        part_in(&group, "web", State::Failed { stage: Stage::Verification, reason: "/health answered 500".into() });
    web.verification = Some(Verification {
        hook: Hook::CodeDeploy {
            deployment_id: DeploymentId::new("d-ABCDEFGHI").unwrap(),
            execution_id: "e".parse().unwrap(),
        },
        started_at: t(6),
        probes: Vec::new(),
        metrics: Vec::new(),
        outcome: Some(VerificationOutcome { passed: false, reason: "/health answered 500".into() }),
        finished_at: Some(t(7)),
    });
    let (group, effects) = apply(&group, moved(&web, 7));
    assert!(
        matches!(group.state, State::RevertingServices { stage: Some(Stage::Verification), .. }),
        "{}",
        group.state
    );
    assert_eq!(effects, [Effect::RevertService { service: service("worker") }]);

    let mut worker = part_in(&group, "worker", State::Succeeded);
    worker.deployment.as_mut().unwrap().put_back = Some(PutBackRun {
        task_definition: revision("worker", 7),
        claims: 1,
        claimed_at: t(8),
        service_deployment: None,
        done_at: Some(t(9)),
    });
    let (group, effects) = apply(&group, moved(&worker, 9));
    assert!(matches!(group.state, State::Failed { stage: Stage::Verification, .. }), "{}", group.state);
    assert_eq!(effects, [Effect::ReleaseServiceLocks]);
    let worker = group.section(&service("worker")).unwrap();
    assert_eq!(worker.state, SectionState::RolledBack { reason: format!("put back on {}", revision("worker", 7)) });
    assert_eq!(worker.previous_revision.as_deref(), Some(revision("worker", 7).as_str()), "what it runs now");
}

#[test]
fn a_blue_green_service_that_completed_is_kept_and_the_record_says_so() {
    let group = deploying(serde_json::json!(["web", "worker"]));
    let (group, _) =
        apply(&group, moved(&part_in(&group, "web", State::AwaitingApproval { deployment: web_deployment() }), 6));
    // A person approved web before the worker's update failed: web's deployment completed.
    let (group, _) = apply(&group, moved(&part_in(&group, "web", State::Succeeded), 7));
    let failed = State::Failed { stage: Stage::Deployment, reason: "the circuit breaker rolled it back".into() };
    let (group, effects) = apply(&group, moved(&part_in(&group, "worker", failed), 8));
    assert_eq!(effects, [Effect::ReleaseServiceLocks], "nothing Convoy can put back");
    assert!(matches!(group.state, State::Failed { stage: Stage::Deployment, .. }));
    let back = &group.timeline.last().unwrap().detail;
    assert!(back.contains("web kept the release"), "{back}");
}

#[test]
fn a_part_that_moves_on_while_the_release_goes_back_is_asked_again() {
    let group = deploying(serde_json::json!([["web", "worker"]]));
    let (group, _) = apply(&group, moved(&part_in(&group, "worker", State::StartingDeployment), 6));
    let failed = State::Failed { stage: Stage::Verification, reason: "500".into() };
    let (group, effects) = apply(&group, moved(&part_in(&group, "web", failed), 7));
    assert_eq!(effects, [Effect::RevertService { service: service("worker") }]);
    // Its start was in flight: the update started after the revert was asked, then completed.
    let (group, effects) = apply(&group, moved(&part_in(&group, "worker", State::Succeeded), 8));
    assert_eq!(effects, [Effect::RevertService { service: service("worker") }], "asked again, now it can be put back");
    assert!(matches!(group.state, State::RevertingServices { .. }));
}

#[test]
fn a_part_of_another_release_or_an_unknown_service_changes_nothing() {
    let group = deploying(serde_json::json!(["web", "worker"]));
    let mut other = part_in(&group, "web", State::Succeeded);
    other.part_of = Some(ReleaseKey::new(service("shop"), "r2".parse().unwrap()));
    assert!(unchanged(group.apply(&moved(&other, 6)).unwrap()));
    let refused = services::Event::PartRefused { service: service("billing"), reason: "x".into(), at: t(6) };
    assert!(unchanged(group.apply(&refused).unwrap()));
}

#[test]
fn a_part_that_cannot_open_fails_the_release_at_its_deployment() {
    let group = deploying(serde_json::json!(["web", "worker"]));
    let refused = services::Event::PartRefused {
        service: service("web"),
        reason: "service web has a release r1 of its own".into(),
        at: t(6),
    };
    let (group, effects) = apply(&group, refused);
    assert_eq!(effects, [Effect::ReleaseServiceLocks], "nothing was changed");
    assert!(
        matches!(&group.state, State::Failed { stage: Stage::Deployment, reason } if reason.contains("of its own"))
    );
}

#[test]
fn a_section_follows_its_part() {
    let group = deploying(serde_json::json!(["web", "worker"]));
    let web = |state: State| SectionState::of_part(&part_in(&group, "web", state));
    let d = web_deployment();
    assert_eq!(web(State::StartingDeployment), SectionState::Deploying);
    assert_eq!(web(State::Verifying { deployment: d.clone() }), SectionState::Verifying);
    assert_eq!(web(State::ShiftingTraffic { deployment: d.clone() }), SectionState::Through);
    assert_eq!(web(State::Succeeded), SectionState::Live);
    assert_eq!(web(State::RolledBack { reason: "r".into() }), SectionState::RolledBack { reason: "r".into() });
    assert_eq!(
        web(State::Superseded { by: "r9".parse().unwrap() }),
        SectionState::Failed { reason: "superseded by release r9".into() }
    );
    let mut worker = part_in(&group, "worker", State::Succeeded);
    worker.deployment.as_mut().unwrap().put_back = Some(PutBackRun {
        task_definition: revision("worker", 7),
        claims: 1,
        claimed_at: t(8),
        service_deployment: None,
        done_at: None,
    });
    assert_eq!(
        SectionState::of_part(&worker),
        SectionState::RollingBack { reason: format!("being put back on {}", revision("worker", 7)) }
    );
}

#[test]
fn a_part_asked_to_go_back_rolls_its_deployment_back_or_puts_its_rolling_update_back() {
    let group = deploying(serde_json::json!(["web", "worker"]));
    let revert = || deployment::Event::RevertRequested { reason: "service worker failed".into(), at: t(9) };
    let waiting = part_in(&group, "web", State::AwaitingApproval { deployment: web_deployment() });
    let (web, effects) = apply(&waiting, revert());
    assert_eq!(effects, [Effect::RollBack { deployment: web_deployment() }]);
    assert!(matches!(web.state, State::RollingBack { .. }));
    assert!(unchanged(web.apply(&revert()).unwrap()), "asked once");

    let (worker, effects) = apply(&part_in(&group, "worker", State::Succeeded), revert());
    assert_eq!(effects, [Effect::PutBack]);
    let mut claimed = worker.clone();
    claimed.deployment.as_mut().unwrap().put_back = Some(PutBackRun {
        task_definition: revision("worker", 7),
        claims: 1,
        claimed_at: t(9),
        service_deployment: None,
        done_at: None,
    });
    assert_eq!(apply(&claimed, revert()).1, [Effect::PutBack], "a put back claimed but not done is asked again");
    claimed.deployment.as_mut().unwrap().put_back.as_mut().unwrap().done_at = Some(t(10));
    assert!(unchanged(claimed.apply(&revert()).unwrap()), "one done is not");
    assert_eq!(worker.state, State::Succeeded, "it stays what it is until it runs the previous revision");
    let deploying = part_in(&group, "worker", State::Deploying { deployment: web_deployment() });
    assert!(unchanged(deploying.apply(&revert()).unwrap()), "a rolling update in flight is left to end");
    assert!(
        unchanged(part_in(&group, "web", State::Succeeded).apply(&revert()).unwrap()),
        "a completed blue/green stays"
    );
}

#[test]
fn an_older_read_of_a_part_never_takes_a_section_back() {
    let group = deploying(serde_json::json!(["worker", "web"]));
    let older = part_in(&group, "worker", State::Deploying { deployment: web_deployment() });
    let mut newer = part_in(&group, "worker", State::Succeeded);
    newer.record(t(6), "succeeded", "completed".into());
    let (group, _) = apply(&group, moved(&newer, 7));
    assert_eq!(group.services[0].state, SectionState::Live);
    assert!(unchanged(group.apply(&moved(&older, 8)).unwrap()), "a concurrent invocation's older read is ignored");
}

#[test]
fn a_live_services_scheduled_tasks_are_recorded_as_moved_once_and_put_back_once() {
    use crate::scheduled::{ScheduleMove, ScheduledTarget};
    let group = deploying(serde_json::json!(["worker", "web"]));
    let (group, _) = apply(&group, moved(&part_in(&group, "worker", State::Succeeded), 6));
    let nightly = ScheduleMove {
        target: ScheduledTarget::Schedule { group: "default".into(), name: "nightly".into() },
        previous: revision("worker", 7),
        revision: revision("worker", 8),
    };
    let moved_once =
        |moves: Vec<ScheduleMove>| services::Event::SchedulesMoved { service: service("worker"), moves, at: t(7) };
    assert!(unchanged(group.apply(&moved_once(Vec::new())).unwrap()), "nothing moved, nothing recorded");
    let (group, effects) = apply(&group, moved_once(vec![nightly.clone()]));
    assert!(effects.is_empty());
    assert_eq!(group.section(&service("worker")).unwrap().schedules, std::slice::from_ref(&nightly));
    assert!(unchanged(group.apply(&moved_once(vec![nightly])).unwrap()), "recorded once");
    let back = || services::Event::SchedulesPutBack { service: service("worker"), at: t(8) };
    let (group, _) = apply(&group, back());
    assert!(group.section(&service("worker")).unwrap().schedules_put_back);
    assert!(
        group.timeline.last().unwrap().detail.contains("schedule default/nightly runs"),
        "{:?}",
        group.timeline.last()
    );
    assert!(unchanged(group.apply(&back()).unwrap()), "put back once");
    assert!(unchanged(group.apply(&services::Event::SchedulesPutBack { service: service("web"), at: t(9) }).unwrap()));
}

const ANA: &str = "arn:aws:iam::123456789012:user/ana";

/// `name`'s part, verified and then continued by a person (`by`), or by policy.
fn approved_part(group: &Release, name: &str, by: &str, at: i64) -> Release {
    let mut part = part_in(group, name, State::ShiftingTraffic { deployment: code_deployment(name) });
    part.approval = Some(ApprovalDecision { approved: true, by: by.into(), at: t(at), actor: None });
    part
}

fn awaiting(group: &Release, name: &str) -> Release {
    part_in(group, name, State::AwaitingApproval { deployment: code_deployment(name) })
}

#[test]
fn a_persons_approval_of_one_service_is_the_releases_and_the_other_waiting_service_shifts_with_it_once() {
    let group = deploying(serde_json::json!([["web", "api"], "worker"]));
    let (group, _) = apply(&group, moved(&awaiting(&group, "web"), 6));
    let (group, effects) = apply(&group, moved(&awaiting(&group, "api"), 7));
    assert_eq!(effects, [Effect::OpenServices { services: vec![service("worker")] }], "no approval yet: none carried");
    assert_eq!(group.approval, None);

    let (group, effects) = apply(&group, moved(&approved_part(&group, "web", ANA, 8), 8));
    assert_eq!(effects, [Effect::ApproveWithRelease { service: service("api") }], "api follows web's approval");
    assert_eq!(group.approval.as_ref().map(|a| a.by.as_str()), Some(ANA), "the release's one approval");
    assert_eq!(group.release_approver().as_deref(), Some(format!("{ANA} approved it on web").as_str()));
    let entry = group.timeline.iter().find(|e| e.event == "approved").expect("the release's approval recorded");
    assert!(entry.detail.contains("every other service that takes traffic shifts with it"), "{entry:?}");
    assert!(unchanged(group.apply(&moved(&approved_part(&group, "web", ANA, 8), 9)).unwrap()), "carried once");

    // api's part took it: its approval is the policy's kind, and nothing more is carried.
    let carried = format!("policy (with the release: {ANA} approved it on web)");
    let (group, effects) = apply(&group, moved(&approved_part(&group, "api", &carried, 10), 10));
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(group.approval.as_ref().map(|a| a.by.as_str()), Some(ANA), "still the person's");
}

#[test]
fn the_releases_approval_carries_to_a_service_that_takes_traffic_verified_after_it() {
    let group = deploying(serde_json::json!(["web", "api"]));
    let (group, effects) = apply(&group, moved(&awaiting(&group, "web"), 6));
    assert_eq!(effects, [Effect::OpenServices { services: vec![service("api")] }]);
    let (group, effects) = apply(&group, moved(&approved_part(&group, "web", ANA, 7), 7));
    assert!(effects.is_empty(), "api is not verified yet: nothing to carry ({effects:?})");
    let deploying_api = part_in(&group, "api", State::Verifying { deployment: code_deployment("api") });
    let (group, effects) = apply(&group, moved(&deploying_api, 8));
    assert!(effects.is_empty(), "verifying: not yet ({effects:?})");
    let (_, effects) = apply(&group, moved(&awaiting(&group, "api"), 9));
    assert_eq!(
        effects,
        [Effect::ApproveWithRelease { service: service("api") }],
        "verified: it shifts with the release"
    );
}

#[test]
fn a_policys_approval_of_one_service_is_not_the_releases_and_carries_nothing() {
    let group = deploying(serde_json::json!([["web", "api"]]));
    let (group, _) = apply(&group, moved(&awaiting(&group, "api"), 6));
    let (group, effects) = apply(&group, moved(&approved_part(&group, "web", "policy (auto)", 7), 7));
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(group.approval, None);
    assert_eq!(group.release_approver(), None);
}

#[test]
fn a_waiting_part_takes_the_releases_approval_once_and_continues_its_deployment() {
    let group = deploying(serde_json::json!([["web", "api"]]));
    let api = awaiting(&group, "api");
    let event = approval::Event::ApprovedWithRelease { approver: format!("{ANA} approved it on web"), at: t(9) };
    let (api, effects) = apply(&api, event.clone());
    assert_eq!(api.state, State::ShiftingTraffic { deployment: code_deployment("api") });
    assert_eq!(effects, [Effect::ContinueDeployment { deployment: code_deployment("api") }]);
    let decision = api.approval.as_ref().unwrap();
    assert!(decision.by_policy(), "Convoy's own call carries it out: {}", decision.by);
    assert!(decision.by.contains(ANA), "{}", decision.by);
    assert!(unchanged(api.apply(&event).unwrap()), "once");
    let mut alone = awaiting(&group, "web");
    alone.part_of = None;
    assert!(unchanged(alone.apply(&event).unwrap()), "a release of one service has its own approval");
}

#[test]
fn a_release_of_one_service_that_goes_live_moves_its_scheduled_tasks_and_records_them_once() {
    use crate::scheduled::{ScheduleMove, ScheduledTarget};
    let group = deploying(serde_json::json!(["web", "worker"]));
    let mut alone = part_in(&group, "worker", State::Deploying { deployment: web_deployment() });
    alone.part_of = None;
    let mut live = alone.clone();
    live.state = State::Succeeded;
    let decision = Decision::changed(live.clone(), Vec::new()).moving_schedules(&alone);
    let Decision::Changed { effects, .. } = decision else { panic!("changed") };
    assert_eq!(effects, [Effect::MoveSchedules { service: service("worker") }]);
    let again = Decision::changed(live.clone(), Vec::new()).moving_schedules(&live);
    assert!(matches!(again, Decision::Changed { ref effects, .. } if effects.is_empty()), "only when it goes live");
    let part = part_in(&group, "worker", State::Deploying { deployment: web_deployment() });
    let mut part_live = part.clone();
    part_live.state = State::Succeeded;
    let of_part = Decision::changed(part_live, Vec::new()).moving_schedules(&part);
    assert!(matches!(of_part, Decision::Changed { ref effects, .. } if effects.is_empty()), "a part's are its group's");

    let nightly = ScheduleMove {
        target: ScheduledTarget::Schedule { group: "default".into(), name: "nightly".into() },
        previous: revision("worker", 7),
        revision: revision("worker", 8),
    };
    let moved =
        |moves: Vec<ScheduleMove>| services::Event::SchedulesMoved { service: service("worker"), moves, at: t(9) };
    assert!(unchanged(alone.apply(&moved(vec![nightly.clone()])).unwrap()), "not live: nothing recorded");
    let (live, _) = apply(&live, moved(vec![nightly.clone()]));
    assert_eq!(live.schedules, std::slice::from_ref(&nightly));
    assert!(unchanged(live.apply(&moved(vec![nightly])).unwrap()), "recorded once");
}

#[test]
fn a_section_that_only_takes_its_parts_approval_adds_no_service_moved_entry() {
    let group = deploying(serde_json::json!([["web", "api"]]));
    let (group, _) = apply(&group, moved(&awaiting(&group, "web"), 6));
    let mut approved = awaiting(&group, "web");
    approved.approval = Some(ApprovalDecision { approved: true, by: ANA.into(), at: t(7), actor: None });
    let before = group.timeline.len();
    let (group, _) = apply(&group, moved(&approved, 7));
    let added: Vec<&str> = group.timeline[before..].iter().map(|e| e.event.as_str()).collect();
    assert_eq!(added, ["approved"], "the release's approval, not a second move of web");
    assert!(group.section(&service("web")).unwrap().approval.is_some(), "the section keeps it");
}
