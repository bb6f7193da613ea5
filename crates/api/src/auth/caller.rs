use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload};
use gpudev_domain::Username;
use gpudev_store::users::Role;

use crate::error::{ApiError, ErrorCode};

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// An API key in `Authorization: Bearer`.
    ApiKey,
}

/// The authenticated caller of a request, put into the request's extensions by
/// [`super::require_api_key`].
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The user's id.
    pub user_id: i64,
    /// The user's name.
    pub username: Username,
    /// User or admin.
    pub role: Role,
    /// The key that authenticated the request.
    pub key_id: i64,
    /// When that key expires.
    pub key_expires_at: chrono::DateTime<chrono::Utc>,
    /// The key's own rate limit, if set.
    pub rate_limit_per_minute: Option<i32>,
    /// How the key's session authenticated (`aws-iam`, `oidc`, `admin`, …).
    pub key_auth_method: String,
    /// The OIDC issuer of the key's session, when it was an OIDC login.
    pub key_auth_issuer: Option<String>,
}

impl Caller {
    /// True for admins.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Fails with 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::admin_only())
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // The middleware runs before any extractor, so authentication always precedes body
        // validation. A route that forgot the middleware fails closed.
        ready(
            req.extensions()
                .get::<Caller>()
                .cloned()
                .ok_or_else(|| ApiError::Unauthorized {
                    code: ErrorCode::NotAuthenticated,
                    detail: "Not authenticated: send Authorization: Bearer <api key>".into(),
                }),
        )
    }
}
