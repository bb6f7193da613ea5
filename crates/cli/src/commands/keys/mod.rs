//! `gpu-dev keys …`: one file per subcommand.

use clap::Subcommand;

use crate::context::Ctx;
use crate::error::CliResult;

pub mod list;
pub mod revoke;
pub mod rotate;

/// `keys` subcommands.
#[expect(
    missing_docs,
    reason = "a command's help is the doc comment of its Args, in the command's own file"
)]
#[derive(Debug, Subcommand)]
pub enum Command {
    List(list::Args),
    Rotate(rotate::Args),
    Revoke(revoke::Args),
}

/// Runs a `keys` subcommand.
pub async fn run(ctx: &Ctx, cmd: Command) -> CliResult {
    match cmd {
        Command::List(args) => list::run(ctx, args).await,
        Command::Rotate(args) => rotate::run(ctx, args).await,
        Command::Revoke(args) => revoke::run(ctx, args).await,
    }
}
