//! `gpu-dev config …`: one file per subcommand. These work without a server and even with a
//! broken settings file (`set` and `unset` rewrite it).

use clap::Subcommand;

use crate::GlobalArgs;
use crate::error::CliResult;

pub mod get;
pub mod set;
pub mod unset;

/// `config` subcommands.
#[expect(
    missing_docs,
    reason = "a command's help is the doc comment of its Args, in the command's own file"
)]
#[derive(Debug, Subcommand)]
pub enum Command {
    Get(get::Args),
    Set(set::Args),
    Unset(unset::Args),
}

/// Runs a `config` subcommand.
pub fn run(global: &GlobalArgs, cmd: Command) -> CliResult {
    match cmd {
        Command::Get(args) => get::run(global, args),
        Command::Set(args) => set::run(args),
        Command::Unset(args) => unset::run(args),
    }
}
