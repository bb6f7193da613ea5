//! `gpu-dev login --oidc`: the OAuth device authorization flow (RFC 8628) against the OpenID
//! Connect issuer, or an ID token read from a file, for `POST /v1/auth/oidc-login`.

use std::path::Path;
use std::time::{Duration, Instant};

use gpudev_client::oidc::{DevicePoll, OidcClient, OidcError};

use crate::context::Ctx;
use crate::error::CliError;
use crate::output;

/// Largest ID token read from a file.
const MAX_TOKEN_FILE: u64 = 16 * 1024;

/// Timeout of each request to the issuer.
const ISSUER_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the ID token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OidcSource {
    /// The device flow: the user approves in a browser.
    Device,
    /// A file holding a current ID token (automation refreshes it).
    TokenFile(std::path::PathBuf),
}

fn issuer_error(e: OidcError) -> CliError {
    match e {
        OidcError::BadUrl(why) => CliError::Usage(why),
        other => CliError::Auth(other.to_string()),
    }
}

/// The issuer and client id: from the settings, else from the API's list of trusted issuers.
async fn resolve(ctx: &Ctx) -> Result<(String, String), CliError> {
    if let (Some(issuer), Some(client_id)) = (&ctx.config.oidc_issuer, &ctx.config.oidc_client_id) {
        return Ok((issuer.clone(), client_id.clone()));
    }
    let listed = ctx.client.oidc_issuers().await?.issuers;
    let chosen = match &ctx.config.oidc_issuer {
        Some(wanted) => listed
            .into_iter()
            .find(|i| i.issuer.trim_end_matches('/') == wanted.trim_end_matches('/')),
        None => listed.into_iter().next(),
    };
    let chosen = chosen.ok_or_else(|| {
        CliError::Usage(match &ctx.config.oidc_issuer {
            Some(wanted) => format!(
                "the API does not trust the OIDC issuer {wanted}; set oidc_client_id too, or unset oidc_issuer"
            ),
            None => "this API offers no OIDC login (GET /v1/auth/oidc lists no issuer); use `gpu-dev login` with AWS".into(),
        })
    })?;
    let client_id = ctx
        .config
        .oidc_client_id
        .clone()
        .unwrap_or(chosen.client_id);
    Ok((chosen.issuer, client_id))
}

/// Runs the device flow and returns the ID token: shows where to go and which code to enter,
/// then polls the token endpoint at the issuer's interval (five seconds more after each
/// `slow_down`) until the user approves or denies, or the code expires.
pub async fn device_flow(ctx: &Ctx) -> Result<String, CliError> {
    let (issuer, client_id) = resolve(ctx).await?;
    let oidc = OidcClient::new(&issuer, &client_id, ISSUER_TIMEOUT).map_err(issuer_error)?;
    let endpoints = oidc.discover().await.map_err(issuer_error)?;
    let authorization = oidc
        .start_device_flow(&endpoints)
        .await
        .map_err(issuer_error)?;
    output::notice(&format!(
        "To log in, open {} and enter the code {}",
        authorization.verification_uri, authorization.user_code
    ));
    if let Some(complete) = &authorization.verification_uri_complete {
        output::notice(&format!("(or open {complete})"));
    }
    output::notice("Waiting for you to approve the login…");
    let deadline = Instant::now() + Duration::from_secs(authorization.expires_in);
    let mut interval = authorization.poll_interval();
    loop {
        tokio::time::sleep(interval).await;
        if Instant::now() >= deadline {
            return Err(expired());
        }
        match oidc
            .poll_device_token(&endpoints, &authorization)
            .await
            .map_err(issuer_error)?
        {
            DevicePoll::Token(token) => return Ok(token),
            DevicePoll::Pending => {}
            DevicePoll::SlowDown => interval += Duration::from_secs(5),
            DevicePoll::Expired => return Err(expired()),
            DevicePoll::Denied => {
                return Err(CliError::Auth(
                    "the login was denied at the identity provider".into(),
                ));
            }
        }
    }
}

fn expired() -> CliError {
    CliError::Auth(
        "the login code expired before it was approved; run `gpu-dev login --oidc` again".into(),
    )
}

/// Reads an ID token from `path` (surrounding whitespace ignored).
pub fn read_token_file(path: &Path) -> Result<String, CliError> {
    let cannot = |e: std::io::Error| {
        CliError::Usage(format!(
            "cannot read the ID token file {}: {e}",
            path.display()
        ))
    };
    let size = std::fs::metadata(path).map_err(cannot)?.len();
    if size > MAX_TOKEN_FILE {
        return Err(CliError::Usage(format!(
            "{} is larger than an ID token can be ({MAX_TOKEN_FILE} bytes)",
            path.display()
        )));
    }
    let token = std::fs::read_to_string(path)
        .map_err(cannot)?
        .trim()
        .to_owned();
    if token.is_empty() {
        return Err(CliError::Usage(format!("{} is empty", path.display())));
    }
    Ok(token)
}

/// The ID token from `source`.
pub async fn id_token(ctx: &Ctx, source: &OidcSource) -> Result<String, CliError> {
    match source {
        OidcSource::Device => device_flow(ctx).await,
        OidcSource::TokenFile(path) => read_token_file(path),
    }
}
