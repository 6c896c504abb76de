//! What CodePipeline does with Convoy's bundle, played by the harness because moto runs no
//! pipeline actions (its executions are "Succeeded" at once): the `CodeDeployToECS` action reads
//! the source revision, registers `taskdef.json` as written, puts the new revision's ARN in place
//! of the AppSpec's `<TASK_DEFINITION>` and creates the CodeDeploy deployment, whose hooks then
//! call the verify function.

use convoy::bundle::{Bundle, TASK_DEFINITION_PLACEHOLDER};
use convoy::release::Release;
use serde_json::Value;

use crate::moto::Moto;
use crate::world::{PipelineWorld, World};

/// The bundle version `record` names, read from the source bucket, and the release its object
/// metadata names.
pub async fn recorded_bundle(world: &World, pipeline: &PipelineWorld, record: &Release) -> (Bundle, String) {
    let run = record.deployment.as_ref().and_then(|d| d.pipeline.as_ref()).expect("a pipeline run");
    assert_eq!(run.bundle, format!("s3://{}/{}", pipeline.bucket, pipeline.key));
    let object = world
        .s3
        .get_object()
        .bucket(&pipeline.bucket)
        .key(&pipeline.key)
        .version_id(&run.version)
        .send()
        .await
        .expect("the recorded bundle version exists");
    let release = object.metadata().and_then(|m| m.get("convoy-release")).cloned().unwrap_or_default();
    let bytes = object.body.collect().await.expect("bundle body").into_bytes();
    (Bundle::from_zip(&bytes).expect("a bundle the pipeline can read"), release)
}

/// The `CodeDeployToECS` action on `bundle`: returns the deployment it created and the task
/// definition revision it registered.
pub async fn play_deploy_action(world: &World, application: &str, group: &str, bundle: &Bundle) -> (String, String) {
    let (status, body) = Moto::shared().raw_call(
        "ecs",
        Some("AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition"),
        "application/x-amz-json-1.1",
        &bundle.task_definition.to_string(),
    );
    assert_eq!(status, 200, "ECS registers taskdef.json as written: {body}");
    let registered: Value = serde_json::from_str(&body).expect("RegisterTaskDefinition answers JSON");
    let arn = registered["taskDefinition"]["taskDefinitionArn"].as_str().expect("an ARN").to_owned();
    assert!(bundle.app_spec.contains(TASK_DEFINITION_PLACEHOLDER), "the AppSpec names the placeholder");
    let app_spec = bundle.app_spec.replace(TASK_DEFINITION_PLACEHOLDER, &arn);
    let revision = aws_sdk_codedeploy::types::RevisionLocation::builder()
        .revision_type(aws_sdk_codedeploy::types::RevisionLocationType::AppSpecContent)
        .app_spec_content(aws_sdk_codedeploy::types::AppSpecContent::builder().content(app_spec).build())
        .build();
    let created = aws_sdk_codedeploy::Client::new(&world.sdk)
        .create_deployment()
        .application_name(application)
        .deployment_group_name(group)
        .revision(revision)
        .send()
        .await
        .expect("the pipeline's deployment");
    (created.deployment_id.expect("a deployment id"), arn)
}
