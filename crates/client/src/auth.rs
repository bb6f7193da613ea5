//! The logins: `POST /v1/auth/aws-iam`, `POST /v1/auth/aws-login`, `POST /v1/auth/oidc-login`,
//! `GET /v1/auth/oidc` and `GET /v1/auth/aws`.

use gpudev_api_types::auth::{
    AwsIamRequest, AwsLoginInfo, AwsLoginRequest, LoginResponse, OidcIssuers, OidcLoginRequest,
};

use crate::client::Client;
use crate::error::ClientError;

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
                &OidcLoginRequest {
                    id_token: id_token.to_owned(),
                },
            )
            .await
    }

    /// The OIDC issuers the server trusts (empty when OIDC login is off).
    pub async fn oidc_issuers(&self) -> Result<OidcIssuers, ClientError> {
        self.without_api_key().get(&["v1", "auth", "oidc"]).await
    }

    /// The server id an `aws-iam` login must be signed for (`GET /v1/auth/aws`).
    pub async fn aws_login_info(&self) -> Result<AwsLoginInfo, ClientError> {
        self.without_api_key().get(&["v1", "auth", "aws"]).await
    }
}
