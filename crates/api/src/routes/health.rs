//! `GET /`, `GET /health`, `GET /livez`, `GET /readyz`.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};

use crate::state::AppState;

pub use gpudev_api_types::health::{AuthLinks, Health, ServiceInfo};

/// Service information.
#[utoipa::path(get, path = "/", tag = "service", responses((status = 200, body = ServiceInfo)))]
#[get("/")]
pub async fn root() -> HttpResponse {
    HttpResponse::Ok().json(ServiceInfo {
        service: "gpudev-api".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        docs: "/docs/".into(),
        openapi: "/openapi.json".into(),
        health: "/health".into(),
        auth: AuthLinks {
            aws_login: "/v1/auth/aws-login".into(),
            aws_iam: "/v1/auth/aws-iam".into(),
            oidc_login: "/v1/auth/oidc-login".into(),
            oidc_issuers: "/v1/auth/oidc".into(),
        },
    })
}

async fn check(state: &AppState) -> Health {
    let probe = async {
        let db = state.pool.get().await.map_err(|e| e.to_string())?;
        // One statement answers for both: the database replies, and the queue exists.
        let queue = match state.config.queue.exists(&*db).await {
            Ok(true) => "healthy".to_owned(),
            Ok(false) => "missing".to_owned(),
            // The server answered with an error (PGMQ missing, say): the database itself is up.
            Err(gpudev_store::StoreError::Db(e)) if e.as_db_error().is_some() => {
                format!("unknown: {e}")
            }
            Err(e) => return Err(e.to_string()),
        };
        Ok::<_, String>(queue)
    };
    let (database, queue) = match tokio::time::timeout(Duration::from_secs(3), probe).await {
        Ok(Ok(queue)) => ("healthy".to_owned(), queue),
        Ok(Err(e)) => (format!("unavailable: {e}"), "unknown".to_owned()),
        Err(_) => ("unavailable: timed out".to_owned(), "unknown".to_owned()),
    };
    let status = if database == "healthy" && queue == "healthy" {
        "healthy"
    } else {
        "unhealthy"
    };
    Health {
        status: status.into(),
        database,
        queue,
        timestamp: chrono::Utc::now(),
    }
}

/// 200 when the database and the queue answer, 503 naming the failing part otherwise.
#[utoipa::path(get, path = "/health", tag = "service", responses(
    (status = 200, body = Health, description = "database and queue answer"),
    (status = 503, body = Health, description = "a dependency is failing; the body names it"),
))]
#[get("/health")]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let h = check(&state).await;
    if h.status == "healthy" {
        HttpResponse::Ok().json(h)
    } else {
        HttpResponse::ServiceUnavailable().json(h)
    }
}

/// Liveness: the process serves requests.
#[utoipa::path(get, path = "/livez", tag = "service", responses((status = 200, description = "alive")))]
#[get("/livez")]
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "alive"}))
}

/// Readiness: 503 while draining on shutdown or when the database is unreachable.
#[utoipa::path(get, path = "/readyz", tag = "service", responses(
    (status = 200, description = "ready for traffic"),
    (status = 503, description = "draining or the database is unreachable"),
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.is_draining() {
        return HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "draining"}));
    }
    let h = check(&state).await;
    if h.database == "healthy" {
        HttpResponse::Ok().json(serde_json::json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "not ready", "database": h.database}))
    }
}
