//! The logins (`/v1/auth/…`) and the key they answer with. Secrets never show in `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The answer to a successful login. The key is shown here once and never again.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    /// The new API key: send it as `Authorization: Bearer <api_key>`.
    pub api_key: String,
    /// The key's id (for `DELETE /v1/keys/{key_id}`).
    pub key_id: i64,
    /// The key's first characters, for recognising it in listings.
    pub key_prefix: String,
    /// The user's id.
    pub user_id: i64,
    /// The user's name.
    pub username: String,
    /// How the login authenticated: `aws-iam`, `aws-login` or `oidc`.
    pub auth_method: String,
    /// The identity STS confirmed (AWS logins).
    pub aws_arn: Option<String>,
    /// The issuer of the ID token (OIDC logins).
    pub oidc_issuer: Option<String>,
    /// The subject of the ID token within its issuer (OIDC logins).
    pub oidc_subject: Option<String>,
    /// `user` or `admin`.
    pub role: String,
    /// When the key stops working.
    pub expires_at: DateTime<Utc>,
    /// The key's lifetime in hours (`API_KEY_TTL_HOURS`).
    pub ttl_hours: u32,
}

/// One trusted issuer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OidcIssuerInfo {
    /// The issuer identifier (its discovery document is under `/.well-known/openid-configuration`).
    pub issuer: String,
    /// The OAuth client id public clients such as the CLI use.
    pub client_id: String,
}

/// The trusted issuers (empty when OIDC login is off).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OidcIssuers {
    /// In configuration order; the CLI uses the first unless told otherwise.
    pub issuers: Vec<OidcIssuerInfo>,
}

/// The header a signed `GetCallerIdentity` request must carry, and cover with its signature,
/// naming the server it is meant for: a request signed for another service is refused here.
pub const SERVER_ID_HEADER: &str = "x-gpudev-server-id";

/// What a client needs to sign an `aws-iam` login for this server (`GET /v1/auth/aws`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AwsLoginInfo {
    /// The header to sign ([`SERVER_ID_HEADER`]).
    #[cfg_attr(feature = "openapi", schema(example = "x-gpudev-server-id"))]
    pub server_id_header: String,
    /// The value it must have: this installation's `AWS_LOGIN_SERVER_ID`.
    #[cfg_attr(feature = "openapi", schema(example = "gpudev.example.com"))]
    pub server_id: String,
}

/// A signed STS `GetCallerIdentity` request, as the client would send it to STS itself.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AwsIamRequest {
    /// The HTTP method: `POST`.
    #[cfg_attr(feature = "openapi", schema(example = "POST"))]
    pub method: String,
    /// The URL the request was signed for: an allowed STS endpoint's root.
    #[cfg_attr(
        feature = "openapi",
        schema(example = "https://sts.us-east-1.amazonaws.com/")
    )]
    pub url: String,
    /// The request's headers by name: at least `authorization` and `x-amz-date`, plus
    /// `content-type` and `x-amz-security-token` when signed.
    pub headers: BTreeMap<String, String>,
    /// The form body.
    #[cfg_attr(
        feature = "openapi",
        schema(example = "Action=GetCallerIdentity&Version=2011-06-15")
    )]
    pub body: String,
}

impl fmt::Debug for AwsIamRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Signed headers carry the session token and a replayable signature: names only.
        f.debug_struct("AwsIamRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body", &self.body)
            .finish()
    }
}

/// An ID token (a signed JWT). It is verified, used once and neither stored nor logged.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OidcLoginRequest {
    /// The ID token the issuer gave the user (for instance at the end of the device flow).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 16384, format = Password))]
    pub id_token: String,
}

impl fmt::Debug for OidcLoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcLoginRequest")
            .field("id_token", &"<redacted>")
            .finish()
    }
}

/// AWS credentials (typically an assumed role's temporary ones). They are used for one STS call
/// and neither stored nor logged.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AwsLoginRequest {
    /// Access key id (16–128 characters).
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 16,
            max_length = 128,
            pattern = "^[!-~]*$",
            example = "ASIAIOSFODNN7EXAMPLE"
        )
    )]
    pub aws_access_key_id: String,
    /// Secret access key (40–128 characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 40, max_length = 128, pattern = "^[!-~]*$", format = Password))]
    pub aws_secret_access_key: String,
    /// Session token of temporary credentials (100–2048 characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 100, max_length = 2048, pattern = "^[!-~]*$", format = Password, nullable))]
    #[serde(default)]
    pub aws_session_token: Option<String>,
}

impl fmt::Debug for AwsLoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsLoginRequest")
            .field("aws_access_key_id", &"<redacted>")
            .field("aws_secret_access_key", &"<redacted>")
            .field(
                "aws_session_token",
                &self.aws_session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
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
            .finish_non_exhaustive()
    }
}
