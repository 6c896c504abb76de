//! Validated names. Each is parsed once at the edge and carried inward as a type, so code past the
//! edge never re-checks a string.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a name was refused; the message names the field and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {} {rule}", Excerpt(value))]
pub struct InvalidName {
    pub what: &'static str,
    pub value: String,
    pub rule: &'static str,
}

/// A value from outside, quoted for a person: whole when short, otherwise its first
/// [`Excerpt::KEEP`] characters and its length. A reason lands in the release record, in logs and
/// in notifications; a 2,000-character release id must not make a 2,000-character reason.
pub struct Excerpt<'a>(pub &'a str);

impl Excerpt<'_> {
    pub const KEEP: usize = 64;
}

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.chars().count();
        if total <= Self::KEEP {
            return write!(f, "{:?}", self.0);
        }
        let kept: String = self.0.chars().take(Self::KEEP).collect();
        write!(f, "{kept:?}… ({total} characters)")
    }
}

impl fmt::Debug for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn invalid(what: &'static str, value: &str, rule: &'static str) -> InvalidName {
    InvalidName { what, value: value.to_owned(), rule }
}

/// Characters that are safe in one S3 key segment without escaping: no `/`, no spaces, no
/// characters that need URL encoding, and no segment that is only dots.
fn check_key_safe(what: &'static str, value: &str, max: usize) -> Result<(), InvalidName> {
    if value.is_empty() {
        return Err(invalid(what, value, "is empty"));
    }
    if value.len() > max {
        return Err(invalid(what, value, "is too long"));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(invalid(
            what,
            value,
            "has characters that are unsafe in an S3 key (allowed: letters, digits, '-', '_', '.')",
        ));
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(invalid(what, value, "must start with a letter or a digit"));
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidName;
            fn try_from(value: String) -> Result<Self, InvalidName> {
                Self::new(&value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidName;
            fn from_str(value: &str) -> Result<Self, InvalidName> {
                Self::new(value)
            }
        }
    };
}

string_newtype!(
    /// An ECS service name, safe to use as one S3 key segment.
    ServiceName
);
impl ServiceName {
    pub fn new(value: &str) -> Result<Self, InvalidName> {
        check_key_safe("service name", value, 255)?;
        Ok(Self(value.to_owned()))
    }
}

string_newtype!(
    /// A release id (usually the commit the images were built from), safe as one S3 key segment.
    ReleaseId
);
impl ReleaseId {
    pub fn new(value: &str) -> Result<Self, InvalidName> {
        check_key_safe("release id", value, 128)?;
        Ok(Self(value.to_owned()))
    }
}

string_newtype!(
    /// A container name in the service's task definition.
    ContainerName
);
impl ContainerName {
    pub fn new(value: &str) -> Result<Self, InvalidName> {
        // ECS: up to 255 letters, digits, hyphens and underscores.
        if value.is_empty() || value.len() > 255 {
            return Err(invalid("container name", value, "must be 1 to 255 characters"));
        }
        if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) {
            return Err(invalid("container name", value, "may hold only letters, digits, '-' and '_'"));
        }
        Ok(Self(value.to_owned()))
    }
}

string_newtype!(
    /// The name a version 2 manifest gives one image, so that several services' containers name
    /// it (and it is pinned once): a container name's rules.
    ImageName
);
impl ImageName {
    pub fn new(value: &str) -> Result<Self, InvalidName> {
        if value.is_empty() || value.len() > 255 {
            return Err(invalid("image name", value, "must be 1 to 255 characters"));
        }
        if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) {
            return Err(invalid("image name", value, "may hold only letters, digits, '-' and '_'"));
        }
        Ok(Self(value.to_owned()))
    }
}

string_newtype!(
    /// An ECR repository name, namespaces included (`team/app`).
    RepositoryName
);
impl RepositoryName {
    pub fn new(value: &str) -> Result<Self, InvalidName> {
        const RULE: &str =
            "is not an ECR repository name (lowercase letters, digits, and '.', '_', '-', '/' between them)";
        if value.len() < 2 || value.len() > 256 {
            return Err(invalid("repository", value, "must be 2 to 256 characters"));
        }
        let component_ok = |part: &str| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        };
        if !value.split('/').all(component_ok) {
            return Err(invalid("repository", value, RULE));
        }
        Ok(Self(value.to_owned()))
    }
}

string_newtype!(
    /// An image tag.
    ImageTag
);
impl ImageTag {
    pub fn new(value: &str) -> Result<Self, InvalidName> {
        if value.is_empty() || value.len() > 300 {
            return Err(invalid("image tag", value, "must be 1 to 300 characters"));
        }
        if !value.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            || !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(invalid("image tag", value, "may hold only letters, digits, '_', '.' and '-'"));
        }
        Ok(Self(value.to_owned()))
    }
}

string_newtype!(
    /// An image manifest digest, `sha256:<hex>`.
    Digest
);
impl Digest {
    pub fn new(value: &str) -> Result<Self, InvalidName> {
        match value.split_once(':') {
            Some(("sha256", hex)) if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                Ok(Self(value.to_owned()))
            }
            _ => Err(invalid("image digest", value, "is not of the form sha256:<hex>")),
        }
    }
}

string_newtype!(
    /// A 12-digit AWS account id (the registry id of an ECR registry).
    AccountId
);
impl AccountId {
    pub fn new(value: &str) -> Result<Self, InvalidName> {
        if value.len() != 12 || !value.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid("account id", value, "is not 12 digits"));
        }
        Ok(Self(value.to_owned()))
    }
}

/// An identifier AWS gave out: any non-empty string (its format is AWS's to choose), typed so that
/// one kind of id is never passed where another is meant.
macro_rules! aws_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        string_newtype!($(#[$doc])* $name);
        impl $name {
            pub fn new(value: &str) -> Result<Self, InvalidName> {
                if value.trim().is_empty() {
                    return Err(invalid($what, value, "is empty"));
                }
                Ok(Self(value.to_owned()))
            }
        }
    };
}

aws_id!(
    /// A CodeDeploy deployment id (`d-…`).
    DeploymentId,
    "deployment id"
);
aws_id!(
    /// A CodePipeline execution id.
    PipelineExecutionId,
    "pipeline execution id"
);
aws_id!(
    /// An ECS task ARN.
    TaskArn,
    "task ARN"
);
aws_id!(
    /// One invocation of a lifecycle hook: CodeDeploy's `lifecycleEventHookExecutionId`, or ECS
    /// native blue/green's `executionId`. Not a pipeline execution.
    HookExecutionId,
    "hook execution id"
);
aws_id!(
    /// An ECS service deployment ARN (ECS native blue/green).
    ServiceDeploymentArn,
    "service deployment ARN"
);

/// A release's deployment, typed by the service that runs it: a CodeDeploy deployment, a pipeline
/// execution (whose deploy action creates the CodeDeploy deployment later), or an ECS native
/// blue/green service deployment. Records keep the kind (`{"codedeploy": "d-…"}`): on moto a
/// CodeDeploy deployment id is a UUID like a pipeline execution id, so a bare string cannot say
/// which it is (records written before kept bare strings; `release/stored.rs` reads them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeploymentRef {
    #[serde(rename = "codedeploy")]
    CodeDeploy(DeploymentId),
    #[serde(rename = "pipeline-execution")]
    Pipeline(PipelineExecutionId),
    #[serde(rename = "service-deployment")]
    Service(ServiceDeploymentArn),
}

impl DeploymentRef {
    pub fn as_str(&self) -> &str {
        match self {
            DeploymentRef::CodeDeploy(id) => id.as_str(),
            DeploymentRef::Pipeline(id) => id.as_str(),
            DeploymentRef::Service(arn) => arn.as_str(),
        }
    }

    /// The CodeDeploy deployment, when this is one.
    pub fn codedeploy(&self) -> Option<&DeploymentId> {
        match self {
            DeploymentRef::CodeDeploy(id) => Some(id),
            _ => None,
        }
    }

    /// The ECS service deployment, when this is one.
    pub fn service(&self) -> Option<&ServiceDeploymentArn> {
        match self {
            DeploymentRef::Service(arn) => Some(arn),
            _ => None,
        }
    }

    /// The pipeline execution, when this is one.
    pub fn pipeline(&self) -> Option<&PipelineExecutionId> {
        match self {
            DeploymentRef::Pipeline(id) => Some(id),
            _ => None,
        }
    }
}

impl From<DeploymentId> for DeploymentRef {
    fn from(id: DeploymentId) -> Self {
        DeploymentRef::CodeDeploy(id)
    }
}

impl From<PipelineExecutionId> for DeploymentRef {
    fn from(id: PipelineExecutionId) -> Self {
        DeploymentRef::Pipeline(id)
    }
}

impl From<ServiceDeploymentArn> for DeploymentRef {
    fn from(arn: ServiceDeploymentArn) -> Self {
        DeploymentRef::Service(arn)
    }
}

/// The state machine's tests write ids as AWS shapes them (`d-…` CodeDeploy, `arn:…` ECS, any other
/// a pipeline execution); Convoy itself never guesses a kind from a string.
#[cfg(test)]
impl std::str::FromStr for DeploymentRef {
    type Err = InvalidName;
    fn from_str(value: &str) -> Result<Self, InvalidName> {
        Ok(if value.starts_with("arn:") {
            DeploymentRef::Service(ServiceDeploymentArn::new(value)?)
        } else if value.starts_with("d-") {
            DeploymentRef::CodeDeploy(DeploymentId::new(value)?)
        } else {
            DeploymentRef::Pipeline(PipelineExecutionId::new(value)?)
        })
    }
}

#[cfg(test)]
impl From<&str> for DeploymentRef {
    fn from(value: &str) -> Self {
        value.parse().expect("a test's deployment id")
    }
}

impl fmt::Display for DeploymentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One release of one service: the identity of a release record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReleaseKey {
    pub service: ServiceName,
    pub release: ReleaseId,
}

impl ReleaseKey {
    pub fn new(service: ServiceName, release: ReleaseId) -> Self {
        Self { service, release }
    }

    /// `convoy:<service>:<release>`: what Convoy writes on what it starts for the release (the
    /// migration task's `group`, the CodeDeploy deployment's description), so ECS events and a
    /// takeover after a crash lead back to the release. [`ReleaseKey::from_tag`] reads it back.
    pub fn tag(&self) -> String {
        format!("{TAG_PREFIX}{}:{}", self.service, self.release)
    }

    /// The release a [`ReleaseKey::tag`] names; `None` for anything else.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let (service, release) = tag.strip_prefix(TAG_PREFIX)?.split_once(':')?;
        Some(Self::new(service.parse().ok()?, release.parse().ok()?))
    }

    /// A stable idempotency token for one side effect of the release (32 hex characters: within
    /// RunTask's `clientToken` and CodePipeline's `clientRequestToken` limits).
    pub fn client_token(&self, purpose: &str) -> String {
        // FNV-1a, twice with different offsets: stable across processes and Rust versions, which
        // std's hasher is not. Uniqueness per release is all that is needed, not secrecy.
        let input = format!("convoy/{}/{}/{purpose}", self.service, self.release);
        let fnv = |offset: u64| {
            input.bytes().fold(offset, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
        };
        format!("{:016x}{:016x}", fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142))
    }

    /// `startedBy` of the release's migration task: identifies Convoy (the EventBridge rule
    /// matches the `convoy-` prefix) and the release (a takeover finds the task with one
    /// `ListTasks`). ECS allows 36 characters.
    pub fn migration_started_by(&self) -> String {
        format!("convoy-{}", &self.client_token("migration")[..16])
    }
}

const TAG_PREFIX: &str = "convoy:";

/// Whether `description` carries `marker` (a [`ReleaseKey::tag`]) as a whole token: not as the
/// start of a longer one. `convoy:web:v1.0.0` is in `convoy:web:v1.0.0 (Convoy release …)` but not
/// in `convoy:web:v1.0.0-rc1 (…)`: a substring match would let a release adopt an earlier
/// release's deployment (`1.0`/`1.0.1`, `rc1`/`rc10`, `v2`/`v2-hotfix`). A token ends where a
/// character that no service name, release id or tag can hold begins (see [`check_key_safe`]).
pub fn carries_marker(description: &str, marker: &str) -> bool {
    let in_token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    !marker.is_empty()
        && description.match_indices(marker).any(|(at, _)| {
            let before = description[..at].chars().next_back();
            let after = description[at + marker.len()..].chars().next();
            !before.is_some_and(in_token) && !after.is_some_and(in_token)
        })
}

impl fmt::Display for ReleaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.release)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(service: &str, release: &str) -> String {
        ReleaseKey::new(service.parse().unwrap(), release.parse().unwrap()).tag()
    }

    #[test]
    fn a_release_id_that_starts_another_does_not_carry_its_marker() {
        for (ours, earlier) in [("1.0", "1.0.1"), ("rc1", "rc10"), ("v2", "v2-hotfix"), ("v1.0.0", "v1.0.0-rc1")] {
            let description = format!("{} (Convoy release web/{earlier})", tag("web", earlier));
            assert!(!carries_marker(&description, &tag("web", ours)), "{ours} must not adopt {earlier}'s deployment");
            assert!(carries_marker(&description, &tag("web", earlier)), "{earlier} finds its own");
        }
    }

    #[test]
    fn a_marker_is_found_whole_wherever_it_stands_in_the_description() {
        let marker = tag("web", "4cf03d1");
        assert!(carries_marker("convoy:web:4cf03d1", &marker));
        assert!(carries_marker("convoy:web:4cf03d1 (Convoy release web/4cf03d1)", &marker));
        assert!(carries_marker("redeploy of convoy:web:4cf03d1", &marker));
        assert!(!carries_marker("xconvoy:web:4cf03d1", &marker));
        assert!(!carries_marker("convoy:web:4cf03d1:extra", &marker));
        assert!(!carries_marker("", &marker));
        assert!(!carries_marker("anything", ""));
    }

    #[test]
    fn a_commit_sha_is_a_valid_release_id() {
        assert_eq!(ReleaseId::new("4cf03d1").unwrap().as_str(), "4cf03d1");
    }

    #[test]
    fn a_release_id_with_a_slash_is_rejected_as_unsafe_in_an_s3_key() {
        let err = ReleaseId::new("4cf/03d1").unwrap_err();
        assert!(err.to_string().contains("unsafe in an S3 key"), "{err}");
    }

    #[test]
    fn a_release_id_of_dots_is_rejected() {
        assert!(ReleaseId::new("..").is_err());
    }

    #[test]
    fn a_service_name_with_a_space_is_rejected() {
        assert!(ServiceName::new("laravel app").is_err());
    }

    #[test]
    fn an_empty_service_name_is_rejected() {
        assert_eq!(ServiceName::new("").unwrap_err().rule, "is empty");
    }

    #[test]
    fn a_namespaced_repository_is_valid() {
        assert!(RepositoryName::new("team/laravel-app").is_ok());
    }

    #[test]
    fn an_uppercase_repository_is_rejected() {
        assert!(RepositoryName::new("Laravel").is_err());
    }

    #[test]
    fn a_digest_must_be_sha256_hex() {
        assert!(Digest::new("sha256:7f5b2640fe6f").is_ok());
        assert!(Digest::new("md5:abcd").is_err());
        assert!(Digest::new("sha256:xyz").is_err());
    }

    #[test]
    fn names_deserialize_through_their_validation() {
        let err = serde_json::from_str::<ServiceName>("\"a b\"").unwrap_err();
        assert!(err.to_string().contains("unsafe in an S3 key"));
    }
}
