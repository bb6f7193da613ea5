//! `POST /v1/jobs/{job_id}/extend`

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, post, web};
use gpudev_domain::{Hours, RequestError, ReservationStatus, check_extension};
use gpudev_store::QueueMessage;
use gpudev_store::StoreError;
use gpudev_store::reservations::{self, ExtendCall, ExtendRecord, Extension, Reservation};

use super::lookup::{Visibility, find_job};
use super::request::{canonical_hash, request_error};
use super::submit::{cli_version, idempotency_key};
use super::{Applies, JobActionResponse, wrong_state};
use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;

pub use gpudev_api_types::jobs::ExtendRequest;

const ONLY_LIVE: &str = "only a queued, preparing or active job can be extended";

/// Extends a live job, in the database in this request, with an `extend` event. An active job's
/// `expires_at` moves (expiry warnings are sent again before the new end) and a message tells
/// the processor; a queued or preparing job runs that much longer once it starts (`applies`
/// says which). Refused with 409 for a job that has ended or when its total lifetime would pass
/// the configured maximum.
///
/// `Idempotency-Key`: the same key (per user and job) within 24 hours extends once; a repeat
/// answers the first result again, and the same key with other hours is 409.
///
/// A request that does not identify a gpudev client (no `Idempotency-Key`, `X-CLI-Version`, or
/// `gpu-dev/` or `gpudev-client/` User-Agent: the original client) books the hours at once, but
/// an active job's `expires_at` moves `EXTEND_DEFER_SECONDS` later, when the processor applies
/// it (`applies: shortly`, and `expires_at` is the end it will have): that client judges the
/// outcome by `expires_at` changing between its polls (ADR 15).
#[utoipa::path(post, path = "/v1/jobs/{job_id}/extend", tag = "jobs", security(("bearer" = [])),
    params(("job_id" = String, Path, description = "full id, or a unique prefix of at least 8 characters"),
        ("Idempotency-Key" = Option<String>, Header,
            description = "retries with the same key and body within 24 h extend once and return the first answer")),
    request_body = ExtendRequest,
    responses(
        (status = 200, body = JobActionResponse, description = "extended; for an active job `expires_at` is the new end"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "ended (invalid_state), past the lifetime cap (lifetime_exceeded), the Idempotency-Key was used with other hours (idempotency_key_reused), or it would run into a booking of the same GPUs (conflicts_with_booking)"),
        (status = 422, body = ErrorBody, description = "extension_hours out of range, or a malformed Idempotency-Key"),
    ))]
#[post("/jobs/{job_id}/extend")]
pub async fn extend_job(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<ExtendRequest>,
) -> ApiResult<HttpResponse> {
    let key = idempotency_key(&req)?;
    let gpudev_client = from_gpudev_client(&req, key.is_some());
    let answer = extend(
        &state,
        &caller,
        &ctx,
        &path,
        body.extension_hours,
        key,
        gpudev_client,
    )
    .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Extends the caller's job `raw` names by `extension_hours`: what `POST /v1/jobs/{id}/extend`
/// does, and what the console's extend form does with the same rules. `gpudev_client` is false
/// for the original client, whose extension of an active job applies a moment later (ADR 15).
pub(crate) async fn extend(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestCtx,
    raw: &str,
    extension_hours: f64,
    key: Option<String>,
    gpudev_client: bool,
) -> ApiResult<JobActionResponse> {
    let limits = &state.config.limits;
    let hours = Hours::parse(extension_hours, limits)
        .map_err(|e| request_error(RequestError::Extension(e)))?;
    let request_hash = canonical_hash(&serde_json::json!({ "extension_hours": hours.as_hours() }));
    let defer = (!gpudev_client && !state.config.extend_defer.is_zero())
        .then_some(state.config.extend_defer);
    let mut db = state.db().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    let r = find_job(&tx, caller, raw, Visibility::Own).await?;
    let call = ExtendCall {
        reservation_id: r.reservation_id,
        user_id: Some(caller.user_id),
        hours: hours.as_hours(),
        max_lifetime_hours: limits.max_lifetime_hours,
        actor: caller.username.as_str(),
        idempotency_key: key.as_deref(),
        request_hash: Some(&request_hash),
        defer,
    };
    if key.is_none() {
        if r.status.is_terminal() {
            return Err(wrong_state(&r, ONLY_LIVE));
        }
        check_extension(r.duration_hours + r.extended_hours, hours, limits).map_err(lifetime)?;
    }
    let (extended, record) = match reservations::extend_request(&tx, &call).await? {
        Extension::Applied {
            reservation,
            request,
        } => {
            // Refused, the transaction rolls back: nothing of the extension is kept.
            super::booking::extension_keeps_bookings(state, &r, hours.as_hours()).await?;
            (*reservation, request)
        }
        Extension::Refused(now) => return Err(refused(&now, hours, limits)),
        Extension::Repeated(first) => return repeated(&first, &request_hash, &r),
    };
    let msg_id = reservations::send_hint(
        &tx,
        &state.config.queue,
        &extended,
        QueueMessage::Extend,
        serde_json::json!({
            "extension_hours": hours.as_hours(),
            "expires_at": record.expires_at,
        }),
    )
    .await?;
    audit::record(
        &tx,
        Some(caller),
        caller.username.as_str(),
        None,
        ctx,
        Audit {
            action: "reservation.extend",
            target_type: Some("reservation"),
            target_id: Some(r.reservation_id.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({
                "extension_hours": hours.as_hours(),
                "expires_at": record.expires_at,
                "applies": record.applies,
                "idempotency_key": key.is_some(),
                "msg_id": msg_id,
            })),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    let total = extended.duration_hours + extended.extended_hours;
    Ok(answer(&record, &extended.status, total, false))
}

/// The answer for an accepted extension (`repeat`: a retry answered from the first's record).
fn answer(
    record: &ExtendRecord,
    status: &ReservationStatus,
    total_hours: f64,
    repeat: bool,
) -> JobActionResponse {
    let id = record.reservation_id;
    let hours = record.extension_hours;
    let applies = match record.applies.as_str() {
        "now" => Applies::Now,
        "shortly" => Applies::Shortly,
        _ => Applies::AtStart,
    };
    let mut message = match (applies, record.expires_at) {
        (Applies::Now, Some(until)) => format!(
            "Job {id} extended by {hours} h; it now expires at {}",
            until.to_rfc3339()
        ),
        (Applies::Shortly, Some(until)) => format!(
            "Job {id} extended by {hours} h; its end moves to {} within moments",
            until.to_rfc3339()
        ),
        _ => format!(
            "Job {id} extended by {hours} h; it is {status} and will run for {total_hours} h \
             once it starts"
        ),
    };
    if repeat {
        message = format!("Already extended with this Idempotency-Key; nothing added. {message}",);
    }
    JobActionResponse {
        job_id: id,
        action: "extend".into(),
        status: "extended".into(),
        message,
        expires_at: record.expires_at,
        applies,
    }
}

/// A repeat of an earlier extension's key: its answer again (with the job as it is now), or 409
/// when the hours differ.
fn repeated(
    first: &ExtendRecord,
    request_hash: &str,
    now: &Reservation,
) -> ApiResult<JobActionResponse> {
    if first.request_hash.as_deref() != Some(request_hash) {
        return Err(ApiError::conflict(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used to extend this job by other hours; use a new key",
        ));
    }
    let total = now.duration_hours + now.extended_hours;
    Ok(answer(first, &now.status, total, true))
}

/// True for a request from a client that knows gpudev's API: it sent an `Idempotency-Key`, an
/// `X-CLI-Version`, or the User-Agent of gpudev's CLI or client library.
fn from_gpudev_client(req: &HttpRequest, has_key: bool) -> bool {
    if has_key || cli_version(req).is_some() {
        return true;
    }
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| {
            ua.split_whitespace()
                .any(|p| p.starts_with("gpudev-client/"))
        })
}

fn lifetime(e: RequestError) -> ApiError {
    ApiError::conflict(ErrorCode::LifetimeExceeded, e.to_string())
}

/// Why the guarded update refused: the job changed since it was read.
fn refused(now: &Reservation, hours: Hours, limits: &gpudev_domain::Limits) -> ApiError {
    if now.status.is_terminal() {
        return wrong_state(now, ONLY_LIVE);
    }
    match check_extension(now.duration_hours + now.extended_hours, hours, limits) {
        Err(e) => lifetime(e),
        Ok(()) => ApiError::conflict(
            ErrorCode::LifetimeExceeded,
            "the job's lifetime changed while extending; try again",
        ),
    }
}
