//! Names the git commit the CLI is built from, for `convoy --version` (see `src/build_info.rs`).
// A build script's stdout is cargo's directives, read by cargo, never a terminal: the CLI's
// output filter (clippy.toml's disallowed macros) does not apply here.
#![allow(clippy::disallowed_macros)]

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "src/build_info.rs"]
mod build_info;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).current_dir(dir).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-env-changed=CONVOY_BUILD_COMMIT");
    // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it names (a commit), and
    // packed-refs. Only files that exist: cargo reruns a script every build for a missing one.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watched.extend(git(&dir, &["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&dir, &["rev-parse", "--git-path", &name]).map(|p| dir.join(p))
            && path.exists()
        {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let commit = std::env::var("CONVOY_BUILD_COMMIT").ok();
    let head = git(&dir, &["rev-parse", "--short=12", "HEAD"]);
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    let text = build_info::describe(&version, commit.as_deref(), head.as_deref());
    println!("cargo:rustc-env=CONVOY_VERSION={text}");
}
