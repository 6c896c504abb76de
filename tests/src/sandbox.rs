//! One release through Convoy's real function binaries against local AWS.
//!
//! What is real: every function is its built binary, started as Lambda
//! starts it and invoked through a local Lambda Runtime API; the `convoy` CLI binary; S3, ECR, ECS
//! and CodeDeploy are moto server, reached over HTTP by the real SDK adapters; the green version
//! is a real HTTP server on loopback, probed over TCP.
//!
//! What stands in, and why: moto emits no events, so the sandbox sends each function the event AWS
//! would (built from the documented fixtures); moto runs no container, so the migration's command
//! runs here as a local process and its real exit code goes into the ECS task event; moto lacks
//! CodeDeploy's hook answer, continue and stop calls (and ECS's deployment continuation), so a
//! loopback stand-in answers exactly those (and CodePipeline's ListActionExecutions), keeping each
//! deployment's state as CodeDeploy does, and forwards everything else to moto; CodeDeploy would
//! call the verify hook and report the deployment's end: the sandbox does both, and decides that
//! end from what Convoy asked CodeDeploy (the stand-in) to do, never from Convoy's own record: a
//! failed hook answer rolls back (FAILURE), an accepted `ContinueDeployment` shifts (SUCCESS), an
//! accepted `StopDeployment` rolls back (STOP). A function invocation that fails, or a CLI
//! command that exits otherwise than documented, fails the sandbox. It ends with `convoy wait`. With
//! `--pipeline`, Convoy deploys through a CodePipeline on moto; moto runs no pipeline actions, so
//! the sandbox plays the pipeline's CodeDeployToECS action on the bundle Convoy wrote. With
//! `--ecs-native`, Convoy calls `UpdateService` on a service with the ECS deployment controller
//! (moto updates it); moto keeps no deployment configuration or service deployment, so the
//! stand-in adds them, and the sandbox plays ECS: the verify hook, the PAUSE hook, the end.

use std::path::{Path, PathBuf};
use std::process::Command;

use convoy::names::ReleaseKey;
use convoy::ports::ReleaseStore;
use convoy::release::{Release, State};
use serde_json::{Value, json};

use crate::fixtures;
use crate::http::{self, Behaviour};
use crate::load_balancer::Shape;
use crate::moto::{ACCOUNT, Moto, REGION};
use crate::notifications::{self, Queue};
use crate::runtime::{LambdaProcess, Outcome, binary};
use crate::standin::{Phase, StandIn};
use crate::world::{World, function_env, read_settings_version, service_settings, settings_file};
use convoy::settings_file::SETTINGS_KEY;

pub const SERVICE: &str = "laravel-app";
pub const RELEASE: &str = "4cf03d1";

/// Which path to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The migration exits 1.
    pub migration_fails: bool,
    /// The green version answers the old version.
    pub wrong_version: bool,
    /// Deploy through a CodePipeline (Convoy writes the bundle and starts the execution; the
    /// sandbox plays the pipeline's CodeDeployToECS action, which moto does not run).
    pub via_pipeline: bool,
    /// Deploy through ECS native blue/green (`UpdateService` on a BLUE_GREEN service; the sandbox
    /// plays ECS's hooks, pause and end, which moto does not run).
    pub ecs_native: bool,
    /// The functions reach AWS at a closed port (an outage): their first invocation fails.
    pub aws_unreachable: bool,
    /// Names unique to this run (tests); empty: the sandbox's readable names.
    pub id: String,
    /// Print each step.
    pub verbose: bool,
    /// Stop once the release awaits approval, keeping the stand-in and the world (the dashboard
    /// decides instead of `convoy approve`).
    pub hold_for_approval: bool,
    /// The service stands behind a load balancer whose test listener reaches the green version
    /// (`load_balancer.rs`), and the functions get the settings `convoy init` wrote for it, not
    /// the sandbox's own. Its stderr is kept in [`Finished::init`].
    pub settings_from_init: bool,
    /// Commands a person types, run at their step in place of the sandbox's own (implies
    /// [`Options::settings_from_init`]): the README's quick start, `e2e/quick_start.rs`.
    pub typed: Option<Typed>,
}

/// The arguments of the `convoy` commands a person types, each run at its step of the release in
/// place of the sandbox's own, in `dir` (where the files they name are: the settings `init`
/// writes, the `manifest.json` CI writes). The placeholders `<cluster>`, `<service>` and
/// `<release>` are filled with the sandbox's names; any other `<…>` left is an error.
#[derive(Debug, Clone, Default)]
pub struct Typed {
    pub dir: PathBuf,
    /// `convoy init <cluster> <service> [--out FILE]`: the settings the functions get (its output,
    /// or the file `--out` names).
    pub init: Vec<String>,
    /// `convoy check --settings FILE`, once the sandbox (as the operator) put init's entry under
    /// `services` in FILE, in `dir`.
    pub check: Vec<String>,
    /// `convoy settings publish FILE`: the version it prints is the one the functions read, as a
    /// stack update naming it in `SettingsVersion` would have them.
    pub publish: Vec<String>,
    /// `convoy submit manifest.json`, once the sandbox (as CI) wrote `manifest.json` in `dir`.
    pub submit: Vec<String>,
    /// `convoy wait …`, once the verification passed, before the approval (must exit 0).
    pub wait: Vec<String>,
    /// `convoy approve …`, with the operator's own credentials.
    pub approve: Vec<String>,
    /// `convoy status …`, once the release ended: [`Finished::status`].
    pub status: Vec<String>,
}

impl Typed {
    /// `args` with the placeholders filled in; `Err` naming one that is not the sandbox's.
    fn fill(args: &[String], cluster: &str) -> Result<Vec<String>, String> {
        let filled: Vec<String> = args
            .iter()
            .map(|a| a.replace("<cluster>", cluster).replace("<service>", SERVICE).replace("<release>", RELEASE))
            .collect();
        match filled.iter().find(|a| a.contains('<') && a.contains('>')) {
            Some(left) => Err(format!("convoy {}: the sandbox has no value for {left}", args.join(" "))),
            None => Ok(filled),
        }
    }
}

/// What a run held for approval keeps alive: the world and the stand-in Convoy's calls go through.
pub struct Held {
    pub world: World,
    pub standin: StandIn,
}

/// The final record, `convoy status` as printed, the notifications (`detail.to`, the SNS message
/// text) template.yaml's notification rules sent during the release, and `convoy wait`'s exit code
/// and output.
pub struct Finished {
    pub release: Release,
    pub status: String,
    pub notifications: Vec<(String, String)>,
    /// Every release event on the bus, as `from → to`.
    pub transitions: Vec<String>,
    pub wait_exit: i32,
    pub waited: String,
    /// With [`Options::hold_for_approval`], the run stopped at the approval: what it kept.
    pub held: Option<Held>,
    /// The release's stage durations (stage, seconds), read from the EMF lines the functions
    /// wrote to standard output (namespace Convoy, metric StageSeconds).
    pub stage_seconds: Vec<(String, f64)>,
    /// With [`Options::settings_from_init`]: the settings `convoy init` wrote, and what it said.
    pub init: Option<(String, String)>,
    /// The version of the settings file `convoy settings publish` wrote, which the functions read
    /// (none with [`Options::aws_unreachable`]: those functions read `CONVOY_SERVICE_SETTINGS`).
    pub settings_version: Option<String>,
}

pub(crate) struct Sandbox {
    pub(crate) verbose: bool,
    /// Each invocation made through [`Sandbox::send`]: the function and its wall time (what
    /// Lambda would bill, near enough), for the bench's account of a run.
    pub(crate) invocations: std::sync::Mutex<Vec<(String, std::time::Duration)>>,
}

impl Sandbox {
    pub(crate) fn new(verbose: bool) -> Self {
        Self { verbose, invocations: std::sync::Mutex::new(Vec::new()) }
    }

    /// Shows the SNS messages the notification rules sent since the last call, and keeps them.
    fn notify(&self, queues: &[(notifications::NotificationRule, Queue)], sent: &mut Vec<(String, String)>) {
        for (_, to, text) in notifications::notifications(queues) {
            self.step(&format!("SNS notification ({to}), as the email reads"));
            for line in text.lines() {
                self.say(line);
            }
            sent.push((to, text));
        }
    }

    pub(crate) fn step(&self, text: &str) {
        if self.verbose {
            println!("\n\x1b[1m▶ {text}\x1b[0m");
        }
    }

    pub(crate) fn say(&self, text: impl AsRef<str>) {
        if self.verbose {
            println!("  {}", text.as_ref());
        }
    }

    /// Invokes `function` with `event`; `Err` when it fails (AWS would retry it, and the sandbox
    /// shows one release going through, so a failure is the sandbox's failure).
    pub(crate) async fn send(&self, function: &LambdaProcess, event: Value) -> Result<Value, String> {
        let started = std::time::Instant::now();
        let outcome = function.invoke(event).await?;
        let took = started.elapsed();
        self.invocations.lock().unwrap_or_else(|p| p.into_inner()).push((function.name.clone(), took));
        match outcome {
            Outcome::Response(value) => {
                self.say(format!("{} answered: {value}", function.name));
                Ok(value)
            }
            Outcome::Error(error) => Err(format!("{} failed: {error}", function.name)),
        }
    }
}

/// Runs the release; returns its final record, or why the sandbox could not go on (a function
/// invocation or a CLI command failed, or Convoy left CodeDeploy without an answer).
pub async fn run(options: Options) -> Result<Finished, String> {
    let out = Sandbox::new(options.verbose);
    let moto = Moto::shared();
    let bucket = if options.id.is_empty() {
        "convoy-sandbox-state".to_owned()
    } else {
        format!("convoy-sandbox-{}", options.id)
    };
    let world = World::named(&bucket, &options.id).await;
    world.create_repositories(&["laravel-app", "laravel-app-nginx"]).await;
    let controller = if options.ecs_native {
        aws_sdk_ecs::types::DeploymentControllerType::Ecs
    } else {
        aws_sdk_ecs::types::DeploymentControllerType::CodeDeploy
    };
    let green_version = if options.wrong_version { "0000000" } else { RELEASE };
    let green = http::serve(Behaviour::version(green_version)).await;
    let blue = http::serve(Behaviour::version("0000000")).await;
    let settings_from_init = options.settings_from_init || options.typed.is_some();
    let (ecs, application, group) = if settings_from_init {
        // The load balancer's listeners on the blue and green servers' ports: the test listener's
        // address is the green server's, once init is told to reach it by 127.0.0.1.
        let shape = Shape::ready(controller.clone(), port_of(&blue.url), port_of(&green.url));
        let balanced = world.balanced_service(SERVICE, &["laravel", "nginx"], &shape).await;
        let (application, group) = balanced.codedeploy.clone().unwrap_or_default();
        out.say(format!(
            "load balancer {}: production listener :{}, test listener :{} (the green server's port)",
            balanced.balancer.dns_name,
            shape.production_port,
            port_of(&green.url)
        ));
        (balanced.ecs, application, group)
    } else {
        let ecs = world.ecs_service_controlled(SERVICE, &["laravel", "nginx"], controller).await;
        let (application, group) = world.codedeploy(SERVICE).await;
        (ecs, application, group)
    };
    let pipeline = match options.via_pipeline {
        true => Some(world.pipeline(SERVICE, &application, &group, true).await),
        false => None,
    };
    let standin = StandIn::for_missing_operations(&moto.endpoint).await;
    out.say(format!("moto server (S3, ECR, ECS, EC2, CodeDeploy) at {}", moto.endpoint));
    out.say(format!("stand-in for the operations moto lacks at {}", standin.endpoint));
    out.say(format!(
        "ECS service {SERVICE} in cluster {} with a CodeDeploy blue/green group {application}/{group}",
        ecs.cluster
    ));
    out.say(format!(
        "blue (live, old version) at {}; green (new tasks, test listener) at {} answering {green_version}",
        blue.url, green.url
    ));

    let probe = json!({"count": 5, "interval_ms": 200, "failure_limit": 1, "timeout_ms": 1000});
    let mut settings: Value =
        serde_json::from_str(&service_settings(SERVICE, &application, &group, &green.url, "manual", probe))
            .expect("settings are JSON");
    if let Some(pipeline) = &pipeline {
        settings[SERVICE]["pipeline"] = pipeline.settings();
        out.say(format!(
            "CodePipeline {} (V2): S3 source s3://{}/{} (versioned), then CodeDeployToECS into {application}/{group}",
            pipeline.name, pipeline.bucket, pipeline.key
        ));
    }
    if options.ecs_native {
        settings[SERVICE] = json!({"ecs_native": {"verify_function": "convoy-verify"}, "test_listener": green.url,
                                   "approval": "manual", "probe": settings[SERVICE]["probe"].clone()});
        standin.native_service(SERVICE, native_configuration());
        out.say(format!(
            "ECS native blue/green: {SERVICE} has the ECS controller and a LINEAR strategy (as ECS would describe \
             it: moto keeps no deploymentConfiguration, the stand-in adds it), the verify hook at \
             POST_TEST_TRAFFIC_SHIFT and a PAUSE hook at PRE_PRODUCTION_TRAFFIC_SHIFT"
        ));
    }
    let mut settings = settings.to_string();
    let mut init = None;
    if let Some(typed) = &options.typed {
        // The load balancer's DNS name is moto's, which resolves nowhere: the test listener is
        // reached by 127.0.0.1, as `--test-listener-host` documents for an alias.
        let mut args = Typed::fill(&typed.init, &ecs.cluster)?;
        args.extend(["--test-listener-host".to_owned(), "127.0.0.1".to_owned()]);
        out.step(&format!("convoy {}", args.join(" ")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (printed, said) = cli_stdout_in(&standin.endpoint, &world.bucket, &args, Some(&typed.dir))?;
        let written = match args.iter().position(|a| *a == "--out") {
            Some(at) => {
                let file = typed.dir.join(args.get(at + 1).ok_or("init --out names no file")?);
                std::fs::read_to_string(&file).map_err(|e| format!("init wrote no {}: {e}", file.display()))?
            }
            None => printed,
        };
        for line in said.lines().chain(written.lines()) {
            out.say(line);
        }
        settings = written.clone();
        init = Some((written, said));
    } else if options.settings_from_init {
        out.step(&format!("convoy init {} {SERVICE} --test-listener-host 127.0.0.1", ecs.cluster));
        let args = ["init", &ecs.cluster, SERVICE, "--test-listener-host", "127.0.0.1"];
        let (written, said) = cli_stdout(&standin.endpoint, &world.bucket, &args)?;
        for line in said.lines().chain(written.lines()) {
            out.say(line);
        }
        settings = written.clone();
        init = Some((written, said));
    }
    let repositories = [world.repo("laravel-app"), world.repo("laravel-app-nginx")];
    let endpoint = if options.aws_unreachable { http::refused_url() } else { standin.endpoint.clone() };
    let mut env = function_env(&world, &endpoint, &ecs.cluster, &[SERVICE.to_owned()], &repositories, &settings);
    // The functions read the settings file the operator published, as a stack naming its
    // SettingsVersion does; with AWS unreachable they could not start at all, so that run keeps
    // CONVOY_SERVICE_SETTINGS (the former way) and shows its first invocation failing.
    let mut settings_version = None;
    if let Some(typed) = &options.typed {
        let services: Value = serde_json::from_str(&settings).map_err(|e| format!("the settings: {e}"))?;
        // The operator's edit: init's entry under `services` in the file check and publish name.
        let file = typed.publish.get(2).ok_or("convoy settings publish names no file")?;
        std::fs::write(typed.dir.join(file), settings_file(&services)).map_err(|e| format!("writing {file}: {e}"))?;
        let cluster = [("CONVOY_CLUSTER".to_owned(), ecs.cluster.clone())];
        for step in [&typed.check, &typed.publish] {
            let args = Typed::fill(step, &ecs.cluster)?;
            out.step(&format!("convoy {}", args.join(" ")));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let said = cli_in(&standin.endpoint, &world.bucket, &args, &cluster, Some(&typed.dir), &[0])?.1;
            out.say(said.trim());
            if step == &typed.publish {
                let version = said
                    .split("SettingsVersion=")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .ok_or_else(|| format!("convoy {} printed no SettingsVersion: {said}", args.join(" ")))?;
                read_settings_version(&mut env, version);
                settings_version = Some(version.to_owned());
            }
        }
    } else if !options.aws_unreachable {
        let services: Value = serde_json::from_str(&settings).map_err(|e| format!("the settings: {e}"))?;
        let path = std::env::temp_dir().join(format!("convoy-settings-{}.json", world.bucket));
        std::fs::write(&path, settings_file(&services)).map_err(|e| format!("writing {}: {e}", path.display()))?;
        let file = path.to_str().expect("a UTF-8 temp path");
        out.step("convoy settings publish (the operator's settings file, read by the functions at start)");
        let published = cli_with(&standin.endpoint, &world.bucket, &["settings", "publish", file, "--json"], &[])?;
        std::fs::remove_file(&path).ok();
        let published: Value =
            serde_json::from_str(&published).map_err(|e| format!("publish said {published}: {e}"))?;
        let version = published["version_id"].as_str().ok_or("publish printed no version_id")?.to_owned();
        out.say(format!("s3://{}/{SETTINGS_KEY} version {version}: the stack's SettingsVersion", world.bucket));
        read_settings_version(&mut env, &version);
        settings_version = Some(version);
    }
    // Release events go to a bus of this run's own, where template.yaml's notification rules
    // (a queue in place of the SNS topic: moto delivers to SQS, not SNS) and a rule taking every
    // event wait.
    let bus = event_bus(&world.bucket);
    notifications::create_bus(&bus);
    let every_event = Queue::create(&format!("{bus}-every-event"));
    notifications::route(&bus, &format!("{bus}-every-event"), &notifications::every_release_event(), &every_event);
    let notification_queues = notifications::notification_queues(&bus, &bus);
    let mut sent = Vec::new();
    env.push((convoy::config::EVENT_BUS.to_owned(), bus.clone()));
    out.say(format!(
        "EventBridge bus {bus}: template.yaml's ApprovalNotificationRule and OutcomeNotificationRule, \
         each to a queue in place of the SNS topic"
    ));

    if options.ecs_native {
        out.step("convoy check: the service deploys blue/green and its hooks call Convoy");
        let checked = cli_with(&standin.endpoint, &world.bucket, &["check"], &env)?;
        out.say(checked.trim());
    }
    let [image_pushed, manifest_uploaded, migration_stopped, verify, deployment_changed] =
        start_functions(&out, &env).await?;

    out.step("CI pushes laravel-app:4cf03d1 to ECR (before any manifest)");
    let app = world.push_image("laravel-app", RELEASE).await;
    let push = fixtures::ecr_push(ACCOUNT, &world.repo("laravel-app"), RELEASE, &app, chrono::Utc::now());
    out.send(&image_pushed, push).await?;

    out.step("CI uploads releases/laravel-app/4cf03d1.json; S3 delivers the event twice");
    let command = migration_command(options.migration_fails);
    let manifest = json!({
        "version": 1, "release": RELEASE, "service": SERVICE,
        "images": {"laravel": world.uri("laravel-app", RELEASE), "nginx": world.uri("laravel-app-nginx", RELEASE)},
        "migration": {"container": "laravel", "command": command},
        "verify": {"path": "/", "expect_status": 200, "expect_body": RELEASE},
        "approval": "manual"
    });
    let key_name = format!("releases/{SERVICE}/{RELEASE}.json");
    let (version, size) = match &options.typed {
        Some(typed) => {
            // CI writes the manifest and submits it; S3 then tells Convoy of the object it made.
            std::fs::write(typed.dir.join("manifest.json"), manifest.to_string())
                .map_err(|e| format!("writing manifest.json: {e}"))?;
            let args = Typed::fill(&typed.submit, &ecs.cluster)?;
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let submitted = cli_in(&standin.endpoint, &world.bucket, &args, &[], Some(&typed.dir), &[0])?.1;
            out.say(submitted.trim());
            let head = world.s3.head_object().bucket(&world.bucket).key(&key_name).send().await;
            let head = head.map_err(|e| format!("convoy {} put no {key_name}: {e:?}", args.join(" ")))?;
            (head.version_id, head.content_length.unwrap_or_default() as u64)
        }
        None => world.upload(&key_name, &manifest.to_string()).await,
    };
    let upload = fixtures::s3_eventbridge(&world.bucket, &key_name, version.as_deref(), size);
    out.send(&manifest_uploaded, upload.clone()).await?;
    out.send(&manifest_uploaded, upload).await?;

    out.step("CI pushes laravel-app-nginx:4cf03d1; EventBridge delivers the push twice");
    let nginx = world.push_image("laravel-app-nginx", RELEASE).await;
    let push = fixtures::ecr_push(ACCOUNT, &world.repo("laravel-app-nginx"), RELEASE, &nginx, chrono::Utc::now());
    out.send(&image_pushed, push.clone()).await?;
    out.send(&image_pushed, push).await?;

    let store = state_store(&world);
    let key = ReleaseKey::new(SERVICE.parse().expect("service"), RELEASE.parse().expect("release"));
    let record = || async { store.load(&key).await.expect("load").expect("a record").release };

    out.step("the migration task runs (moto has the task; its command runs here, as a local process)");
    let stopped = migration_runs(&out, &world, &standin, &ecs.cluster, &record().await, &command).await?;
    out.send(&migration_stopped, stopped).await?;

    if let (true, State::Deploying { deployment }) = (options.ecs_native, record().await.state) {
        play_ecs_native(&out, &standin, &world, &ecs.cluster, &verify, &deployment_changed, deployment.as_str())
            .await?;
    } else if let State::Deploying { deployment } = record().await.state {
        let deployment = match &pipeline {
            None => deployment.to_string(),
            Some(pipeline) => {
                let released = record().await;
                let (bundle, _) = crate::pipeline::recorded_bundle(&world, pipeline, &released).await;
                let run = released.deployment.as_ref().and_then(|d| d.pipeline.as_ref()).expect("a pipeline run");
                out.step(&format!(
                    "CodePipeline runs execution {deployment}, pinned to bundle version {} \
                     (moto runs no actions: the sandbox plays CodeDeployToECS)",
                    run.version
                ));
                let (created, revision) =
                    crate::pipeline::play_deploy_action(&world, &application, &group, &bundle).await;
                // Created straight on moto, as CodePipeline would: CodeDeploy knows it.
                standin.register(&created, &format!("{}:{SERVICE}", world.cluster()));
                standin.report_deploy_action(deployment.as_str(), &created);
                out.say(format!("registered taskdef.json as {revision}; CodeDeploy deployment {created}"));
                created
            }
        };
        out.step("CodeDeploy shifts test traffic to green and calls the AfterAllowTestTraffic hook");
        standin.hook_invoked(&deployment, "sandbox-hook-1");
        out.send(&verify, fixtures::codedeploy_hook(&deployment, "sandbox-hook-1")).await?;
        let end = match standin.phase(&deployment) {
            Some(Phase::HookPassed) => {
                out.say("CodeDeploy took the hook's answer: Succeeded");
                out.step("CodeDeploy waits for the reroute (READY_WAIT)");
                standin.waits(&deployment);
                if options.hold_for_approval && matches!(record().await.state, State::AwaitingApproval { .. }) {
                    out.step("the release awaits a person's approval (held for the dashboard)");
                    let release = record().await;
                    out.notify(&notification_queues, &mut sent);
                    return Ok(Finished {
                        release,
                        status: String::new(),
                        notifications: sent,
                        transitions: Vec::new(),
                        wait_exit: 0,
                        waited: String::new(),
                        held: Some(Held { world, standin }),
                        stage_seconds: Vec::new(),
                        init,
                        settings_version,
                    });
                }
                if matches!(record().await.state, State::AwaitingApproval { .. }) {
                    out.notify(&notification_queues, &mut sent);
                    if let Some(typed) = &options.typed {
                        let args = Typed::fill(&typed.wait, &ecs.cluster)?;
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        out.step(&format!("convoy {}", args.join(" ")));
                        let waited = cli_in(&standin.endpoint, &world.bucket, &args, &[], Some(&typed.dir), &[0])?.1;
                        out.say(waited.trim());
                    }
                    let typed = options.typed.as_ref().map(|t| (t, ecs.cluster.as_str()));
                    approve_as_operator(&out, &standin, &world, &deployment_changed, typed).await?;
                }
                codedeploy_end(&standin, &deployment)?
            }
            Some(Phase::Failed) => {
                out.say("CodeDeploy took the hook's answer: Failed");
                "FAILURE"
            }
            other => {
                let answers = standin.calls_to("PutLifecycleEventHookExecutionStatus");
                return Err(format!(
                    "CodeDeploy took no answer to the hook: deployment {deployment} is {other:?}; answers sent: {answers:?}"
                ));
            }
        };
        match end {
            "SUCCESS" => out.step("CodeDeploy shifts production traffic (Convoy continued it) and reports SUCCESS"),
            "STOP" => out.step("CodeDeploy stops and rolls back (Convoy stopped it) and reports STOP"),
            _ => out.step("CodeDeploy fails the deployment (the hook failed), rolls back and reports FAILURE"),
        }
        out.send(&deployment_changed, fixtures::codedeploy_state_change(&application, &group, &deployment, end))
            .await?;
        if let Some(pipeline) = &pipeline {
            let record = record().await;
            let execution =
                record.deployment.as_ref().and_then(|d| d.pipeline.as_ref()).and_then(|p| p.execution.clone());
            // The action's end is its deployment's end.
            let state = if end == "SUCCESS" { "SUCCEEDED" } else { "FAILED" };
            out.step(&format!(
                "CodePipeline reports the execution {state} (it changes nothing: the deployment decided)"
            ));
            let execution = execution.as_ref().map_or("", |e| e.as_str());
            standin.pipeline_execution_ends(execution, if end == "SUCCESS" { "Succeeded" } else { "Failed" });
            let ended = fixtures::pipeline_state_change(&pipeline.name, execution, state);
            out.send(&deployment_changed, ended).await?;
        }
    }

    out.notify(&notification_queues, &mut sent);
    let transitions: Vec<String> = every_event
        .drain()
        .iter()
        .map(|e| {
            format!(
                "{} → {}",
                e["detail"]["from"].as_str().unwrap_or("(created)"),
                e["detail"]["to"].as_str().unwrap_or("?")
            )
        })
        .collect();
    out.step(&format!("EventBridge got {} release events on {bus}", transitions.len()));
    out.say(transitions.join(", "));

    let status_args = match &options.typed {
        Some(typed) => Typed::fill(&typed.status, &ecs.cluster)?,
        None => ["status", SERVICE, RELEASE].map(str::to_owned).to_vec(),
    };
    out.step(&format!("convoy {}", status_args.join(" ")));
    let status_args: Vec<&str> = status_args.iter().map(String::as_str).collect();
    let dir = options.typed.as_ref().map(|t| t.dir.as_path());
    // `status` exits 1 for a release that failed (documented): that is its answer, not an error.
    let (_, status) = cli_in(&standin.endpoint, &world.bucket, &status_args, &[], dir, &[0, 1])?;
    if options.verbose {
        print!("{status}");
    }
    out.step("convoy wait laravel-app 4cf03d1 (what CI runs: exit 0 Succeeded, 1 Failed/RolledBack, 3 timeout)");
    let (wait_exit, waited) =
        cli_exits(&standin.endpoint, &world.bucket, &["wait", SERVICE, RELEASE, "--timeout", "30s"], &[0, 1])?;
    for line in waited.lines() {
        out.say(line);
    }
    out.say(format!("convoy wait exited {wait_exit}"));
    let release = record().await;
    let functions = [&image_pushed, &manifest_uploaded, &migration_stopped, &verify, &deployment_changed];
    let stage_seconds = stage_seconds(&functions, &release.key.to_string());
    out.step("its stage durations, from the functions' EMF lines (CloudWatch namespace Convoy, StageSeconds)");
    for (stage, seconds) in &stage_seconds {
        out.say(format!("{stage:<14} {seconds:>8.3} s"));
    }
    Ok(Finished {
        release,
        status,
        notifications: sent,
        transitions,
        wait_exit,
        waited,
        held: None,
        stage_seconds,
        init,
        settings_version,
    })
}

/// The five event functions as Lambda starts them, each polling the Runtime API with `env`:
/// image-pushed, manifest-uploaded, migration-stopped, verify, deployment-changed.
pub(crate) async fn start_functions(out: &Sandbox, env: &[(String, String)]) -> Result<[LambdaProcess; 5], String> {
    let mut started = Vec::new();
    for name in ["image-pushed", "manifest-uploaded", "migration-stopped", "verify", "deployment-changed"] {
        let function = LambdaProcess::spawn(name, &binary(name), env).await;
        let init = function.init_time(std::time::Duration::from_secs(30)).await?;
        out.say(format!("{name} is polling the Runtime API ({} ms after start)", init.as_millis()));
        started.push(function);
    }
    started.try_into().map_err(|_| "five functions".to_owned())
}

/// The sandbox's view of the records in its world's state bucket.
pub(crate) fn state_store(world: &World) -> convoy::adapters::aws::S3Store {
    let settings = convoy::config::StoreSettings { state_bucket: world.bucket.clone(), force_path_style: true };
    convoy::adapters::aws::S3Store::new(convoy::adapters::aws::s3_client(&world.sdk, &settings), &world.bucket)
}

/// The migration of `release` (which must be migrating) runs: its command as a local process,
/// its output shipped to the log stream the record names (as the awslogs driver would), and the
/// task's STOPPED event as ECS would send it (the stand-in describes the task so). The event, to
/// deliver to migration-stopped.
pub(crate) async fn migration_runs(
    out: &Sandbox,
    world: &World,
    standin: &StandIn,
    cluster: &str,
    release: &Release,
    command: &[String],
) -> Result<Value, String> {
    let State::Migrating { task } = &release.state else {
        return Err(format!("expected the migration to run: {}", release.state));
    };
    out.say(format!("task {task}"));
    let started_at = chrono::Utc::now();
    let ran = Command::new(&command[0]).args(&command[1..]).output().map_err(|e| format!("the migration: {e}"))?;
    let exit_code = ran.status.code().unwrap_or(-1);
    let lines: Vec<String> = [&ran.stdout, &ran.stderr]
        .iter()
        .flat_map(|b| String::from_utf8_lossy(b).lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let run = release.migration.as_ref().ok_or("a migrating release without its run")?;
    if let Some(log) = &run.log {
        ship_log(&world.sdk, log, &lines).await;
        out.say(format!("its output went to CloudWatch Logs {} {} ({} lines)", log.group, log.stream, lines.len()));
    }
    out.say(format!("the migration exited {exit_code}; ECS reports the task STOPPED"));
    let task_definition = run.task_definition.clone().ok_or("no migration task definition")?;
    // ECS lists every container of the task: nginx too, stopped once the essential one exited.
    let containers =
        [fixtures::ContainerExit::exited("laravel", exit_code), fixtures::ContainerExit::exited("nginx", 0)];
    let key = &release.key;
    let mut stopped = fixtures::ecs_task_stopped(&fixtures::TaskStopped {
        cluster,
        task: task.as_str(),
        group: &key.tag(),
        started_by: &key.migration_started_by(),
        task_definition: &task_definition,
        overridden: "laravel",
        containers: &containers,
        stop_code: "EssentialContainerExited",
        version: 3,
    });
    // ISO time stamps with milliseconds, as the task event writes them.
    let iso = |at: chrono::DateTime<chrono::Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    stopped["detail"]["startedAt"] = json!(iso(started_at));
    stopped["detail"]["stoppedAt"] = json!(iso(chrono::Utc::now()));
    standin.task_stops(&stopped);
    Ok(stopped)
}

/// The `StageSeconds` EMF lines of `release` among the functions' standard output, in order.
fn stage_seconds(functions: &[&LambdaProcess], release: &str) -> Vec<(String, f64)> {
    let mut stages = Vec::new();
    for function in functions {
        for line in function.stdout().lines().filter(|l| l.contains("\"_aws\":")) {
            let Ok(value) = serde_json::from_str::<Value>(line) else { continue };
            if value["release"] != release {
                continue;
            }
            let Ok(metrics) = convoy::telemetry::read(line) else { continue };
            for (name, values, dimensions) in metrics {
                let stage = dimensions.iter().find(|(k, _)| k == "Stage").map(|(_, v)| v.clone());
                if let (Some(stage), "StageSeconds", Some(seconds)) = (stage, name.as_str(), values.first()) {
                    stages.push((stage, *seconds));
                }
            }
        }
    }
    stages
}

/// The event bus of the sandbox whose state bucket is `bucket`.
pub(crate) fn event_bus(bucket: &str) -> String {
    format!("{bucket}-events")
}

/// The lifecycle hooks of a native service on Convoy: the verify function after the test traffic
/// shift, a PAUSE hook (for the approval) before production traffic moves.
pub fn native_lifecycle_hooks() -> Value {
    json!([
        {"targetType": "AWS_LAMBDA",
         "hookTargetArn": format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:convoy-verify"),
         "roleArn": format!("arn:aws:iam::{ACCOUNT}:role/convoy-ecs-hooks"),
         "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]},
        {"targetType": "PAUSE", "lifecycleStages": ["PRE_PRODUCTION_TRAFFIC_SHIFT"]}
    ])
}

/// A LINEAR blue/green service: Convoy's verify hook after the test traffic shift, a PAUSE hook
/// before production traffic moves, 10 minutes of bake time.
fn native_configuration() -> Value {
    json!({
        "strategy": "LINEAR",
        "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 2},
        "bakeTimeInMinutes": 10,
        "lifecycleHooks": native_lifecycle_hooks(),
    })
}

/// ECS's part of a native service deployment, decided from what Convoy answered and asked: the
/// verify hook until it answers SUCCEEDED or FAILED (waiting its `callBackDelay`), then the PAUSE
/// hook for `convoy approve` (an accepted CONTINUE shifts and completes; a ROLLBACK or a failed
/// hook rolls back), then the "ECS Deployment State Change" event.
async fn play_ecs_native(
    out: &Sandbox,
    standin: &StandIn,
    world: &World,
    cluster: &str,
    verify: &LambdaProcess,
    deployment_changed: &LambdaProcess,
    arn: &str,
) -> Result<(), String> {
    out.say(format!("Convoy called UpdateService; ECS started service deployment {arn}"));
    out.step("ECS scales green up, shifts test traffic and invokes the POST_TEST_TRAFFIC_SHIFT hook");
    standin.service_deployment_at(arn, "POST_TEST_TRAFFIC_SHIFT", 0.0);
    let mut details = json!({});
    let mut status = String::new();
    for attempt in 1..=20 {
        let reply = out.send(verify, fixtures::ecs_native_hook(arn, "sandbox-ecs-hook-1", details)).await?;
        status = reply["hookStatus"].as_str().unwrap_or_default().to_owned();
        details = reply["hookDetails"].clone();
        if status != "IN_PROGRESS" {
            break;
        }
        let delay = reply["callBackDelay"].as_u64().unwrap_or(1);
        out.say(format!("IN_PROGRESS (attempt {attempt}): ECS calls again in {delay} s"));
        tokio::time::sleep(std::time::Duration::from_secs(delay)).await;
    }
    let (event, reason) = match status.as_str() {
        "SUCCEEDED" => {
            out.step("ECS pauses at PRE_PRODUCTION_TRAFFIC_SHIFT (PAUSE hook) for the approval");
            standin.pause_service_deployment(arn);
            approve_as_operator(out, standin, world, deployment_changed, None).await?;
            let continued = standin.calls_of("ContinueServiceDeployment");
            let took = |action: &str| continued.iter().any(|c| c.refused.is_none() && c.body["action"] == action);
            if took("CONTINUE") {
                out.step("ECS shifts production traffic 25% at a time, bakes, and completes");
                standin.service_deployment_at(arn, "PRODUCTION_TRAFFIC_SHIFT", 100.0);
                standin.service_deployment_ends(arn, "SUCCESSFUL", "Service deployment completed");
                ("SERVICE_DEPLOYMENT_COMPLETED", "ECS deployment ecs-svc/1 completed.")
            } else if took("ROLLBACK") {
                standin.service_deployment_ends(arn, "ROLLBACK_SUCCESSFUL", "Rolled back at the PAUSE hook");
                ("SERVICE_DEPLOYMENT_FAILED", "ECS deployment ecs-svc/1 rolled back.")
            } else {
                return Err(format!("Convoy neither continued nor rolled back {arn}: {continued:?}"));
            }
        }
        "FAILED" => {
            out.step("the hook FAILED: ECS rolls back to blue (and re-runs no verification)");
            let reason = "Service deployment rolled back because lifecycle hook POST_TEST_TRAFFIC_SHIFT failed";
            standin.service_deployment_ends(arn, "ROLLBACK_SUCCESSFUL", reason);
            ("SERVICE_DEPLOYMENT_FAILED", "ECS deployment ecs-svc/1 rolled back.")
        }
        other => return Err(format!("the verify hook never decided: last hookStatus {other:?}")),
    };
    out.step(&format!("ECS reports {event}"));
    out.send(deployment_changed, fixtures::ecs_deployment_state_change(cluster, SERVICE, event, reason)).await?;
    Ok(())
}

/// CodeDeploy's part after the reroute wait, from what Convoy asked it: an accepted
/// `ContinueDeployment` shifts production traffic and succeeds; an accepted `StopDeployment`
/// stops and rolls back. The state-change event's state.
pub(crate) fn codedeploy_end(standin: &StandIn, deployment: &str) -> Result<&'static str, String> {
    let took = |operation: &str| {
        standin.calls_of(operation).iter().any(|c| c.refused.is_none() && c.body["deploymentId"] == deployment)
    };
    if took("ContinueDeployment") {
        standin.finish(deployment);
        Ok("SUCCESS")
    } else if took("StopDeployment") {
        Ok("STOP")
    } else {
        Err(format!(
            "Convoy neither continued nor stopped deployment {deployment}: ContinueDeployment {:?}, StopDeployment {:?}",
            standin.calls_of("ContinueDeployment"),
            standin.calls_of("StopDeployment")
        ))
    }
}

/// A person approves with their own AWS identity: an IAM user `sandbox-operator` (created in
/// moto with its own access key) runs `convoy approve`; CloudTrail's record of the call (the
/// stand-in's, with the principal moto's STS resolves from that key) reaches deployment-changed
/// as EventBridge delivers it; `convoy status` then names the principal.
pub(crate) async fn approve_as_operator(
    out: &Sandbox,
    standin: &StandIn,
    world: &World,
    deployment_changed: &LambdaProcess,
    typed: Option<(&Typed, &str)>,
) -> Result<(), String> {
    let moto = Moto::shared();
    let form = "application/x-www-form-urlencoded";
    // The sandbox's world has no id (its names are fixed); a test's world adds its own.
    let name =
        if world.id.is_empty() { "sandbox-operator".to_owned() } else { format!("sandbox-operator-{}", world.id) };
    moto.raw_call("iam", None, form, &format!("Action=CreateUser&UserName={name}&Version=2010-05-08"));
    let (_, key) =
        moto.raw_call("iam", None, form, &format!("Action=CreateAccessKey&UserName={name}&Version=2010-05-08"));
    let element = |tag: &str| {
        key.split(&format!("<{tag}>")).nth(1).and_then(|r| r.split(&format!("</{tag}>")).next()).map(str::to_owned)
    };
    let (Some(id), Some(secret)) = (element("AccessKeyId"), element("SecretAccessKey")) else {
        return Err(format!("moto created no access key for {name}: {key}"));
    };
    let credentials = [("AWS_ACCESS_KEY_ID".to_owned(), id), ("AWS_SECRET_ACCESS_KEY".to_owned(), secret)];
    if let Some((typed, cluster)) = typed {
        // As typed: the command waits for the record to name who approved, which happens once
        // CloudTrail's event reaches deployment-changed, so the event is delivered while it runs.
        let args = Typed::fill(&typed.approve, cluster)?;
        out.step(&format!(
            "a person approves with their own AWS credentials (IAM user {name}): convoy {}",
            args.join(" ")
        ));
        let before = standin.trail().len();
        let (endpoint, bucket, dir) = (standin.endpoint.clone(), world.bucket.clone(), typed.dir.clone());
        let approving = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli_in(&endpoint, &bucket, &args, &credentials, Some(&dir), &[0])
        });
        let record =
            crate::wait::wait_until(std::time::Duration::from_secs(30), "CloudTrail records the approval", || {
                let trail = standin.trail();
                async move { trail.get(before).cloned() }
            })
            .await;
        out.step(
            "CloudTrail records the call; EventBridge delivers \"AWS API Call via CloudTrail\" to deployment-changed",
        );
        out.send(deployment_changed, StandIn::api_call_event(&record)).await?;
        let approved = approving.await.map_err(|e| format!("convoy approve: {e}"))??.1;
        out.say(approved.trim());
    } else {
        out.step(&format!(
            "a person approves with their own AWS credentials (IAM user {name}): convoy approve laravel-app 4cf03d1"
        ));
        let approved =
            cli_with(&standin.endpoint, &world.bucket, &["approve", SERVICE, RELEASE, "--wait", "0"], &credentials)?;
        out.say(approved.trim());
        let Some(record) = standin.trail().last().cloned() else { return Err("CloudTrail recorded no call".into()) };
        out.step(
            "CloudTrail records the call; EventBridge delivers \"AWS API Call via CloudTrail\" to deployment-changed",
        );
        out.send(deployment_changed, StandIn::api_call_event(&record)).await?;
    }
    let status = cli(&standin.endpoint, &world.bucket, &["status", SERVICE, RELEASE])?;
    let approval: Vec<&str> = status.lines().skip_while(|l| *l != "approval").take_while(|l| !l.is_empty()).collect();
    out.say(approval.join("\n"));
    Ok(())
}

/// Runs the real `convoy` CLI against local AWS (through the stand-in): its output, or `Err` with
/// it when the command fails.
pub fn cli(endpoint: &str, bucket: &str, args: &[&str]) -> Result<String, String> {
    cli_exits(endpoint, bucket, args, &[0]).map(|(_, text)| text)
}

/// `convoy <args>` that must exit 0: its standard output and, apart, its standard error.
fn cli_stdout(endpoint: &str, bucket: &str, args: &[&str]) -> Result<(String, String), String> {
    cli_stdout_in(endpoint, bucket, args, None)
}

/// [`cli_stdout`] run in `dir` (the current directory when `None`).
fn cli_stdout_in(endpoint: &str, bucket: &str, args: &[&str], dir: Option<&Path>) -> Result<(String, String), String> {
    let path = binary("convoy");
    let mut command = Command::new(&path);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = command
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("CONVOY_STATE_BUCKET", bucket)
        .output()
        .map_err(|e| format!("run {}: {e}", path.display()))?;
    let (stdout, stderr) =
        (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned());
    match output.status.success() {
        true => Ok((stdout, stderr)),
        false => Err(format!("convoy {} failed ({}): {stdout}{stderr}", args.join(" "), output.status)),
    }
}

/// The port of a loopback server's `http://127.0.0.1:<port>`.
fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("a loopback URL with a port")
}

/// [`cli`] with the functions' environment `env` too (`convoy check` reads the settings).
fn cli_with(endpoint: &str, bucket: &str, args: &[&str], env: &[(String, String)]) -> Result<String, String> {
    cli_run(endpoint, bucket, args, env, &[0]).map(|(_, text)| text)
}

/// [`cli`], accepting the exit codes in `ok`: the code and the output.
pub(crate) fn cli_exits(endpoint: &str, bucket: &str, args: &[&str], ok: &[i32]) -> Result<(i32, String), String> {
    cli_run(endpoint, bucket, args, &[], ok)
}

fn cli_run(
    endpoint: &str,
    bucket: &str,
    args: &[&str],
    env: &[(String, String)],
    ok: &[i32],
) -> Result<(i32, String), String> {
    cli_in(endpoint, bucket, args, env, None, ok)
}

/// [`cli_run`] in `dir` (the current directory when `None`).
pub(crate) fn cli_in(
    endpoint: &str,
    bucket: &str,
    args: &[&str],
    env: &[(String, String)],
    dir: Option<&Path>,
    ok: &[i32],
) -> Result<(i32, String), String> {
    let path = binary("convoy");
    let mut command = Command::new(&path);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = command
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        // The caller's environment last: a person's own credentials replace the test ones.
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("CONVOY_STATE_BUCKET", bucket)
        .env("CONVOY_S3_FORCE_PATH_STYLE", "true")
        .env(convoy::config::EVENT_BUS, event_bus(bucket))
        .output()
        .map_err(|e| format!("run {}: {e}", path.display()))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    match output.status.code().filter(|code| ok.contains(code)) {
        Some(code) => Ok((code, text)),
        None => Err(format!("convoy {} failed ({}): {}", args.join(" "), output.status, text.trim())),
    }
}

/// Writes the migration's output to its log stream on moto, as the awslogs driver would (the
/// sandbox, and `e2e/migration_logs.rs`).
pub async fn ship_log(sdk: &aws_config::SdkConfig, log: &convoy::release::LogPointer, lines: &[String]) {
    let client = aws_sdk_cloudwatchlogs::Client::new(sdk);
    // The group may exist from an earlier run on the same moto.
    let _ = client.create_log_group().log_group_name(&log.group).send().await;
    let _ = client.create_log_stream().log_group_name(&log.group).log_stream_name(&log.stream).send().await;
    let now = chrono::Utc::now().timestamp_millis();
    let events: Vec<_> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder().timestamp(now + i as i64).message(line).build().ok()
        })
        .collect();
    if events.is_empty() {
        return;
    }
    client
        .put_log_events()
        .log_group_name(&log.group)
        .log_stream_name(&log.stream)
        .set_log_events(Some(events))
        .send()
        .await
        .expect("put the migration's log events");
}

/// The migration's command: a real process whose exit code the sandbox reports.
pub(crate) fn migration_command(fails: bool) -> Vec<String> {
    let script = if fails {
        "echo 'migrating 2026_11_25_000000_add_orders'; echo 'SQLSTATE[42S01]: table orders already exists' >&2; exit 1"
    } else {
        "echo 'migrating 2026_11_25_000000_add_orders'; sleep 0.2; echo 'migrated'"
    };
    vec!["sh".into(), "-c".into(), script.into()]
}
