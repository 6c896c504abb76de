//! Operator settings, read once at start-up from `CONVOY_*` environment variables.

use std::collections::BTreeSet;

use crate::manifest::Policy;
use crate::names::{AccountId, InvalidName, ReleaseId, ReleaseKey, RepositoryName, ServiceName};

/// A setting is missing or unreadable; the function refuses to start and says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set; Convoy needs it (see template.yaml's parameters)")]
    Missing(&'static str),
    #[error("{0} is empty; list at least one name, separated by commas")]
    EmptyList(&'static str),
    #[error("{var}: {source}")]
    Invalid { var: &'static str, source: InvalidName },
    #[error("{0} must be true or false, not {1:?}")]
    NotABool(&'static str, String),
    #[error("{0} must be a whole number of seconds from 1 to 86400, not {1:?}")]
    NotSeconds(&'static str, String),
    #[error("{0}: {1}")]
    BadSettings(&'static str, String),
}

/// Where the records live and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// `CONVOY_STATE_BUCKET`: records under `state/`, the wait-list under `index/`.
    pub state_bucket: String,
    /// `CONVOY_S3_FORCE_PATH_STYLE`: path-style S3 addressing (moto); off in AWS.
    pub force_path_style: bool,
}

/// How long a claim to start a stage protects its holder; after it, a stalled start is taken over
/// (by the reconciler). Stages are started only by functions that time out within 60 s (the event
/// functions at 30 s, the reconciler at 60 s; `verify`, at 300 s, starts none), so a claim older
/// than this one's holder is dead; and it is shorter than a few reconcile periods.
pub const CLAIM_LEASE: chrono::Duration = chrono::Duration::seconds(90);

/// The operator's configuration: everything the use cases and the handlers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub store: StoreSettings,
    /// `CONVOY_MANIFEST_PREFIX` (default `releases/`): manifests are `<prefix><service>/<release>.json`.
    pub manifest_prefix: String,
    /// `CONVOY_ALLOWED_SERVICES`, `CONVOY_ALLOWED_REPOSITORIES`, and the region.
    pub policy: Policy,
    /// `CONVOY_CLUSTER`: the ECS cluster of the services.
    pub cluster: String,
    /// `CONVOY_MIGRATION_TIMEOUT_SECONDS` (default 1800): for manifests that set none.
    pub migration_timeout_seconds: u64,
    /// `CONVOY_COLLECTING_DEADLINE_SECONDS` (default 3600): how long after its manifest was
    /// accepted a release may wait for its images before it fails at images.
    pub collecting_deadline_seconds: u64,
    /// `CONVOY_MANIFEST_LOOKBACK_SECONDS` (default 86400): how far back the reconciler looks for
    /// manifests whose upload event was lost. An event is delivered and retried for at most an
    /// hour (the rule's and the functions' `MaximumEventAgeInSeconds`) before it is dead-lettered;
    /// a day also covers a reconciler that was down overnight, at one record read per manifest of
    /// that day per run.
    pub manifest_lookback_seconds: u64,
    /// Per service, where to deploy and how to verify: from the settings file the stack names
    /// (`CONVOY_SETTINGS_VERSION`, read at start by [`crate::startup`]), or `CONVOY_SERVICE_SETTINGS`.
    pub services: std::collections::BTreeMap<ServiceName, crate::settings::ServiceSettings>,
    /// The settings file's release groups: group name → member services.
    pub release_groups: std::collections::BTreeMap<String, Vec<ServiceName>>,
    /// `CONVOY_SETTINGS_VERSION`: the version of `settings/convoy.json` in the state bucket to read.
    pub settings_object_version: Option<String>,
    /// Which settings these are; every record created keeps it.
    pub settings_version: Option<crate::settings_file::SettingsVersion>,
    /// See [`CLAIM_LEASE`].
    pub claim_lease: chrono::Duration,
    /// `CONVOY_EVENT_BUS` (default `default`): where release events are published.
    pub event_bus: String,
    /// `CONVOY_MOVE_SCHEDULED_TASKS` (`true`; the template sets it when `ScheduledTaskRoleArns`
    /// grants the functions the schedules' roles): a service's scheduled tasks move to the
    /// revision of a release that goes live. Without it, Convoy touches no schedule or rule.
    pub move_scheduled_tasks: bool,
    /// `CONVOY_MANIFEST_TRAIL` (the stack's `ManifestTrailArn`): the trail whose log files say
    /// who uploaded each manifest (`crate::submitter`). Without it, each record says "unknown: no
    /// data-event trail".
    pub manifest_trail: Option<String>,
}

pub const STATE_BUCKET: &str = "CONVOY_STATE_BUCKET";
pub const FORCE_PATH_STYLE: &str = "CONVOY_S3_FORCE_PATH_STYLE";
pub const MANIFEST_PREFIX: &str = "CONVOY_MANIFEST_PREFIX";
pub const ALLOWED_SERVICES: &str = "CONVOY_ALLOWED_SERVICES";
pub const ALLOWED_REPOSITORIES: &str = "CONVOY_ALLOWED_REPOSITORIES";
pub const CLUSTER: &str = "CONVOY_CLUSTER";
pub const MIGRATION_TIMEOUT: &str = "CONVOY_MIGRATION_TIMEOUT_SECONDS";
pub const COLLECTING_DEADLINE: &str = "CONVOY_COLLECTING_DEADLINE_SECONDS";
pub const MANIFEST_LOOKBACK: &str = "CONVOY_MANIFEST_LOOKBACK_SECONDS";
pub const SERVICE_SETTINGS: &str = "CONVOY_SERVICE_SETTINGS";
pub const SETTINGS_VERSION: &str = "CONVOY_SETTINGS_VERSION";
pub const ACCOUNT_ID: &str = "CONVOY_ACCOUNT_ID";
pub const REGISTRY_ACCOUNTS: &str = "CONVOY_REGISTRY_ACCOUNTS";
pub const EVENT_BUS: &str = "CONVOY_EVENT_BUS";
pub const MOVE_SCHEDULED_TASKS: &str = "CONVOY_MOVE_SCHEDULED_TASKS";
pub const MANIFEST_TRAIL: &str = "CONVOY_MANIFEST_TRAIL";

impl StoreSettings {
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let state_bucket = required(lookup, STATE_BUCKET)?;
        let force_path_style = match lookup(FORCE_PATH_STYLE).as_deref().map(str::trim) {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(ConfigError::NotABool(FORCE_PATH_STYLE, other.to_owned())),
        };
        Ok(Self { state_bucket, force_path_style })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }
}

impl Config {
    /// Reads the settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>, region: &str) -> Result<Self, ConfigError> {
        let store = StoreSettings::from_lookup(lookup)?;
        let mut manifest_prefix =
            lookup(MANIFEST_PREFIX).filter(|p| !p.trim().is_empty()).unwrap_or("releases/".into());
        if !manifest_prefix.ends_with('/') {
            manifest_prefix.push('/');
        }
        let allowed_services = names(lookup, ALLOWED_SERVICES, ServiceName::new)?;
        let allowed_repositories = names(lookup, ALLOWED_REPOSITORIES, RepositoryName::new)?;
        let cluster = required(lookup, CLUSTER)?;
        let own_account = AccountId::new(required(lookup, ACCOUNT_ID)?.trim())
            .map_err(|source| ConfigError::Invalid { var: ACCOUNT_ID, source })?;
        let mut registries = optional_names(lookup, REGISTRY_ACCOUNTS, AccountId::new)?;
        registries.insert(own_account.clone());
        let migration_timeout_seconds = seconds(lookup, MIGRATION_TIMEOUT, 1800)?;
        let collecting_deadline_seconds = seconds(lookup, COLLECTING_DEADLINE, 3600)?;
        let manifest_lookback_seconds = seconds(lookup, MANIFEST_LOOKBACK, 86_400)?;
        let settings_object_version = lookup(SETTINGS_VERSION).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let (services, settings_version) = match lookup(SERVICE_SETTINGS).filter(|v| !v.trim().is_empty()) {
            None => Default::default(),
            // One source of settings, so no release runs on a mix of two.
            Some(_) if settings_object_version.is_some() => {
                return Err(ConfigError::BadSettings(
                    SETTINGS_VERSION,
                    format!("{SERVICE_SETTINGS} is set too: the functions read one or the other; empty it"),
                ));
            }
            Some(json) => (
                crate::settings::parse(&json).map_err(|e| ConfigError::BadSettings(SERVICE_SETTINGS, e))?,
                Some(crate::settings_file::SettingsVersion::of(SERVICE_SETTINGS, None, json.as_bytes())),
            ),
        };
        Ok(Self {
            store,
            manifest_prefix,
            policy: Policy {
                allowed_services,
                allowed_repositories,
                region: region.to_owned(),
                registries,
                account: Some(own_account),
            },
            cluster,
            migration_timeout_seconds,
            collecting_deadline_seconds,
            manifest_lookback_seconds,
            services,
            release_groups: Default::default(),
            settings_object_version,
            settings_version,
            claim_lease: CLAIM_LEASE,
            event_bus: event_bus(lookup),
            move_scheduled_tasks: lookup(MOVE_SCHEDULED_TASKS).is_some_and(|v| v.trim() == "true"),
            manifest_trail: lookup(MANIFEST_TRAIL).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()),
        })
    }

    pub fn from_env(region: &str) -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok(), region)
    }

    /// What the `convoy` CLI needs: the store; it reads, approves and rejects, and opens nothing.
    pub fn for_cli(store: StoreSettings, region: &str) -> Self {
        Self {
            store,
            manifest_prefix: "releases/".into(),
            policy: Policy {
                allowed_services: BTreeSet::new(),
                allowed_repositories: BTreeSet::new(),
                region: region.into(),
                registries: BTreeSet::new(),
                account: None,
            },
            cluster: String::new(),
            migration_timeout_seconds: 1800,
            collecting_deadline_seconds: 3600,
            manifest_lookback_seconds: 86_400,
            services: Default::default(),
            release_groups: Default::default(),
            settings_object_version: None,
            settings_version: None,
            claim_lease: CLAIM_LEASE,
            // The CLI's approvals and rejections are transitions too: published to the same bus.
            event_bus: event_bus(&|name| std::env::var(name).ok()),
            move_scheduled_tasks: false,
            manifest_trail: None,
        }
    }

    /// How long a migration may run when its manifest sets no timeout.
    pub fn migration_timeout(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.migration_timeout_seconds as i64)
    }

    /// How long a release may collect its images (see [`Config::collecting_deadline_seconds`]).
    pub fn collecting_deadline(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.collecting_deadline_seconds as i64)
    }

    /// How far back the reconciler looks for manifests without a record.
    pub fn manifest_lookback(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.manifest_lookback_seconds as i64)
    }

    /// The release a manifest key names: `<prefix><service>/<release>.json`.
    pub fn release_of(&self, object_key: &str) -> Result<ReleaseKey, String> {
        let shape = || format!("{object_key:?} is not {}<service>/<release>.json", self.manifest_prefix);
        let rest = object_key.strip_prefix(&self.manifest_prefix).ok_or_else(shape)?;
        let (service, file) = rest.split_once('/').ok_or_else(shape)?;
        let release = file.strip_suffix(".json").ok_or_else(shape)?;
        let service = ServiceName::new(service).map_err(|e| format!("{}: {e}", shape()))?;
        let release = ReleaseId::new(release).map_err(|e| format!("{}: {e}", shape()))?;
        Ok(ReleaseKey::new(service, release))
    }
}

/// A whole number of seconds from 1 to 86400, `default` when unset.
fn seconds(lookup: &impl Fn(&str) -> Option<String>, var: &'static str, default: u64) -> Result<u64, ConfigError> {
    match lookup(var).map(|v| v.trim().to_owned()) {
        None => Ok(default),
        Some(raw) => raw.parse().ok().filter(|s| (1..=86_400).contains(s)).ok_or(ConfigError::NotSeconds(var, raw)),
    }
}

/// A comma-separated list that may be absent or empty.
fn optional_names<T: Ord>(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    parse: impl Fn(&str) -> Result<T, InvalidName>,
) -> Result<BTreeSet<T>, ConfigError> {
    let raw = lookup(var).unwrap_or_default();
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse(s).map_err(|source| ConfigError::Invalid { var, source }))
        .collect()
}

/// `CONVOY_EVENT_BUS`, or the account's default bus.
fn event_bus(lookup: &impl Fn(&str) -> Option<String>) -> String {
    lookup(EVENT_BUS).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).unwrap_or_else(|| "default".into())
}

fn required(lookup: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<String, ConfigError> {
    lookup(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(var))
}

fn names<T: Ord>(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    parse: impl Fn(&str) -> Result<T, InvalidName>,
) -> Result<BTreeSet<T>, ConfigError> {
    lookup(var).ok_or(ConfigError::Missing(var))?;
    let set = optional_names(lookup, var, parse)?;
    if set.is_empty() {
        return Err(ConfigError::EmptyList(var));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn a_full_environment_is_read() {
        let config = Config::from_lookup(
            &env(&[
                (STATE_BUCKET, "convoy-state"),
                (ALLOWED_SERVICES, "web, api"),
                (ALLOWED_REPOSITORIES, "app,nginx"),
                (FORCE_PATH_STYLE, "true"),
                (CLUSTER, "prod"),
                (ACCOUNT_ID, "123456789012"),
                (REGISTRY_ACCOUNTS, "210987654321, "),
            ]),
            "us-east-1",
        )
        .unwrap();
        assert_eq!(config.store.state_bucket, "convoy-state");
        assert!(config.store.force_path_style);
        assert_eq!(config.manifest_prefix, "releases/");
        assert_eq!(config.policy.allowed_services.len(), 2);
        assert_eq!(config.cluster, "prod");
        assert_eq!(config.migration_timeout_seconds, 1800);
        assert_eq!(config.collecting_deadline_seconds, 3600, "an hour unless set");
        assert_eq!(config.manifest_lookback_seconds, 86_400, "a day unless set");
        let registries: Vec<&str> = config.policy.registries.iter().map(|a| a.as_str()).collect();
        assert_eq!(registries, ["123456789012", "210987654321"], "its own account, and the listed one");
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![(STATE_BUCKET, "b"), (ALLOWED_SERVICES, "web"), (ALLOWED_REPOSITORIES, "app"), (CLUSTER, "prod")]
    }

    #[test]
    fn convoys_own_account_is_required_for_the_registry_check() {
        let err = Config::from_lookup(&env(&base()), "r").unwrap_err();
        assert_eq!(err, ConfigError::Missing(ACCOUNT_ID));
    }

    #[test]
    fn a_listed_registry_account_that_is_not_12_digits_is_refused_with_the_variable() {
        let mut vars = base();
        vars.extend([(ACCOUNT_ID, "123456789012"), (REGISTRY_ACCOUNTS, "12345")]);
        let err = Config::from_lookup(&env(&vars), "r").unwrap_err();
        assert!(err.to_string().starts_with("CONVOY_REGISTRY_ACCOUNTS: account id \"12345\""), "{err}");
    }

    #[test]
    fn a_migration_timeout_that_is_not_seconds_is_refused() {
        let err = Config::from_lookup(
            &env(&[
                (STATE_BUCKET, "b"),
                (ALLOWED_SERVICES, "web"),
                (ALLOWED_REPOSITORIES, "app"),
                (CLUSTER, "prod"),
                (ACCOUNT_ID, "123456789012"),
                (MIGRATION_TIMEOUT, "10m"),
            ]),
            "r",
        )
        .unwrap_err();
        assert_eq!(err, ConfigError::NotSeconds(MIGRATION_TIMEOUT, "10m".into()));
    }

    #[test]
    fn a_collecting_deadline_is_read_in_seconds() {
        let mut vars = base();
        vars.extend([(ACCOUNT_ID, "123456789012"), (COLLECTING_DEADLINE, " 900 ")]);
        let config = Config::from_lookup(&env(&vars), "r").unwrap();
        assert_eq!(config.collecting_deadline(), chrono::Duration::minutes(15));
    }

    #[test]
    fn a_collecting_deadline_that_is_not_seconds_is_refused_with_the_variable() {
        for bad in ["1h", "0", "-5", "86401", ""] {
            let mut vars = base();
            vars.extend([(ACCOUNT_ID, "123456789012"), (COLLECTING_DEADLINE, bad)]);
            let err = Config::from_lookup(&env(&vars), "r").unwrap_err();
            assert_eq!(err, ConfigError::NotSeconds(COLLECTING_DEADLINE, bad.into()));
            assert!(err.to_string().starts_with("CONVOY_COLLECTING_DEADLINE_SECONDS must be"), "{err}");
        }
    }

    #[test]
    fn a_manifest_lookback_that_is_not_seconds_is_refused_with_the_variable() {
        let mut vars = base();
        vars.extend([(ACCOUNT_ID, "123456789012"), (MANIFEST_LOOKBACK, "1d")]);
        let err = Config::from_lookup(&env(&vars), "r").unwrap_err();
        assert_eq!(err, ConfigError::NotSeconds(MANIFEST_LOOKBACK, "1d".into()));
    }

    #[test]
    fn a_missing_state_bucket_is_named_in_the_error() {
        let err =
            Config::from_lookup(&env(&[(ALLOWED_SERVICES, "web"), (ALLOWED_REPOSITORIES, "app")]), "r").unwrap_err();
        assert_eq!(err, ConfigError::Missing(STATE_BUCKET));
        assert!(err.to_string().starts_with("CONVOY_STATE_BUCKET is not set"));
    }

    #[test]
    fn an_empty_allow_list_is_refused() {
        let err = Config::from_lookup(
            &env(&[(STATE_BUCKET, "b"), (ALLOWED_SERVICES, " , "), (ALLOWED_REPOSITORIES, "app")]),
            "r",
        )
        .unwrap_err();
        assert_eq!(err, ConfigError::EmptyList(ALLOWED_SERVICES));
    }

    #[test]
    fn an_invalid_repository_name_is_refused_with_the_variable() {
        let err = Config::from_lookup(
            &env(&[(STATE_BUCKET, "b"), (ALLOWED_SERVICES, "web"), (ALLOWED_REPOSITORIES, "App")]),
            "r",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("CONVOY_ALLOWED_REPOSITORIES:"), "{err}");
    }

    #[test]
    fn a_settings_version_with_settings_in_the_environment_too_is_refused() {
        let mut vars = base();
        vars.extend([(ACCOUNT_ID, "123456789012"), (SETTINGS_VERSION, "v1"), (SERVICE_SETTINGS, "{}")]);
        let err = Config::from_lookup(&env(&vars), "r").unwrap_err();
        assert!(err.to_string().starts_with("CONVOY_SETTINGS_VERSION: CONVOY_SERVICE_SETTINGS is set too"), "{err}");
    }

    #[test]
    fn settings_from_the_environment_are_versioned_by_their_digest() {
        let mut vars = base();
        vars.extend([(ACCOUNT_ID, "123456789012"), (SERVICE_SETTINGS, "{}")]);
        let version = Config::from_lookup(&env(&vars), "r").unwrap().settings_version.unwrap();
        assert_eq!(version.source, "CONVOY_SERVICE_SETTINGS");
        assert_eq!(version.sha256, crate::settings_file::sha256_hex(b"{}"));
        vars.pop();
        vars.push((SETTINGS_VERSION, " v1 "));
        let config = Config::from_lookup(&env(&vars), "r").unwrap();
        assert_eq!((config.settings_object_version.as_deref(), config.settings_version), (Some("v1"), None));
    }

    #[test]
    fn path_style_must_be_a_boolean() {
        let err = StoreSettings::from_lookup(&env(&[(STATE_BUCKET, "b"), (FORCE_PATH_STYLE, "yes")])).unwrap_err();
        assert!(matches!(err, ConfigError::NotABool(..)));
    }
}
