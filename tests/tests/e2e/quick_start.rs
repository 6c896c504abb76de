//! The README's quick start, as written, against the sandbox: every `convoy` command of its block
//! runs with the real CLI binary at its step of one release (placeholders filled with the
//! sandbox's names), and the release ends Succeeded. A command changed into one that fails, or a
//! `convoy` command the sandbox has no step for, fails this test. Needs the binaries built
//! (`cargo build --workspace --bins`, which scripts/test runs first).

use convoy::release::State;
use convoy_tests::sandbox::{self, Options, Typed};

/// The marker the README puts before the quick start's block.
const MARKER: &str = "<!-- quick-start";

/// The commands of the README's quick start, one per line (comments and blank lines left out).
fn quick_start() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let after = readme.split_once(MARKER).expect("README.md marks its quick start").1;
    let block = after.split_once("```sh\n").expect("a sh block after the marker").1;
    let block = block.split_once("```").expect("the block's end").0;
    block.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
}

/// The quick start's commands by step, as the sandbox runs them; panics on a command it cannot.
fn typed(commands: &[String], dir: std::path::PathBuf) -> Typed {
    let mut typed = Typed { dir, ..Typed::default() };
    for command in commands {
        // Steps that need an AWS account. `scripts/package` is `sam build` for arm64 Lambda (its own
        // checks of each bootstrap, minutes of cross-compiling); the sandbox runs the same crates
        // built for this machine. `sam deploy` creates the stack in CloudFormation; the sandbox
        // gives each function the environment the stack would (`world::function_env`), with the
        // settings version `convoy settings publish` printed as its SettingsVersion parameter.
        if command == "scripts/package" || command.starts_with("sam deploy") {
            continue;
        }
        let words: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
        assert_eq!(words[0], "convoy", "a quick-start command the sandbox cannot run: {command}");
        // Run as words, not by a shell: quoting, expansion, pipes and redirections would not be.
        let shell = command.contains(['"', '\'', '$', '|', ';', '&', '`']) || words.iter().any(|w| w.starts_with('>'));
        assert!(!shell, "write convoy commands without shell syntax: {command}");
        let slot = match words.get(1).map(String::as_str) {
            Some("init") => &mut typed.init,
            Some("check") => &mut typed.check,
            Some("settings") if words.get(2).is_some_and(|w| w == "publish") => &mut typed.publish,
            Some("submit") => &mut typed.submit,
            Some("wait") => &mut typed.wait,
            Some("approve") => &mut typed.approve,
            Some("status") => &mut typed.status,
            _ => panic!("the sandbox has no step for {command}: add one to sandbox::Typed"),
        };
        assert!(slot.is_empty(), "the quick start runs {} twice", words[1]);
        *slot = words[1..].to_vec();
    }
    for (name, args) in [
        ("init", &typed.init),
        ("check", &typed.check),
        ("settings publish", &typed.publish),
        ("submit", &typed.submit),
        ("wait", &typed.wait),
        ("approve", &typed.approve),
        ("status", &typed.status),
    ] {
        assert!(!args.is_empty(), "the quick start has no convoy {name}: {commands:?}");
    }
    typed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_quick_start_ships_a_release_through_the_sandbox() {
    let commands = quick_start();
    let dir = std::env::temp_dir().join(format!("convoy-quick-start-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a folder to run in");
    let typed = typed(&commands, dir.clone());
    let id = format!("quick-{}", std::process::id());
    let finished = sandbox::run(Options { typed: Some(typed), id, ..Options::default() }).await;
    std::fs::remove_dir_all(&dir).ok();
    let finished = finished.unwrap_or_else(|why| panic!("the quick start failed: {why}"));
    assert_eq!(finished.release.state, State::Succeeded);
    let (_, said) = finished.init.expect("convoy init ran");
    assert!(said.contains("has what Convoy needs"), "{said}");
    // The functions read the version publish printed, and the record keeps it.
    let version = finished.settings_version.expect("the settings were published");
    assert!(finished.status.contains(&format!("version {version}")), "{}", finished.status);
    // `convoy status` as typed, once it ended: the state and who CloudTrail says approved.
    assert!(finished.status.contains("state     Succeeded"), "{}", finished.status);
    let approval = finished.release.approval.expect("an approval");
    assert!(approval.by.contains(":user/sandbox-operator-"), "{}", approval.by);
    assert!(finished.status.contains(&format!("principal   {}", approval.by)), "{}", finished.status);
}

#[test]
fn the_quick_start_block_holds_the_five_steps_commands() {
    let commands = quick_start();
    let convoy: Vec<&str> = commands.iter().filter(|c| c.starts_with("convoy ")).map(String::as_str).collect();
    assert!(convoy.len() >= 5, "{commands:?}");
    typed(&commands, std::env::temp_dir());
}
