//! What every login does once its identity is proven (by STS or by a verified ID token): the
//! user upsert, the new key, the audit record, the metrics and the `no-store` answer. The AWS
//! role check lives here too.

use actix_web::HttpResponse;
use actix_web::http::header::{CACHE_CONTROL, PRAGMA};
use gpudev_domain::{ApiKey, ArnKind, AwsArn, Username};
use gpudev_store::StoreError;
use gpudev_store::api_keys::{self, NewKey};
use gpudev_store::users::{self, Role};

use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::oidc::OidcIdentity;
use crate::state::AppState;

pub use gpudev_api_types::auth::LoginResponse;

/// Who a login proved the caller to be.
#[derive(Debug, Clone, Copy)]
pub enum LoginIdentity<'a> {
    /// An AWS identity STS confirmed; the username is the ARN's last segment.
    Aws(&'a AwsArn),
    /// An OIDC identity from a verified ID token.
    Oidc(&'a OidcIdentity),
}

impl LoginIdentity<'_> {
    /// The name the user is created with (an existing user keeps theirs).
    pub fn username(&self) -> Username {
        match self {
            LoginIdentity::Aws(arn) => arn.username(),
            LoginIdentity::Oidc(id) => id.username.clone(),
        }
    }

    /// The OIDC issuer, for OIDC identities.
    pub fn issuer(&self) -> Option<&str> {
        match self {
            LoginIdentity::Aws(_) => None,
            LoginIdentity::Oidc(id) => Some(&id.issuer),
        }
    }

    /// Non-secret facts for audit records.
    pub fn details(&self) -> serde_json::Value {
        match self {
            LoginIdentity::Aws(arn) => serde_json::json!({ "aws_arn": arn.as_str() }),
            LoginIdentity::Oidc(id) => {
                serde_json::json!({ "oidc_issuer": id.issuer, "oidc_subject": id.subject })
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            LoginIdentity::Aws(arn) => arn.as_str().to_owned(),
            LoginIdentity::Oidc(id) => format!("{} at {}", id.subject, id.issuer),
        }
    }
}

/// Decides whether `arn` may log in: the role must match `ALLOWED_AWS_ROLE` or `ADMIN_AWS_ROLE`
/// exactly. Returns the parsed ARN and whether it is an admin.
pub fn check_role(
    arn: &str,
    allowed_role: &str,
    admin_role: Option<&str>,
) -> Result<(AwsArn, bool), ApiError> {
    let denied = |got: String| ApiError::Forbidden {
        code: ErrorCode::AwsRoleDenied,
        detail: format!("Access denied. Required role: {allowed_role}, got: {got}"),
    };
    let parsed = AwsArn::parse(arn).map_err(|_| denied(arn.to_owned()))?;
    if parsed.kind() == ArnKind::User {
        return Err(denied(format!(
            "IAM user {} (log in with an assumed role)",
            parsed.username()
        )));
    }
    if admin_role.is_some_and(|admin| parsed.role_matches(admin)) {
        return Ok((parsed, true));
    }
    if parsed.role_matches(allowed_role) {
        return Ok((parsed, false));
    }
    let got = parsed.role().unwrap_or("none").to_owned();
    Err(denied(got))
}

/// Checks the role of the identity STS confirmed, then issues a key with [`issue`].
pub async fn complete_login(
    state: &AppState,
    ctx: &RequestCtx,
    method: &'static str,
    arn: &str,
) -> ApiResult<LoginResponse> {
    let config = &state.config;
    let (arn, is_admin) = match check_role(
        arn,
        &config.allowed_aws_role,
        config.admin_aws_role.as_deref(),
    ) {
        Ok(ok) => ok,
        Err(e) => {
            let actor = AwsArn::parse(arn)
                .map(|a| a.username().to_string())
                .unwrap_or_else(|_| "anonymous".into());
            audit_denied(state, ctx, method, &actor, "role_denied", Some(arn)).await;
            return Err(e);
        }
    };
    issue(state, ctx, method, LoginIdentity::Aws(&arn), is_admin).await
}

/// Why a proven identity gets no key or console session.
#[derive(Debug)]
pub enum UserRefusal {
    /// The username is held by another identity (the store's explanation).
    Taken(String),
    /// The user is disabled.
    Disabled(Username),
}

impl UserRefusal {
    /// The reason recorded in the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            UserRefusal::Taken(_) => "username_taken",
            UserRefusal::Disabled(_) => "user_disabled",
        }
    }

    /// Who the refused attempt is recorded as.
    pub fn actor<'a>(&'a self, claimed: &'a Username) -> &'a str {
        match self {
            UserRefusal::Taken(_) => claimed.as_str(),
            UserRefusal::Disabled(name) => name.as_str(),
        }
    }
}

impl From<UserRefusal> for ApiError {
    fn from(r: UserRefusal) -> Self {
        match r {
            UserRefusal::Taken(detail) => ApiError::conflict(
                ErrorCode::UsernameTaken,
                format!(
                    "{detail}; accounts are never merged by name, ask an operator to link them"
                ),
            ),
            UserRefusal::Disabled(_) => ApiError::Forbidden {
                code: ErrorCode::UserDisabled,
                detail: "User account is disabled".into(),
            },
        }
    }
}

/// Creates or updates the user of a proven identity as every login does (found by AWS ARN or
/// OIDC issuer and subject; promoted, never demoted; a name held by another identity refused; a
/// disabled user stays disabled and is refused). Call it inside the login's transaction and roll
/// that back on a refusal.
pub async fn upsert_user(
    tx: &impl gpudev_store::Db,
    identity: LoginIdentity<'_>,
    is_admin: bool,
) -> Result<Result<users::User, UserRefusal>, ApiError> {
    let username = identity.username();
    let upserted = match identity {
        LoginIdentity::Aws(arn) => {
            users::upsert_aws_login(tx, &username, arn.as_str(), is_admin).await
        }
        LoginIdentity::Oidc(id) => {
            users::upsert_oidc_login(tx, &id.issuer, &id.subject, &username, is_admin).await
        }
    };
    match upserted {
        Ok(user) if !user.is_active => Ok(Err(UserRefusal::Disabled(user.username))),
        Ok(user) => Ok(Ok(user)),
        Err(StoreError::Conflict(detail)) => Ok(Err(UserRefusal::Taken(detail))),
        Err(e) => Err(e.into()),
    }
}

/// Creates or updates the user of a proven identity ([`upsert_user`]) and issues a key, all in
/// one transaction with its audit record.
pub async fn issue(
    state: &AppState,
    ctx: &RequestCtx,
    method: &'static str,
    identity: LoginIdentity<'_>,
    is_admin: bool,
) -> ApiResult<LoginResponse> {
    let username = identity.username();
    let issuer = identity.issuer();
    let ttl_hours = state.config.api_key_ttl_hours;

    let mut db = state.db().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    let user = match upsert_user(&tx, identity, is_admin).await? {
        Ok(user) => user,
        Err(refusal) => {
            // Nothing of this attempt is kept: not even the login time of a disabled user.
            tx.rollback().await.map_err(StoreError::from)?;
            refuse(
                state,
                ctx,
                method,
                issuer,
                refusal.actor(&username),
                refusal.reason(),
                identity.details(),
            )
            .await;
            return Err(refusal.into());
        }
    };
    let key = ApiKey::generate().map_err(ApiError::internal)?;
    let description = format!("{method} as {}", identity.describe());
    let record = api_keys::insert(
        &tx,
        user.user_id,
        &key,
        &NewKey {
            ttl: chrono::Duration::hours(i64::from(ttl_hours)),
            description: Some(&description),
            auth_method: method,
            auth_issuer: issuer,
            rate_limit_per_minute: None,
        },
    )
    .await?;
    let caller = Caller {
        user_id: user.user_id,
        username: user.username.clone(),
        role: user.role,
        key_id: record.key_id,
        key_expires_at: record.expires_at,
        rate_limit_per_minute: None,
        key_auth_method: method.to_owned(),
        key_auth_issuer: issuer.map(str::to_owned),
    };
    let mut details = identity.details();
    if let Some(map) = details.as_object_mut() {
        map.insert("role".into(), user.role.as_str().into());
        map.insert("key_prefix".into(), record.key_prefix.clone().into());
        map.insert("expires_at".into(), serde_json::json!(record.expires_at));
    }
    audit::record(
        &tx,
        Some(&caller),
        caller.username.as_str(),
        Some(method),
        ctx,
        Audit {
            action: "login",
            target_type: Some("api_key"),
            target_id: Some(record.key_id.to_string()),
            outcome: "success",
            details: Some(details),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    state.metrics.keys_issued.with_label_values(&[method]).inc();
    tracing::info!(user = %caller.username, method, issuer, key_id = record.key_id, "login succeeded");
    let (aws_arn, oidc_subject) = match identity {
        LoginIdentity::Aws(arn) => (Some(arn.as_str().to_owned()), None),
        LoginIdentity::Oidc(id) => (None, Some(id.subject.clone())),
    };
    Ok(LoginResponse {
        api_key: key.expose_secret().to_owned(),
        key_id: record.key_id,
        key_prefix: record.key_prefix,
        user_id: user.user_id,
        username: user.username.to_string(),
        auth_method: method.to_owned(),
        aws_arn,
        oidc_issuer: issuer.map(str::to_owned),
        oidc_subject,
        role: match user.role {
            Role::Admin => "admin".into(),
            Role::User => "user".into(),
        },
        expires_at: record.expires_at,
        ttl_hours,
    })
}

/// Records a refused AWS login. Best effort: a failure to write it is logged and the refusal
/// stands.
pub async fn audit_denied(
    state: &AppState,
    ctx: &RequestCtx,
    method: &'static str,
    actor: &str,
    reason: &str,
    arn: Option<&str>,
) {
    refuse(
        state,
        ctx,
        method,
        None,
        actor,
        reason,
        serde_json::json!({ "aws_arn": arn }),
    )
    .await;
}

/// Records a refused login of any method, with its issuer (OIDC) and non-secret `details`.
/// Best effort: a failure to write it is logged and the refusal stands.
pub async fn refuse(
    state: &AppState,
    ctx: &RequestCtx,
    method: &'static str,
    issuer: Option<&str>,
    actor: &str,
    reason: &str,
    mut details: serde_json::Value,
) {
    tracing::warn!(actor, method, issuer, reason, "login refused");
    if let Some(map) = details.as_object_mut() {
        map.insert("reason".into(), reason.into());
    }
    let write = async {
        let db = state.db().await?;
        audit::record_with_issuer(
            &*db,
            None,
            actor,
            Some(method),
            issuer,
            ctx,
            Audit {
                action: "login",
                target_type: None,
                target_id: None,
                outcome: "denied",
                details: Some(details),
            },
        )
        .await
        .map_err(ApiError::from)
    };
    if let Err(e) = write.await {
        tracing::warn!(error = %e, "could not record the refused login");
    }
}

/// Counts the attempt and answers: the key with `Cache-Control: no-store`, or the error.
pub fn respond(
    state: &AppState,
    method: &'static str,
    result: ApiResult<LoginResponse>,
) -> ApiResult<HttpResponse> {
    let outcome = match &result {
        Ok(_) => "success",
        Err(ApiError::Unavailable(_) | ApiError::Internal(_)) => "error",
        Err(_) => "rejected",
    };
    state
        .metrics
        .auth_attempts
        .with_label_values(&[method, outcome])
        .inc();
    let login = result?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"))
        .json(login))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: &str = "SSOCloudDevGpuReservation";

    fn denied_detail(r: Result<(AwsArn, bool), ApiError>) -> String {
        match r {
            Err(ApiError::Forbidden { detail, .. }) => detail,
            other => panic!("expected 403, got {other:?}"),
        }
    }

    #[test]
    fn only_the_exact_allowed_role_logs_in_as_a_user() {
        let (arn, admin) = check_role(
            "arn:aws:sts::123456789012:assumed-role/SSOCloudDevGpuReservation/alice",
            ALLOWED,
            None,
        )
        .unwrap();
        assert_eq!(arn.username().as_str(), "alice");
        assert!(!admin);
        let detail = denied_detail(check_role(
            "arn:aws:sts::123456789012:assumed-role/SSOCloudDevGpuReservationX/alice",
            ALLOWED,
            None,
        ));
        assert_eq!(
            detail,
            "Access denied. Required role: SSOCloudDevGpuReservation, got: SSOCloudDevGpuReservationX"
        );
    }

    #[test]
    fn the_admin_role_logs_in_as_an_admin() {
        let (_, admin) = check_role(
            "arn:aws:sts::123456789012:assumed-role/GpuDevAdmin/bob",
            ALLOWED,
            Some("GpuDevAdmin"),
        )
        .unwrap();
        assert!(admin);
    }

    #[test]
    fn iam_users_and_unknown_shapes_are_refused() {
        let user = denied_detail(check_role(
            "arn:aws:iam::123456789012:user/carol",
            ALLOWED,
            Some("carol"),
        ));
        assert!(user.contains("IAM user carol"), "{user}");
        let fed = denied_detail(check_role(
            "arn:aws:sts::123456789012:federated-user/dave",
            ALLOWED,
            None,
        ));
        assert!(fed.ends_with("got: arn:aws:sts::123456789012:federated-user/dave"));
    }
}
