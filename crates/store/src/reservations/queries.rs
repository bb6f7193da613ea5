//! Reading reservations: one, by prefix, pages with their events, the live ones and queue
//! standings.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use gpudev_domain::ReservationStatus;
use tokio_postgres::Row;
use uuid::Uuid;

use super::model::{
    ACTIVITY_JSON, COLUMNS, EVENTS_JSON, Event, Reservation, events_from_json, from_row,
};
use crate::error::NotFound;
use crate::{Db, StoreError};

/// How many reservations of one GPU type are in one live status, and their GPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCount {
    /// The GPU type.
    pub gpu_type: String,
    /// `queued`, `preparing` or `active`.
    pub status: ReservationStatus,
    /// Reservations.
    pub reservations: i64,
    /// Their GPUs in total.
    pub gpus: i64,
}

/// The `queued`, `preparing` and `active` reservations counted per GPU type and status: one
/// aggregate, however long the queue, ordered by type and status.
pub async fn live_counts(db: &impl Db) -> Result<Vec<LiveCount>, StoreError> {
    let rows = db
        .query(
            concat!(
                "SELECT gpu_type, status, count(*), coalesce(sum(gpu_count), 0)::bigint \
                 FROM reservations WHERE status IN ",
                crate::live_statuses!(),
                " GROUP BY gpu_type, status ORDER BY gpu_type, status"
            ),
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let status: &str = r.get(1);
            Ok(LiveCount {
                gpu_type: r.get(0),
                status: status
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("{e}")))?,
                reservations: r.get(2),
                gpus: r.get(3),
            })
        })
        .collect()
}

pub(super) async fn get_in(db: &impl Db, id: Uuid) -> Result<Reservation, StoreError> {
    find(db, id)
        .await?
        .ok_or(StoreError::NotFound(NotFound::Reservation(id)))
}

/// A reservation by id.
pub async fn find(db: &impl Db, id: Uuid) -> Result<Option<Reservation>, StoreError> {
    let row = db
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM reservations r JOIN users u USING (user_id) \
                 WHERE r.reservation_id = $1"
            ),
            &[&id],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A reservation by id with its history (oldest event first), in one statement.
pub async fn find_with_events(
    db: &impl Db,
    id: Uuid,
) -> Result<Option<(Reservation, Vec<Event>)>, StoreError> {
    let row = db
        .query_opt(
            &format!(
                "SELECT {COLUMNS}, {EVENTS_JSON} FROM reservations r JOIN users u USING (user_id) \
                 WHERE r.reservation_id = $1"
            ),
            &[&id],
        )
        .await?;
    row.map(|r| Ok((from_row(&r)?, events_from_json(&r)?)))
        .transpose()
}

/// A reservation by id, or a not-found error.
pub async fn get(db: &impl Db, id: Uuid) -> Result<Reservation, StoreError> {
    get_in(db, id).await
}

/// Reservations whose id starts with `prefix` (hex digits and dashes), for `gpu-dev show abc123`.
/// `owner` limits the search to one user's reservations. At most `limit` rows.
pub async fn find_by_prefix(
    db: &impl Db,
    prefix: &str,
    owner: Option<i64>,
    limit: i64,
) -> Result<Vec<Reservation>, StoreError> {
    let clean: String = prefix
        .chars()
        .filter(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect::<String>()
        .to_ascii_lowercase();
    if clean.is_empty() || clean.len() != prefix.len() {
        return Ok(Vec::new());
    }
    let pattern = format!("{clean}%");
    // One text per case: a plan made without knowing the owner could not read only the owner's
    // reservations from the user index.
    let rows = match owner {
        Some(owner) => {
            db.query(
                &format!(
                    "SELECT {COLUMNS} FROM reservations r JOIN users u USING (user_id) \
                     WHERE r.user_id = $2 AND r.reservation_id::text LIKE $1 \
                     ORDER BY r.created_at DESC LIMIT $3"
                ),
                &[&pattern, &owner, &limit],
            )
            .await?
        }
        None => {
            db.query(
                &format!(
                    "SELECT {COLUMNS} FROM reservations r JOIN users u USING (user_id) \
                     WHERE r.reservation_id::text LIKE $1 ORDER BY r.created_at DESC LIMIT $2"
                ),
                &[&pattern, &limit],
            )
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// Filter for [`list`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this user's reservations; `None` lists everyone's (admins).
    pub user_id: Option<i64>,
    /// Only these statuses; empty means all.
    pub statuses: Vec<ReservationStatus>,
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

/// Reservations newest first (with their boxes' activity, not their histories), with the total
/// number matching the filter.
pub async fn list(
    db: &impl Db,
    filter: &ListFilter,
) -> Result<(Vec<Reservation>, i64), StoreError> {
    let (rows, total) = list_rows(db, filter, false).await?;
    let page = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok((page, total))
}

/// [`list`] with each reservation's history (oldest event first), all in one statement.
pub async fn list_with_events(
    db: &impl Db,
    filter: &ListFilter,
) -> Result<(Vec<(Reservation, Vec<Event>)>, i64), StoreError> {
    let (rows, total) = list_rows(db, filter, true).await?;
    let page = rows
        .iter()
        .map(|r| Ok((from_row(r)?, events_from_json(r)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((page, total))
}

/// The page's rows, newest first (none when the page is past the end), and the total, in one
/// statement: the total comes from its own count, so it is right for an empty page too, and the
/// page comes from the `(user_id, created_at)` index when listing one user's reservations. With
/// `with_events`, each row carries its history as a JSON array in `events`.
async fn list_rows(
    db: &impl Db,
    filter: &ListFilter,
    with_events: bool,
) -> Result<(Vec<Row>, i64), StoreError> {
    static SQL: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        let sql = |by_user: bool, by_status: bool, with_events: bool| {
            // A separate text per case keeps each prepared statement's plan simple: a cached
            // generic plan of `($1 IS NULL OR user_id = $1)` could not use the index, and without
            // a status filter one user's total is counted from the index alone.
            let user = if by_user {
                "r.user_id = $1"
            } else {
                "$1::bigint IS NULL"
            };
            let status = if by_status {
                "r.status = ANY($2::text[])"
            } else {
                "cardinality($2::text[]) = 0"
            };
            let filter = format!("{user} AND {status}");
            // One aggregate per row (evaluated after the LIMIT), not one per column: the plan
            // stays small, and setting a plan up is a good part of the cost of a short list.
            // Without the histories, the boxes' activity all the same (a lookup per row).
            let events = if with_events {
                format!(", {EVENTS_JSON}")
            } else {
                format!(", {ACTIVITY_JSON}")
            };
            format!(
                "SELECT t.total, p.* \
                 FROM (SELECT count(*) AS total FROM reservations r WHERE {filter}) t \
                 LEFT JOIN LATERAL ( \
                   SELECT {COLUMNS}{events} FROM reservations r JOIN users u USING (user_id) \
                   WHERE {filter} ORDER BY r.created_at DESC, r.reservation_id LIMIT $3 OFFSET $4 \
                 ) p ON true"
            )
        };
        (0..8)
            .map(|i| sql(i & 4 != 0, i & 2 != 0, i & 1 != 0))
            .collect()
    });
    let index = usize::from(filter.user_id.is_some()) * 4
        + usize::from(!filter.statuses.is_empty()) * 2
        + usize::from(with_events);
    let sql = &SQL[index];
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let mut rows = db
        .query(
            sql,
            &[&filter.user_id, &statuses, &filter.limit, &filter.offset],
        )
        .await?;
    let total = rows.first().map(|r| r.get("total")).unwrap_or(0);
    // Past the end of the list the one row carries only the total.
    rows.retain(|r| r.get::<_, Option<Uuid>>("reservation_id").is_some());
    // The join keeps the page's order in practice; sorting here (at most one page) makes it a
    // guarantee without another sort in the plan.
    rows.sort_by(|a, b| {
        let key = |r: &Row| {
            (
                std::cmp::Reverse(r.get::<_, DateTime<Utc>>("created_at")),
                r.get::<_, Uuid>("reservation_id"),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok((rows, total))
}

/// A reservation's history, oldest first.
pub async fn events(db: &impl Db, id: Uuid) -> Result<Vec<Event>, StoreError> {
    let rows = db
        .query(
            "SELECT event_id, kind, from_status, to_status, reason, actor, details, created_at \
             FROM reservation_events WHERE reservation_id = $1 ORDER BY event_id",
            &[&id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Event {
            event_id: r.get(0),
            kind: r.get(1),
            from_status: r.get(2),
            to_status: r.get(3),
            reason: r.get(4),
            actor: r.get(5),
            details: r.get(6),
            created_at: r.get(7),
        })
        .collect())
}

/// The histories of several reservations at once (one query), oldest event first.
pub async fn events_of_many(
    db: &impl Db,
    ids: &[Uuid],
) -> Result<BTreeMap<Uuid, Vec<Event>>, StoreError> {
    let rows = db
        .query(
            "SELECT event_id, kind, from_status, to_status, reason, actor, details, created_at, \
               reservation_id \
             FROM reservation_events WHERE reservation_id = ANY($1) ORDER BY event_id",
            &[&ids],
        )
        .await?;
    let mut out: BTreeMap<Uuid, Vec<Event>> = BTreeMap::new();
    for r in &rows {
        out.entry(r.get(8)).or_default().push(Event {
            event_id: r.get(0),
            kind: r.get(1),
            from_status: r.get(2),
            to_status: r.get(3),
            reason: r.get(4),
            actor: r.get(5),
            details: r.get(6),
            created_at: r.get(7),
        });
    }
    Ok(out)
}
