//! The audit log: who did what, how they authenticated, and how it ended.

use crate::{Db, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::types::ToSql;

/// One audit entry to write.
#[derive(Debug, Clone, Default, Serialize)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct AuditEntry<'a> {
    /// The acting user's id, when known.
    pub actor_user_id: Option<i64>,
    /// The acting user's name (or `anonymous`, `system`).
    pub actor: &'a str,
    /// `aws-login`, `aws-iam`, `oidc`, `api-key`, `admin-cli`.
    pub auth_method: Option<&'a str>,
    /// OIDC issuer, when applicable.
    pub auth_issuer: Option<&'a str>,
    /// What was done (`login`, `reservation.submit`, `key.revoke`, …).
    pub action: &'a str,
    /// Kind of object acted on.
    pub target_type: Option<&'a str>,
    pub target_id: Option<&'a str>,
    /// `success`, `denied` or `error`.
    pub outcome: &'a str,
    /// Request id, to join with logs.
    pub request_id: Option<&'a str>,
    /// Client address.
    pub client_addr: Option<&'a str>,
    /// Extra data (never secrets).
    pub details: Option<Value>,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct AuditRecord {
    pub audit_id: i64,
    /// When the call was made.
    pub occurred_at: DateTime<Utc>,
    /// The acting user's name (or `anonymous`, `system`).
    pub actor: String,
    /// How they authenticated.
    pub auth_method: Option<String>,
    /// The OIDC issuer, when they logged in with OIDC.
    pub auth_issuer: Option<String>,
    /// What was done (`login`, `reservation.submit`, `admin.key.revoke`, …).
    pub action: String,
    /// On what kind of object.
    pub target_type: Option<String>,
    /// On which object.
    pub target_id: Option<String>,
    pub outcome: String,
    /// Extra facts the action recorded (never secrets); an empty object when none.
    pub details: Value,
}

/// The columns of `audit_log` an [`AuditEntry`] fills, in the order of [`audit_entry_record!`].
macro_rules! audit_entry_columns {
    () => {
        "actor_user_id, actor, auth_method, auth_issuer, action, target_type, target_id, outcome, \
         request_id, client_addr, details"
    };
}
pub(crate) use audit_entry_columns;

/// An [`AuditEntry`] serialised as JSON, as a column definition list for `jsonb_to_record(set)`.
macro_rules! audit_entry_record {
    () => {
        "actor_user_id bigint, actor text, auth_method text, auth_issuer text, action text, \
         target_type text, target_id text, outcome text, request_id text, client_addr text, \
         details jsonb"
    };
}
pub(crate) use audit_entry_record;

/// Appends an entry.
pub async fn record(db: &impl Db, e: &AuditEntry<'_>) -> Result<i64, StoreError> {
    let details = e
        .details
        .clone()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let row = db
        .query_one(
            concat!(
                "INSERT INTO audit_log (",
                audit_entry_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING audit_id"
            ),
            &[
                &e.actor_user_id,
                &e.actor,
                &e.auth_method,
                &e.auth_issuer,
                &e.action,
                &e.target_type,
                &e.target_id,
                &e.outcome,
                &e.request_id,
                &e.client_addr,
                &details,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Writes `entries` in one statement, in their order (a function scan returns the array's
/// elements in order; for writers that record many actions at
/// once, such as several submits sharing a transaction). Returns how many were written.
pub async fn record_many(db: &impl Db, entries: &[AuditEntry<'_>]) -> Result<u64, StoreError> {
    if entries.is_empty() {
        return Ok(0);
    }
    let rows = serde_json::to_value(entries)
        .map_err(|e| StoreError::Corrupt(format!("audit entries do not serialise: {e}")))?;
    Ok(db
        .execute(
            concat!(
                "INSERT INTO audit_log (",
                audit_entry_columns!(),
                ") SELECT actor_user_id, actor, auth_method, auth_issuer, action, target_type, \
                   target_id, outcome, request_id, client_addr, coalesce(details, '{}'::jsonb) \
                 FROM jsonb_to_recordset($1::jsonb) AS e(",
                audit_entry_record!(),
                ")"
            ),
            &[&rows],
        )
        .await?)
}

/// The newest entries, optionally for one actor.
pub async fn recent(
    db: &impl Db,
    actor: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditRecord>, StoreError> {
    search(
        db,
        &AuditFilter {
            actor: actor.map(str::to_owned),
            limit,
            ..AuditFilter::default()
        },
    )
    .await
}

/// Filter for [`search`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this action (exact, or a prefix ending in `.`: `reservation.`).
    pub action: Option<String>,
    /// From this time (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Until this time (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

/// Audit entries matching `f`, newest first.
pub async fn search(db: &impl Db, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
    let action_prefix = f
        .action
        .as_deref()
        .filter(|a| a.ends_with('.'))
        .map(|a| format!("{}%", a.replace('%', "").replace('_', "\\_")));
    let action_exact = f.action.as_deref().filter(|a| !a.ends_with('.'));
    // Only the filters given appear in the statement (one text per combination, at most 16), so
    // each text's plan fits its filters whatever the parameter values.
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
    if let Some(actor) = &f.actor {
        params.push(actor);
        conditions.push(format!("actor = ${}", params.len()));
    }
    if let Some(action) = &action_exact {
        params.push(action);
        conditions.push(format!("action = ${}", params.len()));
    } else if let Some(prefix) = &action_prefix {
        params.push(prefix);
        conditions.push(format!("action LIKE ${}", params.len()));
    }
    if let Some(from) = &f.from {
        params.push(from);
        conditions.push(format!("occurred_at >= ${}", params.len()));
    }
    if let Some(to) = &f.to {
        params.push(to);
        conditions.push(format!("occurred_at < ${}", params.len()));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    params.push(&f.limit);
    params.push(&f.offset);
    let sql = format!(
        "SELECT audit_id, occurred_at, actor, auth_method, auth_issuer, action, target_type, \
           target_id, outcome, details FROM audit_log {filter} \
         ORDER BY audit_id DESC LIMIT ${} OFFSET ${}",
        params.len() - 1,
        params.len()
    );
    let rows = db.query(&sql, &params).await?;
    Ok(rows
        .iter()
        .map(|r| AuditRecord {
            audit_id: r.get(0),
            occurred_at: r.get(1),
            actor: r.get(2),
            auth_method: r.get(3),
            auth_issuer: r.get(4),
            action: r.get(5),
            target_type: r.get(6),
            target_id: r.get(7),
            outcome: r.get(8),
            details: r.get(9),
        })
        .collect())
}
