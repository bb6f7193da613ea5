//! `POST /v1/auth/aws-login`: AWS credentials in, an API key out.

use std::fmt;

use actix_web::{HttpResponse, post, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::issue_key::{self, LoginResponse};
use crate::audit::RequestCtx;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

const METHOD: &str = "aws-login";

/// AWS credentials (typically an assumed role's temporary ones). They are used for one STS call
/// and neither stored nor logged.
#[derive(Deserialize, ToSchema)]
pub struct AwsLoginRequest {
    /// Access key id (16–128 characters).
    #[schema(min_length = 16, max_length = 128, example = "ASIAIOSFODNN7EXAMPLE")]
    pub aws_access_key_id: String,
    /// Secret access key (40–128 characters).
    #[schema(min_length = 40, max_length = 128, format = Password)]
    pub aws_secret_access_key: String,
    /// Session token of temporary credentials (100–2048 characters).
    #[schema(min_length = 100, max_length = 2048, format = Password, nullable)]
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

/// Checks a credential field's length (in characters, as the original API did) and that it is
/// printable ASCII without spaces, as every AWS credential is.
fn check_field(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let len = value.chars().count();
    if !(min..=max).contains(&len) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be {min} to {max} characters (got {len})"),
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be printable ASCII without spaces"),
        ));
    }
    Ok(())
}

impl AwsLoginRequest {
    /// 422 naming the first field that breaks its limits.
    pub fn validate(&self) -> Result<(), ApiError> {
        check_field("aws_access_key_id", &self.aws_access_key_id, 16, 128)?;
        check_field(
            "aws_secret_access_key",
            &self.aws_secret_access_key,
            40,
            128,
        )?;
        if let Some(token) = &self.aws_session_token {
            check_field("aws_session_token", token, 100, 2048)?;
        }
        Ok(())
    }
}

/// Logs in with AWS credentials: STS `GetCallerIdentity` confirms who they belong to, the role
/// must be `ALLOWED_AWS_ROLE` (or `ADMIN_AWS_ROLE`), and a new API key is issued.
#[utoipa::path(post, path = "/v1/auth/aws-login", tag = "auth",
    request_body = AwsLoginRequest,
    responses(
        (status = 200, body = LoginResponse, description = "a new API key (shown once)"),
        (status = 401, body = ErrorBody, description = "STS refused the credentials"),
        (status = 403, body = ErrorBody, description = "wrong role, an IAM user, or a disabled user"),
        (status = 422, body = ErrorBody, description = "a field breaks its length limits"),
        (status = 429, body = ErrorBody, description = "too many logins from this address"),
        (status = 503, body = ErrorBody, description = "STS cannot be reached"),
    ))]
#[post("/aws-login")]
pub async fn aws_login(
    state: web::Data<AppState>,
    ctx: RequestCtx,
    body: web::Json<AwsLoginRequest>,
) -> ApiResult<HttpResponse> {
    let result = login(&state, &ctx, &body).await;
    issue_key::respond(&state, METHOD, result)
}

async fn login(
    state: &AppState,
    ctx: &RequestCtx,
    body: &AwsLoginRequest,
) -> ApiResult<LoginResponse> {
    if let Some(ip) = ctx.client_ip {
        state.limits.check_login(ip, &state.metrics)?;
    }
    body.validate()?;
    let arn = match state
        .sts
        .caller_identity(
            &body.aws_access_key_id,
            &body.aws_secret_access_key,
            body.aws_session_token.as_deref(),
        )
        .await
    {
        Ok(arn) => arn,
        Err(e) => {
            let e = ApiError::from(e);
            if matches!(e, ApiError::Unauthorized { .. }) {
                issue_key::audit_denied(state, ctx, METHOD, "anonymous", "sts_refused", None).await;
            }
            return Err(e);
        }
    };
    issue_key::complete_login(state, ctx, METHOD, &arn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str, secret: &str, token: Option<&str>) -> AwsLoginRequest {
        AwsLoginRequest {
            aws_access_key_id: id.into(),
            aws_secret_access_key: secret.into(),
            aws_session_token: token.map(Into::into),
        }
    }

    fn field_of(r: Result<(), ApiError>) -> Option<String> {
        match r {
            Err(ApiError::Unprocessable { field, .. }) => field,
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn lengths_follow_the_original_limits() {
        let id = "A".repeat(16);
        let secret = "s".repeat(40);
        assert!(req(&id, &secret, None).validate().is_ok());
        assert!(req(&id, &secret, Some(&"t".repeat(100))).validate().is_ok());
        assert_eq!(
            field_of(req(&id[1..], &secret, None).validate()).as_deref(),
            Some("aws_access_key_id")
        );
        assert_eq!(
            field_of(req(&id, &secret[1..], None).validate()).as_deref(),
            Some("aws_secret_access_key")
        );
        assert_eq!(
            field_of(req(&id, &secret, Some(&"t".repeat(99))).validate()).as_deref(),
            Some("aws_session_token")
        );
        assert_eq!(
            field_of(req(&id, &secret, Some(&"t".repeat(2049))).validate()).as_deref(),
            Some("aws_session_token")
        );
    }

    #[test]
    fn whitespace_and_control_characters_are_refused() {
        let secret = "s".repeat(40);
        assert_eq!(
            field_of(req("AKIA EXAMPLE 12345", &secret, None).validate()).as_deref(),
            Some("aws_access_key_id")
        );
        let bad_secret = format!("{}\n", "s".repeat(40));
        assert_eq!(
            field_of(req(&"A".repeat(16), &bad_secret, None).validate()).as_deref(),
            Some("aws_secret_access_key")
        );
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let r = req(
            "AKIAEXAMPLEKEY123",
            "topsecret-topsecret-topsecret-topsecret!",
            Some("tok"),
        );
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("AKIA") && !shown.contains("tok\"")
        );
    }
}
