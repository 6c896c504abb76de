//! CloudWatch Logs: the migration's log streams.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::error::LogsError;

/// Log streams by (group, stream): what a migration container wrote.
#[derive(Default)]
pub struct MemoryLogs {
    streams: Mutex<HashMap<(String, String), Vec<String>>>,
    /// When set, every read fails as CloudWatch Logs would in an outage.
    pub unavailable: std::sync::atomic::AtomicBool,
}

impl MemoryLogs {
    /// Appends lines to a stream (creating it).
    pub fn write(&self, group: &str, stream: &str, lines: &[&str]) {
        let mut streams = lock(&self.streams);
        let entry = streams.entry((group.to_owned(), stream.to_owned())).or_default();
        entry.extend(lines.iter().map(|l| (*l).to_owned()));
    }
}

#[async_trait]
impl crate::ports::MigrationLogs for MemoryLogs {
    async fn last_lines(&self, log: &crate::release::LogPointer, limit: usize) -> Result<Vec<String>, LogsError> {
        if self.unavailable.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(LogsError::Unavailable("the fake is told to be down".into()));
        }
        let streams = lock(&self.streams);
        let lines = streams
            .get(&(log.group.clone(), log.stream.clone()))
            .ok_or_else(|| LogsError::NotFound(format!("{} {}", log.group, log.stream)))?;
        Ok(lines[lines.len().saturating_sub(limit)..].to_vec())
    }
}
