//! `POST /v1/console/links`: a one-time link that signs the caller in to the web console.

use actix_web::{HttpResponse, post, web};
use gpudev_domain::ConsoleSecret;
use gpudev_store::console;

use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::console::LINK_TTL;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

pub use gpudev_api_types::console::ConsoleLink;

/// A sign-in link for the caller, for `gpu-dev console`: it works once, within two minutes, and
/// only while the caller's key is not revoked. Open `path` on this server in a browser. No body
/// is needed.
#[utoipa::path(post, path = "/v1/console/links", tag = "console", security(("bearer" = [])),
    responses(
        (status = 200, body = ConsoleLink),
        (status = 401, body = ErrorBody),
    ))]
#[post("/console/links")]
pub async fn create_link(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let token = ConsoleSecret::generate().map_err(ApiError::internal)?;
    let mut db = state.db().await?;
    let tx = db
        .transaction()
        .await
        .map_err(gpudev_store::StoreError::from)?;
    let expires_at = console::create_link(
        &tx,
        &token.hash(),
        caller.user_id,
        caller.key_id,
        LINK_TTL.as_secs_f64(),
    )
    .await?;
    audit::record(
        &tx,
        Some(&caller),
        caller.username.as_str(),
        None,
        &ctx,
        Audit {
            action: "console.link",
            target_type: Some("user"),
            target_id: Some(caller.user_id.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({ "expires_at": expires_at })),
        },
    )
    .await?;
    tx.commit().await.map_err(gpudev_store::StoreError::from)?;
    Ok(HttpResponse::Ok().json(ConsoleLink {
        path: format!("/ui/signin/{}", token.expose()),
        expires_at,
    }))
}
