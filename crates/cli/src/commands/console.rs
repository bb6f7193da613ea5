//! `gpu-dev console`

use crate::context::Ctx;
use crate::error::CliResult;
use crate::output;
use crate::session::Session;

/// Open the web console in your browser.
///
/// Asks the server for a one-time sign-in link (it works once, within two minutes) and prints
/// it; open it in a browser on this computer.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `console`.
pub async fn run(ctx: &Ctx, _args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    let link = session.call(async |c| c.console_link().await).await?;
    let url = session
        .call(async |c| Ok(c.console_url(&link.path)))
        .await?;
    if ctx.json() {
        return output::json(&serde_json::json!({ "url": url, "expires_at": link.expires_at }));
    }
    output::print(&format!(
        "Open this link in your browser to sign in to the gpudev console (it works once, until {}):\n{url}",
        output::time(link.expires_at)
    ));
    Ok(())
}
