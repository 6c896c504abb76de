//! `convoy dashboard` (the real binary) on the sandbox's world on moto: in a real headless
//! Chromium through chromedriver (`convoy_tests::browser`), and over plain HTTP for the refusals.
//! Needs the binaries built (`cargo build --workspace --bins`, which scripts/test runs first).

use convoy::names::ReleaseKey;
use convoy::ports::ReleaseStore;
use convoy::release::{Release, State};
use convoy_tests::browser::Browser;
use convoy_tests::dashboard::{COLLECTING, DashboardWorld, REFUSED, UNREADABLE, world};
use convoy_tests::sandbox::{RELEASE, SERVICE};
use fantoccini::Locator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn dashboard_world(name: &str) -> DashboardWorld {
    world(&format!("dash-{name}-{}", std::process::id()), false).await.expect("the sandbox's world")
}

fn store(world: &DashboardWorld) -> convoy::adapters::aws::S3Store {
    let settings =
        convoy::config::StoreSettings { state_bucket: world.held.world.bucket.clone(), force_path_style: true };
    convoy::adapters::aws::S3Store::new(
        convoy::adapters::aws::s3_client(&world.held.world.sdk, &settings),
        &world.held.world.bucket,
    )
}

async fn record(world: &DashboardWorld, release: &str) -> Release {
    let store = store(world);
    let key = ReleaseKey::new(SERVICE.parse().unwrap(), release.parse().unwrap());
    store.load(&key).await.expect("load").expect("a record").release
}

/// The accepted `ContinueDeployment` requests the stand-in saw.
fn continues(world: &DashboardWorld) -> Vec<serde_json::Value> {
    world
        .held
        .standin
        .calls_of("ContinueDeployment")
        .into_iter()
        .filter(|c| c.refused.is_none())
        .map(|c| c.body)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_lists_the_sandboxs_releases_and_a_release_page_draws_one_bar_per_stage() {
    let world = dashboard_world("view").await;
    // A group's release rolling back, its sections as the state machine leaves them; api's reason
    // carries markup that must stay text.
    let sections =
        [("web", "codedeploy", "live"), ("api", "ecs-native", "rolled-back"), ("jobs", "ecs-rolling", "waiting")];
    let rolling_back =
        serde_json::json!({"name": "RollingBack", "reason": "api failed", "deployment": {"codedeploy": "d-WEB0"}});
    let group = convoy_tests::fixtures::group_release("g1", rolling_back, &sections, "<b id=\"injected\">5xx</b>");
    store(&world).create(&group).await.expect("store the group's record");
    let dashboard = world.start_dashboard(0).expect("convoy dashboard starts");
    let browser = Browser::start(1100, 1750).await;
    let client = &browser.client;

    // The printed link sets the cookie and lands on the overview.
    client.goto(&dashboard.link).await.expect("open the overview");
    assert_eq!(client.current_url().await.unwrap().as_str(), dashboard.url, "the secret leaves the address bar");
    let rows = client.find_all(Locator::Css("#releases tr.release")).await.expect("rows");
    let mut listed = Vec::new();
    for row in &rows {
        listed.push(row.text().await.expect("row text"));
    }
    // The group's release is named by its group and services, in the column of a release's service.
    let group_row =
        listed.iter().position(|r| r.contains("shop (web, api, jobs)") && r.contains("g1")).expect("the group's row");
    assert!(listed.remove(group_row).contains("RollingBack"), "{listed:#?}");
    assert_eq!(listed.len(), 3, "{listed:#?}");
    // In flight first (the one awaiting approval and the one collecting), then the ended one.
    assert!(listed[..2].iter().any(|r| r.contains(RELEASE) && r.contains("AwaitingApproval")), "{listed:#?}");
    assert!(listed[..2].iter().any(|r| r.contains(COLLECTING) && r.contains("Collecting")), "{listed:#?}");
    assert!(listed[2].contains(REFUSED) && listed[2].contains("not one Convoy may deploy from"), "{listed:#?}");
    let unreadable = client.find(Locator::Css("#unreadable")).await.expect("the unreadable list").text().await.unwrap();
    assert!(unreadable.contains(&format!("state/{SERVICE}/{UNREADABLE}.json")), "{unreadable}");
    // Every state badge is legible: its text is not painted in its background's colour.
    for badge in client.find_all(Locator::Css("#releases span.badge")).await.unwrap() {
        let color = badge.css_value("color").await.unwrap();
        let background = badge.css_value("background-color").await.unwrap();
        assert_ne!(color, background, "badge {:?}", badge.text().await);
    }
    let refresh = client.find_all(Locator::Css("meta[http-equiv=refresh]")).await.unwrap();
    assert_eq!(refresh.len(), 1, "something is in flight: the overview reloads itself");

    // The state filter keeps only the matching releases.
    client.goto(&format!("{}?state=Failed", dashboard.url)).await.unwrap();
    let failed = client.find_all(Locator::Css("#releases tr.release")).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].text().await.unwrap().contains(REFUSED));

    client.goto(&format!("{}release/{SERVICE}/{RELEASE}", dashboard.url)).await.expect("open the release");
    let stages = client.find_all(Locator::Css("svg#timeline g.stage")).await.expect("the timeline's stages");
    let mut names = Vec::new();
    for stage in &stages {
        names.push(stage.attr("data-stage").await.unwrap().unwrap_or_default());
        assert_eq!(stage.find_all(Locator::Css("rect.bar")).await.unwrap().len(), 1, "one bar per stage");
    }
    assert_eq!(names, ["collecting", "migration", "deployment", "verification", "approval wait"]);
    let running = client.find_all(Locator::Css("svg#timeline rect.bar.running")).await.unwrap();
    assert_eq!(running.len(), 1, "the approval wait is under way");
    let probes = client.find_all(Locator::Css("svg#latency circle.probe.ok")).await.unwrap();
    assert_eq!(probes.len(), 5, "the sandbox's five probes passed");
    let images = client.find(Locator::Css("#images")).await.unwrap().text().await.unwrap();
    assert!(images.contains("sha256:"), "{images}");
    let migration = client.find(Locator::Css("#migration")).await.unwrap().text().await.unwrap();
    assert!(migration.contains("exit code\n0") || migration.contains("exit code 0"), "{migration}");

    let png = client.screenshot().await.expect("a screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| std::env::temp_dir(), std::path::PathBuf::from);
    std::fs::write(target.join("dashboard.png"), &png).expect("save the screenshot");
    // The dashboard guide's picture (docs/dashboard.png) is refreshed on request only, so that a test run leaves the tree clean.
    if std::env::var_os("CONVOY_UPDATE_SCREENSHOT").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dashboard.png");
        std::fs::write(docs, &png).expect("save docs/dashboard.png");
    }
    println!("release page screenshot: {} bytes", png.len());

    // A group's release page: a row per service in the manifest's order, the reason as text.
    client.goto(&format!("{}release/shop/g1", dashboard.url)).await.unwrap();
    let mut rows = Vec::new();
    for row in client.find_all(Locator::Css("#services tr.section")).await.expect("the services' rows") {
        let state = row.attr("data-state").await.unwrap().unwrap_or_default();
        let cells: Vec<String> = {
            let mut cells = Vec::new();
            for cell in row.find_all(Locator::Css("td")).await.unwrap() {
                cells.push(cell.text().await.unwrap());
            }
            cells
        };
        rows.push((state, cells));
    }
    let arn = |family: &str| {
        let (region, account) = (convoy_tests::moto::REGION, convoy_tests::moto::ACCOUNT);
        format!(
            "arn:aws:ecs:{region}:{account}:task-definition/{family}:1 → arn:aws:ecs:{region}:{account}:task-definition/{family}:2"
        )
    };
    let row = |state: &str, cells: [&str; 6]| (state.to_owned(), cells.map(str::to_owned).to_vec());
    assert_eq!(
        rows,
        [
            row("live", ["1", "web", "codedeploy", "live", "d-WEB0", &arn("web")]),
            row(
                "rolled-back",
                ["2", "api", "ecs-native", "rolled back: <b id=\"injected\">5xx</b>", "d-API1", &arn("api")]
            ),
            row("waiting", ["3", "jobs", "ecs-rolling", "waiting", "", ""]),
        ]
    );
    assert!(client.find_all(Locator::Css("#injected")).await.unwrap().is_empty(), "the reason is text, not markup");

    // A failed release marks its failure point on the stage it failed in.
    client.goto(&format!("{}release/{SERVICE}/{REFUSED}", dashboard.url)).await.unwrap();
    let failed = client.find_all(Locator::Css("svg#timeline g.stage[data-stage=collecting] g.failure")).await.unwrap();
    assert_eq!(failed.len(), 1, "the refused manifest's failure is marked");

    client.goto(&format!("{}release/{SERVICE}/{UNREADABLE}", dashboard.url)).await.unwrap();
    let message = client.find(Locator::Css("#message")).await.unwrap().text().await.unwrap();
    assert!(message.contains("is not a release record this Convoy can read"), "{message}");
    client.goto(&format!("{}release/{SERVICE}/1234567", dashboard.url)).await.unwrap();
    let message = client.find(Locator::Css("#message")).await.unwrap().text().await.unwrap();
    assert!(message.contains("There is no record of release laravel-app/1234567"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_from_the_page_continues_the_deployment_once_and_a_second_approval_is_refused() {
    let world = dashboard_world("approve").await;
    let State::AwaitingApproval { deployment } = record(&world, RELEASE).await.state else { panic!("not awaiting") };
    let dashboard = world.start_dashboard(0).expect("convoy dashboard starts");
    let browser = Browser::start(1100, 900).await;
    let client = &browser.client;
    let page = format!("{}release/{SERVICE}/{RELEASE}", dashboard.url);

    client.goto(&dashboard.link).await.unwrap();
    client.goto(&page).await.unwrap();
    client.find(Locator::Css("#approve")).await.expect("an approve button").click().await.unwrap();
    // The confirmation: nothing is decided until it is confirmed.
    assert!(continues(&world).is_empty(), "opening the confirmation decides nothing");
    let confirm = client.wait().for_element(Locator::Css("#confirm")).await.expect("the confirmation");
    let heading = client.find(Locator::Css("h1")).await.unwrap().text().await.unwrap();
    assert_eq!(heading, format!("Confirm: approve {SERVICE} / {RELEASE}"));
    confirm.click().await.unwrap();

    // WebDriver's find does not wait for the page the click loads: wait for it.
    let Ok(badge) = client.wait().for_element(Locator::Css("h1 .badge")).await else {
        panic!("not back on the release page: {}", client.source().await.unwrap_or_default())
    };
    let badge = badge.text().await.unwrap();
    assert_eq!(badge, "AwaitingApproval", "the page made the call; the record waits for CloudTrail to name who");
    assert_eq!(client.current_url().await.unwrap().as_str(), page);
    let calls = continues(&world);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["deploymentId"], deployment.as_str());
    assert_eq!(calls[0]["deploymentWaitType"], "READY_WAIT");
    // CloudTrail records the call with the dashboard's credentials; EventBridge delivers it.
    let call = world.held.standin.trail().last().cloned().expect("CloudTrail recorded the call");
    let principal = call["userIdentity"]["arn"].as_str().unwrap().to_owned();
    let via_standin = convoy_tests::moto::sdk_config_for(&world.held.standin.endpoint).await;
    let settings =
        convoy::config::StoreSettings { state_bucket: world.held.world.bucket.clone(), force_path_style: true };
    let config = convoy::config::Config::for_cli(settings, convoy_tests::moto::REGION);
    let convoy = convoy::startup::wire_with_cloudtrail(&via_standin, &config).unwrap();
    let event = convoy_tests::standin::StandIn::api_call_event(&call);
    Box::pin(convoy::handlers::deployment_changed(
        &convoy,
        lambda_runtime::LambdaEvent::new(event, Default::default()),
    ))
    .await
    .unwrap();
    let stored = record(&world, RELEASE).await;
    assert_eq!(stored.state, State::ShiftingTraffic { deployment: deployment.clone() });
    assert_eq!(stored.approval.expect("the decision").by, principal, "the principal AWS names, not a typed name");
    client.goto(&page).await.unwrap();
    let approver = client.wait().for_element(Locator::Css("#approver")).await.unwrap().text().await.unwrap();
    assert!(approver.contains(&principal) && approver.contains(call["eventID"].as_str().unwrap()), "{approver}");
    assert!(client.find_all(Locator::Css("#approve")).await.unwrap().is_empty(), "no more approve button");

    // The same refusal as `convoy approve` gives: the release no longer awaits approval.
    client.goto(&format!("{page}/approve")).await.unwrap();
    client.find(Locator::Css("#confirm")).await.unwrap().click().await.unwrap();
    let message = client.wait().for_element(Locator::Css("#message")).await.expect("a refusal").text().await.unwrap();
    assert!(message.contains("does not await approval"), "{message}");
    assert_eq!(continues(&world).len(), 1, "CodeDeploy was asked once");
}

/// One HTTP/1.1 request on loopback: (status, body).
async fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let mut text = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_the_launch_secret_and_a_change_without_the_token_or_from_a_foreign_origin_or_host_are_refused()
 {
    let world = dashboard_world("refuse").await;
    let dashboard = world.start_dashboard(0).expect("convoy dashboard starts");
    let port = dashboard.port;
    let host = format!("127.0.0.1:{port}");
    let origin = format!("http://{host}");
    let path = format!("/release/{SERVICE}/{RELEASE}/approve");
    let form = "application/x-www-form-urlencoded";
    let cookie = format!("convoy_dashboard={}", dashboard.secret);
    let cookie = cookie.as_str();

    // Without the per-launch secret, no page: not the confirmation (with its form token), not the
    // overview, whoever asks from this machine.
    for (what, headers) in [
        ("no cookie", vec![("Host", host.as_str())]),
        ("a wrong cookie", vec![("Host", host.as_str()), ("Cookie", "convoy_dashboard=0000")]),
    ] {
        for target in [path.as_str(), "/"] {
            let (status, answer) = request(port, "GET", target, &headers, "").await;
            assert_eq!(status, 401, "{what} {target}: {answer}");
            assert!(!answer.contains("name=\"token\""), "{what} {target}: no form token handed out");
        }
    }
    let (status, answer) = request(port, "GET", "/?token=0000", &[("Host", &host)], "").await;
    assert_eq!(status, 401, "a wrong secret in the link: {answer}");
    // The printed link: a cookie, HttpOnly and SameSite=Strict, and a redirect without the secret.
    let (status, answer) = request(port, "GET", &format!("/?token={}", dashboard.secret), &[("Host", &host)], "").await;
    assert_eq!(status, 303, "{answer}");
    assert!(answer.contains(&format!("set-cookie: {cookie}; HttpOnly; SameSite=Strict; Path=/")), "{answer}");
    assert!(answer.contains("location: /\r\n"), "{answer}");

    let (status, page) = request(port, "GET", &path, &[("Host", &host), ("Cookie", cookie)], "").await;
    assert_eq!(status, 200, "{page}");
    let token = page.split("name=\"token\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("a token");
    assert_eq!(token.len(), 64);
    let with_token = format!("token={token}&by=mallory");

    let refusals = [
        (
            "no token",
            vec![("Host", host.as_str()), ("Origin", origin.as_str()), ("Content-Type", form), ("Cookie", cookie)],
            "by=mallory",
            403,
        ),
        (
            "a wrong token",
            vec![("Host", &host), ("Origin", &origin), ("Content-Type", form), ("Cookie", cookie)],
            "token=0000&by=mallory",
            403,
        ),
        (
            "a foreign origin",
            vec![("Host", &host), ("Origin", "http://evil.example"), ("Content-Type", form), ("Cookie", cookie)],
            &with_token,
            403,
        ),
        ("no origin", vec![("Host", &host), ("Content-Type", form), ("Cookie", cookie)], &with_token, 403),
        ("no cookie", vec![("Host", &host), ("Origin", &origin), ("Content-Type", form)], &with_token, 401),
        (
            "a foreign host (DNS rebinding)",
            vec![("Host", "evil.example"), ("Origin", "http://evil.example"), ("Content-Type", form)],
            &with_token,
            421,
        ),
    ];
    for (what, headers, body, expected) in refusals {
        let (status, answer) = request(port, "POST", &path, &headers, body).await;
        assert_eq!(status, expected, "{what}: {answer}");
        assert!(answer.contains("id=\"message\""), "{what}: a page that says why: {answer}");
    }
    let (status, _) = request(port, "GET", "/", &[("Host", &format!("rebound.example:{port}"))], "").await;
    assert_eq!(status, 421, "a rebound name cannot even read");
    assert!(continues(&world).is_empty(), "nothing reached CodeDeploy");
    assert!(matches!(record(&world, RELEASE).await.state, State::AwaitingApproval { .. }));

    // The same request with everything in place goes through (so the refusals were the checks').
    let (status, answer) = request(
        port,
        "POST",
        &path,
        &[("Host", &host), ("Origin", &origin), ("Content-Type", form), ("Cookie", cookie)],
        &with_token,
    )
    .await;
    assert_eq!(status, 303, "{answer}");
    assert_eq!(continues(&world).len(), 1);
    // A typed name in the form counts for nothing: only CloudTrail's record will name who.
    assert_eq!(record(&world, RELEASE).await.approval, None, "the page writes no decision");

    // Missing and unreadable records, and names that are no names, each get a page, not a dump.
    for (path, expected, says) in [
        (format!("/release/{SERVICE}/1234567"), 404, "There is no record"),
        (format!("/release/{SERVICE}/{UNREADABLE}"), 422, "not a release record"),
        ("/release/..%2F..%2Fetc/x".to_owned(), 400, "Not a service name"),
        ("/nowhere".to_owned(), 404, "no such page"),
    ] {
        let (status, answer) = request(port, "GET", &path, &[("Host", &host), ("Cookie", cookie)], "").await;
        assert_eq!(status, expected, "{path}: {answer}");
        assert!(answer.contains(says), "{path}: {answer}");
        assert!(!answer.contains("panicked"), "{path}: {answer}");
    }
}

/// A record of `service`'s release `release` that went live `hours_ago` hours ago with
/// `task_definition`, approved by `approver`: the shape `fixtures/records/succeeded-codedeploy.json`
/// (a record Convoy wrote) has, renamed.
fn went_live(service: &str, release: &str, hours_ago: i64, task_definition: &str, approver: &str) -> Release {
    let mut value: serde_json::Value =
        serde_json::from_str(include_str!("../../../shared/fixtures/records/succeeded-codedeploy.json")).unwrap();
    let at = chrono::Utc::now() - chrono::Duration::hours(hours_ago);
    value["key"] = serde_json::json!({"service": service, "release": release});
    value["timeline"][0]["at"] = serde_json::json!(at - chrono::Duration::minutes(20));
    value["deployment"]["ended_at"] = serde_json::json!(at);
    value["deployment"]["task_definition"] = serde_json::json!(task_definition);
    value["approval"]["by"] = serde_json::json!(approver);
    serde_json::from_value(value).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_page_shows_each_services_live_release_confirmed_with_ecs_and_its_history() {
    let world = dashboard_world("services").await;
    let ecs = aws_sdk_ecs::Client::new(&world.held.world.sdk);
    let cluster = world.held.world.cluster();
    // A second service, `worker`, whose live release is the revision ECS runs.
    let worker = world
        .held
        .world
        .ecs_service_controlled("worker", &["app"], aws_sdk_ecs::types::DeploymentControllerType::Ecs)
        .await;
    let alice = "arn:aws:iam::123456789012:user/alice";
    let bob = "arn:aws:sts::123456789012:assumed-role/Deployer/bob";
    let store = store(&world);
    store.create(&went_live("worker", "w1", 5, &worker.task_definition, bob)).await.unwrap();
    // The sandbox's service ran two releases; ECS runs neither's revision now (its own, from
    // before Convoy): changed outside Convoy.
    let described = ecs.describe_services().cluster(&cluster).services(SERVICE).send().await.unwrap();
    let runs = described.services()[0].task_definition().unwrap().to_owned();
    let family = runs.rsplit_once("task-definition/").unwrap().1.split(':').next().unwrap().to_owned();
    let revision = |n: u32| format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{family}:{}", 90 + n);
    store.create(&went_live(SERVICE, "s1", 3, &revision(1), alice)).await.unwrap();
    store.create(&went_live(SERVICE, "s2", 1, &revision(2), bob)).await.unwrap();

    let dashboard = world.start_dashboard(0).expect("convoy dashboard starts");
    let browser = Browser::start(1300, 1100).await;
    let client = &browser.client;
    client.goto(&dashboard.link).await.expect("open the overview");
    client.find(Locator::Css("#nav-services")).await.expect("a link to the Services page").click().await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/services");

    let mut rows = std::collections::BTreeMap::new();
    for row in client.find_all(Locator::Css("#live tr.service")).await.expect("a row per service") {
        let service = row.attr("data-service").await.unwrap().unwrap();
        let ecs = row.attr("data-ecs").await.unwrap().unwrap();
        rows.insert(service, (ecs, row.text().await.unwrap()));
    }
    let (kind, text) = &rows["worker"];
    assert_eq!(kind, "confirmed", "{text}");
    assert!(text.contains("w1") && text.contains(bob) && text.contains("confirmed by ECS"), "{text}");
    let (kind, text) = &rows[SERVICE];
    assert_eq!(kind, "changed-outside-convoy", "{text}");
    let outside = format!("changed outside Convoy: {}", runs.rsplit_once("task-definition/").unwrap().1);
    assert!(text.contains("s2") && text.contains(bob) && text.contains(&outside), "{outside}\n{text}");
    // The sandbox's release awaiting approval never went live: it is not the live one.
    assert!(!text.contains(RELEASE), "{text}");

    let history = client.find_all(Locator::Css(&format!("#history-{SERVICE} tr.went-live"))).await.unwrap();
    let mut lines = Vec::new();
    for row in &history {
        lines.push(row.text().await.unwrap());
    }
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].starts_with("s2") && lines[0].contains("live now"), "{lines:#?}");
    assert!(
        lines[1].starts_with("s1") && lines[1].contains("replaced by s2") && lines[1].contains(alice),
        "{lines:#?}"
    );
    assert!(lines[1].contains("@sha256:"), "each image pinned by digest: {lines:#?}");

    let png = client.screenshot().await.expect("a screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| std::env::temp_dir(), std::path::PathBuf::from);
    std::fs::write(target.join("services.png"), &png).expect("save the screenshot");
    // docs/images/services.png is refreshed on request only, so that a test run leaves the tree clean.
    if std::env::var_os("CONVOY_UPDATE_SCREENSHOT").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/images/services.png");
        std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
        std::fs::write(docs, &png).expect("save docs/images/services.png");
    }
}

/// The rollback manifests under `releases/web/` (what a rollback writes), by key.
async fn rollback_manifests(backend: &crate::scenario::MotoBackend) -> Vec<String> {
    let (s3, bucket) = (&backend.world.s3, &backend.world.bucket);
    let listed = s3.list_objects_v2().bucket(bucket).prefix("releases/web/rollback-").send().await.expect("list");
    listed.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
}

/// The value of the confirmation form's hidden field `name`.
async fn field(client: &fantoccini::Client, name: &str) -> String {
    let input = client.find(Locator::Css(&format!("#roll-back input[name={name}]"))).await.expect("the field");
    input.attr("value").await.unwrap().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_from_the_services_page_submits_v1s_pinned_digests_once_and_the_release_deploys_them() {
    use crate::rollback::{calls, codedeploy_goes_live, registered_images, uploaded_event, v1_then_v2};
    use crate::scenario::{Backend, invoke_manifest_uploaded, release_key};
    let (mut backend, _first) = crate::deploy::with_green(convoy_tests::http::Behaviour::version("v1"), "auto").await;
    let _servers = v1_then_v2(&mut backend).await;
    let mut v1_pinned = backend.record(&release_key("v1")).await.unwrap().pinned_uris();
    v1_pinned.sort();
    let run_tasks = calls(&backend, "RunTask");
    let mut command = crate::cli::command(&backend);
    command.env("CONVOY_CLUSTER", &backend.ecs.cluster);
    let dashboard = convoy_tests::dashboard::Dashboard::start(command, 0).expect("convoy dashboard starts");
    let browser = Browser::start(1100, 1000).await;
    let client = &browser.client;
    client.goto(&dashboard.link).await.unwrap();
    client.goto(&format!("{}services", dashboard.url)).await.unwrap();
    let button = client.find(Locator::Css("#live tr.service[data-service=web] a.rollback")).await.expect("Roll back…");
    button.click().await.unwrap();

    // The confirmation says what will happen; opening it writes nothing.
    let confirm = client.wait().for_element(Locator::Css("#confirm")).await.expect("the confirmation");
    let heading = client.find(Locator::Css("h1")).await.unwrap().text().await.unwrap();
    assert_eq!(heading, "Confirm: roll back web from v2 to v1");
    let images = client.find(Locator::Css("#rollback-images")).await.unwrap().text().await.unwrap();
    for (container, uri) in &v1_pinned {
        assert!(images.contains(&format!("{container} {uri}")), "{container} {uri}: {images}");
    }
    let schema = client.find(Locator::Css("#schema")).await.unwrap().text().await.unwrap();
    assert!(schema.contains("no migration runs: the database schema stays where v2 left it"), "{schema}");
    let down = client.find(Locator::Css("#migrate-down")).await.expect("v2 recorded a down command").text().await;
    assert!(down.unwrap().contains("./migrate --down"), "v2's down command is named");
    assert!(rollback_manifests(&backend).await.is_empty(), "a GET writes nothing");
    let mut form = Vec::new();
    for name in ["token", "of", "to", "at"] {
        form.push((name, field(client, name).await));
    }

    let png = client.screenshot().await.expect("a screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| std::env::temp_dir(), std::path::PathBuf::from);
    std::fs::write(target.join("rollback-confirm.png"), &png).expect("save the screenshot");
    // docs/images/rollback-confirm.png is refreshed on request only, so that a test run leaves the tree clean.
    if std::env::var_os("CONVOY_UPDATE_SCREENSHOT").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/images/rollback-confirm.png");
        std::fs::write(docs, &png).expect("save docs/images/rollback-confirm.png");
    }

    confirm.click().await.unwrap();
    let Ok(submitted) = client.wait().for_element(Locator::Css("#submitted")).await else {
        panic!("not submitted: {}", client.source().await.unwrap_or_default())
    };
    let submitted = submitted.text().await.unwrap();
    let link = client.find(Locator::Css("#release-link")).await.unwrap().attr("href").await.unwrap().unwrap();
    let release = link.strip_prefix("/release/web/").expect("the new release's page").to_owned();
    assert_eq!(submitted, format!("Submitted: web/{release}"));
    assert_eq!(release, format!("rollback-v1-{}", form[3].1), "named by `to` and the confirmation's moment");
    let object = format!("releases/web/{release}.json");
    assert_eq!(rollback_manifests(&backend).await, std::slice::from_ref(&object));
    let got = backend.world.s3.get_object().bucket(&backend.world.bucket).key(&object).send().await.unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&got.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(manifest["rollback"], serde_json::json!({"of": "v2", "to": "v1", "migrate_down": false}));
    let mut images: Vec<(String, String)> =
        manifest["images"].as_object().unwrap().iter().map(|(c, u)| (c.clone(), u.as_str().unwrap().into())).collect();
    images.sort();
    assert_eq!(images, v1_pinned, "v1's pinned digests");

    // The same form again (a second click): the same release, nothing written. Without its token,
    // or from another origin, the change is refused as approve's is.
    let host = format!("127.0.0.1:{}", dashboard.port);
    let (origin, cookie) = (format!("http://{host}"), format!("convoy_dashboard={}", dashboard.secret));
    let body: Vec<String> = form.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let body = body.join("&");
    let without_token = body.split('&').filter(|p| !p.starts_with("token=")).collect::<Vec<_>>().join("&");
    let send = |origin: String, body: String| {
        let (host, cookie) = (host.clone(), cookie.clone());
        async move {
            let form = "application/x-www-form-urlencoded";
            let headers = [("Host", host.as_str()), ("Origin", &origin), ("Content-Type", form), ("Cookie", &cookie)];
            request(dashboard.port, "POST", "/services/web/rollback", &headers, &body).await
        }
    };
    let (status, answer) = send(origin.clone(), body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(&format!("Submitted already: web/{release}")), "{answer}");
    let (status, answer) = send(origin.clone(), without_token).await;
    assert_eq!(status, 403, "no token: {answer}");
    let (status, answer) = send("http://evil.example".into(), body.clone()).await;
    assert_eq!(status, 403, "a foreign origin: {answer}");
    assert_eq!(
        rollback_manifests(&backend).await,
        std::slice::from_ref(&object),
        "one release, however often it is posted"
    );

    // Refusals get a page that says why, and write nothing.
    let get = |path: String| {
        let (host, cookie) = (host.clone(), cookie.clone());
        async move { request(dashboard.port, "GET", &path, &[("Host", &host), ("Cookie", &cookie)], "").await }
    };
    let (status, answer) = get("/services/web/rollback?to=v0".into()).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer.contains("release v0 of web never went live"), "{answer}");
    let (status, answer) = get("/services/nothing-live/rollback".into()).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer.contains("no release of nothing-live is live"), "{answer}");
    assert_eq!(rollback_manifests(&backend).await, std::slice::from_ref(&object));

    // Driven as any release, it deploys exactly v1's digests and runs no migration.
    let event = uploaded_event(&backend, &object).await;
    invoke_manifest_uploaded(&backend.convoy, event).await.unwrap();
    let key = convoy::names::ReleaseKey::new("web".parse().unwrap(), release.parse().unwrap());
    let record = backend.record(&key).await.unwrap();
    let State::Deploying { deployment } = record.state.clone() else { panic!("not deploying: {:#?}", record.timeline) };
    let rollback = record.rollback.clone().expect("a rollback");
    assert_eq!((rollback.of.as_str(), rollback.to.as_str()), ("v2", "v1"));
    let revision = record.deployment.as_ref().and_then(|d| d.task_definition.clone()).expect("a revision");
    assert_eq!(registered_images(&backend, &revision).await, v1_pinned);
    codedeploy_goes_live(&backend, deployment.as_str()).await;
    assert_eq!(backend.record(&key).await.unwrap().state, State::Succeeded);
    assert_eq!(calls(&backend, "RunTask"), run_tasks, "no migration ran");
}
