//! A failed migration's log on moto's CloudWatch Logs: `migration-stopped` copies its last lines
//! into the record (bounded) so `convoy status` shows why, `convoy logs` prints every line, and a
//! log that cannot be read leaves the failure recorded all the same.

use convoy::release::{LOG_TAIL_LINES, LogPointer, Stage, State};

use crate::migration::{invoke_migration_stopped, migrating, stopped};
use crate::scenario::*;

/// Writes `count` lines (`line 0`, `line 1`, ...) to the stream, as the awslogs driver would.
async fn write_log(backend: &MotoBackend, log: &LogPointer, count: usize) {
    let lines: Vec<String> = (0..count).map(|i| format!("line {i}")).collect();
    convoy_tests::sandbox::ship_log(&backend.world.sdk, log, &lines).await;
}

async fn log_of(backend: &MotoBackend, release: &str) -> LogPointer {
    let record = backend.record(&release_key(release)).await.unwrap();
    record.migration.and_then(|m| m.log).expect("the started migration's log pointer")
}

#[tokio::test]
async fn a_failed_migration_copies_the_last_lines_of_its_log_into_the_record_and_status_shows_them() {
    let (backend, task) = migrating("ml1").await;
    let log = log_of(&backend, "ml1").await;
    write_log(&backend, &log, 30).await;
    invoke_migration_stopped(&backend, stopped(&backend, "ml1", &task, Some(1), "EssentialContainerExited", 4))
        .await
        .unwrap();
    let record = backend.record(&release_key("ml1")).await.unwrap();
    assert!(matches!(record.state, State::Failed { stage: Stage::Migration, .. }), "{}", record.state);
    let tail = record.migration.as_ref().unwrap().log_tail.clone().expect("the last lines");
    let expected: Vec<String> = (30 - LOG_TAIL_LINES..30).map(|i| format!("line {i}")).collect();
    assert_eq!(tail, expected);
    assert_eq!(record.timeline.last().unwrap().event, "migration-logs");
    let status = convoy::status::render(&record);
    assert!(status.contains("    | line 29"), "{status}");

    // A replayed STOPPED event copies nothing again.
    invoke_migration_stopped(&backend, stopped(&backend, "ml1", &task, Some(1), "EssentialContainerExited", 4))
        .await
        .unwrap();
    assert_eq!(backend.record(&release_key("ml1")).await.unwrap(), record);

    // `convoy logs` prints every line, from the first.
    let (code, stdout, stderr) = crate::cli::run(&backend, &["logs", SERVICE, "ml1"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 30, "{stdout}");
    assert_eq!((lines[0], lines[29]), ("line 0", "line 29"));
}

#[tokio::test]
async fn a_log_that_cannot_be_read_leaves_the_failure_recorded_without_lines() {
    let (backend, task) = migrating("ml2").await;
    // No stream was ever written: GetLogEvents answers ResourceNotFoundException.
    invoke_migration_stopped(&backend, stopped(&backend, "ml2", &task, Some(1), "EssentialContainerExited", 4))
        .await
        .expect("the event is handled");
    let record = backend.record(&release_key("ml2")).await.unwrap();
    assert!(matches!(record.state, State::Failed { stage: Stage::Migration, .. }), "{}", record.state);
    assert_eq!(record.migration.as_ref().unwrap().log_tail, None);
    let (code, _, stderr) = crate::cli::run(&backend, &["logs", SERVICE, "ml2"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
}
