//! `convoy`: submit a release, follow it, read its record, approve or reject its traffic shift.
//! Honours the standard AWS environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials) and
//! `CONVOY_STATE_BUCKET` / `CONVOY_S3_FORCE_PATH_STYLE`.

#[macro_use]
mod output;
#[cfg(test)]
mod build_info;
mod check;
mod exit;
mod help;
mod history;
mod init;
mod list;
mod logs;
mod manual;
mod rollback;
mod settings;
mod submit;
mod text;
mod wait;

mod dashboard;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use convoy::adapters::aws::{self, S3Store};
use convoy::config::{Config, StoreSettings};
use convoy::error::ConvoyError;
use convoy::names::{ReleaseId, ReleaseKey, ServiceName};
use convoy::ports::ReleaseStore;

#[derive(Parser)]
#[command(
    name = "convoy",
    version = env!("CONVOY_VERSION"),
    about = "Submit, follow and steer Convoy releases",
    after_help = exit::HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a service's settings from what AWS says of it (its deployment controller, load
    /// balancer, test listener, CodeDeploy group or ECS hooks), and say what is missing.
    #[command(after_help = help::INIT)]
    Init(init::Args),
    /// Validate a manifest as the Lambda will, then upload it (never over an existing release).
    #[command(after_help = help::SUBMIT)]
    Submit(submit::Args),
    /// Follow a release until it ends (or awaits approval), printing its timeline as it grows.
    #[command(after_help = help::WAIT)]
    Wait(wait::Args),
    /// List releases with their state, age and stage durations (--live: each service's live
    /// release, confirmed with ECS).
    #[command(after_help = help::LIST)]
    List(list::Args),
    /// Return a service to an earlier release (by default the one live before the one live now):
    /// submit a release of its pinned digests, through the same verification and approval.
    #[command(after_help = help::ROLLBACK)]
    Rollback(rollback::Args),
    /// Every release of a service that went live, newest first: when, for how long, its pinned
    /// digests, migration, approver and what became of it.
    #[command(after_help = help::HISTORY)]
    History(history::Args),
    /// Print the migration's log lines (CloudWatch Logs, the stream its record names).
    #[command(after_help = help::LOGS)]
    Logs(logs::Args),
    /// Show a release: its state, images and digests, migration, verification, timeline.
    #[command(after_help = help::STATUS)]
    Status {
        service: ServiceName,
        release: ReleaseId,
        /// Print the record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Let a verified release shift production traffic: CodeDeploy ContinueDeployment (or ECS
    /// ContinueServiceDeployment) with your own AWS credentials. Refused unless its verification
    /// passed. Convoy records you as CloudTrail names you.
    #[command(after_help = help::APPROVE)]
    Approve {
        service: ServiceName,
        release: ReleaseId,
        /// Gone: who approves is the AWS principal making the call, as CloudTrail records it.
        #[arg(long, hide = true)]
        by: Option<String>,
        /// How long to wait for the record to name the approver (seconds).
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a release awaiting approval and roll its deployment back (CodeDeploy StopDeployment,
    /// or the ECS rollback) with your own AWS credentials.
    #[command(after_help = help::REJECT)]
    Reject {
        service: ServiceName,
        release: ReleaseId,
        /// Gone: who rejects is the AWS principal making the call, as CloudTrail records it.
        #[arg(long, hide = true)]
        by: Option<String>,
        /// How long to wait for the record to name who rejected (seconds).
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every service of the settings (a settings file, or the functions' CONVOY_*
    /// environment) as the functions and a release's start would: the file's shape and values
    /// offline, then an ECS native service's BLUE_GREEN strategy, hooks that call the verify
    /// function and a PAUSE hook that rolls back on timeout; a CodeDeploy group that waits for a
    /// person (STOP_DEPLOYMENT with a wait time). Say what is missing, per service.
    #[command(after_help = help::CHECK)]
    Check(check::Args),
    /// The settings file: publish a version for the functions, print its JSON Schema.
    #[command(subcommand, after_help = help::SETTINGS)]
    Settings(settings::Command),
    /// Serve a local web UI of every release on http://127.0.0.1:<port>/ (loopback only), with
    /// approve/reject and rollback from the page. Port 0 picks a free one.
    #[command(after_help = help::DASHBOARD)]
    Dashboard {
        #[arg(long, default_value_t = 3100)]
        port: u16,
        /// The services' ECS cluster: the Services page confirms what each runs there.
        #[arg(long, env = "CONVOY_CLUSTER")]
        cluster: Option<String>,
        /// Where manifests go in the state bucket (the Services page's rollbacks upload theirs there).
        #[arg(long, env = "CONVOY_MANIFEST_PREFIX", default_value = "releases/")]
        prefix: String,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(manual::CompletionsArgs),
    /// Print the man page (roff), or write a page per subcommand into a directory.
    Man(manual::ManArgs),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(message) => {
            errln!("convoy: {message}");
            ExitCode::from(exit::ERROR)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    // These need no state bucket.
    let command = match cli.command {
        Command::Completions(args) => return manual::completions(args),
        Command::Man(args) => return manual::man(args),
        Command::Init(args) => return init::run(args, &aws::load_sdk_config().await).await,
        Command::Check(args) => return check::run(args).await,
        Command::Settings(command) => return settings::run(command).await,
        command => command,
    };
    let settings = StoreSettings::from_env().map_err(|e| e.to_string())?;
    let sdk = aws::load_sdk_config().await;
    let store = S3Store::new(aws::s3_client(&sdk, &settings), &settings.state_bucket);
    match command {
        Command::Submit(args) => submit::run(args, &sdk, &store, &settings).await,
        Command::Wait(args) => wait::run(args, &store).await,
        Command::List(args) => list::run(args, &store, &sdk).await,
        Command::History(args) => history::run(args, &store).await,
        Command::Logs(args) => logs::run(args, &sdk, &store).await,
        Command::Rollback(args) => rollback::run(args, &store, &settings.state_bucket).await,
        Command::Status { service, release, json } => {
            let key = ReleaseKey::new(service, release);
            let Some(stored) = store.load(&key).await.map_err(|e| e.to_string())? else {
                errln!("convoy: no release {key} in s3://{}/{}", settings.state_bucket, S3Store::record_key(&key));
                return Ok(ExitCode::from(exit::NO_SUCH_RELEASE));
            };
            if json {
                outln!("{}", crate::output::json_pretty(&stored.release));
            } else {
                out!("{}", convoy::status::render(&stored.release));
            }
            Ok(ExitCode::from(exit::of_state(&stored.release.state)))
        }
        Command::Approve { by: Some(_), .. } | Command::Reject { by: Some(_), .. } => {
            errln!(
                "convoy: refused: --by is gone: who decides is the AWS principal whose credentials make the call, \
                 as CloudTrail records it"
            );
            Ok(ExitCode::from(exit::REFUSED))
        }
        Command::Approve { service, release, wait, json, .. } => {
            decide(&sdk, settings, ReleaseKey::new(service, release), true, wait, json).await
        }
        Command::Reject { service, release, wait, json, .. } => {
            decide(&sdk, settings, ReleaseKey::new(service, release), false, wait, json).await
        }
        Command::Dashboard { port, cluster, prefix } => dashboard(&sdk, settings, port, cluster, prefix).await,
        Command::Init(_) | Command::Completions(_) | Command::Man(_) | Command::Check(_) | Command::Settings(_) => {
            unreachable!("run without a state bucket")
        }
    }
}

async fn decide(
    sdk: &aws_config::SdkConfig,
    settings: StoreSettings,
    key: ReleaseKey,
    approve: bool,
    wait: u64,
    json: bool,
) -> Result<ExitCode, String> {
    let region = sdk.region().map(ToString::to_string).unwrap_or_default();
    let convoy = convoy::startup::wire(sdk, &Config::for_cli(settings, &region)).map_err(|e| e.to_string())?;
    // A group's release is decided on the service of it that awaits approval: follow that record.
    let (key, deployment) = match convoy.decide(&key, approve).await {
        Ok(decided) => (decided.key, decided.deployment),
        Err(ConvoyError::Refused(why)) => {
            if json {
                outln!("{}", crate::output::json(&serde_json::json!({"release": key.to_string(), "refused": why})));
            }
            errln!("convoy: refused: {why}");
            return Ok(ExitCode::from(exit::REFUSED));
        }
        Err(err) => return Err(err.to_string()),
    };
    let verb = if approve { "approved" } else { "rejected" };
    // The record names the principal once CloudTrail's event reaches Convoy: wait for it briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
    let recorded = loop {
        let stored = convoy.store.load(&key).await.map_err(|e| e.to_string())?;
        let decision = stored.and_then(|s| s.release.approval).filter(|a| a.approved == approve);
        if let Some(decision) = decision.filter(|a| a.event_id().is_some()) {
            break Some(decision);
        }
        if std::time::Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    match (recorded, json) {
        (Some(decision), true) => {
            let actor = serde_json::to_value(&decision.actor).map_err(|e| e.to_string())?;
            outln!(
                "{}",
                crate::output::json(
                    &serde_json::json!({"release": key.to_string(), "deployment": deployment, verb: actor})
                )
            );
        }
        (Some(decision), false) => {
            outln!("{key}: {verb} (deployment {deployment})");
            for line in convoy::status::approver_lines(&decision) {
                outln!("  {line}");
            }
        }
        (None, true) => outln!(
            "{}",
            crate::output::json(
                &serde_json::json!({"release": key.to_string(), "deployment": deployment, "sent": verb, "recorded": null})
            )
        ),
        (None, false) => outln!(
            "{key}: {verb} (deployment {deployment}); the record names who once CloudTrail reports the call \
             (convoy status {} {})",
            key.service,
            key.release
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `convoy dashboard`: the web UI, with the same wiring as `approve`/`reject`.
async fn dashboard(
    sdk: &aws_config::SdkConfig,
    settings: StoreSettings,
    port: u16,
    cluster: Option<String>,
    prefix: String,
) -> Result<ExitCode, String> {
    let region = sdk.region().map(ToString::to_string).unwrap_or_default();
    let mut config = Config::for_cli(settings.clone(), &region);
    config.cluster = cluster.unwrap_or_default().trim().to_owned();
    let convoy = convoy::startup::wire(sdk, &config).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let app = dashboard::App {
        store: S3Store::new(aws::s3_client(sdk, &settings), &settings.state_bucket),
        bucket: settings.state_bucket.clone(),
        convoy,
        token: dashboard::new_token()?,
        secret: dashboard::new_token()?,
        port,
        prefix,
    };
    // The secret is in the link only: whoever opens it gets the cookie every request needs.
    outln!(
        "convoy dashboard: http://127.0.0.1:{port}/?token={} (s3://{}, Ctrl-C stops it)",
        app.secret,
        settings.state_bucket
    );
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    dashboard::serve(listener, app).await?;
    Ok(ExitCode::SUCCESS)
}
