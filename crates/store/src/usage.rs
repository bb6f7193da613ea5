//! GPU usage: GPU-hours per user and GPU type over a time window, from reservations' run times.

use crate::{Db, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// GPU-hours one user spent on one GPU type in a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct UsageRow {
    pub username: String,
    pub gpu_type: String,
    /// Reservations that ran in the window.
    pub reservations: i64,
    /// GPU count × hours running inside the window.
    pub gpu_hours: f64,
    /// GPU count × hours their dev boxes' agents reported idle (ADR 18), over the whole of
    /// each reservation counted (not clipped to the window).
    pub idle_gpu_hours: f64,
}

/// Usage in `[from, to)`: each reservation counts from `launched_at` to `ended_at` (or now while
/// running), clipped to the window, times its GPU count. Reservations that never ran count nothing.
/// Their idle time is what their agents reported.
pub async fn gpu_hours(
    db: &impl Db,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsageRow>, StoreError> {
    let rows = db
        .query(
            "SELECT u.username, r.gpu_type, count(*) AS reservations, \
               sum(r.gpu_count * extract(epoch FROM \
                 least(coalesce(r.ended_at, now()), $2) - greatest(r.launched_at, $1)) / 3600.0)::float8, \
               coalesce(sum(r.gpu_count * a.idle_seconds / 3600.0), 0)::float8 \
             FROM reservations r JOIN users u USING (user_id) \
             LEFT JOIN reservation_activity a USING (reservation_id) \
             WHERE r.launched_at IS NOT NULL AND r.launched_at < $2 \
               AND coalesce(r.ended_at, now()) > $1 \
             GROUP BY u.username, r.gpu_type ORDER BY u.username, r.gpu_type",
            &[&from, &to],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| UsageRow {
            username: r.get(0),
            gpu_type: r.get(1),
            reservations: r.get(2),
            gpu_hours: r.get(3),
            idle_gpu_hours: r.get(4),
        })
        .collect())
}
