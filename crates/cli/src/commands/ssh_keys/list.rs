//! `gpu-dev ssh-keys list`

use crate::context::Ctx;
use crate::error::CliResult;
use crate::output::{self, Table};
use crate::session::Session;

/// List the SSH public keys installed in your dev boxes.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `ssh-keys list`.
pub async fn run(ctx: &Ctx, _args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    let list = session.call(async |c| c.ssh_keys().await).await?;
    if ctx.json() {
        return output::json(&list);
    }
    if list.keys.is_empty() {
        output::print("No SSH keys. Add yours with `gpu-dev ssh-keys add`.");
        return Ok(());
    }
    let mut table = Table::new(&["TYPE", "FINGERPRINT", "COMMENT", "ADDED"]);
    for k in &list.keys {
        table.row(vec![
            k.key_type.clone(),
            k.fingerprint.clone(),
            output::or_dash(k.comment.as_deref()),
            output::time(k.created_at),
        ]);
    }
    output::print(&table.render(&ctx.term));
    Ok(())
}
