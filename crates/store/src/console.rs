//! The web console's one-time sign-in links and sessions (`console_links`,
//! `console_sessions`). Secrets arrive here already hashed ([`gpudev_domain::ConsoleSecret`]).

use chrono::{DateTime, Utc};
use gpudev_domain::Username;

use crate::columns::parsed;
use crate::users::Role;
use crate::{Db, StoreError};

/// Records a one-time link for `user_id`, asked for with API key `key_id`, valid for
/// `ttl_secs`. Returns when it expires.
pub async fn create_link(
    db: &impl Db,
    token_hash: &str,
    user_id: i64,
    key_id: i64,
    ttl_secs: f64,
) -> Result<DateTime<Utc>, StoreError> {
    let row = db
        .query_one(
            "WITH gone AS (DELETE FROM console_links WHERE expires_at < now() - interval '1 day') \
             INSERT INTO console_links (token_hash, user_id, key_id, expires_at) \
             VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING expires_at",
            &[&token_hash, &user_id, &key_id, &ttl_secs],
        )
        .await?;
    Ok(row.get(0))
}

/// The user a link would sign in, while it can still be used (unused, unexpired, its user
/// enabled, its key not revoked); the link stays unused.
pub async fn link_user(db: &impl Db, token_hash: &str) -> Result<Option<Username>, StoreError> {
    let row = db
        .query_opt(
            "SELECT u.username FROM console_links l JOIN users u USING (user_id) \
             JOIN api_keys k ON k.key_id = l.key_id \
             WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > now() \
               AND u.is_active AND k.revoked_at IS NULL",
            &[&token_hash],
        )
        .await?;
    row.map(|r| parsed(&r, "user", "username", Username::parse))
        .transpose()
}

/// Uses a link: one guarded statement that succeeds once, while the link is unexpired, its user
/// enabled and its key not revoked. Returns the user (id and name) and the key it was made with.
pub async fn redeem_link(
    db: &impl Db,
    token_hash: &str,
) -> Result<Option<(i64, Username, i64)>, StoreError> {
    let row = db
        .query_opt(
            "UPDATE console_links l SET used_at = now() \
             FROM users u, api_keys k \
             WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > now() \
               AND u.user_id = l.user_id AND u.is_active \
               AND k.key_id = l.key_id AND k.revoked_at IS NULL \
             RETURNING l.user_id, u.username, l.key_id",
            &[&token_hash],
        )
        .await?;
    row.map(|r| {
        Ok((
            r.get(0),
            parsed(&r, "user", "username", Username::parse)?,
            r.get(2),
        ))
    })
    .transpose()
}

/// Starts a session for `user_id` lasting `ttl_secs`; `key_id` is the key whose link made it.
pub async fn create_session(
    db: &impl Db,
    session_hash: &str,
    user_id: i64,
    key_id: Option<i64>,
    csrf_token: &str,
    ttl_secs: f64,
) -> Result<DateTime<Utc>, StoreError> {
    let row = db
        .query_one(
            "INSERT INTO console_sessions (session_hash, user_id, key_id, csrf_token, expires_at) \
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) RETURNING expires_at",
            &[&session_hash, &user_id, &key_id, &csrf_token, &ttl_secs],
        )
        .await?;
    Ok(row.get(0))
}

/// Who a live session belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionUser {
    /// The user.
    pub user_id: i64,
    /// Their name.
    pub username: Username,
    /// User or admin.
    pub role: Role,
    /// The token every form of the session must carry.
    pub csrf_token: String,
    /// When the session ends at the latest.
    pub expires_at: DateTime<Utc>,
}

/// The user of session `session_hash` while it is live: not ended or expired, its user enabled,
/// and the key whose link made it not revoked.
pub async fn session(db: &impl Db, session_hash: &str) -> Result<Option<SessionUser>, StoreError> {
    let row = db
        .query_opt(
            "SELECT s.user_id, u.username, u.role, s.csrf_token, s.expires_at \
             FROM console_sessions s JOIN users u USING (user_id) \
             LEFT JOIN api_keys k ON k.key_id = s.key_id \
             WHERE s.session_hash = $1 AND s.ended_at IS NULL AND s.expires_at > now() \
               AND u.is_active \
               AND (s.key_id IS NULL OR k.revoked_at IS NULL)",
            &[&session_hash],
        )
        .await?;
    row.map(|r| {
        Ok(SessionUser {
            user_id: r.get(0),
            username: parsed(&r, "user", "username", Username::parse)?,
            role: Role::parse(r.get(2))?,
            csrf_token: r.get(3),
            expires_at: r.get(4),
        })
    })
    .transpose()
}

/// Ends a session (sign-out); false when it had ended already.
pub async fn end_session(db: &impl Db, session_hash: &str) -> Result<bool, StoreError> {
    Ok(db
        .execute(
            "UPDATE console_sessions SET ended_at = now() \
             WHERE session_hash = $1 AND ended_at IS NULL",
            &[&session_hash],
        )
        .await?
        == 1)
}
