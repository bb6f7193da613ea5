//! `POST /v1/auth/aws-login`: AWS credentials in, an API key out.

use actix_web::{HttpResponse, post, web};

use super::issue_key::{self, LoginResponse};
use crate::audit::RequestCtx;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

pub use gpudev_api_types::auth::AwsLoginRequest;

const METHOD: &str = "aws-login";

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

/// 422 naming the first field that breaks its limits.
pub fn validate(req: &AwsLoginRequest) -> Result<(), ApiError> {
    check_field("aws_access_key_id", &req.aws_access_key_id, 16, 128)?;
    check_field("aws_secret_access_key", &req.aws_secret_access_key, 40, 128)?;
    if let Some(token) = &req.aws_session_token {
        check_field("aws_session_token", token, 100, 2048)?;
    }
    Ok(())
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
        state
            .limits
            .check_login(ip, &body.aws_access_key_id, &state.metrics)
            .await?;
    }
    validate(body)?;
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
        assert!(validate(&req(&id, &secret, None)).is_ok());
        assert!(validate(&req(&id, &secret, Some(&"t".repeat(100)))).is_ok());
        assert_eq!(
            field_of(validate(&req(&id[1..], &secret, None))).as_deref(),
            Some("aws_access_key_id")
        );
        assert_eq!(
            field_of(validate(&req(&id, &secret[1..], None))).as_deref(),
            Some("aws_secret_access_key")
        );
        assert_eq!(
            field_of(validate(&req(&id, &secret, Some(&"t".repeat(99))))).as_deref(),
            Some("aws_session_token")
        );
        assert_eq!(
            field_of(validate(&req(&id, &secret, Some(&"t".repeat(2049))))).as_deref(),
            Some("aws_session_token")
        );
    }

    #[test]
    fn whitespace_and_control_characters_are_refused() {
        let secret = "s".repeat(40);
        assert_eq!(
            field_of(validate(&req("AKIA EXAMPLE 12345", &secret, None))).as_deref(),
            Some("aws_access_key_id")
        );
        let bad_secret = format!("{}\n", "s".repeat(40));
        assert_eq!(
            field_of(validate(&req(&"A".repeat(16), &bad_secret, None))).as_deref(),
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
