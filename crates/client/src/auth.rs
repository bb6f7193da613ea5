//! The logins: `POST /v1/auth/aws-iam`, `POST /v1/auth/aws-login`, `POST /v1/auth/oidc-login`,
//! and `GET /v1/auth/oidc`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::ClientError;

/// A SigV4-signed STS `GetCallerIdentity` request, as [`crate::sts::presign_get_caller_identity`]
/// builds it. It carries a signature and a session token but never the secret key.
#[derive(Clone, Serialize, Deserialize)]
pub struct AwsIamRequest {
    /// `POST`.
    pub method: String,
    /// The exact URL that was signed (the server posts to it).
    pub url: String,
    /// The signed headers by name.
    pub headers: BTreeMap<String, String>,
    /// The form body.
    pub body: String,
}

impl fmt::Debug for AwsIamRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsIamRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body", &self.body)
            .finish()
    }
}

/// Raw AWS credentials for `POST /v1/auth/aws-login` (servers without `aws-iam`): the secret
/// key is sent to the server.
#[derive(Clone, Serialize)]
pub struct AwsLoginRequest {
    /// Access key id.
    pub aws_access_key_id: String,
    /// Secret access key.
    pub aws_secret_access_key: String,
    /// Session token of temporary credentials.
    pub aws_session_token: Option<String>,
}

impl fmt::Debug for AwsLoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsLoginRequest")
            .field("aws_access_key_id", &self.aws_access_key_id)
            .field("aws_secret_access_key", &"<redacted>")
            .field(
                "aws_session_token",
                &self.aws_session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A new API key and whose it is.
#[derive(Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The key (shown once).
    pub api_key: String,
    /// The key's id.
    #[serde(default)]
    pub key_id: Option<i64>,
    /// The key's first characters.
    pub key_prefix: String,
    /// The user's id.
    pub user_id: i64,
    /// The username.
    pub username: String,
    /// How the login authenticated (`aws-iam`, `aws-login`, `oidc`).
    #[serde(default)]
    pub auth_method: Option<String>,
    /// The AWS identity STS confirmed (AWS logins).
    #[serde(default)]
    pub aws_arn: Option<String>,
    /// The ID token's issuer (OIDC logins).
    #[serde(default)]
    pub oidc_issuer: Option<String>,
    /// `user` or `admin`.
    #[serde(default)]
    pub role: Option<String>,
    /// When the key stops working.
    pub expires_at: DateTime<Utc>,
    /// The key's lifetime in hours.
    pub ttl_hours: u32,
}

impl fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginResponse")
            .field("api_key", &"<redacted>")
            .field("key_id", &self.key_id)
            .field("key_prefix", &self.key_prefix)
            .field("username", &self.username)
            .field("aws_arn", &self.aws_arn)
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Client {
    /// Logs in with a presigned STS request (the secret key stays here).
    pub async fn login_aws_iam(&self, req: &AwsIamRequest) -> Result<LoginResponse, ClientError> {
        self.without_api_key()
            .post(&["v1", "auth", "aws-iam"], req)
            .await
    }

    /// Logs in by sending AWS credentials to the server (for servers without `aws-iam`).
    pub async fn login_aws_credentials(
        &self,
        req: &AwsLoginRequest,
    ) -> Result<LoginResponse, ClientError> {
        self.without_api_key()
            .post(&["v1", "auth", "aws-login"], req)
            .await
    }

    /// Logs in with an OpenID Connect ID token.
    pub async fn login_oidc(&self, id_token: &str) -> Result<LoginResponse, ClientError> {
        self.without_api_key()
            .post(
                &["v1", "auth", "oidc-login"],
                &serde_json::json!({ "id_token": id_token }),
            )
            .await
    }

    /// The OIDC issuers the server trusts (empty when OIDC login is off).
    pub async fn oidc_issuers(&self) -> Result<OidcIssuers, ClientError> {
        self.without_api_key().get(&["v1", "auth", "oidc"]).await
    }
}

/// One OIDC issuer the server trusts.
#[derive(Debug, Clone, Deserialize)]
pub struct OidcIssuerInfo {
    /// The issuer identifier.
    pub issuer: String,
    /// The client id to use with it.
    pub client_id: String,
}

/// The answer of `GET /v1/auth/oidc`.
#[derive(Debug, Clone, Deserialize)]
pub struct OidcIssuers {
    /// The trusted issuers, in the server's order.
    pub issuers: Vec<OidcIssuerInfo>,
}
