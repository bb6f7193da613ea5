//! `GET /v1/keys`

use actix_web::{HttpResponse, get, web};
use chrono::Utc;
use gpudev_store::{api_keys, users};

use super::KeyInfo;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

pub use gpudev_api_types::keys::KeyList;

/// The caller's own API keys: metadata only, never a key or a hash.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", security(("bearer" = [])),
    responses(
        (status = 200, body = KeyList),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
#[get("/keys")]
pub async fn list_own_keys(caller: Caller, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let db = state.db().await?;
    let user = users::find_by_name(&*db, caller.username.as_str())
        .await?
        .filter(|u| u.user_id == caller.user_id)
        .ok_or_else(|| ApiError::NotFound(format!("User {} not found", caller.username)))?;
    let now = Utc::now();
    let keys: Vec<KeyInfo> = api_keys::list(&*db, Some(&user))
        .await?
        .into_iter()
        .map(|k| super::key_info(k, caller.key_id, now))
        .collect();
    Ok(HttpResponse::Ok().json(KeyList {
        total: keys.len(),
        keys,
    }))
}
