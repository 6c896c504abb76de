//! What every Lambda does once per process, before its first event: logging, the SDK
//! configuration, the settings, the clients. Nothing here runs per invocation.

use std::sync::Arc;

use crate::adapters::aws::{
    self, CloudWatch, CodeDeployer, CodePipelines, EcrRegistry, EcsDeployments, EcsTasks, EventBridgeEvents,
    EventBridgeSchedules, HttpProber, S3Store,
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
    /// The settings file the stack names cannot be read: retrying at the next start may help
    /// when S3 was unavailable, not when the version does not exist or access is denied.
    #[error("reading the settings s3://{bucket}/{key} version {version}: {}", unreadable(.source))]
    SettingsUnreadable {
        bucket: String,
        key: &'static str,
        version: String,
        #[source]
        source: crate::error::ReadError,
    },
    /// The settings file the stack names is refused (every problem, by service or group).
    #[error("the settings s3://{bucket}/{key} version {version} are refused:\n{problems}")]
    SettingsRefused { bucket: String, key: &'static str, version: String, problems: crate::settings_file::Problems },
}

fn unreadable(source: &crate::error::ReadError) -> String {
    match source {
        crate::error::ReadError::NotFound => {
            "no such object or version (the version is the one `convoy settings publish` printed)".into()
        }
        other => other.to_string(),
    }
}

/// Logging as AWS Lambda expects it: JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`, level from
/// `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`. Each invocation's span carries its request id.
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Convoy's use cases on the real AWS adapters, configured from the environment.
pub async fn convoy_from_env() -> Result<Convoy, StartupError> {
    let sdk = aws::lambda_sdk_config().ok_or(StartupError::NoRegion)?;
    let config = config_from_env(&sdk).await?;
    wire(&sdk, &config)
}

/// [`convoy_from_env`], able to look CloudTrail up (`deployment-changed`, the reconciler): only
/// these functions link the CloudTrail client.
pub async fn convoy_from_env_with_cloudtrail() -> Result<Convoy, StartupError> {
    let sdk = aws::lambda_sdk_config().ok_or(StartupError::NoRegion)?;
    let config = config_from_env(&sdk).await?;
    wire_with_cloudtrail(&sdk, &config)
}

/// The configuration from the environment, with the settings file the stack names read in.
pub async fn config_from_env(sdk: &aws_config::SdkConfig) -> Result<Config, StartupError> {
    let region = sdk.region().ok_or(StartupError::NoRegion)?.to_string();
    let mut config = Config::from_env(&region)?;
    read_published_settings(sdk, &mut config).await?;
    Ok(config)
}

/// With `CONVOY_SETTINGS_VERSION` set: reads that version of the settings file from the state
/// bucket (one `GetObject`, once per process: a new version reaches the functions by a stack
/// update, which starts new processes) and checks it as `convoy check --settings` does.
pub async fn read_published_settings(sdk: &aws_config::SdkConfig, config: &mut Config) -> Result<(), StartupError> {
    use crate::ports::{ManifestReader, ObjectRef};
    use crate::settings_file::{self, MAX_SETTINGS_BYTES, SETTINGS_KEY, SettingsVersion};
    let Some(version) = config.settings_object_version.clone() else {
        return Ok(());
    };
    let bucket = config.store.state_bucket.clone();
    let store = S3Store::new(aws::s3_client(sdk, &config.store), &bucket);
    let object = ObjectRef { bucket: bucket.clone(), key: SETTINGS_KEY.into(), version_id: Some(version.clone()) };
    let fetched = match store.read(&object, MAX_SETTINGS_BYTES).await {
        Ok(fetched) => fetched,
        Err(source) => return Err(StartupError::SettingsUnreadable { bucket, key: SETTINGS_KEY, version, source }),
    };
    let settings = match settings_file::parse(&fetched.bytes) {
        Ok(settings) => settings,
        Err(problems) => return Err(StartupError::SettingsRefused { bucket, key: SETTINGS_KEY, version, problems }),
    };
    config.services = settings.services;
    config.release_groups = settings.release_groups;
    let source = format!("s3://{bucket}/{SETTINGS_KEY}");
    config.settings_version = Some(SettingsVersion::of(source, fetched.version_id.or(Some(version)), &fetched.bytes));
    Ok(())
}

/// [`wire`], with CloudTrail's event history for finding who approved, and the trail's log files
/// for finding who submitted (with `CONVOY_MANIFEST_TRAIL`).
pub fn wire_with_cloudtrail(sdk: &aws_config::SdkConfig, config: &Config) -> Result<Convoy, StartupError> {
    let mut convoy = wire(sdk, config)?;
    let cloudtrail = aws_sdk_cloudtrail::Client::new(sdk);
    convoy.api_calls = Arc::new(aws::CloudTrailHistory::new(cloudtrail.clone()));
    if config.manifest_trail.is_some() {
        let account = config.policy.account.as_ref().map(ToString::to_string).unwrap_or_default();
        let s3 = aws::s3_client(sdk, &config.store);
        convoy.upload_trail = Arc::new(aws::TrailLogFiles::new(cloudtrail, s3, &account, &config.policy.region));
    }
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
    let eventbridge = aws_sdk_eventbridge::Client::new(sdk);
    let scheduled_tasks = Arc::new(EventBridgeSchedules::new(aws_sdk_scheduler::Client::new(sdk), eventbridge.clone()));
    let events = Arc::new(EventBridgeEvents::new(eventbridge, &config.event_bus));
    Ok(Convoy {
        store: store.clone(),
        waits: store.clone(),
        manifests: store.clone(),
        active: store.clone(),
        locks: store.clone(),
        records: store.clone(),
        deployments: store,
        image_checks: registry.clone(),
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
        scheduled_tasks,
        upload_trail: Arc::new(aws::NoUploadTrail),
        config: config.clone(),
    })
}
