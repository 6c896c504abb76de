//! `convoy logs`: the migration's log lines, read from CloudWatch Logs (GetLogEvents) on the
//! stream its record names.

use std::process::ExitCode;

use convoy::adapters::aws::{CloudWatchLogs, S3Store};
use convoy::error::LogsError;
use convoy::names::{ReleaseId, ReleaseKey, ServiceName};
use convoy::ports::ReleaseStore;
use serde_json::json;

use crate::exit;

#[derive(clap::Args)]
// Its help after the options: `help.rs`.
pub struct Args {
    service: ServiceName,
    release: ReleaseId,
    /// One JSON object per line: {"line": ...}.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args, sdk: &aws_config::SdkConfig, store: &S3Store) -> Result<ExitCode, String> {
    let key = ReleaseKey::new(args.service, args.release);
    let Some(stored) = store.load(&key).await.map_err(|e| e.to_string())? else {
        errln!("convoy: no release {key}");
        return Ok(ExitCode::from(exit::NO_SUCH_RELEASE));
    };
    let Some(log) = stored.release.migration.as_ref().and_then(|m| m.log.clone()) else {
        errln!("convoy: release {key} has no migration log (no migration ran, or its task never started)");
        return Ok(ExitCode::from(exit::REFUSED));
    };
    if !args.json {
        errln!("{} {}", log.group, log.stream);
    }
    let logs = CloudWatchLogs::new(aws_sdk_cloudwatchlogs::Client::new(sdk));
    let printed = logs
        .all_lines(&log, |lines| {
            for line in lines {
                if args.json {
                    outln!("{}", crate::output::json(&json!({ "line": line })));
                } else {
                    outln!("{}", line.trim_end());
                }
            }
        })
        .await;
    match printed {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(LogsError::NotFound(what)) => {
            errln!("convoy: the log stream {what} does not exist (the container wrote nothing, or it expired)");
            Ok(ExitCode::from(exit::REFUSED))
        }
        Err(err) => Err(err.to_string()),
    }
}
