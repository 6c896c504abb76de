use async_trait::async_trait;
use aws_sdk_codepipeline::types::{PipelineExecutionStatus as Status, PipelineVariable, SourceRevisionOverride};

use crate::error::DeployError;
use crate::names::{DeploymentId, PipelineExecutionId, ReleaseKey};
use crate::ports::{DeploymentStatus, PipelineStart, Pipelines};
use crate::release::DeploymentEnd;

/// CodePipeline, and the S3 bucket its source action reads.
#[derive(Clone)]
pub struct CodePipelines {
    s3: aws_sdk_s3::Client,
    codepipeline: aws_sdk_codepipeline::Client,
}

impl CodePipelines {
    pub fn new(s3: aws_sdk_s3::Client, codepipeline: aws_sdk_codepipeline::Client) -> Self {
        Self { s3, codepipeline }
    }
}

/// Codes for requests that cannot succeed as made. `ConflictException` (the pipeline is busy) is
/// not among them: it passes.
const REJECTIONS: &[&str] = &[
    "PipelineNotFoundException",
    "PipelineExecutionNotFoundException",
    "ValidationException",
    "AccessDeniedException",
];

fn classify<E, R>(err: aws_sdk_codepipeline::error::SdkError<E, R>) -> DeployError
where
    E: aws_sdk_codepipeline::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    super::sort(err, Some(REJECTIONS), DeployError::Rejected, DeployError::Unavailable)
}

/// S3 codes that mean the source bucket cannot take the bundle until an operator acts.
const S3_REJECTIONS: &[&str] = &["NoSuchBucket", "AccessDenied", "InvalidBucketName", "InvalidRequest"];

#[async_trait]
impl Pipelines for CodePipelines {
    async fn write_bundle(
        &self,
        bucket: &str,
        key: &str,
        bundle: Vec<u8>,
        release: &ReleaseKey,
    ) -> Result<String, DeployError> {
        let written = self
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/zip")
            .metadata("convoy-release", release.to_string())
            .body(bundle.into())
            .send()
            .await
            .map_err(|err| {
                let source =
                    |refused| DeployError::Rejected(format!("the pipeline's source s3://{bucket}/{key}: {refused}"));
                super::sort(err, Some(S3_REJECTIONS), source, DeployError::Unavailable)
            })?;
        written.version_id.filter(|v| !v.is_empty() && v != "null").ok_or_else(|| {
            DeployError::Rejected(format!(
                "the pipeline's source bucket {bucket} does not keep versions: an execution could not be pinned to \
                 this release's bundle (enable versioning)"
            ))
        })
    }

    async fn start(&self, start: &PipelineStart) -> Result<PipelineExecutionId, DeployError> {
        let revision = SourceRevisionOverride::builder()
            .action_name(&start.source_action)
            .revision_type(aws_sdk_codepipeline::types::SourceRevisionType::S3ObjectVersionId)
            .revision_value(&start.source_version)
            .build()
            .map_err(|e| DeployError::Rejected(e.to_string()))?;
        let mut request = self
            .codepipeline
            .start_pipeline_execution()
            .name(&start.pipeline)
            .client_request_token(&start.token)
            .source_revisions(revision);
        for (name, value) in &start.variables {
            let variable = PipelineVariable::builder()
                .name(name)
                .value(value)
                .build()
                .map_err(|e| DeployError::Rejected(e.to_string()))?;
            request = request.variables(variable);
        }
        let output = request.send().await.map_err(classify)?;
        output
            .pipeline_execution_id
            .and_then(|id| PipelineExecutionId::new(&id).ok())
            .ok_or_else(|| DeployError::Unavailable("StartPipelineExecution returned no execution id".into()))
    }

    async fn status(&self, pipeline: &str, execution: &PipelineExecutionId) -> Result<DeploymentStatus, DeployError> {
        let output = self
            .codepipeline
            .get_pipeline_execution()
            .pipeline_name(pipeline)
            .pipeline_execution_id(execution.as_str())
            .send()
            .await
            .map_err(classify)?;
        let found = output.pipeline_execution();
        let summary = found.and_then(|e| e.status_summary()).unwrap_or_default();
        let detail = format!("pipeline {pipeline} execution {execution}{}", summary_suffix(summary));
        let end = match found.and_then(|e| e.status()) {
            Some(Status::Succeeded) => DeploymentEnd::Succeeded,
            Some(Status::Failed) => DeploymentEnd::Failed,
            Some(Status::Stopped | Status::Superseded | Status::Cancelled) => DeploymentEnd::Stopped,
            _ => return Ok(DeploymentStatus::Running),
        };
        Ok(DeploymentStatus::Ended { end, detail })
    }

    async fn deployment_of(
        &self,
        pipeline: &str,
        execution: &PipelineExecutionId,
    ) -> Result<Option<DeploymentId>, DeployError> {
        let filter = aws_sdk_codepipeline::types::ActionExecutionFilter::builder()
            .pipeline_execution_id(execution.as_str())
            .build();
        let listed = self
            .codepipeline
            .list_action_executions()
            .pipeline_name(pipeline)
            .filter(filter)
            .send()
            .await
            .map_err(classify)?;
        // The deploy action's external execution is the CodeDeploy deployment it created.
        let deployment = listed
            .action_execution_details()
            .iter()
            .filter(|detail| {
                let action = detail.input().and_then(|i| i.action_type_id());
                action.is_some_and(|a| a.category() == &aws_sdk_codepipeline::types::ActionCategory::Deploy)
            })
            .find_map(|detail| detail.output()?.execution_result()?.external_execution_id());
        Ok(deployment.and_then(|id| DeploymentId::new(id).ok()))
    }
}

fn summary_suffix(summary: &str) -> String {
    if summary.is_empty() { String::new() } else { format!(": {summary}") }
}

#[cfg(test)]
mod tests {
    use aws_sdk_codepipeline::Client;
    use aws_sdk_codepipeline::operation::get_pipeline_execution::GetPipelineExecutionOutput;
    use aws_sdk_codepipeline::operation::start_pipeline_execution::StartPipelineExecutionOutput;
    use aws_sdk_codepipeline::types::{PipelineExecution, SourceRevisionType};
    use aws_smithy_mocks::{mock, mock_client};

    use super::*;

    fn pipelines(codepipeline: Client) -> CodePipelines {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder().behavior_version(aws_sdk_s3::config::BehaviorVersion::latest()).build(),
        );
        CodePipelines::new(s3, codepipeline)
    }

    fn start() -> PipelineStart {
        PipelineStart {
            pipeline: "web-deploy".into(),
            source_action: "Bundle".into(),
            source_version: "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd".into(),
            variables: vec![("CONVOY_RELEASE".into(), "4cf03d1".into())],
            token: "0f3b6c0d2a1e4f5a9b8c7d6e5f4a3b2c".into(),
        }
    }

    #[tokio::test]
    async fn a_start_is_pinned_to_the_bundle_version_with_the_release_variable_and_token() {
        let rule = mock!(Client::start_pipeline_execution)
            .match_requests(|input| {
                let revision = &input.source_revisions()[0];
                let variable = &input.variables()[0];
                input.name() == Some("web-deploy")
                    && input.client_request_token() == Some("0f3b6c0d2a1e4f5a9b8c7d6e5f4a3b2c")
                    && input.source_revisions().len() == 1
                    && revision.action_name() == "Bundle"
                    && revision.revision_type() == &SourceRevisionType::S3ObjectVersionId
                    && revision.revision_value() == "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd"
                    && (variable.name(), variable.value()) == ("CONVOY_RELEASE", "4cf03d1")
            })
            .then_output(|| StartPipelineExecutionOutput::builder().pipeline_execution_id("e-1").build());
        let adapter = pipelines(mock_client!(aws_sdk_codepipeline, [&rule]));
        assert_eq!(adapter.start(&start()).await.unwrap().as_str(), "e-1");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_missing_pipeline_is_refused_for_good() {
        let rule = mock!(Client::start_pipeline_execution).then_error(|| {
            aws_sdk_codepipeline::operation::start_pipeline_execution::StartPipelineExecutionError::PipelineNotFoundException(
                aws_sdk_codepipeline::types::error::PipelineNotFoundException::builder()
                    .message("no web-deploy")
                    .meta(
                        aws_sdk_codepipeline::error::ErrorMetadata::builder()
                            .code("PipelineNotFoundException")
                            .message("no web-deploy")
                            .build(),
                    )
                    .build(),
            )
        });
        let adapter = pipelines(mock_client!(aws_sdk_codepipeline, [&rule]));
        let refused = adapter.start(&start()).await;
        assert!(matches!(&refused, Err(DeployError::Rejected(m)) if m.contains("no web-deploy")), "{refused:?}");
    }

    #[tokio::test]
    async fn the_deployment_of_an_execution_is_its_deploy_actions_external_execution() {
        use aws_sdk_codepipeline::operation::list_action_executions::ListActionExecutionsOutput;
        use aws_sdk_codepipeline::types::{
            ActionCategory, ActionExecutionDetail, ActionExecutionInput, ActionExecutionOutput, ActionExecutionResult,
            ActionOwner, ActionTypeId,
        };
        let action = |category: ActionCategory, provider: &str, external: &str| {
            let type_id = ActionTypeId::builder()
                .category(category)
                .owner(ActionOwner::Aws)
                .provider(provider)
                .version("1")
                .build()
                .unwrap();
            ActionExecutionDetail::builder()
                .input(ActionExecutionInput::builder().action_type_id(type_id).build())
                .output(
                    ActionExecutionOutput::builder()
                        .execution_result(ActionExecutionResult::builder().external_execution_id(external).build())
                        .build(),
                )
                .build()
        };
        let rule = mock!(Client::list_action_executions)
            .match_requests(|input| {
                input.pipeline_name() == Some("web-deploy")
                    && input.filter().and_then(|f| f.pipeline_execution_id()) == Some("e-1")
            })
            .then_output(move || {
                ListActionExecutionsOutput::builder()
                    .action_execution_details(action(ActionCategory::Source, "S3", "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd"))
                    .action_execution_details(action(ActionCategory::Deploy, "CodeDeployToECS", "d-EXAMPLE11"))
                    .build()
            });
        let adapter = pipelines(mock_client!(aws_sdk_codepipeline, [&rule]));
        let deployment = adapter.deployment_of("web-deploy", &"e-1".parse().unwrap()).await.unwrap();
        assert_eq!(deployment.as_ref().map(|d| d.as_str()), Some("d-EXAMPLE11"));
    }

    #[tokio::test]
    async fn each_ended_execution_status_maps_to_how_the_deployment_ended() {
        let cases = [
            (Status::Succeeded, Some(DeploymentEnd::Succeeded)),
            (Status::Failed, Some(DeploymentEnd::Failed)),
            (Status::Stopped, Some(DeploymentEnd::Stopped)),
            (Status::Superseded, Some(DeploymentEnd::Stopped)),
            (Status::Cancelled, Some(DeploymentEnd::Stopped)),
            (Status::InProgress, None),
            (Status::Stopping, None),
        ];
        for (status, expected) in cases {
            let answer = status.clone();
            let rule = mock!(Client::get_pipeline_execution).then_output(move || {
                GetPipelineExecutionOutput::builder()
                    .pipeline_execution(
                        PipelineExecution::builder().status(answer.clone()).status_summary("deploy failed").build(),
                    )
                    .build()
            });
            let adapter = pipelines(mock_client!(aws_sdk_codepipeline, [&rule]));
            let found = adapter.status("web-deploy", &"e-1".parse().unwrap()).await.unwrap();
            match (found, expected) {
                (DeploymentStatus::Ended { end, detail }, Some(expected)) => {
                    assert_eq!(end, expected, "{status:?}");
                    assert_eq!(detail, "pipeline web-deploy execution e-1: deploy failed");
                }
                (DeploymentStatus::Running, None) => {}
                (found, expected) => panic!("{status:?}: {found:?}, expected {expected:?}"),
            }
        }
    }
}
