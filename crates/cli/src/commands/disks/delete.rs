//! `gpu-dev disks delete`

use crate::context::Ctx;
use crate::error::{CliError, CliResult};
use crate::output;
use crate::session::Session;

/// Delete a persistent disk.
///
/// It disappears from your list at once and is removed for good after the server's grace
/// period. A disk in use by a reservation cannot be deleted. On a terminal you are asked to
/// confirm (--yes skips that).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The disk's name.
    pub name: String,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Runs `disks delete`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    if ctx.term.stdin_tty
        && !args.yes
        && !super::super::confirm(&format!("Delete disk {} and everything on it?", args.name))?
    {
        return Err(CliError::Failed("not deleted".into()));
    }
    let mut session = Session::new(ctx)?;
    let op = session
        .call(async |c| c.delete_disk(&args.name).await)
        .await?;
    if ctx.json() {
        return output::json(&op);
    }
    output::print(&format!("Disk {}: {}", op.disk_name, op.message));
    Ok(())
}
