//! `gpu-dev cancel`

use crate::context::Ctx;
use crate::error::{CliError, CliResult};
use crate::output;
use crate::session::Session;

/// Cancel a reservation.
///
/// The dev box is stopped and its GPUs released; a persistent disk keeps its data. On a terminal
/// you are asked to confirm (--yes skips that); elsewhere (scripts) it is cancelled at once.
/// Cancelling a cancelled reservation does nothing.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reservation id or unique prefix (8+ characters).
    pub id: String,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Runs `cancel`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    if ctx.term.stdin_tty && !args.yes {
        let job = session.call(async |c| c.get_job(&args.id).await).await?;
        if job.status == "cancelled" {
            output::print(&format!(
                "Reservation {} is already cancelled.",
                job.short_id()
            ));
            return Ok(());
        }
        let question = format!("Cancel reservation {}?", super::describe(&job, &ctx.term));
        if !super::confirm(&question)? {
            return Err(CliError::Failed("not cancelled".into()));
        }
    }
    let answer = session.call(async |c| c.cancel_job(&args.id).await).await?;
    if ctx.json() {
        return output::json(&answer);
    }
    output::print(&answer.message);
    Ok(())
}
