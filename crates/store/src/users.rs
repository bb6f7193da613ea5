//! Users: who may hold API keys and reservations.

use chrono::{DateTime, Utc};
use gpudev_domain::{GithubUser, Username};
use serde::Serialize;
use tokio_postgres::Row;

use crate::error::NotFound;
use crate::{Db, StoreError, columns};

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees and manages only their own resources.
    User,
    /// May see and manage everyone's.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            other => Err(StoreError::Corrupt(format!("unknown role {other:?}"))),
        }
    }
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    /// Numeric id: what keys, reservations and disks refer to.
    pub user_id: i64,
    /// Unique handle, set at the first login (from the AWS session name or an OIDC claim, or by
    /// an operator) and never changed.
    pub username: Username,
    /// Contact address, when known.
    pub email: Option<String>,
    /// The AWS identity last used to log in.
    pub aws_arn: Option<String>,
    /// OIDC issuer of the identity, when the user logs in with OIDC.
    pub oidc_issuer: Option<String>,
    /// OIDC subject within that issuer.
    pub oidc_subject: Option<String>,
    /// User or admin.
    pub role: Role,
    /// False once disabled: such a user cannot log in or use keys.
    pub is_active: bool,
    /// GitHub login whose public keys may be installed on dev boxes.
    pub github_username: Option<GithubUser>,
    /// When the user was first seen.
    pub created_at: DateTime<Utc>,
    /// Last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "user_id, username, email, aws_arn, oidc_issuer, oidc_subject, role, \
                       is_active, github_username, created_at, last_login_at";

fn from_row(r: &Row) -> Result<User, StoreError> {
    Ok(User {
        user_id: r.get("user_id"),
        username: columns::parsed(r, "user", "username", Username::parse)?,
        email: r.get("email"),
        aws_arn: r.get("aws_arn"),
        oidc_issuer: r.get("oidc_issuer"),
        oidc_subject: r.get("oidc_subject"),
        role: Role::parse(r.get("role"))?,
        is_active: r.get("is_active"),
        github_username: columns::parsed_opt(r, "user", "github_username", GithubUser::parse)?,
        created_at: r.get("created_at"),
        last_login_at: r.get("last_login_at"),
    })
}

/// Creates the user on first login, or records the login of an existing one. The ARN is updated;
/// `is_active` is never touched, so logging in cannot re-enable a disabled user. `make_admin`
/// promotes (it never demotes an admin). A user of the same name who logs in with OIDC is another
/// person, and the login fails with a conflict rather than merging the accounts — unless an
/// operator linked that user's OIDC identity to this very ARN ([`link_oidc`]).
pub async fn upsert_aws_login(
    db: &impl Db,
    username: &Username,
    arn: &str,
    make_admin: bool,
) -> Result<User, StoreError> {
    let role = if make_admin { "admin" } else { "user" };
    let row = db
        .query_opt(
            &format!(
                "INSERT INTO users (username, aws_arn, role, last_login_at) VALUES ($1, $2, $3, now()) \
                 ON CONFLICT (username) DO UPDATE SET aws_arn = EXCLUDED.aws_arn, \
                   last_login_at = now(), \
                   role = CASE WHEN EXCLUDED.role = 'admin' THEN 'admin' ELSE users.role END \
                 WHERE users.oidc_issuer IS NULL OR users.aws_arn = EXCLUDED.aws_arn \
                 RETURNING {COLUMNS}"
            ),
            &[&username.as_str(), &arn, &role],
        )
        .await?;
    match row {
        Some(row) => from_row(&row),
        None => Err(StoreError::Conflict(format!(
            "the username {username} belongs to a user who logs in with OIDC"
        ))),
    }
}

/// Creates the user of an OIDC identity on its first login, or records the login of the user
/// already bound to `(issuer, subject)`. Users are found by that pair only, never by name or
/// email; an existing user keeps their name. `is_active` is never touched, and `make_admin`
/// promotes without ever demoting. When `username` is already taken by another user (from another
/// issuer, or an AWS login) the login fails with a conflict: accounts are never merged by name.
pub async fn upsert_oidc_login(
    db: &impl Db,
    issuer: &str,
    subject: &str,
    username: &Username,
    make_admin: bool,
) -> Result<User, StoreError> {
    let role = if make_admin { "admin" } else { "user" };
    let res = db
        .query_one(
            &format!(
                "INSERT INTO users (username, oidc_issuer, oidc_subject, role, last_login_at) \
                 VALUES ($1, $2, $3, $4, now()) \
                 ON CONFLICT (oidc_issuer, oidc_subject) WHERE oidc_issuer IS NOT NULL \
                 DO UPDATE SET last_login_at = now(), \
                   role = CASE WHEN EXCLUDED.role = 'admin' THEN 'admin' ELSE users.role END \
                 RETURNING {COLUMNS}"
            ),
            &[&username.as_str(), &issuer, &subject, &role],
        )
        .await;
    let row = res.map_err(|e| {
        StoreError::from(e).unique_as_conflict(|| {
            format!("the username {username} is already taken by another user")
        })
    })?;
    from_row(&row)
}

/// Creates a user (for operators and tests); fails with a conflict when the name is taken.
pub async fn create(db: &impl Db, username: &Username, role: Role) -> Result<User, StoreError> {
    let res = db
        .query_one(
            &format!("INSERT INTO users (username, role) VALUES ($1, $2) RETURNING {COLUMNS}"),
            &[&username.as_str(), &role.as_str()],
        )
        .await;
    let row = res.map_err(|e| {
        StoreError::from(e).unique_as_conflict(|| format!("user {username} already exists"))
    })?;
    from_row(&row)
}

/// Finds a user by name. A string that is not a valid username names no user: it is answered
/// without a query (PostgreSQL would refuse a NUL character in it with an error).
pub async fn find_by_name(db: &impl Db, username: &str) -> Result<Option<User>, StoreError> {
    if Username::parse(username).is_err() {
        return Ok(None);
    }
    let row = db
        .query_opt(
            &format!("SELECT {COLUMNS} FROM users WHERE username = $1"),
            &[&username],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Finds a user by name, or fails with a not-found error naming them.
pub async fn get_by_name(db: &impl Db, username: &str) -> Result<User, StoreError> {
    find_by_name(db, username)
        .await?
        .ok_or_else(|| StoreError::NotFound(NotFound::User(username.to_owned())))
}

/// Finds a user by id.
pub async fn find_by_id(db: &impl Db, user_id: i64) -> Result<Option<User>, StoreError> {
    let row = db
        .query_opt(
            &format!("SELECT {COLUMNS} FROM users WHERE user_id = $1"),
            &[&user_id],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every user, by name.
pub async fn list(db: &impl Db) -> Result<Vec<User>, StoreError> {
    let rows = db
        .query(
            &format!("SELECT {COLUMNS} FROM users ORDER BY username"),
            &[],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

/// Enables or disables a user. Disabling also revokes their live keys and ends their console
/// sessions, in the same statement (so enabling them again brings neither back).
pub async fn set_active(db: &impl Db, username: &str, active: bool) -> Result<User, StoreError> {
    let row = db
        .query_opt(
            &format!(
                "WITH u AS (UPDATE users SET is_active = $2, \
                   disabled_at = CASE WHEN $2 THEN NULL ELSE coalesce(disabled_at, now()) END \
                   WHERE username = $1 RETURNING *), \
                 k AS (UPDATE api_keys SET revoked_at = now() \
                   WHERE NOT $2 AND revoked_at IS NULL AND user_id IN (SELECT user_id FROM u)), \
                 s AS (UPDATE console_sessions SET ended_at = now() \
                   WHERE NOT $2 AND ended_at IS NULL AND user_id IN (SELECT user_id FROM u)) \
                 SELECT {COLUMNS} FROM u"
            ),
            &[&username, &active],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(NotFound::User(username.to_owned())))?;
    from_row(&row)
}

/// Binds an OIDC identity to an existing user (an operator's decision that they are the same
/// person): that identity's logins then sign in as this user, and the user's AWS logins, if any,
/// keep working. Fails with a conflict when another user holds the identity, and with not-found
/// for an unknown user.
pub async fn link_oidc(
    db: &impl Db,
    username: &str,
    issuer: &str,
    subject: &str,
) -> Result<User, StoreError> {
    let res = db
        .query_opt(
            &format!(
                "UPDATE users SET oidc_issuer = $2, oidc_subject = $3 WHERE username = $1 \
                 RETURNING {COLUMNS}"
            ),
            &[&username, &issuer, &subject],
        )
        .await;
    let row = res
        .map_err(|e| {
            StoreError::from(e).unique_as_conflict(|| {
                format!("the identity {subject} of {issuer} already belongs to another user")
            })
        })?
        .ok_or_else(|| StoreError::NotFound(NotFound::User(username.to_owned())))?;
    from_row(&row)
}

/// Removes a user's OIDC identity: its logins no longer sign in as them (the next one creates a
/// new user, or fails if the name is taken).
pub async fn unlink_oidc(db: &impl Db, username: &str) -> Result<User, StoreError> {
    let row = db
        .query_opt(
            &format!(
                "UPDATE users SET oidc_issuer = NULL, oidc_subject = NULL WHERE username = $1 \
                 RETURNING {COLUMNS}"
            ),
            &[&username],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(NotFound::User(username.to_owned())))?;
    from_row(&row)
}

/// Sets a user's role.
pub async fn set_role(db: &impl Db, username: &str, role: Role) -> Result<User, StoreError> {
    let row = db
        .query_opt(
            &format!("UPDATE users SET role = $2 WHERE username = $1 RETURNING {COLUMNS}"),
            &[&username, &role.as_str()],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(NotFound::User(username.to_owned())))?;
    from_row(&row)
}
