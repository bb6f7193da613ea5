//! `PUT /v1/me/ssh-keys`, `GET /v1/me/ssh-keys`

use actix_web::{HttpResponse, get, put, web};
use gpudev_domain::SshPublicKey;
use gpudev_store::ssh_keys::{self, MAX_KEYS_PER_USER, StoredKey};

use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

pub use gpudev_api_types::me::{SshKeyInfo, SshKeyList, SshKeysRequest};

/// A stored key as the API shows it.
fn ssh_key_info(k: StoredKey) -> SshKeyInfo {
    SshKeyInfo {
        key_type: k.key_type,
        fingerprint: k.fingerprint,
        comment: k.comment,
        public_key: k.public_key,
        created_at: k.created_at,
    }
}

fn key_list(stored: Vec<StoredKey>) -> SshKeyList {
    let keys: Vec<SshKeyInfo> = stored.into_iter().map(ssh_key_info).collect();
    SshKeyList {
        total: keys.len(),
        keys,
    }
}

/// Parses every key; 422 naming the index of the first bad one.
pub fn parse_keys(lines: &[String]) -> Result<Vec<SshPublicKey>, ApiError> {
    if lines.len() > MAX_KEYS_PER_USER {
        return Err(ApiError::invalid(
            "keys",
            format!("keys: at most {MAX_KEYS_PER_USER} SSH keys may be registered"),
        ));
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            SshPublicKey::parse(line)
                .map_err(|e| ApiError::invalid(format!("keys[{i}]"), format!("keys[{i}]: {e}")))
        })
        .collect()
}

/// Replaces the caller's SSH public keys (installed in the `authorized_keys` of their dev boxes
/// from the next reservation on). Keys with the same fingerprint collapse into one.
#[utoipa::path(put, path = "/v1/me/ssh-keys", tag = "me", security(("bearer" = [])),
    request_body = SshKeysRequest,
    responses(
        (status = 200, body = SshKeyList, description = "the keys now registered"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "a key does not parse (the detail names its index)"),
    ))]
#[put("/me/ssh-keys")]
pub async fn put_ssh_keys(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    body: web::Json<SshKeysRequest>,
) -> ApiResult<HttpResponse> {
    let keys = parse_keys(&body.keys)?;
    let mut db = state.db().await?;
    let stored = ssh_keys::replace(&mut db, caller.user_id, &keys).await?;
    let fingerprints: Vec<&str> = stored.iter().map(|k| k.fingerprint.as_str()).collect();
    audit::record(
        &*db,
        Some(&caller),
        caller.username.as_str(),
        None,
        &ctx,
        Audit {
            action: "ssh_keys.replace",
            target_type: Some("user"),
            target_id: Some(caller.user_id.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({ "fingerprints": fingerprints })),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(key_list(stored)))
}

/// `caller`'s registered keys, oldest first (`GET /v1/me/ssh-keys`, and the console's page).
pub(crate) async fn own_keys(state: &AppState, caller: &Caller) -> ApiResult<SshKeyList> {
    let db = state.db().await?;
    Ok(key_list(ssh_keys::list(&*db, caller.user_id).await?))
}

/// Adds one public key (an `authorized_keys` line) to `caller`'s keys, by the rules of
/// `PUT /v1/me/ssh-keys`: the same parser and limit (the console's form; the CLI adds by
/// sending the whole set).
pub(crate) async fn add_key(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestCtx,
    line: &str,
) -> ApiResult<SshKeyInfo> {
    let key = SshPublicKey::parse(line.trim())
        .map_err(|e| ApiError::invalid("public_key", e.to_string()))?;
    let db = state.db().await?;
    if !ssh_keys::add(&*db, caller.user_id, &key).await? {
        let held = ssh_keys::list(&*db, caller.user_id).await?;
        let detail = if held.iter().any(|k| k.fingerprint == key.fingerprint()) {
            format!("this key ({}) is registered already", key.fingerprint())
        } else {
            format!("at most {MAX_KEYS_PER_USER} SSH keys may be registered; remove one first")
        };
        return Err(ApiError::invalid("public_key", detail));
    }
    ssh_keys_audit(&*db, caller, ctx, "ssh_keys.add", key.fingerprint()).await?;
    let added = ssh_keys::list(&*db, caller.user_id)
        .await?
        .into_iter()
        .find(|k| k.fingerprint == key.fingerprint())
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("an added SSH key is not listed")))?;
    Ok(ssh_key_info(added))
}

/// Removes `caller`'s key with `fingerprint` (the console's form); 404 when they have none.
pub(crate) async fn remove_key(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestCtx,
    fingerprint: &str,
) -> ApiResult<()> {
    let db = state.db().await?;
    if !ssh_keys::remove(&*db, caller.user_id, fingerprint).await? {
        let shown: String = fingerprint.chars().take(64).collect();
        return Err(ApiError::NotFound(format!("SSH key {shown} not found")));
    }
    ssh_keys_audit(&*db, caller, ctx, "ssh_keys.remove", fingerprint).await
}

async fn ssh_keys_audit(
    db: &impl gpudev_store::Db,
    caller: &Caller,
    ctx: &RequestCtx,
    action: &str,
    fingerprint: &str,
) -> ApiResult<()> {
    audit::record(
        db,
        Some(caller),
        caller.username.as_str(),
        None,
        ctx,
        Audit {
            action,
            target_type: Some("user"),
            target_id: Some(caller.user_id.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({ "fingerprint": fingerprint })),
        },
    )
    .await?;
    Ok(())
}

/// The caller's registered SSH public keys.
#[utoipa::path(get, path = "/v1/me/ssh-keys", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, body = SshKeyList),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
#[get("/me/ssh-keys")]
pub async fn get_ssh_keys(caller: Caller, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(own_keys(&state, &caller).await?))
}
