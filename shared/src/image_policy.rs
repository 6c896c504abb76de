//! The image gate's policy and its pure verdict: what ECR's scan of one digest found
//! (`DescribeImageScanFindings`: basic scanning's `imageScanFindings.findings` and Amazon
//! Inspector's `enhancedFindings` both report there) and which AWS Signer profiles signed it
//! (`DescribeImageSigningStatus`, ECR managed signing), judged against the operator's policy for
//! the service. What the gate saw of each digest is kept in the record ([`ImageEvidence`]).
//!
//! Basic scanning has no fix state: its findings count as fixable (`only_fixable` never hides
//! them), so a policy that counts only fixable findings is no weaker on basic scanning.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A finding's severity as ECR ranks it, lowest first. ECR's `UNDEFINED` (basic) and Inspector's
/// `UNTRIAGED` have no rank: they count as [`Severity::Critical`], since the gate cannot say they
/// are below the operator's ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// ECR's and Inspector's words; an unranked severity counts as critical (see the type).
    pub fn from_ecr(word: &str) -> Self {
        match word.to_ascii_uppercase().as_str() {
            "INFORMATIONAL" => Severity::Informational,
            "LOW" => Severity::Low,
            "MEDIUM" => Severity::Medium,
            "HIGH" => Severity::High,
            _ => Severity::Critical,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Informational => "INFORMATIONAL",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        })
    }
}

/// The operator's image policy for a service (`image_policy` in its settings). A service without
/// one passes the gate at once ("no image policy").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImagePolicy {
    /// The highest severity a counted finding may have: `HIGH` lets HIGH through and fails CRITICAL.
    pub max_severity: Severity,
    /// Count only findings with a fix available (Inspector's `fixAvailable` YES or PARTIAL).
    #[serde(default)]
    pub only_fixable: bool,
    /// Findings allowed until a date, by id (`CVE-…`): past `until` the allowance has expired and the
    /// finding counts again (and the reason says it expired).
    #[serde(default)]
    pub allow: Vec<Allowance>,
    /// What an image ECR has no scan of (`ScanNotFoundException`, or a scan that could not run)
    /// does: `fail` (the default) or `allow` (and the record says it was not scanned).
    #[serde(default)]
    pub unscanned: Unscanned,
    /// AWS Signer signing profile ARNs (ECR managed signing): each must have signed every image.
    #[serde(default)]
    pub signing_profiles: Vec<String>,
    /// How long a scan (or a signing) still in progress may keep the release waiting, counted from
    /// when the gate began; then the release fails at the gate.
    #[serde(default = "default_wait_seconds")]
    pub wait_seconds: u64,
}

fn default_wait_seconds() -> u64 {
    1800
}

/// One finding allowed until a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Allowance {
    pub id: String,
    /// RFC 3339, e.g. `2027-01-31T00:00:00Z`.
    #[schemars(with = "String")]
    pub until: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Unscanned {
    #[default]
    Fail,
    Allow,
}

/// Whether a fix is available for a finding: Inspector's `fixAvailable`; basic scanning says
/// nothing (`Unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fix {
    Yes,
    Partial,
    No,
    Unknown,
}

impl Fix {
    pub fn from_ecr(word: Option<&str>) -> Self {
        match word.map(str::to_ascii_uppercase).as_deref() {
            Some("YES") => Fix::Yes,
            Some("PARTIAL") => Fix::Partial,
            Some("NO") => Fix::No,
            _ => Fix::Unknown,
        }
    }
}

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fix::Yes => "fix available",
            Fix::Partial => "partial fix available",
            Fix::No => "no fix available",
            Fix::Unknown => "fix state unknown (basic scanning)",
        })
    }
}

/// One finding as ECR reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The vulnerability id (`CVE-…`): basic scanning's `name`, Inspector's `vulnerabilityId`.
    pub id: String,
    pub severity: Severity,
    pub fix: Fix,
}

/// What ECR says of one digest's scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanReport {
    /// `ScanNotFoundException`: the image was never scanned.
    NotFound,
    /// `IN_PROGRESS` or `PENDING`: the findings are not there yet.
    InProgress { status: String },
    /// A scan that cannot give findings (`FAILED`, `UNSUPPORTED_IMAGE`, `FINDINGS_UNAVAILABLE`, …).
    Unusable { status: String, description: String },
    /// ECR refused to say (access denied, no such image): the gate cannot judge, so it fails.
    Refused { detail: String },
    /// `COMPLETE` (or Inspector's `ACTIVE`), with every finding of every page.
    Complete { completed_at: Option<DateTime<Utc>>, findings: Vec<Finding> },
}

/// One signing profile's status for a digest (`DescribeImageSigningStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub profile: String,
    /// `COMPLETE`, `IN_PROGRESS` or `FAILED`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// What the gate saw of one digest and what it made of it (kept in the record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageEvidence {
    pub container: String,
    /// The image as task definitions will name it, `…@sha256:…`.
    pub image: String,
    /// The scan's status as ECR said it (`COMPLETE`, `IN_PROGRESS`, `NOT_FOUND`, …).
    pub scan: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned_at: Option<DateTime<Utc>>,
    /// Every finding, counted by severity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_severity: BTreeMap<Severity, u32>,
    /// The counted findings above the policy's ceiling, with their fix state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<Finding>,
    /// Findings above the ceiling let through by an allowance, with its end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<(Finding, DateTime<Utc>)>,
    /// The signing profiles' statuses ECR reported for this digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<Signature>,
    /// Each problem with this image; none when it passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// What the gate still waits for (a scan or signing in progress); `None` once it can judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// A note a person should read on a passed image ("not scanned: allowed by policy").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl ImageEvidence {
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.waiting.is_none()
    }

    /// One line for a person: the image, its scan, its counts and what failed or waits.
    pub fn summary(&self) -> String {
        let counts: Vec<String> = self.by_severity.iter().rev().map(|(s, n)| format!("{n} {s}")).collect();
        let counts = if counts.is_empty() { "no findings".to_owned() } else { counts.join(", ") };
        let mut line = format!("{} ({}): scan {}, {counts}", self.container, self.image, self.scan);
        for (finding, until) in &self.allowed {
            line.push_str(&format!("; {} {} allowed until {}", finding.id, finding.severity, until.to_rfc3339()));
        }
        for signature in &self.signatures {
            line.push_str(&format!("; signature {} {}", signature.profile, signature.status));
        }
        if let Some(note) = &self.note {
            line.push_str(&format!("; {note}"));
        }
        if let Some(waiting) = &self.waiting {
            line.push_str(&format!("; waiting: {waiting}"));
        }
        for problem in &self.problems {
            line.push_str(&format!("; {problem}"));
        }
        line
    }
}

/// Judges one digest: its scan and signatures against `policy` at `at` (allowances end by it).
pub fn judge(
    policy: &ImagePolicy,
    container: &str,
    image: &str,
    scan: &ScanReport,
    signatures: &[Signature],
    at: DateTime<Utc>,
) -> ImageEvidence {
    let mut evidence = ImageEvidence {
        container: container.to_owned(),
        image: image.to_owned(),
        scan: String::new(),
        scanned_at: None,
        by_severity: BTreeMap::new(),
        failing: Vec::new(),
        allowed: Vec::new(),
        signatures: signatures.to_vec(),
        problems: Vec::new(),
        waiting: None,
        note: None,
    };
    let unscanned = |evidence: &mut ImageEvidence, why: String| match policy.unscanned {
        Unscanned::Fail => evidence.problems.push(format!("{why}; the policy requires a scan")),
        Unscanned::Allow => evidence.note = Some(format!("{why}: allowed by policy")),
    };
    match scan {
        ScanReport::NotFound => {
            evidence.scan = "NOT_FOUND".into();
            unscanned(&mut evidence, "not scanned (ECR has no scan of this digest)".into());
        }
        ScanReport::InProgress { status } => {
            evidence.scan = status.clone();
            evidence.waiting = Some(format!("scan {status}"));
        }
        ScanReport::Unusable { status, description } => {
            evidence.scan = status.clone();
            unscanned(&mut evidence, format!("scan {status} ({})", crate::names::Excerpt(description)));
        }
        ScanReport::Refused { detail } => {
            evidence.scan = "REFUSED".into();
            evidence.problems.push(format!("ECR refused to describe its scan: {}", crate::names::Excerpt(detail)));
        }
        ScanReport::Complete { completed_at, findings } => {
            evidence.scan = "COMPLETE".into();
            evidence.scanned_at = *completed_at;
            for finding in findings {
                *evidence.by_severity.entry(finding.severity).or_default() += 1;
                let counted = !policy.only_fixable || !matches!(finding.fix, Fix::No);
                if !counted || finding.severity <= policy.max_severity {
                    continue;
                }
                let allowance = policy.allow.iter().find(|a| a.id.eq_ignore_ascii_case(&finding.id));
                match allowance {
                    Some(allowance) if allowance.until > at => {
                        evidence.allowed.push((finding.clone(), allowance.until));
                    }
                    Some(allowance) => {
                        evidence.problems.push(format!(
                            "{} {} ({}): its allowance expired at {}",
                            finding.id,
                            finding.severity,
                            finding.fix,
                            allowance.until.to_rfc3339()
                        ));
                        evidence.failing.push(finding.clone());
                    }
                    None => {
                        evidence.problems.push(format!(
                            "{} {} ({}) is above the allowed {}",
                            finding.id, finding.severity, finding.fix, policy.max_severity
                        ));
                        evidence.failing.push(finding.clone());
                    }
                }
            }
        }
    }
    for profile in &policy.signing_profiles {
        match signatures.iter().find(|s| &s.profile == profile) {
            Some(s) if s.status == "COMPLETE" => {}
            Some(s) if s.status == "IN_PROGRESS" => {
                evidence.waiting.get_or_insert_with(|| format!("signing by {profile} IN_PROGRESS"));
            }
            Some(s) => evidence.problems.push(format!(
                "signing by {profile} {}{}",
                s.status,
                s.failure.as_deref().map(|f| format!(": {}", crate::names::Excerpt(f))).unwrap_or_default()
            )),
            None => evidence.problems.push(format!("not signed by {profile}, which the policy requires")),
        }
    }
    evidence
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ImagePolicy {
        ImagePolicy {
            max_severity: Severity::High,
            only_fixable: false,
            allow: Vec::new(),
            unscanned: Unscanned::Fail,
            signing_profiles: Vec::new(),
            wait_seconds: 60,
        }
    }

    fn at() -> DateTime<Utc> {
        "2026-12-01T00:00:00Z".parse().unwrap()
    }

    fn critical(fix: Fix) -> ScanReport {
        let finding = Finding { id: "CVE-2026-1".into(), severity: Severity::Critical, fix };
        ScanReport::Complete { completed_at: None, findings: vec![finding] }
    }

    #[test]
    fn a_critical_finding_above_a_high_ceiling_fails_and_is_named() {
        let seen = judge(&policy(), "web", "img@sha256:1", &critical(Fix::Yes), &[], at());
        assert!(!seen.passed());
        assert_eq!(seen.failing.len(), 1);
        assert!(seen.problems[0].starts_with("CVE-2026-1 CRITICAL (fix available) is above the allowed HIGH"));
        assert_eq!(seen.by_severity[&Severity::Critical], 1);
    }

    #[test]
    fn a_finding_allowed_until_a_later_date_passes_and_an_expired_one_fails_saying_so() {
        let mut p = policy();
        p.allow.push(Allowance {
            id: "cve-2026-1".into(),
            until: at() + chrono::Duration::days(1),
            why: String::new(),
        });
        let seen = judge(&p, "web", "img", &critical(Fix::Yes), &[], at());
        assert!(seen.passed(), "{seen:?}");
        assert_eq!(seen.allowed.len(), 1);
        let later = judge(&p, "web", "img", &critical(Fix::Yes), &[], at() + chrono::Duration::days(2));
        assert!(later.problems[0].contains("its allowance expired at"), "{later:?}");
    }

    #[test]
    fn only_fixable_ignores_a_finding_without_a_fix_but_counts_basic_findings() {
        let mut p = policy();
        p.only_fixable = true;
        assert!(judge(&p, "web", "img", &critical(Fix::No), &[], at()).passed());
        assert!(!judge(&p, "web", "img", &critical(Fix::Unknown), &[], at()).passed());
    }

    #[test]
    fn an_unscanned_image_fails_or_is_allowed_and_says_so() {
        let mut p = policy();
        assert!(!judge(&p, "web", "img", &ScanReport::NotFound, &[], at()).passed());
        p.unscanned = Unscanned::Allow;
        let seen = judge(&p, "web", "img", &ScanReport::NotFound, &[], at());
        assert!(seen.passed());
        assert!(seen.note.unwrap().contains("allowed by policy"));
    }

    #[test]
    fn a_scan_in_progress_waits_rather_than_passing() {
        let seen = judge(&policy(), "web", "img", &ScanReport::InProgress { status: "IN_PROGRESS".into() }, &[], at());
        assert!(!seen.passed());
        assert!(seen.problems.is_empty());
        assert_eq!(seen.waiting.as_deref(), Some("scan IN_PROGRESS"));
    }

    #[test]
    fn a_required_signing_profile_that_did_not_sign_fails() {
        let mut p = policy();
        p.signing_profiles.push("arn:aws:signer:eu-west-1:111111111111:/signing-profiles/ci".into());
        let clean = ScanReport::Complete { completed_at: None, findings: Vec::new() };
        let unsigned = judge(&p, "web", "img", &clean, &[], at());
        assert!(unsigned.problems[0].starts_with("not signed by arn:aws:signer"), "{unsigned:?}");
        let signed = Signature { profile: p.signing_profiles[0].clone(), status: "COMPLETE".into(), failure: None };
        assert!(judge(&p, "web", "img", &clean, &[signed], at()).passed());
    }

    #[test]
    fn an_unranked_severity_counts_as_critical() {
        assert_eq!(Severity::from_ecr("UNTRIAGED"), Severity::Critical);
        assert_eq!(Severity::from_ecr("UNDEFINED"), Severity::Critical);
        assert_eq!(Severity::from_ecr("medium"), Severity::Medium);
    }
}
