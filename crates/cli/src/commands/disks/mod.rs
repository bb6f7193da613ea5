//! `gpu-dev disks …`: one file per subcommand.

use clap::Subcommand;

use crate::context::Ctx;
use crate::error::CliResult;

pub mod create;
pub mod delete;
pub mod list;
pub mod rename;
pub mod show;

/// `disks` subcommands.
#[expect(
    missing_docs,
    reason = "a command's help is the doc comment of its Args, in the command's own file"
)]
#[derive(Debug, Subcommand)]
pub enum Command {
    List(list::Args),
    Show(show::Args),
    Create(create::Args),
    Delete(delete::Args),
    Rename(rename::Args),
}

/// Runs a `disks` subcommand.
pub async fn run(ctx: &Ctx, cmd: Command) -> CliResult {
    match cmd {
        Command::List(args) => list::run(ctx, args).await,
        Command::Show(args) => show::run(ctx, args).await,
        Command::Create(args) => create::run(ctx, args).await,
        Command::Delete(args) => delete::run(ctx, args).await,
        Command::Rename(args) => rename::run(ctx, args).await,
    }
}
