//! `gpu-dev disks rename`

use crate::context::Ctx;
use crate::error::CliResult;
use crate::output;
use crate::session::Session;

/// Rename a persistent disk that is not in use.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Its name now.
    pub old: String,
    /// The new name.
    pub new: String,
}

/// Runs `disks rename`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    let result = session
        .call(async |c| c.rename_disk(&args.old, &args.new).await)
        .await?;
    if ctx.json() {
        return output::json(&result);
    }
    output::print(&result.message);
    Ok(())
}
