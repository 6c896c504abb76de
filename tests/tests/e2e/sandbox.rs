//! The sandbox (the README's first command) end to end: the real function binaries through the
//! local Lambda Runtime API, the real CLI, moto, the green server. Needs the binaries built
//! (`cargo build --workspace --bins`, which scripts/test runs first).

use convoy::release::{Stage, State};
use convoy_tests::sandbox::{Options, run};

fn options(id: &str) -> Options {
    Options { id: format!("{id}-{}", std::process::id()), ..Options::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_ships_a_release_to_production() {
    let finished = run(options("happy")).await.expect("the sandbox runs");
    assert_eq!(finished.release.state, State::Succeeded);
    let events: Vec<&str> = finished.release.timeline.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        events,
        [
            "manifest-accepted",
            "image-pinned",
            "image-pinned",
            "ready",
            "migration-starting",
            "migration-started",
            "migration-succeeded",
            "deployment-starting",
            "deployment-started",
            "verification-started",
            "verification-passed",
            "approved",
            "succeeded"
        ]
    );
    // The approver as AWS names it: the IAM user whose access key signed `convoy approve`.
    let approval = finished.release.approval.unwrap();
    assert!(
        approval.by.starts_with("arn:aws:iam::") && approval.by.contains(":user/sandbox-operator-"),
        "{}",
        approval.by
    );
    assert!(approval.event_id().is_some(), "recorded from CloudTrail's event");
    assert!(finished.status.contains(&format!("principal   {}", approval.by)), "{}", finished.status);
    assert!(finished.status.contains("state     Succeeded"), "{}", finished.status);
    // The functions ran on the settings file the operator published, and the record says which.
    let published = finished.settings_version.as_deref().expect("the sandbox publishes its settings file");
    let settings = finished.release.settings.as_ref().expect("the record keeps its settings' version");
    assert_eq!(settings.version_id.as_deref(), Some(published));
    assert!(settings.source.ends_with("/settings/convoy.json") && settings.source.starts_with("s3://"), "{settings}");
    assert!(finished.status.contains(&format!("settings  {settings}")), "{}", finished.status);
    assert!(finished.status.contains("passed: 5 of 5 probes passed"), "{}", finished.status);
    // The functions and the CLI's approval announced every state change; the notification rules
    // sent the approval request, with its commands, and the success.
    assert_eq!(
        finished.transitions,
        [
            "(created) → Collecting",
            "Collecting → Ready",
            "Ready → StartingMigration",
            "StartingMigration → Migrating",
            "Migrating → Ready",
            "Ready → StartingDeployment",
            "StartingDeployment → Deploying",
            "Deploying → Verifying",
            "Verifying → AwaitingApproval",
            "AwaitingApproval → ShiftingTraffic",
            "ShiftingTraffic → Succeeded"
        ]
    );
    let kinds: Vec<&str> = finished.notifications.iter().map(|(to, _)| to.as_str()).collect();
    assert_eq!(kinds, ["AwaitingApproval", "Succeeded"]);
    let approval = &finished.notifications[0].1;
    assert!(
        approval.contains("\"Approve (shift production traffic): convoy approve laravel-app 4cf03d1\""),
        "{approval}"
    );
    assert!(approval.contains("\"Reject (roll back): convoy reject laravel-app 4cf03d1\""), "{approval}");
    assert_eq!(finished.wait_exit, 0, "convoy wait: {}", finished.waited);
    assert!(finished.waited.ends_with("laravel-app/4cf03d1: Succeeded\n"), "{}", finished.waited);
    let stages: Vec<&str> = finished.stage_seconds.iter().map(|(stage, _)| stage.as_str()).collect();
    assert_eq!(stages, ["collecting", "migration", "deployment", "verification", "approval-wait"]);
    assert!(finished.stage_seconds.iter().all(|(_, seconds)| *seconds >= 0.0));
    let verification = finished.release.verification.as_ref().unwrap();
    let took = (verification.finished_at.unwrap() - verification.started_at).num_milliseconds() as f64 / 1000.0;
    assert_eq!(finished.stage_seconds[3].1, took, "the EMF line says what the record says");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_stops_a_release_whose_migration_fails() {
    let finished = run(Options { migration_fails: true, ..options("migration") }).await.expect("the sandbox runs");
    let State::Failed { stage: Stage::Migration, reason } = &finished.release.state else {
        panic!("{}", finished.release.state)
    };
    assert!(reason.contains("exited with code 1"), "{reason}");
    assert!(finished.release.deployment.is_none(), "nothing was deployed");
    let kinds: Vec<&str> = finished.notifications.iter().map(|(to, _)| to.as_str()).collect();
    assert_eq!(kinds, ["Failed"], "one notification: the failure");
    assert!(finished.notifications[0].1.contains("Failed at migration"), "{}", finished.notifications[0].1);
    assert_eq!(finished.wait_exit, 1, "convoy wait: {}", finished.waited);
    let tail = finished.release.migration.as_ref().and_then(|m| m.log_tail.clone()).expect("the log's last lines");
    assert_eq!(tail.last().map(String::as_str), Some("SQLSTATE[42S01]: table orders already exists"));
    assert!(finished.status.contains("| SQLSTATE[42S01]: table orders already exists"), "{}", finished.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_rolls_back_a_release_whose_green_answers_the_wrong_version() {
    let finished = run(Options { wrong_version: true, ..options("wrong") }).await.expect("the sandbox runs");
    let State::Failed { stage: Stage::Verification, reason } = &finished.release.state else {
        panic!("{}", finished.release.state)
    };
    assert!(reason.contains("does not contain \"4cf03d1\""), "{reason}");
    assert!(finished.release.approval.is_none(), "nobody approved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_ships_a_release_through_a_pipeline() {
    let finished = run(Options { via_pipeline: true, ..options("pipeline") }).await.expect("the sandbox runs");
    assert_eq!(finished.release.state, State::Succeeded);
    let events: Vec<&str> = finished.release.timeline.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        events[7..],
        [
            "deployment-starting",
            "bundle-written",
            "pipeline-started",
            "deployment-adopted",
            "verification-started",
            "verification-passed",
            "approved",
            "succeeded"
        ]
    );
    let run = finished.release.deployment.unwrap();
    let execution = run.pipeline.unwrap().execution.unwrap();
    assert!(finished.status.contains(&format!("execution       {execution}")), "{}", finished.status);
    assert!(finished.status.contains("via             codepipeline"), "{}", finished.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_ships_a_release_through_ecs_native_blue_green() {
    let finished = run(Options { ecs_native: true, ..options("native") }).await.expect("the sandbox runs");
    assert_eq!(finished.release.state, State::Succeeded);
    let events: Vec<&str> = finished.release.timeline.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        events[7..],
        [
            "deployment-starting",
            "revision-registered",
            "deployment-started",
            "verification-started",
            "verification-passed",
            "approved",
            "succeeded"
        ]
    );
    assert!(finished.status.contains("via             ecs-native"), "{}", finished.status);
    assert!(finished.status.contains("strategy        linear, 25% every 2 min"), "{}", finished.status);
    assert!(finished.status.contains("bake time       10 min"), "{}", finished.status);
    assert!(finished.status.contains("100% of production traffic"), "{}", finished.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_fails_when_a_function_invocation_fails() {
    let failed = run(Options { aws_unreachable: true, ..options("outage") }).await.err().expect("the sandbox fails");
    assert!(failed.starts_with("image-pushed failed: "), "{failed}");
}

/// The changing calls that reached AWS, each service's own: `UpdateService` of the worker, and
/// of web's CodeDeploy deployment.
fn sections(finished: &convoy_tests::sandbox_services::FinishedServices) -> Vec<(String, String)> {
    let words = |s: &convoy::release::SectionState| convoy::release::services::section_words(s);
    finished.release.services.iter().map(|s| (s.service.to_string(), words(&s.state))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_with_services_ships_the_worker_then_web_from_one_manifest_and_one_migration() {
    let finished = convoy_tests::sandbox_services::run_services(options("services")).await.expect("the sandbox runs");
    assert_eq!(finished.release.state, State::Succeeded, "{:#?}", finished.release.timeline);
    assert_eq!(
        sections(&finished),
        [("laravel-worker".to_owned(), "live".to_owned()), ("laravel-app".to_owned(), "live".to_owned())]
    );
    assert_eq!(finished.changes, ["RunTask", "UpdateService", "CreateDeployment"], "one of each, in the order");
    let worker = finished.worker.as_ref().expect("the worker's part");
    assert_eq!(worker.deployment.as_ref().unwrap().task_definition.as_deref(), Some(finished.worker_after.as_str()));
    assert_ne!(finished.worker_after, finished.worker_before, "the worker runs the release");
    assert_eq!(finished.schedule_after, finished.worker_after, "its scheduled task moved with it");
    let web = finished.web.as_ref().expect("web's part");
    assert!(web.approval.as_ref().is_some_and(|a| a.approved && a.by.contains(":user/sandbox-operator-")));
    assert_eq!(finished.wait_exit, 0, "{}", finished.waited);
    let [(_, handoff)] = finished.handoffs.as_slice() else { panic!("one hand-off: {:?}", finished.handoffs) };
    assert!(*handoff < std::time::Duration::from_secs(1), "the hand-off took {handoff:?}");
    assert_eq!(finished.steps.len(), 6, "{:?}", finished.steps);
    let rows: Vec<&str> = finished.status.lines().filter(|l| l.starts_with("  1 ") || l.starts_with("  2 ")).collect();
    assert_eq!(
        rows,
        ["  1 laravel-worker  ecs-rolling   live", "  2 laravel-app     codedeploy    live"],
        "{}",
        finished.status
    );
    assert!(
        finished.transitions.iter().any(|t| t == "laravel: DeployingServices → Succeeded"),
        "{:?}",
        finished.transitions
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_with_services_puts_the_worker_back_when_web_fails_its_verification() {
    let options = Options { wrong_version: true, ..options("services-wrong") };
    let finished = convoy_tests::sandbox_services::run_services(options).await.expect("the sandbox runs");
    let State::Failed { stage: Stage::Verification, reason } = &finished.release.state else {
        panic!("{}", finished.release.state)
    };
    assert!(reason.starts_with("service laravel-app: "), "{reason}");
    let sections = sections(&finished);
    assert!(sections[0].1.starts_with("rolled back: put back on "), "{sections:?}");
    assert!(sections[1].1.starts_with("failed: verification: "), "{sections:?}");
    assert_eq!(finished.worker_after, finished.worker_before, "the worker runs what it ran before the release");
    assert_eq!(finished.schedule_after, finished.worker_before, "and so does its scheduled task");
    assert_eq!(finished.changes, ["RunTask", "UpdateService", "CreateDeployment", "UpdateService"], "put back once");
    assert_eq!(finished.wait_exit, 1, "{}", finished.waited);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_service_release_the_bench_measures_deploys_each_service_once_in_order_and_times_each_hand_off() {
    let finished =
        convoy_tests::sandbox_services::run_three_services(options("three")).await.expect("the sandbox runs");
    assert_eq!(finished.release.state, State::Succeeded, "{:#?}", finished.release.timeline);
    let live = |name: &str| (name.to_owned(), "live".to_owned());
    assert_eq!(sections(&finished), [live("laravel-worker"), live("laravel-app"), live("laravel-scheduler")]);
    assert_eq!(
        finished.changes,
        ["RunTask", "UpdateService", "CreateDeployment", "UpdateService"],
        "one migration, then one deployment per service in the manifest's order"
    );
    let labels: Vec<&str> = finished.handoffs.iter().map(|(label, _)| label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "laravel-worker live → laravel-app's CreateDeployment",
            "laravel-app verified → laravel-scheduler's UpdateService"
        ]
    );
    // The figures are the bench's to print (release builds); the two-service test above holds
    // the first hand-off under 1 s.
    assert!(finished.handoffs.iter().all(|(_, took)| !took.is_zero()), "{:?}", finished.handoffs);
    // Upload ×2, pushes 1 + 2, migration 1, worker's end ×2, hook 1, scheduler's end ×2, the
    // approval's CloudTrail event 1, web's end 1: what the bench's cost counts.
    assert_eq!(finished.invocations.len(), 13, "{:?}", finished.invocations);
    assert!(finished.requests.iter().any(|(service, operation)| service == "s3" && operation == "PutObject"));
}
