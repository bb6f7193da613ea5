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
    let keys = own_keys(&state, &caller).await?;
    Ok(HttpResponse::Ok().json(KeyList {
        total: keys.len(),
        keys,
    }))
}

/// `caller`'s own keys, newest first: what `GET /v1/keys` lists, and the console's page.
pub(crate) async fn own_keys(state: &AppState, caller: &Caller) -> ApiResult<Vec<KeyInfo>> {
    let db = state.db().await?;
    let user = users::find_by_name(&*db, caller.username.as_str())
        .await?
        .filter(|u| u.user_id == caller.user_id)
        .ok_or_else(|| ApiError::NotFound(format!("User {} not found", caller.username)))?;
    let now = Utc::now();
    Ok(api_keys::list(&*db, Some(&user))
        .await?
        .into_iter()
        .map(|k| super::key_info(k, caller.key_id, now))
        .collect())
}
