//! `convoy history` and `convoy list --live` against moto: two ECS native releases of `web` go
//! live through the real handlers, each approved by a person (CloudTrail names them); the CLI
//! reads them from the records and asks ECS (DescribeServices, through the stand-in, which keeps
//! the PRIMARY deployment each `UpdateService` starts) what the service runs. Then someone
//! updates the service by hand, and `list --live` says so.

use convoy::release::State;
use convoy_tests::fixtures;
use convoy_tests::http::Behaviour;
use serde_json::{Value, json};

use crate::deploy::{deploying, invoke};
use crate::native::{deployment_configuration, native_backend, run_hook};
use crate::scenario::*;

/// Release `release` of `web` deploys natively, passes its verification, is approved by a person
/// (`convoy approve`'s code with the test's credentials, attributed from CloudTrail) and ECS
/// completes it.
async fn goes_live(backend: &MotoBackend, release: &str) {
    let arn = deploying(backend, release, json!({})).await;
    backend.standin.service_deployment_at(&arn, "POST_TEST_TRAFFIC_SHIFT", 0.0);
    assert_eq!(run_hook(backend, &arn, &format!("exec-{release}")).await.last().unwrap(), "SUCCEEDED");
    backend.standin.pause_service_deployment(&arn);
    backend.convoy.decide(&release_key(release), true).await.unwrap();
    backend.cloudtrail_delivers_last_call().await;
    backend.standin.service_deployment_ends(&arn, "SUCCESSFUL", "Service deployment completed");
    let event = fixtures::ecs_deployment_state_change(
        &backend.ecs.cluster,
        SERVICE,
        "SERVICE_DEPLOYMENT_COMPLETED",
        "ECS deployment ecs-svc/1 completed.",
    );
    invoke(&backend.convoy, "deployment-changed", event).await;
    assert_eq!(backend.record(&release_key(release)).await.unwrap().state, State::Succeeded);
}

/// The real CLI (built before the tests), through the stand-in to moto: off the runtime, whose
/// threads serve the stand-in meanwhile.
async fn convoy(backend: &MotoBackend, args: &[&str]) -> String {
    let (endpoint, bucket) = (backend.standin.endpoint.clone(), backend.world.bucket.clone());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let run = tokio::task::spawn_blocking(move || {
        convoy_tests::sandbox::cli(&endpoint, &bucket, &args.iter().map(String::as_str).collect::<Vec<_>>())
    });
    run.await.unwrap().unwrap()
}

async fn convoy_json(backend: &MotoBackend, args: &[&str]) -> Value {
    let text = convoy(backend, args).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The revision the service's family registers next, with an environment variable changed, and
/// an `UpdateService` to it: what someone does by hand in the console or with the AWS CLI.
async fn updated_by_hand(backend: &MotoBackend, from: &str) -> String {
    let ecs = backend.ecs_client();
    let described = ecs.describe_task_definition().task_definition(from).send().await.unwrap();
    let definition = described.task_definition.unwrap();
    let mut containers = definition.container_definitions().to_vec();
    containers[0].environment =
        Some(vec![aws_sdk_ecs::types::KeyValuePair::builder().name("DB_HOST").value("db-by-hand.internal").build()]);
    let registered = ecs
        .register_task_definition()
        .family(definition.family().unwrap())
        .set_container_definitions(Some(containers))
        .set_network_mode(definition.network_mode().cloned())
        .set_requires_compatibilities(Some(definition.requires_compatibilities().to_vec()))
        .set_cpu(definition.cpu().map(str::to_owned))
        .set_memory(definition.memory().map(str::to_owned))
        .send()
        .await
        .unwrap();
    let arn = registered.task_definition.unwrap().task_definition_arn.unwrap();
    // Through the stand-in, as every ECS call of the harness: it keeps the deployment this starts.
    let via_standin = convoy_tests::moto::sdk_config_for(&backend.standin.endpoint).await;
    let by_hand = aws_sdk_ecs::Client::new(&via_standin);
    by_hand.update_service().cluster(&backend.ecs.cluster).service(SERVICE).task_definition(&arn).send().await.unwrap();
    arn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_what_went_live_newest_first_and_list_live_confirms_it_then_names_a_change_by_hand() {
    // One green server behind the test listener plays each release's new version in turn.
    let (backend, _green) = native_backend(Behaviour::version("h1 h2"), deployment_configuration("BLUE_GREEN")).await;
    goes_live(&backend, "h1").await;
    goes_live(&backend, "h2").await;
    let h1 = backend.record(&release_key("h1")).await.unwrap();
    let h2 = backend.record(&release_key("h2")).await.unwrap();
    let approver = h2.approval.as_ref().unwrap().by.clone();
    assert!(approver.starts_with("arn:aws:"), "CloudTrail named the approver: {approver}");
    // A release that never went live is not history: h3 waits for its images.
    let manifest = manifest_v1(&backend, "h3", &crate::deploy::containers(), false);
    let upload = backend.upload("releases/web/h3.json", &manifest).await;
    invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();
    assert_eq!(backend.record(&release_key("h3")).await.unwrap().state, State::Collecting);

    // The table: newest first, each with its short digests, approver, how long it was live.
    let table = convoy(&backend, &["history", SERVICE]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("RELEASE") && lines[0].contains("APPROVED BY"), "{table}");
    assert_eq!(lines.len(), 3, "a header and two releases:\n{table}");
    assert!(lines[1].starts_with("h2 ") && lines[1].contains("live now"), "{table}");
    assert!(lines[2].starts_with("h1 ") && lines[2].contains("replaced by h2"), "{table}");
    let h1_app = h1.pinned_uris().into_iter().find(|(c, _)| c == "app").unwrap().1;
    // `app=<repository>@sha256:<first 12 hex>`: the repository without its registry.
    let (repository, digest) = h1_app.rsplit_once('/').unwrap().1.split_once('@').unwrap();
    let short = format!("app={repository}@{}", &digest[..19]);
    assert!(lines[2].contains(&short) && lines[2].contains(&approver), "{short}\n{table}");

    // The JSON: the whole digests, the revisions, until when and for how long.
    let history = convoy_json(&backend, &["history", SERVICE, "--json"]).await;
    let releases = history["releases"].as_array().unwrap();
    let names: Vec<&str> = releases.iter().map(|r| r["key"]["release"].as_str().unwrap()).collect();
    assert_eq!(names, ["h2", "h1"]);
    assert_eq!(releases[1]["images"]["app"], json!(h1_app));
    assert_eq!(releases[0]["task_definition"], json!(h2.deployment.as_ref().unwrap().task_definition));
    assert_eq!(releases[1]["until"], releases[0]["at"], "h1 was live until h2 went live");
    assert_eq!(releases[0]["until"], Value::Null);
    assert_eq!(releases[1]["approved_by"], json!(approver));
    assert_eq!(releases[1]["migration"], json!({"kind": "none"}));
    assert!(releases[1]["live_seconds"].as_i64().unwrap() >= 0);
    assert_eq!((history["live_now"].as_str(), history["live_before"].as_str()), (Some("h2"), Some("h1")));
    let limited = convoy_json(&backend, &["history", SERVICE, "--json", "--limit", "1"]).await;
    assert_eq!(limited["releases"].as_array().unwrap().len(), 1);

    // What is live: h2, and ECS runs its revision.
    let cluster = backend.ecs.cluster.clone();
    let live = convoy_json(&backend, &["list", "--live", "--cluster", &cluster, "--json"]).await;
    let web = live.as_array().unwrap().iter().find(|s| s["service"] == SERVICE).expect("web is listed");
    assert_eq!(web["live"]["key"]["release"], "h2");
    assert_eq!(web["before"], "h1");
    assert_eq!(web["ecs"], json!({"kind": "confirmed"}));
    let table = convoy(&backend, &["list", "--live", "--cluster", &cluster]).await;
    let row = table.lines().find(|l| l.starts_with("web ")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("h2") && row.contains("confirmed by ECS") && row.contains(&approver), "{table}");

    // Someone updates the service by hand: list --live names the revision and when ECS started it.
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let by_hand = updated_by_hand(&backend, h2.deployment.as_ref().unwrap().task_definition.as_deref().unwrap()).await;
    let revision = by_hand.rsplit_once("task-definition/").unwrap().1.to_owned();
    let live = convoy_json(&backend, &["list", "--live", "--cluster", &cluster, "--json"]).await;
    let web = live.as_array().unwrap().iter().find(|s| s["service"] == SERVICE).unwrap();
    assert_eq!(web["changed_outside_convoy"], true);
    assert_eq!(web["ecs"]["task_definition"], json!(by_hand));
    let since: chrono::DateTime<chrono::Utc> = serde_json::from_value(web["ecs"]["since"].clone()).unwrap();
    assert!(since >= before && since <= chrono::Utc::now(), "ECS started it just now: {since}");
    assert_eq!(web["live"]["key"]["release"], "h2", "the records still say h2 went live last");
    let table = convoy(&backend, &["list", "--live", "--cluster", &cluster]).await;
    let row = table.lines().find(|l| l.starts_with("web ")).unwrap();
    assert!(row.contains(&format!("changed outside Convoy: {revision}, started by ECS at ")), "{table}");
}
