//! `gpu-dev disks show`

use crate::context::Ctx;
use crate::error::CliResult;
use crate::output;
use crate::session::Session;

/// Show a disk and the files it held when it was last snapshotted.
///
/// The listing (three levels deep) is taken in the dev box just before a box using the disk
/// expires; no mount is needed to read it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The disk's name.
    pub name: String,
}

/// Runs `disks show`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    let disk = session.call(async |c| c.get_disk(&args.name).await).await?;
    let content = session
        .call(async |c| c.disk_content(&args.name).await)
        .await?;
    if ctx.json() {
        return output::json(&serde_json::json!({ "disk": disk, "content": content }));
    }
    let in_use = disk
        .reservation_id
        .map_or_else(|| "-".into(), |r| r.simple().to_string()[..8].to_owned());
    let mut text = format!(
        "Disk {}: {} GB, {}, in use by {in_use}, {} snapshot(s), created {}\n{}\n",
        disk.disk_name,
        disk.size_gb,
        disk.status,
        disk.snapshot_count,
        output::time(disk.created_at),
        content.message
    );
    if let Some(listing) = &content.content {
        text.push('\n');
        text.push_str(listing.trim_end());
    }
    output::print(&text);
    Ok(())
}
