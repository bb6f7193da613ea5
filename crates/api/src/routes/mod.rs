//! One module per endpoint (or per small group of closely related endpoints).

use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::require_api_key;
use crate::error::ApiError;
use crate::extract::checked_body;

pub mod admin;
pub mod agent;
pub mod auth;
pub mod cluster;
pub mod console_link;
pub mod disks;
pub mod health;
pub mod jobs;
pub mod keys;
pub mod me;

/// Registers every route. Public routes first; everything under `/v1` except the logins requires
/// an API key, checked by middleware before any extractor runs.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::root)
        .service(health::health)
        .service(health::livez)
        .service(health::readyz)
        .configure(crate::openapi::configure)
        .configure(crate::console::configure)
        .service(
            web::scope("/v1")
                .service(
                    web::scope("/auth")
                        .wrap(from_fn(checked_body))
                        .configure(auth::configure),
                )
                .service(
                    // The dev box agent's own token, not an API key.
                    web::scope("/agent")
                        .wrap(from_fn(checked_body))
                        .configure(agent::configure),
                )
                .service(
                    // The last wrap runs first: the key is checked before the body is read.
                    web::scope("")
                        .wrap(from_fn(checked_body))
                        .wrap(from_fn(require_api_key))
                        .configure(disks::configure)
                        .configure(admin::configure)
                        .configure(keys::configure)
                        .configure(me::configure)
                        .configure(jobs::configure)
                        .configure(cluster::configure)
                        .service(console_link::create_link),
                ),
        )
        .default_service(web::to(not_found));
}

/// What no route took: a documented path asked with another method is 405 with `Allow`;
/// anything else is 404.
async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    match crate::openapi::documented_methods(req.path()) {
        Some(allow) if !allow.contains(&req.method().as_str()) => Err(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allow: allow.to_vec(),
        }),
        _ => Err(no_such_endpoint()),
    }
}

/// The answer for a path that leads nowhere (also what a non-admin gets for an admin page of the
/// console, so the two cannot be told apart).
pub(crate) fn no_such_endpoint() -> ApiError {
    ApiError::NotFound("no such endpoint; see /docs".into())
}
