use chrono::Duration;

use super::test_support::{changed, key, ready, t};
use super::*;
use crate::names::{ReleaseId, ServiceName};

fn claim(at: i64) -> migration::Event {
    migration::Event::Claimed { at: t(at), lease: Duration::seconds(60), timeout: Duration::seconds(600) }
}

fn started(task: &str) -> migration::Event {
    migration::Event::Started {
        task: task.parse().unwrap(),
        task_definition: "arn:td/web-convoy-migration:3".into(),
        log: Some(LogPointer { group: "/ecs/web".into(), stream: format!("ecs/app/{task}") }),
        at: t(3),
    }
}

fn stopped(task: &str, version: u64, exit_code: Option<i32>, stop_code: &str) -> migration::Event {
    migration::Event::TaskChanged {
        report: TaskReport {
            task: task.parse().unwrap(),
            version: Some(version),
            last_status: "STOPPED".into(),
            stop_code: Some(stop_code.into()),
            stopped_reason: Some("Essential container in task exited".into()),
            containers: vec![ContainerReport { name: "app".into(), exit_code, reason: None }],
            started_at: Some(t(4)),
            stopped_at: Some(t(34)),
            started_by: Some(key().migration_started_by()),
            task_definition: Some("arn:aws:ecs:us-east-1:123456789012:task-definition/web-convoy-migration:3".into()),
        },
        at: t(35),
    }
}

fn migrating() -> Release {
    let (release, _) = changed(ready(true).apply(&claim(2)).unwrap());
    changed(release.apply(&started("task-1")).unwrap()).0
}

#[test]
fn a_ready_release_is_claimed_once() {
    let (claimed, effects) = changed(ready(true).apply(&claim(2)).unwrap());
    assert_eq!(claimed.state, State::StartingMigration);
    assert!(effects.is_empty());
    assert_eq!(claimed.migration.as_ref().unwrap().claims, 1);
    assert!(matches!(claimed.apply(&claim(3)).unwrap(), Decision::Unchanged { .. }), "a second claim loses");
}

#[test]
fn a_stale_claim_is_taken_over_after_its_lease() {
    let (claimed, _) = changed(ready(true).apply(&claim(2)).unwrap());
    let (taken, _) = changed(claimed.apply(&claim(62)).unwrap());
    assert_eq!(taken.migration.as_ref().unwrap().claims, 2);
    assert_eq!(taken.timeline.last().unwrap().event, "migration-claim-taken-over");
}

#[test]
fn the_token_is_the_same_for_every_claim_of_a_release() {
    let (claimed, _) = changed(ready(true).apply(&claim(2)).unwrap());
    let (taken, _) = changed(claimed.apply(&claim(62)).unwrap());
    assert_eq!(claimed.migration.unwrap().token, taken.migration.unwrap().token);
}

#[test]
fn client_tokens_differ_between_releases_and_purposes() {
    let other = ReleaseKey::new(ServiceName::new("web").unwrap(), ReleaseId::new("r2").unwrap());
    assert_ne!(key().client_token("migration"), other.client_token("migration"));
    assert_ne!(key().client_token("migration"), key().client_token("deployment"));
    assert_eq!(key().client_token("migration").len(), 32);
}

#[test]
fn a_release_without_migration_cannot_be_claimed() {
    assert!(matches!(ready(false).apply(&claim(2)), Err(TransitionError::NoMigration(_))));
}

#[test]
fn a_started_task_makes_the_release_migrating_with_its_log_pointer() {
    let release = migrating();
    assert_eq!(release.state, State::Migrating { task: "task-1".parse().unwrap() });
    assert_eq!(release.migration.unwrap().log.unwrap().group, "/ecs/web");
}

#[test]
fn exit_0_makes_the_release_ready_for_deployment() {
    let (release, effects) =
        changed(migrating().apply(&stopped("task-1", 4, Some(0), "EssentialContainerExited")).unwrap());
    assert_eq!(release.state, State::Ready { next: Stage::Deployment });
    assert_eq!(effects, vec![Effect::StartDeployment]);
    assert_eq!(release.migration.unwrap().exit_code, Some(0));
}

#[test]
fn exit_1_fails_the_release_with_the_evidence() {
    let (release, effects) =
        changed(migrating().apply(&stopped("task-1", 4, Some(1), "EssentialContainerExited")).unwrap());
    let State::Failed { stage: Stage::Migration, reason } = &release.state else { panic!("{}", release.state) };
    assert!(reason.contains("exited with code 1 after 30s"), "{reason}");
    assert!(reason.contains("EssentialContainerExited: Essential container in task exited"), "{reason}");
    assert!(
        effects.iter().all(|e| matches!(e, Effect::CopyMigrationLogs { .. })),
        "nothing starts, only its log is read: {effects:?}"
    );
    let run = release.migration.unwrap();
    assert_eq!((run.exit_code, run.stop_code.as_deref()), (Some(1), Some("EssentialContainerExited")));
    assert!(run.log.is_some(), "the log pointer stays with the evidence");
}

#[test]
fn a_task_that_never_started_is_a_failure_not_a_success() {
    let (release, _) = changed(migrating().apply(&stopped("task-1", 2, None, "TaskFailedToStart")).unwrap());
    let State::Failed { reason, .. } = &release.state else { panic!("{}", release.state) };
    assert!(reason.contains("never started (TaskFailedToStart"), "{reason}");
}

#[test]
fn a_migration_interrupted_by_a_stop_or_a_reclaim_is_a_failure_even_when_it_exited_0() {
    // A process that handles SIGTERM cleanly exits 0 although it never ran to its end.
    for code in ["UserInitiated", "SpotInterruption", "TerminationNotice", "ServiceSchedulerInitiated"] {
        let (release, _) = changed(migrating().apply(&stopped("task-1", 4, Some(0), code)).unwrap());
        let State::Failed { stage: Stage::Migration, reason } = &release.state else {
            panic!("{code}: {}", release.state)
        };
        assert!(reason.contains(&format!("interrupted ({code}")), "{code}: {reason}");
    }
}

#[test]
fn a_migration_whose_essential_container_exited_0_succeeds() {
    let (release, _) = changed(migrating().apply(&stopped("task-1", 4, Some(0), "EssentialContainerExited")).unwrap());
    assert_eq!(release.state, State::Ready { next: Stage::Deployment });
}

#[test]
fn a_stop_without_an_exit_code_is_a_failure() {
    let (release, _) = changed(migrating().apply(&stopped("task-1", 4, None, "UserInitiated")).unwrap());
    assert!(matches!(release.state, State::Failed { stage: Stage::Migration, .. }));
}

#[test]
fn a_running_event_changes_nothing() {
    let mut event = stopped("task-1", 3, None, "");
    if let migration::Event::TaskChanged { report, .. } = &mut event {
        report.last_status = "RUNNING".into();
    }
    assert!(matches!(migrating().apply(&event).unwrap(), Decision::Unchanged { .. }));
}

#[test]
fn a_duplicate_stop_event_changes_nothing() {
    let event = stopped("task-1", 4, Some(0), "EssentialContainerExited");
    let (release, _) = changed(migrating().apply(&event).unwrap());
    assert!(matches!(release.apply(&event).unwrap(), Decision::Unchanged { .. }));
}

#[test]
fn an_event_with_a_lower_version_is_stale() {
    let (failed, _) = changed(migrating().apply(&stopped("task-1", 5, Some(1), "EssentialContainerExited")).unwrap());
    // Even a success with a lower version cannot rewrite what a newer event said.
    assert!(matches!(
        failed.apply(&stopped("task-1", 4, Some(0), "EssentialContainerExited")).unwrap(),
        Decision::Unchanged { .. }
    ));
}

#[test]
fn an_event_for_another_task_is_ignored() {
    let decision = migrating().apply(&stopped("task-other", 4, Some(1), "EssentialContainerExited")).unwrap();
    assert!(matches!(decision, Decision::Unchanged { .. }));
}

#[test]
fn a_stop_that_overtakes_the_start_record_is_adopted() {
    let (claimed, _) = changed(ready(true).apply(&claim(2)).unwrap());
    let (release, _) = changed(claimed.apply(&stopped("task-1", 4, Some(0), "EssentialContainerExited")).unwrap());
    assert_eq!(release.state, State::Ready { next: Stage::Deployment });
    assert!(
        matches!(release.apply(&started("task-1")).unwrap(), Decision::Unchanged { .. }),
        "the late start record changes nothing"
    );
}

/// A stop event of a task someone else ran in the release's group, while the start is claimed.
fn foreign_stop(started_by: Option<&str>, task_definition: &str) -> migration::Event {
    let migration::Event::TaskChanged { mut report, at } = stopped("task-9", 4, Some(0), "EssentialContainerExited")
    else {
        unreachable!()
    };
    report.started_by = started_by.map(str::to_owned);
    report.task_definition = Some(task_definition.into());
    migration::Event::TaskChanged { report, at }
}

#[test]
fn a_task_in_the_releases_group_without_convoys_started_by_is_not_adopted() {
    let (claimed, _) = changed(ready(true).apply(&claim(2)).unwrap());
    let td = "arn:aws:ecs:us-east-1:123456789012:task-definition/web-convoy-migration:3";
    for started_by in [None, Some("someone"), Some("convoy-0000000000000000")] {
        let decision = claimed.apply(&foreign_stop(started_by, td)).unwrap();
        assert!(matches!(decision, Decision::Unchanged { .. }), "{started_by:?}");
    }
}

#[test]
fn a_task_with_convoys_started_by_but_another_family_is_not_adopted() {
    let (claimed, _) = changed(ready(true).apply(&claim(2)).unwrap());
    let marks = key().migration_started_by();
    for td in ["arn:aws:ecs:us-east-1:123456789012:task-definition/web:3", "not-an-arn"] {
        let decision = claimed.apply(&foreign_stop(Some(&marks), td)).unwrap();
        assert!(matches!(decision, Decision::Unchanged { .. }), "{td}");
    }
}

#[test]
fn a_task_definition_family_is_read_from_its_arn() {
    let arn = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web-convoy-migration:12";
    assert_eq!(task_definition_family(arn), Some("web-convoy-migration"));
    assert_eq!(task_definition_family("arn:aws:ecs:eu-west-1:1:task-definition/web"), None);
    assert_eq!(task_definition_family("web-convoy-migration:12"), None);
}

#[test]
fn an_impossible_migration_fails_the_release() {
    let (claimed, _) = changed(ready(true).apply(&claim(2)).unwrap());
    let event = migration::Event::Impossible { reason: "service web not found".into(), at: t(3) };
    let (release, _) = changed(claimed.apply(&event).unwrap());
    assert_eq!(release.state, State::Failed { stage: Stage::Migration, reason: "service web not found".into() });
}

#[test]
fn an_overdue_migration_fails_and_asks_to_stop_its_task() {
    let (release, effects) = changed(migrating().apply(&migration::Event::Overdue { at: t(602) }).unwrap());
    let State::Failed { reason, .. } = &release.state else { panic!("{}", release.state) };
    assert!(reason.contains("timeout of 600s"), "{reason}");
    assert_eq!(effects, vec![Effect::StopMigration { task: "task-1".parse().unwrap() }]);
}

#[test]
fn a_migration_within_its_time_is_not_overdue() {
    assert!(matches!(
        migrating().apply(&migration::Event::Overdue { at: t(500) }).unwrap(),
        Decision::Unchanged { .. }
    ));
}

#[test]
fn an_inconsistent_record_is_left_alone_instead_of_crashing_the_handler() {
    let mut release = migrating();
    release.migration = None; // edited by hand: migrating, but no run
    let Decision::Unchanged { why } =
        release.apply(&stopped("task-1", 4, Some(0), "EssentialContainerExited")).unwrap()
    else {
        panic!("must not change");
    };
    assert!(why.contains("inconsistent"), "{why}");
}

fn logs_copied(lines: &[&str], at: i64) -> migration::Event {
    migration::Event::LogsCopied { lines: lines.iter().map(|l| (*l).to_owned()).collect(), at: t(at) }
}

#[test]
fn a_failed_migration_asks_for_the_last_lines_of_its_log() {
    let (failed, effects) =
        changed(migrating().apply(&stopped("task-1", 3, Some(1), "EssentialContainerExited")).unwrap());
    assert!(matches!(failed.state, State::Failed { stage: Stage::Migration, .. }));
    let log = LogPointer { group: "/ecs/web".into(), stream: "ecs/app/task-1".into() };
    assert_eq!(effects, vec![Effect::CopyMigrationLogs { log }]);
    let (_, effects) = changed(migrating().apply(&stopped("task-1", 3, Some(0), "EssentialContainerExited")).unwrap());
    assert!(!effects.iter().any(|e| matches!(e, Effect::CopyMigrationLogs { .. })), "a success copies nothing");
}

#[test]
fn the_last_log_lines_are_copied_into_the_record_once() {
    let (failed, _) = changed(migrating().apply(&stopped("task-1", 3, Some(1), "EssentialContainerExited")).unwrap());
    let (copied, effects) = changed(failed.apply(&logs_copied(&["migrating", "SQLSTATE[42S01]"], 36)).unwrap());
    assert!(effects.is_empty());
    assert_eq!(
        copied.migration.as_ref().unwrap().log_tail.as_deref(),
        Some(&["migrating".into(), "SQLSTATE[42S01]".into()][..])
    );
    assert_eq!(copied.timeline.last().unwrap().event, "migration-logs");
    assert!(matches!(copied.apply(&logs_copied(&["other"], 37)).unwrap(), Decision::Unchanged { .. }), "copied once");
    assert!(
        matches!(migrating().apply(&logs_copied(&["x"], 36)).unwrap(), Decision::Unchanged { .. }),
        "a migration that has not failed keeps no lines"
    );
}

#[test]
fn the_copied_lines_are_bounded_and_cleaned() {
    let many: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
    let tail = bound_log_tail(&many);
    assert_eq!(tail.len(), LOG_TAIL_LINES);
    assert_eq!(tail.last().unwrap(), "line 99", "the newest lines are kept, oldest first");
    assert_eq!(tail.first().unwrap(), &format!("line {}", 100 - LOG_TAIL_LINES));

    let long = vec!["é".repeat(5000); 10];
    let tail = bound_log_tail(&long);
    assert!(tail.iter().all(|l| l.len() <= LOG_TAIL_BYTES / 4 && l.ends_with('…')));
    assert!(tail.iter().map(String::len).sum::<usize>() <= LOG_TAIL_BYTES);
    assert_eq!(tail.len(), 4, "a quarter of the bytes each");

    let hostile = vec!["\u{1b}[2Jcleared\r\n".to_owned()];
    assert_eq!(bound_log_tail(&hostile), ["?[2Jcleared"]);
}

/// The stop of the migration task, with `containers` as ECS reports them.
fn stopped_with(containers: Vec<ContainerReport>) -> migration::Event {
    let migration::Event::TaskChanged { mut report, at } = stopped("task-1", 4, None, "EssentialContainerExited")
    else {
        unreachable!()
    };
    report.containers = containers;
    migration::Event::TaskChanged { report, at }
}

fn exited(name: &str, code: i32) -> ContainerReport {
    ContainerReport { name: name.into(), exit_code: Some(code), reason: None }
}

#[test]
fn the_migration_containers_exit_code_decides_not_a_sidecars() {
    for containers in [vec![exited("log-router", 0), exited("app", 1)], vec![exited("app", 1), exited("log-router", 0)]]
    {
        let (release, _) = changed(migrating().apply(&stopped_with(containers)).unwrap());
        let State::Failed { stage: Stage::Migration, reason } = &release.state else { panic!("{}", release.state) };
        assert!(reason.starts_with("the migration exited with code 1"), "{reason}");
    }
}

#[test]
fn a_tasks_only_container_stands_for_the_migration_container_whatever_its_name() {
    let (release, effects) = changed(migrating().apply(&stopped_with(vec![exited("migrate", 0)])).unwrap());
    assert_eq!(release.state, State::Ready { next: Stage::Deployment });
    assert_eq!(effects, vec![Effect::StartDeployment]);
    let (release, _) =
        changed(migrating().apply(&stopped_with(vec![exited("migrate", 0), exited("log-router", 0)])).unwrap());
    let State::Failed { reason, .. } = &release.state else { panic!("{}", release.state) };
    assert!(reason.starts_with("the migration container reported no exit code"), "{reason}");
}

#[test]
fn a_migration_task_not_started_within_its_timeout_fails_the_release_and_stops_nothing() {
    let (claimed, _) = changed(ready(true).apply(&claim(2)).unwrap());
    let (release, effects) = changed(claimed.apply(&migration::Event::Overdue { at: t(602) }).unwrap());
    let reason = "the migration task was not started within 600s";
    assert_eq!(release.state, State::Failed { stage: Stage::Migration, reason: reason.into() });
    assert!(effects.is_empty(), "no task to stop: {effects:?}");
}

#[test]
fn an_arn_whose_revision_is_not_a_number_or_whose_family_is_empty_names_no_family() {
    let arn = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web-convoy-migration:latest";
    assert_eq!(task_definition_family(arn), None);
    assert_eq!(task_definition_family("arn:aws:ecs:eu-west-1:123456789012:task-definition/:12"), None);
}

#[test]
fn four_lines_of_exactly_a_quarter_of_the_bytes_are_kept_whole() {
    let quarter = "x".repeat(LOG_TAIL_BYTES / 4);
    assert_eq!(bound_log_tail(&vec![quarter.clone(); 5]), vec![quarter; 4]);
}

#[test]
fn a_manifest_uploaded_again_while_the_migration_starts_takes_over_no_claim() {
    let (claimed, _) = changed(ready(true).apply(&claim(2)).unwrap());
    let upload = readiness::Event::ManifestUploaded {
        source: ManifestSource {
            bucket: "b".into(),
            key: "releases/web/r1.json".into(),
            version_id: Some("v2".into()),
            etag: None,
        },
        outcome: Ok(claimed.manifest.clone().unwrap().into()),
        drift: Vec::new(),
        at: t(100),
    };
    let context = Context {
        migration: Some(MigrationClaim { lease: Duration::seconds(60), timeout: Duration::seconds(600) }),
        gate: false,
    };
    let (release, effects) = changed(upload.apply_to(&claimed, &context).unwrap());
    assert_eq!(release.state, State::StartingMigration);
    assert_eq!(release.migration.as_ref().unwrap().claims, 1, "the claim is the migration handler's to take over");
    assert_eq!(release.timeline.last().unwrap().event, "manifest-ignored");
    assert!(effects.is_empty());
}
