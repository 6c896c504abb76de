//! What every Lambda does once per process, before its first event: logging, the SDK
//! configuration, the settings, the clients. Nothing here runs per invocation.

use std::sync::Arc;

use crate::adapters::aws::{
    self, CloudWatch, CodeDeployer, CodePipelines, EcrRegistry, EcsDeployments, EcsTasks, EventBridgeEvents,
    HttpProber, S3Store,
};
use crate::config::Config;
use crate::service::Convoy;

/// Start-up failed: the function cannot serve any event.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("no AWS region is configured (AWS_REGION)")]
    NoRegion,
    #[error("the HTTP prober cannot start: {0}")]
    Prober(String),
}

/// Logging as AWS Lambda expects it: JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`, level from
/// `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`. Each invocation's span carries its request id.
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Convoy's use cases on the real AWS adapters, configured from the environment.
pub async fn convoy_from_env() -> Result<Convoy, StartupError> {
    let sdk = aws::lambda_sdk_config().ok_or(StartupError::NoRegion)?;
    let region = sdk.region().ok_or(StartupError::NoRegion)?.to_string();
    let config = Config::from_env(&region)?;
    wire(&sdk, &config)
}

/// [`convoy_from_env`], able to look CloudTrail up (`deployment-changed`, the reconciler): only
/// these functions link the CloudTrail client.
pub async fn convoy_from_env_with_cloudtrail() -> Result<Convoy, StartupError> {
    let sdk = aws::lambda_sdk_config().ok_or(StartupError::NoRegion)?;
    let region = sdk.region().ok_or(StartupError::NoRegion)?.to_string();
    let config = Config::from_env(&region)?;
    wire_with_cloudtrail(&sdk, &config)
}

/// [`wire`], with CloudTrail's event history for finding who approved.
pub fn wire_with_cloudtrail(sdk: &aws_config::SdkConfig, config: &Config) -> Result<Convoy, StartupError> {
    let mut convoy = wire(sdk, config)?;
    convoy.api_calls = Arc::new(aws::CloudTrailHistory::new(aws_sdk_cloudtrail::Client::new(sdk)));
    Ok(convoy)
}

/// Builds the adapters from one SDK configuration (one HTTP client shared by every SDK client).
pub fn wire(sdk: &aws_config::SdkConfig, config: &Config) -> Result<Convoy, StartupError> {
    let s3 = aws::s3_client(sdk, &config.store);
    let store = Arc::new(S3Store::new(s3.clone(), &config.store.state_bucket));
    let pipelines = Arc::new(CodePipelines::new(s3, aws_sdk_codepipeline::Client::new(sdk)));
    let registry = Arc::new(EcrRegistry::new(aws_sdk_ecr::Client::new(sdk)));
    let ecs = aws_sdk_ecs::Client::new(sdk);
    let tasks = Arc::new(EcsTasks::new(ecs.clone()));
    let codedeploy = Arc::new(CodeDeployer::new(aws_sdk_codedeploy::Client::new(sdk)));
    let service_deployments = Arc::new(EcsDeployments::new(ecs));
    let prober = Arc::new(HttpProber::new().map_err(StartupError::Prober)?);
    let events = Arc::new(EventBridgeEvents::new(aws_sdk_eventbridge::Client::new(sdk), &config.event_bus));
    Ok(Convoy {
        store: store.clone(),
        waits: store.clone(),
        manifests: store.clone(),
        active: store.clone(),
        locks: store.clone(),
        deployments: store,
        registry,
        definitions: tasks.clone(),
        tasks,
        codedeploy,
        service_deployments,
        pipelines,
        prober,
        events,
        logs: Arc::new(crate::adapters::aws::CloudWatchLogs::new(aws_sdk_cloudwatchlogs::Client::new(sdk))),
        watch: Arc::new(CloudWatch::new(aws_sdk_cloudwatch::Client::new(sdk))),
        api_calls: Arc::new(aws::NoCloudTrail),
        config: config.clone(),
    })
}
