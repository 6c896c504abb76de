//! `convoy init <cluster> <service>`: writes a service's Convoy settings from what AWS says of it,
//! read with the caller's credentials (`init/discover.rs`), and says what the service lacks and
//! how to add it (`init/plan.rs`). The settings are a `convoy::settings::ServiceSettings`,
//! serialised: the same type the functions parse, so init follows the format wherever it goes.
//! Everything it prints passes the CLI's output filter (`output.rs`).

mod discover;
mod iam;
mod plan;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use convoy::names::ServiceName;

use crate::exit;
use plan::Choices;

#[derive(clap::Args)]
pub struct Args {
    /// The ECS cluster (name or ARN).
    cluster: String,
    /// The ECS service.
    service: ServiceName,
    /// The verify function (name or ARN): this stack's "<stack name>-verify". For ECS native,
    /// by default the function of the service's POST_TEST_TRAFFIC_SHIFT hook.
    #[arg(long)]
    verify_function: Option<String>,
    /// The host name the verify function reaches the test listener by, instead of the load
    /// balancer's DNS name (an alias record; for HTTPS, a name its certificate covers).
    #[arg(long)]
    test_listener_host: Option<String>,
    /// Look for the service's CodeDeploy deployment group in this application only (by default,
    /// in every application you may list).
    #[arg(long)]
    application: Option<String>,
    /// Write the settings to this file instead of standard output (never over an existing file
    /// without --force).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace the --out file if it exists.
    #[arg(long, requires = "out")]
    force: bool,
}

pub async fn run(args: Args, sdk: &aws_config::SdkConfig) -> Result<ExitCode, String> {
    let choices = Choices { verify_function: args.verify_function, test_listener_host: args.test_listener_host };
    let clients = discover::Clients::new(sdk);
    let service = args.service.to_string();
    let found = discover::discover(&clients, &args.cluster, &service, args.application.as_deref(), &choices).await?;
    let plan = plan::plan(&found, &choices);
    for note in &plan.notes {
        say(&format!("convoy init: {note}"));
    }
    if let Some(settings) = &plan.settings {
        // The object CONVOY_SERVICE_SETTINGS holds: one entry per service.
        let object = serde_json::json!({ &service: settings });
        // Through the CLI's output filter: names from AWS reach the file and the terminal escaped.
        let text = format!("{}\n", crate::output::json_pretty(&object));
        match &args.out {
            None => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).map_err(|e| e.to_string())?;
            }
            Some(path) => {
                write_file(path, &text, args.force)?;
                say(&format!("convoy init: wrote the settings of {service} to {}", path.display()));
            }
        }
    }
    if plan.missing.is_empty() {
        say(&format!("convoy init: {service} has what Convoy needs; review the settings (probe, approval) before use"));
        return Ok(ExitCode::SUCCESS);
    }
    if plan.settings.is_none() {
        say(&format!(
            "convoy init: no settings written for {service}: add what is missing, then run convoy init again"
        ));
    }
    for gap in &plan.missing {
        say(&format!("missing: {}\n  how: {}", gap.what, gap.how));
    }
    Ok(ExitCode::from(exit::REFUSED))
}

fn write_file(path: &std::path::Path, text: &str, force: bool) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => format!("{} exists: pass --force to replace it", path.display()),
        _ => format!("writing {}: {e}", path.display()),
    })?;
    file.write_all(text.as_bytes()).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// One line (or several) to standard error, through the CLI's output filter (names from AWS).
fn say(text: &str) {
    errln!("{text}");
}
