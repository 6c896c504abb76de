//! `convoy rollback <service> [--to RELEASE] [--migrate-down]`: submits a new release whose images
//! are an earlier release's pinned digests (tags may have moved since) and whose services are that
//! release's services (a group release: all of them, as a version 2 manifest). The manifest says
//! it is a rollback; `manifest-uploaded` confirms that from Convoy's records before anything runs,
//! and the release then goes through the same verification and approval as any other.
//! [`plan`] works it out from the records without writing (the dashboard's confirmation page shows
//! it); [`submit`] uploads exactly that, once per name.

use std::process::ExitCode;

use convoy::adapters::aws::S3Store;
use convoy::error::StoreError;
use convoy::history;
use convoy::names::{ReleaseId, ReleaseKey, ServiceName};
use convoy::ports::{ReleaseStore, ServiceRecords};
use serde_json::json;

use crate::exit;

#[derive(clap::Args)]
pub struct Args {
    /// The service to roll back (a service of a group release rolls the whole group release back).
    service: ServiceName,
    /// The release to return to; by default the release live before the one live now.
    #[arg(long)]
    to: Option<ReleaseId>,
    /// Run the down command the reverted release's manifest recorded (`migration.down`), from
    /// that release's image, before deploying. Without it no migration runs: the database schema
    /// stays where the reverted release left it.
    #[arg(long)]
    migrate_down: bool,
    /// Where manifests go in the state bucket.
    #[arg(long, env = "CONVOY_MANIFEST_PREFIX", default_value = "releases/")]
    prefix: String,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

/// What a rollback is asked to do.
#[derive(Debug, Clone)]
pub struct Wanted<'a> {
    /// The service to roll back (a part of a group release rolls the whole group release back).
    pub service: &'a ServiceName,
    /// The release to return to; `None`: the release live before the one live now.
    pub to: Option<&'a ReleaseId>,
    /// The release the person saw live (the dashboard's confirmation page names it): refused when
    /// another is live by the time it is submitted. `None`: whichever is live now.
    pub of: Option<&'a ReleaseId>,
    pub migrate_down: bool,
    /// The moment that names the rollback (`rollback-<to>-<unix seconds>`): one moment submits at
    /// most one release. The CLI passes now; the dashboard the moment its confirmation page was
    /// drawn, so that a second POST of the same form names the same release, not a second one.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// A rollback as it would be submitted: what the dashboard's confirmation page shows, and exactly
/// what [`submit`] uploads.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// `<service or group>/<rollback release>`.
    pub release: ReleaseKey,
    /// The release live now, which the rollback reverts, and when it went live.
    pub of: ReleaseId,
    pub of_went_live: chrono::DateTime<chrono::Utc>,
    /// The release returned to.
    pub to: ReleaseId,
    /// The group release `to` is the service's part of: every service of it rolls back.
    pub group: Option<ReleaseKey>,
    /// The down command `of`'s manifest recorded (what `--migrate-down` runs), as
    /// (container, command); `None` when it recorded none (a group release: its one migration's).
    pub down: Option<(String, Vec<String>)>,
    /// Where the manifest goes in the state bucket (`<prefix><name>/<release>.json`).
    pub object: String,
    pub manifest: serde_json::Value,
}

impl Plan {
    /// The images the rollback deploys (container or image name → pinned URI), from its manifest.
    pub fn images(&self) -> Vec<(String, String)> {
        let images = self.manifest["images"].as_object().into_iter().flatten();
        images.map(|(name, uri)| (name.clone(), uri.as_str().unwrap_or_default().to_owned())).collect()
    }

    /// The services a group release's rollback returns (empty for one service's release).
    pub fn services(&self) -> Vec<String> {
        self.manifest["services"].as_object().map(|s| s.keys().cloned().collect()).unwrap_or_default()
    }
}

/// A rollback submitted: its release, and what it reverts to what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Submitted {
    /// `<service or group>/<rollback release>`.
    pub release: ReleaseKey,
    pub of: ReleaseId,
    pub to: ReleaseId,
    /// `s3://<bucket>/<key>` of the uploaded manifest.
    pub manifest: String,
    pub manifest_json: serde_json::Value,
    /// `false`: the manifest of this very rollback (same name) was there already, as after a
    /// second click on the same confirmation: nothing was written, the first stands.
    pub written: bool,
}

/// Why no rollback was submitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The records do not allow it (nothing live, nothing before it, `--to` never went live, the
    /// live release is not the one the person saw): a retry does not help.
    #[error("{0}")]
    Refused(String),
    /// S3 could not be read or written: a retry may help.
    #[error("{0}")]
    Unavailable(String),
}

/// Works out the rollback `wanted` asks for from the service's records (`listing`, `store`),
/// writing nothing: the release live now (`of`), the one returned to, and the manifest that
/// [`submit`] would upload under `prefix`.
///
/// # Errors
/// [`Refusal::Refused`] when the records allow no such rollback; [`Refusal::Unavailable`] when
/// the records could not be read.
pub async fn plan(
    listing: &dyn ServiceRecords,
    store: &dyn ReleaseStore,
    wanted: &Wanted<'_>,
    prefix: &str,
) -> Result<Plan, Refusal> {
    let (service, to) = (wanted.service, wanted.to);
    let unavailable = |e: StoreError| Refusal::Unavailable(e.to_string());
    let loaded = history::load(listing, store, service, None).await.map_err(unavailable)?;
    let Some(live) = loaded.history.live_now() else {
        return Err(Refusal::Refused(format!(
            "no release of {service} is live by Convoy's records: nothing to roll back"
        )));
    };
    let of = live.key.release.clone();
    if let Some(seen) = wanted.of.filter(|seen| **seen != of) {
        return Err(Refusal::Refused(format!(
            "release {of} of {service} is live now, not {seen}: look again before rolling back"
        )));
    }
    let target = match to {
        Some(to) => loaded.history.releases.iter().find(|r| r.key.release == *to),
        None => loaded.history.live_before(),
    };
    let Some(target) = target else {
        let why = match to {
            Some(to) => {
                format!("release {to} of {service} never went live: only a release that went live can be returned to")
            }
            None => format!("no release of {service} was live before {of}: give --to"),
        };
        return Err(Refusal::Refused(why));
    };
    if target.key.release == of {
        return Err(Refusal::Refused(format!("release {of} is live now: there is nothing to roll back to")));
    }
    let Some(to_record) = loaded.records.iter().find(|r| r.key == target.key) else {
        return Err(Refusal::Unavailable(format!("the record of {} was not read", target.key)));
    };
    let to_group = match &to_record.part_of {
        Some(group) => store.load(group).await.map_err(unavailable)?.map(|s| s.release),
        None => None,
    };
    let release =
        convoy::rollback::release_id(&to_record.key.release, wanted.at.timestamp()).map_err(Refusal::Refused)?;
    let (key, manifest) =
        convoy::rollback::manifest_for(to_record, to_group.as_ref(), &of, wanted.migrate_down, &release)
            .map_err(Refusal::Refused)?;
    let mut prefix = prefix.to_owned();
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    // What `--migrate-down` would run: `of`'s migration's down command (a group release's: its one
    // migration's, from its group record).
    let down = match &live.part_of {
        Some(of_group) => store
            .load(of_group)
            .await
            .map_err(unavailable)?
            .and_then(|s| s.release.group?.migration)
            .and_then(|m| Some((m.container.to_string(), m.down?))),
        None => loaded
            .records
            .iter()
            .find(|r| r.key == live.key)
            .and_then(|r| r.manifest.as_ref()?.migration.as_ref())
            .and_then(|m| Some((m.container.to_string(), m.down.clone()?))),
    };
    Ok(Plan {
        object: format!("{prefix}{}/{}.json", key.service, key.release),
        release: key,
        of,
        of_went_live: live.at,
        to: to_record.key.release.clone(),
        group: to_record.part_of.clone(),
        down,
        manifest,
    })
}

/// Submits the rollback `wanted` asks for ([`plan`]), reading its records from `store` and
/// uploading the manifest under `prefix`, never over an existing key: when this very rollback's
/// manifest is there already (the same `wanted.at`), nothing is written and the answer says so
/// ([`Submitted::written`]). `convoy rollback` and the dashboard both call this.
///
/// # Errors
/// [`Refusal::Refused`] when the records allow no such rollback; [`Refusal::Unavailable`] when S3
/// could not be read or written.
pub async fn submit(store: &S3Store, bucket: &str, wanted: &Wanted<'_>, prefix: &str) -> Result<Submitted, Refusal> {
    let plan = plan(store, store, wanted, prefix).await?;
    let bytes = serde_json::to_vec_pretty(&plan.manifest).map_err(|e| Refusal::Refused(e.to_string()))?;
    // The name holds `to` and the moment: taken means this rollback was submitted already.
    let written = match store.put_manifest_once(&plan.object, bytes).await {
        Ok(_) => true,
        Err(StoreError::AlreadyExists) => false,
        Err(err) => return Err(Refusal::Unavailable(err.to_string())),
    };
    Ok(Submitted {
        release: plan.release,
        of: plan.of,
        to: plan.to,
        manifest: format!("s3://{bucket}/{}", plan.object),
        manifest_json: plan.manifest,
        written,
    })
}

pub async fn run(args: Args, store: &S3Store, bucket: &str) -> Result<ExitCode, String> {
    let wanted = Wanted {
        service: &args.service,
        to: args.to.as_ref(),
        of: None,
        migrate_down: args.migrate_down,
        at: chrono::Utc::now(),
    };
    let submitted = submit(store, bucket, &wanted, &args.prefix).await;
    let submitted = match submitted {
        Ok(submitted) => submitted,
        Err(Refusal::Refused(why)) => {
            if args.json {
                outln!("{}", crate::output::json(&json!({"refused": why})));
            }
            errln!("convoy: refused: {why}");
            return Ok(ExitCode::from(exit::REFUSED));
        }
        Err(Refusal::Unavailable(why)) => return Err(why),
    };
    let (name, release) = (&submitted.release.service, &submitted.release.release);
    let wait = format!("convoy wait {name} {release}");
    let status = format!("convoy status {name} {release}");
    if args.json {
        let out = json!({"release": submitted.release.to_string(), "of": submitted.of.to_string(),
                         "to": submitted.to.to_string(), "manifest": submitted.manifest,
                         "migrate_down": args.migrate_down, "written": submitted.written,
                         "wait": wait, "status": status});
        outln!("{}", crate::output::json(&out));
    } else {
        outln!(
            "{} {}: a rollback of {} to {} ({})",
            if submitted.written { "submitted" } else { "submitted already (nothing written)" },
            submitted.release,
            submitted.of,
            submitted.to,
            submitted.manifest
        );
        if !args.migrate_down {
            outln!("  no migration runs: the database schema stays where {} left it", submitted.of);
        }
        outln!("  follow it: {wait}");
        outln!("  status:    {status}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[path = "rollback_tests.rs"]
pub(crate) mod tests;
