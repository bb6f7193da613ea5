//! `gpu-dev ssh-keys …`: one file per subcommand.

use clap::Subcommand;

use crate::context::Ctx;
use crate::error::CliResult;

pub mod add;
pub mod list;

/// `ssh-keys` subcommands.
#[expect(
    missing_docs,
    reason = "a command's help is the doc comment of its Args, in the command's own file"
)]
#[derive(Debug, Subcommand)]
pub enum Command {
    Add(add::Args),
    List(list::Args),
}

/// Runs an `ssh-keys` subcommand.
pub async fn run(ctx: &Ctx, cmd: Command) -> CliResult {
    match cmd {
        Command::Add(args) => add::run(ctx, args).await,
        Command::List(args) => list::run(ctx, args).await,
    }
}
