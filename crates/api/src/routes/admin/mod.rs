//! `/v1/admin/*`: operator routes. Every handler starts with `caller.require_admin()?`, so a
//! non-admin gets 403 before anything else happens.

use actix_web::web;

use crate::error::ApiError;

pub mod audit;
pub mod jobs;
pub mod keys;
pub mod usage;
pub mod users;

/// Registers the admin routes (inside the authenticated scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(users::list_users)
        .service(users::disable_user)
        .service(users::enable_user)
        .service(keys::list_keys)
        .service(keys::revoke_key)
        .service(jobs::list_all_jobs)
        .service(jobs::cancel_any_job)
        .service(usage::usage_report)
        .service(audit::audit_log);
}

/// Parses an RFC 3339 time from a query parameter.
pub(crate) fn parse_time(
    field: &str,
    raw: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    raw.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|_| {
                ApiError::invalid(
                    field,
                    format!("{field} must be an RFC 3339 time such as 2026-01-31T00:00:00Z"),
                )
            })
    })
    .transpose()
}
