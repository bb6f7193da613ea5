//! The scheduling pass's SQL (the processor's leader): the snapshot a pass reads, the batched,
//! guarded writes it makes, and the few single-row updates of admitted reservations. Single-reservation status changes go through
//! [`crate::reservations::transition`]; the batched statements here follow the same rules
//! (a guard on the current status, the same columns set, one `reservation_events` row per
//! change) so that a pass over thousands of reservations is a handful of statements.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use gpudev_domain::{
    GpuCatalog, GpuType, Pending, Promise, ReservationKey, ReservationStatus, Username,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{Db, StoreError};

/// A live reservation as the scheduler and the reconciler see it.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct LiveRow {
    pub reservation_id: Uuid,
    /// Owner's name.
    pub username: String,
    /// `queued`, `preparing` or `active`.
    pub status: ReservationStatus,
    pub gpu_type: String,
    /// GPUs over all nodes.
    pub gpu_count: i32,
    pub node_count: i32,
    pub priority: i32,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// Booked hours (duration plus extensions).
    pub hours: f64,
    /// When it was admitted.
    pub admitted_at: Option<DateTime<Utc>>,
    /// When it ends (active).
    pub expires_at: Option<DateTime<Utc>>,
    /// Its nodes (preparing, active).
    pub node_names: Vec<String>,
    /// Its fair-share tag, once a pass has seen it.
    pub queue_tag: Option<f64>,
    /// The start it was promised while queued, with [`LiveRow::promised_nodes`].
    pub promised_start_at: Option<DateTime<Utc>>,
    /// The nodes it was promised (empty without a promise).
    pub promised_nodes: Vec<String>,
    /// For a booking, the start its owner booked.
    pub start_at: Option<DateTime<Utc>>,
}

impl LiveRow {
    /// A queued row as the scheduler sees it, or why it cannot be scheduled (an unknown or
    /// no longer offered GPU type, a bad username).
    pub fn pending(&self, catalog: &GpuCatalog) -> Result<Pending<ReservationKey>, String> {
        let gpu_type = GpuType::parse(&self.gpu_type)
            .map_err(|e| format!("cannot be scheduled: GPU type {:?}: {e}", self.gpu_type))?;
        if catalog.get(&gpu_type).is_none() {
            return Err(format!(
                "cannot be scheduled: GPU type {gpu_type} is not offered"
            ));
        }
        let user = Username::parse(&self.username)
            .map_err(|e| format!("cannot be scheduled: owner {:?}: {e}", self.username))?;
        Ok(Pending {
            reservation_id: ReservationKey {
                submitted_micros: self.created_at.timestamp_micros(),
                id: self.reservation_id,
            },
            user,
            gpu_type,
            gpu_count: u32::try_from(self.gpu_count.max(0)).unwrap_or(0),
            nodes: u32::try_from(self.node_count.max(1)).unwrap_or(1),
            priority: self.priority,
            submitted_at: self.created_at.timestamp(),
            duration_secs: (self.hours * 3600.0).round() as i64,
            tag: self.queue_tag,
            promise: self.promised_start_at.map(|start| Promise {
                start: start.timestamp(),
                node_names: self.promised_nodes.clone(),
            }),
            start_at: self.start_at.map(|t| t.timestamp()),
        })
    }
}

fn parse_status(s: &str) -> Result<ReservationStatus, StoreError> {
    s.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))
}

/// The columns of a [`LiveRow`], in its order.
macro_rules! live_columns {
    () => {
        "SELECT r.reservation_id, u.username, r.status, r.gpu_type, r.gpu_count, \
           r.node_count, r.priority, r.created_at, r.duration_hours + r.extended_hours, \
           r.admitted_at, r.expires_at, r.node_names, r.queue_tag, r.promised_start_at, \
           coalesce(r.promised_nodes, '{}'), r.start_at \
         FROM reservations r JOIN users u USING (user_id) "
    };
}

/// Every queued, preparing and active reservation, but for groups still waiting for members.
pub async fn live_rows(db: &impl Db) -> Result<Vec<LiveRow>, StoreError> {
    let rows = db
        .query(
            concat!(
                live_columns!(),
                "WHERE r.status IN ",
                crate::live_statuses!(),
                // A group still waiting for its members (ADR 16) is not schedulable yet.
                " AND NOT (r.status = 'queued' AND r.group_waiting_for > 0)"
            ),
            &[],
        )
        .await?;
    live_rows_from(&rows)
}

/// Every booking still waiting for its time (queued with a booked start): what the submit of
/// another booking must not overlap, read as of now rather than as of the last pass, so a
/// booking cancelled a moment ago no longer stands in the way.
pub async fn queued_bookings(db: &impl Db) -> Result<Vec<LiveRow>, StoreError> {
    let rows = db
        .query(
            concat!(
                live_columns!(),
                "WHERE r.status = 'queued' AND r.start_at IS NOT NULL"
            ),
            &[],
        )
        .await?;
    live_rows_from(&rows)
}

fn live_rows_from(rows: &[tokio_postgres::Row]) -> Result<Vec<LiveRow>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok(LiveRow {
                reservation_id: r.get(0),
                username: r.get(1),
                status: parse_status(r.get(2))?,
                gpu_type: r.get(3),
                gpu_count: r.get(4),
                node_count: r.get(5),
                priority: r.get(6),
                created_at: r.get(7),
                hours: r.get(8),
                admitted_at: r.get(9),
                expires_at: r.get(10),
                node_names: r.get(11),
                queue_tag: r.get(12),
                promised_start_at: r.get(13),
                promised_nodes: r.get(14),
                start_at: r.get(15),
            })
        })
        .collect()
}

/// One stretch of GPU use, for fair share.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    /// Whose.
    pub username: String,
    /// GPUs held.
    pub gpus: i32,
    /// From.
    pub started_at: DateTime<Utc>,
    /// Until (now for reservations still running).
    pub ended_at: DateTime<Utc>,
}

/// Every reservation that ran within the last `horizon_secs` seconds.
pub async fn usage_rows(db: &impl Db, horizon_secs: f64) -> Result<Vec<UsageRow>, StoreError> {
    let rows = db
        .query(
            "SELECT u.username, r.gpu_count, r.launched_at, coalesce(r.ended_at, now()) \
             FROM reservations r JOIN users u USING (user_id) \
             WHERE r.launched_at IS NOT NULL AND r.gpu_count > 0 \
               AND (r.ended_at IS NULL OR r.ended_at > now() - make_interval(secs => $1))",
            &[&horizon_secs],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| UsageRow {
            username: r.get(0),
            gpus: r.get(1),
            started_at: r.get(2),
            ended_at: r.get(3),
        })
        .collect())
}

/// Where a waiting reservation stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionUpdate {
    /// The reservation whose position changes.
    pub id: Uuid,
    /// 1-based position in its GPU type's queue.
    pub position: i32,
    /// Estimated start.
    pub eta: Option<DateTime<Utc>>,
    /// What to show as its detailed status.
    pub detail: String,
    /// Its fair-share tag.
    pub tag: f64,
    /// The start it is promised (then equal to `eta`), if any.
    pub promised: Option<DateTime<Utc>>,
    /// The nodes it is promised (null without a promise).
    pub promised_nodes: Option<Vec<String>>,
    /// When its dev box is expected to be ready: `eta` plus the type's recent start-up time.
    pub ready: Option<DateTime<Utc>>,
}

/// Writes positions, estimates, tags, promises and detailed statuses of queued reservations in
/// one statement, touching only rows that are still queued and whose values changed; the first
/// estimate a reservation gets is kept. Returns rows changed.
pub async fn write_positions(db: &impl Db, updates: &[PositionUpdate]) -> Result<u64, StoreError> {
    if updates.is_empty() {
        return Ok(0);
    }
    let json = serde_json::to_value(updates)
        .map_err(|e| StoreError::Corrupt(format!("positions do not serialise: {e}")))?;
    Ok(db
        .execute(
            "UPDATE reservations r SET queue_position = u.position, estimated_start_at = u.eta, \
               detailed_status = u.detail, queue_tag = u.tag, promised_start_at = u.promised, \
               promised_nodes = u.promised_nodes, estimated_ready_at = u.ready, \
               first_estimated_start_at = coalesce(r.first_estimated_start_at, u.eta) \
             FROM jsonb_to_recordset($1::jsonb) AS u(id uuid, position int, eta timestamptz, \
               detail text, tag float8, promised timestamptz, promised_nodes text[], \
               ready timestamptz) \
             WHERE r.reservation_id = u.id AND r.status = 'queued' \
               AND (r.queue_position IS DISTINCT FROM u.position \
                    OR r.estimated_start_at IS DISTINCT FROM u.eta \
                    OR r.detailed_status IS DISTINCT FROM u.detail \
                    OR r.queue_tag IS DISTINCT FROM u.tag \
                    OR r.promised_start_at IS DISTINCT FROM u.promised \
                    OR r.promised_nodes IS DISTINCT FROM u.promised_nodes \
                    OR r.estimated_ready_at IS DISTINCT FROM u.ready)",
            &[&json],
        )
        .await?)
}

/// A change to a queued reservation's promise, for its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromiseEvent {
    /// The reservation.
    pub id: Uuid,
    /// What happened, in words (`promised to start at …`, `promise moved: …`).
    pub reason: String,
    /// The promised start (none when the promise was withdrawn).
    pub start: Option<DateTime<Utc>>,
    /// The start promised before, when the promise moved.
    pub previous: Option<DateTime<Utc>>,
}

/// Records promise changes as `estimate` events of reservations that are still queued.
pub async fn record_promises(
    db: &impl Db,
    events: &[PromiseEvent],
    actor: &str,
) -> Result<u64, StoreError> {
    if events.is_empty() {
        return Ok(0);
    }
    let json = serde_json::to_value(events)
        .map_err(|e| StoreError::Corrupt(format!("promise events do not serialise: {e}")))?;
    Ok(db
        .execute(
            "INSERT INTO reservation_events (reservation_id, kind, reason, actor, details) \
             SELECT e.id, 'estimate', e.reason, $2, \
               jsonb_strip_nulls(jsonb_build_object('promised_start', e.start, \
                 'previous_promised_start', e.previous)) \
             FROM jsonb_to_recordset($1::jsonb) AS e(id uuid, reason text, start timestamptz, \
               previous timestamptz) \
             JOIN reservations r ON r.reservation_id = e.id AND r.status = 'queued'",
            &[&json, &actor],
        )
        .await?)
}

/// The median time from admission to a running dev box over the last `recent` launches of each
/// of `gpu_types` within the last week, in seconds (types without launches are absent).
pub async fn startup_medians(
    db: &impl Db,
    gpu_types: &[&str],
    recent: i64,
) -> Result<Vec<(String, f64)>, StoreError> {
    let rows = db
        .query(
            "SELECT t.gpu_type, percentile_cont(0.5) WITHIN GROUP (ORDER BY l.secs) \
             FROM unnest($2::text[]) AS t(gpu_type) \
             CROSS JOIN LATERAL ( \
               SELECT extract(epoch FROM launched_at - admitted_at)::float8 AS secs \
               FROM reservations r \
               WHERE r.gpu_type = t.gpu_type AND launched_at IS NOT NULL \
                 AND admitted_at IS NOT NULL AND launched_at > now() - interval '7 days' \
               ORDER BY launched_at DESC LIMIT $1) l \
             GROUP BY t.gpu_type",
            &[&recent, &gpu_types],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Each GPU type's fair-share virtual time.
pub async fn clocks(db: &impl Db) -> Result<Vec<(String, f64)>, StoreError> {
    let rows = db
        .query("SELECT gpu_type, virtual_time FROM scheduler_clocks", &[])
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Moves the GPU types' virtual times forward (never back).
pub async fn advance_clocks(db: &impl Db, clocks: &[(String, f64)]) -> Result<u64, StoreError> {
    if clocks.is_empty() {
        return Ok(0);
    }
    let types: Vec<&str> = clocks.iter().map(|(t, _)| t.as_str()).collect();
    let times: Vec<f64> = clocks.iter().map(|(_, v)| *v).collect();
    Ok(db
        .execute(
            "INSERT INTO scheduler_clocks AS c (gpu_type, virtual_time) \
             SELECT * FROM unnest($1::text[], $2::float8[]) \
             ON CONFLICT (gpu_type) DO UPDATE SET virtual_time = excluded.virtual_time, \
               updated_at = now() \
             WHERE c.virtual_time < excluded.virtual_time",
            &[&types, &times],
        )
        .await?)
}

/// An admission to record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdmissionRow {
    /// The reservation admitted.
    pub id: Uuid,
    /// Its nodes, node 0 first.
    pub nodes: Vec<String>,
    /// The name of its (first) Pod.
    pub pod_name: String,
    /// The event reason and detailed status.
    pub reason: String,
    /// Its fair-share tag (kept while it runs).
    pub tag: f64,
}

/// Moves queued reservations to `preparing` with their placement, in one statement: exactly what
/// [`crate::reservations::transition`] does for `preparing`, plus the nodes, Pod name and
/// namespace. Reservations no longer queued (cancelled meanwhile) are skipped. Returns the ids
/// admitted.
pub async fn admit(
    db: &impl Db,
    admissions: &[AdmissionRow],
    namespace: &str,
    actor: &str,
) -> Result<Vec<Uuid>, StoreError> {
    if admissions.is_empty() {
        return Ok(Vec::new());
    }
    let json = serde_json::to_value(admissions)
        .map_err(|e| StoreError::Corrupt(format!("admissions do not serialise: {e}")))?;
    let rows = db
        .query(
            "WITH a AS (SELECT * FROM jsonb_to_recordset($1::jsonb) \
                          AS a(id uuid, nodes text[], pod_name text, reason text, tag float8)), \
                  upd AS ( \
                    UPDATE reservations r SET status = 'preparing', detailed_status = a.reason, \
                      queue_position = NULL, estimated_start_at = NULL, admitted_at = now(), \
                      node_names = a.nodes, pod_name = a.pod_name, namespace = $2, \
                      queue_tag = a.tag, promised_start_at = NULL, promised_nodes = NULL, \
                      first_estimated_start_at = coalesce(r.first_estimated_start_at, now()) \
                    FROM a WHERE r.reservation_id = a.id AND r.status = 'queued' \
                    RETURNING r.reservation_id, a.reason), \
                  ev AS ( \
                    INSERT INTO reservation_events (reservation_id, kind, from_status, to_status, reason, actor) \
                    SELECT reservation_id, 'transition', 'queued', 'preparing', reason, $3 FROM upd) \
             SELECT reservation_id FROM upd",
            &[&json, &namespace, &actor],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Fails queued reservations that can never run, with their reasons, in one statement (as
/// [`crate::reservations::transition`] to `failed` does). Returns the ids failed.
pub async fn fail_queued(
    db: &impl Db,
    failures: &[(Uuid, String)],
    actor: &str,
) -> Result<Vec<Uuid>, StoreError> {
    if failures.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = failures.iter().map(|(id, _)| *id).collect();
    let reasons: Vec<&str> = failures.iter().map(|(_, r)| r.as_str()).collect();
    let rows = db
        .query(
            "WITH f AS (SELECT * FROM unnest($1::uuid[], $2::text[]) AS f(id, reason)), \
                  upd AS ( \
                    UPDATE reservations r SET status = 'failed', detailed_status = f.reason, \
                      failure_reason = f.reason, queue_position = NULL, estimated_start_at = NULL, \
                      ended_at = now() \
                    FROM f WHERE r.reservation_id = f.id AND r.status = 'queued' \
                    RETURNING r.reservation_id, f.reason), \
                  ev AS ( \
                    INSERT INTO reservation_events (reservation_id, kind, from_status, to_status, reason, actor) \
                    SELECT reservation_id, 'transition', 'queued', 'failed', reason, $3 FROM upd) \
             SELECT reservation_id FROM upd",
            &[&ids, &reasons, &actor],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// How users reach an active dev box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The node's address.
    pub node_ip: String,
    /// The SSH NodePort.
    pub node_port: i32,
    /// `ssh -p <port> dev@<ip>`.
    pub ssh_command: String,
    /// The Jupyter URL, when enabled.
    pub jupyter_url: Option<String>,
    /// The node's instance type, when labelled.
    pub instance_type: Option<String>,
}

/// Records the connection details of an active reservation.
pub async fn record_connection(db: &impl Db, id: Uuid, c: &Connection) -> Result<(), StoreError> {
    db.execute(
        "UPDATE reservations SET node_ip = $2, node_port = $3, ssh_command = $4, jupyter_url = $5, \
           instance_type = coalesce($6, instance_type), detailed_status = 'ready' \
         WHERE reservation_id = $1 AND status = 'active'",
        &[
            &id,
            &c.node_ip,
            &c.node_port,
            &c.ssh_command,
            &c.jupyter_url,
            &c.instance_type,
        ],
    )
    .await?;
    Ok(())
}

/// Sets the detailed status of a reservation while it is in `status`.
pub async fn set_detail(
    db: &impl Db,
    id: Uuid,
    status: ReservationStatus,
    detail: &str,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE reservations SET detailed_status = $3 \
         WHERE reservation_id = $1 AND status = $2 AND detailed_status IS DISTINCT FROM $3",
        &[&id, &status.as_str(), &detail],
    )
    .await?;
    Ok(())
}

/// Records a failed attempt to fetch a `preparing` reservation's SSH keys: `detail` becomes its
/// detailed status and a `note` event carries `details` with the attempt's number, all in one
/// statement guarded by the status. Returns the attempt's number (1 for the first), or `None`
/// when the reservation is no longer preparing (nothing written).
pub async fn record_key_attempt(
    db: &impl Db,
    id: Uuid,
    detail: &str,
    details: &serde_json::Value,
) -> Result<Option<i64>, StoreError> {
    let row = db
        .query_opt(
            "WITH n AS ( \
               SELECT count(*) + 1 AS attempt FROM reservation_events \
               WHERE reservation_id = $1 AND kind = 'note' AND details ? 'ssh_key_attempt'), \
             upd AS ( \
               UPDATE reservations SET detailed_status = replace($2, '{attempt}', n.attempt::text) \
               FROM n WHERE reservation_id = $1 AND status = 'preparing' \
               RETURNING reservation_id, n.attempt), \
             ev AS ( \
               INSERT INTO reservation_events (reservation_id, kind, reason, actor, details) \
               SELECT reservation_id, 'note', replace($2, '{attempt}', attempt::text), \
                 'processor', $3::jsonb || jsonb_build_object('ssh_key_attempt', attempt) \
               FROM upd) \
             SELECT attempt FROM upd",
            &[&id, &detail, &details],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// How many times a reservation was sent back from `preparing` to the queue.
pub async fn requeue_count(db: &impl Db, id: Uuid) -> Result<i64, StoreError> {
    let row = db
        .query_one(
            "SELECT count(*) FROM reservation_events WHERE reservation_id = $1 \
               AND kind = 'transition' AND from_status = 'preparing' AND to_status = 'queued'",
            &[&id],
        )
        .await?;
    Ok(row.get(0))
}

/// The statuses of some reservations (ids without a row are absent).
pub async fn statuses(
    db: &impl Db,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, ReservationStatus>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = db
        .query(
            "SELECT reservation_id, status FROM reservations WHERE reservation_id = ANY($1)",
            &[&ids],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.get(0), parse_status(r.get(1))?)))
        .collect()
}

/// Stores `candidate` as the reservation's Jupyter token unless it has one; returns the token
/// in effect.
pub async fn ensure_jupyter_token(
    db: &impl Db,
    id: Uuid,
    candidate: &str,
) -> Result<Option<String>, StoreError> {
    let row = db
        .query_opt(
            "UPDATE reservations SET jupyter_token = coalesce(jupyter_token, $2) \
             WHERE reservation_id = $1 RETURNING jupyter_token",
            &[&id, &candidate],
        )
        .await?;
    Ok(row.and_then(|r| r.get(0)))
}

/// Sets (or clears) the Jupyter URL of an active reservation.
pub async fn set_jupyter_url(db: &impl Db, id: Uuid, url: Option<&str>) -> Result<(), StoreError> {
    db.execute(
        "UPDATE reservations SET jupyter_url = $2 WHERE reservation_id = $1 AND status = 'active'",
        &[&id, &url],
    )
    .await?;
    Ok(())
}

/// Disks still attached to reservations that were cancelled or failed: `(disk_id, reservation)`.
/// (Expired reservations keep theirs until the expiry job has snapshotted them.)
pub async fn disks_of_ended(db: &impl Db) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
    let rows = db
        .query(
            "SELECT d.disk_id, d.reservation_id FROM disks d JOIN reservations r USING (reservation_id) \
             WHERE r.status IN ('cancelled', 'failed')",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Publishes the queue state of a pass (see `gpudev_domain::QueueState`), replacing the last.
pub async fn publish_state(
    db: &impl Db,
    taken_at: DateTime<Utc>,
    state: &serde_json::Value,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO scheduler_state (id, generation, taken_at, state) VALUES (true, 1, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET generation = scheduler_state.generation + 1, \
           taken_at = excluded.taken_at, state = excluded.state",
        &[&taken_at, state],
    )
    .await?;
    Ok(())
}

/// The generation of the published queue state (none before the first pass).
pub async fn state_generation(db: &impl Db) -> Result<Option<i64>, StoreError> {
    let row = db
        .query_opt("SELECT generation FROM scheduler_state", &[])
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The published queue state with its generation.
pub async fn published_state(db: &impl Db) -> Result<Option<(i64, serde_json::Value)>, StoreError> {
    let row = db
        .query_opt("SELECT generation, state FROM scheduler_state", &[])
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}
