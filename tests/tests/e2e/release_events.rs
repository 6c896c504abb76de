//! Release events on moto's EventBridge: every state change of a release arrives on the bus (a
//! rule taking every Convoy event delivers to an SQS queue the test reads), template.yaml's
//! notification rules take exactly the four kinds a person must act on or know, and a release
//! keeps moving when its events cannot be published.

use std::collections::BTreeMap;
use std::sync::Arc;

use convoy::adapters::aws::EventBridgeEvents;
use convoy::notify::state_name;
use convoy::release::State;
use convoy_tests::http::Behaviour;
use convoy_tests::notifications::{self, Queue};
use convoy_tests::standin::Phase;
use serde_json::{Value, json};

use crate::deploy::{deploying, with_green};
use crate::scenario::*;

/// Each release's events as (from, to), in the order they arrived.
fn transitions(events: &[Value]) -> BTreeMap<String, Vec<(Option<String>, String)>> {
    let mut by_release: BTreeMap<String, Vec<(Option<String>, String)>> = BTreeMap::new();
    for event in events {
        let detail = &event["detail"];
        let from = detail["from"].as_str().map(str::to_owned);
        let to = detail["to"].as_str().expect("to").to_owned();
        by_release.entry(detail["release"].as_str().expect("release").to_owned()).or_default().push((from, to));
    }
    by_release
}

fn owned(steps: &[(Option<&str>, &str)]) -> Vec<(Option<String>, String)> {
    steps.iter().map(|(from, to)| (from.map(str::to_owned), (*to).to_owned())).collect()
}

#[tokio::test]
async fn every_transition_arrives_as_an_event_and_the_notification_rules_take_only_the_four_kinds() {
    // One green version whose body names both releases that reach verification.
    let (mut backend, _green) = with_green(Behaviour::version("n1-n2"), "manual").await;
    let id = backend.world.id.clone();
    let bus = format!("convoy-{id}");
    notifications::create_bus(&bus);
    let all = Queue::create(&format!("every-event-{id}"));
    notifications::route(&bus, &format!("every-event-{id}"), &notifications::every_release_event(), &all);
    let notes = notifications::notification_queues(&bus, &id);
    assert_eq!(notes.len(), 2, "the approval and the outcome rule");
    backend.convoy.events = Arc::new(EventBridgeEvents::from_sdk(&backend.world.sdk, &bus));

    // n1: verified, approved by alice, succeeds.
    let n1 = deploying(&backend, "n1", json!({})).await;
    backend.codedeploy_hook(&n1, "exec-1").await;
    backend.standin.waits(&n1);
    let (alice, as_alice) = backend.person("alice-n1").await;
    as_alice.decide(&release_key("n1"), true).await.unwrap();
    backend.cloudtrail_delivers_last_call().await;
    backend.standin.finish(&n1);
    backend.codedeploy_reports(&n1, "SUCCESS").await;
    // n2: verified, rejected by bob, rolled back.
    let n2 = deploying(&backend, "n2", json!({})).await;
    backend.codedeploy_hook(&n2, "exec-2").await;
    let (bob, as_bob) = backend.person("bob-n2").await;
    as_bob.decide(&release_key("n2"), false).await.unwrap();
    backend.cloudtrail_delivers_last_call().await;
    assert_eq!(backend.standin.phase(&n2), Some(Phase::Stopped));
    backend.codedeploy_reports(&n2, "STOP").await;
    // n3: a manifest that is not one.
    let upload = backend.upload("releases/web/n3.json", "{\"version\": 1, \"surprise\": true}").await;
    invoke_manifest_uploaded(&backend.convoy, upload).await.unwrap();

    let events = all.drain();
    for event in &events {
        assert_eq!(event["source"], "convoy");
        assert_eq!(event["detail-type"], "Convoy Release State Change");
        let wrong = convoy::notify::schema_violations(&event["detail"]);
        assert!(wrong.is_empty(), "the event off moto is not as documented: {wrong:?}\n{event:#}");
    }
    let by_release = transitions(&events);
    let deploy = [
        (None, "Collecting"),
        (Some("Collecting"), "Ready"),
        (Some("Ready"), "StartingDeployment"),
        (Some("StartingDeployment"), "Deploying"),
        (Some("Deploying"), "Verifying"),
        (Some("Verifying"), "AwaitingApproval"),
    ];
    let mut n1_steps = deploy.to_vec();
    n1_steps.extend([(Some("AwaitingApproval"), "ShiftingTraffic"), (Some("ShiftingTraffic"), "Succeeded")]);
    let mut n2_steps = deploy.to_vec();
    n2_steps.extend([(Some("AwaitingApproval"), "RollingBack"), (Some("RollingBack"), "RolledBack")]);
    assert_eq!(by_release["n1"], owned(&n1_steps), "n1's transitions, in order");
    assert_eq!(by_release["n2"], owned(&n2_steps), "n2's transitions, in order");
    assert_eq!(by_release["n3"], owned(&[(None, "Failed")]), "n3's transitions");
    for (release, steps) in &by_release {
        let record = backend.record(&release_key(release)).await.unwrap();
        assert_eq!(steps.last().unwrap().1, state_name(&record.state), "{release}'s last event is its record's state");
    }

    // n1's end carries what a person needs: digests, deployment, approver, links, commands.
    let succeeded = events.iter().find(|e| e["detail"]["release"] == "n1" && e["detail"]["to"] == "Succeeded").unwrap();
    let detail = &succeeded["detail"];
    let record = backend.record(&release_key("n1")).await.unwrap();
    assert_eq!(record.state, State::Succeeded);
    for (container, image) in &record.images {
        let digest = image.digest.as_ref().unwrap().to_string();
        assert_eq!(detail["images"][container.to_string()]["digest"], digest.as_str(), "{container}'s digest");
    }
    assert_eq!(detail["deployment_id"], n1.as_str());
    assert_eq!(detail["approver"], alice.as_str(), "the principal AWS names");
    assert_eq!(detail["approved"], true);
    assert_eq!(detail["links"]["status"], "convoy status web n1");
    assert!(
        detail["links"]["deployment"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/deployments/{n1}?region={}", convoy_tests::moto::REGION))
    );
    let rolled_back =
        events.iter().find(|e| e["detail"]["release"] == "n2" && e["detail"]["to"] == "RolledBack").unwrap();
    assert_eq!(rolled_back["detail"]["reason"], format!("rejected by {bob}"));
    assert_eq!(rolled_back["detail"]["approver"], bob.as_str());

    // The notification rules, as the template writes them, take exactly the four kinds.
    let sent = notifications::notifications(&notes);
    let mut kinds: Vec<(String, String)> = sent.iter().map(|(rule, to, _)| (rule.clone(), to.clone())).collect();
    kinds.sort();
    let expected: Vec<(String, String)> = [
        ("ApprovalNotificationRule", "AwaitingApproval"),
        ("ApprovalNotificationRule", "AwaitingApproval"),
        ("OutcomeNotificationRule", "Failed"),
        ("OutcomeNotificationRule", "RolledBack"),
        ("OutcomeNotificationRule", "Succeeded"),
    ]
    .iter()
    .map(|(rule, to)| ((*rule).to_owned(), (*to).to_owned()))
    .collect();
    assert_eq!(kinds, expected, "one message per release awaiting approval and per end; nothing else");
    let approval = &sent.iter().find(|(_, to, text)| to == "AwaitingApproval" && text.contains(" n1 ")).unwrap().2;
    assert!(approval.contains("awaits your approval"), "{approval}");
    assert!(approval.contains("convoy approve web n1"), "{approval}");
    assert!(approval.contains("convoy reject web n1"), "{approval}");
    assert!(approval.contains(&n1), "the approval message names the deployment: {approval}");
    let failed = &sent.iter().find(|(_, to, _)| to == "Failed").unwrap().2;
    assert!(failed.contains("release n3 of web ended: Failed"), "{failed}");
    assert!(failed.contains("Failed at manifest"), "{failed}");
}

#[tokio::test]
async fn a_release_keeps_moving_when_its_events_cannot_be_published() {
    let (mut backend, _green) = with_green(Behaviour::version("p1"), "manual").await;
    // No such bus: EventBridge refuses every event.
    let missing = format!("no-such-bus-{}", backend.world.id);
    backend.convoy.events = Arc::new(EventBridgeEvents::from_sdk(&backend.world.sdk, &missing));

    let deployment = deploying(&backend, "p1", json!({})).await;
    backend.codedeploy_hook(&deployment, "exec-1").await;
    let record = backend.record(&release_key("p1")).await.unwrap();
    assert_eq!(
        record.state,
        State::AwaitingApproval { deployment: convoy::names::DeploymentRef::CodeDeploy(deployment.parse().unwrap()) }
    );
    backend.standin.waits(&deployment);
    backend.convoy.decide(&release_key("p1"), true).await.unwrap();
    backend.cloudtrail_delivers_last_call().await;
    let state = backend.record(&release_key("p1")).await.unwrap().state;
    assert!(matches!(state, State::ShiftingTraffic { .. }), "{state}");
    backend.standin.finish(&deployment);
    backend.codedeploy_reports(&deployment, "SUCCESS").await;
    let record = backend.record(&release_key("p1")).await.unwrap();
    assert_eq!(record.state, State::Succeeded);
    // Every one of those events was refused, and said so.
    let change = convoy::notify::ReleaseChange::of(None, &record, convoy_tests::moto::REGION);
    let refused = backend.convoy.events.publish(std::slice::from_ref(&change)).await.unwrap_err();
    assert!(matches!(refused, convoy::notify::PublishError::Rejected(_)), "{refused:?}");
    assert!(refused.to_string().contains("ResourceNotFoundException"), "{refused}");
}

/// An event bus that never answers, counting the calls and the events it is handed.
#[derive(Default)]
struct Hanging {
    calls: std::sync::atomic::AtomicU32,
    changes: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl convoy::ports::ReleaseEvents for Hanging {
    async fn publish(&self, changes: &[convoy::notify::ReleaseChange]) -> Result<(), convoy::notify::PublishError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.changes.fetch_add(changes.len(), std::sync::atomic::Ordering::SeqCst);
        std::future::pending().await
    }
}

/// An invocation's changes are handed to the bus once, at its end, and wait for it 2 s at most;
/// then the release moves on. On tokio's paused clock (nothing here waits for anything else): the
/// handlers take exactly 2 s per invocation, and without the cap they would never return.
#[tokio::test(start_paused = true)]
async fn an_event_bus_that_never_answers_holds_each_invocation_up_two_seconds_at_most_and_the_release_moves_on() {
    let mut backend = MemoryBackend::new(&["app".to_owned()]);
    let hanging = Arc::new(Hanging::default());
    backend.convoy.events = hanging.clone();
    let started = tokio::time::Instant::now();
    let handled = tokio::time::timeout(std::time::Duration::from_secs(600), async {
        let manifest = manifest_v1(&backend, "h1", &["app".to_owned()], false);
        let upload = backend.upload("releases/web/h1.json", &manifest).await;
        invoke_manifest_uploaded(&backend.convoy, upload).await.expect("the handler returns");
        let (_, push) = backend.push("app", "h1").await;
        invoke_image_pushed(&backend.convoy, push).await.expect("the handler returns");
    })
    .await;
    assert!(handled.is_ok(), "the handlers waited for the bus for ever");
    let record = backend.record(&release_key("h1")).await.unwrap();
    assert!(matches!(record.state, State::Deploying { .. }), "{}", record.state);
    let calls = hanging.calls.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(calls, 2, "one publish per invocation");
    let changes = hanging.changes.load(std::sync::atomic::Ordering::SeqCst);
    assert!(changes >= 3, "opened, ready, deploying at least: {changes}");
    assert_eq!(started.elapsed(), std::time::Duration::from_secs(2) * calls, "2 s per invocation, no more");
}
