//! `GET /v1/admin/keys?user=`, `DELETE /v1/admin/keys/{id}`.

use actix_web::{HttpResponse, delete, get, web};
use gpudev_store::api_keys::{self, KeyRecord};
use gpudev_store::users;

use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

pub use gpudev_api_types::admin::{AdminKey, AdminKeyList, KeyQuery};

/// API keys of every user (metadata only: never a secret or a hash).
#[utoipa::path(get, path = "/v1/admin/keys", tag = "admin", security(("bearer" = [])),
    params(KeyQuery),
    responses(
        (status = 200, description = "keys, newest first", body = AdminKeyList),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "unknown user"),
    ))]
#[get("/admin/keys")]
pub async fn list_keys(
    caller: Caller,
    state: web::Data<AppState>,
    q: web::Query<KeyQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    let db = state.db().await?;
    let owner = match &q.user {
        Some(u) => Some(
            users::find_by_name(&*db, u)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("User {u} not found")))?,
        ),
        None => None,
    };
    let keys: Vec<AdminKey> = api_keys::list(&*db, owner.as_ref())
        .await?
        .into_iter()
        .map(body)
        .collect();
    Ok(HttpResponse::Ok().json(AdminKeyList {
        total: keys.len(),
        keys,
    }))
}

/// The answer's form of a stored key.
fn body(k: KeyRecord) -> AdminKey {
    AdminKey {
        key_id: k.key_id,
        user_id: k.user_id,
        username: k.username,
        key_prefix: k.key_prefix,
        description: k.description,
        auth_method: k.auth_method,
        auth_issuer: k.auth_issuer,
        created_at: k.created_at,
        expires_at: k.expires_at,
        last_used_at: k.last_used_at,
        revoked_at: k.revoked_at,
        rate_limit_per_minute: k.rate_limit_per_minute,
    }
}

/// Revokes any key.
#[utoipa::path(delete, path = "/v1/admin/keys/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "key id")),
    responses(
        (status = 200, description = "the revoked key", body = AdminKey),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
#[delete("/admin/keys/{id}")]
pub async fn revoke_key(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    let id = path.into_inner();
    let mut db = state.db().await?;
    let tx = db
        .transaction()
        .await
        .map_err(gpudev_store::StoreError::from)?;
    let key = api_keys::revoke(&tx, id, None).await.map_err(|e| match e {
        gpudev_store::StoreError::NotFound(_) => {
            ApiError::NotFound(format!("API key {id} not found"))
        }
        other => other.into(),
    })?;
    audit::record(
        &tx,
        Some(&caller),
        caller.username.as_str(),
        None,
        &ctx,
        Audit {
            action: "admin.key.revoke",
            target_type: Some("api_key"),
            target_id: Some(id.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({"owner": key.username, "key_prefix": key.key_prefix})),
        },
    )
    .await?;
    tx.commit().await.map_err(gpudev_store::StoreError::from)?;
    state.keys.invalidate_user(key.user_id);
    Ok(HttpResponse::Ok().json(body(key)))
}
