//! ARCHITECTURE.md stays true of the code it cites. The convention it is written in:
//! - a backticked path ending in `.rs` names a file, from the repository's root or, as the page
//!   says, under `shared/src/` (`e2e/` meaning `tests/tests/e2e/`); `{a,b}` stands for both;
//! - after `*Tests:*`, up to the end of the paragraph, each backticked snake_case name is a test
//!   (or test module) in the `.rs` file last cited before it;
//! - every invariant of section 3 (a paragraph opening with a bold sentence) cites its tests.
//!
//! A file renamed or a test removed without the page following fails this test, naming both.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository").to_path_buf()
}

fn architecture() -> String {
    std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md")
}

/// The backticked spans of `text`, in order (code fences skipped).
fn spans(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(inside), Some(_)) = (parts.next(), parts.next().or(Some(""))) {
            out.push(inside.to_owned());
        }
    }
    out
}

/// `a/{b,c}_d.rs` → `a/b_d.rs`, `a/c_d.rs`.
fn expand(path: &str) -> Vec<String> {
    match (path.find('{'), path.find('}')) {
        (Some(open), Some(close)) if open < close => path[open + 1..close]
            .split(',')
            .flat_map(|choice| expand(&format!("{}{}{}", &path[..open], choice.trim(), &path[close + 1..])))
            .collect(),
        _ => vec![path.to_owned()],
    }
}

/// Where a cited `.rs` path is, if anywhere.
fn resolve(path: &str) -> Option<PathBuf> {
    let root = root();
    let candidates = [
        root.join(path),
        root.join("shared/src").join(path),
        root.join("tests/tests").join(path),
        root.join("shared/src/adapters").join(path),
        // The code map names files by their place in a listed tree (`init.rs` under `cli/src/`,
        // `ecs.rs` under `adapters/aws/`): a name found in none of these trees is still missing.
        root.join("shared/src/adapters/aws").join(path),
        root.join("shared/src/service").join(path),
        root.join("cli/src").join(path),
        root.join("cli/src/dashboard").join(path),
        root.join("tests/src").join(path),
    ];
    candidates.into_iter().find(|candidate| candidate.is_file())
}

fn is_rust_path(span: &str) -> bool {
    span.ends_with(".rs") && !span.contains(char::is_whitespace) && !span.contains(['<', '*'])
}

fn is_test_name(span: &str) -> bool {
    span.len() > 3
        && span.contains('_')
        && span.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && span.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Each `*Tests:*` block's citations: (files cited, the test names after each).
fn test_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    for paragraph in text.split("\n\n") {
        // A bullet list is one paragraph; each bullet may hold a block of its own.
        let mut rest = paragraph;
        while let Some(at) = rest.find("*Tests:*") {
            let after = &rest[at + "*Tests:*".len()..];
            let end = after.find("*Tests:*").unwrap_or(after.len());
            blocks.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    blocks
}

fn defines(file: &Path, name: &str) -> bool {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.contains(&format!("fn {name}(")) || text.contains(&format!("mod {name} "))
}

/// What the page cites that is not there: `file` or `file name`.
fn missing_citations(text: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for span in spans(text).into_iter().filter(|s| is_rust_path(s)) {
        for path in expand(&span) {
            if resolve(&path).is_none() {
                missing.push(format!("file {path}"));
            }
        }
    }
    for block in test_blocks(text) {
        let mut files: Vec<PathBuf> = Vec::new();
        for span in spans(&block) {
            if is_rust_path(&span) {
                files = expand(&span).iter().filter_map(|p| resolve(p)).collect();
            } else if is_test_name(&span) {
                if files.is_empty() {
                    missing.push(format!("test {span}: no file cited before it"));
                } else if !files.iter().any(|file| defines(file, &span)) {
                    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                    missing.push(format!("test {span} in {}", names.join(" or ")));
                }
            }
        }
    }
    missing
}

#[test]
fn every_file_and_test_architecture_md_cites_exists() {
    let missing = missing_citations(&architecture());
    assert!(missing.is_empty(), "ARCHITECTURE.md cites what is not there:\n{}", missing.join("\n"));
}

#[test]
fn every_invariant_names_the_tests_that_would_fail() {
    let text = architecture();
    let start = text.find("## 3. Invariants").expect("section 3");
    let end = text[start..].find("\n## 4.").map_or(text.len(), |e| start + e);
    let mut uncited = Vec::new();
    for invariant in text[start..end].split("\n\n").filter(|p| {
        let p = p.trim_start();
        p.starts_with("**") || p.chars().next().is_some_and(|c| c.is_ascii_digit()) && p.contains(". **")
    }) {
        let cited = test_blocks(invariant).iter().any(|block| spans(block).iter().any(|s| is_test_name(s)));
        if !cited {
            uncited.push(invariant.lines().next().unwrap_or_default().to_owned());
        }
    }
    assert!(uncited.is_empty(), "invariants without a test cited:\n{}", uncited.join("\n"));
}

#[test]
fn a_removed_test_or_file_is_caught() {
    let page = "Paths are under `shared/src/`.\n\n**An invariant.** *Tests:* `release/lock.rs` \
                `a_free_lock_is_acquired`, `a_test_that_was_never_written`; `e2e/gone.rs` `anything_at_all`.\n";
    let missing = missing_citations(page);
    assert!(missing.iter().any(|m| m.starts_with("test a_test_that_was_never_written in")), "{missing:?}");
    assert!(missing.iter().any(|m| m == "file e2e/gone.rs"), "{missing:?}");
    assert!(!missing.iter().any(|m| m.contains("a_free_lock_is_acquired")), "{missing:?}");
}
