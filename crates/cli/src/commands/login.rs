//! `gpu-dev login`

use serde_json::json;

use crate::auth;
use crate::context::Ctx;
use crate::credentials::LoginMethod;
use crate::error::CliResult;
use crate::output;

/// Log in to the gpudev API with your AWS identity.
///
/// Finds your AWS credentials with the standard AWS chain (environment variables, the profile in
/// the `aws_profile` setting or AWS_PROFILE, SSO, credential_process, …), signs an STS
/// GetCallerIdentity request with them and sends the signed request, never the secret key, to the
/// API (/v1/auth/aws-iam). The request is signed for your region's STS endpoint, or for
/// AWS_ENDPOINT_URL_STS when set. The API key you get is stored in ~/.gpu-dev/credentials (mode
/// 0600); other commands renew it by themselves when it is about to expire.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Send the AWS credentials themselves to /v1/auth/aws-login instead (only for servers
    /// without /v1/auth/aws-iam: the server then sees your secret key).
    #[arg(long)]
    pub send_credentials: bool,
}

/// Runs `login`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let method = if args.send_credentials {
        LoginMethod::AwsLogin
    } else {
        LoginMethod::AwsIam
    };
    let (_, answer) = auth::login(ctx, &ctx.client, method).await?;
    if ctx.json() {
        return output::json(&json!({
            "username": answer.username,
            "user_id": answer.user_id,
            "role": answer.role,
            "aws_arn": answer.aws_arn,
            "key_id": answer.key_id,
            "key_prefix": answer.key_prefix,
            "expires_at": answer.expires_at,
            "ttl_hours": answer.ttl_hours,
            "method": method.as_str(),
            "api_url": ctx.api_url,
        }));
    }
    let role = answer.role.as_deref().unwrap_or("user");
    output::print(&format!(
        "Logged in to {} as {} ({role}; {}).",
        ctx.api_url.trim_end_matches('/'),
        ctx.term.bold(&answer.username),
        answer.aws_arn
    ));
    output::print(&format!(
        "Your API key {}… expires {}; gpu-dev renews it when needed.",
        answer.key_prefix,
        output::time_rel(answer.expires_at, chrono::Utc::now())
    ));
    Ok(())
}
