//! `POST /v1/keys/rotate`

use actix_web::http::header::{CACHE_CONTROL, PRAGMA};
use actix_web::{HttpResponse, post, web};
use gpudev_domain::ApiKey;
use gpudev_store::StoreError;
use gpudev_store::api_keys::{self, KeyRejection, NewKey};

use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::read_optional_json;
use crate::state::AppState;

pub use gpudev_api_types::keys::{RotateRequest, RotateResponse};

/// Issues a new key for the caller with a fresh lifetime. It inherits the current key's
/// authentication method and rate limit; the current key stays valid unless `revoke_current`.
#[utoipa::path(post, path = "/v1/keys/rotate", tag = "keys", security(("bearer" = [])),
    request_body(content = Option<RotateRequest>, description = "optional; an empty body means {}"),
    responses(
        (status = 200, body = RotateResponse, description = "the new key (shown once)"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
#[post("/keys/rotate")]
pub async fn rotate_key(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let req: RotateRequest = read_optional_json(payload).await?;
    let ttl_hours = state.config.api_key_ttl_hours;
    let key = ApiKey::generate().map_err(ApiError::internal)?;
    let description = format!("rotated from key {}", caller.key_id);

    let mut db = state.db().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    // The key may have been revoked since it authenticated this request (or by a concurrent
    // rotation): a revoked key must not mint a successor.
    api_keys::claim_for_rotation(&tx, caller.key_id, caller.user_id, req.revoke_current)
        .await?
        .map_err(|rejection| match rejection {
            KeyRejection::Expired => ApiError::Forbidden {
                code: ErrorCode::ApiKeyExpired,
                detail: "API key has expired".into(),
            },
            KeyRejection::Revoked | KeyRejection::Unknown | KeyRejection::UserDisabled => {
                ApiError::Forbidden {
                    code: ErrorCode::ApiKeyRevoked,
                    detail: "API key has been revoked".into(),
                }
            }
        })?;
    let record = api_keys::insert(
        &tx,
        caller.user_id,
        &key,
        &NewKey {
            ttl: chrono::Duration::hours(i64::from(ttl_hours)),
            description: Some(&description),
            auth_method: &caller.key_auth_method,
            auth_issuer: caller.key_auth_issuer.as_deref(),
            // A per-key limit set by an operator must not be shed by rotating.
            rate_limit_per_minute: caller.rate_limit_per_minute,
        },
    )
    .await?;
    let revoked_key_id = req.revoke_current.then_some(caller.key_id);
    audit::record(
        &tx,
        Some(&caller),
        caller.username.as_str(),
        None,
        &ctx,
        Audit {
            action: "key.rotate",
            target_type: Some("api_key"),
            target_id: Some(record.key_id.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({
                "from_key_id": caller.key_id,
                "revoked_current": req.revoke_current,
                "key_prefix": record.key_prefix,
                "expires_at": record.expires_at,
            })),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    if req.revoke_current {
        state.keys.invalidate_user(caller.user_id);
    }
    state
        .metrics
        .keys_issued
        .with_label_values(&["rotate"])
        .inc();

    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"))
        .json(RotateResponse {
            api_key: key.expose_secret().to_owned(),
            key_id: record.key_id,
            key_prefix: record.key_prefix,
            user_id: caller.user_id,
            username: caller.username.to_string(),
            expires_at: record.expires_at,
            ttl_hours,
            revoked_key_id,
        }))
}
