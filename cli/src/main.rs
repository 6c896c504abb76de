//! `convoy`: read a release record. Honours the standard AWS environment (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`, credentials) and `CONVOY_STATE_BUCKET` / `CONVOY_S3_FORCE_PATH_STYLE`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use convoy::adapters::aws::{self, S3Store};
use convoy::config::StoreSettings;
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
    /// Show a release: its state, each image with tag and digest, and its timeline.
    Status {
        service: ServiceName,
        release: ReleaseId,
        /// Print the record as JSON.
        #[arg(long)]
        json: bool,
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
    let store = S3Store::new(aws::s3_client(&sdk, &settings), &settings.state_bucket);
    match cli.command {
        Command::Status { service, release, json } => {
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
    }
}
