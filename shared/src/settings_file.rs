//! The operator's settings file: every service's settings and the release groups in one JSON
//! document, kept and reviewed in the operator's infrastructure repository, checked by
//! `convoy check --settings FILE`, published with `convoy settings publish FILE` as one object
//! version in the state bucket ([`SETTINGS_KEY`]), and read by every function at start (the stack
//! names the version). Its JSON Schema (`schema/settings.schema.json`) is generated from these
//! types, so an editor completes and checks what the functions parse. It grows by adding fields:
//! an unknown field is refused (a typo must not pass for an unset field), so a file using a newer
//! field is refused by older functions rather than half read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest as _;

use crate::names::ServiceName;
use crate::settings::ServiceSettings;

/// Where the published settings live in the state bucket. Writes there are denied by the bucket
/// policy to all but the settings publishers; the functions may only read it, by version.
pub const SETTINGS_KEY: &str = "settings/convoy.json";

/// The largest settings file read (a service's settings are about 0.5 KB: room for thousands).
pub const MAX_SETTINGS_BYTES: usize = 1024 * 1024;

/// Convoy's settings file: every service Convoy may deploy, and the release groups (docs/reference/settings.md).
// As written; only [`parse`] turns it into [`Settings`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Convoy settings")]
pub struct SettingsFile {
    /// Where an editor finds this file's schema (e.g. `./settings.schema.json`, as printed by
    /// `convoy settings schema`). Convoy ignores it.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Each service Convoy may deploy, by its ECS service name: where it deploys, which test
    /// listener verifies it and how, who approves.
    pub services: BTreeMap<String, crate::settings::RawSettings>,
    /// Services released together, by group name. Each service is in at most one group.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub release_groups: BTreeMap<String, ReleaseGroup>,
}

/// A release group: services that may be released together, by one version 2 manifest uploaded
/// as `releases/<group>/<release>.json` (issue 25: read and checked today, not deployed yet). A
/// group is not named like a service, so the key says which it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseGroup {
    /// The member services: names of `services`, each once, in no other group.
    #[schemars(length(min = 1))]
    pub services: Vec<String>,
}

/// The settings as the functions use them, checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub services: BTreeMap<ServiceName, ServiceSettings>,
    /// Group name → its member services.
    pub release_groups: BTreeMap<String, Vec<ServiceName>>,
}

/// What is wrong with a settings file: every problem found, each with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.lines().join("\n"))]
pub struct Problems(pub Vec<Problem>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub scope: Scope,
    pub message: String,
}

/// Where a problem is: the file as a whole, one service, or one release group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    File,
    Service(String),
    Group(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Scope::File => write!(f, "{}", self.message),
            Scope::Service(name) => write!(f, "service {name}: {}", self.message),
            Scope::Group(name) => write!(f, "release group {name}: {}", self.message),
        }
    }
}

impl Problems {
    /// One line per problem, as `convoy check` prints them.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

/// The top level alone, so that each service is read (and refused) on its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Outline {
    #[serde(rename = "$schema", default)]
    _schema: Option<Value>,
    services: BTreeMap<String, Value>,
    #[serde(default)]
    release_groups: BTreeMap<String, Value>,
}

/// Reads and checks a settings file the way the functions do: each service with the same parse
/// and checks as `CONVOY_SERVICE_SETTINGS` ([`crate::settings::parse`]), then the release groups.
/// Every problem is reported, each naming its service or group.
pub fn parse(bytes: &[u8]) -> Result<Settings, Problems> {
    let file = |message: String| Problems(vec![Problem { scope: Scope::File, message }]);
    if bytes.len() > MAX_SETTINGS_BYTES {
        return Err(file(format!("the settings file is {} bytes; at most {MAX_SETTINGS_BYTES} are read", bytes.len())));
    }
    let outline: Outline = serde_json::from_slice(bytes).map_err(|e| file(format!("not a settings file: {e}")))?;
    let mut problems = Vec::new();
    let mut settings = Settings::default();
    if outline.services.is_empty() {
        problems.push(Problem { scope: Scope::File, message: "services is empty: name at least one".into() });
    }
    for (name, value) in outline.services {
        let scope = Scope::Service(name.clone());
        // The typed read first: its message has no position (the file's would be lost anyway).
        if let Err(e) = serde_json::from_value::<crate::settings::RawSettings>(value.clone()) {
            problems.push(Problem { scope, message: e.to_string() });
            continue;
        }
        let one = serde_json::json!({ &name: value }).to_string();
        match crate::settings::parse(&one) {
            Ok(parsed) => settings.services.extend(parsed),
            Err(message) => {
                let message = message.strip_prefix(&format!("service {name}: ")).unwrap_or(&message).to_owned();
                problems.push(Problem { scope, message });
            }
        }
    }
    let mut member_of: BTreeMap<String, String> = BTreeMap::new();
    for (group, value) in outline.release_groups {
        let scope = Scope::Group(group.clone());
        let mut problem = |message: String| problems.push(Problem { scope: scope.clone(), message });
        if let Err(e) = ServiceName::new(&group) {
            problem(format!("a group is named as a service is: {e}"));
            continue;
        }
        // `releases/<name>/` is a service's or a group's: the name alone must say which.
        if settings.services.keys().any(|service| service.as_str() == group) {
            problem(format!(
                "{group} is also a service's name: a manifest under releases/{group}/ must name one or the other"
            ));
            continue;
        }
        let members = match serde_json::from_value::<ReleaseGroup>(value) {
            Ok(read) => read.services,
            Err(e) => {
                problem(e.to_string());
                continue;
            }
        };
        if members.is_empty() {
            problem("services is empty: name the services released together".into());
        }
        let mut seen = BTreeSet::new();
        let mut names = Vec::new();
        for member in members {
            if !seen.insert(member.clone()) {
                problem(format!("names {member} twice"));
                continue;
            }
            let known = ServiceName::new(&member).ok().filter(|n| settings.services.contains_key(n));
            let Some(known) = known else {
                problem(format!("{member} is not a service of this file (or its settings are refused)"));
                continue;
            };
            if let Some(other) = member_of.insert(member.clone(), group.clone()) {
                problem(format!("{member} is already in release group {other}: a service is in one group at most"));
                continue;
            }
            names.push(known);
        }
        settings.release_groups.insert(group, names);
    }
    if problems.is_empty() { Ok(settings) } else { Err(Problems(problems)) }
}

/// The settings file's JSON Schema, generated from [`SettingsFile`] (the committed
/// `schema/settings.schema.json` is this, and a test fails when they differ).
pub fn schema() -> String {
    let schema =
        schemars::generate::SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<SettingsFile>();
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serialises");
    text.push('\n');
    text
}

/// Which settings a release was opened under: where they were read, the object version (when
/// read from S3) and the SHA-256 of the bytes parsed (the same digest `convoy settings publish`
/// and `convoy check --settings` print for the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsVersion {
    /// `s3://<bucket>/settings/convoy.json`, or `CONVOY_SERVICE_SETTINGS` (the environment).
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Lowercase hex.
    pub sha256: String,
}

impl SettingsVersion {
    pub fn of(source: impl Into<String>, version_id: Option<String>, bytes: &[u8]) -> Self {
        Self { source: source.into(), version_id, sha256: sha256_hex(bytes) }
    }
}

impl fmt::Display for SettingsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{} ({}", self.sha256, self.source)?;
        if let Some(version) = &self.version_id {
            write!(f, " version {version}")?;
        }
        write!(f, ")")
    }
}

/// The SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(group: &str) -> Value {
        serde_json::json!({"codedeploy": {"application": "shop", "deployment_group": group, "container": "nginx",
                           "port": 80, "verify_function": "convoy-verify"},
                           "test_listener": "http://internal-alb:8080"})
    }

    fn file(services: &[&str], groups: Value) -> Vec<u8> {
        let services: serde_json::Map<String, Value> = services.iter().map(|s| (s.to_string(), service(s))).collect();
        serde_json::json!({"$schema": "./settings.schema.json", "services": services, "release_groups": groups})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_file_of_services_and_a_release_group_is_read_with_the_services_defaults() {
        let settings =
            parse(&file(&["web", "worker", "api"], serde_json::json!({"shop": {"services": ["web", "worker"]}})))
                .unwrap();
        assert_eq!(settings.services.len(), 3);
        let web = &settings.services[&"web".parse().unwrap()];
        assert_eq!(web.probe.count, 10, "the same defaults as CONVOY_SERVICE_SETTINGS");
        let shop: Vec<&str> = settings.release_groups["shop"].iter().map(|s| s.as_str()).collect();
        assert_eq!(shop, ["web", "worker"]);
    }

    #[test]
    fn every_bad_service_is_named_with_what_is_wrong_not_only_the_first() {
        let mut value: Value = serde_json::from_slice(&file(&["web", "worker", "api"], Value::Null)).unwrap();
        value.as_object_mut().unwrap().remove("release_groups");
        value["services"]["web"]["test_listener"] = "internal-alb:8080".into();
        value["services"]["worker"]["codedeploy"]["prot"] = 1.into();
        let problems = parse(value.to_string().as_bytes()).unwrap_err().lines();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("service web: test_listener \"internal-alb:8080\" must start with"),
            "{problems:?}"
        );
        assert!(problems[1].starts_with("service worker: unknown field `prot`"), "{problems:?}");
    }

    #[test]
    fn a_service_in_two_groups_or_a_group_naming_an_unknown_service_is_refused() {
        let groups = serde_json::json!({"shop": {"services": ["web", "worker"]},
                                        "night": {"services": ["worker", "batch", "web"]}});
        let problems = parse(&file(&["web", "worker"], groups)).unwrap_err().lines();
        assert_eq!(
            problems,
            [
                "release group night: batch is not a service of this file (or its settings are refused)",
                "release group shop: web is already in release group night: a service is in one group at most",
                "release group shop: worker is already in release group night: a service is in one group at most",
            ]
        );
    }

    #[test]
    fn an_unknown_top_level_field_is_refused_so_a_typo_is_not_an_unset_field() {
        let mut value: Value = serde_json::from_slice(&file(&["web"], serde_json::json!({}))).unwrap();
        value["release_group"] = serde_json::json!({});
        let problems = parse(value.to_string().as_bytes()).unwrap_err().lines();
        assert!(problems[0].contains("unknown field `release_group`"), "{problems:?}");
    }

    #[test]
    fn a_group_named_like_a_service_is_refused_so_a_manifest_key_names_one_or_the_other() {
        let groups = serde_json::json!({"web": {"services": ["web", "worker"]}});
        let problems = parse(&file(&["web", "worker"], groups)).unwrap_err().lines();
        assert_eq!(
            problems,
            [
                "release group web: web is also a service's name: a manifest under releases/web/ must name one or the other"
            ]
        );
    }

    #[test]
    fn a_group_with_no_services_or_a_name_twice_is_refused() {
        let groups = serde_json::json!({"empty": {"services": []}, "twice": {"services": ["web", "web"]}});
        let problems = parse(&file(&["web"], groups)).unwrap_err().lines();
        assert_eq!(
            problems,
            [
                "release group empty: services is empty: name the services released together",
                "release group twice: names web twice"
            ]
        );
    }

    #[test]
    fn a_file_with_no_services_or_not_json_is_refused_as_a_whole() {
        assert_eq!(parse(br#"{"services": {}}"#).unwrap_err().lines(), ["services is empty: name at least one"]);
        assert!(parse(b"services: {}").unwrap_err().lines()[0].starts_with("not a settings file: "));
    }

    #[test]
    fn the_version_names_its_source_and_the_sha256_of_the_bytes() {
        let version = SettingsVersion::of("s3://b/settings/convoy.json", Some("v1".into()), b"abc");
        assert_eq!(version.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(
            version.to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad (s3://b/settings/convoy.json \
             version v1)"
        );
    }

    /// The schema editors use is the one these types generate: regenerate the committed copy with
    /// `cargo run -p convoy-cli -- settings schema > schema/settings.schema.json`.
    #[test]
    fn the_committed_json_schema_is_the_one_the_rust_types_generate() {
        // As values: key order depends on serde_json's preserve_order, which dev-dependencies turn on.
        let committed: Value = serde_json::from_str(include_str!("../../schema/settings.schema.json")).unwrap();
        let generated: Value = serde_json::from_str(&schema()).unwrap();
        assert!(
            committed == generated,
            "schema/settings.schema.json differs from the types: run cargo run -p convoy-cli -- settings schema > \
             schema/settings.schema.json"
        );
    }
}
