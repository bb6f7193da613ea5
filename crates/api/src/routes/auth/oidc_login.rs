//! `POST /v1/auth/oidc-login`: an ID token from a trusted OpenID Connect issuer in, an API key out.

use actix_web::{HttpResponse, post, web};

use super::issue_key::{self, LoginIdentity, LoginResponse};
use crate::audit::RequestCtx;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::oidc::{self, Rejection};
use crate::state::AppState;

pub use gpudev_api_types::auth::OidcLoginRequest;

const METHOD: &str = "oidc";

/// Longest ID token accepted, in bytes.
pub const MAX_ID_TOKEN: usize = 16 * 1024;

/// 422 when the token is empty, too long or not printable ASCII.
pub fn validate(req: &OidcLoginRequest) -> Result<(), ApiError> {
    let token = req.id_token.as_str();
    if token.is_empty() || token.len() > MAX_ID_TOKEN {
        return Err(ApiError::invalid(
            "id_token",
            format!("id_token must be 1 to {MAX_ID_TOKEN} characters"),
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "id_token",
            "id_token must be printable ASCII without spaces",
        ));
    }
    Ok(())
}

/// Logs in with an OpenID Connect ID token: its signature is checked against the issuer's
/// published keys, then `iss`, `aud`, `exp` and `nbf`, then the issuer's required claims and
/// groups. The user is the one bound to the token's issuer and subject (created on first login);
/// a new API key is issued.
#[utoipa::path(post, path = "/v1/auth/oidc-login", tag = "auth",
    request_body = OidcLoginRequest,
    responses(
        (status = 200, body = LoginResponse, description = "a new API key (shown once)"),
        (status = 401, body = ErrorBody, description = "the token is invalid, expired, not yet valid, for another audience, from an untrusted issuer or not signed by the issuer's key"),
        (status = 403, body = ErrorBody, description = "a required claim or group is missing, or the user is disabled"),
        (status = 404, body = ErrorBody, description = "no OIDC issuer is configured"),
        (status = 409, body = ErrorBody, description = "the username is taken by another identity"),
        (status = 422, body = ErrorBody, description = "the body is malformed"),
        (status = 429, body = ErrorBody, description = "too many logins from this address"),
        (status = 503, body = ErrorBody, description = "the issuer cannot be reached"),
    ))]
#[post("/oidc-login")]
pub async fn oidc_login(
    state: web::Data<AppState>,
    ctx: RequestCtx,
    body: web::Json<OidcLoginRequest>,
) -> ApiResult<HttpResponse> {
    let result = login(&state, &ctx, &body).await;
    issue_key::respond(&state, METHOD, result)
}

async fn login(
    state: &AppState,
    ctx: &RequestCtx,
    body: &OidcLoginRequest,
) -> ApiResult<LoginResponse> {
    if let Some(ip) = ctx.client_ip {
        let identity = oidc::verify::claimed_identity(&body.id_token);
        state
            .limits
            .check_login(ip, &identity, &state.metrics)
            .await?;
    }
    if !state.oidc.is_enabled() {
        return Err(ApiError::NotFound(
            "OIDC login is not configured on this server".into(),
        ));
    }
    validate(body)?;
    let identity = match oidc::verify(&state.oidc, &body.id_token).await {
        Ok(identity) => identity,
        Err(rejection) => {
            if let Rejection::Invalid(code, _) | Rejection::Missing(code, _) = &rejection {
                // The issuer is recorded when the token names a trusted one, verified or not.
                let issuer = oidc::verify::claimed_issuer(&state.oidc, &body.id_token);
                issue_key::refuse(
                    state,
                    ctx,
                    METHOD,
                    issuer.as_deref(),
                    "anonymous",
                    code.as_str(),
                    serde_json::json!({}),
                )
                .await;
            }
            return Err(rejection.into());
        }
    };
    issue_key::issue(
        state,
        ctx,
        METHOD,
        LoginIdentity::Oidc(&identity),
        identity.is_admin,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_long_and_spaced_tokens_are_422() {
        for bad in [String::new(), "a".repeat(MAX_ID_TOKEN + 1), "a b".into()] {
            let r = OidcLoginRequest { id_token: bad };
            assert!(matches!(validate(&r), Err(ApiError::Unprocessable { .. })));
        }
        let ok = OidcLoginRequest {
            id_token: "a.b.c".into(),
        };
        assert!(validate(&ok).is_ok());
        assert!(!format!("{ok:?}").contains("a.b.c"));
    }
}
