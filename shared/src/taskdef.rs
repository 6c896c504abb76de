//! The one derivation of every task definition Convoy registers (the migration's, the release's
//! revision, a pipeline bundle's `taskdef.json`): the service's definition as ECS describes it, as
//! raw JSON, with only the changes a release needs.
//!
//! Pure: no AWS calls here. Working on the raw DescribeTaskDefinition JSON rather than the SDK's
//! types keeps every field (mounts, ulimits, health checks, even fields newer than the SDK); the
//! result is the RegisterTaskDefinition input, sent verbatim.

use serde_json::{Map, Value};

/// Appended to the service's family for the migration's own family, so running the migration
/// never adds a revision to the service's family (and RunTask can be granted on it alone).
pub const MIGRATION_FAMILY_SUFFIX: &str = "-convoy-migration";

/// The tag (key, value) on every migration task definition Convoy registers and every migration
/// task it runs: the template grants RunTask and StopTask only on resources that carry it, so
/// Convoy's role cannot stop the cluster's other tasks.
pub const MIGRATION_TAG: (&str, &str) = ("convoy:migration", "true");

/// Fields of a DescribeTaskDefinition answer that ECS sets itself and RegisterTaskDefinition refuses
/// or ignores. A blocklist rather than an allowlist, so a field ECS adds later is carried over
/// without a change here.
pub const READ_ONLY_FIELDS: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
];

/// What a derived definition changes in the described one; everything else is kept as described.
#[derive(Debug, Clone, Copy)]
pub struct Derivation<'a> {
    /// Container name → image pinned by digest (`<registry>/<repo>@sha256:...`).
    pub images: &'a [(String, String)],
    /// Appended to the described family; `None` keeps it (a new revision of the same family).
    pub family_suffix: Option<&'a str>,
    /// The only essential container; `None` keeps each container's `essential` as described.
    pub only_essential: Option<&'a str>,
    /// A tag (key, value) added to the described tags (replacing one with the same key).
    pub tag: Option<(&'a str, &'a str)>,
}

impl<'a> Derivation<'a> {
    /// A new revision of the described family with `images` pinned: the release's revision and a
    /// pipeline bundle's `taskdef.json`.
    pub fn revision(images: &'a [(String, String)]) -> Self {
        Derivation { images, family_suffix: None, only_essential: None, tag: None }
    }

    /// The migration's definition: its own family, `images` pinned, only `container` essential (so
    /// the task stops when the migration exits, and a sidecar that cannot start alone does not
    /// fail it).
    pub fn migration(images: &'a [(String, String)], container: &'a str) -> Self {
        Derivation {
            images,
            family_suffix: Some(MIGRATION_FAMILY_SUFFIX),
            only_essential: Some(container),
            tag: Some(MIGRATION_TAG),
        }
    }
}

/// Derives the RegisterTaskDefinition input from `described`, the DescribeTaskDefinition response
/// body as received: read-only fields removed, then the [`Derivation`]'s changes.
///
/// Its `tags` (present only when they were asked for) are carried over when there are any, so the
/// new revision is tagged like the old one. Naming a container the definition lacks (to pin or as
/// the essential one) is an error rather than a no-op: the release would otherwise run without the
/// image it names.
pub fn derive(described: &Value, derivation: &Derivation<'_>) -> Result<Value, String> {
    let mut definition = match described.get("taskDefinition") {
        Some(Value::Object(definition)) => definition.clone(),
        Some(_) => return Err("DescribeTaskDefinition's taskDefinition is not an object".into()),
        None => return Err("DescribeTaskDefinition's answer has no taskDefinition".into()),
    };
    for field in READ_ONLY_FIELDS {
        definition.remove(*field);
    }

    if let Some(suffix) = derivation.family_suffix {
        let family = match definition.get("family") {
            Some(Value::String(family)) => format!("{family}{suffix}"),
            _ => return Err("the task definition has no family".into()),
        };
        definition.insert("family".into(), Value::String(family));
    }

    let containers = match definition.get_mut("containerDefinitions") {
        Some(Value::Array(containers)) => containers,
        Some(_) => return Err("the task definition's containerDefinitions is not a list".into()),
        None => return Err("the task definition has no containerDefinitions".into()),
    };
    let mut named = derivation.images.iter().map(|(name, _)| name.as_str()).chain(derivation.only_essential);
    if let Some(missing) = named.find(|name| !container_names(containers).contains(name)) {
        return Err(format!(
            "container {missing:?} is not in the task definition; its containers are: {}",
            container_names(containers).join(", ")
        ));
    }
    for (name, image) in derivation.images {
        if let Some(container) = container_mut(containers, name) {
            container.insert("image".into(), Value::String(image.clone()));
        }
    }
    if let Some(essential) = derivation.only_essential {
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            let is_it = container.get("name").and_then(Value::as_str) == Some(essential);
            container.insert("essential".into(), Value::Bool(is_it));
        }
    }

    let mut tags = described.get("tags").and_then(Value::as_array).cloned().unwrap_or_default();
    if let Some((key, value)) = derivation.tag {
        tags.retain(|tag| tag.get("key").and_then(Value::as_str) != Some(key));
        tags.push(serde_json::json!({"key": key, "value": value}));
    }
    if !tags.is_empty() {
        definition.insert("tags".into(), Value::Array(tags));
    }
    Ok(Value::Object(definition))
}

/// A derived task definition as it is registered: the RegisterTaskDefinition document, its
/// containers' names, and where the derivation's essential container (else the first) logs.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub definition: Value,
    pub containers: Vec<String>,
    pub log_group: Option<String>,
    pub log_stream_prefix: Option<String>,
}

/// [`derive`], with what registering the result needs ([`Registration`]).
///
/// # Errors
/// As [`derive`].
pub fn registration(described: &Value, derivation: &Derivation<'_>) -> Result<Registration, String> {
    let definition = derive(described, derivation)?;
    let names: Vec<String> = containers(&definition).into_iter().map(str::to_owned).collect();
    let logged = derivation.only_essential.or(names.first().map(String::as_str)).unwrap_or_default();
    let (log_group, log_stream_prefix) = awslogs(&definition, logged);
    Ok(Registration { containers: names, log_group, log_stream_prefix, definition })
}

fn container_mut<'c>(containers: &'c mut [Value], name: &str) -> Option<&'c mut Map<String, Value>> {
    containers.iter_mut().filter_map(Value::as_object_mut).find(|c| c.get("name").and_then(Value::as_str) == Some(name))
}

fn container_names(containers: &[Value]) -> Vec<&str> {
    containers.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).collect()
}

/// The names of a task definition document's containers, in order.
pub fn containers(definition: &Value) -> Vec<&str> {
    definition.get("containerDefinitions").and_then(Value::as_array).map(|c| container_names(c)).unwrap_or_default()
}

/// Where `container` logs, when it logs to CloudWatch (the `awslogs` driver): its log group and
/// stream prefix.
pub fn awslogs(definition: &Value, container: &str) -> (Option<String>, Option<String>) {
    let options = definition
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .and_then(|containers| containers.iter().find(|c| c.get("name").and_then(Value::as_str) == Some(container)))
        .and_then(|c| c.get("logConfiguration"))
        .filter(|log| log.get("logDriver").and_then(Value::as_str) == Some("awslogs"))
        .and_then(|log| log.get("options"));
    let option = |key: &str| options.and_then(|o| o.get(key)).and_then(Value::as_str).map(str::to_owned);
    (option("awslogs-group"), option("awslogs-stream-prefix"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const APP_IMAGE: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/app@sha256:aaaa";
    const NGINX_IMAGE: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/nginx@sha256:bbbb";

    /// A DescribeTaskDefinition answer (asked with TAGS) with settings the SDK-typed derivation used
    /// to lose, and fields no SDK models (`someFieldFromTheFuture`).
    fn described() -> Value {
        json!({
            "taskDefinition": {
                "taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/shop-web:41",
                "family": "shop-web",
                "revision": 41,
                "status": "ACTIVE",
                "taskRoleArn": "arn:aws:iam::123456789012:role/shop-web-task",
                "networkMode": "awsvpc",
                "containerDefinitions": [
                    {
                        "name": "app",
                        "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/app:4cf03d1",
                        "essential": true,
                        "memory": 256,
                        "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/tmp/scratch", "readOnly": false}],
                        "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
                        "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 10, "retries": 3},
                        "logConfiguration": {
                            "logDriver": "awslogs",
                            "options": {"awslogs-group": "/ecs/shop-web", "awslogs-stream-prefix": "app"}
                        },
                        "someFieldFromTheFuture": {"container": true, "level": 2}
                    },
                    {
                        "name": "nginx",
                        "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/nginx:1.27",
                        "essential": true,
                        "memory": 128,
                        "dependsOn": [{"containerName": "app", "condition": "HEALTHY"}],
                        "logConfiguration": {"logDriver": "fluentd", "options": {"awslogs-group": "/not/cloudwatch"}}
                    },
                    {
                        "name": "log-router",
                        "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
                        "essential": false,
                        "firelensConfiguration": {"type": "fluentbit"}
                    }
                ],
                "volumes": [{"name": "scratch", "host": {}}],
                "requiresAttributes": [{"name": "ecs.capability.container-health-check"}],
                "compatibilities": ["EC2", "FARGATE"],
                "requiresCompatibilities": ["FARGATE"],
                "registeredAt": 1714489200.123,
                "registeredBy": "arn:aws:sts::123456789012:assumed-role/deployer/convoy",
                "someFieldFromTheFuture": {"mode": "SPREAD_BY_CELL", "cells": 3}
            },
            "tags": [{"key": "team", "value": "shop"}]
        })
    }

    fn pinned() -> Vec<(String, String)> {
        vec![("app".to_owned(), APP_IMAGE.to_owned()), ("nginx".to_owned(), NGINX_IMAGE.to_owned())]
    }

    fn container<'a>(definition: &'a Value, name: &str) -> &'a Value {
        let containers = definition["containerDefinitions"].as_array().unwrap();
        containers.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no container {name}"))
    }

    #[test]
    fn the_migration_definition_keeps_what_the_sdk_does_not_model_and_every_setting() {
        let images = pinned();
        let derived = derive(&described(), &Derivation::migration(&images, "app")).unwrap();
        assert_eq!(derived["someFieldFromTheFuture"], json!({"mode": "SPREAD_BY_CELL", "cells": 3}));
        let app = container(&derived, "app");
        assert_eq!(app["someFieldFromTheFuture"], json!({"container": true, "level": 2}));
        assert_eq!(app["mountPoints"][0]["containerPath"], "/tmp/scratch");
        assert_eq!(app["ulimits"], json!([{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}]));
        assert_eq!(app["healthCheck"]["command"], json!(["CMD-SHELL", "true"]));
        assert_eq!(container(&derived, "nginx")["dependsOn"][0]["condition"], "HEALTHY");
        assert_eq!(container(&derived, "log-router")["firelensConfiguration"]["type"], "fluentbit");
        assert_eq!(derived["volumes"], json!([{"name": "scratch", "host": {}}]));
        assert_eq!(derived["taskRoleArn"], "arn:aws:iam::123456789012:role/shop-web-task");
        assert_eq!(
            derived["tags"],
            json!([{"key": "team", "value": "shop"}, {"key": "convoy:migration", "value": "true"}])
        );
        for field in READ_ONLY_FIELDS {
            assert!(derived.get(field).is_none(), "{field} was kept");
        }
    }

    #[test]
    fn the_migration_definition_has_its_own_family_pinned_images_and_one_essential_container() {
        let images = pinned();
        let derived = derive(&described(), &Derivation::migration(&images, "app")).unwrap();
        assert_eq!(derived["family"], "shop-web-convoy-migration");
        assert_eq!(container(&derived, "app")["image"], APP_IMAGE);
        assert_eq!(container(&derived, "nginx")["image"], NGINX_IMAGE);
        assert_eq!(
            container(&derived, "log-router")["image"],
            "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"
        );
        assert_eq!(container(&derived, "app")["essential"], true);
        assert_eq!(container(&derived, "nginx")["essential"], false);
        assert_eq!(container(&derived, "log-router")["essential"], false);
        // Within a container only the image and `essential` change.
        let mut nginx = container(&described()["taskDefinition"], "nginx").clone();
        nginx["image"] = json!(NGINX_IMAGE);
        nginx["essential"] = json!(false);
        assert_eq!(container(&derived, "nginx"), &nginx);
    }

    #[test]
    fn the_migration_definition_carries_the_migration_tag_once_whatever_the_service_had() {
        let mut answer = described();
        answer["tags"] = json!([{"key": "convoy:migration", "value": "false"}]);
        let derived = derive(&answer, &Derivation::migration(&[], "app")).unwrap();
        assert_eq!(derived["tags"], json!([{"key": "convoy:migration", "value": "true"}]));

        answer.as_object_mut().unwrap().remove("tags");
        let derived = derive(&answer, &Derivation::migration(&[], "app")).unwrap();
        assert_eq!(derived["tags"], json!([{"key": "convoy:migration", "value": "true"}]));
    }

    #[test]
    fn a_revision_is_not_tagged_as_a_migration() {
        let derived = derive(&described(), &Derivation::revision(&pinned())).unwrap();
        assert_eq!(derived["tags"], json!([{"key": "team", "value": "shop"}]));
        let mut untagged = described();
        untagged.as_object_mut().unwrap().remove("tags");
        assert!(derive(&untagged, &Derivation::revision(&pinned())).unwrap().get("tags").is_none());
    }

    #[test]
    fn a_revision_keeps_the_family_and_each_containers_essential_flag() {
        let images = pinned();
        let derived = derive(&described(), &Derivation::revision(&images)).unwrap();
        assert_eq!(derived["family"], "shop-web");
        assert_eq!(container(&derived, "app")["image"], APP_IMAGE);
        assert_eq!(container(&derived, "nginx")["essential"], true);
        assert_eq!(container(&derived, "log-router")["essential"], false);
    }

    #[test]
    fn a_container_the_definition_lacks_is_refused_with_the_names_it_has() {
        let mut images = pinned();
        images.push(("worker".to_owned(), APP_IMAGE.to_owned()));
        let err = derive(&described(), &Derivation::migration(&images, "app")).unwrap_err();
        assert!(err.contains("\"worker\"") && err.contains("app, nginx, log-router"), "{err}");

        let images = pinned();
        let err = derive(&described(), &Derivation::migration(&images, "queue")).unwrap_err();
        assert!(err.contains("\"queue\"") && err.contains("app, nginx, log-router"), "{err}");
    }

    #[test]
    fn a_definition_without_a_family_gets_no_migration_family() {
        let mut answer = described();
        answer["taskDefinition"].as_object_mut().unwrap().remove("family");
        let err = derive(&answer, &Derivation::migration(&[], "app")).unwrap_err();
        assert!(err.contains("family"), "{err}");
    }

    #[test]
    fn awslogs_gives_the_containers_cloudwatch_group_and_stream_prefix_only() {
        let definition = &described()["taskDefinition"];
        assert_eq!(awslogs(definition, "app"), (Some("/ecs/shop-web".into()), Some("app".into())));
        assert_eq!(awslogs(definition, "nginx"), (None, None), "fluentd is not CloudWatch");
        assert_eq!(awslogs(definition, "log-router"), (None, None));
        assert_eq!(awslogs(definition, "worker"), (None, None));
        assert_eq!(containers(definition), ["app", "nginx", "log-router"]);
    }
}
