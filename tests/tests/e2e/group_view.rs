//! A group's release seen as one by the `convoy` binary against moto: `status` prints a row per
//! service (`--json` the sections as stored), `list` names the
//! group's services, and `wait` follows each service's state and exits 0 only once every service
//! is live. The records are written as the state machine would leave them, in varied section
//! states (`convoy_tests::fixtures::group_release`).

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use convoy::release::Release;
use convoy_tests::fixtures::group_release;
use convoy_tests::wait::wait_for;
use serde_json::json;

use crate::bad_input::containers;
use crate::cli::run;
use crate::scenario::*;

const LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

fn deploying() -> serde_json::Value {
    json!({"name": "Deploying", "deployment": {"codedeploy": "d-WEB0"}})
}

/// The lines a `convoy wait` prints, as it prints them, and the process.
struct Waiting {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Waiting {
    fn start(backend: &MotoBackend, release: &str) -> Self {
        let mut child = crate::cli::command(backend)
            .args(["wait", "shop", release, "--timeout", "60s", "--max-interval", "1s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start convoy wait");
        let out = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = std::thread::spawn({
            let lines = lines.clone();
            move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().expect("lines").push(line);
                }
            }
        });
        Self { child, lines, reader }
    }

    fn printed(&self, line: &str) -> bool {
        self.lines.lock().expect("lines").iter().any(|l| l == line)
    }

    async fn until_printed(&self, line: &str) {
        wait_for(LIMIT, &format!("convoy wait printed {line:?}"), || async { self.printed(line) }).await;
    }

    /// Its exit code and everything it printed.
    async fn exit(self) -> (i32, String, String) {
        let waited = tokio::task::spawn_blocking(move || self.child.wait_with_output());
        let output = tokio::time::timeout(LIMIT, waited).await.expect("convoy wait exits").unwrap().unwrap();
        self.reader.join().expect("the reader ends with the process");
        let stdout = self.lines.lock().unwrap().join("\n");
        (output.status.code().expect("an exit code"), stdout, String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Writes `next` over the stored record of its release, as a transition would.
async fn replace(backend: &MotoBackend, next: &Release) {
    let stored = backend.convoy.store.load(&next.key).await.unwrap().expect("a record");
    backend.convoy.store.replace(next, &stored.version).await.expect("replace the record");
}

#[tokio::test]
async fn status_prints_a_row_per_service_with_its_deployment_and_revisions_and_json_carries_the_sections() {
    let backend = MotoBackend::new(&containers()).await;
    let sections =
        [("web", "codedeploy", "live"), ("api", "ecs-native", "rolled-back"), ("jobs", "ecs-rolling", "waiting")];
    let record = group_release(
        "v1",
        json!({"name": "RolledBack", "reason": "api: 2 of 5 probes failed"}),
        &sections,
        "2 of 5 probes failed\u{1b}[2J",
    );
    backend.convoy.store.create(&record).await.unwrap();

    let (code, stdout, stderr) = run(&backend, &["status", "shop", "v1"]);
    assert_eq!(code, 1, "a rolled back release: {stderr}");
    let revision = |service: &str| {
        let arn = |n: u32| {
            format!(
                "arn:aws:ecs:{}:{}:task-definition/{service}:{n}",
                convoy_tests::moto::REGION,
                convoy_tests::moto::ACCOUNT
            )
        };
        format!("    revision    {} → {}", arn(1), arn(2))
    };
    let services: Vec<&str> =
        stdout.lines().skip_while(|l| *l != "services").skip(1).take_while(|l| !l.is_empty()).collect();
    assert_eq!(
        services,
        [
            "  1 web   codedeploy    live".to_owned(),
            "    deployment  d-WEB0".to_owned(),
            revision("web"),
            "  2 api   ecs-native    rolled back: 2 of 5 probes failed\\u{1b}[2J".to_owned(),
            "    deployment  d-API1".to_owned(),
            revision("api"),
            "  3 jobs  ecs-rolling   waiting".to_owned(),
        ],
        "{stdout}"
    );
    assert!(!stdout.contains('\u{1b}'), "nothing raw reaches the terminal");

    let (code, stdout, _) = run(&backend, &["status", "shop", "v1", "--json"]);
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(json["services"], serde_json::to_value(&record.services).unwrap(), "the sections as stored");
}

#[tokio::test]
async fn list_names_a_groups_release_by_its_services() {
    let backend = MotoBackend::new(&containers()).await;
    let sections = [("web", "codedeploy", "deploying"), ("worker", "ecs-rolling", "waiting")];
    backend.convoy.store.create(&group_release("l1", deploying(), &sections, "")).await.unwrap();

    let (code, stdout, stderr) = run(&backend, &["list"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("shop/l1 (web, worker)  Deploying")), "{stdout}");
    let (_, stdout, _) = run(&backend, &["list", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout).expect("a JSON array");
    let services: Vec<(&str, &str)> = rows[0]["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| (s["service"].as_str().unwrap(), s["state"]["name"].as_str().unwrap()))
        .collect();
    assert_eq!(services, [("web", "deploying"), ("worker", "waiting")], "{stdout}");
}

#[tokio::test]
async fn wait_prints_each_services_state_as_it_changes_and_exits_0_once_every_service_is_live() {
    let backend = MotoBackend::new(&containers()).await;
    let mut record =
        group_release("w1", deploying(), &[("web", "codedeploy", "deploying"), ("api", "ecs-native", "waiting")], "");
    backend.convoy.store.create(&record).await.unwrap();
    let wait = Waiting::start(&backend, "w1");
    wait.until_printed("service web: deploying").await;
    assert!(wait.printed("service api: waiting"), "each service's first state");

    // The release succeeded with api still deploying: not done yet is not what the record says.
    record.services[0].state = convoy::release::SectionState::Live;
    record.services[1].state = convoy::release::SectionState::Deploying;
    replace(&backend, &record).await;
    wait.until_printed("service web: live").await;
    wait.until_printed("service api: deploying").await;
    record.services[1].state = convoy::release::SectionState::Live;
    record.state = convoy::release::State::Succeeded;
    replace(&backend, &record).await;
    let (code, stdout, stderr) = wait.exit().await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let changes: Vec<&str> = stdout.lines().filter(|l| l.starts_with("service ")).collect();
    assert_eq!(
        changes,
        [
            "service web: deploying",
            "service api: waiting",
            "service web: live",
            "service api: deploying",
            "service api: live"
        ],
        "one line per change, none repeated: {stdout}"
    );
    assert!(stdout.ends_with("shop/w1: Succeeded (web live, api live)"), "{stdout}");
}

#[tokio::test]
async fn wait_exits_1_as_soon_as_a_service_rolls_back_and_when_a_release_succeeds_without_every_service_live() {
    let backend = MotoBackend::new(&containers()).await;
    let mut record =
        group_release("w2", deploying(), &[("web", "codedeploy", "live"), ("api", "ecs-native", "verifying")], "");
    backend.convoy.store.create(&record).await.unwrap();
    let wait = Waiting::start(&backend, "w2");
    wait.until_printed("service api: verifying").await;
    // The release itself is still moving (it rolls web back next); api's end decides the wait.
    record.services[1].state = convoy::release::SectionState::RolledBack { reason: "5xx on the test listener".into() };
    replace(&backend, &record).await;
    let (code, stdout, stderr) = wait.exit().await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("service api: rolled-back: 5xx on the test listener"), "{stdout}");

    let through = [("web", "codedeploy", "live"), ("api", "ecs-native", "through")];
    backend.convoy.store.create(&group_release("w3", json!({"name": "Succeeded"}), &through, "")).await.unwrap();
    let (code, stdout, stderr) = run(&backend, &["wait", "shop", "w3", "--timeout", "20s"]);
    assert_eq!(code, 1, "a service not live never will be: {stdout}{stderr}");
    assert!(stdout.ends_with("shop/w3: Succeeded (web live, api through)\n"), "{stdout}");
}
