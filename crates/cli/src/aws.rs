//! AWS credentials for logging in: the standard AWS chain (environment, profiles and their
//! `credential_process`, SSO cache, web identity, container and instance metadata) through
//! `aws-config`, and the STS endpoint a login is signed for.

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::ProvideCredentials as _;
use gpudev_client::sts::{self, AwsCredentials};

use crate::config::Config;
use crate::error::CliError;

/// The region signed for when nothing names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Credentials, the region they sign for and the STS endpoint that will check them.
#[derive(Debug, Clone)]
pub struct AwsIdentity {
    /// The credentials (never sent by `aws-iam` logins).
    pub credentials: AwsCredentials,
    /// The signing region.
    pub region: String,
    /// The STS endpoint URL the login is signed for (and the server posts to).
    pub sts_endpoint: String,
}

/// Resolves credentials and region: the profile is `aws_profile` from the configuration, else
/// `AWS_PROFILE`, else the default one; the region `aws_region`, else the SDK's (`AWS_REGION`,
/// the profile's), else us-east-1.
pub async fn resolve(config: &Config) -> Result<AwsIdentity, CliError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &config.aws_profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &config.aws_region {
        loader = loader.region(Region::new(region.clone()));
    }
    let sdk = loader.load().await;
    let provider = sdk.credentials_provider().ok_or_else(|| {
        CliError::Auth("no AWS credentials are configured: set up an AWS profile or SSO, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, then run `gpu-dev login`".into())
    })?;
    let creds = provider.provide_credentials().await.map_err(|e| {
        let why = cause(&e);
        CliError::Auth(format!(
            "no usable AWS credentials ({why}); log in to AWS (for SSO: `aws sso login`) or set aws_profile with `gpu-dev config set aws_profile NAME`"
        ))
    })?;
    let region = sdk
        .region()
        .map(|r| r.as_ref().to_owned())
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    Ok(AwsIdentity {
        credentials: AwsCredentials {
            access_key_id: creds.access_key_id().to_owned(),
            secret_access_key: creds.secret_access_key().to_owned(),
            session_token: creds.session_token().map(str::to_owned),
        },
        sts_endpoint: sts_endpoint(config, &region),
        region,
    })
}

/// The STS endpoint to sign for: `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else the
/// configured `sts_endpoint`, else the region's own endpoint.
pub fn sts_endpoint(config: &Config, region: &str) -> String {
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    env("AWS_ENDPOINT_URL_STS")
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .or_else(|| config.sts_endpoint.clone())
        .unwrap_or_else(|| sts::regional_endpoint(region))
}

/// The innermost cause of an error, which is the one that says what is missing.
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}
