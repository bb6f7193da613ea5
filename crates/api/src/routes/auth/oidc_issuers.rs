//! `GET /v1/auth/oidc`: the OIDC issuers this server trusts and the client id to use with each,
//! so `gpu-dev login --oidc` needs no settings of its own.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// One trusted issuer.
#[derive(Debug, Serialize, ToSchema)]
pub struct OidcIssuerInfo {
    /// The issuer identifier (its discovery document is under `/.well-known/openid-configuration`).
    pub issuer: String,
    /// The OAuth client id public clients such as the CLI use.
    pub client_id: String,
}

/// The trusted issuers (empty when OIDC login is off).
#[derive(Debug, Serialize, ToSchema)]
pub struct OidcIssuers {
    /// In configuration order; the CLI uses the first unless told otherwise.
    pub issuers: Vec<OidcIssuerInfo>,
}

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
