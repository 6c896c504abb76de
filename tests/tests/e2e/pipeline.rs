//! Deploying through CodePipeline: Convoy writes the deploy bundle to the pipeline's versioned S3
//! source and starts the execution pinned to that version. moto runs no pipeline actions (its
//! executions are "Succeeded" at once), so the harness plays the `CodeDeployToECS` action, as
//! AWS does it: it registers `taskdef.json` as written, substitutes the AppSpec's
//! `<TASK_DEFINITION>` and creates the CodeDeploy deployment whose hook calls the verify function.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use convoy::bundle::Bundle;
use convoy::error::DeployError;
use convoy::names::{DeploymentId, DeploymentRef, PipelineExecutionId};
use convoy::ports::{DeploymentStatus, PipelineStart, Pipelines};
use convoy::release::{DeployMethod, DeploymentEnd, Release, Stage, State};
use convoy_tests::fixtures;
use convoy_tests::http::{self, Behaviour, Server};
use convoy_tests::moto::Moto;
use convoy_tests::world::{PipelineWorld, RELEASE_VARIABLE};
use serde_json::{Value, json};

use crate::deploy::{containers, deploying, invoke, migration_succeeds_ten_times_at_once, probe};
use crate::scenario::*;

async fn with_pipeline(behaviour: Behaviour) -> (MotoBackend, PipelineWorld, Server) {
    let green = http::serve(behaviour).await;
    let (backend, pipeline) = MotoBackend::with_pipeline(&containers(), &green.url, "manual", probe(), true).await;
    (backend, pipeline, green)
}

fn codepipeline(backend: &MotoBackend) -> aws_sdk_codepipeline::Client {
    aws_sdk_codepipeline::Client::new(&backend.world.sdk)
}

/// How many executions moto holds. Read raw: moto 5.2.5 writes the summaries' times as ISO
/// strings where the SDK expects epoch seconds, so the SDK cannot read its answer.
fn executions(pipeline: &PipelineWorld) -> usize {
    let (status, body) = Moto::shared().raw_call(
        "codepipeline",
        Some("CodePipeline_20150709.ListPipelineExecutions"),
        "application/x-amz-json-1.1",
        &json!({"pipelineName": pipeline.name}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    listed["pipelineExecutionSummaries"].as_array().unwrap().len()
}

async fn bundle_versions(backend: &MotoBackend, pipeline: &PipelineWorld) -> usize {
    let listed = backend
        .world
        .s3
        .list_object_versions()
        .bucket(&pipeline.bucket)
        .prefix(&pipeline.key)
        .send()
        .await
        .expect("list versions");
    listed.versions().len()
}

async fn recorded_bundle(backend: &MotoBackend, pipeline: &PipelineWorld, record: &Release) -> (Bundle, String) {
    convoy_tests::pipeline::recorded_bundle(&backend.world, pipeline, record).await
}

/// The deploy action creates the deployment straight on moto (as CodePipeline would, not through
/// Convoy's clients): CodeDeploy (the stand-in) knows it from then on.
async fn play_deploy_action(backend: &MotoBackend, bundle: &Bundle) -> (String, String) {
    let (deployment, revision) =
        convoy_tests::pipeline::play_deploy_action(&backend.world, &backend.application, &backend.group, bundle).await;
    backend.standin.register(&deployment, &format!("{}:{}", backend.world.cluster(), crate::scenario::SERVICE));
    (deployment, revision)
}

/// A release whose execution started and whose pipeline created its CodeDeploy deployment
/// (CodePipeline has not reported it yet): (execution, deployment).
async fn deployed_by_its_pipeline(backend: &MotoBackend, pipeline: &PipelineWorld, release: &str) -> (String, String) {
    let execution = deploying(backend, release, json!({})).await;
    let record = backend.record(&release_key(release)).await.unwrap();
    let (bundle, _) = recorded_bundle(backend, pipeline, &record).await;
    let (deployment, _) = play_deploy_action(backend, &bundle).await;
    (execution, deployment)
}

/// A release whose pipeline execution fails before any deployment reaches the hook.
async fn failed_before_deploying(backend: &MotoBackend, pipeline: &PipelineWorld, release: &str) -> String {
    let execution = deploying(backend, release, json!({})).await;
    // CodePipeline fails the execution, then says so: Convoy confirms with GetPipelineExecution.
    backend.standin.pipeline_execution_ends(&execution, "Failed");
    let failed = fixtures::pipeline_state_change(&pipeline.name, &execution, "FAILED");
    invoke(&backend.convoy, "deployment-changed", failed).await;
    execution
}

#[tokio::test]
async fn a_release_deploys_through_its_pipeline_pinned_to_the_bundle_it_wrote() {
    let (backend, pipeline, _green) = with_pipeline(Behaviour::version("p1")).await;
    let key = release_key("p1");
    let execution = deploying(&backend, "p1", json!({})).await;
    let record = backend.record(&key).await.unwrap();
    let run = record.deployment.clone().unwrap();
    assert_eq!(run.method, DeployMethod::CodePipeline);
    assert_eq!(run.pipeline.as_ref().unwrap().execution.as_ref().map(|e| e.as_str()), Some(execution.as_str()));
    let events: Vec<&str> = record.timeline.iter().map(|e| e.event.as_str()).collect();
    assert!(events.ends_with(&["deployment-starting", "bundle-written", "pipeline-started"]), "{events:?}");

    // The execution carries the release id; moto keeps the variables (it drops sourceRevisions,
    // whose request the adapter's unit test pins down).
    let started = codepipeline(&backend)
        .get_pipeline_execution()
        .pipeline_name(&pipeline.name)
        .pipeline_execution_id(&execution)
        .send()
        .await
        .expect("the execution exists");
    let variables = started.pipeline_execution().unwrap().variables();
    assert_eq!(variables.len(), 1);
    assert_eq!((variables[0].name(), variables[0].resolved_value()), (Some(RELEASE_VARIABLE), Some("p1")));

    // The bundle: the service's own task definition with this release's digests.
    let (bundle, tagged) = recorded_bundle(&backend, &pipeline, &record).await;
    assert_eq!(tagged, key.to_string());
    let pinned: std::collections::BTreeMap<String, String> = record.pinned_uris().into_iter().collect();
    let original = backend
        .ecs_client()
        .describe_task_definition()
        .task_definition(&backend.ecs.task_definition)
        .send()
        .await
        .unwrap()
        .task_definition
        .unwrap();
    let rendered = &bundle.task_definition;
    assert_eq!(rendered["family"], original.family().unwrap());
    assert_eq!(rendered["executionRoleArn"], original.execution_role_arn().unwrap());
    assert!(rendered.get("taskDefinitionArn").is_none() && rendered.get("revision").is_none());
    for container in rendered["containerDefinitions"].as_array().unwrap() {
        let name = container["name"].as_str().unwrap();
        let before = original.container_definitions().iter().find(|c| c.name() == Some(name)).unwrap();
        assert_eq!(container["image"], pinned[name], "{name} is pinned to this release's digest");
        assert_eq!(container["environment"].as_array().unwrap().len(), before.environment().len());
        assert_eq!(container["secrets"].as_array().unwrap().len(), before.secrets().len());
        assert_eq!(container["logConfiguration"]["logDriver"], "awslogs");
    }
    assert_eq!(serde_json::from_str::<Value>(&bundle.image_detail).unwrap(), json!({"ImageURI": pinned["nginx"]}));

    // The pipeline deploys it; its hook reaches Convoy with a deployment Convoy never created.
    let (deployment, revision) = play_deploy_action(&backend, &bundle).await;
    backend.standin.report_deploy_action(&execution, &deployment);
    let registered = backend.ecs_client().describe_task_definition().task_definition(&revision).send().await.unwrap();
    let images: Vec<&str> =
        registered.task_definition().unwrap().container_definitions().iter().filter_map(|c| c.image()).collect();
    assert!(images.iter().all(|image| image.contains("@sha256:")), "{images:?}");
    backend.codedeploy_hook(&deployment, "exec-1").await;
    let record = backend.record(&key).await.unwrap();
    assert_eq!(
        record.state,
        State::AwaitingApproval { deployment: convoy::names::DeploymentRef::CodeDeploy(deployment.parse().unwrap()) }
    );
    assert!(record.timeline.iter().any(|e| e.event == "deployment-adopted" && e.detail.contains(&execution)));
    assert_eq!(
        backend.standin.calls_to("ListActionExecutions"),
        vec![json!({"pipelineName": pipeline.name, "filter": {"pipelineExecutionId": execution}})],
        "the deployment is confirmed as the execution's"
    );
    assert_eq!(
        backend.accepted_hook_answers(),
        vec![json!({"deploymentId": deployment, "lifecycleEventHookExecutionId": "exec-1", "status": "Succeeded"})]
    );

    backend.standin.waits(&deployment);
    backend.convoy.decide(&key, true).await.unwrap();
    backend.cloudtrail_delivers_last_call().await;
    assert_eq!(
        backend.standin.calls_to("ContinueDeployment"),
        vec![json!({"deploymentId": deployment, "deploymentWaitType": "READY_WAIT"})]
    );
    assert!(backend.standin.refusals_of("ContinueDeployment").is_empty());
    backend.standin.finish(&deployment);
    backend.codedeploy_reports(&deployment, "SUCCESS").await;
    invoke(
        &backend.convoy,
        "deployment-changed",
        fixtures::pipeline_state_change(&pipeline.name, &execution, "SUCCEEDED"),
    )
    .await;
    let record = backend.record(&key).await.unwrap();
    assert_eq!(record.state, State::Succeeded);
    assert_eq!(record.timeline.iter().filter(|e| e.event == "succeeded").count(), 1);
    assert_eq!(executions(&pipeline), 1);
}

#[tokio::test]
async fn duplicated_and_concurrent_migration_successes_start_exactly_one_pipeline_execution() {
    let (backend, pipeline, _green) = with_pipeline(Behaviour::version("x1")).await;
    let key = migration_succeeds_ten_times_at_once(&backend, "x1").await;
    assert!(matches!(backend.record(&key).await.unwrap().state, State::Deploying { .. }));
    assert_eq!(executions(&pipeline), 1, "exactly one execution exists in moto");
    assert_eq!(bundle_versions(&backend, &pipeline).await, 1, "exactly one bundle was written");
}

#[tokio::test]
async fn a_pipeline_that_fails_before_deploying_fails_the_release_and_frees_the_service() {
    let (backend, pipeline, _green) = with_pipeline(Behaviour::version("f1")).await;
    let execution = failed_before_deploying(&backend, &pipeline, "f1").await;
    let record = backend.record(&release_key("f1")).await.unwrap();
    let State::Failed { stage: Stage::Deployment, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains(&format!("pipeline execution {execution} ended Failed")), "{reason}");
    // The service is free: the next release deploys at once.
    deploying(&backend, "f2", json!({})).await;
    assert_eq!(executions(&pipeline), 2);
}

#[tokio::test]
async fn the_reconciler_learns_a_lost_pipeline_end_from_codepipeline() {
    let (backend, pipeline, _green) = with_pipeline(Behaviour::version("l1")).await;
    let execution = deploying(&backend, "l1", json!({})).await;
    // moto's executions succeed at once; no end event ever reaches Convoy here.
    let status = backend.convoy.pipelines.status(&pipeline.name, &execution.parse().unwrap()).await.unwrap();
    assert!(matches!(status, DeploymentStatus::Ended { end: DeploymentEnd::Succeeded, .. }), "{status:?}");
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    let record = backend.record(&release_key("l1")).await.unwrap();
    assert_eq!(record.state, State::Succeeded);
    let last = &record.timeline.last().unwrap().detail;
    assert!(last.contains(&pipeline.name), "{last}");
    assert!(last.contains("deployed without Convoy's verification or approval"), "{last}");
}

#[tokio::test]
async fn an_unversioned_source_bucket_fails_the_release_with_a_readable_reason() {
    let green = http::serve(Behaviour::version("u1")).await;
    let (backend, pipeline) = MotoBackend::with_pipeline(&containers(), &green.url, "manual", probe(), false).await;
    backend.push("app", "u1").await;
    backend.push("nginx", "u1").await;
    let manifest = manifest_v1(&backend, "u1", &containers(), false);
    invoke_manifest_uploaded(&backend.convoy, backend.upload("releases/web/u1.json", &manifest).await).await.unwrap();
    let record = backend.record(&release_key("u1")).await.unwrap();
    let State::Failed { stage: Stage::Deployment, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("does not keep versions"), "{reason}");
    assert_eq!(executions(&pipeline), 0);
}

#[tokio::test]
async fn a_hook_for_a_deployment_no_release_awaits_is_failed_not_adopted() {
    let (backend, pipeline, _green) = with_pipeline(Behaviour::version("h1")).await;
    failed_before_deploying(&backend, &pipeline, "h1").await;
    let record = backend.record(&release_key("h1")).await.unwrap();
    let (bundle, _) = recorded_bundle(&backend, &pipeline, &record).await;
    let (deployment, _) = play_deploy_action(&backend, &bundle).await;
    let answer = backend.codedeploy_hook(&deployment, "exec-9").await;
    assert_eq!(answer["succeeded"], false, "{answer}");
    assert_eq!(
        backend.accepted_hook_answers(),
        vec![json!({"deploymentId": deployment, "lifecycleEventHookExecutionId": "exec-9", "status": "Failed"})],
        "CodeDeploy heard the hook fail"
    );
    let deployment = DeploymentRef::CodeDeploy(deployment.parse().unwrap());
    assert_eq!(backend.convoy.deployments.find(&deployment).await.unwrap(), None);
}

/// CodePipeline that starts the execution but whose answer is lost (a timeout after the request
/// was served): the caller sees an error the first time.
struct LostFirstAnswer {
    inner: Arc<convoy::adapters::memory::MemoryPipelines>,
    lost: AtomicBool,
}

#[async_trait]
impl Pipelines for LostFirstAnswer {
    async fn write_bundle(
        &self,
        bucket: &str,
        key: &str,
        bundle: Vec<u8>,
        release: &convoy::names::ReleaseKey,
    ) -> Result<String, DeployError> {
        self.inner.write_bundle(bucket, key, bundle, release).await
    }
    async fn start(&self, start: &PipelineStart) -> Result<PipelineExecutionId, DeployError> {
        let execution = self.inner.start(start).await?;
        if !self.lost.swap(true, Ordering::SeqCst) {
            return Err(DeployError::Unavailable("the answer timed out".into()));
        }
        Ok(execution)
    }
    async fn status(&self, pipeline: &str, execution: &PipelineExecutionId) -> Result<DeploymentStatus, DeployError> {
        self.inner.status(pipeline, execution).await
    }
    async fn deployment_of(
        &self,
        pipeline: &str,
        execution: &PipelineExecutionId,
    ) -> Result<Option<DeploymentId>, DeployError> {
        self.inner.deployment_of(pipeline, execution).await
    }
}

#[tokio::test]
async fn a_start_whose_answer_was_lost_is_taken_over_with_the_same_bundle_and_token() {
    let settings = json!({"name": "web-deploy", "source_bucket": "source", "source_key": "web/bundle.zip",
                          "source_action": "Bundle"});
    let mut backend = MemoryBackend::with_pipeline(&containers(), settings);
    backend.convoy.pipelines =
        Arc::new(LostFirstAnswer { inner: backend.pipelines.clone(), lost: AtomicBool::new(false) });
    for container in containers() {
        let (_, event) = backend.push(&container, "t1").await;
        invoke_image_pushed(&backend.convoy, event).await.unwrap();
    }
    let manifest = manifest_v1(&backend, "t1", &containers(), false);
    let upload = backend.upload("releases/web/t1.json", &manifest).await;
    assert!(invoke_manifest_uploaded(&backend.convoy, upload).await.is_err(), "the lost answer is worth a retry");
    let key = release_key("t1");
    assert_eq!(backend.record(&key).await.unwrap().state, State::StartingDeployment);

    // Before the claim's lease ends nobody takes over; after it, the reconciler does.
    backend.convoy.reconcile(chrono::Utc::now()).await.unwrap();
    assert_eq!(backend.pipelines.starts().len(), 1);
    let later = chrono::Utc::now() + convoy::config::CLAIM_LEASE + chrono::Duration::seconds(1);
    backend.convoy.reconcile(later).await.unwrap();

    let record = backend.record(&key).await.unwrap();
    let starts = backend.pipelines.starts();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0], starts[1], "the same version, variables and token");
    assert_eq!(starts[0].variables, vec![(RELEASE_VARIABLE.to_owned(), "t1".to_owned())]);
    assert_eq!(backend.pipelines.bundles().len(), 1, "the recorded bundle is reused");
    assert_eq!(backend.pipelines.executions(), 1, "the token started no second execution");
    assert!(matches!(record.state, State::Deploying { .. }), "{}", record.state);
    assert_eq!(record.deployment.unwrap().claims, 2);
}

#[tokio::test]
async fn a_start_claimed_for_codedeploy_is_not_taken_over_through_a_pipeline() {
    use convoy::release::{Event, Release, Sighting};
    let settings = json!({"name": "web-deploy", "source_bucket": "source", "source_key": "web/bundle.zip",
                          "source_action": "Bundle"});
    let backend = MemoryBackend::with_pipeline(&containers(), settings);
    let key = release_key("m1");
    let manifest = convoy::manifest::parse(manifest_v1(&backend, "m1", &containers(), false).as_bytes(), &key).unwrap();
    let source = convoy::release::ManifestSource {
        bucket: MEMORY_BUCKET.into(),
        key: "releases/web/m1.json".into(),
        version_id: None,
        etag: None,
    };
    let opened = chrono::Utc::now() - chrono::Duration::minutes(10);
    let mut release = Release::open(key.clone(), source, manifest, opened);
    let mut events: Vec<Event> = release
        .awaited_images()
        .into_iter()
        .map(|image| {
            Event::from(convoy::release::readiness::Event::ImageFound {
                image,
                digest: "sha256:aa".parse().unwrap(),
                at: opened,
                via: Sighting::RegistryLookup,
            })
        })
        .collect();
    // A handler claimed the start while the service deployed with CodeDeploy, then died.
    events.push(Event::from(convoy::release::deployment::Event::Claimed {
        method: DeployMethod::CodeDeploy,
        at: opened,
        lease: convoy::config::CLAIM_LEASE,
        gate: None,
    }));
    for event in &events {
        if let convoy::release::Decision::Changed { release: next, .. } = release.apply(event).unwrap() {
            release = *next;
        }
    }
    assert_eq!(release.state, State::StartingDeployment);
    backend.convoy.store.create(&release).await.unwrap();

    backend.convoy.start_deployment(&key, chrono::Utc::now(), None).await.unwrap();
    let record = backend.record(&key).await.unwrap();
    let State::Failed { stage: Stage::Deployment, reason } = &record.state else { panic!("{}", record.state) };
    assert!(reason.contains("claimed for codedeploy"), "{reason}");
    assert!(backend.pipelines.starts().is_empty() && backend.pipelines.bundles().is_empty());
}

#[tokio::test]
async fn a_deployment_codepipeline_reports_for_no_execution_of_the_release_is_not_adopted() {
    let (backend, pipeline, _green) = with_pipeline(Behaviour::version("o1")).await;
    let key = release_key("o1");
    // Someone else's deployment in the group, while the execution's own is another one.
    let (execution, outsider) = deployed_by_its_pipeline(&backend, &pipeline, "o1").await;
    backend.standin.report_deploy_action(&execution, "d-EXECUTION");
    let answer = backend.codedeploy_hook(&outsider, "exec-1").await;
    assert_eq!(answer["succeeded"], false, "{answer}");
    assert_eq!(
        backend.accepted_hook_answers(),
        vec![json!({"deploymentId": outsider, "lifecycleEventHookExecutionId": "exec-1", "status": "Failed"})],
        "CodeDeploy heard the hook fail"
    );
    assert_eq!(
        backend.record(&key).await.unwrap().state,
        State::Deploying { deployment: convoy::names::DeploymentRef::Pipeline(execution.parse().unwrap()) }
    );
}

#[tokio::test]
async fn an_older_deployment_is_not_taken_for_a_new_execution_before_codepipeline_reports_one() {
    let (backend, pipeline, _green) = with_pipeline(Behaviour::version("a1")).await;
    let (first, abandoned) = deployed_by_its_pipeline(&backend, &pipeline, "a1").await;
    backend.standin.pipeline_execution_ends(&first, "Failed");
    let failed = fixtures::pipeline_state_change(&pipeline.name, &first, "FAILED");
    invoke(&backend.convoy, "deployment-changed", failed).await;
    // Past the clock-skew allowance (2 s: a deployment created more than 2 s before a release's
    // start is not that release's) after CodeDeploy created the abandoned deployment, the next
    // release's execution starts; CodePipeline has not reported its deploy action yet when the
    // abandoned deployment's hook arrives.
    let codedeploy = aws_sdk_codedeploy::Client::new(&backend.world.sdk);
    let described = codedeploy.get_deployment().deployment_id(&abandoned).send().await.unwrap();
    let created = described.deployment_info().and_then(|d| d.create_time()).expect("CodeDeploy's creation time");
    let created = chrono::DateTime::from_timestamp(created.secs(), created.subsec_nanos()).unwrap();
    let past = created + chrono::Duration::seconds(2);
    let limit = std::time::Duration::from_secs(10);
    convoy_tests::wait::wait_for(limit, "the clock past the abandoned deployment's creation and the allowance", || {
        std::future::ready(chrono::Utc::now() > past)
    })
    .await;
    let second = deploying(&backend, "a2", json!({})).await;
    let answer = backend.codedeploy_hook(&abandoned, "exec-1").await;
    assert_eq!(answer["succeeded"], false, "{answer}");
    assert_eq!(
        backend.accepted_hook_answers(),
        vec![json!({"deploymentId": abandoned, "lifecycleEventHookExecutionId": "exec-1", "status": "Failed"})],
        "CodeDeploy heard the hook fail"
    );
    assert_eq!(
        backend.record(&release_key("a2")).await.unwrap().state,
        State::Deploying { deployment: convoy::names::DeploymentRef::Pipeline(second.parse().unwrap()) }
    );
}

#[tokio::test]
async fn a_stopped_execution_whose_deployment_still_runs_is_followed_not_ended() {
    let (backend, pipeline, _green) = with_pipeline(Behaviour::version("s1")).await;
    let key = release_key("s1");
    let (execution, deployment) = deployed_by_its_pipeline(&backend, &pipeline, "s1").await;
    backend.standin.report_deploy_action(&execution, &deployment);
    // "Stop and abandon": the execution ends, its CodeDeploy deployment (still "Created" in moto) runs on.
    backend.standin.pipeline_execution_ends(&execution, "Stopped");
    let stopped = fixtures::pipeline_state_change(&pipeline.name, &execution, "STOPPED");
    invoke(&backend.convoy, "deployment-changed", stopped).await;
    let record = backend.record(&key).await.unwrap();
    assert_eq!(
        record.state,
        State::Deploying { deployment: convoy::names::DeploymentRef::CodeDeploy(deployment.parse().unwrap()) }
    );
    let (lock, _) = backend.convoy.locks.load(&key.service).await.unwrap().unwrap();
    assert_eq!(lock.holder.map(|h| h.release), Some(key.release.clone()), "the service stays locked");

    backend.codedeploy_reports(&deployment, "FAILURE").await;
    let record = backend.record(&key).await.unwrap();
    assert!(matches!(record.state, State::RolledBack { .. }), "{}", record.state);
    let (lock, _) = backend.convoy.locks.load(&key.service).await.unwrap().unwrap();
    assert_eq!(lock.holder, None);
}
