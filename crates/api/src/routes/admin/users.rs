//! `GET /v1/admin/users`, `POST /v1/admin/users/{id}/disable`, `POST /v1/admin/users/{id}/enable`.

use actix_web::{HttpResponse, get, post, web};
use gpudev_store::users::{self, Role, User};

use crate::audit::{self, Actor, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;

pub use gpudev_api_types::admin::{AdminUser, AdminUserList};

/// Every user.
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "users by name", body = AdminUserList),
        (status = 403, body = ErrorBody, description = "not an admin"),
    ))]
#[get("/admin/users")]
pub async fn list_users(caller: Caller, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    let db = state.db().await?;
    let users: Vec<AdminUser> = users::list(&*db).await?.into_iter().map(body).collect();
    Ok(HttpResponse::Ok().json(AdminUserList {
        total: users.len(),
        users,
    }))
}

/// The answer's form of a stored user.
fn body(u: User) -> AdminUser {
    AdminUser {
        user_id: u.user_id,
        username: u.username.to_string(),
        email: u.email,
        aws_arn: u.aws_arn,
        oidc_issuer: u.oidc_issuer,
        oidc_subject: u.oidc_subject,
        role: u.role.as_str().to_owned(),
        is_active: u.is_active,
        github_username: u.github_username.map(|g| g.to_string()),
        created_at: u.created_at,
        last_login_at: u.last_login_at,
    }
}

async fn resolve(db: &impl gpudev_store::Db, id: &str) -> ApiResult<User> {
    let found = match id.parse::<i64>() {
        Ok(n) => users::find_by_id(db, n).await?,
        Err(_) => users::find_by_name(db, id).await?,
    };
    found.ok_or_else(|| ApiError::NotFound(format!("User {id} not found")))
}

async fn set_active(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    id: String,
    active: bool,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    let user = set_user_active(&state, &Actor::from(&caller), &ctx, &id, active).await?;
    Ok(HttpResponse::Ok().json(body(user)))
}

/// Enables or disables the user `id` (user id or username) for an admin `actor`, with its audit
/// record, in one transaction. Disabling revokes the user's keys and ends their console sessions;
/// an admin cannot disable themselves (409). The caller has checked that `actor` is an admin.
pub async fn set_user_active(
    state: &AppState,
    actor: &Actor<'_>,
    ctx: &RequestCtx,
    id: &str,
    active: bool,
) -> ApiResult<User> {
    change_user(state, actor, ctx, id, Change::Active(active)).await
}

/// Gives the user `id` (user id or username) `role` for an admin `actor`, with its audit record
/// (`admin.user.role`), in one transaction. The caller has checked that `actor` is an admin and
/// is not taking their own admin role.
pub async fn set_user_role(
    state: &AppState,
    actor: &Actor<'_>,
    ctx: &RequestCtx,
    id: &str,
    role: Role,
) -> ApiResult<User> {
    change_user(state, actor, ctx, id, Change::Role(role)).await
}

/// What an admin changes about a user.
#[derive(Debug, Clone, Copy)]
enum Change {
    Active(bool),
    Role(Role),
}

async fn change_user(
    state: &AppState,
    actor: &Actor<'_>,
    ctx: &RequestCtx,
    id: &str,
    change: Change,
) -> ApiResult<User> {
    let mut db = state.db().await?;
    let tx = db
        .transaction()
        .await
        .map_err(gpudev_store::StoreError::from)?;
    let user = resolve(&tx, id).await?;
    let name = user.username.as_str();
    let (user, action, details) = match change {
        Change::Active(false) if Some(user.user_id) == actor.user_id => {
            return Err(ApiError::conflict(
                ErrorCode::SelfDisable,
                "admins cannot disable themselves",
            ));
        }
        Change::Active(active) => (
            users::set_active(&tx, name, active).await?,
            if active {
                "admin.user.enable"
            } else {
                "admin.user.disable"
            },
            None,
        ),
        Change::Role(role) => (
            users::set_role(&tx, name, role).await?,
            "admin.user.role",
            Some(serde_json::json!({ "role": role.as_str() })),
        ),
    };
    audit::record_by(
        &tx,
        actor,
        ctx,
        Audit {
            action,
            target_type: Some("user"),
            target_id: Some(user.username.to_string()),
            outcome: "success",
            details,
        },
    )
    .await?;
    tx.commit().await.map_err(gpudev_store::StoreError::from)?;
    // Other replicas learn of it through the database notification; this one must not answer the
    // next request from its cache either.
    state.keys.invalidate_user(user.user_id);
    Ok(user)
}

/// Disables a user (by id or username): their keys are revoked at once and logins are refused.
#[utoipa::path(post, path = "/v1/admin/users/{id}/disable", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id or username")),
    responses(
        (status = 200, description = "the user", body = AdminUser),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "self_disable: an admin disabling themselves"),
    ))]
#[post("/admin/users/{id}/disable")]
pub async fn disable_user(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    set_active(caller, ctx, state, path.into_inner(), false).await
}

/// Enables a disabled user (by id or username). Their old keys stay revoked.
#[utoipa::path(post, path = "/v1/admin/users/{id}/enable", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id or username")),
    responses(
        (status = 200, description = "the user", body = AdminUser),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
#[post("/admin/users/{id}/enable")]
pub async fn enable_user(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    set_active(caller, ctx, state, path.into_inner(), true).await
}
