//! `scripts/sandbox --services`: one release of two services through Convoy's real function
//! binaries and CLI against local AWS, from one version 2 manifest (a release group's): the worker
//! (`laravel-worker`, an ECS rolling update) first, then the web service (`laravel-app`, CodeDeploy
//! blue/green, verified on the green server and approved by a person), one migration before
//! either. With `wrong_version`, web fails its verification: CodeDeploy rolls web back and Convoy
//! puts the worker back on the revision it ran before.
//!
//! What stands in is what the one-service sandbox's does (`sandbox.rs`), and for the worker what
//! `e2e/rolling.rs` plays: moto keeps no service deployment, so the stand-in starts one per
//! `UpdateService` of a declared rolling service and the sandbox plays ECS's end of it (completed).

use convoy::names::ReleaseKey;
use convoy::ports::ReleaseStore;
use convoy::release::{Release, State};
use serde_json::{Value, json};

use crate::fixtures;
use crate::http::{self, Behaviour};
use crate::moto::{ACCOUNT, Moto};
use crate::notifications::{self, Queue};
use crate::sandbox::{
    Options, RELEASE, SERVICE, Sandbox, approve_as_operator, cli_exits, cli_in, codedeploy_end, event_bus,
    migration_command, migration_runs, start_functions, state_store,
};
use crate::standin::{Phase, StandIn};
use crate::world::{World, function_env, read_settings_version, service_settings};

/// The release group, and its service without a load balancer.
pub const GROUP: &str = "laravel";
pub const WORKER: &str = "laravel-worker";
/// The third service of [`run_three_services`]: a scheduler that runs the same image, updated
/// after web (an ECS rolling update, like the worker).
pub const SCHEDULER: &str = "laravel-scheduler";

/// What a run of the group's release left: its record, each part's, `convoy status` of the
/// release, `convoy wait`'s exit code and output, every release event as `service: from → to`,
/// and the task definition the worker ran before the release and runs at the end.
pub struct FinishedServices {
    pub release: Release,
    pub web: Option<Release>,
    pub worker: Option<Release>,
    pub status: String,
    pub wait_exit: i32,
    pub waited: String,
    pub transitions: Vec<String>,
    pub worker_before: String,
    pub worker_after: String,
    /// The changing calls that reached AWS, in order (`RunTask`, `UpdateService`, `CreateDeployment`).
    pub changes: Vec<String>,
    /// Each step of the release and the AWS requests it made.
    pub steps: Vec<(String, usize)>,
    /// Each hand-off, one service through → the next one's start: ECS's completion of the
    /// worker delivered → web's `CreateDeployment`; with three services, web's hook (verified) →
    /// the scheduler's `UpdateService`.
    pub handoffs: Vec<(String, std::time::Duration)>,
    /// Every function invocation: the function and its wall time.
    pub invocations: Vec<(String, std::time::Duration)>,
    /// Every AWS request of the run (through the stand-in): service and operation.
    pub requests: Vec<(String, String)>,
    /// The task definition the worker's schedule runs at the end (it ran `worker_before`).
    pub schedule_after: String,
}

/// The worker's rolling configuration as ECS would describe it (moto keeps none).
fn rolling_configuration() -> Value {
    json!({"strategy": "ROLLING", "minimumHealthyPercent": 100, "maximumPercent": 200,
           "deploymentCircuitBreaker": {"enable": true, "rollback": true}})
}

/// Runs the group's release; its final records, or why the sandbox could not go on.
pub async fn run_services(options: Options) -> Result<FinishedServices, String> {
    run_group(options, false).await
}

/// [`run_services`] with a third service, [`SCHEDULER`], after web: the release `scripts/bench`
/// measures (each hand-off, the requests per step, the cost).
pub async fn run_three_services(options: Options) -> Result<FinishedServices, String> {
    run_group(options, true).await
}

async fn run_group(options: Options, three: bool) -> Result<FinishedServices, String> {
    let out = Sandbox::new(options.verbose);
    let moto = Moto::shared();
    let bucket = if options.id.is_empty() {
        "convoy-sandbox-services".to_owned()
    } else {
        format!("convoy-sandbox-services-{}", options.id)
    };
    let world = World::named(&bucket, &options.id).await;
    world.create_repositories(&["laravel-app", "laravel-app-nginx"]).await;
    let controller = aws_sdk_ecs::types::DeploymentControllerType::CodeDeploy;
    let ecs = world.ecs_service_controlled(SERVICE, &["laravel", "nginx"], controller).await;
    let (application, group) = world.codedeploy(SERVICE).await;
    world.ecs_service_controlled(WORKER, &["worker"], aws_sdk_ecs::types::DeploymentControllerType::Ecs).await;
    if three {
        world
            .ecs_service_controlled(SCHEDULER, &["scheduler"], aws_sdk_ecs::types::DeploymentControllerType::Ecs)
            .await;
    }
    let standin = StandIn::for_missing_operations(&moto.endpoint).await;
    standin.rolling_service(WORKER, rolling_configuration());
    if three {
        standin.rolling_service(SCHEDULER, rolling_configuration());
    }
    let green_version = if options.wrong_version { "0000000" } else { RELEASE };
    let green = http::serve(Behaviour::version(green_version)).await;
    out.say(format!("moto server at {}; the stand-in for what it lacks at {}", moto.endpoint, standin.endpoint));
    out.say(format!(
        "ECS cluster {}: {SERVICE} (CodeDeploy blue/green {application}/{group}, green at {} answering \
         {green_version}) and {WORKER} (ECS rolling updates, circuit breaker on)",
        ecs.cluster, green.url
    ));

    let probe = json!({"count": 5, "interval_ms": 200, "failure_limit": 1, "timeout_ms": 1000});
    let mut services: Value =
        serde_json::from_str(&service_settings(SERVICE, &application, &group, &green.url, "manual", probe))
            .expect("settings are JSON");
    services[WORKER] = json!({"deploy": {"method": "ecs-rolling"}, "approval": "auto"});
    let mut members = vec![SERVICE, WORKER];
    if three {
        services[SCHEDULER] = json!({"deploy": {"method": "ecs-rolling"}, "approval": "auto"});
        members.push(SCHEDULER);
    }
    let file = json!({"services": services, "release_groups": {GROUP: {"services": members}}});
    let dir = tempfile_dir(&world.bucket)?;
    let path = dir.join("convoy.json");
    std::fs::write(&path, file.to_string()).map_err(|e| format!("writing {}: {e}", path.display()))?;
    out.step(&format!("convoy settings publish: release group {GROUP} = {}", members.join(", ")));
    let args = ["settings", "publish", path.to_str().expect("a UTF-8 path"), "--json"];
    let published = cli_in(&standin.endpoint, &world.bucket, &args, &[], None, &[0])?.1;
    let published: Value =
        serde_json::from_str(published.trim()).map_err(|e| format!("publish said {published}: {e}"))?;
    let version = published["version_id"].as_str().ok_or("publish printed no version_id")?.to_owned();
    out.say(format!("settings version {version}"));

    let repositories = [world.repo("laravel-app"), world.repo("laravel-app-nginx")];
    let allowed: Vec<String> = members.iter().map(|m| (*m).to_owned()).collect();
    let mut env = function_env(&world, &standin.endpoint, &ecs.cluster, &allowed, &repositories, "");
    read_settings_version(&mut env, &version);
    let bus = event_bus(&world.bucket);
    notifications::create_bus(&bus);
    let every_event = Queue::create(&format!("{bus}-every-event"));
    notifications::route(&bus, &format!("{bus}-every-event"), &notifications::every_release_event(), &every_event);
    env.push((convoy::config::EVENT_BUS.to_owned(), bus.clone()));
    let [image_pushed, manifest_uploaded, migration_stopped, verify, deployment_changed] =
        start_functions(&out, &env).await?;
    let worker_before = runs(&world, &ecs.cluster, WORKER).await;
    out.say(format!("{WORKER} runs {worker_before}"));
    let schedule =
        format!("{WORKER}-nightly{}", if options.id.is_empty() { String::new() } else { format!("-{}", options.id) });
    create_schedule(&schedule, &ecs.cluster, &worker_before);
    out.say(format!("EventBridge Scheduler schedule {schedule} runs {worker_before} nightly (its scheduled task)"));

    // Where each step begins in the stand-in's request log (every AWS request passes it).
    let mut marks: Vec<(&'static str, usize)> = Vec::new();
    marks.push(("images and manifest (pinned, migration started)", standin.log().len()));
    out.step("CI pushes laravel-app:4cf03d1 to ECR");
    let app = world.push_image("laravel-app", RELEASE).await;
    out.send(&image_pushed, fixtures::ecr_push(ACCOUNT, &world.repo("laravel-app"), RELEASE, &app, chrono::Utc::now()))
        .await?;

    out.step(&format!("CI submits one manifest for both services: convoy submit (releases/{GROUP}/{RELEASE}.json)"));
    let command = migration_command(options.migration_fails);
    let mut manifest = json!({
        "version": 2, "release": RELEASE, "group": GROUP,
        "images": {"app": world.uri("laravel-app", RELEASE), "nginx": world.uri("laravel-app-nginx", RELEASE)},
        "services": {SERVICE: {"containers": {"laravel": "app", "nginx": "nginx"},
                               "verify": {"path": "/", "expect_status": 200, "expect_body": RELEASE}},
                     WORKER: {"containers": {"worker": "app"}}},
        "migration": {"service": SERVICE, "container": "laravel", "command": command},
        "order": [WORKER, SERVICE],
        "approval": "manual"
    });
    if three {
        manifest["services"][SCHEDULER] = json!({"containers": {"scheduler": "app"}});
        manifest["order"] = json!([WORKER, SERVICE, SCHEDULER]);
    }
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).map_err(|e| format!("manifest.json: {e}"))?;
    let submitted = cli_in(&standin.endpoint, &world.bucket, &["submit", "manifest.json"], &[], Some(&dir), &[0])?.1;
    out.say(submitted.trim());
    let key_name = format!("releases/{GROUP}/{RELEASE}.json");
    let head = world.s3.head_object().bucket(&world.bucket).key(&key_name).send().await;
    let head = head.map_err(|e| format!("convoy submit put no {key_name}: {e:?}"))?;
    let upload = fixtures::s3_eventbridge(
        &world.bucket,
        &key_name,
        head.version_id.as_deref(),
        head.content_length.unwrap_or_default() as u64,
    );
    out.send(&manifest_uploaded, upload.clone()).await?;
    out.send(&manifest_uploaded, upload).await?;

    out.step("CI pushes laravel-app-nginx:4cf03d1; EventBridge delivers the push twice");
    let nginx = world.push_image("laravel-app-nginx", RELEASE).await;
    let push = fixtures::ecr_push(ACCOUNT, &world.repo("laravel-app-nginx"), RELEASE, &nginx, chrono::Utc::now());
    out.send(&image_pushed, push.clone()).await?;
    out.send(&image_pushed, push).await?;

    let store = state_store(&world);
    let key = ReleaseKey::new(GROUP.parse().expect("group"), RELEASE.parse().expect("release"));
    let part = |service: &str| ReleaseKey::new(service.parse().expect("service"), RELEASE.parse().expect("release"));
    let load = |key: ReleaseKey| {
        let store = &store;
        async move { store.load(&key).await.expect("load").map(|s| s.release) }
    };

    out.step("the one migration runs, from laravel-app's task definition (its command runs here)");
    let record = load(key.clone()).await.ok_or("no record of the group's release")?;
    let stopped = migration_runs(&out, &world, &standin, &ecs.cluster, &record, &command).await?;
    marks.push(("migration exited 0 (locks, worker's part, its update)", standin.log().len()));
    out.send(&migration_stopped, stopped).await?;

    let mut handoffs = Vec::new();
    let mut handed_over = None;
    if let Some(State::Deploying { deployment }) = load(part(WORKER)).await.map(|r| r.state) {
        out.step(&format!("{WORKER} first: Convoy updated it ({deployment}); ECS completes the rolling update"));
        standin.service_deployment_ends(deployment.as_str(), "SUCCESSFUL", "Service deployment completed");
        let completed = fixtures::ecs_deployment_state_change(
            &ecs.cluster,
            WORKER,
            "SERVICE_DEPLOYMENT_COMPLETED",
            "ECS deployment ecs-svc/1 completed.",
        );
        marks.push(("worker completed, twice (web's part, its deployment)", standin.log().len()));
        handed_over = Some(std::time::Instant::now());
        out.send(&deployment_changed, completed.clone()).await?;
        out.send(&deployment_changed, completed).await?;
    }

    if let Some(State::Deploying { deployment }) = load(part(SERVICE)).await.map(|r| r.state) {
        let deployment = deployment.to_string();
        out.step(&format!("then {SERVICE}: CodeDeploy shifts test traffic to green and calls the hook"));
        let hook_label = if three {
            "web's hook (verified, answered; the scheduler's update)"
        } else {
            "web's hook (verified, answered)"
        };
        marks.push((hook_label, standin.log().len()));
        standin.hook_invoked(&deployment, "sandbox-hook-1");
        let hooked = std::time::Instant::now();
        out.send(&verify, fixtures::codedeploy_hook(&deployment, "sandbox-hook-1")).await?;
        let end = match standin.phase(&deployment) {
            Some(Phase::HookPassed) => {
                out.say("CodeDeploy took the hook's answer: Succeeded; it waits for the reroute");
                if let Some(State::Deploying { deployment }) = load(part(SCHEDULER)).await.map(|r| r.state) {
                    // From web's verification's end (its hook answered, after the probes) to the
                    // scheduler's update.
                    let log = standin.log();
                    let answered = log
                        .iter()
                        .find(|r| r.operation == "PutLifecycleEventHookExecutionStatus" && r.at >= hooked)
                        .map(|r| r.at);
                    let started = answered
                        .and_then(|from| log.iter().find(|r| r.operation == "UpdateService" && r.at >= from))
                        .zip(answered);
                    if let Some((started, answered)) = started {
                        handoffs
                            .push((format!("{SERVICE} verified → {SCHEDULER}'s UpdateService"), started.at - answered));
                    }
                    out.step(&format!("{SCHEDULER} next: Convoy updated it ({deployment}); ECS completes it"));
                    standin.service_deployment_ends(deployment.as_str(), "SUCCESSFUL", "Service deployment completed");
                    let completed = fixtures::ecs_deployment_state_change(
                        &ecs.cluster,
                        SCHEDULER,
                        "SERVICE_DEPLOYMENT_COMPLETED",
                        "ECS deployment ecs-svc/2 completed.",
                    );
                    marks.push(("scheduler completed, twice", standin.log().len()));
                    out.send(&deployment_changed, completed.clone()).await?;
                    out.send(&deployment_changed, completed).await?;
                }
                standin.waits(&deployment);
                marks.push(("a person approves (CloudTrail's event)", standin.log().len()));
                approve_as_operator(&out, &standin, &world, &deployment_changed, None).await?;
                codedeploy_end(&standin, &deployment)?
            }
            Some(Phase::Failed) => {
                out.say("CodeDeploy took the hook's answer: Failed; it rolls web back");
                "FAILURE"
            }
            other => return Err(format!("CodeDeploy took no answer to the hook: {deployment} is {other:?}")),
        };
        marks.push(("web's deployment ends (the release ends)", standin.log().len()));
        out.send(&deployment_changed, fixtures::codedeploy_state_change(&application, &group, &deployment, end))
            .await?;
    }

    marks.push(("(end)", standin.log().len()));
    let log = standin.log();
    let steps: Vec<(String, usize)> = marks.windows(2).map(|w| (w[0].0.to_owned(), w[1].1 - w[0].1)).collect();
    out.step("AWS requests per step (every request through the stand-in, moto's and its own)");
    for (step, requests) in &steps {
        out.say(format!("{requests:>4}  {step}"));
    }
    // The hand-offs: ECS's completion of the worker delivered → web's CreateDeployment sent
    // (first), then web verified → the scheduler's update.
    let worker_to_web = handed_over.and_then(|sent| {
        let created = log.iter().find(|r| r.operation == "CreateDeployment" && r.at >= sent)?;
        Some(created.at - sent)
    });
    if let Some(took) = worker_to_web {
        handoffs.insert(0, (format!("{WORKER} live → {SERVICE}'s CreateDeployment"), took));
    }
    for (handoff, took) in &handoffs {
        out.say(format!("hand-off {handoff}: {} ms", took.as_millis()));
    }
    let transitions: Vec<String> = every_event
        .drain()
        .iter()
        .map(|e| {
            format!(
                "{}: {} → {}",
                e["detail"]["service"].as_str().unwrap_or("?"),
                e["detail"]["from"].as_str().unwrap_or("(created)"),
                e["detail"]["to"].as_str().unwrap_or("?")
            )
        })
        .collect();
    out.step(&format!("EventBridge got {} release events", transitions.len()));
    for transition in &transitions {
        out.say(transition);
    }
    out.step(&format!("convoy status {GROUP} {RELEASE}"));
    let (_, status) = cli_exits(&standin.endpoint, &world.bucket, &["status", GROUP, RELEASE], &[0, 1])?;
    if options.verbose {
        print!("{status}");
    }
    out.step(&format!("convoy wait {GROUP} {RELEASE}"));
    let (wait_exit, waited) =
        cli_exits(&standin.endpoint, &world.bucket, &["wait", GROUP, RELEASE, "--timeout", "30s"], &[0, 1])?;
    out.say(format!("convoy wait exited {wait_exit}"));
    let worker_after = runs(&world, &ecs.cluster, WORKER).await;
    out.say(format!("{WORKER} runs {worker_after} (before the release: {worker_before})"));
    let schedule_after = schedule_runs(&schedule);
    out.say(format!("schedule {schedule} runs {schedule_after}"));
    let changes = standin
        .log()
        .iter()
        .filter(|r| ["RunTask", "UpdateService", "CreateDeployment"].contains(&r.operation.as_str()))
        .map(|r| r.operation.clone())
        .collect();
    std::fs::remove_dir_all(&dir).ok();
    Ok(FinishedServices {
        release: load(key).await.ok_or("the group's record is gone")?,
        web: load(part(SERVICE)).await,
        worker: load(part(WORKER)).await,
        status,
        wait_exit,
        waited,
        transitions,
        worker_before,
        worker_after,
        changes,
        steps,
        handoffs,
        invocations: out.invocations.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        requests: log.iter().map(|r| (r.service.clone(), r.operation.clone())).collect(),
        schedule_after,
    })
}

/// The task definition `service` runs, as moto describes it.
async fn runs(world: &World, cluster: &str, service: &str) -> String {
    let ecs = aws_sdk_ecs::Client::new(&world.sdk);
    let described = ecs.describe_services().cluster(cluster).services(service).send().await.expect("describe");
    described.services().first().and_then(|s| s.task_definition()).unwrap_or_default().to_owned()
}

/// A fresh directory of this run's (CI's checkout, where it writes the manifest).
fn tempfile_dir(bucket: &str) -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("{bucket}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

/// An EventBridge Scheduler schedule (`CreateSchedule`, default group) whose ECS target runs
/// `task_definition` in `cluster` every night, as the API reference writes the request.
fn create_schedule(name: &str, cluster: &str, task_definition: &str) {
    let target = format!("arn:aws:ecs:{}:{ACCOUNT}:cluster/{cluster}", crate::moto::REGION);
    let body = json!({
        "ScheduleExpression": "cron(0 3 * * ? *)",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": target, "RoleArn": format!("arn:aws:iam::{ACCOUNT}:role/convoy-scheduled-tasks"),
                   "EcsParameters": {"TaskDefinitionArn": task_definition, "TaskCount": 1, "LaunchType": "FARGATE"}},
    });
    let (status, answer) =
        Moto::shared().rest_call("scheduler", "POST", &format!("/schedules/{name}"), &body.to_string());
    assert!(status == 200 || answer.contains("ConflictException"), "CreateSchedule {name}: {answer}");
    if status != 200 {
        // The sandbox's fixed names on a moto that ran it before: point it back at the start.
        let (status, answer) =
            Moto::shared().rest_call("scheduler", "PUT", &format!("/schedules/{name}"), &body.to_string());
        assert_eq!(status, 200, "UpdateSchedule {name}: {answer}");
    }
}

/// The task definition schedule `name` (default group) runs, as `GetSchedule` answers.
fn schedule_runs(name: &str) -> String {
    let (_, answer) = Moto::shared().rest_call("scheduler", "GET", &format!("/schedules/{name}?groupName=default"), "");
    let answer: Value = serde_json::from_str(&answer).unwrap_or_default();
    answer["Target"]["EcsParameters"]["TaskDefinitionArn"].as_str().unwrap_or_default().to_owned()
}
