//! `convoy settings publish FILE` and `convoy settings schema`: the settings file's way to the
//! functions. Publishing checks the file as the functions will (the same parse), writes it as a
//! new version of `settings/convoy.json` in the state bucket with the caller's credentials (the
//! bucket policy lets only the settings publishers write there), and prints the version the
//! stack's `SettingsVersion` parameter must name: the functions read exactly that version at
//! start, so a stack update is what moves every function to it at once.

use std::path::PathBuf;
use std::process::ExitCode;

use convoy::adapters::aws::{self, S3Store};
use convoy::config::StoreSettings;
use convoy::settings_file::{self, SETTINGS_KEY};

use crate::exit;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check a settings file, then write it as a new version of settings/convoy.json in the
    /// state bucket (CONVOY_STATE_BUCKET) and print the version the stack must name.
    #[command(after_help = crate::help::SETTINGS_PUBLISH)]
    Publish {
        file: PathBuf,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the settings file's JSON Schema (for editors: name it in the file's "$schema").
    #[command(after_help = crate::help::SETTINGS_SCHEMA)]
    Schema,
}

pub async fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Schema => {
            out!("{}", settings_file::schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::Publish { file, json } => publish(&file, json).await,
    }
}

async fn publish(path: &std::path::Path, json: bool) -> Result<ExitCode, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let settings = match settings_file::parse(&bytes) {
        Ok(settings) => settings,
        Err(problems) => {
            for line in problems.lines() {
                errln!("{}: {line}", path.display());
            }
            errln!("{}: not published", path.display());
            return Ok(ExitCode::from(exit::REFUSED));
        }
    };
    let store_settings = StoreSettings::from_env().map_err(|e| e.to_string())?;
    let sdk = aws::load_sdk_config().await;
    let store = S3Store::new(aws::s3_client(&sdk, &store_settings), &store_settings.state_bucket);
    let sha256 = settings_file::sha256_hex(&bytes);
    let object = format!("s3://{}/{SETTINGS_KEY}", store_settings.state_bucket);
    let Some(version) = store.put_settings(bytes).await.map_err(|e| e.to_string())? else {
        return Err(format!("{object} was written without a version: the state bucket must keep versions"));
    };
    if json {
        outln!(
            "{}",
            crate::output::json(&serde_json::json!({
                "object": object, "version_id": version, "sha256": sha256, "services": settings.services.len(),
                "release_groups": settings.release_groups.len()
            }))
        );
    } else {
        outln!(
            "published {object} version {version} (sha256 {sha256}; {} services, {} release groups)",
            settings.services.len(),
            settings.release_groups.len()
        );
        outln!("the functions read it once the stack names it: set the parameter SettingsVersion={version} and deploy");
    }
    Ok(ExitCode::SUCCESS)
}
