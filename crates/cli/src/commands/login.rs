//! `gpu-dev login`

use std::path::PathBuf;

use serde_json::json;

use crate::auth;
use crate::context::Ctx;
use crate::credentials::LoginMethod;
use crate::error::CliResult;
use crate::oidc::OidcSource;
use crate::output;

/// Log in to the gpudev API with your AWS identity, or with OpenID Connect.
///
/// By default, finds your AWS credentials with the standard AWS chain (environment variables, the
/// profile in the `aws_profile` setting or AWS_PROFILE, SSO, credential_process, …), signs an STS
/// GetCallerIdentity request with them and sends the signed request, never the secret key, to the
/// API (/v1/auth/aws-iam). The request is signed for your region's STS endpoint, or for
/// AWS_ENDPOINT_URL_STS when set.
///
/// With --oidc, logs in at your organisation's identity provider instead: gpu-dev shows a web
/// address and a code, you approve the login in a browser, and the ID token you get is exchanged
/// at /v1/auth/oidc-login. The issuer and client id come from the `oidc_issuer` and
/// `oidc_client_id` settings, else from the API (GET /v1/auth/oidc). With --id-token-file, the ID
/// token is read from a file instead (for automation; the file is read again to renew the key).
///
/// The API key you get is stored in ~/.gpu-dev/credentials (mode 0600); other commands renew it
/// by themselves when it is about to expire (an OIDC login from the device flow only when you are
/// at a terminal to approve it).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Send the AWS credentials themselves to /v1/auth/aws-login instead (only for servers
    /// without /v1/auth/aws-iam: the server then sees your secret key).
    #[arg(long, conflicts_with_all = ["oidc", "id_token_file"])]
    pub send_credentials: bool,
    /// Log in with OpenID Connect (the device authorization flow in your browser).
    #[arg(long)]
    pub oidc: bool,
    /// Log in with the OpenID Connect ID token in this file (implies --oidc).
    #[arg(long, value_name = "PATH")]
    pub id_token_file: Option<PathBuf>,
}

/// Runs `login`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let (method, answer) = if let Some(path) = args.id_token_file {
        let (_, answer) = auth::login_oidc(ctx, &ctx.client, &OidcSource::TokenFile(path)).await?;
        (LoginMethod::Oidc, answer)
    } else if args.oidc {
        let (_, answer) = auth::login_oidc(ctx, &ctx.client, &OidcSource::Device).await?;
        (LoginMethod::Oidc, answer)
    } else {
        let method = if args.send_credentials {
            LoginMethod::AwsLogin
        } else {
            LoginMethod::AwsIam
        };
        let (_, answer) = auth::login(ctx, &ctx.client, method).await?;
        (method, answer)
    };
    if ctx.json() {
        return output::json(&json!({
            "username": answer.username,
            "user_id": answer.user_id,
            "role": answer.role,
            "aws_arn": answer.aws_arn,
            "oidc_issuer": answer.oidc_issuer,
            "key_id": answer.key_id,
            "key_prefix": answer.key_prefix,
            "expires_at": answer.expires_at,
            "ttl_hours": answer.ttl_hours,
            "method": method.as_str(),
            "api_url": ctx.api_url,
        }));
    }
    let role = answer.role.as_str();
    let identity = answer
        .aws_arn
        .as_deref()
        .or(answer.oidc_issuer.as_deref())
        .unwrap_or(method.as_str());
    output::print(&format!(
        "Logged in to {} as {} ({role}; {identity}).",
        ctx.api_url.trim_end_matches('/'),
        ctx.term.bold(&answer.username),
    ));
    output::print(&format!(
        "Your API key {}… expires {}; gpu-dev renews it when needed.",
        answer.key_prefix,
        output::time_rel(answer.expires_at, chrono::Utc::now())
    ));
    Ok(())
}
