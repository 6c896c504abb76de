//! Text from outside never reaches the operator's terminal raw: the `convoy` binary's `logs`,
//! `status`, `wait` and `submit` fed terminal escapes (a title change and a screen clear), a C1
//! CSI, a bidi override and a zero-width space, from a migration's log, a manifest's unknown field
//! (quoted by the parser into the record's reason) and a `StopTask --reason`. Their `--json`
//! stays exact JSON, with the same text in it.

use convoy::release::{LogPointer, Stage, State};
use serde_json::{Value, json};

use crate::bad_input::{containers, failure_of};
use crate::cli::run;
use crate::migration::{invoke_migration_stopped, migrating, stopped};
use crate::scenario::*;

/// A terminal title, a screen clear, a C1 CSI, a right-to-left override, a zero-width space.
const HOSTILE: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\u{202e}gnp.exe\u{200b}";
/// [`HOSTILE`] as the filter shows it.
const SHOWN: &str = "\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{9b}31m\\u{202e}gnp.exe\\u{200b}";

fn nothing_raw(stream: &str, text: &str) {
    let raw: Vec<char> = text
        .chars()
        .filter(|c| {
            let c = *c as u32;
            (c < 0x20 && c != 0x0a && c != 0x09) || (0x7f..=0x9f).contains(&c) || [0x202e, 0x200b].contains(&c)
        })
        .collect();
    assert!(raw.is_empty(), "{stream} holds {raw:?} raw: {text:?}");
}

/// A manifest whose unknown field is named [`HOSTILE`]: the parser quotes it in the reason.
fn hostile_manifest(backend: &MotoBackend, release: &str) -> String {
    let mut manifest: Value = serde_json::from_str(&manifest_v1(backend, release, &containers(), false)).unwrap();
    manifest[HOSTILE] = json!(1);
    manifest.to_string()
}

#[tokio::test]
async fn convoy_logs_shows_a_migrations_terminal_escapes_escaped_and_its_json_stays_exact() {
    let (backend, task) = migrating("ho1").await;
    let record = backend.record(&release_key("ho1")).await.unwrap();
    let log: LogPointer = record.migration.and_then(|m| m.log).unwrap();
    convoy_tests::sandbox::ship_log(&backend.world.sdk, &log, &[format!("migrating {HOSTILE} done")]).await;
    invoke_migration_stopped(&backend, stopped(&backend, "ho1", &task, Some(1), "EssentialContainerExited", 4))
        .await
        .unwrap();

    let (code, stdout, stderr) = run(&backend, &["logs", SERVICE, "ho1"]);
    assert_eq!(code, 0, "{stderr}");
    nothing_raw("stdout", &stdout);
    nothing_raw("stderr", &stderr);
    assert_eq!(stdout.trim_end(), format!("migrating {SHOWN} done"));

    let (code, stdout, stderr) = run(&backend, &["logs", SERVICE, "ho1", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    nothing_raw("stdout", &stdout);
    let line: Value = serde_json::from_str(stdout.trim_end()).expect("one JSON object");
    assert_eq!(line["line"], json!(format!("migrating {HOSTILE} done")), "the same text, as JSON escapes");
}

#[tokio::test]
async fn convoy_status_and_wait_show_a_reason_quoting_a_manifests_field_escaped() {
    let backend = MotoBackend::new(&containers()).await;
    let reason = failure_of(&backend, "ho2", &hostile_manifest(&backend, "ho2")).await;
    assert!(reason.contains(HOSTILE), "the record keeps the text as it came: {reason:?}");

    let (code, stdout, stderr) = run(&backend, &["status", SERVICE, "ho2"]);
    assert_eq!(code, 1, "{stderr}");
    nothing_raw("status", &stdout);
    assert!(stdout.contains(SHOWN), "{stdout}");

    let (code, stdout, stderr) = run(&backend, &["wait", SERVICE, "ho2", "--timeout", "20s"]);
    assert_eq!(code, 1, "{stderr}");
    nothing_raw("wait", &stdout);
    nothing_raw("wait's stderr", &stderr);
    assert!(stdout.contains(SHOWN), "{stdout}");

    let (code, stdout, _) = run(&backend, &["status", SERVICE, "ho2", "--json"]);
    assert_eq!(code, 1);
    nothing_raw("status --json", &stdout);
    let record: Value = serde_json::from_str(&stdout).expect("exact JSON");
    let State::Failed { reason: stored, .. } =
        serde_json::from_value::<convoy::release::Release>(record).unwrap().state
    else {
        panic!("a failed release")
    };
    assert_eq!(stored, reason, "the same reason, decoded");

    let (_, stdout, _) = run(&backend, &["wait", SERVICE, "ho2", "--json", "--timeout", "20s"]);
    nothing_raw("wait --json", &stdout);
    for line in stdout.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}

#[tokio::test]
async fn convoy_submit_shows_the_parsers_quote_of_a_field_name_escaped() {
    let backend = MotoBackend::new(&containers()).await;
    let path = std::env::temp_dir().join(format!("convoy-hostile-{}.json", std::process::id()));
    std::fs::write(&path, hostile_manifest(&backend, "ho3")).unwrap();
    let (code, stdout, stderr) = run(&backend, &["submit", path.to_str().unwrap()]);
    let (json_code, json_out, _) = run(&backend, &["submit", path.to_str().unwrap(), "--json"]);
    std::fs::remove_file(&path).ok();
    assert_eq!(code, 1, "{stdout}{stderr}");
    nothing_raw("submit's stderr", &stderr);
    assert!(stderr.contains(&format!("unknown field `{SHOWN}`")), "{stderr}");
    assert_eq!(json_code, 1);
    nothing_raw("submit --json", &json_out);
    let refused: Value = serde_json::from_str(json_out.trim_end()).expect("exact JSON");
    assert!(refused["refused"].as_str().unwrap().contains(HOSTILE), "{refused}");
}

#[tokio::test]
async fn convoy_status_shows_a_stop_tasks_reason_escaped() {
    let (backend, task) = migrating("ho4").await;
    let mut event = stopped(&backend, "ho4", &task, Some(0), "UserInitiated", 4);
    event["detail"]["stoppedReason"] = json!(format!("stopped by {HOSTILE}"));
    invoke_migration_stopped(&backend, event).await.unwrap();
    let record = backend.record(&release_key("ho4")).await.unwrap();
    assert!(matches!(record.state, State::Failed { stage: Stage::Migration, .. }), "{}", record.state);

    let (code, stdout, stderr) = run(&backend, &["status", SERVICE, "ho4"]);
    assert_eq!(code, 1, "{stderr}");
    nothing_raw("status", &stdout);
    assert!(stdout.contains(&format!("stopped by {SHOWN}")), "{stdout}");
}

#[tokio::test]
async fn wait_with_a_timeout_beyond_the_clock_exits_2_with_a_message_instead_of_panicking() {
    let backend = MotoBackend::new(&containers()).await;
    let (code, _, stderr) = run(&backend, &["wait", SERVICE, "r1", "--timeout", "200000000000000d"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("longer than 3650d"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
