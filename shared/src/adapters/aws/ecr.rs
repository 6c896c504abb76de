use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ecr::types::{ImageFailureCode, ImageIdentifier, ScanStatus};

use crate::error::RegistryError;
use crate::image_policy::{Finding, Fix, ScanReport, Severity, Signature};
use crate::manifest::Reference;
use crate::names::{AccountId, Digest, ImageTag, RepositoryName};
use crate::ports::{ImageChecks, Lookup, Registry};
use crate::release::{Absence, ImageKey};

/// ECR, asked with `BatchGetImage`: one call per repository answers for all its tags at once and
/// lists missing tags as failures instead of failing the call (as `DescribeImages` would).
#[derive(Clone)]
pub struct EcrRegistry {
    client: aws_sdk_ecr::Client,
}

impl EcrRegistry {
    pub fn new(client: aws_sdk_ecr::Client) -> Self {
        Self { client }
    }
}

/// ECR accepts at most 100 image ids per `BatchGetImage`.
const BATCH: usize = 100;

#[async_trait]
impl Registry for EcrRegistry {
    async fn resolve(&self, images: &[ImageKey]) -> Result<Lookup, RegistryError> {
        let mut by_repository: BTreeMap<(&AccountId, &RepositoryName), Vec<&Reference>> = BTreeMap::new();
        for image in images {
            by_repository.entry((&image.registry, &image.repository)).or_default().push(&image.reference);
        }
        let mut lookup = Lookup::default();
        for ((registry, repository), references) in by_repository {
            let key = |reference: &Reference| ImageKey {
                registry: registry.clone(),
                repository: repository.clone(),
                reference: reference.clone(),
            };
            for chunk in references.chunks(BATCH) {
                // A digest is asked by digest (`imageDigest`), never through a tag that may have moved.
                let ids = chunk
                    .iter()
                    .map(|reference| match reference {
                        Reference::Tag(tag) => ImageIdentifier::builder().image_tag(tag.as_str()).build(),
                        Reference::Digest(digest) => ImageIdentifier::builder().image_digest(digest.as_str()).build(),
                    })
                    .collect();
                let result = self
                    .client
                    .batch_get_image()
                    .registry_id(registry.as_str())
                    .repository_name(repository.as_str())
                    .set_image_ids(Some(ids))
                    .send()
                    .await;
                let output = match result {
                    Ok(output) => output,
                    Err(err) => {
                        // The repository may yet be created by the CI run that pushes to it, and a
                        // denied read may yet be granted: both are answers, kept for the deadline.
                        let absence = if err.as_service_error().is_some_and(|e| e.is_repository_not_found_exception()) {
                            Absence::RepositoryUnknown
                        } else if let Some(denied) = super::refusal(&err, Some(&[ACCESS_DENIED])) {
                            Absence::AccessDenied { detail: denied }
                        } else {
                            return Err(RegistryError::Unavailable(super::cause(err)));
                        };
                        lookup.missing.extend(chunk.iter().map(|reference| (key(reference), absence.clone())));
                        continue;
                    }
                };
                let mut by_tag = BTreeMap::new();
                let mut digests = std::collections::BTreeSet::new();
                for image in output.images() {
                    let Some(id) = image.image_id() else { continue };
                    let Some(Ok(digest)) = id.image_digest().map(Digest::new) else { continue };
                    if let Some(Ok(tag)) = id.image_tag().map(ImageTag::new) {
                        by_tag.insert(tag, digest.clone());
                    }
                    digests.insert(digest);
                }
                for reference in chunk {
                    let found = match reference {
                        Reference::Tag(tag) => by_tag.remove(tag),
                        Reference::Digest(digest) => digests.contains(digest).then(|| digest.clone()),
                    };
                    if let Some(digest) = found {
                        lookup.found.push((key(reference), digest));
                        continue;
                    }
                    let failure = output.failures().iter().find(|f| {
                        f.image_id().is_some_and(|id| match reference {
                            Reference::Tag(tag) => id.image_tag() == Some(tag.as_str()),
                            Reference::Digest(digest) => id.image_digest() == Some(digest.as_str()),
                        })
                    });
                    let absent = match reference {
                        Reference::Tag(_) => Absence::TagAbsent,
                        Reference::Digest(_) => Absence::DigestAbsent,
                    };
                    let absence = match failure.and_then(|f| f.failure_code()) {
                        None
                        | Some(ImageFailureCode::ImageNotFound)
                        | Some(ImageFailureCode::ImageTagDoesNotMatchDigest) => absent,
                        Some(code) => Absence::Unreadable {
                            detail: format!(
                                "{}: {}",
                                code.as_str(),
                                failure.and_then(|f| f.failure_reason()).unwrap_or("no reason")
                            ),
                        },
                    };
                    lookup.missing.push((key(reference), absence));
                }
            }
        }
        Ok(lookup)
    }
}

/// `DescribeImageScanFindings` answers at most 1,000 findings per page (ECR API Reference,
/// `DescribeImageScanFindings`, `maxResults`); a release's gate reads every page.
const FINDINGS_PAGE: i32 = 1000;

fn smithy_time(time: Option<&aws_sdk_ecr::primitives::DateTime>) -> Option<chrono::DateTime<chrono::Utc>> {
    time.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

#[async_trait]
impl ImageChecks for EcrRegistry {
    async fn scan(
        &self,
        registry: &AccountId,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<ScanReport, RegistryError> {
        let mut findings = Vec::new();
        let mut completed_at = None;
        let mut token: Option<String> = None;
        loop {
            let result = self
                .client
                .describe_image_scan_findings()
                .registry_id(registry.as_str())
                .repository_name(repository.as_str())
                .image_id(ImageIdentifier::builder().image_digest(digest.as_str()).build())
                .max_results(FINDINGS_PAGE)
                .set_next_token(token.take())
                .send()
                .await;
            let output = match result {
                Ok(output) => output,
                Err(err) if err.as_service_error().is_some_and(|e| e.is_scan_not_found_exception()) => {
                    return Ok(ScanReport::NotFound);
                }
                Err(err) => {
                    let refused = &[ACCESS_DENIED, "ImageNotFoundException", "RepositoryNotFoundException"];
                    return match super::refusal(&err, Some(refused)) {
                        Some(detail) => Ok(ScanReport::Refused { detail }),
                        None => Err(RegistryError::Unavailable(super::cause(err))),
                    };
                }
            };
            let status = output.image_scan_status().and_then(|s| s.status());
            match status {
                Some(ScanStatus::Complete | ScanStatus::Active) => {}
                Some(status @ (ScanStatus::InProgress | ScanStatus::Pending)) => {
                    return Ok(ScanReport::InProgress { status: status.as_str().to_owned() });
                }
                other => {
                    let status = other.map_or("UNKNOWN", |s| s.as_str()).to_owned();
                    let description =
                        output.image_scan_status().and_then(|s| s.description()).unwrap_or_default().to_owned();
                    return Ok(ScanReport::Unusable { status, description });
                }
            }
            if let Some(scan) = output.image_scan_findings() {
                completed_at = completed_at.or(smithy_time(scan.image_scan_completed_at()));
                for finding in scan.findings() {
                    findings.push(Finding {
                        id: finding.name().unwrap_or("unnamed").to_owned(),
                        severity: Severity::from_ecr(finding.severity().map_or("UNDEFINED", |s| s.as_str())),
                        fix: Fix::Unknown,
                    });
                }
                for finding in scan.enhanced_findings() {
                    let details = finding.package_vulnerability_details();
                    let id = details.and_then(|d| d.vulnerability_id()).or(finding.title()).unwrap_or("unnamed");
                    findings.push(Finding {
                        id: id.to_owned(),
                        severity: Severity::from_ecr(finding.severity().unwrap_or("UNTRIAGED")),
                        fix: Fix::from_ecr(finding.fix_available()),
                    });
                }
            }
            match output.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(ScanReport::Complete { completed_at, findings }),
            }
        }
    }

    async fn signatures(
        &self,
        registry: &AccountId,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<Signature>, RegistryError> {
        let result = self
            .client
            .describe_image_signing_status()
            .registry_id(registry.as_str())
            .repository_name(repository.as_str())
            .image_id(ImageIdentifier::builder().image_digest(digest.as_str()).build())
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(err) => {
                let refused = &[ACCESS_DENIED, "ImageNotFoundException", "RepositoryNotFoundException"];
                return match super::refusal(&err, Some(refused)) {
                    Some(detail) => {
                        tracing::warn!(%repository, %digest, "ECR refused the signing status: {detail}");
                        Ok(Vec::new())
                    }
                    None => Err(RegistryError::Unavailable(super::cause(err))),
                };
            }
        };
        Ok(output
            .signing_statuses()
            .iter()
            .map(|s| Signature {
                profile: s.signing_profile_arn().unwrap_or_default().to_owned(),
                status: s.status().map_or("UNKNOWN", |s| s.as_str()).to_owned(),
                failure: s
                    .failure_reason()
                    .or(s.failure_code())
                    .map(|f| format!("{}: {f}", s.failure_code().unwrap_or("FAILED"))),
            })
            .collect())
    }
}

/// ECR's code for a caller whose policy does not allow the read (not modelled by the SDK).
const ACCESS_DENIED: &str = "AccessDeniedException";

#[cfg(test)]
mod tests {
    use aws_sdk_ecr::Client;
    use aws_sdk_ecr::error::ErrorMetadata;
    use aws_sdk_ecr::operation::batch_get_image::{BatchGetImageError, BatchGetImageOutput};
    use aws_sdk_ecr::types::{Image, ImageFailure};
    use aws_smithy_mocks::{mock, mock_client};

    use super::*;

    fn image(repository: &str, tag: &str) -> ImageKey {
        ImageKey::tagged("123456789012".parse().unwrap(), repository.parse().unwrap(), tag.parse().unwrap())
    }

    fn pinned(repository: &str, digest: &str) -> ImageKey {
        ImageKey {
            registry: "123456789012".parse().unwrap(),
            repository: repository.parse().unwrap(),
            reference: Reference::Digest(Digest::new(digest).unwrap()),
        }
    }

    #[tokio::test]
    async fn a_digest_is_asked_by_digest_and_found_whatever_tag_it_carries_now() {
        const OTHER: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        let rule = mock!(Client::batch_get_image)
            .match_requests(|input| {
                input.image_ids().iter().all(|id| id.image_tag().is_none() && id.image_digest().is_some())
            })
            .then_output(|| {
                // ECR answers an id asked by digest with the digest (and a tag it carries, if any).
                let found = ImageIdentifier::builder().image_digest(DIGEST).image_tag("moved-elsewhere").build();
                let missing = ImageIdentifier::builder().image_digest(OTHER).build();
                BatchGetImageOutput::builder()
                    .images(Image::builder().image_id(found).build())
                    .failures(
                        ImageFailure::builder()
                            .image_id(missing)
                            .failure_code(ImageFailureCode::ImageNotFound)
                            .failure_reason("Requested image not found")
                            .build(),
                    )
                    .build()
            });
        let registry = EcrRegistry::new(mock_client!(aws_sdk_ecr, [&rule]));
        let lookup = registry.resolve(&[pinned("app", DIGEST), pinned("app", OTHER)]).await.unwrap();
        assert_eq!(rule.num_calls(), 1, "one BatchGetImage by digest");
        assert_eq!(lookup.found, vec![(pinned("app", DIGEST), Digest::new(DIGEST).unwrap())]);
        assert_eq!(lookup.missing, vec![(pinned("app", OTHER), Absence::DigestAbsent)]);
    }

    const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[tokio::test]
    async fn a_found_tag_is_pinned_and_a_failed_one_is_named_tag_absent() {
        let rule = mock!(Client::batch_get_image)
            .match_requests(|input| input.registry_id() == Some("123456789012") && input.image_ids().len() == 2)
            .then_output(|| {
                let found = ImageIdentifier::builder().image_tag("r1").image_digest(DIGEST).build();
                let missing = ImageIdentifier::builder().image_tag("r2").build();
                BatchGetImageOutput::builder()
                    .images(Image::builder().image_id(found).build())
                    .failures(
                        ImageFailure::builder()
                            .image_id(missing)
                            .failure_code(ImageFailureCode::ImageNotFound)
                            .failure_reason("Requested image not found")
                            .build(),
                    )
                    .build()
            });
        let registry = EcrRegistry::new(mock_client!(aws_sdk_ecr, [&rule]));
        let lookup = registry.resolve(&[image("app", "r1"), image("app", "r2")]).await.unwrap();
        assert_eq!(lookup.found, vec![(image("app", "r1"), Digest::new(DIGEST).unwrap())]);
        assert_eq!(lookup.missing, vec![(image("app", "r2"), Absence::TagAbsent)]);
    }

    #[tokio::test]
    async fn a_repository_ecr_does_not_know_is_named_repository_unknown() {
        let rule = mock!(Client::batch_get_image).then_error(|| {
            BatchGetImageError::RepositoryNotFoundException(
                aws_sdk_ecr::types::error::RepositoryNotFoundException::builder().message("no such repository").build(),
            )
        });
        let registry = EcrRegistry::new(mock_client!(aws_sdk_ecr, [&rule]));
        let lookup = registry.resolve(&[image("ghost", "r1")]).await.unwrap();
        assert_eq!(lookup.missing, vec![(image("ghost", "r1"), Absence::RepositoryUnknown)]);
    }

    #[tokio::test]
    async fn a_registry_convoy_may_not_read_is_named_access_denied_with_ecrs_message() {
        let rule = mock!(Client::batch_get_image).then_error(|| {
            let message = "User: arn:aws:sts::123456789012:assumed-role/convoy is not authorized to perform: \
                           ecr:BatchGetImage on resource: arn:aws:ecr:us-east-1:999999999999:repository/app";
            BatchGetImageError::generic(ErrorMetadata::builder().code("AccessDeniedException").message(message).build())
        });
        let registry = EcrRegistry::new(mock_client!(aws_sdk_ecr, [&rule]));
        let lookup = registry.resolve(&[image("app", "r1")]).await.unwrap();
        let [(_, Absence::AccessDenied { detail })] = lookup.missing.as_slice() else { panic!("{lookup:?}") };
        assert!(detail.starts_with("AccessDeniedException: User:"), "{detail}");
        assert!(lookup.found.is_empty());
    }

    #[tokio::test]
    async fn a_throttled_look_up_is_an_error_worth_a_retry() {
        let rule = mock!(Client::batch_get_image).then_error(|| {
            BatchGetImageError::generic(
                ErrorMetadata::builder().code("ThrottlingException").message("slow down").build(),
            )
        });
        let registry = EcrRegistry::new(mock_client!(aws_sdk_ecr, [&rule]));
        let failed = registry.resolve(&[image("app", "r1")]).await;
        assert!(matches!(failed, Err(RegistryError::Unavailable(_))), "{failed:?}");
    }
}
