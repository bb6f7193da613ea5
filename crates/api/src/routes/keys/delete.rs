//! `DELETE /v1/keys/{key_id}`

use actix_web::{HttpResponse, delete, web};
use chrono::Utc;
use gpudev_store::{StoreError, api_keys};

use super::KeyInfo;
use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Revokes one of the caller's keys (the current one too: that is a logout). Revoking a revoked
/// key again succeeds. Another user's key is 404, as if it did not exist.
#[utoipa::path(delete, path = "/v1/keys/{key_id}", tag = "keys", security(("bearer" = [])),
    params(("key_id" = i64, Path, description = "the key's id")),
    responses(
        (status = 200, body = KeyInfo, description = "the revoked key"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such key among the caller's"),
    ))]
// Only digits: `/v1/keys/rotate` and other words are not key ids, so another method on them
// reaches the 405 answer instead of a refused id.
#[delete("/keys/{key_id:\\d+}")]
pub async fn delete_key(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(revoke(&state, &caller, &ctx, path.into_inner()).await?))
}

/// Revokes `caller`'s key `key_id`: what `DELETE /v1/keys/{key_id}` does, and the console's
/// form. Another user's key is not found.
pub(crate) async fn revoke(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestCtx,
    key_id: i64,
) -> ApiResult<KeyInfo> {
    let mut db = state.db().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    let record = api_keys::revoke(&tx, key_id, Some(caller.user_id))
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => ApiError::NotFound(format!("API key {key_id} not found")),
            other => other.into(),
        })?;
    audit::record(
        &tx,
        Some(caller),
        caller.username.as_str(),
        None,
        ctx,
        Audit {
            action: "key.revoke",
            target_type: Some("api_key"),
            target_id: Some(key_id.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({
                "key_prefix": record.key_prefix,
                "current": key_id == caller.key_id,
            })),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    // Other replicas hear of it through the database notification; this one must not serve the
    // revoked key from its cache in the meantime.
    state.keys.invalidate_user(caller.user_id);
    Ok(super::key_info(record, caller.key_id, Utc::now()))
}
