//! `gpu-dev avail`

use crate::context::Ctx;
use crate::error::CliResult;
use crate::output::{self, Table};
use crate::session::Session;

/// Show GPU availability per type: free, total, in use, queued and the estimated wait.
///
/// The wait is a rough estimate for a new 1-GPU reservation, from the queue and when running
/// reservations end.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `avail`.
pub async fn run(ctx: &Ctx, _args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    let avail = session.call(async |c| c.availability().await).await?;
    if ctx.json() {
        return output::json(&avail);
    }
    let mut table = Table::new(&[
        "GPU TYPE",
        "FREE",
        "TOTAL",
        "IN USE",
        "QUEUED",
        "PER NODE",
        "NODES",
        "EST. WAIT",
    ]);
    for a in avail.availability.values() {
        let wait = match a.estimated_wait_minutes {
            Some(0) => "none".to_owned(),
            Some(m) => output::duration(m.unsigned_abs() * 60),
            None => "-".to_owned(),
        };
        table.row(vec![
            a.gpu_type.clone(),
            a.available.to_string(),
            a.total.to_string(),
            a.in_use.to_string(),
            a.queued.to_string(),
            a.max_per_node.to_string(),
            a.running_instances.to_string(),
            wait,
        ]);
    }
    output::print(&table.render(&ctx.term));
    Ok(())
}
