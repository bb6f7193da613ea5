//! `POST /v1/jobs/submit`

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::{DateTime, Utc};
use gpudev_domain::{Prediction, ReservationRequest};
use gpudev_store::reservations::{Checked, Checks, NewReservation, Quota, Reservation, Submitted};
use gpudev_store::{ReservationSecrets, SealedSecrets, SealingKeys};
use serde_json::Value;
use uuid::Uuid;

use super::request::{JobSubmission, canonical_hash, request_error, submission_error};
use crate::audit::RequestCtx;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;
use crate::submit_writer::{NO_SSH_KEY, SubmitRequest, booked_hours_refusal, refusal};

pub use gpudev_api_types::jobs::JobSubmitResponse;

/// Header that makes retries of a submit return the first result.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Submits a reservation. The row and its queue message are written in one transaction, together
/// with the quota check and the audit record, which concurrent submits share
/// ([`crate::submit_writer`]).
///
/// Compatibility with the original client: `GPU_TYPE`, `GPU_COUNT`, `GITHUB_USER`,
/// `JUPYTER_ENABLED` and `POD_NAME` inside `env_vars` fill the first-class fields when those are
/// absent, and `instance_type` alone names the GPU type. `RESERVATION_ID` inside `env_vars`
/// proposes the job id: a valid, unused UUID becomes the id; the same caller sending the same body
/// again gets that job back; any other reuse is 409. These variables never reach the dev box.
///
/// `Idempotency-Key`: the same key with the same body returns the original job (no second
/// reservation, no second message); the same key with a different body is 409.
///
/// `start_at` books the reservation for that time (ADR 19): it is accepted only when the
/// scheduler would promise it exactly that start now, and is otherwise refused with 409
/// `booking_unavailable` and `earliest_start`, the earliest start it would promise instead.
///
/// A dev box nobody could log in to is refused (422, nothing stored): when the caller has no
/// SSH key registered and neither the request (`github_user`, or `GITHUB_USER` in `env_vars`)
/// nor the caller's account names a GitHub user, the `detail` says how to fix it.
#[utoipa::path(post, path = "/v1/jobs/submit", tag = "jobs", request_body = JobSubmission,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "retries with the same key and body return the first job")),
    responses(
        (status = 200, body = JobSubmitResponse,
            headers(("Location" = String, description = "/v1/jobs/{job_id}"))),
        (status = 400, body = ErrorBody, description = "malformed JSON"),
        (status = 403, body = ErrorBody, description = "a positive priority needs an admin"),
        (status = 409, body = ErrorBody,
            description = "quota_exceeded, idempotency_key_reused or job_id_taken; \
                booking_unavailable for a `start_at` that cannot be honoured, with \
                `earliest_start`, the earliest start that would be"),
        (status = 415, body = ErrorBody, description = "the body is not JSON"),
        (status = 422, body = ErrorBody,
            description = "invalid field (unknown GPU types list the valid ones), or no SSH key \
                could reach the dev box: none registered and no GitHub user named"),
    ))]
#[post("/jobs/submit")]
pub async fn submit_job(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    let idempotency_key = idempotency_key(&req)?;
    let submitted = submit(
        &state,
        caller,
        ctx,
        body.into_inner(),
        idempotency_key,
        cli_version(&req),
    )
    .await?;
    Ok(answer(submitted))
}

/// Submits `body` (a [`JobSubmission`] as JSON) for `caller`: what `POST /v1/jobs/submit` does,
/// and what the console's reserve form does with the same rules.
pub(crate) async fn submit(
    state: &AppState,
    caller: Caller,
    ctx: RequestCtx,
    body: Value,
    idempotency_key: Option<String>,
    cli_version: Option<String>,
) -> ApiResult<JobSubmitResponse> {
    if !body.is_object() {
        return Err(ApiError::invalid(
            "body",
            "the request body must be a JSON object",
        ));
    }
    let request_hash = canonical_hash(&body);
    let mut submission: JobSubmission = serde_json::from_value(body)
        .map_err(|e| ApiError::invalid("body", format!("invalid request body: {e}")))?;
    let config = &state.config;
    let start_at = super::booking::booked_start(
        submission.start_at.take().as_deref(),
        config.bookings,
        Utc::now(),
    )?;
    let resolved = submission
        .resolve(&config.catalog)
        .map_err(submission_error)?;
    if resolved.raw.priority > 0 && !caller.is_admin() {
        return Err(ApiError::Forbidden {
            code: ErrorCode::PriorityRequiresAdmin,
            detail: "only admins may set a priority above 0; use 0 or a negative value".into(),
        });
    }
    let raw = resolved.raw.clone();
    let request = ReservationRequest::new(&config.catalog, &config.limits, resolved.raw)
        .map_err(request_error)?;
    // One node of the original client's multi-node reservation: the request becomes the whole
    // group's (ADR 16).
    let member = super::group::member_of(&request);
    if member.is_some() && start_at.is_some() {
        return Err(ApiError::invalid(
            "start_at",
            "one node of a multi-node group cannot be booked; book the whole group in one \
             request (gpu_count over whole nodes) instead",
        ));
    }
    let request = match &member {
        None => request,
        Some(m) => {
            let mut raw = raw;
            raw.gpu_count = request.gpu_count().saturating_mul(m.size());
            raw.name = Some(m.base().to_owned());
            ReservationRequest::new(&config.catalog, &config.limits, raw).map_err(|e| {
                ApiError::invalid(
                    "name",
                    format!(
                        "it names node {} of {}, a group of {} whole {} nodes, which cannot be \
                         reserved: {e}",
                        m.index() + 1,
                        m.size(),
                        m.size(),
                        request.gpu_type()
                    ),
                )
            })?
        }
    };
    if let Some(max) = config.quotas.max_gpus_per_user
        && request.gpu_count() > max
    {
        return Err(quota_exceeded(format!(
            "{} GPUs is more than the {max} GPUs one user may hold",
            request.gpu_count(),
        )));
    }

    let proposed_or_new = resolved.proposed_id.unwrap_or_else(Uuid::new_v4);
    let secrets = ReservationSecrets {
        env: request.env().clone().into_map(),
        command: resolved.command,
    };
    let sealed = seal(config.secret_keys.as_ref(), proposed_or_new, &secrets)?;
    let mut new = NewReservation {
        reservation_id: proposed_or_new,
        user_id: caller.user_id,
        username: caller.username.clone(),
        name: request.name().cloned(),
        gpu_type: request.gpu_type().clone(),
        gpu_count: to_i32(request.gpu_count()),
        node_count: to_i32(request.nodes()),
        duration_hours: request.duration().as_hours(),
        image: request.image().unwrap_or(&config.default_image).clone(),
        env_names: secrets.env.keys().cloned().collect(),
        disk_name: request.disk().cloned(),
        jupyter_enabled: request.jupyter(),
        github_user: request.github_user().cloned(),
        priority: request.priority(),
        idempotency_key: idempotency_key.clone(),
        cli_version,
        request_hash: Some(request_hash.clone()),
        secrets: sealed,
        disk_size_gb: resolved.disk_size_gb,
        queue_position: None,
        estimated_start_at: None,
        start_at,
    };
    // The queued cap is checked with the writes (row, event, secrets, queue message) in one
    // statement. Limits on what a user holds are the scheduler's: beyond them it waits.
    // So is whether the dev box could get an SSH key (ADR 17): no extra round trip for the
    // common case of a user with stored keys.
    let checks = Checks {
        quota: config.max_queued_per_user.map(|max| Quota {
            max_queued: i64::from(max),
        }),
        ssh_access: true,
        max_booked_gpu_hours: config.bookings.max_gpu_hours_per_user,
    };
    if let Some(m) = &member {
        return super::group::submit_member(state, new, m, checks, &caller, &ctx).await;
    }
    // Stored with the row, so the first poll shows what this answer shows. A booking is
    // refused here, with the earliest start that would be honoured, unless it is honoured.
    (new.queue_position, new.estimated_start_at) = match start_at {
        Some(at) => super::booking::honoured_standing(state, &new, at).await?,
        None => expected_standing(state, &new).await?,
    };
    let written = state
        .submits
        .write(SubmitRequest {
            new,
            checks,
            caller,
            ctx,
        })
        .await?;
    if matches!(written, Checked::Submitted(Submitted::Created { .. })) {
        state.live_counts.changed();
    }
    let (reservation, msg_id) = match written {
        Checked::Submitted(Submitted::Created {
            reservation,
            msg_id,
        }) => (*reservation, msg_id),
        Checked::Submitted(Submitted::Existing(first)) => {
            return replay(*first, &request_hash, "Idempotency-Key");
        }
        Checked::IdTaken(Some(own)) => {
            return replay(*own, &request_hash, "RESERVATION_ID");
        }
        Checked::IdTaken(None) => return Err(id_taken(proposed_or_new)),
        Checked::OverQuota(limit) => return Err(quota_exceeded(refusal(limit))),
        Checked::NoSshAccess => return Err(ApiError::invalid("github_user", NO_SSH_KEY)),
        Checked::OverBookedHours { limit, booked } => {
            return Err(quota_exceeded(booked_hours_refusal(limit, booked)));
        }
    };
    // Durable and acknowledged from here.
    let (queue_position, estimated_start_time) = standing(&reservation);

    state
        .metrics
        .reservations_submitted
        .with_label_values(&[reservation.gpu_type.as_str()])
        .inc();
    tracing::info!(
        reservation_id = %reservation.reservation_id,
        gpu_type = %reservation.gpu_type,
        gpu_count = reservation.gpu_count,
        msg_id,
        "reservation submitted"
    );
    Ok(JobSubmitResponse {
        job_id: reservation.reservation_id,
        status: reservation.status.as_str().to_owned(),
        message: format!("Job submitted successfully to queue (message ID: {msg_id})"),
        queue_position,
        estimated_start_time,
    })
}

/// 200 with `Location`.
fn answer(body: JobSubmitResponse) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::LOCATION, format!("/v1/jobs/{}", body.job_id)))
        .json(body)
}

/// The first job again for a retry of the same request; 409 when the body differs.
fn replay(first: Reservation, request_hash: &str, what: &str) -> ApiResult<JobSubmitResponse> {
    if first.request_hash.as_deref() != Some(request_hash) {
        return Err(match what {
            "RESERVATION_ID" => id_taken(first.reservation_id),
            _ => ApiError::conflict(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used for a different request; use a new key",
            ),
        });
    }
    let (queue_position, estimated_start_time) = standing(&first);
    Ok(JobSubmitResponse {
        job_id: first.reservation_id,
        status: first.status.as_str().to_owned(),
        message: format!("Job already submitted (same {what} and request); nothing new was queued"),
        queue_position,
        estimated_start_time,
    })
}

/// The submit's environment values and command sealed for reservation `id` (ADR 12); `None`
/// when it has neither. A server without a key refuses them rather than store them in the clear.
fn seal(
    keys: Option<&SealingKeys>,
    id: Uuid,
    secrets: &ReservationSecrets,
) -> ApiResult<Option<SealedSecrets>> {
    if secrets.is_empty() {
        return Ok(None);
    }
    let keys = keys.ok_or_else(|| {
        ApiError::Unavailable(
            "this server cannot accept environment values or a command: it has no key to \
             encrypt them (SECRETS_ENCRYPTION_KEYS); ask its operator"
                .into(),
        )
    })?;
    keys.seal(id, secrets).map(Some).map_err(ApiError::internal)
}

/// The position and estimated start to report: those stored with the reservation (the
/// submit's own, until the scheduler's next pass writes its figures); none once it has left the
/// queue.
fn standing(r: &Reservation) -> (Option<i64>, Option<DateTime<Utc>>) {
    if r.status != gpudev_domain::ReservationStatus::Queued {
        return (None, None);
    }
    (r.queue_position.map(i64::from), r.estimated_start_at)
}

/// Where `new` will stand, by what the scheduler's next pass would do with it: its own code run
/// over the state its last pass published (ADR 5). `None` for the position when there is no
/// prediction (before the scheduler's first pass, while another submit's is being computed, or
/// for a request the next pass will fail): the row then gets its place by arrival.
async fn expected_standing(
    state: &AppState,
    new: &NewReservation,
) -> ApiResult<(Option<i32>, Option<DateTime<Utc>>)> {
    let Some(published) = state.queue.current(&state.pool).await? else {
        return Ok((None, None));
    };
    let now = Utc::now();
    Ok(match state.queue.predict(published, new, now).await {
        Some(Prediction::StartsNow) => (Some(1), Some(now)),
        Some(Prediction::Waits {
            position,
            estimated_start,
            ..
        }) => (
            i32::try_from(position).ok(),
            estimated_start.and_then(|t| DateTime::from_timestamp(t, 0)),
        ),
        Some(Prediction::Impossible(_)) | None => (None, None),
    })
}

pub(super) fn quota_exceeded(detail: String) -> ApiError {
    ApiError::conflict(
        ErrorCode::QuotaExceeded,
        format!("quota exceeded: {detail}"),
    )
}

pub(super) fn id_taken(id: Uuid) -> ApiError {
    ApiError::conflict(
        ErrorCode::JobIdTaken,
        format!("job id {id} (RESERVATION_ID) is already in use; propose another or omit it"),
    )
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The `Idempotency-Key` header: 1–255 visible ASCII characters.
pub(crate) fn idempotency_key(req: &HttpRequest) -> ApiResult<Option<String>> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| {
            !k.is_empty()
                && k.len() <= MAX_IDEMPOTENCY_KEY_LEN
                && k.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::invalid(
                IDEMPOTENCY_KEY,
                "Idempotency-Key must be 1-255 visible ASCII characters",
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// The client's version, from `X-CLI-Version` or a `gpu-dev/<version>` User-Agent.
pub(crate) fn cli_version(req: &HttpRequest) -> Option<String> {
    let from_header = req
        .headers()
        .get("X-CLI-Version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let from_agent = || {
        req.headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| {
                ua.split_whitespace()
                    .find_map(|p| p.strip_prefix("gpu-dev/"))
            })
            .map(str::to_owned)
    };
    from_header
        .or_else(from_agent)
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
}
