//! `/v1/auth`: the logins, reachable without an API key (rate limited per client address).

use actix_web::web;

pub mod aws_iam;
pub mod aws_login;
pub mod issue_key;
pub mod oidc_issuers;
pub mod oidc_login;
pub mod sts;

/// Registers the login routes (inside the unauthenticated `/v1/auth` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(aws_login::aws_login)
        .service(aws_iam::aws_iam)
        .service(oidc_login::oidc_login)
        .service(oidc_issuers::oidc_issuers)
        .service(aws_iam::aws_login_info);
}
