//! `convoy completions <shell>` and `convoy man`: generated from the CLI's own clap definition at
//! run time, so they always match the binary a person has (no build step to keep in step, nothing
//! to install beside the binary).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::Cli;

#[derive(clap::Args)]
#[command(after_help = "Examples:
  convoy completions bash > ~/.local/share/bash-completion/completions/convoy
  convoy completions zsh > \"${fpath[1]}/_convoy\"
  convoy completions fish > ~/.config/fish/completions/convoy.fish")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:
  convoy man | man -l -
  convoy man --dir /usr/local/share/man/man1")]
pub struct ManArgs {
    /// Write convoy.1 and one page per subcommand (convoy-init.1, ...) into this directory
    /// instead of printing convoy.1.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// The completion script for `shell`.
pub fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "convoy", &mut out);
    out
}

/// The `convoy(1)` page (roff).
pub fn man_page() -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out).map_err(|e| format!("rendering the man page: {e}"))?;
    Ok(out)
}

pub fn completions(args: CompletionsArgs) -> Result<ExitCode, String> {
    write_stdout(&completion_script(args.shell))
}

pub fn man(args: ManArgs) -> Result<ExitCode, String> {
    match args.dir {
        None => write_stdout(&man_page()?),
        Some(dir) => {
            clap_mangen::generate_to(Cli::command(), &dir)
                .map_err(|e| format!("writing the man pages into {}: {e}", dir.display()))?;
            outln!("wrote convoy.1 and a page per subcommand into {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write_stdout(bytes: &[u8]) -> Result<ExitCode, String> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).and_then(|()| stdout.flush()).map_err(|e| format!("writing to stdout: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap_complete::Shell;

    fn subcommands() -> Vec<String> {
        let names: Vec<String> = Cli::command().get_subcommands().map(|c| c.get_name().to_owned()).collect();
        assert!(names.len() >= 12, "the CLI's subcommands: {names:?}");
        names
    }

    #[test]
    fn the_completion_script_of_each_shell_offers_every_subcommand() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(completion_script(shell)).expect("a script is text");
            for name in subcommands() {
                assert!(script.contains(&name), "{shell}: no {name} in\n{script}");
            }
        }
    }

    #[test]
    fn the_man_page_names_every_subcommand_with_its_summary() {
        let page = String::from_utf8(man_page().expect("renders")).expect("roff is text");
        assert!(page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH convoy 1"), "{page}");
        for command in Cli::command().get_subcommands() {
            let name = command.get_name();
            assert!(page.contains(&format!("convoy\\-{name}(1)")), "no {name} in\n{page}");
        }
    }

    #[test]
    fn every_subcommands_help_shows_an_example_of_itself() {
        let mut cli = Cli::command();
        cli.build();
        // `help` is clap's own, and prints only this list.
        for command in cli.get_subcommands_mut().filter(|c| c.get_name() != "help") {
            let name = command.get_name().to_owned();
            let help = command.render_long_help().to_string();
            let examples = help.split_once("Examples:\n").map(|(_, rest)| rest);
            let Some(examples) = examples else { panic!("convoy {name} --help has no examples:\n{help}") };
            assert!(examples.starts_with(&format!("  convoy {name}")), "convoy {name}'s first example:\n{help}");
        }
    }
}
