//! `GET /v1/auth/oidc`: the OIDC issuers this server trusts and the client id to use with each,
//! so `gpu-dev login --oidc` needs no settings of its own.

use actix_web::{HttpResponse, get, web};

use crate::state::AppState;

pub use gpudev_api_types::auth::{OidcIssuerInfo, OidcIssuers};

/// Lists the OIDC issuers whose ID tokens `POST /v1/auth/oidc-login` accepts. Public: issuer
/// URLs and client ids of public clients are not secrets.
#[utoipa::path(get, path = "/v1/auth/oidc", tag = "auth",
    responses((status = 200, body = OidcIssuers, description = "the trusted issuers")))]
#[get("/oidc")]
pub async fn oidc_issuers(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(OidcIssuers {
        issuers: state
            .oidc
            .issuers()
            .map(|i| OidcIssuerInfo {
                issuer: i.issuer.clone(),
                client_id: i.client_id.clone(),
            })
            .collect(),
    })
}
