//! `gpu-dev keys rotate`

use serde_json::json;

use crate::context::Ctx;
use crate::credentials::{Credentials, LoginMethod};
use crate::error::CliResult;
use crate::output;
use crate::session::Session;

/// Replace this machine's API key with a new one with a fresh lifetime.
///
/// The new key is stored in ~/.gpu-dev/credentials and never printed. The old key keeps working
/// until it expires, unless --revoke-current is given.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also revoke the key being replaced.
    #[arg(long)]
    pub revoke_current: bool,
}

/// Runs `keys rotate`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    let new = session
        .call(async |c| c.rotate_key(args.revoke_current).await)
        .await?;
    let method = session
        .credentials()
        .map_or(LoginMethod::AwsIam, |c| c.method);
    let id_token_file = session.credentials().and_then(|c| c.id_token_file.clone());
    session.store(Credentials {
        api_key: new.api_key.clone(),
        expires_at: new.expires_at,
        key_id: Some(new.key_id),
        key_prefix: Some(new.key_prefix.clone()),
        username: Some(new.username.clone()),
        api_url: Some(ctx.api_url.clone()),
        method,
        id_token_file,
    })?;
    if ctx.json() {
        return output::json(&json!({
            "key_id": new.key_id,
            "key_prefix": new.key_prefix,
            "username": new.username,
            "expires_at": new.expires_at,
            "ttl_hours": new.ttl_hours,
            "revoked_key_id": new.revoked_key_id,
        }));
    }
    output::print(&format!(
        "New key {}… (id {}) stored; it expires {}.",
        new.key_prefix,
        new.key_id,
        output::time_rel(new.expires_at, chrono::Utc::now())
    ));
    if let Some(old) = new.revoked_key_id {
        output::print(&format!("Key {old} is revoked."));
    }
    Ok(())
}
