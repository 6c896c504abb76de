//! Errors that cross the ports, and the one question a handler asks of them: can a retry help?
//! The answer also names the invocation's error type for Lambda ([`Diagnostic`]).

use std::sync::Arc;

use lambda_runtime::Diagnostic;

use crate::names::ReleaseKey;
use crate::release::TransitionError;

/// Why a call could not be made: a line for logs and people, and the failure that caused it when
/// there is one (the SDK's error, a body that did not parse), kept typed as the error's `source`.
#[derive(Debug, Clone)]
pub struct Cause {
    what: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Cause {
    /// `what` happened, caused by `source`.
    pub fn caused_by(what: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self { what: what.into(), source: Some(Arc::new(source)) }
    }

    pub fn as_str(&self) -> &str {
        &self.what
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// Two causes are the same when they say the same (the source is evidence, not identity).
impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.what == other.what
    }
}

impl Eq for Cause {}

impl From<String> for Cause {
    fn from(what: String) -> Self {
        Self { what, source: None }
    }
}

impl From<&str> for Cause {
    fn from(what: &str) -> Self {
        what.to_owned().into()
    }
}

/// The release store's failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("a record already exists under that key")]
    AlreadyExists,
    #[error("the record changed since it was read")]
    Conflict,
    #[error("the stored record {key} cannot be read: {detail}")]
    Corrupt {
        key: String,
        #[source]
        detail: Cause,
    },
    #[error("the release store is unavailable: {0}")]
    Unavailable(#[source] Cause),
}

/// Reading the manifest object failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("the manifest object is gone (deleted, or that version no longer exists)")]
    NotFound,
    #[error("the manifest is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: u64, limit: usize },
    #[error("S3 is unavailable: {0}")]
    Unavailable(#[source] Cause),
}

/// Reading a migration's log failed. Copying its last lines is best effort: this is logged,
/// never retried at the cost of the event that ended the migration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogsError {
    #[error("the log stream {0} does not exist (the container wrote nothing, or it expired)")]
    NotFound(String),
    #[error("CloudWatch Logs is unavailable: {0}")]
    Unavailable(#[source] Cause),
}

/// Looking images up in ECR failed (an image that is not there yet is not a failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("ECR is unavailable: {0}")]
    Unavailable(#[source] Cause),
}

/// ECS failed, or refused what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TasksError {
    /// ECS refused the request for a reason a retry cannot change (no such service, a container
    /// the task definition lacks, an invalid parameter): the release's input or setup is wrong.
    #[error("{0}")]
    Rejected(String),
    #[error("ECS is unavailable: {0}")]
    Unavailable(#[source] Cause),
}

/// CodeDeploy (or ECS's deployment API) failed, or refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    /// Refused for good (no such application, group or deployment, an invalid revision, a
    /// deployment that already ended).
    #[error("{0}")]
    Rejected(String),
    /// Refused because the deployment is not at the step the call needs yet (a continue before
    /// CodeDeploy waits for it): the same call succeeds later, so it is worth a retry.
    #[error("the deployment is not ready for this yet: {0}")]
    NotYet(String),
    #[error("the deployment service is unavailable: {0}")]
    Unavailable(#[source] Cause),
}

/// CloudWatch failed, or refused a query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// Refused for good (an invalid query or expression, a statistic CloudWatch does not know).
    #[error("CloudWatch refused the query: {0}")]
    Rejected(String),
    #[error("CloudWatch is unavailable: {0}")]
    Unavailable(#[source] Cause),
}

/// CloudTrail's event history could not be read (throttled past the adapter's retries, or down).
/// A look-up is retried later: the attribution stays pending meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrailError {
    #[error("CloudTrail LookupEvents is throttled (2 requests per second per account and region): {0}")]
    Throttled(#[source] Cause),
    #[error("CloudTrail is unavailable: {0}")]
    Unavailable(#[source] Cause),
}

/// EventBridge Scheduler or EventBridge failed, or refused, finding or pointing a scheduled task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The schedule, rule or target is gone (deleted since it was found, or never there).
    #[error("{0} does not exist")]
    NotFound(String),
    /// Refused for good (an invalid field, access denied, a rule another service manages).
    #[error("{0}")]
    Rejected(String),
    /// Unreachable, throttled, or a concurrent change (`ConflictException`,
    /// `ConcurrentModificationException`): the same call may succeed later.
    #[error("EventBridge (Scheduler) is unavailable: {0}")]
    Unavailable(#[source] Cause),
}

/// Everything a Convoy use case can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ConvoyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Tasks(#[from] TasksError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error(transparent)]
    Trail(#[from] TrailError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// A person asked for something the release's state does not allow.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("the event is not one this function reads: {0}")]
    BadEvent(String),
    #[error("release {0}: the record kept changing under {1} attempts to update it")]
    Contention(ReleaseKey, u32),
}

impl ConvoyError {
    /// Whether delivering the same event again can succeed. Handlers fail the invocation (so AWS
    /// retries, then dead-letters) only when it can; anything else is logged and acknowledged.
    pub fn is_retryable(&self) -> bool {
        match self {
            ConvoyError::Store(StoreError::Unavailable(_) | StoreError::Conflict) => true,
            ConvoyError::Store(StoreError::AlreadyExists | StoreError::Corrupt { .. }) => false,
            ConvoyError::Read(ReadError::Unavailable(_)) => true,
            ConvoyError::Read(ReadError::NotFound | ReadError::TooLarge { .. }) => false,
            ConvoyError::Registry(RegistryError::Unavailable(_)) => true,
            ConvoyError::Tasks(TasksError::Unavailable(_)) => true,
            ConvoyError::Tasks(TasksError::Rejected(_)) => false,
            ConvoyError::Deploy(DeployError::Unavailable(_) | DeployError::NotYet(_)) => true,
            ConvoyError::Deploy(DeployError::Rejected(_)) | ConvoyError::Refused(_) => false,
            ConvoyError::Watch(WatchError::Unavailable(_)) => true,
            ConvoyError::Watch(WatchError::Rejected(_)) => false,
            ConvoyError::Trail(_) => true,
            ConvoyError::Schedule(ScheduleError::Unavailable(_)) => true,
            ConvoyError::Schedule(ScheduleError::NotFound(_) | ScheduleError::Rejected(_)) => false,
            ConvoyError::Transition(_) | ConvoyError::BadEvent(_) => false,
            ConvoyError::Contention(..) => true,
        }
    }
}

/// The invocation's error as Lambda records it (its `errorType`): whether a retry can help is
/// said once, here. Handlers fail an invocation only for a retryable error; the other kind is
/// acknowledged, and named so wherever it is reported.
impl From<ConvoyError> for Diagnostic {
    fn from(err: ConvoyError) -> Self {
        let error_type = if err.is_retryable() { "Convoy.Retryable" } else { "Convoy.NotRetryable" };
        Diagnostic { error_type: error_type.into(), error_message: err.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_store_is_worth_a_retry() {
        assert!(ConvoyError::from(StoreError::Unavailable("timeout".into())).is_retryable());
    }

    #[test]
    fn a_bad_event_is_not_worth_a_retry() {
        assert!(!ConvoyError::BadEvent("no detail".into()).is_retryable());
    }

    #[test]
    fn a_corrupt_record_is_not_worth_a_retry() {
        let err = StoreError::Corrupt { key: "state/a/b.json".into(), detail: "EOF".into() };
        assert!(!ConvoyError::from(err).is_retryable());
    }

    #[test]
    fn an_unavailable_service_keeps_its_cause_as_the_source() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
        let err = ConvoyError::from(StoreError::Unavailable(Cause::caused_by("GetObject state/web/r1.json", io)));
        // `Store` is transparent: the store error's source is the convoy error's.
        let cause = std::error::Error::source(&err).expect("the cause");
        assert_eq!(cause.to_string(), "GetObject state/web/r1.json");
        let io = cause.source().and_then(|e| e.downcast_ref::<std::io::Error>()).expect("the io error, typed");
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    }

    #[test]
    fn lambda_is_told_whether_a_retry_can_help() {
        let retryable = Diagnostic::from(ConvoyError::from(DeployError::Unavailable("throttled".into())));
        assert_eq!(retryable.error_type, "Convoy.Retryable");
        let refused = Diagnostic::from(ConvoyError::BadEvent("no detail".into()));
        assert_eq!(refused.error_type, "Convoy.NotRetryable");
        assert_eq!(refused.error_message, "the event is not one this function reads: no detail");
    }
}
