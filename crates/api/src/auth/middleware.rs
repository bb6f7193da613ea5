use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use gpudev_domain::{AuthorizationError, PresentedKey};
use gpudev_store::api_keys::{self, KeyRejection};

use super::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// Authenticates `Authorization: Bearer <key>` before anything else about the request is looked at,
/// applies the per-key rate limit, and stores the [`Caller`] in the request's extensions. After a
/// request that may change something, the caller's cached job answers on this replica are dropped
/// before the response leaves, so the caller's next read sees the change.
pub async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))?;
    let caller = match authenticate(&state, &req).await {
        Ok(c) => {
            state
                .metrics
                .auth_attempts
                .with_label_values(&["api_key", "success"])
                .inc();
            c
        }
        Err(e) => {
            let outcome = match &e {
                ApiError::Unavailable(_) | ApiError::Internal(_) => "error",
                _ => "rejected",
            };
            state
                .metrics
                .auth_attempts
                .with_label_values(&["api_key", outcome])
                .inc();
            return Err(e.into());
        }
    };
    state.limits.check_key(&caller, &state.metrics)?;
    state.usage.record(caller.key_id);
    tracing::Span::current().record("user", caller.username.as_str());
    let user_id = caller.user_id;
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    req.extensions_mut().insert(caller);
    let res = next.call(req).await;
    if changes {
        state.jobs.invalidate_users([user_id]);
    }
    res
}

async fn authenticate(state: &AppState, req: &ServiceRequest) -> Result<Caller, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
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
    let header = value.to_str().map_err(|_| not_bearer())?;
    let key = PresentedKey::from_authorization(header).map_err(|e| match e {
        AuthorizationError::NotBearer => not_bearer(),
        AuthorizationError::Key(_) => ApiError::Unauthorized {
            code: ErrorCode::InvalidApiKey,
            detail: "Invalid API key format".into(),
        },
    })?;
    let hash = key.hash();
    if let Some(c) = state.keys.get(hash.as_str()) {
        return Ok(c);
    }
    let db = state
        .pool
        .get()
        .await
        .map_err(gpudev_store::StoreError::from)?;
    let auth = api_keys::authenticate(&*db, &hash).await?;
    let auth = auth.map_err(|rejection| match rejection {
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
    })?;
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
