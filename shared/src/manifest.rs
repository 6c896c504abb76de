//! The release manifest: the contract a team's CI writes. Three forms are accepted:
//!
//! - version 1 (`{"version": 1, "release": ..., "service": ..., "images": {container: uri}, ...}`);
//! - CodePipeline's `imagedefinitions.json` (`[{"name": container, "imageUri": uri}]`), where the
//!   service and release come from the object key, as they must for every manifest;
//! - version 2 ([`group`]): one release of several services of a release group, uploaded as
//!   `releases/<group>/<release>.json`.
//!
//! The first two mean one service ([`parse`] reads them); [`read`] reads all three. Parsing checks
//! shape; [`Policy`] checks what the operator allows. Both report a message a person can act on,
//! because it ends up verbatim in the release record.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::names::{
    AccountId, ContainerName, Excerpt, ImageTag, InvalidName, ReleaseId, ReleaseKey, RepositoryName, ServiceName,
};

pub mod group;
pub use self::group::{GroupManifest, ServicePart, Step};

/// The largest manifest Convoy reads. Real ones are a few hundred bytes; the cap keeps a mistaken
/// upload (a build log, an archive) from costing memory or a long parse.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// Why a manifest was refused. The text is shown to people in the release record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest is {size} bytes; the limit is {MAX_MANIFEST_BYTES} bytes")]
    TooLarge { size: usize },
    #[error("the manifest is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the manifest names {} twice in one object; JSON readers disagree on which one counts", Excerpt(.0))]
    DuplicateKey(String),
    #[error("the manifest does not match the version 1 format: {0}")]
    Shape(String),
    #[error("the manifest has version {0}; this Convoy reads versions 1 and 2")]
    UnsupportedVersion(u64),
    #[error("the manifest does not match the version 2 format: {0}")]
    GroupShape(String),
    /// A version 2 manifest where one service's manifest is expected (`convoy submit`, a test).
    #[error("the manifest is version 2, a release of release group {}: it is read as the group's, not as one service's", Excerpt(.0))]
    NotOneService(String),
    #[error("the manifest names no services")]
    NoServices,
    #[error("service {} names no containers", Excerpt(.0))]
    NoContainers(String),
    #[error("service {}'s container {} names image {}, which the manifest's images do not hold", Excerpt(.service), Excerpt(.container), Excerpt(.image))]
    UnknownImage { service: String, container: String, image: String },
    #[error("image {} is named by no service's containers; an image the release does not run is not pinned", Excerpt(.0))]
    ImageUnused(String),
    // The URI was read as an ECR image by tag: only the characters of a registry, repository and tag.
    #[error("images {} and {} are both {uri}: name an image once and let the services share it (it is pinned once, for all)", Excerpt(.first), Excerpt(.second))]
    ImageNamedTwice { first: String, second: String, uri: String },
    #[error("the migration runs from the task definition of service {}, which the manifest does not release", Excerpt(.0))]
    MigrationServiceUnknown(String),
    #[error("the migration runs in container {} of service {}, which that service's containers do not name", Excerpt(.container), Excerpt(.service))]
    MigrationContainerNotInService { service: String, container: String },
    #[error("order is empty: list the services' steps (a name, or a list of names deployed together)")]
    OrderEmpty,
    #[error("order has an empty step: a step is a service name or a non-empty list of them")]
    OrderEmptyStep,
    #[error("order names service {}, which the manifest does not release", Excerpt(.0))]
    OrderUnknownService(String),
    #[error("order names service {} twice; each service is deployed once", Excerpt(.0))]
    OrderTwice(String),
    #[error("order leaves out service {}: every service of the manifest is in one step", Excerpt(.0))]
    OrderMissing(String),
    #[error(
        "the manifest says group {} but was uploaded as {} (releases/<group>/<release>.json)",
        Excerpt(.declared),
        Excerpt(.from_key)
    )]
    GroupKeyMismatch { declared: String, from_key: String },
    #[error("release group {} is not in the operator's settings (release groups: {known}); release groups live in the settings file (docs/reference/settings.md)", Excerpt(.group))]
    UnknownGroup { group: String, known: String },
    #[error("service {} is not in release group {} (its services: {members}): a manifest cannot add a service to its group", Excerpt(.service), Excerpt(.group))]
    NotInGroup { service: String, group: String, members: String },
    #[error("{} names release group {}: its releases are version 2 manifests, which name the group and its services", Excerpt(.key), Excerpt(.group))]
    GroupNeedsVersion2 { key: String, group: String },
    #[error("service {} has no settings: the operator's settings decide how each service of a release deploys", Excerpt(.0))]
    ServiceWithoutSettings(String),
    #[error("the manifest names no images")]
    NoImages,
    #[error("{0}")]
    InvalidName(#[from] InvalidName),
    #[error("image {} for container {} is not an ECR image URI: {why}", Excerpt(.uri), Excerpt(.container))]
    NotEcr { container: String, uri: String, why: &'static str },
    #[error("image {} ({}) is not an ECR image URI: {why}", Excerpt(.image), Excerpt(.uri))]
    NotEcrImage { image: String, uri: String, why: &'static str },
    #[error("container {} is named twice", Excerpt(.0))]
    DuplicateContainer(String),
    #[error(
        "the manifest says {field} {} but was uploaded as {} (releases/<service>/<release>.json)",
        Excerpt(.declared),
        Excerpt(.from_key)
    )]
    KeyMismatch { field: &'static str, declared: String, from_key: String },
    #[error("service {} is not one Convoy may deploy (allowed: {allowed})", Excerpt(.0), allowed = .1)]
    ServiceNotAllowed(String, String),
    #[error("repository {} is not one Convoy may deploy from (allowed: {allowed})", Excerpt(.0), allowed = .1)]
    RepositoryNotAllowed(String, String),
    #[error(
        "image {} is in region {image_region}; Convoy runs in {convoy_region} and sees only that region's pushes",
        Excerpt(.uri)
    )]
    ForeignRegion { uri: String, image_region: String, convoy_region: String },
    #[error(
        "image {} is in account {registry}'s registry; Convoy pins images only from {allowed} (its own account, and those the operator lists)",
        Excerpt(.uri)
    )]
    ForeignRegistry { uri: String, registry: String, allowed: String },
    #[error("the migration runs in container {}, which the manifest gives no image", Excerpt(.0))]
    MigrationContainerUnknown(String),
    #[error("the migration command is empty")]
    EmptyMigrationCommand,
    #[error("the migration's down command is empty: leave `down` out, or name the command that undoes the migration")]
    EmptyDownCommand,
    #[error(
        "a rollback runs no migration of its own: leave `migration` out (with `migrate_down` it runs the down command of the release it reverts, from that release's record)"
    )]
    RollbackWithMigration,
    #[error("a rollback names its images by digest (<repository>@sha256:<64 hex>), as the release it returns to pinned them; image {} is named by tag", Excerpt(.0))]
    RollbackByTag(String),
    #[error("a rollback returns to an earlier release: `of` and `to` are both {}", Excerpt(.0))]
    RollbackToItself(String),
    #[error("the migration timeout must be between 1 and 86400 seconds, not {0}")]
    MigrationTimeout(u64),
    #[error(
        "the verify path {} must be a path starting with '/', without spaces or control characters (the listener is the operator's, not the manifest's)",
        Excerpt(.0)
    )]
    VerifyPath(String),
    #[error("the verify status {0} is not an HTTP status")]
    VerifyStatus(u16),
    /// A field asks for fewer checks than the operator's settings ([`crate::ceiling`]).
    #[error(
        "the manifest asks for {field} {asked}; the operator's settings for service {service} say {operator}: a \
         manifest may only ask for more checks"
    )]
    AsksForLess { field: &'static str, asked: String, operator: String, service: String },
    #[error("{0}")]
    ProbeBudget(String),
    /// A check the service's deploy method cannot give (`ecs-rolling`: no test traffic, no pause).
    #[error("the manifest asks for {asked}, which service {service} cannot give: it deploys by {method}, {why}")]
    NotForMethod { asked: &'static str, service: String, method: &'static str, why: &'static str },
}

/// How an image is named in its repository: by a tag CI pushed (pinned to the digest ECR names
/// for it), or by a digest already (a rollback's images: the tag may have moved since).
/// Serialized as the image's `tag` or `digest` field, so records written before digests still read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reference {
    Tag(ImageTag),
    Digest(crate::names::Digest),
}

impl std::fmt::Display for Reference {
    /// As an image URI ends: `:<tag>` or `@<digest>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(tag) => write!(f, ":{tag}"),
            Reference::Digest(digest) => write!(f, "@{digest}"),
        }
    }
}

/// A digest as a manifest may name one: `sha256:` and 64 lowercase hex digits, as ECR writes it.
fn manifest_digest(text: &str) -> Result<crate::names::Digest, &'static str> {
    const WHY: &str = "its digest is not sha256:<64 lowercase hex digits>";
    let hex = text.strip_prefix("sha256:").ok_or(WHY)?;
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
        return Err(WHY);
    }
    crate::names::Digest::new(text).map_err(|_| WHY)
}

/// An image as the manifest names it: which registry, repository, and tag or digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ImageRef {
    pub registry: AccountId,
    pub region: String,
    pub repository: RepositoryName,
    #[serde(flatten)]
    pub reference: Reference,
    /// The registry is named by its FIPS endpoint (`dkr.ecr-fips`): pulls keep to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fips: bool,
}

impl ImageRef {
    /// Parses `<account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>:<tag>` or
    /// `.../<repository>@sha256:<64 hex>`.
    pub fn parse_uri(uri: &str) -> Result<Self, &'static str> {
        let (host, path) = uri.split_once('/').ok_or("it has no repository path")?;
        let mut labels = host.split('.');
        let account = labels.next().unwrap_or_default();
        if labels.next() != Some("dkr") {
            return Err("the host is not <account>.dkr.ecr.<region>.amazonaws.com");
        }
        let ecr = labels.next().unwrap_or_default();
        if ecr != "ecr" && ecr != "ecr-fips" {
            return Err("the host is not <account>.dkr.ecr.<region>.amazonaws.com");
        }
        let region = labels.next().unwrap_or_default().to_owned();
        let domain: Vec<&str> = labels.collect();
        if !matches!(domain.as_slice(), ["amazonaws", "com"] | ["amazonaws", "com", "cn"]) {
            return Err("the host is not <account>.dkr.ecr.<region>.amazonaws.com");
        }
        if region.is_empty() || !region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err("the region in the host is not a region name");
        }
        let registry = AccountId::new(account).map_err(|_| "the host does not start with a 12-digit account id")?;
        let (repository, reference) = if let Some((repository, digest)) = path.split_once('@') {
            (repository, Reference::Digest(manifest_digest(digest)?))
        } else {
            let (repository, tag) = path.rsplit_once(':').ok_or("it has no tag (<repository>:<tag>)")?;
            (repository, Reference::Tag(ImageTag::new(tag).map_err(|e| e.rule)?))
        };
        let repository = RepositoryName::new(repository).map_err(|e| e.rule)?;
        Ok(Self { registry, region, repository, reference, fips: ecr == "ecr-fips" })
    }

    /// The image as the manifest named it: by tag (`<registry>/<repository>:<tag>`) or by digest.
    pub fn uri(&self) -> String {
        format!("{}/{}{}", self.registry_host(), self.repository, self.reference)
    }

    /// The digest the manifest pinned the image to, if it named one instead of a tag.
    pub fn named_digest(&self) -> Option<&crate::names::Digest> {
        match &self.reference {
            Reference::Digest(digest) => Some(digest),
            Reference::Tag(_) => None,
        }
    }

    /// The image pinned by digest, as task definitions name it: `<registry>/<repository>@<digest>`.
    pub fn pinned_uri(&self, digest: &crate::names::Digest) -> String {
        format!("{}/{}@{digest}", self.registry_host(), self.repository)
    }

    fn registry_host(&self) -> String {
        let suffix = if self.region.starts_with("cn-") { ".cn" } else { "" };
        let ecr = if self.fips { "ecr-fips" } else { "ecr" };
        format!("{}.dkr.{ecr}.{}.amazonaws.com{suffix}", self.registry, self.region)
    }
}

/// The one-off migration task: which container runs which command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    pub container: ContainerName,
    pub command: Vec<String>,
    /// How long the migration may run; the operator's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// The command that undoes this migration, in the same container. Recorded only: a rollback
    /// of this release with `migrate_down` runs it, from this release's pinned image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<Vec<String>>,
}

/// A manifest's claim to be a rollback (`"rollback": {"of", "to", "migrate_down"}`): it returns the
/// service from release `of`, live now, to `to`, live before. A claim only: the `manifest-uploaded`
/// function confirms it from Convoy's own records ([`crate::rollback`]) before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackClaim {
    pub of: ReleaseId,
    pub to: ReleaseId,
    /// Run `of`'s recorded down migration (`migration.down`) before deploying.
    #[serde(default)]
    pub migrate_down: bool,
    /// The claim as Convoy's records confirmed it (set at admission, never read from a manifest:
    /// the manifest's `rollback` object holds only the three fields above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<crate::rollback::Rollback>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollbackDocument {
    of: String,
    to: String,
    #[serde(default)]
    migrate_down: bool,
}

/// Reads a rollback claim: by digest only, no migration of its own, to another release.
pub(crate) fn parse_rollback<'a>(
    document: RollbackDocument,
    migration: bool,
    mut images: impl Iterator<Item = &'a ImageRef>,
) -> Result<RollbackClaim, ManifestError> {
    let of = ReleaseId::new(&document.of)?;
    let to = ReleaseId::new(&document.to)?;
    if of == to {
        return Err(ManifestError::RollbackToItself(of.to_string()));
    }
    if migration {
        return Err(ManifestError::RollbackWithMigration);
    }
    if let Some(by_tag) = images.find(|image| image.named_digest().is_none()) {
        return Err(ManifestError::RollbackByTag(by_tag.uri()));
    }
    Ok(RollbackClaim { of, to, migrate_down: document.migrate_down, confirmed: None })
}

/// What the verification expects from the test listener. The listener itself is the operator's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyExpectation {
    pub path: String,
    pub expect_status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    Manual,
    Auto,
}

/// A validated manifest. Only [`parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub images: BTreeMap<ContainerName, ImageRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<Migration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyExpectation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// The manifest says it is a rollback (confirmed at admission, [`crate::rollback`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackClaim>,
}

/// What the operator lets Convoy touch. Empty allow-lists are refused at start-up (see config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub allowed_services: BTreeSet<ServiceName>,
    pub allowed_repositories: BTreeSet<RepositoryName>,
    /// The region Convoy runs in; ECR push events come only from it.
    pub region: String,
    /// The accounts whose registries images may come from: Convoy's own, and those the operator
    /// lists. An image in any other account's registry is someone else's to change.
    pub registries: BTreeSet<AccountId>,
    /// Convoy's own account (`CONVOY_ACCOUNT_ID`): the events it reads come from it. `None` for
    /// the CLI, which reads none.
    pub account: Option<AccountId>,
}

impl Policy {
    /// Checks a parsed manifest against the allow-lists.
    pub fn admit(&self, key: &ReleaseKey, manifest: &Manifest) -> Result<(), ManifestError> {
        if !self.allowed_services.contains(&key.service) {
            return Err(ManifestError::ServiceNotAllowed(key.service.to_string(), join(&self.allowed_services)));
        }
        for image in manifest.images.values() {
            if !self.allowed_repositories.contains(&image.repository) {
                return Err(ManifestError::RepositoryNotAllowed(
                    image.repository.to_string(),
                    join(&self.allowed_repositories),
                ));
            }
            if !self.registries.contains(&image.registry) {
                return Err(ManifestError::ForeignRegistry {
                    uri: image.uri(),
                    registry: image.registry.to_string(),
                    allowed: join(&self.registries),
                });
            }
            if image.region != self.region {
                return Err(ManifestError::ForeignRegion {
                    uri: image.uri(),
                    image_region: image.region.clone(),
                    convoy_region: self.region.clone(),
                });
            }
        }
        Ok(())
    }
}

pub(crate) fn join<T: std::fmt::Display>(items: &BTreeSet<T>) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentV1 {
    #[allow(dead_code)] // checked before this shape is parsed
    version: u64,
    release: String,
    service: String,
    images: BTreeMap<String, String>,
    #[serde(default)]
    migration: Option<MigrationDocument>,
    #[serde(default)]
    verify: Option<VerifyExpectation>,
    #[serde(default)]
    approval: Option<Approval>,
    #[serde(default)]
    rollback: Option<RollbackDocument>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MigrationDocument {
    pub(crate) container: String,
    pub(crate) command: Vec<String>,
    #[serde(default)]
    pub(crate) timeout_seconds: Option<u64>,
    #[serde(default)]
    pub(crate) down: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ImageDefinition {
    name: String,
    #[serde(rename = "imageUri")]
    image_uri: String,
}

/// A manifest as read: one service's, or a release group's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Version 1 or `imagedefinitions.json`: the service the key names.
    Service(Manifest),
    /// Version 2: the release group the key names.
    Group(GroupManifest),
}

/// Parses and validates a one-service manifest uploaded as `releases/<service>/<release>.json`
/// (the `key`): version 1 or `imagedefinitions.json`. A version 2 manifest is refused
/// ([`ManifestError::NotOneService`]); [`read`] reads every form.
pub fn parse(bytes: &[u8], key: &ReleaseKey) -> Result<Manifest, ManifestError> {
    match read(bytes, key)? {
        Submitted::Service(manifest) => Ok(manifest),
        Submitted::Group(manifest) => Err(ManifestError::NotOneService(manifest.group.to_string())),
    }
}

/// Parses and validates any manifest uploaded as `releases/<name>/<release>.json` (the `key`,
/// whose `service` is the name: a service's, or for version 2 a release group's).
pub fn read(bytes: &[u8], key: &ReleaseKey) -> Result<Submitted, ManifestError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge { size: bytes.len() });
    }
    // serde_json keeps the last of two equal keys; another reader (the CI's, a person's) may keep
    // the first. A manifest that means two things is refused rather than read one way.
    serde_json::from_slice::<NoDuplicateKeys>(bytes).map_err(|e| match DuplicateKeyFound::take(&e) {
        Some(key) => ManifestError::DuplicateKey(key),
        None => ManifestError::MalformedJson(bounded(&e)),
    })?;
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::MalformedJson(bounded(&e)))?;
    match value {
        serde_json::Value::Array(_) => {
            let definitions: Vec<ImageDefinition> = serde_json::from_value(value)
                .map_err(|e| ManifestError::Shape(format!("imagedefinitions.json: {}", bounded(&e))))?;
            let mut pairs = Vec::with_capacity(definitions.len());
            for definition in definitions {
                pairs.push((definition.name, definition.image_uri));
            }
            let images = parse_images(pairs)?;
            Ok(Submitted::Service(Manifest { images, migration: None, verify: None, approval: None, rollback: None }))
        }
        serde_json::Value::Object(ref object) => {
            match object.get("version") {
                Some(serde_json::Value::Number(n)) if n.as_u64() == Some(1) => {}
                Some(serde_json::Value::Number(n)) if n.as_u64() == Some(2) => {
                    return group::parse(value, key).map(Submitted::Group);
                }
                Some(serde_json::Value::Number(n)) => {
                    return Err(ManifestError::UnsupportedVersion(n.as_u64().unwrap_or(0)));
                }
                Some(_) => return Err(ManifestError::Shape("\"version\" must be the number 1 or 2".into())),
                None => return Err(ManifestError::Shape("missing field `version`".into())),
            }
            let document: DocumentV1 = serde_json::from_value(value).map_err(|e| ManifestError::Shape(bounded(&e)))?;
            let release = ReleaseId::new(&document.release)?;
            let service = ServiceName::new(&document.service)?;
            if service != key.service {
                return Err(ManifestError::KeyMismatch {
                    field: "service",
                    declared: service.to_string(),
                    from_key: key.service.to_string(),
                });
            }
            if release != key.release {
                return Err(ManifestError::KeyMismatch {
                    field: "release",
                    declared: release.to_string(),
                    from_key: key.release.to_string(),
                });
            }
            let images = parse_images(document.images)?;
            let migration = document.migration.map(|m| parse_migration(m, &images)).transpose()?;
            if let Some(verify) = &document.verify {
                check_verify(verify)?;
            }
            let rollback =
                document.rollback.map(|r| parse_rollback(r, migration.is_some(), images.values())).transpose()?;
            Ok(Submitted::Service(Manifest {
                images,
                migration,
                verify: document.verify,
                approval: document.approval,
                rollback,
            }))
        }
        _ => Err(ManifestError::Shape("expected a JSON object (or an imagedefinitions.json list)".into())),
    }
}

/// A parser's message, cut to a length a record can carry (serde quotes unknown field names whole).
pub(crate) fn bounded(error: &serde_json::Error) -> String {
    const KEEP: usize = 240;
    let message = error.to_string();
    if message.chars().count() <= KEEP {
        return message;
    }
    let kept: String = message.chars().take(KEEP).collect();
    format!("{kept}… (message cut)")
}

/// Walks a JSON document and fails on the first object that names a key twice, at any depth.
struct NoDuplicateKeys;

/// The marker a duplicate key leaves in serde's error, so [`parse`] can tell it from bad JSON.
struct DuplicateKeyFound;

impl DuplicateKeyFound {
    const PREFIX: &'static str = "convoy-duplicate-key:";

    fn error<E: serde::de::Error>(key: &str) -> E {
        E::custom(format_args!("{}{key}", Self::PREFIX))
    }

    fn take(error: &serde_json::Error) -> Option<String> {
        let message = error.to_string();
        let rest = message.strip_prefix(Self::PREFIX)?;
        // serde_json appends " at line L column C" to custom errors.
        let key = rest.rsplit_once(" at line ").map_or(rest, |(key, _)| key);
        Some(key.to_owned())
    }
}

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicateKeysVisitor)
    }
}

struct NoDuplicateKeysVisitor;

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeysVisitor {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<NoDuplicateKeys>()?;
            if !seen.insert(key.clone()) {
                return Err(DuplicateKeyFound::error(&key));
            }
        }
        Ok(NoDuplicateKeys)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(NoDuplicateKeys)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
}

fn parse_images(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<ContainerName, ImageRef>, ManifestError> {
    let mut images = BTreeMap::new();
    for (container, uri) in pairs {
        let image = ImageRef::parse_uri(&uri).map_err(|why| ManifestError::NotEcr {
            container: container.clone(),
            uri: uri.clone(),
            why,
        })?;
        let name = ContainerName::new(&container)?;
        if images.insert(name, image).is_some() {
            return Err(ManifestError::DuplicateContainer(container));
        }
    }
    if images.is_empty() {
        return Err(ManifestError::NoImages);
    }
    Ok(images)
}

pub(crate) fn parse_migration(
    document: MigrationDocument,
    images: &BTreeMap<ContainerName, ImageRef>,
) -> Result<Migration, ManifestError> {
    let container = ContainerName::new(&document.container)?;
    if !images.contains_key(&container) {
        return Err(ManifestError::MigrationContainerUnknown(document.container));
    }
    if document.command.is_empty() || document.command.iter().all(|part| part.trim().is_empty()) {
        return Err(ManifestError::EmptyMigrationCommand);
    }
    if let Some(seconds) = document.timeout_seconds
        && !(1..=86_400).contains(&seconds)
    {
        return Err(ManifestError::MigrationTimeout(seconds));
    }
    if let Some(down) = &document.down
        && (down.is_empty() || down.iter().all(|part| part.trim().is_empty()))
    {
        return Err(ManifestError::EmptyDownCommand);
    }
    Ok(Migration {
        container,
        command: document.command,
        timeout_seconds: document.timeout_seconds,
        down: document.down,
    })
}

pub(crate) fn check_verify(verify: &VerifyExpectation) -> Result<(), ManifestError> {
    // The path is appended to the operator's listener URL; anything that could change the host
    // (a scheme, an authority, a backslash some parsers treat as '/') is refused here.
    let path = &verify.path;
    if !path.starts_with('/')
        || path.starts_with("//")
        || path.contains("://")
        || path.contains('\\')
        || path.contains('@')
        // A space, tab, CR or LF would be refused by the prober only after the migration ran; a
        // CR or LF could also split the request line. Refused here, before anything runs.
        || path.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ManifestError::VerifyPath(path.clone()));
    }
    if !(100..=599).contains(&verify.expect_status) {
        return Err(ManifestError::VerifyStatus(verify.expect_status));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/laravel-app:4cf03d1";
    const NGINX: &str = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/laravel-app-nginx:4cf03d1";

    fn key() -> ReleaseKey {
        ReleaseKey::new(ServiceName::new("laravel-app").unwrap(), ReleaseId::new("4cf03d1").unwrap())
    }

    fn v1(extra: &str) -> String {
        format!(
            r#"{{"version": 1, "release": "4cf03d1", "service": "laravel-app",
                "images": {{"laravel": "{APP}", "nginx": "{NGINX}"}}{extra}}}"#
        )
    }

    fn policy() -> Policy {
        Policy {
            allowed_services: ["laravel-app".parse().unwrap()].into(),
            allowed_repositories: ["laravel-app".parse().unwrap(), "laravel-app-nginx".parse().unwrap()].into(),
            region: "ap-northeast-1".into(),
            registries: ["123456789012".parse().unwrap()].into(),
            account: Some("123456789012".parse().unwrap()),
        }
    }

    #[test]
    fn the_architecture_pages_example_parses() {
        let text = v1(r#", "migration": {"container": "laravel", "command": ["php", "artisan", "migrate", "--force"]},
            "verify": {"path": "/", "expect_status": 200, "expect_body": "4cf03d1"}, "approval": "manual""#);
        let manifest = parse(text.as_bytes(), &key()).unwrap();
        assert_eq!(manifest.images.len(), 2);
        let app = &manifest.images[&ContainerName::new("laravel").unwrap()];
        assert_eq!(app.repository.as_str(), "laravel-app");
        assert_eq!(app.reference, Reference::Tag(ImageTag::new("4cf03d1").unwrap()));
        assert_eq!(app.registry.as_str(), "123456789012");
        assert_eq!(app.uri(), APP);
        assert_eq!(manifest.migration.unwrap().command, ["php", "artisan", "migrate", "--force"]);
        assert_eq!(manifest.approval, Some(Approval::Manual));
        assert!(policy().admit(&key(), &parse(text.as_bytes(), &key()).unwrap()).is_ok());
    }

    #[test]
    fn imagedefinitions_json_parses_with_identity_from_the_key() {
        let text =
            format!(r#"[{{"name": "laravel", "imageUri": "{APP}"}}, {{"name": "nginx", "imageUri": "{NGINX}"}}]"#);
        let manifest = parse(text.as_bytes(), &key()).unwrap();
        assert_eq!(manifest.images.len(), 2);
        assert_eq!(manifest.migration, None);
    }

    #[test]
    fn malformed_json_is_rejected_with_the_parsers_position() {
        let err = parse(b"{\"version\": 1,", &key()).unwrap_err();
        assert!(matches!(err, ManifestError::MalformedJson(_)));
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn a_manifest_without_images_is_rejected() {
        let err = parse(br#"{"version": 1, "release": "4cf03d1", "service": "laravel-app"}"#, &key()).unwrap_err();
        assert!(err.to_string().contains("missing field `images`"), "{err}");
    }

    #[test]
    fn a_manifest_with_empty_images_is_rejected() {
        let err = parse(br#"{"version": 1, "release": "4cf03d1", "service": "laravel-app", "images": {}}"#, &key())
            .unwrap_err();
        assert_eq!(err, ManifestError::NoImages);
    }

    #[test]
    fn an_empty_imagedefinitions_list_is_rejected() {
        assert_eq!(parse(b"[]", &key()).unwrap_err(), ManifestError::NoImages);
    }

    #[test]
    fn a_docker_hub_image_is_not_an_ecr_uri() {
        let text = v1("").replace(APP, "docker.io/library/nginx:1.27");
        let err = parse(text.as_bytes(), &key()).unwrap_err();
        assert!(matches!(err, ManifestError::NotEcr { .. }), "{err}");
        assert!(err.to_string().contains("docker.io/library/nginx:1.27"));
    }

    #[test]
    fn an_image_without_a_tag_is_rejected() {
        let text = v1("").replace(APP, "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/laravel-app");
        assert!(parse(text.as_bytes(), &key()).unwrap_err().to_string().contains("no tag"));
    }

    #[test]
    fn an_image_pinned_by_a_short_or_uppercase_digest_is_refused() {
        for digest in ["sha256:abcd", &format!("sha256:{}", "A".repeat(64)), &format!("md5:{}", "a".repeat(64))] {
            let text =
                v1("").replace(APP, &format!("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/laravel-app@{digest}"));
            let err = parse(text.as_bytes(), &key()).unwrap_err().to_string();
            assert!(err.contains("sha256:<64 lowercase hex digits>"), "{digest}: {err}");
        }
    }

    #[test]
    fn an_image_pinned_by_digest_is_read_as_that_digest_and_written_back_the_same() {
        let pinned =
            format!("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/laravel-app@sha256:{}", "0a".repeat(32));
        let manifest = parse(v1("").replace(APP, &pinned).as_bytes(), &key()).unwrap();
        let app = &manifest.images[&ContainerName::new("laravel").unwrap()];
        assert_eq!(app.named_digest().map(|d| d.as_str()), Some(&pinned[pinned.len() - 71..]));
        assert_eq!(app.uri(), pinned);
        let json = serde_json::to_value(app).unwrap();
        assert_eq!(json["digest"], pinned[pinned.len() - 71..]);
        assert!(json.get("tag").is_none(), "{json}");
        assert_eq!(serde_json::from_value::<ImageRef>(json).unwrap(), *app);
    }

    #[test]
    fn an_image_stored_by_tag_before_digests_reads_as_before() {
        let stored = r#"{"registry": "123456789012", "region": "ap-northeast-1", "repository": "laravel-app", "tag": "4cf03d1"}"#;
        let image: ImageRef = serde_json::from_str(stored).unwrap();
        assert_eq!(image.uri(), APP);
        assert_eq!(serde_json::to_value(&image).unwrap(), serde_json::from_str::<serde_json::Value>(stored).unwrap());
    }

    #[test]
    fn a_wrong_type_is_reported_with_the_field() {
        let text = v1(r#", "approval": 3"#);
        let err = parse(text.as_bytes(), &key()).unwrap_err();
        assert!(matches!(err, ManifestError::Shape(_)), "{err}");
    }

    #[test]
    fn an_unknown_field_is_rejected_so_typos_do_not_pass_silently() {
        let text = v1(r#", "migrations": {}"#);
        assert!(parse(text.as_bytes(), &key()).unwrap_err().to_string().contains("unknown field `migrations`"));
    }

    #[test]
    fn version_3_is_refused() {
        let text = v1("").replace("\"version\": 1", "\"version\": 3");
        assert_eq!(parse(text.as_bytes(), &key()).unwrap_err(), ManifestError::UnsupportedVersion(3));
    }

    #[test]
    fn a_release_id_unsafe_in_an_s3_key_is_rejected() {
        let text = v1("").replace("\"release\": \"4cf03d1\"", "\"release\": \"../../etc\"");
        assert!(parse(text.as_bytes(), &key()).unwrap_err().to_string().contains("unsafe in an S3 key"));
    }

    #[test]
    fn a_service_name_unsafe_in_an_s3_key_is_rejected() {
        let text = v1("").replace("\"service\": \"laravel-app\"", "\"service\": \"laravel app\"");
        assert!(parse(text.as_bytes(), &key()).unwrap_err().to_string().contains("unsafe in an S3 key"));
    }

    #[test]
    fn a_release_that_disagrees_with_its_key_is_rejected() {
        let text = v1("").replace("\"release\": \"4cf03d1\"", "\"release\": \"9999999\"");
        assert!(matches!(parse(text.as_bytes(), &key()).unwrap_err(), ManifestError::KeyMismatch { .. }));
    }

    #[test]
    fn a_manifest_over_64_kib_is_rejected_before_parsing() {
        let text = v1(&format!(r#", "x": "{}""#, "a".repeat(MAX_MANIFEST_BYTES)));
        assert!(matches!(parse(text.as_bytes(), &key()).unwrap_err(), ManifestError::TooLarge { .. }));
    }

    #[test]
    fn a_service_outside_the_allow_list_is_refused() {
        let mut policy = policy();
        policy.allowed_services = ["billing".parse().unwrap()].into();
        let manifest = parse(v1("").as_bytes(), &key()).unwrap();
        let err = policy.admit(&key(), &manifest).unwrap_err();
        assert_eq!(err.to_string(), "service \"laravel-app\" is not one Convoy may deploy (allowed: billing)");
    }

    #[test]
    fn a_repository_outside_the_allow_list_is_refused() {
        let mut policy = policy();
        policy.allowed_repositories.remove(&"laravel-app-nginx".parse().unwrap());
        let manifest = parse(v1("").as_bytes(), &key()).unwrap();
        assert!(matches!(policy.admit(&key(), &manifest), Err(ManifestError::RepositoryNotAllowed(..))));
    }

    #[test]
    fn an_image_in_another_region_is_refused() {
        let mut policy = policy();
        policy.region = "eu-west-1".into();
        let manifest = parse(v1("").as_bytes(), &key()).unwrap();
        assert!(matches!(policy.admit(&key(), &manifest), Err(ManifestError::ForeignRegion { .. })));
    }

    #[test]
    fn a_migration_in_a_container_without_an_image_is_rejected() {
        let text = v1(r#", "migration": {"container": "worker", "command": ["migrate"]}"#);
        assert!(matches!(parse(text.as_bytes(), &key()), Err(ManifestError::MigrationContainerUnknown(_))));
    }

    #[test]
    fn an_empty_migration_command_is_rejected() {
        let text = v1(r#", "migration": {"container": "laravel", "command": []}"#);
        assert_eq!(parse(text.as_bytes(), &key()).unwrap_err(), ManifestError::EmptyMigrationCommand);
    }

    #[test]
    fn a_blank_migration_command_is_rejected_as_empty() {
        let text = v1(r#", "migration": {"container": "laravel", "command": [" ", "\t"]}"#);
        assert_eq!(parse(text.as_bytes(), &key()).unwrap_err(), ManifestError::EmptyMigrationCommand);
    }

    #[test]
    fn a_migration_timeout_is_a_second_to_a_day() {
        let with = |seconds: u64| {
            let migration =
                format!(r#", "migration": {{"container": "laravel", "command": ["m"], "timeout_seconds": {seconds}}}"#);
            parse(v1(&migration).as_bytes(), &key())
        };
        assert_eq!(with(0).unwrap_err(), ManifestError::MigrationTimeout(0));
        assert_eq!(with(86_401).unwrap_err(), ManifestError::MigrationTimeout(86_401));
        for kept in [1, 86_400] {
            assert_eq!(with(kept).unwrap().migration.unwrap().timeout_seconds, Some(kept));
        }
    }

    #[test]
    fn a_manifest_of_exactly_the_size_limit_is_read() {
        let mut text = v1("").into_bytes();
        text.resize(MAX_MANIFEST_BYTES, b' ');
        assert!(parse(&text, &key()).is_ok(), "trailing spaces up to the limit");
        text.push(b' ');
        assert_eq!(parse(&text, &key()).unwrap_err(), ManifestError::TooLarge { size: MAX_MANIFEST_BYTES + 1 });
    }

    #[test]
    fn an_image_host_must_be_ecr_or_ecr_fips_in_a_region_name() {
        let fips = "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/app:v1";
        assert_eq!(ImageRef::parse_uri(fips).unwrap().uri(), fips, "pulls keep to the FIPS endpoint");
        let digest = crate::names::Digest::new("sha256:4cf0").unwrap();
        let pinned = ImageRef::parse_uri(fips).unwrap().pinned_uri(&digest);
        assert_eq!(pinned, "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/app@sha256:4cf0");
        let host = "the host is not <account>.dkr.ecr.<region>.amazonaws.com";
        assert_eq!(ImageRef::parse_uri("123456789012.dkr.ecs.us-east-1.amazonaws.com/app:v1").unwrap_err(), host);
        let region = "the region in the host is not a region name";
        for uri in ["123456789012.dkr.ecr..amazonaws.com/app:v1", "123456789012.dkr.ecr.US-EAST-1.amazonaws.com/app:v1"]
        {
            assert_eq!(ImageRef::parse_uri(uri).unwrap_err(), region, "{uri}");
        }
    }

    #[test]
    fn a_pinned_uri_names_the_digest_in_the_images_registry() {
        let digest = crate::names::Digest::new("sha256:4cf0").unwrap();
        let app = ImageRef::parse_uri(APP).unwrap();
        assert_eq!(
            app.pinned_uri(&digest),
            "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/laravel-app@sha256:4cf0"
        );
        let china = ImageRef::parse_uri("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app:v1").unwrap();
        assert_eq!(china.pinned_uri(&digest), "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app@sha256:4cf0");
    }

    #[test]
    fn a_verify_path_that_names_another_host_is_rejected() {
        for path in ["http://evil.example/", "//evil.example/", "/\\evil", "evil", "/@evil"] {
            let text =
                v1(&format!(r#", "verify": {{"path": "{}", "expect_status": 200}}"#, path.replace('\\', "\\\\")));
            assert!(matches!(parse(text.as_bytes(), &key()), Err(ManifestError::VerifyPath(_))), "{path}");
        }
    }

    #[test]
    fn a_container_named_twice_in_imagedefinitions_is_rejected() {
        let text =
            format!(r#"[{{"name": "laravel", "imageUri": "{APP}"}}, {{"name": "laravel", "imageUri": "{NGINX}"}}]"#);
        assert!(matches!(parse(text.as_bytes(), &key()), Err(ManifestError::DuplicateContainer(_))));
    }

    #[test]
    fn a_verify_path_with_a_space_tab_cr_or_lf_is_refused_at_the_manifest_stage() {
        for path in ["/health check", "/health\\tcheck", "/health\\r\\nHost: evil", "/health\\n"] {
            let text = v1(&format!(r#", "verify": {{"path": "{path}", "expect_status": 200}}"#));
            let err = parse(text.as_bytes(), &key()).unwrap_err();
            assert!(matches!(err, ManifestError::VerifyPath(_)), "{path}: {err}");
        }
    }

    #[test]
    fn a_duplicate_top_level_key_is_refused_not_read_as_its_last_value() {
        let text = v1("").replace("\"release\": \"4cf03d1\"", "\"release\": \"a\", \"release\": \"4cf03d1\"");
        let err = parse(text.as_bytes(), &key()).unwrap_err();
        assert_eq!(err, ManifestError::DuplicateKey("release".into()));
        assert_eq!(
            err.to_string(),
            "the manifest names \"release\" twice in one object; JSON readers disagree on which one counts"
        );
    }

    #[test]
    fn a_duplicate_key_inside_images_is_refused() {
        let text = v1("").replace("\"nginx\": ", "\"laravel\": ");
        assert_eq!(parse(text.as_bytes(), &key()).unwrap_err(), ManifestError::DuplicateKey("laravel".into()));
    }

    #[test]
    fn equal_keys_in_different_objects_are_not_duplicates() {
        let text =
            format!(r#"[{{"name": "laravel", "imageUri": "{APP}"}}, {{"name": "nginx", "imageUri": "{NGINX}"}}]"#);
        assert!(parse(text.as_bytes(), &key()).is_ok());
    }

    #[test]
    fn a_2000_character_release_id_is_quoted_only_in_part() {
        let long = "a".repeat(2000);
        let text = v1("").replace("\"release\": \"4cf03d1\"", &format!("\"release\": \"{long}\""));
        let reason = parse(text.as_bytes(), &key()).unwrap_err().to_string();
        assert!(reason.len() < 200, "{} characters: {reason}", reason.len());
        assert!(reason.contains("(2000 characters)"), "{reason}");
    }

    #[test]
    fn a_long_unknown_field_name_is_cut_in_the_reason() {
        let text = v1(&format!(r#", "{}": 1"#, "x".repeat(5000)));
        let reason = parse(text.as_bytes(), &key()).unwrap_err().to_string();
        assert!(reason.len() < 400, "{} characters", reason.len());
        assert!(reason.contains("unknown field"), "{reason}");
    }

    #[test]
    fn a_long_image_uri_is_quoted_only_in_part() {
        let text = v1("").replace(APP, &format!("docker.io/{}:1", "x".repeat(3000)));
        let reason = parse(text.as_bytes(), &key()).unwrap_err().to_string();
        assert!(reason.len() < 300, "{} characters: {reason}", reason.len());
    }

    #[test]
    fn an_image_in_another_accounts_registry_is_refused() {
        let text = v1("").replace(
            "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/laravel-app:",
            "999999999999.dkr.ecr.ap-northeast-1.amazonaws.com/laravel-app:",
        );
        let manifest = parse(text.as_bytes(), &key()).unwrap();
        let err = policy().admit(&key(), &manifest).unwrap_err();
        assert!(matches!(err, ManifestError::ForeignRegistry { .. }), "{err}");
        assert!(err.to_string().contains("999999999999"), "{err}");
    }

    #[test]
    fn an_account_the_operator_lists_may_hold_images() {
        let text = v1("").replace(
            "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/laravel-app:",
            "999999999999.dkr.ecr.ap-northeast-1.amazonaws.com/laravel-app:",
        );
        let manifest = parse(text.as_bytes(), &key()).unwrap();
        let mut policy = policy();
        policy.registries.insert("999999999999".parse().unwrap());
        assert!(policy.admit(&key(), &manifest).is_ok());
    }
}
