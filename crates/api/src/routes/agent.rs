//! `POST /v1/agent/report`: the agent in a dev box reports what goes on in it (ADR 18).
//!
//! The agent authenticates with its reservation's own token (from the box's Secret), never an
//! API key: the token is good for this one route and this one reservation, and only while the
//! reservation is active. The report is stored (latest and a short history) and moves the
//! box's idle countdown; the expiry job decides from it.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, post, web};
use gpudev_api_types::ErrorCode;
use gpudev_domain::AgentToken;
use gpudev_domain::idle::{REPORT_INTERVAL, SILENT_AFTER};
use gpudev_store::activity;

use crate::audit::RequestCtx;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::read_json;
use crate::state::AppState;

pub use gpudev_api_types::agent::{AgentReport, AgentReportAnswer, GpuSample};

/// Registers the agent's route (outside the API-key scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(report);
}

/// Records one report of a dev box's agent: open SSH sessions, Jupyter connections, each GPU's
/// utilisation and memory, uptime. Authenticated by the reservation's agent token
/// (`Authorization: Bearer …`), not an API key. The answer says whether the report counted as
/// activity and, while the box is idle, when it will be released.
#[utoipa::path(post, path = "/v1/agent/report", tag = "agent", security(("agent_token" = [])),
    request_body = AgentReport,
    responses(
        (status = 200, body = AgentReportAnswer),
        (status = 401, body = ErrorBody, description = "no token, or not the token of an active reservation"),
        (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
#[post("/report")]
pub async fn report(
    req: HttpRequest,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    if let Some(ip) = ctx.client_ip
        && let Some(wait) = state.limits.auth_failures_denied(ip)
    {
        return Err(crate::limits::too_many(
            wait,
            state.config.auth_failure_limit,
        ));
    }
    let token = bearer(&req)?;
    let hash = token.hash();
    state.limits.check_agent(&hash, &state.metrics).await?;
    // The body is read only once the token could be ours and within its rate.
    let report: AgentReport = read_json(&req, payload).await?;
    report
        .check()
        .map_err(|detail| ApiError::invalid("body", detail))?;
    let idle = &state.config.idle;
    let active = report.is_active(idle.gpu_percent);
    let stored = serde_json::to_value(&report).map_err(ApiError::internal)?;
    let db = state.db().await?;
    let recorded =
        activity::record_report(&*db, &hash, active, &stored, SILENT_AFTER.as_secs_f64()).await?;
    drop(db);
    let Some(recorded) = recorded else {
        if let Some(ip) = ctx.client_ip {
            state.limits.charge_auth_failure(ip, &state.metrics).await;
        }
        return Err(unauthorized(
            "the token is not that of an active reservation's dev box",
        ));
    };
    // What the owner reads next shows this report (other replicas learn of it from the change
    // table).
    state.jobs.invalidate_users([recorded.user_id]);
    if recorded.countdown_cancelled {
        tracing::info!(reservation_id = %recorded.reservation_id, "idle countdown stopped: in use again");
    }
    let limit = idle.limit_for(recorded.idle_minutes);
    Ok(HttpResponse::Ok().json(AgentReportAnswer {
        active,
        idle_since: recorded.idle_since,
        idle_ends_at: limit
            .zip(recorded.idle_since)
            .map(|(m, since)| since + chrono::Duration::minutes(i64::from(m))),
        next_report_seconds: REPORT_INTERVAL.as_secs(),
    }))
}

/// The agent token of `Authorization: Bearer …`; one that cannot be ours is refused before any
/// lookup.
fn bearer(req: &HttpRequest) -> Result<AgentToken, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing Authorization: Bearer <agent token>"))?;
    let raw = value
        .to_str()
        .map_err(|_| unauthorized("Authorization must be: Bearer <agent token>"))?;
    AgentToken::from_authorization(raw)
        .map_err(|_| unauthorized("Authorization must be: Bearer <agent token>"))
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::Unauthorized {
        code: ErrorCode::InvalidToken,
        detail: detail.to_owned(),
    }
}
