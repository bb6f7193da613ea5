//! The body of every error answer and the stable codes it carries.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong, in a sentence meant for the user.
    pub detail: String,
    /// Stable machine-readable code (`not_found`, `api_key_expired`, `quota_exceeded`, …).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub code: ErrorCode,
    /// With `booking_unavailable`: the earliest start at which the same booking would be
    /// honoured now, for the client to offer instead (absent when no start can be told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest_start: Option<DateTime<Utc>>,
}

/// Every code the API answers with, written in snake case on the wire. docs/API.md says when each
/// is sent and what a client should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: malformed JSON or an unreadable body.
    BadRequest,
    /// 400: `aws-iam`, the signed URL is not an STS endpoint's root.
    InvalidStsUrl,
    /// 400: `aws-iam`, the signed URL's host is not one the server forwards to.
    StsHostNotAllowed,
    /// 400: `aws-iam`, the signed request is not a plain `GetCallerIdentity`.
    InvalidStsRequest,
    /// 401: no `Authorization` header.
    NotAuthenticated,
    /// 401: the header is not `Bearer <key>`.
    InvalidAuthorization,
    /// 401: not a key this server issued.
    InvalidApiKey,
    /// 401: STS refused the credentials or the signature.
    InvalidAwsCredentials,
    /// 401: `aws-iam`, the signature is dated outside the accepted window.
    SignatureExpired,
    /// 401: `aws-iam`, this signed request was already used for a login.
    SignatureReplayed,
    /// 401: `aws-iam`, the request was signed for another service's server id.
    WrongServerId,
    /// 401: `oidc-login`, the ID token is malformed or its signature does not verify.
    InvalidToken,
    /// 401: `oidc-login`, the ID token has expired.
    TokenExpired,
    /// 401: `oidc-login`, the ID token is not valid yet.
    TokenNotYetValid,
    /// 401: `oidc-login`, the ID token was issued for another audience.
    InvalidAudience,
    /// 401: `oidc-login`, the token's issuer is not trusted.
    OidcIssuerUntrusted,
    /// 401: `oidc-login`, the token was signed by a key its issuer does not publish.
    OidcUnknownKey,
    /// 403: the key's lifetime is over; logging in again helps.
    ApiKeyExpired,
    /// 403: the key was revoked.
    ApiKeyRevoked,
    /// 403: an admin disabled the user.
    UserDisabled,
    /// 403: an admin route called by a non-admin.
    AdminRequired,
    /// 403: a login with a role other than the allowed ones, or as an IAM user.
    AwsRoleDenied,
    /// 403: `oidc-login`, a required claim is missing.
    OidcClaimMissing,
    /// 403: `oidc-login`, a required group is missing.
    OidcGroupMissing,
    /// 403: a submit with a priority above 0 by a non-admin.
    PriorityRequiresAdmin,
    /// 404: no such route, or no such resource among the caller's.
    NotFound,
    /// 405: the route exists but not with this method; `Allow` lists the ones it has.
    MethodNotAllowed,
    /// 409: the job's status does not allow the action.
    InvalidState,
    /// 409: a submit beyond the per-user quotas.
    QuotaExceeded,
    /// 409: the same `Idempotency-Key` with a different body.
    IdempotencyKeyReused,
    /// 409: a proposed job id belongs to another job.
    JobIdTaken,
    /// 409: a job id prefix matches more than one job.
    AmbiguousJobId,
    /// 409: an extension past the longest lifetime allowed.
    LifetimeExceeded,
    /// 409: a disk create or rename onto a taken name.
    DiskExists,
    /// 409: a delete or rename of a disk in use.
    DiskInUse,
    /// 409: an admin disabling themselves.
    SelfDisable,
    /// 409: a login whose username belongs to another identity.
    UsernameTaken,
    /// 409: a booking (`start_at`) that cannot be honoured at the time asked; the body's
    /// `earliest_start` gives the earliest start that would be.
    BookingUnavailable,
    /// 409: an extension that would run into a booking's time on the same GPUs.
    ConflictsWithBooking,
    /// 409: any other conflict with the stored state.
    Conflict,
    /// 413: the body is larger than allowed.
    PayloadTooLarge,
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 422: a field, query or path parameter is invalid; the detail names it.
    ValidationError,
    /// 429: rate limited.
    RateLimited,
    /// 500: a fault on the server.
    InternalError,
    /// 503: the database, STS or the OIDC issuer cannot be reached.
    ServiceUnavailable,
    /// A code this build does not know (a newer server), or none at all. The server never
    /// sends it.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidStsUrl => "invalid_sts_url",
            ErrorCode::StsHostNotAllowed => "sts_host_not_allowed",
            ErrorCode::InvalidStsRequest => "invalid_sts_request",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::InvalidAuthorization => "invalid_authorization",
            ErrorCode::InvalidApiKey => "invalid_api_key",
            ErrorCode::InvalidAwsCredentials => "invalid_aws_credentials",
            ErrorCode::SignatureExpired => "signature_expired",
            ErrorCode::SignatureReplayed => "signature_replayed",
            ErrorCode::WrongServerId => "wrong_server_id",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::TokenNotYetValid => "token_not_yet_valid",
            ErrorCode::InvalidAudience => "invalid_audience",
            ErrorCode::OidcIssuerUntrusted => "oidc_issuer_untrusted",
            ErrorCode::OidcUnknownKey => "oidc_unknown_key",
            ErrorCode::ApiKeyExpired => "api_key_expired",
            ErrorCode::ApiKeyRevoked => "api_key_revoked",
            ErrorCode::UserDisabled => "user_disabled",
            ErrorCode::AdminRequired => "admin_required",
            ErrorCode::AwsRoleDenied => "aws_role_denied",
            ErrorCode::OidcClaimMissing => "oidc_claim_missing",
            ErrorCode::OidcGroupMissing => "oidc_group_missing",
            ErrorCode::PriorityRequiresAdmin => "priority_requires_admin",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::JobIdTaken => "job_id_taken",
            ErrorCode::AmbiguousJobId => "ambiguous_job_id",
            ErrorCode::LifetimeExceeded => "lifetime_exceeded",
            ErrorCode::DiskExists => "disk_exists",
            ErrorCode::DiskInUse => "disk_in_use",
            ErrorCode::SelfDisable => "self_disable",
            ErrorCode::UsernameTaken => "username_taken",
            ErrorCode::BookingUnavailable => "booking_unavailable",
            ErrorCode::ConflictsWithBooking => "conflicts_with_booking",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::ValidationError => "validation_error",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::ServiceUnavailable => "service_unavailable",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// True for the codes of an authentication failure: who the caller is was refused, as
    /// opposed to what was asked (a 401, or one of these with a 403).
    pub fn is_auth(self) -> bool {
        matches!(
            self,
            ErrorCode::NotAuthenticated
                | ErrorCode::InvalidAuthorization
                | ErrorCode::InvalidApiKey
                | ErrorCode::ApiKeyExpired
                | ErrorCode::ApiKeyRevoked
                | ErrorCode::UserDisabled
                | ErrorCode::InvalidAwsCredentials
                | ErrorCode::AwsRoleDenied
                | ErrorCode::SignatureExpired
                | ErrorCode::StsHostNotAllowed
                | ErrorCode::InvalidStsRequest
        )
    }

    /// True when logging in again would help: the key expired, or the server does not know it.
    pub fn is_renewable_auth(self) -> bool {
        matches!(
            self,
            ErrorCode::ApiKeyExpired | ErrorCode::InvalidApiKey | ErrorCode::NotAuthenticated
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_written_on_the_wire_as_its_name() {
        for code in ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }

    #[test]
    fn a_code_this_build_does_not_know_reads_as_unknown() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"detail": "x", "code": "something_new"}"#).unwrap();
        assert_eq!(body.code, ErrorCode::Unknown);
    }

    const ALL: [ErrorCode; 47] = [
        ErrorCode::BadRequest,
        ErrorCode::InvalidStsUrl,
        ErrorCode::StsHostNotAllowed,
        ErrorCode::InvalidStsRequest,
        ErrorCode::NotAuthenticated,
        ErrorCode::InvalidAuthorization,
        ErrorCode::InvalidApiKey,
        ErrorCode::InvalidAwsCredentials,
        ErrorCode::SignatureExpired,
        ErrorCode::SignatureReplayed,
        ErrorCode::WrongServerId,
        ErrorCode::InvalidToken,
        ErrorCode::TokenExpired,
        ErrorCode::TokenNotYetValid,
        ErrorCode::InvalidAudience,
        ErrorCode::OidcIssuerUntrusted,
        ErrorCode::OidcUnknownKey,
        ErrorCode::ApiKeyExpired,
        ErrorCode::ApiKeyRevoked,
        ErrorCode::UserDisabled,
        ErrorCode::AdminRequired,
        ErrorCode::AwsRoleDenied,
        ErrorCode::OidcClaimMissing,
        ErrorCode::OidcGroupMissing,
        ErrorCode::PriorityRequiresAdmin,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::InvalidState,
        ErrorCode::QuotaExceeded,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::JobIdTaken,
        ErrorCode::AmbiguousJobId,
        ErrorCode::LifetimeExceeded,
        ErrorCode::DiskExists,
        ErrorCode::DiskInUse,
        ErrorCode::SelfDisable,
        ErrorCode::UsernameTaken,
        ErrorCode::BookingUnavailable,
        ErrorCode::ConflictsWithBooking,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::ValidationError,
        ErrorCode::RateLimited,
        ErrorCode::InternalError,
        ErrorCode::ServiceUnavailable,
        ErrorCode::Unknown,
    ];
}
