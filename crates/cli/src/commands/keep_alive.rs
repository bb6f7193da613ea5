//! `gpu-dev keep-alive`

use crate::context::Ctx;
use crate::error::CliResult;
use crate::output;
use crate::session::Session;

/// Keep an idle reservation from being released.
///
/// A dev box with no SSH or Jupyter session whose GPUs stay unused is released after the
/// platform's idle limit (60 minutes unless set otherwise), with a warning first. This counts as
/// activity: the countdown starts again from now. With --idle-minutes, the reservation's idle
/// limit changes too (at least the platform's, at most its cap; admins may ask for any, 0 for
/// never).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reservation id or unique prefix (8+ characters).
    pub id: String,
    /// A new idle limit for this reservation, in minutes.
    #[arg(long, value_name = "MINUTES")]
    pub idle_minutes: Option<u32>,
}

/// Runs `keep-alive`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    let answer = session
        .call(async |c| c.keep_alive(&args.id, args.idle_minutes).await)
        .await?;
    if ctx.json() {
        return output::json(&answer);
    }
    output::print(&answer.message);
    Ok(())
}
