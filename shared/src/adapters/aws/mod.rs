//! The real adapters, over the official aws-sdk crates. They translate SDK errors into the ports'
//! errors; nothing else leaves this module.

mod cloudtrail;
mod cloudwatch;
mod codedeploy;
mod codepipeline;
mod ecr;
mod ecs;
mod ecs_native;
mod eventbridge;
mod logs;
mod prober;
mod s3;
mod scheduled;
mod upload_trail;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
pub use cloudtrail::{CloudTrailHistory, NoCloudTrail};
pub use cloudwatch::CloudWatch;
pub use codedeploy::{CodeDeployer, app_spec};
pub use codepipeline::CodePipelines;
pub use ecr::EcrRegistry;
pub use ecs::EcsTasks;
pub use ecs_native::EcsDeployments;
pub use eventbridge::EventBridgeEvents;
pub use logs::CloudWatchLogs;
pub use prober::HttpProber;
pub use s3::S3Store;
pub use scheduled::{DEFAULT_BUS, EventBridgeSchedules};
pub use upload_trail::{NoUploadTrail, TrailLogFiles};

use crate::config::StoreSettings;
use crate::error::Cause;

/// Loads the SDK configuration once per process: the standard chain (environment, including
/// `AWS_ENDPOINT_URL`, profiles, SSO, web identity, IMDS). For the CLI and the tests, which run
/// with a person's or a test's credentials; the Lambdas use [`lambda_sdk_config`].
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
}

/// The SDK configuration of a Lambda: Lambda puts the region and the role's credentials in the
/// environment (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`),
/// so only the environment is read, plus `AWS_ENDPOINT_URL` (the sandbox and the tests point the
/// real binaries at moto with it). The standard chain's other sources (profile files, SSO, web
/// identity through STS, ECS and IMDS credentials) can never answer in Lambda, and linking them
/// costs every zip (issue 6's 4 MB budget). HTTP client, retries, timeouts, sleep and clock are
/// the SDK clients' own defaults for this behaviour version, as with the standard chain.
/// Service-specific endpoint variables (`AWS_ENDPOINT_URL_S3`, ...) are not read.
pub fn lambda_sdk_config() -> Option<aws_config::SdkConfig> {
    let variable = |name: &str| std::env::var(name).ok().filter(|value| !value.trim().is_empty());
    let region = variable("AWS_REGION").or_else(|| variable("AWS_DEFAULT_REGION"))?;
    let credentials = aws_config::environment::EnvironmentVariableCredentialsProvider::new();
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(credentials));
    if let Some(endpoint) = variable("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(endpoint);
    }
    Some(builder.build())
}

/// The S3 client for Convoy's state bucket, with path-style addressing when the operator asks.
pub fn s3_client(sdk: &aws_config::SdkConfig, settings: &StoreSettings) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(settings.force_path_style).build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The HTTP status and error code of a failed call, where the service answered.
fn status_and_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> (Option<u16>, Option<String>)
where
    R: HasStatus,
{
    let status = err.raw_response().map(HasStatus::status);
    (status, err.code().map(str::to_owned))
}

trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

/// `"<code>: <message>"` when the service refused the request with one of `codes` (any code when
/// `codes` is `None`): a refusal no retry changes. `None` when it did not answer, or answered
/// otherwise, which is worth a retry.
fn refusal<E, R>(err: &SdkError<E, R>, codes: Option<&[&str]>) -> Option<String>
where
    E: ProvideErrorMetadata,
{
    let service_error = err.as_service_error()?;
    let code = service_error.code().filter(|code| codes.is_none_or(|codes| codes.contains(code)))?;
    Some(format!("{code}: {}", service_error.message().unwrap_or("no message")))
}

/// Sorts a failed call: `rejected` with the refusal when the service refused it with one of
/// `codes` (see [`refusal`]), `unavailable` with its description and the SDK's error as the
/// cause when a retry may help.
fn sort<E, R, T>(
    err: SdkError<E, R>,
    codes: Option<&[&str]>,
    rejected: impl FnOnce(String) -> T,
    unavailable: impl FnOnce(Cause) -> T,
) -> T
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match refusal(&err, codes) {
        Some(refused) => rejected(refused),
        None => unavailable(cause(err)),
    }
}

/// An SDK error as the cause of an outage: its description with its causes, and the error itself.
fn cause<E, R>(err: SdkError<E, R>) -> Cause
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    Cause::caused_by(describe(&err), err)
}

/// A one-line description of an SDK error with its causes, for logs and retryable errors.
fn describe<E: std::error::Error + 'static, R: std::fmt::Debug>(err: &SdkError<E, R>) -> String {
    aws_sdk_s3::error::DisplayErrorContext(err).to_string()
}
