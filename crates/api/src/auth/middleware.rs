use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use gpudev_domain::{AuthorizationError, PresentedKey};
use gpudev_store::api_keys::{self, KeyRejection};

use super::Caller;
use super::failures::{Admission, Summary};
use crate::audit::{self, Audit, RequestCtx};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// Authenticates `Authorization: Bearer <key>` before anything else about the request is looked at,
/// applies the per-key rate limit, and stores the [`Caller`] in the request's extensions. After a
/// request that may change something, the caller's cached job answers on this replica are dropped
/// before the response leaves, so the caller's next read sees the change.
pub async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))?;
    let ctx = RequestCtx::of(req.request());
    // Refusals are answered here rather than returned as errors, so the layers outside (request
    // log, metrics, headers) see them as the responses they are.
    let caller = match authenticate(&state, &req, &ctx).await {
        Ok(c) => {
            count(&state, "success");
            c
        }
        Err(e) => return Ok(req.error_response(e).map_into_right_body()),
    };
    if let Err(e) = state.limits.check_key(&caller, &state.metrics).await {
        return Ok(req.error_response(e).map_into_right_body());
    }
    state.usage.record(caller.key_id);
    tracing::Span::current().record("user", caller.username.as_str());
    let user_id = caller.user_id;
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    req.extensions_mut().insert(caller);
    let res = next.call(req).await;
    if changes {
        state.jobs.invalidate_users([user_id]);
    }
    res.map(ServiceResponse::map_into_left_body)
}

fn count(state: &AppState, outcome: &str) {
    state
        .metrics
        .auth_attempts
        .with_label_values(&["api_key", outcome])
        .inc();
}

/// The caller of a request, or why not. Credentials that cannot be a key we issued are refused
/// without a lookup; every refusal but a missing header counts against the client's address,
/// which is throttled once it has failed too often (see [`crate::auth::AuthFailures`]); the
/// first failures of an address's window are audited one by one.
async fn authenticate(
    state: &AppState,
    req: &ServiceRequest,
    ctx: &RequestCtx,
) -> Result<Caller, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        count(state, "missing");
        return Err(ApiError::Unauthorized {
            code: ErrorCode::NotAuthenticated,
            detail: "Not authenticated: send Authorization: Bearer <api key>".into(),
        });
    };
    let not_bearer = || {
        ApiError::Unauthorized {
        code: ErrorCode::InvalidAuthorization,
        detail: "Invalid authentication credentials: the Authorization header must be 'Bearer <api key>'".into(),
    }
    };
    let key = value
        .to_str()
        .map_err(|_| not_bearer())
        .and_then(|header| {
            PresentedKey::from_authorization(header).map_err(|e| match e {
                AuthorizationError::NotBearer => not_bearer(),
                AuthorizationError::Key(e) => ApiError::Unauthorized {
                    code: ErrorCode::InvalidApiKey,
                    detail: format!("Invalid API key format: {e}"),
                },
            })
        })
        .map(|key| key.hash());
    // A key this replica verified lately passes whatever its address did: it costs no lookup
    // and belongs to someone who is not guessing.
    if let Ok(hash) = &key
        && let Some(c) = state.keys.get(hash.as_str())
    {
        return Ok(c);
    }
    if let Some(ip) = ctx.client_ip {
        let (mut admission, ended) = state.auth_failures.admit(ip);
        if let Some(summary) = ended {
            audit_summary(state, &summary).await;
        }
        // An address that used its failures over all replicas (as far as this one learned).
        if admission == Admission::Admitted
            && let Some(wait) = state.limits.auth_failures_denied(ip)
        {
            state.auth_failures.refuse(ip);
            admission = Admission::Throttled(wait);
        }
        match admission {
            Admission::Throttled(wait) => {
                count(state, "throttled");
                state
                    .metrics
                    .rate_limited
                    .with_label_values(&[crate::limits::Scope::AuthFailures.as_str()])
                    .inc();
                return Err(crate::limits::too_many(wait, state.auth_failures.limit()));
            }
            Admission::Admitted => {}
        }
    }
    let forgive = || {
        if let Some(ip) = ctx.client_ip {
            state.auth_failures.forgive(ip);
        }
    };
    let hash = match key {
        Ok(hash) => hash,
        Err(e) => {
            count(state, "malformed");
            failed(state, ctx, &e, false).await;
            return Err(e);
        }
    };
    let db = state
        .pool
        .get()
        .await
        .map_err(gpudev_store::StoreError::from)
        .inspect_err(|_| {
            count(state, "error");
            forgive();
        })?;
    let auth = api_keys::authenticate(&*db, &hash).await.inspect_err(|_| {
        count(state, "error");
        forgive();
    })?;
    drop(db);
    let auth = match auth {
        Ok(auth) => auth,
        Err(rejection) => {
            let e = match rejection {
                KeyRejection::Unknown => ApiError::Unauthorized {
                    code: ErrorCode::InvalidApiKey,
                    detail: "Invalid API key".into(),
                },
                KeyRejection::Revoked => ApiError::Forbidden {
                    code: ErrorCode::ApiKeyRevoked,
                    detail: "API key has been revoked".into(),
                },
                KeyRejection::Expired => ApiError::Forbidden {
                    code: ErrorCode::ApiKeyExpired,
                    detail: "API key has expired".into(),
                },
                KeyRejection::UserDisabled => ApiError::Forbidden {
                    code: ErrorCode::UserDisabled,
                    detail: "User account is disabled".into(),
                },
            };
            count(state, "rejected");
            failed(state, ctx, &e, true).await;
            return Err(e);
        }
    };
    forgive();
    let caller = Caller {
        user_id: auth.user_id,
        username: auth.username,
        role: auth.role,
        key_id: auth.key_id,
        key_expires_at: auth.expires_at,
        rate_limit_per_minute: auth.rate_limit_per_minute,
        key_auth_method: auth.auth_method,
        key_auth_issuer: auth.auth_issuer,
    };
    state.keys.put(hash.as_str().to_owned(), caller.clone());
    Ok(caller)
}

/// Counts a failed authentication against the client's address and audits it if it is among
/// the first of its window. A failure that cost a lookup (`looked_up`) is also charged to the
/// address's allowance shared by every replica; a key that cannot be ours costs no query and
/// is counted on this replica only. Nothing of the presented credentials is recorded.
async fn failed(state: &AppState, ctx: &RequestCtx, e: &ApiError, looked_up: bool) {
    let Some(ip) = ctx.client_ip else {
        return;
    };
    if looked_up {
        state.limits.charge_auth_failure(ip, &state.metrics).await;
    }
    if !state.auth_failures.fail(ip) {
        return;
    }
    write_audit(
        state,
        ctx,
        Audit {
            action: "auth.api_key",
            target_type: None,
            target_id: None,
            outcome: "denied",
            details: Some(serde_json::json!({ "code": e.code().as_str() })),
        },
    )
    .await;
}

/// Records what an address did beyond its individually audited failures in a window that ended.
pub async fn audit_summary(state: &AppState, summary: &Summary) {
    let ctx = RequestCtx {
        request_id: None,
        client_addr: Some(summary.addr.to_string()),
        client_ip: Some(summary.addr),
    };
    write_audit(
        state,
        &ctx,
        Audit {
            action: "auth.api_key.summary",
            target_type: None,
            target_id: None,
            outcome: "denied",
            details: Some(serde_json::json!({
                "failures": summary.failures,
                "not_audited_singly": summary.unaudited,
                "throttled": summary.throttled,
                "window_seconds": summary.window.as_secs_f64(),
            })),
        },
    )
    .await;
}

/// An audit record of an unauthenticated request; a failure to write it is logged, never
/// answered (the request is refused either way).
async fn write_audit(state: &AppState, ctx: &RequestCtx, a: Audit<'_>) {
    let action = a.action;
    let res = async {
        let db = state.pool.get().await?;
        audit::record(&*db, None, "anonymous", Some("api_key"), ctx, a).await
    }
    .await;
    if let Err(e) = res {
        tracing::warn!(error = %e, action, "could not audit a failed authentication");
    }
}
