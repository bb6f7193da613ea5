//! AWS credentials for logging in: the standard AWS chain through `aws-config` — environment
//! variables, then the profile (static keys, `credential_process`, SSO cache, assumed roles),
//! web identity tokens and container credentials — and the STS endpoint a login is signed for.
//!
//! EC2 instance metadata is left out unless the `aws_instance_metadata` setting is `true`: on a
//! laptop, asking 169.254.169.254 only adds a timeout to a missing-credentials error (and sends a
//! request the user never asked for); on an EC2 dev host with an instance role, turn it on.

use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::{
    EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
};
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
use aws_config::provider_config::ProviderConfig;
use aws_config::web_identity_token::WebIdentityTokenCredentialsProvider;
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

/// The region: `aws_region`, else `AWS_REGION`/`AWS_DEFAULT_REGION`, else the profile's, else
/// us-east-1.
pub async fn region(config: &Config) -> String {
    if let Some(r) = &config.aws_region {
        return r.clone();
    }
    let mut profile = ProfileFileRegionProvider::builder();
    if let Some(name) = &config.aws_profile {
        profile = profile.profile_name(name);
    }
    RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(profile.build())
        .or_else(Region::new(DEFAULT_REGION))
        .region()
        .await
        .map_or_else(|| DEFAULT_REGION.to_owned(), |r| r.as_ref().to_owned())
}

/// Resolves credentials: environment variables, then the profile named `aws_profile` (else
/// `AWS_PROFILE`, else `default`), then web identity and container credentials, then (when
/// enabled) instance metadata.
pub async fn resolve(config: &Config) -> Result<AwsIdentity, CliError> {
    let region = region(config).await;
    let conf = ProviderConfig::without_region()
        .with_region(Some(Region::new(region.clone())))
        .with_behavior_version(Some(BehaviorVersion::latest()));
    let mut profile = ProfileFileCredentialsProvider::builder().configure(&conf);
    if let Some(name) = &config.aws_profile {
        profile = profile.profile_name(name);
    }
    let mut chain = CredentialsProviderChain::first_try(
        "Environment",
        EnvironmentVariableCredentialsProvider::new(),
    )
    .or_else("Profile", profile.build())
    .or_else(
        "WebIdentityToken",
        WebIdentityTokenCredentialsProvider::builder()
            .configure(&conf)
            .build(),
    )
    .or_else(
        "EcsContainer",
        EcsCredentialsProvider::builder().configure(&conf).build(),
    );
    if config.instance_metadata() {
        chain = chain.or_else(
            "Ec2InstanceMetadata",
            ImdsCredentialsProvider::builder().configure(&conf).build(),
        );
    }
    let creds = chain.provide_credentials().await.map_err(|e| {
        let why = cause(&e);
        CliError::Auth(format!(
            "no usable AWS credentials ({why}); log in to AWS (for SSO: `aws sso login`), export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile with `gpu-dev config set aws_profile NAME`"
        ))
    })?;
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
