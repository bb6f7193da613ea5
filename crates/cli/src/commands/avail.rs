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
///
/// With --at it also says what you could book from that time (for --hours, default 1): the most
/// GPUs on one node (BOOK 1 NODE) and the most whole nodes together (BOOK NODES), as a booking
/// submitted now would be promised (`gpu-dev reserve --start-at TIME`).
///
/// Example: gpu-dev avail --at "2026-12-08 09:00" --hours 3
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What could be booked from this time: local time as "2026-12-08 09:00", or RFC 3339.
    #[arg(long, value_name = "TIME", value_parser = crate::when::parse_time)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// How long the booking would last, in hours (with --at; default 1).
    #[arg(long, short = 'H', value_name = "H", requires = "at")]
    pub hours: Option<f64>,
}

/// Runs `avail`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    let avail = match args.at {
        Some(at) => {
            session
                .call(async |c| c.availability_at(at, args.hours).await)
                .await?
        }
        None => session.call(async |c| c.availability().await).await?,
    };
    if ctx.json() {
        return output::json(&avail);
    }
    if let Some(at) = avail.at {
        return print_bookable(ctx, &avail, at, args.hours.unwrap_or(1.0));
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

/// What could be booked of each type from `at`.
fn print_bookable(
    ctx: &Ctx,
    avail: &gpudev_client::AvailabilityResponse,
    at: chrono::DateTime<chrono::Utc>,
    hours: f64,
) -> CliResult {
    output::print(&format!(
        "What you could book from {} for {} h:",
        output::time_rel(at, chrono::Utc::now()),
        output::hours(hours)
    ));
    let mut table = Table::new(&["GPU TYPE", "BOOK 1 NODE", "BOOK NODES", "UNIT", "PER NODE"]);
    for a in avail.availability.values() {
        let Some(b) = a.bookable else { continue };
        table.row(vec![
            a.gpu_type.clone(),
            b.max_on_one_node.to_string(),
            if a.multinode {
                b.whole_nodes.to_string()
            } else {
                "-".to_owned()
            },
            unit(a.unit).to_owned(),
            a.max_per_node.to_string(),
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
