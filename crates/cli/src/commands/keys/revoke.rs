//! `gpu-dev keys revoke`

use crate::context::Ctx;
use crate::error::CliResult;
use crate::output;
use crate::session::Session;

/// Revoke one of your API keys by id (`gpu-dev keys list` shows them).
///
/// Revoking the key this machine uses logs this machine out: the stored key is deleted, and the
/// next command logs in again with your AWS identity.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key's id.
    pub id: i64,
}

/// Runs `keys revoke`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    let key = session.call(async |c| c.revoke_key(args.id).await).await?;
    let was_ours = key.current || session.key_id() == Some(key.key_id);
    if was_ours {
        session.forget()?;
    }
    if ctx.json() {
        return output::json(&key);
    }
    output::print(&format!(
        "Key {} ({}…) is revoked.",
        key.key_id, key.key_prefix
    ));
    if was_ours {
        output::print("It was this machine's key: you are logged out here.");
    }
    Ok(())
}
