//! `convoy rollback <service> [--to RELEASE] [--migrate-down]`: submits a new release whose images
//! are an earlier release's pinned digests (tags may have moved since) and whose services are that
//! release's services (a group release: all of them, as a version 2 manifest). The manifest says
//! it is a rollback; `manifest-uploaded` confirms that from Convoy's records before anything runs,
//! and the release then goes through the same verification and approval as any other.

use std::process::ExitCode;

use convoy::adapters::aws::S3Store;
use convoy::error::StoreError;
use convoy::history;
use convoy::names::{ReleaseId, ReleaseKey, ServiceName};
use convoy::ports::ReleaseStore;
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
}

/// Why no rollback was submitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The records do not allow it (nothing live, nothing before it, `--to` never went live):
    /// a retry does not help.
    #[error("{0}")]
    Refused(String),
    /// S3 could not be read or written: a retry may help.
    #[error("{0}")]
    Unavailable(String),
}

/// Submits a rollback of `service` to `to` (by default the release live before the one live now),
/// reading its records from `store` and uploading the manifest under `prefix` (never over an
/// existing key). The dashboard calls this too.
///
/// # Errors
/// [`Refusal::Refused`] when the records allow no such rollback; [`Refusal::Unavailable`] when S3
/// could not be read or written.
pub async fn submit(
    store: &S3Store,
    bucket: &str,
    service: &ServiceName,
    to: Option<&ReleaseId>,
    migrate_down: bool,
    prefix: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Submitted, Refusal> {
    let unavailable = |e: StoreError| Refusal::Unavailable(e.to_string());
    let loaded = history::load(store, store, service, None).await.map_err(unavailable)?;
    let Some(live) = loaded.history.live_now() else {
        return Err(Refusal::Refused(format!(
            "no release of {service} is live by Convoy's records: nothing to roll back"
        )));
    };
    let of = live.key.release.clone();
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
    let release = convoy::rollback::release_id(&to_record.key.release, now.timestamp()).map_err(Refusal::Refused)?;
    let (key, manifest) = convoy::rollback::manifest_for(to_record, to_group.as_ref(), &of, migrate_down, &release)
        .map_err(Refusal::Refused)?;
    let mut prefix = prefix.to_owned();
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    let object = format!("{prefix}{}/{}.json", key.service, key.release);
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| Refusal::Refused(e.to_string()))?;
    match store.put_manifest_once(&object, bytes).await {
        Ok(_) => {}
        Err(StoreError::AlreadyExists) => {
            return Err(Refusal::Refused(format!("{object} exists already: a rollback id is never reused; try again")));
        }
        Err(err) => return Err(unavailable(err)),
    }
    Ok(Submitted {
        release: key,
        of,
        to: to_record.key.release.clone(),
        manifest: format!("s3://{bucket}/{object}"),
        manifest_json: manifest,
    })
}

pub async fn run(args: Args, store: &S3Store, bucket: &str) -> Result<ExitCode, String> {
    let (to, now) = (args.to.as_ref(), chrono::Utc::now());
    let submitted = submit(store, bucket, &args.service, to, args.migrate_down, &args.prefix, now).await;
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
                         "migrate_down": args.migrate_down, "wait": wait, "status": status});
        outln!("{}", crate::output::json(&out));
    } else {
        outln!(
            "submitted {}: a rollback of {} to {} ({})",
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
