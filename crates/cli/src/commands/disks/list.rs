//! `gpu-dev disks list`

use crate::context::Ctx;
use crate::error::CliResult;
use crate::output::{self, Table};
use crate::session::Session;

/// List your persistent disks.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `disks list`.
pub async fn run(ctx: &Ctx, _args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    let list = session.call(async |c| c.list_disks().await).await?;
    if ctx.json() {
        return output::json(&list);
    }
    if list.disks.is_empty() {
        output::print("No disks. Create one with `gpu-dev disks create NAME`.");
        return Ok(());
    }
    let mut table = Table::new(&[
        "NAME",
        "SIZE",
        "STATUS",
        "IN USE BY",
        "LAST USED",
        "SNAPSHOTS",
        "CREATED",
    ]);
    for d in &list.disks {
        table.row(vec![
            d.disk_name.clone(),
            format!("{} GB", d.size_gb),
            d.status.clone(),
            d.reservation_id
                .map_or_else(|| "-".into(), |r| r.simple().to_string()[..8].to_owned()),
            d.last_used.map_or_else(|| "-".into(), output::time),
            d.snapshot_count.to_string(),
            output::time(d.created_at),
        ]);
    }
    output::print(&table.render(&ctx.term));
    Ok(())
}
