//! What `convoy --version` names: the package version and the git commit it was built from.
//! Shared with `build.rs` (`#[path]`), which asks git at build time and passes the text to the
//! compiler as `CONVOY_VERSION`.

/// The version line after the program's name. `commit` wins when set: `CONVOY_BUILD_COMMIT`,
/// for a build from a source tarball whose commit the packager knows. Otherwise `git`, what
/// `git rev-parse --short=12 HEAD` printed, if git could answer.
pub fn describe(version: &str, commit: Option<&str>, git: Option<&str>) -> String {
    let named = |c: &str| Some(c.trim()).filter(|c| !c.is_empty()).map(str::to_owned);
    match commit.and_then(named).or_else(|| git.and_then(named)) {
        Some(commit) => format!("{version} (commit {commit})"),
        None => format!("{version} (commit unknown: built outside a git checkout, CONVOY_BUILD_COMMIT unset)"),
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn the_version_names_the_commit_git_reported() {
        assert_eq!(describe("0.1.0", None, Some("1b2421b4c3d2\n")), "0.1.0 (commit 1b2421b4c3d2)");
    }

    #[test]
    fn a_commit_given_by_the_packager_wins_over_git() {
        assert_eq!(describe("0.1.0", Some("abc123"), Some("1b2421b4c3d2")), "0.1.0 (commit abc123)");
    }

    #[test]
    fn without_git_or_a_given_commit_the_version_says_the_commit_is_unknown() {
        let text = describe("0.1.0", Some(" "), None);
        assert!(text.starts_with("0.1.0 (commit unknown: built outside a git checkout"), "{text}");
    }
}
