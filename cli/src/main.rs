//! `convoy`: read a release record, approve or reject its traffic shift. Honours the standard AWS
//! environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials) and `CONVOY_STATE_BUCKET` /
//! `CONVOY_S3_FORCE_PATH_STYLE`.

mod dashboard;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use convoy::adapters::aws::{self, S3Store};
use convoy::config::{Config, StoreSettings};
use convoy::error::ConvoyError;
use convoy::names::{ReleaseId, ReleaseKey, ServiceName};
use convoy::ports::ReleaseStore;

#[derive(Parser)]
#[command(name = "convoy", version, about = "Read and steer Convoy's release records")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a release: its state, images and digests, migration, verification, timeline.
    Status {
        service: ServiceName,
        release: ReleaseId,
        /// Print the record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Let a verified release shift production traffic (CodeDeploy ContinueDeployment, or ECS
    /// ContinueServiceDeployment). Refused unless its verification passed.
    Approve {
        service: ServiceName,
        release: ReleaseId,
        /// Who approves (recorded); defaults to $USER.
        #[arg(long)]
        by: Option<String>,
    },
    /// Stop a release awaiting approval and roll its deployment back.
    Reject {
        service: ServiceName,
        release: ReleaseId,
        #[arg(long)]
        by: Option<String>,
    },
    /// Serve a local web UI of every release on http://127.0.0.1:<port>/ (loopback only), with
    /// approve/reject from the page. Port 0 picks a free one.
    Dashboard {
        #[arg(long, default_value_t = 3100)]
        port: u16,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("convoy: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    let settings = StoreSettings::from_env().map_err(|e| e.to_string())?;
    let sdk = aws::load_sdk_config().await;
    match cli.command {
        Command::Status { service, release, json } => {
            let store = S3Store::new(aws::s3_client(&sdk, &settings), &settings.state_bucket);
            let key = ReleaseKey::new(service, release);
            let Some(stored) = store.load(&key).await.map_err(|e| e.to_string())? else {
                eprintln!("convoy: no release {key} in s3://{}/{}", settings.state_bucket, S3Store::record_key(&key));
                return Ok(ExitCode::from(1));
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&stored.release).map_err(|e| e.to_string())?);
            } else {
                print!("{}", convoy::status::render(&stored.release));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Approve { service, release, by } => {
            decide(&sdk, settings, ReleaseKey::new(service, release), true, by).await
        }
        Command::Reject { service, release, by } => {
            decide(&sdk, settings, ReleaseKey::new(service, release), false, by).await
        }
        Command::Dashboard { port } => dashboard(&sdk, settings, port).await,
    }
}

async fn decide(
    sdk: &aws_config::SdkConfig,
    settings: StoreSettings,
    key: ReleaseKey,
    approve: bool,
    by: Option<String>,
) -> Result<ExitCode, String> {
    let region = sdk.region().map(ToString::to_string).unwrap_or_default();
    let convoy = convoy::startup::wire(sdk, &Config::for_cli(settings, &region)).map_err(|e| e.to_string())?;
    let by = by.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".into());
    match convoy.decide(&key, approve, &by, chrono::Utc::now()).await {
        Ok(report) => {
            println!("{}: {}", key, report.state);
            Ok(ExitCode::SUCCESS)
        }
        Err(ConvoyError::Refused(why)) => {
            eprintln!("convoy: refused: {why}");
            Ok(ExitCode::from(1))
        }
        Err(err) => Err(err.to_string()),
    }
}

/// `convoy dashboard`: the web UI, with the same wiring as `approve`/`reject`.
async fn dashboard(sdk: &aws_config::SdkConfig, settings: StoreSettings, port: u16) -> Result<ExitCode, String> {
    let region = sdk.region().map(ToString::to_string).unwrap_or_default();
    let convoy = convoy::startup::wire(sdk, &Config::for_cli(settings.clone(), &region)).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let app = dashboard::App {
        store: S3Store::new(aws::s3_client(sdk, &settings), &settings.state_bucket),
        s3: aws::s3_client(sdk, &settings),
        bucket: settings.state_bucket.clone(),
        convoy,
        token: dashboard::new_token()?,
        port,
        default_by: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
    };
    println!("convoy dashboard: http://127.0.0.1:{port}/ (s3://{}, Ctrl-C stops it)", settings.state_bucket);
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    dashboard::serve(listener, app).await?;
    Ok(ExitCode::SUCCESS)
}
