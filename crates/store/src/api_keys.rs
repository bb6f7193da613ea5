//! API keys: stored as SHA-256 hashes with a display prefix.

use chrono::{DateTime, Duration, Utc};
use gpudev_domain::{ApiKey, KeyHash, Username};
use serde::Serialize;
use tokio_postgres::Row;

use crate::error::NotFound;
use crate::users::{Role, User};
use crate::{Db, StoreError, columns};

/// A stored key, without its secret (which is never stored).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRecord {
    /// Numeric id, used to revoke it.
    pub key_id: i64,
    /// The owner's id.
    pub user_id: i64,
    /// Owner's name.
    pub username: String,
    /// First characters of the key, for recognising it.
    pub key_prefix: String,
    /// Free text (`"AWS login from …"`, `"created by gpudev-admin"`).
    pub description: Option<String>,
    /// How the session that created the key authenticated (`aws-login`, `aws-iam`, `oidc`, `admin`).
    pub auth_method: String,
    /// The OIDC issuer, when the key came from an OIDC login.
    pub auth_issuer: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// After this the key is refused.
    pub expires_at: DateTime<Utc>,
    /// Last time the key authenticated a request.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Requests per minute allowed for this key, overriding the default.
    pub rate_limit_per_minute: Option<i32>,
}

/// What to record with a new key.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    /// Lifetime from now.
    pub ttl: Duration,
    /// Free text shown in listings.
    pub description: Option<&'a str>,
    /// How the caller authenticated.
    pub auth_method: &'a str,
    /// OIDC issuer, if any.
    pub auth_issuer: Option<&'a str>,
    /// Per-key rate limit, if any.
    pub rate_limit_per_minute: Option<i32>,
}

const COLUMNS: &str = "k.key_id, k.user_id, u.username, k.key_prefix, k.description, k.auth_method, \
    k.auth_issuer, k.created_at, k.expires_at, k.last_used_at, k.revoked_at, k.rate_limit_per_minute";

fn from_row(r: &Row) -> KeyRecord {
    KeyRecord {
        key_id: r.get(0),
        user_id: r.get(1),
        username: r.get(2),
        key_prefix: r.get(3),
        description: r.get(4),
        auth_method: r.get(5),
        auth_issuer: r.get(6),
        created_at: r.get(7),
        expires_at: r.get(8),
        last_used_at: r.get(9),
        revoked_at: r.get(10),
        rate_limit_per_minute: r.get(11),
    }
}

/// Stores a newly generated key for `user_id`; only its hash and prefix are written.
pub async fn insert(
    db: &impl Db,
    user_id: i64,
    key: &ApiKey,
    new: &NewKey<'_>,
) -> Result<KeyRecord, StoreError> {
    let expires_at = Utc::now() + new.ttl;
    let row = db
        .query_opt(
            &format!(
                "WITH k AS (INSERT INTO api_keys (user_id, key_hash, key_prefix, description, \
                     auth_method, auth_issuer, expires_at, rate_limit_per_minute) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *) \
                 SELECT {COLUMNS} FROM k JOIN users u USING (user_id)"
            ),
            &[
                &user_id,
                &key.hash().as_str(),
                &key.prefix(),
                &new.description,
                &new.auth_method,
                &new.auth_issuer,
                &expires_at,
                &new.rate_limit_per_minute,
            ],
        )
        .await?;
    row.as_ref()
        .map(from_row)
        .ok_or_else(|| StoreError::NotFound(NotFound::User(user_id.to_string())))
}

/// Why a presented key does not authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    /// No key has that hash.
    Unknown,
    /// The key was revoked.
    Revoked,
    /// The key's lifetime is over.
    Expired,
    /// The key's owner is disabled.
    UserDisabled,
}

/// A key that authenticated, with its owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticated {
    /// The key's id.
    pub key_id: i64,
    /// When the key expires.
    pub expires_at: DateTime<Utc>,
    /// Per-key rate limit.
    pub rate_limit_per_minute: Option<i32>,
    /// How the key's session authenticated.
    pub auth_method: String,
    /// The OIDC issuer of that session, if it was an OIDC login.
    pub auth_issuer: Option<String>,
    /// The owner's id.
    pub user_id: i64,
    /// The owner's name.
    pub username: Username,
    /// The owner's role.
    pub role: Role,
}

/// Looks a key up by its hash and decides whether it authenticates, in one round trip. The hash
/// is the index key, so no secret is ever compared in the database; the final equality check is
/// constant-time.
pub async fn authenticate(
    db: &impl Db,
    hash: &KeyHash,
) -> Result<Result<Authenticated, KeyRejection>, StoreError> {
    let row = db
        .query_opt(
            "SELECT k.key_hash, k.key_id, k.expires_at, k.rate_limit_per_minute, k.auth_method, \
                    k.revoked_at IS NOT NULL, k.expires_at <= now(), u.user_id, u.username, u.role, \
                    u.is_active, k.auth_issuer \
             FROM api_keys k JOIN users u USING (user_id) WHERE k.key_hash = $1",
            &[&hash.as_str()],
        )
        .await?;
    let Some(r) = row else {
        return Ok(Err(KeyRejection::Unknown));
    };
    if !KeyHash::from_stored(r.get(0)).ct_eq(hash) {
        return Ok(Err(KeyRejection::Unknown));
    }
    let (revoked, expired, active): (bool, bool, bool) = (r.get(5), r.get(6), r.get(10));
    if !active {
        return Ok(Err(KeyRejection::UserDisabled));
    }
    if revoked {
        return Ok(Err(KeyRejection::Revoked));
    }
    if expired {
        return Ok(Err(KeyRejection::Expired));
    }
    let role: &str = r.get(9);
    Ok(Ok(Authenticated {
        key_id: r.get(1),
        expires_at: r.get(2),
        rate_limit_per_minute: r.get(3),
        auth_method: r.get(4),
        auth_issuer: r.get(11),
        user_id: r.get(7),
        username: columns::parsed(&r, "user", "username", Username::parse)?,
        role: if role == "admin" {
            Role::Admin
        } else {
            Role::User
        },
    }))
}

/// Records that each of `key_ids` was used just now, in one statement (the API notes key use in
/// memory and writes it in batches).
pub async fn touch_many(db: &impl Db, key_ids: &[i64]) -> Result<(), StoreError> {
    db.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE key_id = ANY($1)",
        &[&key_ids],
    )
    .await?;
    Ok(())
}

/// Records that a key was used, at most once a minute per key so authentication does not write on
/// every request.
pub async fn touch(db: &impl Db, key_id: i64) -> Result<(), StoreError> {
    db.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE key_id = $1 \
         AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        &[&key_id],
    )
    .await?;
    Ok(())
}

/// Keys, newest first; all users' keys when `user` is `None`.
pub async fn list(db: &impl Db, user: Option<&User>) -> Result<Vec<KeyRecord>, StoreError> {
    // One text per case: a plan made without knowing the user could not use the user index.
    let rows = match user {
        Some(u) => {
            db.query(
                &format!(
                    "SELECT {COLUMNS} FROM api_keys k JOIN users u USING (user_id) \
                     WHERE k.user_id = $1 ORDER BY k.created_at DESC, k.key_id DESC"
                ),
                &[&u.user_id],
            )
            .await?
        }
        None => {
            db.query(
                &format!(
                    "SELECT {COLUMNS} FROM api_keys k JOIN users u USING (user_id) \
                     ORDER BY k.created_at DESC, k.key_id DESC"
                ),
                &[],
            )
            .await?
        }
    };
    Ok(rows.iter().map(from_row).collect())
}

/// Revokes a key. When `owner` is given the key must belong to them (users revoke only their own).
/// Revoking an already revoked key succeeds and keeps the first revocation time.
pub async fn revoke(
    db: &impl Db,
    key_id: i64,
    owner: Option<i64>,
) -> Result<KeyRecord, StoreError> {
    let row = db
        .query_opt(
            &format!(
                "WITH k AS (UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) \
                   WHERE key_id = $1 AND ($2::bigint IS NULL OR user_id = $2) RETURNING *) \
                 SELECT {COLUMNS} FROM k JOIN users u USING (user_id)"
            ),
            &[&key_id, &owner],
        )
        .await?;
    row.as_ref()
        .map(from_row)
        .ok_or(StoreError::NotFound(NotFound::ApiKey(key_id)))
}

/// Claims the live key `key_id` of `user_id` for a rotation until the end of the caller's
/// transaction: with `revoke`, revokes it; without, holds it so that it cannot be revoked before
/// the new key is committed. Either is one guarded statement, so a key revoked (or expired) since
/// it authenticated the request is refused, and of concurrent rotations that revoke the same key
/// exactly one succeeds.
pub async fn claim_for_rotation(
    db: &impl Db,
    key_id: i64,
    user_id: i64,
    revoke: bool,
) -> Result<Result<(), KeyRejection>, StoreError> {
    // One text per case (generic plans, see `crate::db`).
    let row = if revoke {
        db.query_opt(
            "WITH cur AS ( \
                   SELECT key_id, revoked_at IS NOT NULL AS revoked, expires_at <= now() AS expired \
                   FROM api_keys WHERE key_id = $1 AND user_id = $2 FOR UPDATE), \
                 upd AS ( \
                   UPDATE api_keys k SET revoked_at = now() FROM cur \
                   WHERE k.key_id = cur.key_id AND NOT cur.revoked AND NOT cur.expired \
                   RETURNING k.key_id) \
             SELECT cur.revoked, cur.expired FROM cur LEFT JOIN upd ON true",
            &[&key_id, &user_id],
        )
        .await?
    } else {
        db.query_opt(
            "SELECT revoked_at IS NOT NULL, expires_at <= now() FROM api_keys \
             WHERE key_id = $1 AND user_id = $2 FOR SHARE",
            &[&key_id, &user_id],
        )
        .await?
    };
    let Some(row) = row else {
        return Ok(Err(KeyRejection::Unknown));
    };
    let (revoked, expired): (bool, bool) = (row.get(0), row.get(1));
    Ok(if revoked {
        Err(KeyRejection::Revoked)
    } else if expired {
        Err(KeyRejection::Expired)
    } else {
        Ok(())
    })
}

/// Deletes keys that expired or were revoked more than `keep` ago; returns how many.
pub async fn purge(db: &impl Db, keep: Duration) -> Result<u64, StoreError> {
    let cutoff = Utc::now() - keep;
    Ok(db
        .execute(
            "DELETE FROM api_keys WHERE expires_at < $1 OR revoked_at < $1",
            &[&cutoff],
        )
        .await?)
}
