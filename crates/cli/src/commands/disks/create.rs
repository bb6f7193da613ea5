//! `gpu-dev disks create`

use crate::context::Ctx;
use crate::error::CliResult;
use crate::output;
use crate::session::Session;

/// Create a persistent disk to use as the home directory of your dev boxes
/// (`reserve --disk NAME`).
///
/// The volume is created in the background; `gpu-dev disks list` shows when it is ready.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name: 1–63 letters, digits, `_` and `-`.
    pub name: String,
    /// Size in GB, 10–10000 (default: the server's).
    #[arg(long, value_parser = clap::value_parser!(i64).range(10..=10_000), value_name = "GB")]
    pub size: Option<i64>,
}

/// Runs `disks create`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    let op = session
        .call(async |c| c.create_disk(&args.name, args.size).await)
        .await?;
    if ctx.json() {
        return output::json(&op);
    }
    output::print(&format!(
        "Disk {} requested (operation {}). {}",
        op.disk_name, op.operation_id, op.message
    ));
    Ok(())
}
