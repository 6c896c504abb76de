//! Records stored before typed deployment ids (`fixtures/records/`, written by Convoy at 1b2421b)
//! still read, each deployment id with its kind.

use super::*;
use crate::names::DeploymentRef;

/// Every fixture, by name.
const RECORDS: &[(&str, &str)] = &[
    ("collecting", include_str!("../../fixtures/records/collecting.json")),
    ("starting-migration", include_str!("../../fixtures/records/starting-migration.json")),
    ("migrating", include_str!("../../fixtures/records/migrating.json")),
    ("failed-migration", include_str!("../../fixtures/records/failed-migration.json")),
    ("failed-manifest", include_str!("../../fixtures/records/failed-manifest.json")),
    ("failed-images", include_str!("../../fixtures/records/failed-images.json")),
    ("queued", include_str!("../../fixtures/records/queued.json")),
    ("superseded", include_str!("../../fixtures/records/superseded.json")),
    ("starting-deployment-ecs-native", include_str!("../../fixtures/records/starting-deployment-ecs-native.json")),
    ("deploying-codedeploy", include_str!("../../fixtures/records/deploying-codedeploy.json")),
    ("deploying-codepipeline", include_str!("../../fixtures/records/deploying-codepipeline.json")),
    ("deploying-ecs-native", include_str!("../../fixtures/records/deploying-ecs-native.json")),
    ("verifying-codedeploy", include_str!("../../fixtures/records/verifying-codedeploy.json")),
    ("verifying-ecs-native", include_str!("../../fixtures/records/verifying-ecs-native.json")),
    ("awaiting-approval-codedeploy", include_str!("../../fixtures/records/awaiting-approval-codedeploy.json")),
    ("awaiting-approval-codepipeline", include_str!("../../fixtures/records/awaiting-approval-codepipeline.json")),
    ("awaiting-approval-ecs-native", include_str!("../../fixtures/records/awaiting-approval-ecs-native.json")),
    ("shifting-traffic-ecs-native", include_str!("../../fixtures/records/shifting-traffic-ecs-native.json")),
    (
        "shifting-traffic-codedeploy-unattributed",
        include_str!("../../fixtures/records/shifting-traffic-codedeploy-unattributed.json"),
    ),
    ("rolling-back-codedeploy", include_str!("../../fixtures/records/rolling-back-codedeploy.json")),
    ("rolled-back-alarm", include_str!("../../fixtures/records/rolled-back-alarm.json")),
    ("succeeded-codedeploy", include_str!("../../fixtures/records/succeeded-codedeploy.json")),
    (
        "succeeded-codepipeline-unverified",
        include_str!("../../fixtures/records/succeeded-codepipeline-unverified.json"),
    ),
    ("failed-verification-ecs-native", include_str!("../../fixtures/records/failed-verification-ecs-native.json")),
    ("failed-approval", include_str!("../../fixtures/records/failed-approval.json")),
    ("failed-deployment-codepipeline", include_str!("../../fixtures/records/failed-deployment-codepipeline.json")),
];

fn record(name: &str) -> Release {
    let (_, text) = RECORDS.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no fixture {name}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{name} does not read: {e}"))
}

/// The kind of the state's deployment, and its id as the record kept it.
fn state_deployment(name: &str) -> (&'static str, String) {
    let release = record(name);
    let text = RECORDS.iter().find(|(n, _)| *n == name).unwrap().1;
    let raw: serde_json::Value = serde_json::from_str(text).unwrap();
    let id = raw["state"]["deployment"].as_str().expect("a bare string, as schema 1 kept it").to_owned();
    let kind = match release.state.deployment().expect("a deployment") {
        DeploymentRef::CodeDeploy(d) => ("codedeploy", d.to_string()),
        DeploymentRef::Pipeline(e) => ("pipeline", e.to_string()),
        DeploymentRef::Service(s) => ("service", s.to_string()),
    };
    assert_eq!(kind.1, id, "{name}: the id is kept as written");
    (kind.0, id)
}

#[test]
fn every_record_written_before_typed_ids_still_reads_and_writes_back_in_the_current_schema() {
    for (name, text) in RECORDS {
        let release: Release = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name} does not read: {e}"));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(text).unwrap()["schema"],
            1,
            "{name} is a schema-1 record"
        );
        assert_eq!(release.schema, RECORD_SCHEMA, "{name}");
        let written = serde_json::to_string(&release).unwrap();
        assert_eq!(serde_json::from_str::<Release>(&written).unwrap(), release, "{name} round-trips");
    }
}

#[test]
fn a_codedeploy_deployment_id_that_looks_like_a_pipeline_execution_is_read_as_codedeploys() {
    // moto's CodeDeploy ids are UUIDs, as CodePipeline's execution ids are: the run says which.
    for name in
        ["deploying-codedeploy", "verifying-codedeploy", "awaiting-approval-codedeploy", "rolling-back-codedeploy"]
    {
        let (kind, id) = state_deployment(name);
        assert_eq!(kind, "codedeploy", "{name}: {id}");
        assert!(!id.starts_with("d-"), "{name}: the fixture's id is moto's UUID form ({id})");
    }
    let (kind, _) = state_deployment("shifting-traffic-codedeploy-unattributed");
    assert_eq!(kind, "codedeploy");
}

#[test]
fn a_pipeline_release_follows_its_execution_then_the_deployment_it_adopted() {
    let deploying = record("deploying-codepipeline");
    let (kind, id) = state_deployment("deploying-codepipeline");
    assert_eq!(kind, "pipeline");
    let (_, execution) = deploying.following_pipeline().expect("following its execution");
    assert_eq!(execution.as_str(), id);
    assert_eq!(deploying.codedeploy_deployment(), None);

    let awaiting = record("awaiting-approval-codepipeline");
    let (kind, id) = state_deployment("awaiting-approval-codepipeline");
    assert_eq!(kind, "codedeploy", "the deployment the pipeline's action created");
    assert_eq!(awaiting.codedeploy_deployment().map(|d| d.to_string()), Some(id.clone()));
    assert_eq!(awaiting.deployment.unwrap().id, Some(DeploymentRef::CodeDeploy(id.parse().unwrap())));
}

#[test]
fn an_ecs_native_release_follows_its_service_deployment() {
    for name in
        ["deploying-ecs-native", "verifying-ecs-native", "awaiting-approval-ecs-native", "shifting-traffic-ecs-native"]
    {
        let (kind, id) = state_deployment(name);
        assert_eq!(kind, "service", "{name}");
        assert_eq!(record(name).native_deployment().map(|a| a.to_string()), Some(id), "{name}");
    }
    let ended = record("failed-verification-ecs-native");
    assert!(matches!(ended.deployment.unwrap().id, Some(DeploymentRef::Service(_))), "the run's id too");
}

#[test]
fn an_ended_codedeploy_release_keeps_its_deployment_typed() {
    for name in ["succeeded-codedeploy", "rolled-back-alarm", "failed-approval"] {
        let release = record(name);
        assert!(release.state.is_terminal(), "{name}");
        let id = release.deployment.and_then(|run| run.id);
        assert!(matches!(id, Some(DeploymentRef::CodeDeploy(_))), "{name}: {id:?}");
    }
}

#[test]
fn records_before_a_deployment_read_unchanged() {
    let expect = [
        ("collecting", "Collecting"),
        ("starting-migration", "StartingMigration"),
        ("migrating", "Migrating"),
        ("failed-migration", "Failed"),
        ("failed-manifest", "Failed"),
        ("failed-images", "Failed"),
        ("queued", "Queued"),
        ("superseded", "Superseded"),
        ("starting-deployment-ecs-native", "StartingDeployment"),
    ];
    for (name, state) in expect {
        let release = record(name);
        assert_eq!(crate::notify::state_name(&release.state), state, "{name}");
        assert_eq!(release.state.deployment(), None, "{name}");
    }
}

#[test]
fn every_record_written_before_release_groups_reads_as_a_release_of_one_service_and_keeps_its_shape() {
    for (name, text) in RECORDS {
        let release = record(name);
        assert!(release.group.is_none() && release.services.is_empty(), "{name}");
        let stored = serde_json::to_value(&release).unwrap();
        assert!(stored.get("services").is_none() && stored.get("group").is_none(), "{name}: no new field written");
        let raw: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(stored["images"], raw["images"], "{name}: its images by container, as written");
    }
}
