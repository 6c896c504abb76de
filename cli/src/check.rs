//! `convoy check`: every service's settings checked as the functions and a release's start would
//! check them. With `--settings FILE`, that file: first offline (the parse and checks the
//! functions run at start, every problem by service or release group), then against AWS with
//! the caller's credentials (`Convoy::check_services`: the CodeDeploy group waits for a person,
//! the ECS native service has its hooks). Without it, the functions' own settings (their
//! `CONVOY_*` environment, and the settings file version it names).

use std::path::PathBuf;
use std::process::ExitCode;

use convoy::config::{Config, StoreSettings};
use convoy::error::ConvoyError;

use crate::exit;

#[derive(clap::Args)]
pub struct Args {
    /// A settings file to check, as the functions will read it once published (instead of the
    /// settings the functions' environment names).
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// Check the file only, without asking AWS.
    #[arg(long, requires = "settings")]
    offline: bool,
    /// The services' ECS cluster, for ECS native services (default: CONVOY_CLUSTER).
    #[arg(long, env = "CONVOY_CLUSTER")]
    cluster: Option<String>,
}

pub async fn run(args: Args) -> Result<ExitCode, String> {
    let Some(path) = &args.settings else {
        let sdk = convoy::adapters::aws::load_sdk_config().await;
        let config = convoy::startup::config_from_env(&sdk).await.map_err(|e| e.to_string())?;
        return against_aws(&sdk, &config).await;
    };
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let settings = match convoy::settings_file::parse(&bytes) {
        Ok(settings) => settings,
        Err(problems) => {
            for line in problems.lines() {
                errln!("{}: {line}", path.display());
            }
            errln!("{}: {} problem(s); nothing was asked of AWS", path.display(), problems.0.len());
            return Ok(ExitCode::from(exit::REFUSED));
        }
    };
    outln!(
        "{}: valid: {} services, {} release groups, sha256 {}",
        path.display(),
        settings.services.len(),
        settings.release_groups.len(),
        convoy::settings_file::sha256_hex(&bytes)
    );
    if args.offline {
        return Ok(ExitCode::SUCCESS);
    }
    let sdk = convoy::adapters::aws::load_sdk_config().await;
    let region = sdk.region().map(ToString::to_string).unwrap_or_default();
    // The checks read ECS and CodeDeploy only: no state bucket is needed.
    let store =
        StoreSettings::from_env().unwrap_or(StoreSettings { state_bucket: String::new(), force_path_style: false });
    let mut config = Config::for_cli(store, &region);
    let native = settings.services.values().any(|s| matches!(s.deploy, convoy::settings::DeployTarget::EcsNative(_)));
    config.cluster = match args.cluster.filter(|c| !c.trim().is_empty()) {
        Some(cluster) => cluster,
        None if native => return Err("ECS native services are checked in their cluster: pass --cluster".into()),
        None => String::new(),
    };
    config.services = settings.services;
    config.release_groups = settings.release_groups;
    against_aws(&sdk, &config).await
}

/// Each service's checks against AWS, one line per service.
async fn against_aws(sdk: &aws_config::SdkConfig, config: &Config) -> Result<ExitCode, String> {
    let convoy = convoy::startup::wire(sdk, config).map_err(|e| e.to_string())?;
    match convoy.check_services().await {
        Ok(checked) => {
            for (service, gate) in checked {
                outln!("{service}: ready; {gate}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ConvoyError::Refused(missing)) => {
            errln!("{missing}");
            Ok(ExitCode::from(exit::REFUSED))
        }
        Err(err) => Err(err.to_string()),
    }
}
