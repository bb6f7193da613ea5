//! `gpu-dev status`

use crate::context::Ctx;
use crate::error::CliResult;
use crate::output::{self, Table};
use crate::session::Session;

/// Show the cluster at a glance: GPUs in total, free, in use and queued, CPU-only reservation
/// slots apart from them, and reservations by status.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `status`.
pub async fn run(ctx: &Ctx, _args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    let s = session.call(async |c| c.cluster_status().await).await?;
    if ctx.json() {
        return output::json(&s);
    }
    output::print(&format!(
        "GPUs:          {} total, {} free, {} in use, {} queued",
        s.total_gpus, s.available_gpus, s.in_use_gpus, s.queued_gpus
    ));
    output::print(&format!(
        "CPU slots:     {} total, {} free, {} in use, {} queued",
        s.total_cpu_slots, s.available_cpu_slots, s.in_use_cpu_slots, s.queued_cpu_slots
    ));
    output::print(&format!(
        "Figures as of: {}",
        super::avail::age(s.figures_age_seconds)
    ));
    output::print(&format!(
        "Reservations:  {} active, {} preparing, {} queued",
        s.active_reservations, s.preparing_reservations, s.queued_reservations
    ));
    let offered: Vec<_> = s
        .by_gpu_type
        .values()
        .filter(|a| a.total > 0 || a.queued > 0 || a.in_use > 0)
        .collect();
    if !offered.is_empty() {
        output::print("");
        let mut table = Table::new(&["GPU TYPE", "FREE", "TOTAL", "IN USE", "QUEUED", "UNIT"]);
        for a in offered {
            table.row(vec![
                a.gpu_type.clone(),
                a.available.to_string(),
                a.total.to_string(),
                a.in_use.to_string(),
                a.queued.to_string(),
                super::avail::unit(a.unit).to_owned(),
            ]);
        }
        output::print(&table.render(&ctx.term));
    }
    Ok(())
}
