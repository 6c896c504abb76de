//! ECR's scans and managed signing, where moto 5.2.1 stops. moto answers
//! `DescribeImageScanFindings` (after `StartImageScan`; before it, `ScanNotFoundException`) with a
//! fixed HIGH finding, or with one result per image set through its own API, fixed once read: a
//! scan never moves from `IN_PROGRESS` to `COMPLETE`, and it answers every finding on one page.
//! It has no `DescribeImageSigningStatus` at all. For a digest a test scans here
//! ([`StandIn::scan_in_progress`], [`StandIn::scan_complete`]) the stand-in keeps the scan's state
//! and answers `DescribeImageScanFindings` as ECR does (ECR API Reference,
//! `DescribeImageScanFindings`: `imageScanStatus`, `imageScanFindings.findings` for basic scanning,
//! `enhancedFindings` for Amazon Inspector, pages of `maxResults` (default 100, 1..=1000) with
//! `nextToken`); any other digest is moto's. It answers `DescribeImageSigningStatus` (ECR API
//! Reference, `DescribeImageSigningStatus`, `ImageSigningStatus`) from the signing statuses a test
//! set ([`StandIn::signed`]), an empty list for an image no signing rule matched, and
//! `ImageNotFoundException` for a digest moto's repository does not hold.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{Reply, StandIn, refuse};

/// One finding a test puts in a scan: its id, severity and, for Inspector's enhanced scanning,
/// its `fixAvailable` (`YES`, `NO`, `PARTIAL`); `None` is a basic-scanning finding.
#[derive(Debug, Clone)]
pub struct ScanFinding {
    pub id: String,
    pub severity: String,
    pub fix: Option<String>,
}

impl ScanFinding {
    pub fn basic(id: &str, severity: &str) -> Self {
        Self { id: id.to_owned(), severity: severity.to_owned(), fix: None }
    }

    pub fn enhanced(id: &str, severity: &str, fix: &str) -> Self {
        Self { id: id.to_owned(), severity: severity.to_owned(), fix: Some(fix.to_owned()) }
    }
}

#[derive(Debug, Default)]
pub(super) struct Ecr {
    /// (repository, digest) → (status, findings).
    scans: HashMap<(String, String), (String, Vec<ScanFinding>)>,
    /// (repository, digest) → `signingStatuses`.
    signatures: HashMap<(String, String), Vec<Value>>,
}

impl Ecr {
    /// The scan of a digest the stand-in keeps, or `None` (moto answers).
    pub(super) fn describe_scan(&self, body: &Value) -> Option<Reply> {
        let repository = body["repositoryName"].as_str()?.to_owned();
        let digest = body["imageId"]["imageDigest"].as_str()?.to_owned();
        let (status, findings) = self.scans.get(&(repository.clone(), digest.clone()))?;
        let page = body["maxResults"].as_i64().unwrap_or(100);
        if !(1..=1000).contains(&page) {
            return Some(refuse("InvalidParameterException", format!("maxResults {page} is not between 1 and 1000")));
        }
        let start = match body["nextToken"].as_str() {
            None => 0,
            Some(token) => match token.strip_prefix("findings-").and_then(|n| n.parse::<usize>().ok()) {
                Some(start) if start <= findings.len() => start,
                _ => return Some(refuse("InvalidParameterException", "Invalid parameter: nextToken".into())),
            },
        };
        let mut answer = json!({
            "registryId": body["registryId"],
            "repositoryName": repository,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": status, "description": format!("The scan is {status}.")},
        });
        if status == "COMPLETE" {
            let end = (start + page as usize).min(findings.len());
            let mut counts: HashMap<&str, u32> = HashMap::new();
            for finding in findings {
                *counts.entry(finding.severity.as_str()).or_default() += 1;
            }
            let shown = &findings[start..end];
            let basic: Vec<Value> = shown
                .iter()
                .filter(|f| f.fix.is_none())
                .map(|f| json!({"name": f.id, "severity": f.severity, "uri": format!("https://cve.example/{}", f.id)}))
                .collect();
            let enhanced: Vec<Value> = shown
                .iter()
                .filter_map(|f| {
                    let fix = f.fix.as_ref()?;
                    Some(json!({"severity": f.severity, "fixAvailable": fix, "title": f.id, "status": "ACTIVE",
                                "packageVulnerabilityDetails": {"vulnerabilityId": f.id, "source": "NVD"}}))
                })
                .collect();
            answer["imageScanFindings"] = json!({
                "imageScanCompletedAt": chrono::Utc::now().timestamp(),
                "findingSeverityCounts": counts,
                "findings": basic,
                "enhancedFindings": enhanced,
            });
            if end < findings.len() {
                answer["nextToken"] = json!(format!("findings-{end}"));
            }
        }
        Some((200, answer))
    }

    /// `DescribeImageSigningStatus`; `exists` says whether moto's repository holds the digest.
    pub(super) fn signing_status(&self, body: &Value, exists: bool) -> Reply {
        let repository = body["repositoryName"].as_str().unwrap_or_default().to_owned();
        let digest = body["imageId"]["imageDigest"].as_str().unwrap_or_default().to_owned();
        if !exists {
            let message = format!(
                "The image with imageId {{imageDigest:'{digest}'}} does not exist within the repository with name \
                 '{repository}'"
            );
            return refuse("ImageNotFoundException", message);
        }
        let statuses = self.signatures.get(&(repository.clone(), digest.clone())).cloned().unwrap_or_default();
        (
            200,
            json!({"repositoryName": repository, "registryId": body["registryId"],
                     "imageId": {"imageDigest": digest}, "signingStatuses": statuses}),
        )
    }
}

impl StandIn {
    /// ECR is scanning `digest` of `repository`: `DescribeImageScanFindings` says `IN_PROGRESS`.
    pub fn scan_in_progress(&self, repository: &str, digest: &str) {
        let key = (repository.to_owned(), digest.to_owned());
        self.shared.ecr.lock().expect("ecr").scans.insert(key, ("IN_PROGRESS".into(), Vec::new()));
    }

    /// ECR's scan of `digest` completed with `findings`.
    pub fn scan_complete(&self, repository: &str, digest: &str, findings: Vec<ScanFinding>) {
        let key = (repository.to_owned(), digest.to_owned());
        self.shared.ecr.lock().expect("ecr").scans.insert(key, ("COMPLETE".into(), findings));
    }

    /// ECR managed signing signed `digest` with `profile` (status `COMPLETE`, `IN_PROGRESS` or
    /// `FAILED`).
    pub fn signed(&self, repository: &str, digest: &str, profile: &str, status: &str) {
        let key = (repository.to_owned(), digest.to_owned());
        let mut entry = json!({"signingProfileArn": profile, "status": status});
        if status == "FAILED" {
            entry["failureCode"] = json!("SIGNING_FAILED");
            entry["failureReason"] = json!("AWS Signer could not sign the image");
        }
        self.shared.ecr.lock().expect("ecr").signatures.entry(key).or_default().push(entry);
    }
}
