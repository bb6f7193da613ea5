//! GPU usage: GPU-hours per user and GPU type over a time window, from reservations' run times.

use crate::{Db, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
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

/// The SQL of one rule for usage: a reservation counts from `launched_at` to `ended_at` (or now
/// while running), clipped to the window `[start, end)` (SQL expressions), times its GPU count.
/// Returns the GPU-hours expression and the condition for the reservation to overlap the window.
fn clipped(start: &str, end: &str) -> (String, String) {
    (
        format!(
            "r.gpu_count * extract(epoch FROM \
               least(coalesce(r.ended_at, now()), {end}) - greatest(r.launched_at, {start})) / 3600.0"
        ),
        format!(
            "r.launched_at IS NOT NULL AND r.launched_at < {end} \
             AND coalesce(r.ended_at, now()) > {start}"
        ),
    )
}

/// Usage in `[from, to)`: each reservation counts from `launched_at` to `ended_at` (or now while
/// running), clipped to the window, times its GPU count. Reservations that never ran count nothing.
/// Their idle time is what their agents reported.
pub async fn gpu_hours(
    db: &impl Db,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsageRow>, StoreError> {
    let (hours, overlaps) = clipped("$1", "$2");
    let rows = db
        .query(
            &format!(
                "SELECT u.username, r.gpu_type, count(*) AS reservations, sum({hours})::float8, \
                   coalesce(sum(r.gpu_count * a.idle_seconds / 3600.0), 0)::float8 \
                 FROM reservations r JOIN users u USING (user_id) \
                 LEFT JOIN reservation_activity a USING (reservation_id) \
                 WHERE {overlaps} \
                 GROUP BY u.username, r.gpu_type ORDER BY u.username, r.gpu_type"
            ),
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

/// GPU-hours one user spent on one GPU type on one day (UTC).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct DailyUsage {
    pub day: NaiveDate,
    pub username: String,
    pub gpu_type: String,
    pub gpu_hours: f64,
}

/// Usage in `[from, to)` per UTC day, user and GPU type, counted as [`gpu_hours`] counts it with
/// each day as the window (so the days of a window add up to its [`gpu_hours`]). Days without
/// usage have no rows.
pub async fn gpu_hours_by_day(
    db: &impl Db,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DailyUsage>, StoreError> {
    let (hours, overlaps) = clipped("greatest(d.day, $1)", "least(d.day + interval '1 day', $2)");
    let rows = db
        .query(
            &format!(
                "SELECT (d.day AT TIME ZONE 'UTC')::date, u.username, r.gpu_type, sum({hours})::float8 \
                 FROM generate_series(date_trunc('day', $1, 'UTC'), $2, interval '1 day') AS d(day) \
                 JOIN reservations r ON {overlaps} \
                 JOIN users u USING (user_id) \
                 WHERE d.day < $2 \
                 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            ),
            &[&from, &to],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DailyUsage {
            day: r.get(0),
            username: r.get(1),
            gpu_type: r.get(2),
            gpu_hours: r.get(3),
        })
        .collect())
}
