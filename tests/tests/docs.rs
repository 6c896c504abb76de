//! The docs hold together: README.md, ARCHITECTURE.md and every `docs/**/*.md`. Each relative
//! link names a file (or directory) that exists, and each `#anchor` one that a heading of its
//! target produces by GitHub's rules. External `http(s)` and `mailto:` links are not fetched
//! (no network here): only their shape is left alone. The README stays within two screens.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The README's limit: two screens of 50 lines (issue 28: "a screen or two").
const README_MAX_LINES: usize = 100;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository").to_path_buf()
}

/// README.md, ARCHITECTURE.md and every Markdown file under docs/, sorted.
fn pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let root = root();
    let mut pages = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    walk(&root.join("docs"), &mut pages);
    pages.sort();
    pages
}

/// The lines of `text` outside fenced code blocks, with inline code spans blanked.
fn prose(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop what is between backticks: `[a](b)` in code is not a link.
        let mut kept = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                kept.push_str(part);
            }
        }
        lines.push(kept);
    }
    lines
}

/// The targets of the inline links `[text](target)` and images `![alt](target)` of `text`.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor for a heading: lowercase; letters, digits, `-` and `_` kept, spaces become
/// `-`, every other character (punctuation, backticks) dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors the headings of `text` produce; a repeated heading gets `-1`, `-2`, … as on GitHub.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if fenced || hashes == 0 || hashes > 6 || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// Every broken link of the page at `page` whose text is `text`, as "page: target: why".
fn broken_links(page: &Path, text: &str) -> Vec<String> {
    let mut broken = Vec::new();
    let name = page.strip_prefix(root()).unwrap_or(page).display().to_string();
    for target in links(text) {
        if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
            continue;
        }
        let (file, anchor) = match target.split_once('#') {
            Some((file, anchor)) => (file, Some(anchor)),
            None => (target.as_str(), None),
        };
        let path = if file.is_empty() { page.to_path_buf() } else { page.parent().expect("a folder").join(file) };
        if !path.exists() {
            broken.push(format!("{name}: {target}: no such file {}", path.display()));
            continue;
        }
        let Some(anchor) = anchor else { continue };
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let target_text = if file.is_empty() {
            text.to_owned()
        } else {
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        };
        if !anchors(&target_text).contains(anchor) {
            broken.push(format!("{name}: {target}: no heading of {file:?} makes #{anchor}"));
        }
    }
    broken
}

#[test]
fn every_relative_link_in_the_docs_names_a_file_and_a_heading_that_exist() {
    let pages = pages();
    assert!(pages.len() > 10, "the docs tree: {pages:?}");
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).expect("a page");
        checked += links(&text).len();
        broken.extend(broken_links(page, &text));
    }
    assert!(broken.is_empty(), "{} broken links:\n{}", broken.len(), broken.join("\n"));
    assert!(checked > 50, "only {checked} links found: is the parser reading the pages?");
}

#[test]
fn a_link_to_a_missing_file_or_a_heading_that_is_not_there_is_reported() {
    let page = root().join("docs/concepts.md");
    let text = "# Here\n\n[ok](#here) [file](../README.md#quick-start) [web](https://example.com/x#y)\n\
                [gone](reference/nothing.md) [anchor](../README.md#no-such-heading) [self](#nowhere)\n\
                `[code](not/a/link.md)`\n";
    let broken = broken_links(&page, text);
    assert_eq!(broken.len(), 3, "{broken:#?}");
    assert!(broken[0].contains("reference/nothing.md: no such file"), "{}", broken[0]);
    assert!(broken[1].contains("#no-such-heading"), "{}", broken[1]);
    assert!(broken[2].contains("#nowhere"), "{}", broken[2]);
}

#[test]
fn anchors_follow_githubs_slugs_punctuation_dropped_and_repeats_numbered() {
    assert_eq!(slug("The operator's settings are a ceiling"), "the-operators-settings-are-a-ceiling");
    assert_eq!(slug("2. The release record and its state machine"), "2-the-release-record-and-its-state-machine");
    assert_eq!(slug("Approving from `convoy dashboard`"), "approving-from-convoy-dashboard");
    assert_eq!(slug("Local AWS: what is real, what stands in"), "local-aws-what-is-real-what-stands-in");
    let found = anchors("# A\n## A\n```\n# B\n```\n#C\n");
    assert_eq!(found, HashSet::from(["a".to_owned(), "a-1".to_owned()]));
}

#[test]
fn the_readme_fits_in_two_screens() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move detail into docs/"
    );
    // What the README must still show first: the two commands.
    let first_block = readme.split("```sh\n").nth(1).expect("a shell block");
    assert!(first_block.starts_with("scripts/sandbox ") && first_block.contains("\nscripts/test "), "{first_block}");
}
