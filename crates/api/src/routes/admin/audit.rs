//! `GET /v1/admin/audit?user&action&from&to`

use actix_web::{HttpResponse, get, web};
use gpudev_store::audit::{self, AuditFilter, AuditRecord};

use super::parse_time;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

pub use gpudev_api_types::admin::{AuditEntry, AuditPage, AuditQuery};

/// The audit log, newest first.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "entries, newest first", body = AuditPage),
        (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
#[get("/admin/audit")]
pub async fn audit_log(
    caller: Caller,
    state: web::Data<AppState>,
    q: web::Query<AuditQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    Ok(HttpResponse::Ok().json(search(&state, &q).await?))
}

/// The audit entries `q` asks for, newest first (422 for a filter or page out of range).
pub async fn search(state: &AppState, q: &AuditQuery) -> ApiResult<AuditPage> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::invalid("offset", "offset must not be negative"));
    }
    for (field, value) in [("user", &q.user), ("action", &q.action)] {
        if value.as_deref().is_some_and(|v| v.contains('\0')) {
            return Err(ApiError::invalid(
                field,
                format!("{field} must not contain a NUL character"),
            ));
        }
    }
    let filter = AuditFilter {
        actor: q.user.clone(),
        action: q.action.clone(),
        from: parse_time("from", q.from.as_deref())?,
        to: parse_time("to", q.to.as_deref())?,
        limit,
        offset,
    };
    let db = state.db().await?;
    let entries = audit::search(&*db, &filter).await?;
    Ok(AuditPage {
        entries: entries.into_iter().map(body).collect(),
        limit,
        offset,
    })
}

/// The answer's form of a stored entry.
fn body(e: AuditRecord) -> AuditEntry {
    AuditEntry {
        audit_id: e.audit_id,
        occurred_at: e.occurred_at,
        actor: e.actor,
        auth_method: e.auth_method,
        auth_issuer: e.auth_issuer,
        action: e.action,
        target_type: e.target_type,
        target_id: e.target_id,
        outcome: e.outcome,
        details: e.details,
    }
}
