//! Rollbacks: a release whose manifest says it returns a service (or a whole group release) from
//! the release live now (`of`) to one live before it (`to`), with `to`'s pinned digests.
//!
//! The manifest's `rollback` is a claim anyone who can upload a manifest could write. What makes
//! it a rollback is [`confirm_service`] / [`confirm_group`]: pure checks of the claim against
//! Convoy's own records (never the manifest's word): `to` went live for the service (each service,
//! for a group), `of` is the release live now, and the manifest's images are exactly the digests
//! `to` pinned. The confirmed [`Rollback`] is what the record keeps. A rollback runs no migration
//! of its own; with `migrate_down` it runs the down command `of`'s record holds, from `of`'s image
//! (for a group release: its one migration's, from the task definition of the service it names).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::manifest::{GroupManifest, Manifest, Migration, RollbackClaim};
use crate::names::{ContainerName, Excerpt, ReleaseId, ServiceName};
use crate::release::Release;

/// A rollback as confirmed from the records: what the release record keeps (`rollback`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    /// The release that was live when the rollback was admitted: the one reverted.
    pub of: ReleaseId,
    /// The release returned to: its services, with its pinned digests.
    pub to: ReleaseId,
    #[serde(default)]
    pub migrate_down: bool,
    /// `of`'s down migration, run before the deployment (only with `migrate_down`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<DownMigration>,
    /// Where the database schema stands after the rollback, in words.
    pub schema: String,
    /// When `of` went live (by its record): the operator's rollback window counts from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of_went_live: Option<DateTime<Utc>>,
}

/// The down command of the reverted release's migration, in its container, from its image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownMigration {
    /// For a group release, the service whose task definition its migration (and so the down
    /// migration) derives from; `None` for a release of one service: its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceName>,
    pub container: ContainerName,
    pub command: Vec<String>,
    /// `of`'s pinned image of that container (`<registry>/<repository>@sha256:…`): the code that
    /// knows how to undo its own migration.
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

impl DownMigration {
    /// The run, as the migration stage runs any migration.
    pub fn run(&self) -> Migration {
        Migration {
            container: self.container.clone(),
            command: self.command.clone(),
            timeout_seconds: self.timeout_seconds,
            down: None,
        }
    }
}

/// What the records say of one service, as far as a rollback needs: the release live now and
/// whether each release went live ([`crate::history`] derives both).
#[derive(Debug, Clone, Copy)]
pub struct Live<'a> {
    /// The release live now (the newest that went live and was not put back).
    pub now: Option<&'a ReleaseId>,
    /// When it went live.
    pub since: Option<DateTime<Utc>>,
    /// The releases of the service that went live, any order.
    pub went_live: &'a [ReleaseId],
}

/// Confirms a one-service rollback of `service`: `to` (its record `to_record`) went live, `of` is
/// live now (its record `of_record`), and the manifest's images are exactly `to`'s pinned digests.
///
/// # Errors
/// The reason the claim is not confirmed, for the record (the release then ends at the manifest).
pub fn confirm_service(
    service: &ServiceName,
    manifest: &Manifest,
    claim: &RollbackClaim,
    live: Live<'_>,
    to_record: Option<&Release>,
    of_record: Option<&Release>,
) -> Result<Rollback, String> {
    let to = went_live(service, claim, live, to_record)?;
    if let Some(group) = &to.part_of {
        return Err(format!(
            "release {} of service {service} is its part of group release {group}: a group release rolls back \
             whole, with a version 2 manifest naming every service of it (convoy rollback writes one)",
            Excerpt(claim.to.as_str())
        ));
    }
    is_live_now(service, claim, live)?;
    same_images(service, &named(manifest), &to.pinned_uris().into_iter().collect(), &claim.to)?;
    let down = if claim.migrate_down { Some(down_of(service, claim, of_record)?) } else { None };
    Ok(confirmed(claim, down, live.since))
}

/// Confirms a group rollback: `to`'s group record (`to_group`) names exactly the manifest's
/// services, and for each service its part of `to` went live, `of` is live now, and the manifest
/// gives it `to`'s part's pinned digests. `parts` holds, per service, what its records say and
/// its part of `to`. With `migrate_down`, `of`'s group record (`of_group`) gives the down
/// migration: its one migration's down command, from `of`'s pinned image of that container.
///
/// # Errors
/// The reason the claim is not confirmed, for the record.
pub fn confirm_group(
    manifest: &GroupManifest,
    claim: &RollbackClaim,
    to_group: Option<&Release>,
    of_group: Option<&Release>,
    parts: &BTreeMap<ServiceName, (Live<'_>, Option<&Release>)>,
) -> Result<Rollback, String> {
    let group = &manifest.group;
    let Some(to_manifest) = to_group.and_then(|r| r.group.as_ref()) else {
        return Err(format!("group {group} has no release {} in Convoy's records", Excerpt(claim.to.as_str())));
    };
    let theirs: Vec<&ServiceName> = to_manifest.services.keys().collect();
    let ours: Vec<&ServiceName> = manifest.services.keys().collect();
    if theirs != ours {
        return Err(format!(
            "release {} of group {group} released {}; the rollback names {}: a group release rolls back every \
             one of its services",
            Excerpt(claim.to.as_str()),
            join(&theirs),
            join(&ours)
        ));
    }
    let mut since = None;
    for service in manifest.services.keys() {
        let Some((live, part)) = parts.get(service) else {
            return Err(format!("service {service}'s records were not read"));
        };
        let to = went_live(service, claim, *live, *part)?;
        is_live_now(service, claim, *live)?;
        let wanted: BTreeMap<String, String> =
            manifest.containers_of(service).into_iter().map(|(c, i)| (c.to_string(), i.uri())).collect();
        same_images(service, &wanted, &to.pinned_uris().into_iter().collect(), &claim.to)?;
        // The group release went live when its last service did.
        since = since.max(live.since);
    }
    let down = if claim.migrate_down { Some(down_of_group(manifest, claim, of_group)?) } else { None };
    Ok(confirmed(claim, down, since))
}

/// Whether a confirmed rollback may skip the person's approval under the operator's rollback
/// window (`rollback.approval_window_hours`): the release it reverts went live less than
/// `hours` ago, at `now`.
pub fn within_window(reverted_went_live: DateTime<Utc>, now: DateTime<Utc>, hours: u32) -> bool {
    now - reverted_went_live < Duration::hours(i64::from(hours))
}

impl Rollback {
    /// Why policy approves this rollback instead of a person, when the operator's window
    /// (`approval_window_hours`) holds at `now`; `None`: it is approved as any release.
    pub fn fast_path(&self, approval_window_hours: Option<u32>, now: DateTime<Utc>) -> Option<String> {
        let hours = approval_window_hours?;
        let went_live = self.of_went_live?;
        within_window(went_live, now, hours).then(|| {
            format!(
                "rollback of {} within the operator's {hours} h rollback window ({} went live at {})",
                self.of,
                self.of,
                went_live.to_rfc3339()
            )
        })
    }
}

/// The release id `convoy rollback` gives a rollback to `to` at `unix_seconds`.
///
/// # Errors
/// When the id would be too long for a release id (a `to` of more than about 110 characters).
pub fn release_id(to: &ReleaseId, unix_seconds: i64) -> Result<ReleaseId, String> {
    ReleaseId::new(&format!("rollback-{to}-{unix_seconds}")).map_err(|e| e.to_string())
}

/// The manifest of a rollback from `of` to `to` (its record `to_record`), with `to`'s pinned
/// digests, its verification and approval asks, under `release`: a version 1 manifest for a
/// release of one service; for a service's part of a group release (`to_group`, the group's
/// record), a version 2 manifest of the whole group release. Returns where it is uploaded
/// (`<name>/<release>`) and the manifest.
///
/// # Errors
/// When `to` has no pinned image (it never got that far), or is a part without its group record.
pub fn manifest_for(
    to_record: &Release,
    to_group: Option<&Release>,
    of: &ReleaseId,
    migrate_down: bool,
    release: &ReleaseId,
) -> Result<(crate::names::ReleaseKey, serde_json::Value), String> {
    use serde_json::{Value, json};
    let to = &to_record.key.release;
    let rollback = json!({"of": of.to_string(), "to": to.to_string(), "migrate_down": migrate_down});
    // The approval is left to the operator's settings (and their rollback window): `to`'s own
    // ask for a person would shut the window, as a manifest's ask for more always does.
    if let Some(group_key) = &to_record.part_of {
        let Some(group) = to_group.filter(|g| g.key == *group_key) else {
            return Err(format!("{} is part of group release {group_key}, whose record was not found", to_record.key));
        };
        let Some(manifest) = &group.group else {
            return Err(format!("group release {group_key} has no accepted manifest"));
        };
        let mut images = serde_json::Map::new();
        for (name, image) in &manifest.images {
            let slot = ContainerName::new(name.as_str()).map_err(|e| e.to_string())?;
            let Some(digest) = group.images.get(&slot).and_then(|s| s.digest.as_ref()) else {
                return Err(format!("group release {group_key} never pinned image {name}"));
            };
            images.insert(name.to_string(), Value::String(image.pinned_uri(digest)));
        }
        let document = json!({"version": 2, "release": release.to_string(), "group": manifest.group.to_string(),
            "images": images, "services": manifest.services, "order": manifest.order, "rollback": rollback});
        return Ok((crate::names::ReleaseKey::new(manifest.group.clone(), release.clone()), document));
    }
    let pinned = to_record.pinned_uris();
    if pinned.is_empty() || pinned.len() != to_record.images.len() {
        return Err(format!("{} did not pin all its images: there are no digests to return to", to_record.key));
    }
    let images: serde_json::Map<String, Value> = pinned.into_iter().map(|(c, u)| (c, Value::String(u))).collect();
    let mut document = json!({"version": 1, "release": release.to_string(),
        "service": to_record.key.service.to_string(), "images": images, "rollback": rollback});
    if let Some(verify) = to_record.manifest.as_ref().and_then(|m| m.verify.as_ref()) {
        document["verify"] = json!(verify);
    }
    Ok((crate::names::ReleaseKey::new(to_record.key.service.clone(), release.clone()), document))
}

fn confirmed(claim: &RollbackClaim, down: Option<DownMigration>, of_went_live: Option<DateTime<Utc>>) -> Rollback {
    let schema = match &down {
        // The command is the manifest's text: quoted (escaped, cut), as any value from outside.
        Some(down) => {
            format!("database schema migrated down by {}'s down command {}", claim.of, Excerpt(&down.command.join(" ")))
        }
        None => format!("database schema stays where {} left it (no migration runs)", claim.of),
    };
    Rollback {
        of: claim.of.clone(),
        to: claim.to.clone(),
        migrate_down: claim.migrate_down,
        down,
        schema,
        of_went_live,
    }
}

fn went_live<'a>(
    service: &ServiceName,
    claim: &RollbackClaim,
    live: Live<'_>,
    to_record: Option<&'a Release>,
) -> Result<&'a Release, String> {
    let to = Excerpt(claim.to.as_str());
    let Some(record) = to_record else {
        return Err(format!("service {service} has no release {to} in Convoy's records"));
    };
    if !live.went_live.contains(&claim.to) {
        return Err(format!(
            "release {to} of service {service} never went live ({}): nothing to return to",
            record.state
        ));
    }
    Ok(record)
}

fn is_live_now(service: &ServiceName, claim: &RollbackClaim, live: Live<'_>) -> Result<(), String> {
    match live.now {
        Some(now) if *now == claim.of => Ok(()),
        Some(now) => Err(format!(
            "the rollback says it reverts {} but release {now} is live for service {service} now (by Convoy's records)",
            Excerpt(claim.of.as_str())
        )),
        None => Err(format!("no release of service {service} is live by Convoy's records: nothing to revert")),
    }
}

fn named(manifest: &Manifest) -> BTreeMap<String, String> {
    manifest.images.iter().map(|(c, i)| (c.to_string(), i.uri())).collect()
}

/// The manifest's images (container → URI) are exactly `to`'s pinned ones.
fn same_images(
    service: &ServiceName,
    wanted: &BTreeMap<String, String>,
    pinned: &BTreeMap<String, String>,
    to: &ReleaseId,
) -> Result<(), String> {
    if wanted == pinned {
        return Ok(());
    }
    let differing: Vec<String> = wanted
        .keys()
        .chain(pinned.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|c| wanted.get(*c) != pinned.get(*c))
        .map(|c| {
            // Both URIs are built from validated names (registry, repository, digest): quoted
            // whole, so a person can compare the digests.
            let said = wanted.get(c).map_or("nothing".to_owned(), Clone::clone);
            let was = pinned.get(c).map_or("nothing".to_owned(), Clone::clone);
            format!("{} names {said}, {} pinned {was}", Excerpt(c), Excerpt(to.as_str()))
        })
        .collect();
    Err(format!(
        "the rollback's images for service {service} are not the digests release {} pinned: {}",
        Excerpt(to.as_str()),
        differing.join("; ")
    ))
}

fn down_of(service: &ServiceName, claim: &RollbackClaim, of_record: Option<&Release>) -> Result<DownMigration, String> {
    let of = Excerpt(claim.of.as_str());
    let Some(record) = of_record else {
        return Err(format!("service {service} has no release {of} in Convoy's records"));
    };
    let migration = record.manifest.as_ref().and_then(|m| m.migration.as_ref());
    let Some(migration) = migration else {
        return Err(format!("migrate_down: release {of} ran no migration of its own, so there is none to undo"));
    };
    let Some(command) = migration.down.clone() else {
        return Err(format!(
            "migrate_down: release {of}'s migration names no down command (migration.down in its manifest)"
        ));
    };
    let image = record.pinned_uris().into_iter().find(|(c, _)| *c == migration.container.as_str()).map(|(_, u)| u);
    let Some(image) = image else {
        return Err(format!("migrate_down: release {of} has no pinned image of container {}", migration.container));
    };
    Ok(DownMigration {
        service: None,
        container: migration.container.clone(),
        command,
        image,
        timeout_seconds: migration.timeout_seconds,
    })
}

/// The down migration of group release `of` (its record `of_group`): the down command of its one
/// migration, in the same container of the same service, from `of`'s pinned image of it.
fn down_of_group(
    manifest: &GroupManifest,
    claim: &RollbackClaim,
    of_group: Option<&Release>,
) -> Result<DownMigration, String> {
    let (group, of) = (&manifest.group, Excerpt(claim.of.as_str()));
    let Some(of_manifest) = of_group.and_then(|r| r.group.as_ref()) else {
        return Err(format!("group {group} has no release {of} in Convoy's records"));
    };
    let Some(migration) = &of_manifest.migration else {
        return Err(format!("migrate_down: release {of} ran no migration of its own, so there is none to undo"));
    };
    let Some(command) = migration.down.clone() else {
        return Err(format!(
            "migrate_down: release {of}'s migration names no down command (migration.down in its manifest)"
        ));
    };
    let service = &migration.service;
    // The down migration derives from the rollback's own revision of that service: a service the
    // rollback does not return has none.
    if !manifest.services.contains_key(service) {
        return Err(format!(
            "migrate_down: release {of}'s migration runs from service {service}'s task definition, which the \
             rollback does not return"
        ));
    }
    let pinned = of_group.map(|r| r.pinned_uris_of(service)).unwrap_or_default();
    let image = pinned.into_iter().find(|(c, _)| *c == migration.container.as_str()).map(|(_, u)| u);
    let Some(image) = image else {
        return Err(format!(
            "migrate_down: release {of} has no pinned image of container {} of service {service}",
            migration.container
        ));
    };
    Ok(DownMigration {
        service: Some(service.clone()),
        container: migration.container.clone(),
        command,
        image,
        timeout_seconds: migration.timeout_seconds,
    })
}

fn join(services: &[&ServiceName]) -> String {
    services.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
#[path = "rollback_tests.rs"]
mod tests;
