//! Logging in: AWS identity or OIDC ID token → API key, stored in the credentials file.

use gpudev_client::ErrorCode;
use std::time::SystemTime;

use gpudev_client::{AwsLoginRequest, Client, LoginResponse, sts};

use crate::context::Ctx;
use crate::credentials::{Credentials, LoginMethod};
use crate::error::CliError;
use crate::oidc::{self, OidcSource};

/// Logs in to the API with `method` and stores the new key. The AWS secret key is sent only with
/// [`LoginMethod::AwsLogin`]; [`LoginMethod::Oidc`] runs the device flow.
pub async fn login(
    ctx: &Ctx,
    client: &Client,
    method: LoginMethod,
) -> Result<(Credentials, LoginResponse), CliError> {
    let identity = match method {
        LoginMethod::Oidc => return login_oidc(ctx, client, &OidcSource::Device).await,
        LoginMethod::AwsIam | LoginMethod::AwsLogin => crate::aws::resolve(&ctx.config).await?,
    };
    let answer = match method {
        LoginMethod::Oidc => return login_oidc(ctx, client, &OidcSource::Device).await,
        LoginMethod::AwsIam => {
            // Signed for this server only: its id comes from the server itself.
            let server = client.aws_login_info().await?;
            let sign = || {
                sts::presign_get_caller_identity(
                    &identity.credentials,
                    &identity.region,
                    &identity.sts_endpoint,
                    &server.server_id,
                    SystemTime::now(),
                )
                .map_err(|e| CliError::Auth(e.to_string()))
            };
            match client.login_aws_iam(&sign()?).await {
                // A signed request logs in once, and signatures have whole-second dates: a
                // second login within the same second signed the very same request. Sign again
                // once the second has turned.
                Err(e) if e.code() == Some(ErrorCode::SignatureReplayed) => {
                    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
                    client.login_aws_iam(&sign()?).await
                }
                other => other,
            }
        }
        LoginMethod::AwsLogin => {
            let c = &identity.credentials;
            client
                .login_aws_credentials(&AwsLoginRequest {
                    aws_access_key_id: c.access_key_id.clone(),
                    aws_secret_access_key: c.secret_access_key.clone(),
                    aws_session_token: c.session_token.clone(),
                })
                .await
        }
    }
    .map_err(|e| login_error(e, method, &identity.sts_endpoint))?;
    let credentials = Credentials {
        api_key: answer.api_key.clone(),
        expires_at: answer.expires_at,
        key_id: Some(answer.key_id),
        key_prefix: Some(answer.key_prefix.clone()),
        username: Some(answer.username.clone()),
        api_url: Some(ctx.api_url.clone()),
        method,
        id_token_file: None,
    };
    credentials.save(&ctx.paths.credentials_file)?;
    Ok((credentials, answer))
}

/// Logs in with an OIDC ID token from `source` and stores the new key (with the token file, so
/// the key can be renewed from it).
pub async fn login_oidc(
    ctx: &Ctx,
    client: &Client,
    source: &OidcSource,
) -> Result<(Credentials, LoginResponse), CliError> {
    let token = oidc::id_token(ctx, source).await?;
    let answer = client.login_oidc(&token).await.map_err(|e| {
        if e.status().is_some_and(|s| s == 401 || s == 403 || s == 409) {
            CliError::Auth(e.to_string())
        } else {
            CliError::Api(e)
        }
    })?;
    let credentials = Credentials {
        api_key: answer.api_key.clone(),
        expires_at: answer.expires_at,
        key_id: Some(answer.key_id),
        key_prefix: Some(answer.key_prefix.clone()),
        username: Some(answer.username.clone()),
        api_url: Some(ctx.api_url.clone()),
        method: LoginMethod::Oidc,
        id_token_file: match source {
            OidcSource::TokenFile(path) => Some(std::path::absolute(path).unwrap_or(path.clone())),
            OidcSource::Device => None,
        },
    };
    credentials.save(&ctx.paths.credentials_file)?;
    Ok((credentials, answer))
}

/// Logs in again the way `previous` was obtained: AWS as before; OIDC from the same token file,
/// or with the device flow when someone is at the terminal to approve it.
pub async fn relogin(
    ctx: &Ctx,
    client: &Client,
    previous: Option<&Credentials>,
) -> Result<(Credentials, LoginResponse), CliError> {
    let Some(previous) = previous.filter(|c| c.method == LoginMethod::Oidc) else {
        let method = previous.map_or(LoginMethod::AwsIam, |c| c.method);
        return login(ctx, client, method).await;
    };
    if let Some(path) = &previous.id_token_file {
        return login_oidc(ctx, client, &OidcSource::TokenFile(path.clone())).await;
    }
    if ctx.term.stdin_tty && ctx.term.stderr_tty {
        return login_oidc(ctx, client, &OidcSource::Device).await;
    }
    Err(CliError::Auth(
        "an OIDC login needs you to approve it in a browser; run `gpu-dev login --oidc` again"
            .into(),
    ))
}

/// A refused login is an authentication error (exit 3) with the server's reason; a presigned
/// request the server will not forward says which endpoint was signed for.
fn login_error(e: gpudev_client::ClientError, method: LoginMethod, endpoint: &str) -> CliError {
    match e.code() {
        Some(ErrorCode::StsHostNotAllowed) if method == LoginMethod::AwsIam => {
            CliError::Auth(format!(
                "{e} — the login was signed for {endpoint}; set AWS_ENDPOINT_URL_STS or aws_region to an endpoint the server allows, or use `gpu-dev login --send-credentials` if the server only offers that"
            ))
        }
        Some(ErrorCode::NotFound) if method == LoginMethod::AwsIam => CliError::Auth(
            "this server has no /v1/auth/aws-iam login; use `gpu-dev login --send-credentials`"
                .into(),
        ),
        _ if e.status().is_some_and(|s| s == 401 || s == 403) => CliError::Auth(e.to_string()),
        _ => CliError::Api(e),
    }
}
