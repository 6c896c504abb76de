//! The exit statuses, the same for every subcommand, so CI can branch on them.

use convoy::release::State;

/// The release failed, rolled back or was superseded; or the command was refused (a bad or
/// already submitted manifest, an approval without a passed verification).
pub const REFUSED: u8 = 1;
/// The command could not run: bad usage, settings, or AWS unreachable.
pub const ERROR: u8 = 2;
/// `convoy wait` ran out of time before the release got where it was asked to.
pub const TIMEOUT: u8 = 3;
/// No record of that release.
pub const NO_SUCH_RELEASE: u8 = 4;

pub const HELP: &str = "\
Exit status (every subcommand):
  0  done; for status and wait: the release succeeded (wait --until awaiting-approval: it awaits
     approval or went past it), or status of a release still in progress
  1  the release failed, rolled back or was superseded; or the command was refused
     (bad manifest, release id already submitted, approval refused); init: something is missing
  2  the command could not run (usage, settings, AWS unreachable)
  3  wait timed out
  4  no such release (status, logs)";

/// Whether a release ended without production running it.
pub fn ended_badly(state: &State) -> bool {
    matches!(state, State::Failed { .. } | State::RolledBack { .. } | State::Superseded { .. })
}

/// `convoy status`'s exit status for a release in `state`.
pub fn of_state(state: &State) -> u8 {
    if ended_badly(state) { REFUSED } else { 0 }
}
