use async_trait::async_trait;

use crate::error::LogsError;
use crate::ports::MigrationLogs;
use crate::release::LogPointer;

/// CloudWatch Logs, read with `GetLogEvents` on the stream the migration task recorded.
#[derive(Clone)]
pub struct CloudWatchLogs {
    client: aws_sdk_cloudwatchlogs::Client,
}

/// GetLogEvents returns at most 10,000 events per call.
const PAGE: i32 = 10_000;

impl CloudWatchLogs {
    pub fn new(client: aws_sdk_cloudwatchlogs::Client) -> Self {
        Self { client }
    }

    /// Every line of the stream from its start, oldest first, page by page (for `convoy logs`);
    /// `each` gets every page as it arrives.
    pub async fn all_lines(&self, log: &LogPointer, mut each: impl FnMut(Vec<String>)) -> Result<(), LogsError> {
        let mut token: Option<String> = None;
        loop {
            let output = self
                .client
                .get_log_events()
                .log_group_name(&log.group)
                .log_stream_name(&log.stream)
                .start_from_head(true)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|err| sort(err, log))?;
            let lines: Vec<String> = output.events().iter().filter_map(|e| e.message().map(str::to_owned)).collect();
            let done = lines.is_empty() || output.next_forward_token.is_none() || output.next_forward_token == token;
            each(lines);
            if done {
                return Ok(());
            }
            token = output.next_forward_token;
        }
    }
}

fn sort<R: std::fmt::Debug + Send + Sync + 'static>(
    err: aws_sdk_cloudwatchlogs::error::SdkError<
        aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsError,
        R,
    >,
    log: &LogPointer,
) -> LogsError {
    match err.as_service_error() {
        Some(e) if e.is_resource_not_found_exception() => LogsError::NotFound(format!("{} {}", log.group, log.stream)),
        _ => LogsError::Unavailable(super::cause(err)),
    }
}

#[async_trait]
impl MigrationLogs for CloudWatchLogs {
    async fn last_lines(&self, log: &LogPointer, limit: usize) -> Result<Vec<String>, LogsError> {
        // Without start_from_head, GetLogEvents answers the newest events, oldest first.
        let output = self
            .client
            .get_log_events()
            .log_group_name(&log.group)
            .log_stream_name(&log.stream)
            .start_from_head(false)
            .limit(i32::try_from(limit).unwrap_or(PAGE).clamp(1, PAGE))
            .send()
            .await
            .map_err(|err| sort(err, log))?;
        Ok(output.events().iter().filter_map(|e| e.message().map(str::to_owned)).collect())
    }
}
