//! The deploy bundle of the CodePipeline deploy method: the zip that the pipeline's S3 source action
//! reads, holding `taskdef.json`, `appspec.yaml` and `imageDetail.json` for its "CodeDeployToECS"
//! action. That action registers `taskdef.json` as a task definition, puts the new ARN in place of
//! [`TASK_DEFINITION_PLACEHOLDER`] in `appspec.yaml` and creates the CodeDeploy deployment.
//!
//! Pure: no AWS calls here, so the bundle can be built and checked in unit tests byte for byte.

use std::io::{Cursor, Read, Write};

use serde_json::Value;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipArchive, ZipWriter};

use crate::taskdef::{self, Derivation};

/// What the CodeDeployToECS action looks for in `appspec.yaml` and replaces with the ARN of the task
/// definition it registered from `taskdef.json`.
pub const TASK_DEFINITION_PLACEHOLDER: &str = "<TASK_DEFINITION>";

/// The bundle's entry names, fixed by the CodeDeployToECS action's defaults.
const TASK_DEFINITION_ENTRY: &str = "taskdef.json";
const APP_SPEC_ENTRY: &str = "appspec.yaml";
const IMAGE_DETAIL_ENTRY: &str = "imageDetail.json";

/// Renders `taskdef.json`: the RegisterTaskDefinition input that registers a copy of the described
/// task definition with each named container's image replaced (see [`taskdef::derive`], the
/// derivation every task definition Convoy registers goes through).
///
/// `described` is the DescribeTaskDefinition response body, as received; its tags are carried over.
/// `images` maps a container name to its image pinned by digest; naming a container the definition
/// lacks is an error.
pub fn render_task_definition(described: &Value, images: &[(String, String)]) -> Result<Value, String> {
    taskdef::derive(described, &Derivation::revision(images))
}

/// The AppSpec of an ECS blue/green deployment (JSON is valid AppSpec YAML). CodeDeploy shifts
/// traffic to `container` on `port` and runs `verify_function` once test traffic reaches the new
/// tasks. For a bundle, `task_definition` is [`TASK_DEFINITION_PLACEHOLDER`]: the ARN does not
/// exist until the pipeline registers `taskdef.json`.
pub fn app_spec(task_definition: &str, container: &str, port: u16, verify_function: &str) -> String {
    serde_json::json!({
        "version": 0.0,
        "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
            "TaskDefinition": task_definition,
            "LoadBalancerInfo": {"ContainerName": container, "ContainerPort": port}
        }}}],
        "Hooks": [{"AfterAllowTestTraffic": verify_function}]
    })
    .to_string()
}

/// The image of `container` in a task definition document (as [`render_task_definition`] returns).
pub fn container_image(task_definition: &Value, container: &str) -> Option<String> {
    task_definition["containerDefinitions"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == container)
        .and_then(|c| c["image"].as_str())
        .map(str::to_owned)
}

/// `imageDetail.json`: the image URI that CodePipeline's ECS actions read from their input artifact.
pub fn image_detail(uri: &str) -> String {
    serde_json::json!({ "ImageURI": uri }).to_string()
}

/// The three files of a deploy bundle, unzipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// The rendered `taskdef.json` (see [`render_task_definition`]).
    pub task_definition: Value,
    /// `appspec.yaml` (see [`app_spec`]).
    pub app_spec: String,
    /// `imageDetail.json` (see [`image_detail`]).
    pub image_detail: String,
}

impl Bundle {
    /// The bundle as a zip of stored entries. Every entry gets the same fixed time, permissions and
    /// host system, so the same bundle always gives the same bytes: a retried upload writes an
    /// identical object, and a test can compare bundles byte for byte.
    pub fn to_zip(&self) -> Result<Vec<u8>, String> {
        self.write_zip().map_err(|e| format!("the deploy bundle cannot be zipped: {e}"))
    }

    fn write_zip(&self) -> zip::result::ZipResult<Vec<u8>> {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(DateTime::DEFAULT)
            .unix_permissions(0o644)
            .system(System::Unix);
        let task_definition =
            serde_json::to_string_pretty(&self.task_definition).map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, content) in [
            (TASK_DEFINITION_ENTRY, task_definition.as_str()),
            (APP_SPEC_ENTRY, self.app_spec.as_str()),
            (IMAGE_DETAIL_ENTRY, self.image_detail.as_str()),
        ] {
            writer.start_file(name, options)?;
            writer.write_all(content.as_bytes())?;
        }
        Ok(writer.finish()?.into_inner())
    }

    /// Reads a bundle back from its zip, as the pipeline's deploy action would: each of the three
    /// entries must be there, and the two JSON files must parse.
    pub fn from_zip(bytes: &[u8]) -> Result<Bundle, String> {
        let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("the bundle is not a zip: {e}"))?;
        let mut read = |name: &str| -> Result<String, String> {
            let mut entry = archive.by_name(name).map_err(|e| format!("the bundle has no {name}: {e}"))?;
            let mut content = String::new();
            entry.read_to_string(&mut content).map_err(|e| format!("the bundle's {name} is unreadable: {e}"))?;
            Ok(content)
        };
        let task_definition = read(TASK_DEFINITION_ENTRY)?;
        let app_spec = read(APP_SPEC_ENTRY)?;
        let image_detail = read(IMAGE_DETAIL_ENTRY)?;

        let task_definition = serde_json::from_str(&task_definition)
            .map_err(|e| format!("the bundle's {TASK_DEFINITION_ENTRY} is not JSON: {e}"))?;
        serde_json::from_str::<Value>(&image_detail)
            .map_err(|e| format!("the bundle's {IMAGE_DETAIL_ENTRY} is not JSON: {e}"))?;
        Ok(Bundle { task_definition, app_spec, image_detail })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::taskdef::READ_ONLY_FIELDS;

    const APP_IMAGE: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/app@sha256:\
                             1111111111111111111111111111111111111111111111111111111111111111";
    const NGINX_IMAGE: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/nginx@sha256:\
                               2222222222222222222222222222222222222222222222222222222222222222";

    /// A DescribeTaskDefinition answer as ECS sends it for a Fargate service, plus a field no SDK
    /// knows yet (`futureScheduling`).
    fn described() -> Value {
        json!({
            "taskDefinition": {
                "taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/shop-web:41",
                "family": "shop-web",
                "taskRoleArn": "arn:aws:iam::123456789012:role/shop-web-task",
                "executionRoleArn": "arn:aws:iam::123456789012:role/shop-web-execution",
                "networkMode": "awsvpc",
                "revision": 41,
                "containerDefinitions": [
                    {
                        "name": "app",
                        "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/app:4cf03d1",
                        "cpu": 0,
                        "essential": true,
                        "portMappings": [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}],
                        "environment": [{"name": "RUST_LOG", "value": "info"}],
                        "secrets": [{
                            "name": "DATABASE_URL",
                            "valueFrom": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop/db-AbCdEf"
                        }],
                        "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/tmp/scratch", "readOnly": false}],
                        "volumesFrom": [],
                        "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
                        "healthCheck": {
                            "command": ["CMD-SHELL", "curl -fsS http://localhost:8080/health || exit 1"],
                            "interval": 10,
                            "timeout": 5,
                            "retries": 3,
                            "startPeriod": 30
                        },
                        "logConfiguration": {
                            "logDriver": "awslogs",
                            "options": {
                                "awslogs-group": "/ecs/shop-web",
                                "awslogs-region": "eu-west-1",
                                "awslogs-stream-prefix": "app"
                            }
                        },
                        "systemControls": []
                    },
                    {
                        "name": "nginx",
                        "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/nginx:1.27",
                        "cpu": 0,
                        "essential": true,
                        "portMappings": [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}],
                        "dependsOn": [{"containerName": "app", "condition": "HEALTHY"}],
                        "mountPoints": [],
                        "logConfiguration": {
                            "logDriver": "awslogs",
                            "options": {
                                "awslogs-group": "/ecs/shop-web",
                                "awslogs-region": "eu-west-1",
                                "awslogs-stream-prefix": "nginx"
                            }
                        }
                    },
                    {
                        "name": "log-router",
                        "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
                        "essential": false,
                        "firelensConfiguration": {"type": "fluentbit"}
                    }
                ],
                "volumes": [{"name": "scratch", "host": {}}],
                "status": "ACTIVE",
                "requiresAttributes": [
                    {"name": "com.amazonaws.ecs.capability.logging-driver.awslogs"},
                    {"name": "ecs.capability.secrets.asm.environment-variables"},
                    {"name": "ecs.capability.container-health-check"},
                    {"name": "ecs.capability.task-eni"}
                ],
                "placementConstraints": [],
                "compatibilities": ["EC2", "FARGATE"],
                "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
                "requiresCompatibilities": ["FARGATE"],
                "cpu": "512",
                "memory": "1024",
                "ephemeralStorage": {"sizeInGiB": 30},
                "futureScheduling": {"mode": "SPREAD_BY_CELL", "cells": 3},
                "registeredAt": 1714489200.123,
                "registeredBy": "arn:aws:sts::123456789012:assumed-role/convoy-deployer/convoy",
                "deregisteredAt": 1714575600.456,
                "deleteRequestedAt": 1714662000.789,
                "enableFaultInjection": false
            },
            "tags": []
        })
    }

    fn pinned() -> Vec<(String, String)> {
        vec![("app".to_owned(), APP_IMAGE.to_owned()), ("nginx".to_owned(), NGINX_IMAGE.to_owned())]
    }

    fn container<'a>(definition: &'a Value, name: &str) -> &'a Value {
        definition["containerDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no container {name}"))
    }

    fn bundle() -> Bundle {
        Bundle {
            task_definition: render_task_definition(&described(), &pinned()).unwrap(),
            app_spec: app_spec(TASK_DEFINITION_PLACEHOLDER, "nginx", 80, "shop-verify"),
            image_detail: image_detail(APP_IMAGE),
        }
    }

    #[test]
    fn read_only_fields_are_dropped_and_every_other_field_is_kept() {
        let rendered = render_task_definition(&described(), &[]).unwrap();
        for field in READ_ONLY_FIELDS {
            assert!(rendered.get(field).is_none(), "{field} was kept");
        }
        // With no images to pin and no tags, rendering only removes: every remaining field is the
        // original, untouched.
        let mut expected = described()["taskDefinition"].as_object().unwrap().clone();
        for field in READ_ONLY_FIELDS {
            assert!(expected.remove(*field).is_some(), "the fixture lacks {field}");
        }
        assert_eq!(rendered, Value::Object(expected));
        assert_eq!(rendered["family"], "shop-web");
        assert_eq!(rendered["ephemeralStorage"], json!({"sizeInGiB": 30}));
        assert_eq!(rendered["runtimePlatform"]["cpuArchitecture"], "ARM64");
        assert_eq!(container(&rendered, "app")["secrets"][0]["name"], "DATABASE_URL");
        assert_eq!(container(&rendered, "app")["healthCheck"]["startPeriod"], 30);
        assert_eq!(container(&rendered, "app")["ulimits"][0]["softLimit"], 65536);
    }

    #[test]
    fn an_unknown_field_survives_rendering() {
        let mut answer = described();
        answer["taskDefinition"]["containerDefinitions"][0]["futureRestartPolicy"] = json!({"enabled": true});
        let rendered = render_task_definition(&answer, &pinned()).unwrap();
        assert_eq!(rendered["futureScheduling"], json!({"mode": "SPREAD_BY_CELL", "cells": 3}));
        assert_eq!(container(&rendered, "app")["futureRestartPolicy"], json!({"enabled": true}));
    }

    #[test]
    fn each_named_container_gets_its_pinned_image_and_others_keep_theirs() {
        let rendered = render_task_definition(&described(), &pinned()).unwrap();
        assert_eq!(container(&rendered, "app")["image"], APP_IMAGE);
        assert_eq!(container(&rendered, "nginx")["image"], NGINX_IMAGE);
        assert_eq!(
            container(&rendered, "log-router")["image"],
            "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"
        );
        // Only the image changes within a pinned container.
        let mut app = container(&described()["taskDefinition"], "app").clone();
        app["image"] = json!(APP_IMAGE);
        assert_eq!(container(&rendered, "app"), &app);
    }

    #[test]
    fn a_container_the_definition_lacks_is_refused_with_the_names_it_has() {
        let images = vec![("worker".to_owned(), APP_IMAGE.to_owned())];
        let err = render_task_definition(&described(), &images).unwrap_err();
        assert!(err.contains("\"worker\""), "{err}");
        assert!(err.contains("app, nginx, log-router"), "{err}");
    }

    #[test]
    fn an_answer_without_a_task_definition_or_containers_is_refused() {
        let err = render_task_definition(&json!({"tags": []}), &[]).unwrap_err();
        assert!(err.contains("taskDefinition"), "{err}");

        let mut answer = described();
        answer["taskDefinition"].as_object_mut().unwrap().remove("containerDefinitions");
        let err = render_task_definition(&answer, &[]).unwrap_err();
        assert!(err.contains("containerDefinitions"), "{err}");
    }

    #[test]
    fn tags_are_carried_over_when_present() {
        let mut answer = described();
        let tags = json!([{"key": "team", "value": "shop"}, {"key": "cost-centre", "value": "42"}]);
        answer["tags"] = tags.clone();
        assert_eq!(render_task_definition(&answer, &[]).unwrap()["tags"], tags);
    }

    #[test]
    fn empty_or_absent_tags_are_left_out() {
        assert!(render_task_definition(&described(), &[]).unwrap().get("tags").is_none());
        let mut answer = described();
        answer.as_object_mut().unwrap().remove("tags");
        assert!(render_task_definition(&answer, &[]).unwrap().get("tags").is_none());
    }

    #[test]
    fn the_app_spec_names_the_placeholder_container_port_and_hook() {
        let spec: Value =
            serde_json::from_str(&app_spec(TASK_DEFINITION_PLACEHOLDER, "nginx", 80, "shop-verify")).unwrap();
        assert_eq!(
            spec,
            json!({
                "version": 0.0,
                "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
                    "TaskDefinition": "<TASK_DEFINITION>",
                    "LoadBalancerInfo": {"ContainerName": "nginx", "ContainerPort": 80}
                }}}],
                "Hooks": [{"AfterAllowTestTraffic": "shop-verify"}]
            })
        );
    }

    #[test]
    fn the_image_detail_holds_the_image_uri() {
        let detail: Value = serde_json::from_str(&image_detail(APP_IMAGE)).unwrap();
        assert_eq!(detail, json!({"ImageURI": APP_IMAGE}));
    }

    #[test]
    fn a_bundle_survives_a_zip_round_trip() {
        let bundle = bundle();
        assert_eq!(Bundle::from_zip(&bundle.to_zip().unwrap()).unwrap(), bundle);
    }

    #[test]
    fn the_zip_holds_the_three_files_stored_under_the_names_the_pipeline_expects() {
        let bundle = bundle();
        let bytes = bundle.to_zip().unwrap();
        let mut archive = ZipArchive::new(Cursor::new(bytes.as_slice())).unwrap();
        let names: Vec<String> = archive.file_names().map(|name| name.unwrap().into_owned()).collect();
        assert_eq!(names, ["taskdef.json", "appspec.yaml", "imageDetail.json"]);
        for name in ["taskdef.json", "appspec.yaml", "imageDetail.json"] {
            let entry = archive.by_name(name).unwrap();
            assert_eq!(entry.compression(), CompressionMethod::Stored, "{name}");
            assert_eq!(entry.last_modified(), Some(DateTime::DEFAULT), "{name}");
        }
        let mut taskdef = String::new();
        archive.by_name("taskdef.json").unwrap().read_to_string(&mut taskdef).unwrap();
        assert_eq!(taskdef, serde_json::to_string_pretty(&bundle.task_definition).unwrap());
    }

    #[test]
    fn the_same_bundle_zips_to_the_same_bytes() {
        // The entries' time is fixed rather than read from the clock (see the test above), so
        // zipping twice gives the same bytes even with the zip crate's `time` feature on.
        let first = bundle().to_zip().unwrap();
        assert_eq!(bundle().to_zip().unwrap(), first);
        let mut other = bundle();
        other.image_detail = image_detail(NGINX_IMAGE);
        assert_ne!(other.to_zip().unwrap(), first, "a different bundle must not zip to the same bytes");
    }

    #[test]
    fn a_zip_missing_an_entry_is_refused() {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        writer.start_file("taskdef.json", options).unwrap();
        writer.write_all(b"{}").unwrap();
        writer.start_file("imageDetail.json", options).unwrap();
        writer.write_all(b"{}").unwrap();
        let bytes = writer.finish().unwrap().into_inner();
        let err = Bundle::from_zip(&bytes).unwrap_err();
        assert!(err.contains("appspec.yaml"), "{err}");
    }

    #[test]
    fn a_bundle_whose_task_definition_is_not_json_is_refused() {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        for (name, content) in [("taskdef.json", "{not json"), ("appspec.yaml", "{}"), ("imageDetail.json", "{}")] {
            writer.start_file(name, options).unwrap();
            writer.write_all(content.as_bytes()).unwrap();
        }
        let bytes = writer.finish().unwrap().into_inner();
        let err = Bundle::from_zip(&bytes).unwrap_err();
        assert!(err.contains("taskdef.json is not JSON"), "{err}");
        assert!(Bundle::from_zip(b"not a zip").unwrap_err().contains("not a zip"));
    }
}
