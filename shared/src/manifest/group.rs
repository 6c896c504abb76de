//! The version 2 manifest: one release of several services of a release group (issue 25),
//! uploaded as `releases/<group>/<release>.json` (docs/reference/manifest.md#version-2).
//!
//! ```json
//! {"version": 2, "release": "4cf03d1", "group": "shop",
//!  "images": {"app": "<account>.dkr.ecr.<region>.amazonaws.com/laravel-app:4cf03d1",
//!             "nginx": "<account>.dkr.ecr.<region>.amazonaws.com/laravel-nginx:4cf03d1"},
//!  "services": {"web": {"containers": {"laravel": "app", "nginx": "nginx"},
//!                       "verify": {"path": "/health", "expect_status": 200}},
//!               "worker": {"containers": {"worker": "app"}}},
//!  "migration": {"service": "web", "container": "laravel", "command": ["php", "artisan", "migrate"]},
//!  "order": ["web", "worker"],
//!  "approval": "manual"}
//! ```
//!
//! - `images` names each image once; services' containers name images by those names, so an
//!   image several services run is one image, pinned once by digest for all of them.
//! - `migration` runs once, from the task definition of the service it names, in one of that
//!   service's containers.
//! - `order` is the list of steps; a step is a service name or a list of names deployed together.
//!   A step starts once every service of the step before it is through: a service that takes
//!   traffic once its verification passed (its shift waits for the release's one approval), one
//!   that takes none once its deployment completed. So `["web", "worker"]` deploys the worker after
//!   web's verification, `["worker", "web"]` before web starts.
//!
//! Parsing checks shape only; which group exists, which services it holds and what each may ask
//! for is the operator's, checked at admission (`Policy::admit_group`, `ceiling::admit_group`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    Approval, ImageRef, Manifest, ManifestError, Migration, MigrationDocument, Policy, VerifyExpectation, bounded,
    check_verify, parse_migration,
};
use crate::names::{ContainerName, ImageName, ReleaseId, ReleaseKey, ServiceName};

/// A validated version 2 manifest. Only [`parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupManifest {
    /// The release group (a name of the settings file's `release_groups`).
    pub group: ServiceName,
    /// Every image of the release, each once.
    pub images: BTreeMap<ImageName, ImageRef>,
    pub services: BTreeMap<ServiceName, ServicePart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<GroupMigration>,
    /// The steps, in order; every service of `services` is in exactly one.
    pub order: Vec<Step>,
    /// The release's one approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// The manifest says it is a rollback of the whole group release (confirmed at admission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<super::RollbackClaim>,
}

/// One service of a group's release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePart {
    /// Container → the name of its image in [`GroupManifest::images`].
    pub containers: BTreeMap<ContainerName, ImageName>,
    /// What this service's verification adds, for a service that takes traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyExpectation>,
}

/// The release's one migration: which service's task definition it is derived from, which of its
/// containers runs which command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMigration {
    pub service: ServiceName,
    pub container: ContainerName,
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// The command that undoes it (recorded only, as version 1's `migration.down`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<Vec<String>>,
}

impl GroupMigration {
    /// The run as a one-service migration in its service's container.
    pub fn run(&self) -> Migration {
        Migration {
            container: self.container.clone(),
            command: self.command.clone(),
            timeout_seconds: self.timeout_seconds,
            down: self.down.clone(),
        }
    }
}

/// One step of the order: the services deployed together. Written as a name when it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step(pub Vec<ServiceName>);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StepDocument<T> {
    One(T),
    Together(Vec<T>),
}

impl Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => StepDocument::One(one).serialize(serializer),
            all => StepDocument::<&ServiceName>::Together(all.iter().collect()).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match StepDocument::<ServiceName>::deserialize(deserializer)? {
            StepDocument::One(one) => Step(vec![one]),
            StepDocument::Together(all) => Step(all),
        })
    }
}

impl GroupManifest {
    /// The services in deployment order (a step's services in the order the step lists them).
    pub fn services_in_order(&self) -> impl Iterator<Item = &ServiceName> {
        self.order.iter().flat_map(|step| step.0.iter())
    }

    /// The images `service`'s containers run: container → image.
    pub fn containers_of(&self, service: &ServiceName) -> BTreeMap<&ContainerName, &ImageRef> {
        let Some(part) = self.services.get(service) else { return BTreeMap::new() };
        part.containers.iter().filter_map(|(container, name)| Some((container, self.images.get(name)?))).collect()
    }
}

impl GroupManifest {
    /// The part of the release `service` deploys, as a one-service manifest: its containers' images,
    /// its `verify`, the release's approval, and the migration when it runs from this service's
    /// task definition. The ceiling and the allow-lists judge each service on this view, with the
    /// rules of one service's manifest.
    pub fn one_service_view(&self, service: &ServiceName) -> Option<Manifest> {
        let part = self.services.get(service)?;
        let images = self.containers_of(service).into_iter().map(|(c, i)| (c.clone(), i.clone())).collect();
        let migration = self.migration.as_ref().filter(|m| m.service == *service).map(GroupMigration::run);
        // The group's rollback is confirmed as the group's, not per part.
        Some(Manifest { images, migration, verify: part.verify.clone(), approval: self.approval, rollback: None })
    }
}

impl Policy {
    /// Checks a version 2 manifest against its release group (`members`: the settings' services of
    /// the group, `None` when the settings have no such group; `groups`: the names they have) and
    /// every service's part against the allow-lists, as [`Policy::admit`] checks one service's.
    ///
    /// # Errors
    /// [`ManifestError::UnknownGroup`], [`ManifestError::NotInGroup`] (a manifest cannot add a
    /// service to its group), or what [`Policy::admit`] says of a service's part.
    pub fn admit_group(
        &self,
        key: &ReleaseKey,
        manifest: &GroupManifest,
        members: Option<&[ServiceName]>,
        groups: &BTreeSet<&str>,
    ) -> Result<(), ManifestError> {
        let Some(members) = members else {
            let known = if groups.is_empty() { "none".to_owned() } else { super::join(groups) };
            return Err(ManifestError::UnknownGroup { group: manifest.group.to_string(), known });
        };
        for (service, _) in manifest.services.iter() {
            if !members.contains(service) {
                return Err(ManifestError::NotInGroup {
                    service: service.to_string(),
                    group: manifest.group.to_string(),
                    members: members.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                });
            }
        }
        for service in manifest.services_in_order() {
            let view = manifest.one_service_view(service).expect("the order names the manifest's services");
            self.admit(&ReleaseKey::new(service.clone(), key.release.clone()), &view)?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentV2 {
    #[allow(dead_code)] // checked before this shape is parsed
    version: u64,
    release: String,
    group: String,
    images: BTreeMap<String, String>,
    services: BTreeMap<String, ServiceDocument>,
    #[serde(default)]
    migration: Option<GroupMigrationDocument>,
    order: Vec<StepDocument<String>>,
    #[serde(default)]
    approval: Option<Approval>,
    #[serde(default)]
    rollback: Option<super::RollbackDocument>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceDocument {
    containers: BTreeMap<String, String>,
    #[serde(default)]
    verify: Option<VerifyExpectation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupMigrationDocument {
    service: String,
    container: String,
    command: Vec<String>,
    #[serde(default)]
    timeout_seconds: Option<u64>,
    #[serde(default)]
    down: Option<Vec<String>>,
}

/// Reads a version 2 document (its `version` already read as 2) uploaded under `key`, whose
/// `service` is the group's name.
pub(super) fn parse(value: serde_json::Value, key: &ReleaseKey) -> Result<GroupManifest, ManifestError> {
    let document: DocumentV2 = serde_json::from_value(value).map_err(|e| ManifestError::GroupShape(bounded(&e)))?;
    let release = ReleaseId::new(&document.release)?;
    let group = ServiceName::new(&document.group).map_err(|e| crate::names::InvalidName { what: "group name", ..e })?;
    if group != key.service {
        return Err(ManifestError::GroupKeyMismatch { declared: group.to_string(), from_key: key.service.to_string() });
    }
    if release != key.release {
        return Err(ManifestError::KeyMismatch {
            field: "release",
            declared: release.to_string(),
            from_key: key.release.to_string(),
        });
    }
    let images = parse_named_images(document.images)?;
    if document.services.is_empty() {
        return Err(ManifestError::NoServices);
    }
    let mut services = BTreeMap::new();
    let mut used = BTreeSet::new();
    for (name, part) in document.services {
        let service = ServiceName::new(&name)?;
        if part.containers.is_empty() {
            return Err(ManifestError::NoContainers(name));
        }
        let mut containers = BTreeMap::new();
        for (container, image) in part.containers {
            let container_name = ContainerName::new(&container)?;
            let image_name = ImageName::new(&image)?;
            if !images.contains_key(&image_name) {
                return Err(ManifestError::UnknownImage { service: name, container, image });
            }
            used.insert(image_name.clone());
            containers.insert(container_name, image_name);
        }
        if let Some(verify) = &part.verify {
            check_verify(verify)?;
        }
        services.insert(service, ServicePart { containers, verify: part.verify });
    }
    if let Some(unused) = images.keys().find(|name| !used.contains(*name)) {
        return Err(ManifestError::ImageUnused(unused.to_string()));
    }
    let migration = document.migration.map(|m| parse_group_migration(m, &services, &images)).transpose()?;
    let order = parse_order(document.order, &services)?;
    let rollback =
        document.rollback.map(|r| super::parse_rollback(r, migration.is_some(), images.values())).transpose()?;
    Ok(GroupManifest { group, images, services, migration, order, approval: document.approval, rollback })
}

/// The named images, each an ECR image by tag (version 1's rules), no URI under two names.
fn parse_named_images(pairs: BTreeMap<String, String>) -> Result<BTreeMap<ImageName, ImageRef>, ManifestError> {
    let mut first_name_of: BTreeMap<ImageRef, String> = BTreeMap::new();
    let mut images = BTreeMap::new();
    for (name, uri) in pairs {
        let image_name = ImageName::new(&name)?;
        let image = ImageRef::parse_uri(&uri).map_err(|why| ManifestError::NotEcrImage {
            image: name.clone(),
            uri: uri.clone(),
            why,
        })?;
        if let Some(first) = first_name_of.insert(image.clone(), name.clone()) {
            return Err(ManifestError::ImageNamedTwice { first, second: name, uri: image.uri() });
        }
        images.insert(image_name, image);
    }
    if images.is_empty() {
        return Err(ManifestError::NoImages);
    }
    Ok(images)
}

fn parse_group_migration(
    document: GroupMigrationDocument,
    services: &BTreeMap<ServiceName, ServicePart>,
    images: &BTreeMap<ImageName, ImageRef>,
) -> Result<GroupMigration, ManifestError> {
    let service = ServiceName::new(&document.service)?;
    let Some(part) = services.get(&service) else {
        return Err(ManifestError::MigrationServiceUnknown(document.service));
    };
    let container = ContainerName::new(&document.container)?;
    if !part.containers.contains_key(&container) {
        return Err(ManifestError::MigrationContainerNotInService {
            service: document.service,
            container: document.container,
        });
    }
    // The command and timeout rules are version 1's, over this service's containers.
    let containers: BTreeMap<ContainerName, ImageRef> =
        part.containers.iter().map(|(c, name)| (c.clone(), images[name].clone())).collect();
    let run = parse_migration(
        MigrationDocument {
            container: document.container,
            command: document.command,
            timeout_seconds: document.timeout_seconds,
            down: document.down,
        },
        &containers,
    )?;
    Ok(GroupMigration {
        service,
        container: run.container,
        command: run.command,
        timeout_seconds: run.timeout_seconds,
        down: run.down,
    })
}

fn parse_order(
    steps: Vec<StepDocument<String>>,
    services: &BTreeMap<ServiceName, ServicePart>,
) -> Result<Vec<Step>, ManifestError> {
    if steps.is_empty() {
        return Err(ManifestError::OrderEmpty);
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::with_capacity(steps.len());
    for step in steps {
        let names = match step {
            StepDocument::One(name) => vec![name],
            StepDocument::Together(names) if names.is_empty() => return Err(ManifestError::OrderEmptyStep),
            StepDocument::Together(names) => names,
        };
        let mut members = Vec::with_capacity(names.len());
        for name in names {
            let service = ServiceName::new(&name)?;
            if !services.contains_key(&service) {
                return Err(ManifestError::OrderUnknownService(name));
            }
            if !seen.insert(service.clone()) {
                return Err(ManifestError::OrderTwice(name));
            }
            members.push(service);
        }
        order.push(Step(members));
    }
    if let Some(missing) = services.keys().find(|s| !seen.contains(*s)) {
        return Err(ManifestError::OrderMissing(missing.to_string()));
    }
    Ok(order)
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
