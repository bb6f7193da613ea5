//! `/v1/admin`: the filters of the operator listings, the users, keys and audit entries they
//! answer with, and the usage report.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Filters for the admin job listing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct AdminJobQuery {
    /// Only this user's jobs (username).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Comma-separated statuses; all when absent.
    #[cfg_attr(feature = "openapi", param(value_type = Option<gpudev_domain::status::StatusList>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Page size, 1–500 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Jobs to skip.
    #[cfg_attr(feature = "openapi", param(minimum = 0))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// The window (default: the last 30 days).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct UsageQuery {
    /// Start, RFC 3339 (inclusive).
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = DateTime))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// End, RFC 3339 (exclusive; default now).
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = DateTime))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// One user's use of one GPU type.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageLine {
    /// Whose use.
    pub username: String,
    /// On which GPU type.
    pub gpu_type: String,
    /// Reservations that ran in the window.
    pub reservations: i64,
    /// GPU-hours in the window.
    pub gpu_hours: f64,
    /// Of those reservations' GPU-hours, how many their dev boxes sat idle (no session, GPUs
    /// unused, as their agents reported; over each whole reservation, ADR 18).
    pub idle_gpu_hours: f64,
    /// USD at the configured hourly price (null when the type has no price).
    pub cost: Option<f64>,
}

/// Usage over a window.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageReport {
    /// Window start.
    pub from: DateTime<Utc>,
    /// Window end.
    pub to: DateTime<Utc>,
    /// Per user and GPU type.
    pub lines: Vec<UsageLine>,
    /// Total GPU-hours per user.
    pub by_user: BTreeMap<String, f64>,
    /// Idle GPU-hours per user.
    pub idle_by_user: BTreeMap<String, f64>,
    /// Total GPU-hours per GPU type.
    pub by_gpu_type: BTreeMap<String, f64>,
    /// Total cost of priced types.
    pub total_cost: f64,
}

/// Filters for the audit log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct AuditQuery {
    /// Only this actor (username).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only this action; a trailing `.` matches a family (`reservation.`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// From (RFC 3339, inclusive).
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = DateTime))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Until (RFC 3339, exclusive).
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = DateTime))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Rows to skip.
    #[cfg_attr(feature = "openapi", param(minimum = 0))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// Filter for the key listing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct KeyQuery {
    /// Only this user's keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// A user as an operator sees them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminUser {
    /// The user's id.
    pub user_id: i64,
    /// The user's name.
    pub username: String,
    /// Contact address, when known.
    pub email: Option<String>,
    /// The AWS identity last used to log in.
    pub aws_arn: Option<String>,
    /// OIDC issuer of the identity, when the user logs in with OIDC.
    pub oidc_issuer: Option<String>,
    /// OIDC subject within that issuer.
    pub oidc_subject: Option<String>,
    /// `user` or `admin`.
    pub role: String,
    /// False once disabled: such a user cannot log in or use keys.
    pub is_active: bool,
    /// GitHub login whose public keys may be installed on dev boxes.
    pub github_username: Option<String>,
    /// When the user was first seen.
    pub created_at: DateTime<Utc>,
    /// Last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
}

/// Every user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminUserList {
    /// By name.
    pub users: Vec<AdminUser>,
    /// How many.
    pub total: usize,
}

/// An API key of any user, as an operator sees it: metadata only, never the key or its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminKey {
    /// The key's id (to revoke it).
    pub key_id: i64,
    /// The owner's id.
    pub user_id: i64,
    /// The owner's name.
    pub username: String,
    /// The key's first characters.
    pub key_prefix: String,
    /// How the key came to be (`aws-login as …`, `created by gpudev-admin`, …).
    pub description: Option<String>,
    /// How the session that created it authenticated (`aws-login`, `aws-iam`, `oidc`, `admin`).
    pub auth_method: String,
    /// The OIDC issuer, when the key came from an OIDC login.
    pub auth_issuer: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it stops (or stopped) working.
    pub expires_at: DateTime<Utc>,
    /// Last time it authenticated a request.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Requests per minute allowed for this key, when it overrides the default.
    pub rate_limit_per_minute: Option<i32>,
}

/// Keys of every user (or of the one asked for).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminKeyList {
    /// Newest first.
    pub keys: Vec<AdminKey>,
    /// How many.
    pub total: usize,
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// The entry's id (increasing).
    pub audit_id: i64,
    /// When the call was made.
    pub occurred_at: DateTime<Utc>,
    /// The acting user's name (or `anonymous`, `system`).
    pub actor: String,
    /// How they authenticated (`aws-login`, `aws-iam`, `oidc`, `api-key`, `admin-cli`).
    pub auth_method: Option<String>,
    /// The OIDC issuer, when they logged in with OIDC.
    pub auth_issuer: Option<String>,
    /// What was done (`login`, `reservation.submit`, `admin.key.revoke`, …).
    pub action: String,
    /// The kind of object acted on.
    pub target_type: Option<String>,
    /// Which object.
    pub target_id: Option<String>,
    /// `success`, `denied` or `error`.
    pub outcome: String,
    /// Extra facts (never secrets).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: Value,
}

/// A page of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// Page size used.
    pub limit: i64,
    /// Entries skipped.
    pub offset: i64,
}
