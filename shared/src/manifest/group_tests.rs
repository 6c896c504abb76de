use serde_json::{Value, json};

use super::*;
use crate::manifest::{Submitted, read};

const APP: &str = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/laravel-app:4cf03d1";
const NGINX: &str = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/laravel-app-nginx:4cf03d1";

fn key() -> ReleaseKey {
    ReleaseKey::new("shop".parse().unwrap(), "4cf03d1".parse().unwrap())
}

/// The example of docs/reference/manifest.md's version 2 section.
fn example() -> Value {
    json!({
        "version": 2, "release": "4cf03d1", "group": "shop",
        "images": {"app": APP, "nginx": NGINX},
        "services": {
            "web": {"containers": {"laravel": "app", "nginx": "nginx"},
                    "verify": {"path": "/health", "expect_status": 200}},
            "worker": {"containers": {"worker": "app"}},
            "scheduler": {"containers": {"cron": "app"}}
        },
        "migration": {"service": "web", "container": "laravel", "command": ["php", "artisan", "migrate", "--force"]},
        "order": ["web", ["worker", "scheduler"]],
        "approval": "manual"
    })
}

fn group(value: &Value) -> Result<GroupManifest, ManifestError> {
    match read(value.to_string().as_bytes(), &key())? {
        Submitted::Group(manifest) => Ok(manifest),
        Submitted::Service(_) => panic!("a version 2 manifest read as one service's"),
    }
}

fn refusal(change: impl FnOnce(&mut Value)) -> String {
    let mut value = example();
    change(&mut value);
    group(&value).expect_err("refused").to_string()
}

fn names(services: &[&ServiceName]) -> Vec<String> {
    services.iter().map(ToString::to_string).collect()
}

#[test]
fn the_docs_example_names_each_services_containers_one_migration_and_the_order() {
    let manifest = group(&example()).unwrap();
    assert_eq!(manifest.group.as_str(), "shop");
    assert_eq!(manifest.services.len(), 3);
    let web = &manifest.services[&"web".parse().unwrap()];
    assert_eq!(web.verify.as_ref().map(|v| v.path.as_str()), Some("/health"));
    let migration = manifest.migration.as_ref().unwrap();
    assert_eq!((migration.service.as_str(), migration.container.as_str()), ("web", "laravel"));
    assert_eq!(migration.run().command, ["php", "artisan", "migrate", "--force"]);
    assert_eq!(manifest.order.len(), 2, "web, then worker and scheduler together");
    assert_eq!(names(&manifest.order[1].0.iter().collect::<Vec<_>>()), ["worker", "scheduler"]);
    assert_eq!(names(&manifest.services_in_order().collect::<Vec<_>>()), ["web", "worker", "scheduler"]);
    assert_eq!(manifest.approval, Some(Approval::Manual));
}

#[test]
fn an_image_three_services_run_is_one_image_of_the_release() {
    let manifest = group(&example()).unwrap();
    assert_eq!(manifest.images.len(), 2, "app and nginx, each once");
    let web = manifest.containers_of(&"web".parse().unwrap());
    let worker = manifest.containers_of(&"worker".parse().unwrap());
    let scheduler = manifest.containers_of(&"scheduler".parse().unwrap());
    let laravel: ContainerName = "laravel".parse().unwrap();
    assert_eq!(web[&laravel].uri(), APP);
    assert_eq!(worker[&"worker".parse::<ContainerName>().unwrap()], web[&laravel]);
    assert_eq!(scheduler[&"cron".parse::<ContainerName>().unwrap()], web[&laravel]);
}

#[test]
fn one_uri_under_two_image_names_is_refused_so_it_is_pinned_once() {
    let reason = refusal(|v| v["images"]["app2"] = APP.into());
    assert_eq!(
        reason,
        format!(
            "images \"app\" and \"app2\" are both {APP}: name an image once and let the services share it (it is \
             pinned once, for all)"
        )
    );
}

#[test]
fn a_step_of_one_service_is_written_as_its_name_and_a_step_of_several_as_a_list() {
    let manifest = group(&example()).unwrap();
    let stored = serde_json::to_value(&manifest).unwrap();
    assert_eq!(stored["order"], json!(["web", ["worker", "scheduler"]]));
    let back: GroupManifest = serde_json::from_value(stored).unwrap();
    assert_eq!(back, manifest, "the record reads back what it stored");
}

#[test]
fn workers_before_the_web_service_are_written_first_in_the_order() {
    let manifest = group(&{
        let mut v = example();
        v["order"] = json!([["worker", "scheduler"], "web"]);
        v
    })
    .unwrap();
    assert_eq!(names(&manifest.services_in_order().collect::<Vec<_>>()), ["worker", "scheduler", "web"]);
}

#[test]
fn each_malformed_part_is_refused_with_a_reason_a_person_can_act_on() {
    type Change = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(Change, &str)> = vec![
        (Box::new(|v| v["services"] = json!({})), "the manifest names no services"),
        (Box::new(|v| v["images"] = json!({})), "the manifest names no images"),
        (Box::new(|v| v["services"]["worker"]["containers"] = json!({})), "service \"worker\" names no containers"),
        (
            Box::new(|v| v["services"]["worker"]["containers"]["worker"] = "ap".into()),
            "service \"worker\"'s container \"worker\" names image \"ap\", which the manifest's images do not hold",
        ),
        (
            Box::new(|v| v["images"]["spare"] = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/spare:1".into()),
            "image \"spare\" is named by no service's containers; an image the release does not run is not pinned",
        ),
        (
            Box::new(|v| v["images"]["app"] = "docker.io/library/php:8".into()),
            "image \"app\" (\"docker.io/library/php:8\") is not an ECR image URI: the host is not \
             <account>.dkr.ecr.<region>.amazonaws.com",
        ),
        (
            Box::new(|v| v["migration"]["service"] = "billing".into()),
            "the migration runs from the task definition of service \"billing\", which the manifest does not release",
        ),
        (
            Box::new(|v| v["migration"]["container"] = "worker".into()),
            "the migration runs in container \"worker\" of service \"web\", which that service's containers do not \
             name",
        ),
        (Box::new(|v| v["migration"]["command"] = json!([" "])), "the migration command is empty"),
        (
            Box::new(|v| v["migration"]["timeout_seconds"] = 0.into()),
            "the migration timeout must be between 1 and 86400 seconds, not 0",
        ),
        (
            Box::new(|v| v["order"] = json!([])),
            "order is empty: list the services' steps (a name, or a list of names deployed together)",
        ),
        (
            Box::new(|v| v["order"] = json!(["web", [], "worker", "scheduler"])),
            "order has an empty step: a step is a service name or a non-empty list of them",
        ),
        (
            Box::new(|v| v["order"] = json!(["web", "worker", "scheduler", "billing"])),
            "order names service \"billing\", which the manifest does not release",
        ),
        (
            Box::new(|v| v["order"] = json!(["web", ["worker", "web"], "scheduler"])),
            "order names service \"web\" twice; each service is deployed once",
        ),
        (
            Box::new(|v| v["order"] = json!(["web", "worker"])),
            "order leaves out service \"scheduler\": every service of the manifest is in one step",
        ),
        (
            Box::new(|v| v["group"] = "store".into()),
            "the manifest says group \"store\" but was uploaded as \"shop\" (releases/<group>/<release>.json)",
        ),
        (
            Box::new(|v| v["release"] = "9999999".into()),
            "the manifest says release \"9999999\" but was uploaded as \"4cf03d1\" (releases/<service>/<release>.json)",
        ),
        (
            Box::new(|v| v["services"]["web"]["verify"]["path"] = "//evil.example/".into()),
            "the verify path \"//evil.example/\" must be a path starting with '/', without spaces or control \
             characters (the listener is the operator's, not the manifest's)",
        ),
    ];
    for (change, expected) in cases {
        assert_eq!(refusal(change), expected);
    }
}

#[test]
fn an_unknown_field_at_any_level_is_refused_as_a_version_2_shape_error() {
    for change in [
        Box::new(|v: &mut Value| v["service"] = "web".into()) as Box<dyn FnOnce(&mut Value)>,
        Box::new(|v: &mut Value| v["services"]["web"]["image"] = APP.into()),
        Box::new(|v: &mut Value| v["migration"]["task_definition"] = "web:3".into()),
    ] {
        let reason = refusal(change);
        assert!(reason.starts_with("the manifest does not match the version 2 format: unknown field"), "{reason}");
    }
}

#[test]
fn a_step_that_is_neither_a_name_nor_a_list_of_names_is_refused() {
    let reason = refusal(|v| v["order"] = json!(["web", {"worker": 1}]));
    assert!(reason.starts_with("the manifest does not match the version 2 format"), "{reason}");
}

#[test]
fn a_group_or_service_name_unsafe_in_an_s3_key_is_refused() {
    let reason = refusal(|v| v["group"] = "../shop".into());
    assert!(reason.starts_with("group name \"../shop\" has characters that are unsafe"), "{reason}");
    let reason = refusal(|v| {
        let web = v["services"].as_object_mut().unwrap().remove("web").unwrap();
        v["services"]["we b"] = web;
    });
    assert!(reason.starts_with("service name \"we b\" has characters that are unsafe"), "{reason}");
}

#[test]
fn a_version_2_manifest_is_not_read_as_one_services_manifest() {
    let err = crate::manifest::parse(example().to_string().as_bytes(), &key()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the manifest is version 2, a release of release group \"shop\": it is read as the group's, not as one \
         service's"
    );
}

#[test]
fn a_version_1_manifest_is_read_as_one_services_as_before() {
    let key = ReleaseKey::new("web".parse().unwrap(), "4cf03d1".parse().unwrap());
    let text = format!(r#"{{"version": 1, "release": "4cf03d1", "service": "web", "images": {{"app": "{APP}"}}}}"#);
    assert!(matches!(read(text.as_bytes(), &key), Ok(Submitted::Service(_))));
    let list = format!(r#"[{{"name": "app", "imageUri": "{APP}"}}]"#);
    assert!(matches!(read(list.as_bytes(), &key), Ok(Submitted::Service(_))));
}

#[test]
fn a_duplicate_key_inside_a_service_is_refused_as_in_version_1() {
    let text = example().to_string().replace(r#""worker":"app""#, r#""worker":"app","worker":"nginx""#);
    assert_ne!(text, example().to_string(), "the test edits the document");
    assert_eq!(read(text.as_bytes(), &key()).unwrap_err(), ManifestError::DuplicateKey("worker".into()));
}

mod admission {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::settings::ServiceSettings;

    fn policy() -> Policy {
        Policy {
            allowed_services: ["web", "worker", "scheduler"].iter().map(|s| s.parse().unwrap()).collect(),
            allowed_repositories: ["laravel-app".parse().unwrap(), "laravel-app-nginx".parse().unwrap()].into(),
            region: "ap-northeast-1".into(),
            registries: ["123456789012".parse().unwrap()].into(),
            account: Some("123456789012".parse().unwrap()),
        }
    }

    fn members(names: &[&str]) -> Vec<ServiceName> {
        names.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn admit(policy: &Policy, manifest: &GroupManifest, members: Option<&[ServiceName]>) -> Result<(), String> {
        let groups: BTreeSet<&str> = ["shop", "night"].into();
        policy.admit_group(&key(), manifest, members, &groups).map_err(|e| e.to_string())
    }

    fn settings(approval: &str) -> BTreeMap<ServiceName, ServiceSettings> {
        let one = |name: &str| {
            format!(
                r#""{name}": {{"codedeploy": {{"application": "a", "deployment_group": "{name}", "container": "nginx",
                    "port": 80, "verify_function": "v"}}, "test_listener": "http://alb:8080", "approval": "{approval}",
                    "probe": {{"path": "/health", "count": 3, "interval_ms": 1000, "timeout_ms": 1000}}}}"#
            )
        };
        let json = format!("{{{}, {}, {}}}", one("web"), one("worker"), one("scheduler"));
        crate::settings::parse(&json).unwrap()
    }

    #[test]
    fn a_manifest_naming_its_groups_services_is_admitted() {
        let manifest = group(&example()).unwrap();
        assert_eq!(admit(&policy(), &manifest, Some(&members(&["web", "worker", "scheduler", "mailer"]))), Ok(()));
        let ceiling = crate::ceiling::admit_group(&settings("manual"), 1800, &key(), &manifest);
        assert_eq!(ceiling, Ok(()));
    }

    #[test]
    fn a_service_outside_the_release_group_is_refused_a_manifest_cannot_add_one() {
        let manifest = group(&example()).unwrap();
        assert_eq!(
            admit(&policy(), &manifest, Some(&members(&["web", "worker"]))),
            Err("service \"scheduler\" is not in release group \"shop\" (its services: web, worker): a manifest cannot \
                 add a service to its group"
                .into())
        );
    }

    #[test]
    fn a_group_the_settings_do_not_have_is_refused_naming_those_they_have() {
        let manifest = group(&example()).unwrap();
        assert_eq!(
            admit(&policy(), &manifest, None),
            Err("release group \"shop\" is not in the operator's settings (release groups: night, shop); release \
                 groups live in the settings file (docs/reference/settings.md)"
                .into())
        );
    }

    #[test]
    fn each_services_part_meets_the_allow_lists_as_one_services_manifest_does() {
        let manifest = group(&example()).unwrap();
        let all = members(&["web", "worker", "scheduler"]);
        let mut policy = policy();
        policy.allowed_services.remove(&"scheduler".parse().unwrap());
        assert_eq!(
            admit(&policy, &manifest, Some(&all)),
            Err("service \"scheduler\" is not one Convoy may deploy (allowed: web, worker)".into())
        );
        let mut policy = super::admission::policy();
        policy.allowed_repositories.remove(&"laravel-app-nginx".parse().unwrap());
        let reason = admit(&policy, &manifest, Some(&all)).unwrap_err();
        assert!(reason.starts_with("repository \"laravel-app-nginx\" is not one Convoy may deploy from"), "{reason}");
    }

    #[test]
    fn the_ceiling_applies_per_service_naming_the_service_that_asks_for_less() {
        let mut value = example();
        value["approval"] = "auto".into();
        let manifest = group(&value).unwrap();
        let mut services = settings("auto");
        let manual = settings("manual");
        services.insert("scheduler".parse().unwrap(), manual[&"scheduler".parse::<ServiceName>().unwrap()].clone());
        let err = crate::ceiling::admit_group(&services, 1800, &key(), &manifest).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the manifest asks for approval auto; the operator's settings for service scheduler say manual: a \
             manifest may only ask for more checks",
            "the release's one approval is auto only where every service allows it"
        );

        let mut value = example();
        value["services"]["web"]["verify"] = json!({"path": "/health", "expect_status": 404});
        let err = crate::ceiling::admit_group(&settings("manual"), 1800, &key(), &group(&value).unwrap()).unwrap_err();
        assert!(err.to_string().starts_with("the manifest asks for verify.expect_status 404"), "{err}");
        assert!(err.to_string().contains("for service web say 200"), "{err}");

        let mut value = example();
        value["migration"]["timeout_seconds"] = 7200.into();
        let err = crate::ceiling::admit_group(&settings("manual"), 1800, &key(), &group(&value).unwrap()).unwrap_err();
        assert!(err.to_string().contains("migration.timeout_seconds 7200"), "{err}");
        assert!(err.to_string().contains("for service web"), "the migration's service: {err}");
    }

    #[test]
    fn a_service_without_settings_is_refused_before_anything_runs() {
        let manifest = group(&example()).unwrap();
        let mut services = settings("manual");
        services.remove(&"worker".parse().unwrap());
        let err = crate::ceiling::admit_group(&services, 1800, &key(), &manifest).unwrap_err();
        assert_eq!(
            err.to_string(),
            "service \"worker\" has no settings: the operator's settings decide how each service of a release deploys"
        );
    }
}
