//! `gpu-dev keys list`

use crate::context::Ctx;
use crate::error::CliResult;
use crate::output::{self, Table};
use crate::session::Session;

/// List your API keys (never the keys themselves). `*` marks the one this machine uses.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `keys list`.
pub async fn run(ctx: &Ctx, _args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    let list = session.call(async |c| c.list_keys().await).await?;
    if ctx.json() {
        return output::json(&list);
    }
    let mut table = Table::new(&[
        "",
        "ID",
        "PREFIX",
        "STATUS",
        "METHOD",
        "CREATED",
        "EXPIRES",
        "LAST USED",
    ]);
    for k in &list.keys {
        let mark = if k.current { "*" } else { "" }.to_owned();
        table.painted_row(vec![
            (mark.clone(), mark),
            (k.key_id.to_string(), k.key_id.to_string()),
            (k.key_prefix.clone(), k.key_prefix.clone()),
            (k.status.clone(), ctx.term.status(&k.status)),
            (k.auth_method.clone(), k.auth_method.clone()),
            (output::time(k.created_at), output::time(k.created_at)),
            (output::time(k.expires_at), output::time(k.expires_at)),
            {
                let t = k.last_used_at.map_or_else(|| "-".into(), output::time);
                (t.clone(), t)
            },
        ]);
    }
    output::print(&table.render(&ctx.term));
    Ok(())
}
