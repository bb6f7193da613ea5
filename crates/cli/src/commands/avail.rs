//! `gpu-dev avail`

use gpudev_client::CapacityUnit;

use crate::context::Ctx;
use crate::error::CliResult;
use crate::output::{self, Table};
use crate::session::Session;

/// Show GPU availability per type: free, total, in use, queued and the estimated wait.
///
/// CPU-only types count reservation slots (UNIT "cpu slots"), not GPUs. AS OF says how old the
/// node figures are (the availability job's last run or the scheduler's last pass). The wait is
/// a rough estimate for a new 1-GPU reservation, from the queue and when running reservations
/// end.
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
        "UNIT",
        "PER NODE",
        "NODES",
        "EST. WAIT",
        "AS OF",
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
            unit(a.unit).to_owned(),
            a.max_per_node.to_string(),
            a.running_instances.to_string(),
            wait,
            age(a.figures_age_seconds),
        ]);
    }
    output::print(&table.render(&ctx.term));
    Ok(())
}

/// What a type's counts count, in words.
pub(crate) fn unit(u: CapacityUnit) -> &'static str {
    match u {
        CapacityUnit::Gpus => "gpus",
        CapacityUnit::CpuSlots => "cpu slots",
    }
}

/// How old the node figures are, in words ("unknown" before anything has seen the nodes).
pub(crate) fn age(seconds: Option<i64>) -> String {
    match seconds {
        Some(s) => format!("{} ago", output::duration(s.unsigned_abs())),
        None => "unknown".to_owned(),
    }
}
