//! CORS: closed unless origins are configured.

use actix_cors::Cors;
use actix_web::http::{Method, header};

/// Browsers may call the API only from `origins`. With none configured no origin is allowed, so
/// cross-origin browser calls fail: the API serves the CLI, not web pages.
pub fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .allowed_header("idempotency-key")
        .allowed_header("x-request-id")
        .expose_headers(["x-request-id", "retry-after", "location"])
        .max_age(600);
    for o in origins {
        cors = cors.allowed_origin(o);
    }
    cors
}
