//! `/v1/admin`: the filters of the operator listings and the usage report.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Filters for the admin job listing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct AdminJobQuery {
    /// Only this user's jobs (username).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Comma-separated statuses; all when absent.
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// End, RFC 3339 (exclusive; default now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// One user's use of one GPU type.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageLine {
    /// The user.
    pub username: String,
    /// The GPU type.
    pub gpu_type: String,
    /// Reservations that ran in the window.
    pub reservations: i64,
    /// GPU-hours in the window.
    pub gpu_hours: f64,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Until (RFC 3339, exclusive).
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
