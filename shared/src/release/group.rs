//! A release of several services (a version 2 manifest, [`GroupManifest`]): the record keeps the
//! accepted manifest and one [`ServiceSection`] per service, in the manifest's order, beside what
//! belongs to the release as a whole (its images, each pinned once; its one migration; its one
//! approval; its state and timeline).
//!
//! Every deploy method is one kind of section: the method the operator's settings give the
//! service, the revision the service ran before the release changed it (recorded before any
//! change, so a rollback knows where to go back to), the revision the release deploys, the
//! deployment that carries it (a CodeDeploy deployment, the pipeline execution and then its
//! CodeDeploy deployment, or an ECS service deployment: native blue/green or a rolling update),
//! its state, and its verification when it takes traffic.
//!
//! [`Release::open_group`] opens an admitted group's release: readiness pins its images and its
//! one migration runs as for one service; its services then deploy step by step, each through its
//! part (`services.rs`), and each section follows its part.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DeployMethod, ImageStatus, ManifestSource, Release, State, Verification};
use crate::manifest::{GroupManifest, Migration};
use crate::names::{ContainerName, DeploymentRef, ImageName, ReleaseKey, ServiceName};

/// A group's manifest as admitted, with what the operator's settings say of each service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOpening {
    pub manifest: GroupManifest,
    /// Each service's deploy method, from its settings.
    pub methods: BTreeMap<ServiceName, DeployMethod>,
}

/// One service of a group's release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSection {
    pub service: ServiceName,
    /// Its step in the manifest's order, from 0.
    pub step: usize,
    pub method: DeployMethod,
    /// Whether a test listener verifies it (every method but a rolling update's).
    pub takes_traffic: bool,
    /// Container → the name of its image in the release's images.
    pub containers: BTreeMap<ContainerName, ImageName>,
    /// The task definition (ARN) the service ran before the release changed it: recorded before
    /// any change, what a rollback returns it to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_revision: Option<String>,
    /// The release's task definition (ARN) for this service, once registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The deployment that carries the revision, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentRef>,
    pub state: SectionState,
    /// Its verification on its own test listener (a service that takes traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// How many timeline entries its part had when the section last followed it: a part's record
    /// only grows, so a tell of an older read (a concurrent invocation's) is recognised and ignored.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub part_entries: usize,
    /// The scheduled tasks of its task family the release moved to its revision once it was live,
    /// each with the revision it ran before (what a rollback points it back at).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<crate::scheduled::ScheduleMove>,
    /// Whether those scheduled tasks were pointed back at their previous revisions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub schedules_put_back: bool,
    /// Its part's decision on the traffic shift: a person's, or the release's approval carried
    /// to it (a service that takes traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<super::ApprovalDecision>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Where one service of a group's release stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum SectionState {
    /// Not changed by the release: its step has not come (or the release ended before it).
    Waiting,
    /// Its deployment runs (`deployment` names it).
    Deploying,
    /// Its verification on its test listener runs.
    Verifying,
    /// Through its step: verified (its traffic shift waits for the release's approval), or, for
    /// a service that takes no traffic, deployed.
    Through,
    /// Runs the release's revision.
    Live,
    /// Going back to `previous_revision`.
    RollingBack { reason: String },
    /// Back on `previous_revision`.
    RolledBack { reason: String },
    /// Its deployment failed before it changed anything.
    Failed { reason: String },
}

impl ServiceSection {
    fn waiting(manifest: &GroupManifest, service: &ServiceName, step: usize, method: DeployMethod) -> Self {
        let containers = manifest.services.get(service).map(|part| part.containers.clone()).unwrap_or_default();
        Self {
            service: service.clone(),
            step,
            method,
            takes_traffic: method.takes_traffic(),
            containers,
            previous_revision: None,
            revision: None,
            deployment: None,
            state: SectionState::Waiting,
            verification: None,
            part_entries: 0,
            schedules: Vec::new(),
            schedules_put_back: false,
            approval: None,
        }
    }
}

/// The sections of `opening`, in the manifest's order.
fn sections(opening: &GroupOpening) -> Vec<ServiceSection> {
    let mut sections = Vec::new();
    for (step, services) in opening.manifest.order.iter().enumerate() {
        for service in &services.0 {
            // Admission gave every service of the manifest its method.
            let Some(method) = opening.methods.get(service) else { continue };
            sections.push(ServiceSection::waiting(&opening.manifest, service, step, *method));
        }
    }
    sections
}

/// The record's key for an image of a group's release: its name (an image name has a container
/// name's rules), so each image is one entry however many containers run it.
pub(super) fn image_slot(name: &ImageName) -> ContainerName {
    ContainerName::new(name.as_str()).expect("an image name follows a container name's rules")
}

impl Release {
    /// A new record for an admitted group's release: collecting every image of every service, each
    /// image once (the readiness stage pins it once, for every container that runs it).
    pub fn open_group(key: ReleaseKey, source: ManifestSource, opening: GroupOpening, at: DateTime<Utc>) -> Self {
        let mut release = Self::empty(key, source);
        release.images = opening
            .manifest
            .images
            .iter()
            .map(|(name, image)| (image_slot(name), ImageStatus { image: image.clone(), digest: None, seen_at: None }))
            .collect();
        let listed = opening.manifest.images.iter().map(|(n, i)| format!("{n}={}", i.uri())).collect::<Vec<_>>();
        let services = opening.manifest.services_in_order().map(ToString::to_string).collect::<Vec<_>>();
        let detail =
            format!("{}: services {}; images {}", release.source.describe(), services.join(", "), listed.join(", "));
        release.record(at, "manifest-accepted", detail);
        release.services = sections(&opening);
        release.rollback = opening.manifest.rollback.as_ref().and_then(|claim| claim.confirmed.clone());
        release.record_rollback(at);
        release.group = Some(opening.manifest);
        release
    }

    /// Takes an admitted group's manifest in place of a refused one (a fixed upload): collecting.
    pub(super) fn accept_group(&mut self, opening: GroupOpening, at: DateTime<Utc>) {
        let fresh = Release::open_group(self.key.clone(), self.source.clone(), opening, at);
        self.images = fresh.images;
        self.timeline.extend(fresh.timeline);
        self.services = fresh.services;
        self.group = fresh.group;
        self.rollback = fresh.rollback;
        self.manifest = None;
        self.state = State::Collecting;
    }

    /// The service whose task definition the migration is derived from: the release's own service,
    /// or the one a group's manifest names (for a group's rollback with `migrate_down`: the one
    /// the reverted release's migration named).
    pub fn migration_service(&self) -> &ServiceName {
        if let Some(service) = self.rollback.as_ref().and_then(|r| r.down.as_ref()).and_then(|d| d.service.as_ref()) {
            return service;
        }
        match self.group.as_ref().and_then(|g| g.migration.as_ref()) {
            Some(migration) => &migration.service,
            None => &self.key.service,
        }
    }

    /// The release's one migration, whichever manifest declared it.
    pub fn declared_migration(&self) -> Option<Migration> {
        // A rollback's manifest names no migration; with `migrate_down` the reverted release's
        // down command is the migration.
        if let Some(down) = self.rollback.as_ref().and_then(|r| r.down.as_ref()) {
            return Some(down.run());
        }
        match &self.group {
            Some(group) => group.migration.as_ref().map(|m| m.run()),
            None => self.manifest.as_ref().and_then(|m| m.migration.clone()),
        }
    }

    /// `service`'s containers with their images pinned by digest, as its task definitions name
    /// them (complete once the release is ready). For a release of one service, its own.
    pub fn pinned_uris_of(&self, service: &ServiceName) -> Vec<(String, String)> {
        let Some(section) = self.services.iter().find(|s| s.service == *service) else {
            return if *service == self.key.service { self.pinned_uris() } else { Vec::new() };
        };
        section
            .containers
            .iter()
            .filter_map(|(container, name)| {
                let status = self.images.get(&image_slot(name))?;
                Some((container.to_string(), status.image.pinned_uri(status.digest.as_ref()?)))
            })
            .collect()
    }

    /// The section of `service`, in a group's release.
    pub fn section(&self, service: &ServiceName) -> Option<&ServiceSection> {
        self.services.iter().find(|s| s.service == *service)
    }
}
