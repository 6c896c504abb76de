//! `convoy submit`: the manifest is checked by the code `manifest-uploaded` runs (the same parse,
//! the same policy), so a bad one is refused here with the very message its record would carry,
//! and nothing is uploaded. A good one is uploaded with `If-None-Match: *`: a release id that was
//! submitted once is never overwritten.

use std::collections::BTreeSet;
use std::process::ExitCode;

use convoy::adapters::aws::S3Store;
use convoy::config::StoreSettings;
use convoy::error::StoreError;
use convoy::manifest::{self, MAX_MANIFEST_BYTES, Manifest, ManifestError, Policy};
use convoy::names::{ReleaseId, ReleaseKey, RepositoryName, ServiceName};
use serde_json::json;

use crate::exit;

#[derive(clap::Args)]
pub struct Args {
    /// The manifest file (version 1 JSON, or CodePipeline's imagedefinitions.json); `-` reads stdin.
    manifest: String,
    /// The service; by default the manifest's `service` (required for imagedefinitions.json).
    #[arg(long)]
    service: Option<ServiceName>,
    /// The release id; by default the manifest's `release` (required for imagedefinitions.json).
    #[arg(long)]
    release: Option<ReleaseId>,
    /// The services Convoy may deploy, as the operator set them (checked when given).
    #[arg(long, env = "CONVOY_ALLOWED_SERVICES", value_delimiter = ',')]
    allowed_services: Vec<ServiceName>,
    /// The ECR repositories Convoy may deploy from, as the operator set them (checked when given).
    #[arg(long, env = "CONVOY_ALLOWED_REPOSITORIES", value_delimiter = ',')]
    allowed_repositories: Vec<RepositoryName>,
    /// Where manifests go in the state bucket.
    #[arg(long, env = "CONVOY_MANIFEST_PREFIX", default_value = "releases/")]
    prefix: String,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(
    args: Args,
    sdk: &aws_config::SdkConfig,
    store: &S3Store,
    settings: &StoreSettings,
) -> Result<ExitCode, String> {
    let bytes = if args.manifest == "-" {
        let mut buffer = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer).map_err(|e| format!("reading stdin: {e}"))?;
        buffer
    } else {
        std::fs::read(&args.manifest).map_err(|e| format!("reading {}: {e}", args.manifest))?
    };
    let region = sdk.region().map(ToString::to_string);
    let key =
        match check(&bytes, args.service, args.release, &args.allowed_services, &args.allowed_repositories, region) {
            Ok(key) => key,
            Err(Refusal::Manifest(reason)) => return Ok(refuse(args.json, &reason)),
            Err(Refusal::Usage(why)) => return Err(why),
        };
    let mut prefix = args.prefix;
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    let object = format!("{prefix}{}/{}.json", key.service, key.release);
    let bucket = &settings.state_bucket;
    let version = match store.put_manifest_once(&object, bytes).await {
        Ok(version) => version,
        Err(StoreError::AlreadyExists) => {
            let why = format!(
                "release {key} was already submitted (s3://{bucket}/{object} exists); a release id is never \
                 reused: submit the change under a new release id"
            );
            return Ok(refuse(args.json, &why));
        }
        Err(err) => return Err(format!("uploading s3://{bucket}/{object}: {err}")),
    };
    let (service, release) = (&key.service, &key.release);
    let wait = format!("convoy wait {service} {release}");
    let status = format!("convoy status {service} {release}");
    if args.json {
        let out = json!({"release": key.to_string(), "bucket": bucket, "key": object, "version_id": version,
                         "wait": wait, "status": status});
        outln!("{}", crate::output::json(&out));
    } else {
        let version = version.map(|v| format!(" (version {v})")).unwrap_or_default();
        outln!("submitted {key}: s3://{bucket}/{object}{version}");
        outln!("  follow it: {wait}");
        outln!("  status:    {status}");
    }
    Ok(ExitCode::SUCCESS)
}

fn refuse(json: bool, why: &str) -> ExitCode {
    if json {
        outln!("{}", crate::output::json(&json!({"refused": why})));
    }
    errln!("convoy: refused: {why}");
    ExitCode::from(exit::REFUSED)
}

#[derive(Debug, PartialEq)]
enum Refusal {
    /// The manifest is bad: the message its release record would carry.
    Manifest(String),
    /// The command lacks what it needs to name the release.
    Usage(String),
}

/// The release the manifest is for, once `manifest::parse` and `Policy::admit` (the code
/// `manifest-uploaded` runs) accept it. Allow-lists left empty are not checked; neither is the
/// region when it is unknown.
fn check(
    bytes: &[u8],
    service: Option<ServiceName>,
    release: Option<ReleaseId>,
    allowed_services: &[ServiceName],
    allowed_repositories: &[RepositoryName],
    region: Option<String>,
) -> Result<ReleaseKey, Refusal> {
    let manifest_error = |e: ManifestError| Refusal::Manifest(e.to_string());
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(manifest_error(ManifestError::TooLarge { size: bytes.len() }));
    }
    let named = |field: &str| -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        value.get(field)?.as_str().map(str::to_owned)
    };
    // A release group's manifest (docs/reference/manifest.md, version 2) names its group and
    // release; it goes to `releases/<group>/<release>.json`. Its shape is checked here; the group's
    // members and their settings are the Lambda's to check (the settings file holds them).
    if serde_json::from_slice::<serde_json::Value>(bytes).ok().and_then(|v| v.get("version")?.as_u64()) == Some(2) {
        let group =
            named("group").ok_or_else(|| manifest_error(ManifestError::Shape("missing field `group`".into())))?;
        let group = ServiceName::new(&group).map_err(|e| manifest_error(e.into()))?;
        let id =
            named("release").ok_or_else(|| manifest_error(ManifestError::Shape("missing field `release`".into())))?;
        let key = ReleaseKey::new(group, ReleaseId::new(&id).map_err(|e| manifest_error(e.into()))?);
        if service.as_ref().is_some_and(|s| *s != key.service) || release.as_ref().is_some_and(|r| *r != key.release) {
            return Err(Refusal::Usage(format!("the manifest releases {key}: --service and --release must agree")));
        }
        manifest::read(bytes, &key).map_err(manifest_error)?;
        return Ok(key);
    }
    let service = match service.map(Ok).or_else(|| named("service").map(|s| ServiceName::new(&s))) {
        Some(parsed) => Some(parsed.map_err(|e| manifest_error(e.into()))?),
        None => None,
    };
    let release = match release.map(Ok).or_else(|| named("release").map(|r| ReleaseId::new(&r))) {
        Some(parsed) => Some(parsed.map_err(|e| manifest_error(e.into()))?),
        None => None,
    };
    let (Some(service), Some(release)) = (service, release) else {
        // Say what is wrong with the content first, when something is.
        let placeholder =
            ReleaseKey::new(ServiceName::new("unnamed").expect("a name"), ReleaseId::new("unnamed").expect("an id"));
        manifest::parse(bytes, &placeholder).map_err(manifest_error)?;
        return Err(Refusal::Usage(
            "the manifest does not name its service and release (imagedefinitions.json): give --service and --release"
                .into(),
        ));
    };
    let key = ReleaseKey::new(service, release);
    let manifest = manifest::parse(bytes, &key).map_err(manifest_error)?;
    policy(&key, &manifest, allowed_services, allowed_repositories, region)
        .admit(&key, &manifest)
        .map_err(manifest_error)?;
    // The operator's settings as a ceiling, when the environment has them (as the Lambda's has).
    if let Some(json) = std::env::var(convoy::config::SERVICE_SETTINGS).ok().filter(|j| !j.trim().is_empty()) {
        let settings = convoy::settings::parse(&json)
            .map_err(|e| Refusal::Usage(format!("{}: {e}", convoy::config::SERVICE_SETTINGS)))?;
        let timeout =
            std::env::var(convoy::config::MIGRATION_TIMEOUT).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(1800);
        convoy::ceiling::admit(settings.get(&key.service), timeout, &key, &manifest).map_err(manifest_error)?;
    }
    Ok(key)
}

/// The operator's policy as far as it is known here: a list not given admits what the manifest
/// names, so only the given lists (and the region, when known) can refuse it.
fn policy(
    key: &ReleaseKey,
    manifest: &Manifest,
    services: &[ServiceName],
    repositories: &[RepositoryName],
    region: Option<String>,
) -> Policy {
    let allowed_services: BTreeSet<ServiceName> =
        if services.is_empty() { [key.service.clone()].into() } else { services.iter().cloned().collect() };
    let allowed_repositories: BTreeSet<RepositoryName> = if repositories.is_empty() {
        manifest.images.values().map(|i| i.repository.clone()).collect()
    } else {
        repositories.iter().cloned().collect()
    };
    let region = region.or_else(|| manifest.images.values().next().map(|i| i.region.clone())).unwrap_or_default();
    // Convoy's own account (`CONVOY_ACCOUNT_ID`) and `CONVOY_REGISTRY_ACCOUNTS`, when set: the
    // Lambda's registry check; unset, it is not checked here (the Lambda still checks).
    let own = std::env::var(convoy::config::ACCOUNT_ID).ok().and_then(|a| a.trim().parse().ok());
    let registries: BTreeSet<_> = match own {
        Some(own) => {
            let listed = std::env::var(convoy::config::REGISTRY_ACCOUNTS).unwrap_or_default();
            listed.split(',').filter_map(|a| a.trim().parse().ok()).chain([own]).collect()
        }
        None => manifest.images.values().map(|i| i.registry.clone()).collect(),
    };
    Policy { allowed_services, allowed_repositories, region, registries, account: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:r1";

    fn manifest(release: &str) -> Vec<u8> {
        json!({"version": 1, "release": release, "service": "web", "images": {"app": URI}}).to_string().into_bytes()
    }

    #[test]
    fn the_release_comes_from_the_manifest_when_no_flag_names_it() {
        let key = check(&manifest("r1"), None, None, &[], &[], Some("us-east-1".into())).unwrap();
        assert_eq!(key.to_string(), "web/r1");
    }

    #[test]
    fn a_flag_that_disagrees_with_the_manifest_is_refused_as_the_lambda_refuses_the_key() {
        let refused = check(&manifest("r1"), None, Some("r2".parse().unwrap()), &[], &[], None).unwrap_err();
        let Refusal::Manifest(why) = refused else { panic!("{refused:?}") };
        assert!(why.contains("the manifest says release \"r1\" but was uploaded as \"r2\""), "{why}");
    }

    #[test]
    fn only_the_allow_lists_given_refuse() {
        let services = ["api".parse().unwrap()];
        let Err(Refusal::Manifest(why)) = check(&manifest("r1"), None, None, &services, &[], None) else {
            panic!("expected a refusal")
        };
        assert_eq!(why, "service \"web\" is not one Convoy may deploy (allowed: api)");
        let repositories = ["app".parse().unwrap()];
        assert!(check(&manifest("r1"), None, None, &[], &repositories, None).is_ok());
    }

    #[test]
    fn an_image_from_another_region_is_refused_when_the_region_is_known() {
        let Err(Refusal::Manifest(why)) = check(&manifest("r1"), None, None, &[], &[], Some("eu-west-1".into())) else {
            panic!("expected a refusal")
        };
        assert!(why.contains("is in region us-east-1; Convoy runs in eu-west-1"), "{why}");
    }

    #[test]
    fn a_version_2_manifest_names_its_group_and_release_and_its_shape_is_checked() {
        let group = json!({"version": 2, "release": "r1", "group": "shop",
                           "images": {"app": URI}, "services": {"web": {"containers": {"app": "app"}}},
                           "order": ["web"]});
        let bytes = group.to_string().into_bytes();
        assert_eq!(check(&bytes, None, None, &[], &[], None).unwrap().to_string(), "shop/r1");
        let other = check(&bytes, Some("web".parse().unwrap()), None, &[], &[], None);
        assert!(matches!(other, Err(Refusal::Usage(why)) if why.contains("releases shop/r1")));
        let shapeless = json!({"version": 2, "release": "r1", "group": "shop"}).to_string().into_bytes();
        assert!(matches!(check(&shapeless, None, None, &[], &[], None), Err(Refusal::Manifest(_))));
    }

    #[test]
    fn imagedefinitions_need_the_flags() {
        let definitions = json!([{"name": "app", "imageUri": URI}]).to_string().into_bytes();
        assert!(matches!(check(&definitions, None, None, &[], &[], None), Err(Refusal::Usage(_))));
        let key = check(&definitions, Some("web".parse().unwrap()), Some("r1".parse().unwrap()), &[], &[], None);
        assert_eq!(key.unwrap().to_string(), "web/r1");
    }
}
