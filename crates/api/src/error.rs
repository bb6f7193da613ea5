//! The API's one error type: a status, a stable snake_case code and a `detail` sentence, returned as
//! `{"detail": "...", "code": "..."}`. Server faults answer an opaque 500 and log their cause chain.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use gpudev_store::StoreError;

pub use gpudev_api_types::{ErrorBody, ErrorCode};

/// An error answered to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{detail}")]
    BadRequest {
        /// The [`ErrorCode`] the answer carries.
        code: ErrorCode,
        /// The answer's `detail`: a sentence for the user.
        detail: String,
    },
    /// 401: no or unknown credentials. Answers carry `WWW-Authenticate: Bearer`.
    #[error("{detail}")]
    Unauthorized {
        /// The [`ErrorCode`] the answer carries.
        code: ErrorCode,
        /// The answer's `detail`: a sentence for the user.
        detail: String,
    },
    /// 403: authenticated but not allowed (expired or revoked key, disabled user, wrong role).
    #[error("{detail}")]
    Forbidden {
        /// The [`ErrorCode`] the answer carries.
        code: ErrorCode,
        /// The answer's `detail`: a sentence for the user.
        detail: String,
    },
    /// 404: the resource does not exist (or belongs to someone else).
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists, the method does not. Answers carry `Allow` with the methods it has.
    #[error("{method} is not allowed here; allowed: {}", allow.join(", "))]
    MethodNotAllowed {
        /// The method refused.
        method: String,
        /// The methods the path has, upper case.
        allow: Vec<&'static str>,
    },
    /// 409: the request conflicts with the current state.
    #[error("{detail}")]
    Conflict {
        /// The [`ErrorCode`] the answer carries.
        code: ErrorCode,
        /// The answer's `detail`: a sentence for the user.
        detail: String,
    },
    /// 409: a booking that cannot be honoured at the time asked, with the earliest start that
    /// would be (when one can be told).
    #[error("{detail}")]
    BookingUnavailable {
        /// The answer's `detail`: a sentence for the user.
        detail: String,
        /// The answer's `earliest_start`.
        earliest_start: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// 413: the body is larger than allowed.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415: the body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: a field is invalid.
    #[error("{detail}")]
    Unprocessable {
        /// The field at fault, when known.
        field: Option<String>,
        /// The answer's `detail`: a sentence for the user.
        detail: String,
    },
    /// 429: rate limited; retry after the given seconds.
    #[error("rate limit exceeded; retry in {retry_after} s")]
    TooManyRequests {
        /// Seconds until a request would be accepted.
        retry_after: u64,
        /// The limit per minute.
        limit: u32,
    },
    /// 503: a dependency (database, STS) is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a fault on our side; the cause is logged, never returned.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// 422 for `field`.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    /// 400 with the `bad_request` code.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code: ErrorCode::BadRequest,
            detail: detail.into(),
        }
    }

    /// 409 with a code.
    pub fn conflict(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// 403 for a non-admin on an admin route.
    pub fn admin_only() -> Self {
        ApiError::Forbidden {
            code: ErrorCode::AdminRequired,
            detail: "this endpoint requires an admin".into(),
        }
    }

    /// A server fault with context.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    /// The code the answer carries.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. } => *code,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::BookingUnavailable { .. } => ErrorCode::BookingUnavailable,
            ApiError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::Unprocessable { .. } => ErrorCode::ValidationError,
            ApiError::TooManyRequests { .. } => ErrorCode::RateLimited,
            ApiError::Unavailable(_) => ErrorCode::ServiceUnavailable,
            ApiError::Internal(_) => ErrorCode::InternalError,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } | ApiError::BookingUnavailable { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        let mut resp = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized { .. } => {
                resp.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            ApiError::TooManyRequests { retry_after, limit } => {
                resp.insert_header((header::RETRY_AFTER, retry_after.to_string()));
                resp.insert_header(("RateLimit-Limit", limit.to_string()));
                resp.insert_header(("RateLimit-Remaining", "0"));
                resp.insert_header(("RateLimit-Reset", retry_after.to_string()));
            }
            ApiError::Unavailable(_) => {
                resp.insert_header((header::RETRY_AFTER, "5"));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                resp.insert_header((header::ALLOW, allow.join(", ")));
            }
            _ => {}
        }
        let earliest_start = match self {
            ApiError::BookingUnavailable { earliest_start, .. } => *earliest_start,
            _ => None,
        };
        resp.json(ErrorBody {
            detail: self.to_string(),
            code: self.code(),
            earliest_start,
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            return ApiError::Unavailable("the database is unavailable; try again shortly".into());
        }
        if e.is_unstorable_text() {
            // A last line of defence: inputs are checked before they reach a query, but a NUL
            // that slips through is the client's error, not a server fault.
            return ApiError::Unprocessable {
                field: None,
                detail: "a value in the request contains a NUL or otherwise unstorable character"
                    .into(),
            };
        }
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict(detail) => ApiError::Conflict {
                code: ErrorCode::Conflict,
                detail,
            },
            StoreError::Transition(t) => ApiError::Conflict {
                code: ErrorCode::InvalidState,
                detail: format!("the reservation is {}; it cannot become {}", t.from, t.to),
            },
            other => ApiError::Internal(other.into()),
        }
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
