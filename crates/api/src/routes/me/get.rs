//! `GET /v1/me`

use actix_web::{HttpResponse, get, web};
use gpudev_store::reservations;
use gpudev_store::users::{self, Role};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

pub use gpudev_api_types::me::{CurrentKey, MeResponse, Quotas, Usage};

/// The caller's identity, role, current key, quotas and usage.
#[utoipa::path(get, path = "/v1/me", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, body = MeResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
#[get("/me")]
pub async fn get_me(caller: Caller, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let db = state.db().await?;
    let user = users::find_by_name(&*db, caller.username.as_str())
        .await?
        .filter(|u| u.user_id == caller.user_id)
        .ok_or_else(|| ApiError::NotFound(format!("User {} not found", caller.username)))?;
    let load = reservations::user_load(&*db, caller.user_id).await?;
    let quotas = state.config.quotas;
    Ok(HttpResponse::Ok().json(MeResponse {
        user_id: user.user_id,
        username: user.username.to_string(),
        role: match user.role {
            Role::Admin => "admin".into(),
            Role::User => "user".into(),
        },
        email: user.email,
        aws_arn: user.aws_arn,
        github_username: user.github_username.map(|g| g.to_string()),
        created_at: user.created_at,
        last_login_at: user.last_login_at,
        current_key: CurrentKey {
            key_id: caller.key_id,
            expires_at: caller.key_expires_at,
            auth_method: caller.key_auth_method,
            auth_issuer: caller.key_auth_issuer,
        },
        quotas: Quotas {
            max_active_reservations_per_user: quotas.max_active_reservations_per_user.unwrap_or(0),
            max_gpus_per_user: quotas.max_gpus_per_user.unwrap_or(0),
            max_queued_reservations_per_user: state.config.max_queued_per_user.unwrap_or(0),
        },
        usage: Usage {
            active_reservations: load.reservations,
            gpus: load.gpus,
        },
    }))
}
