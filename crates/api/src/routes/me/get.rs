//! `GET /v1/me`

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use gpudev_store::StoreError;
use gpudev_store::users::{self, Role};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Who the caller is, how they authenticated, and how much of their quota they use.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// The user's id.
    pub user_id: i64,
    /// The user's name.
    pub username: String,
    /// `user` or `admin`.
    pub role: String,
    /// Contact address, when known.
    pub email: Option<String>,
    /// The AWS identity of the last AWS login.
    pub aws_arn: Option<String>,
    /// GitHub login whose public keys may be installed on dev boxes.
    pub github_username: Option<String>,
    /// When the user was first seen.
    pub created_at: DateTime<Utc>,
    /// Last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// The key that authenticated this request.
    pub current_key: CurrentKey,
    /// The per-user limits in force.
    pub quotas: Quotas,
    /// What counts against them now.
    pub usage: Usage,
}

/// The key that authenticated the request.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrentKey {
    /// Its id.
    pub key_id: i64,
    /// When it stops working (log in again or rotate before then).
    pub expires_at: DateTime<Utc>,
    /// How its session authenticated (`aws-login`, `aws-iam`, `admin`, …).
    pub auth_method: String,
    /// The OIDC issuer of that login, when it was one.
    pub auth_issuer: Option<String>,
}

/// Per-user limits (from the server's configuration).
#[derive(Debug, Serialize, ToSchema)]
pub struct Quotas {
    /// Most reservations queued, preparing or active at once.
    pub max_active_reservations_per_user: u32,
    /// Most GPUs over those reservations.
    pub max_gpus_per_user: u32,
}

/// Live use: reservations queued, preparing or active.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// Reservations queued, preparing or active.
    pub active_reservations: i64,
    /// GPUs over those reservations.
    pub gpus: i64,
}

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
    let user = users::find_by_name(&*db, &caller.username)
        .await?
        .filter(|u| u.user_id == caller.user_id)
        .ok_or_else(|| ApiError::NotFound(format!("User {} not found", caller.username)))?;
    let row = db
        .query_one(
            "SELECT count(*), coalesce(sum(gpu_count), 0)::bigint FROM reservations \
             WHERE user_id = $1 AND status IN ('queued', 'preparing', 'active')",
            &[&caller.user_id],
        )
        .await
        .map_err(StoreError::from)?;
    Ok(HttpResponse::Ok().json(MeResponse {
        user_id: user.user_id,
        username: user.username.to_string(),
        role: match user.role {
            Role::Admin => "admin".into(),
            Role::User => "user".into(),
        },
        email: user.email,
        aws_arn: user.aws_arn,
        github_username: user.github_username,
        created_at: user.created_at,
        last_login_at: user.last_login_at,
        current_key: CurrentKey {
            key_id: caller.key_id,
            expires_at: caller.key_expires_at,
            auth_method: caller.key_auth_method,
            auth_issuer: caller.key_auth_issuer,
        },
        quotas: Quotas {
            max_active_reservations_per_user: state.config.max_active_reservations_per_user,
            max_gpus_per_user: state.config.max_gpus_per_user,
        },
        usage: Usage {
            active_reservations: row.get(0),
            gpus: row.get(1),
        },
    }))
}
