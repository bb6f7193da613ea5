//! Reservations, their secrets and their event history.
//!
//! [`submit`] writes the row, its creation event and the PGMQ message in one transaction, so a
//! reservation is never acknowledged without a message and a message never names a missing row.
//! [`transition`] is the only way a status changes: one statement that locks the row, applies the
//! change only when the current status is an allowed predecessor, and records the event.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use gpudev_domain::ReservationStatus;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{Client, Row};
use uuid::Uuid;

use crate::error::NotFound;
use crate::hints::{QueueMessage, ReservationHint};
use crate::{Db, Queue, StoreError};

/// A reservation to create. The fields are already validated by the domain layer.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReservation {
    /// Id chosen by the server.
    pub reservation_id: Uuid,
    /// Owner's id.
    pub user_id: i64,
    /// Owner's name (copied into the queue message for logs).
    pub username: String,
    /// Display name.
    pub name: Option<String>,
    /// GPU type name.
    pub gpu_type: String,
    /// GPUs in total (across nodes).
    pub gpu_count: i32,
    /// Nodes (1 unless multi-node).
    pub node_count: i32,
    /// Requested duration.
    pub duration_hours: f64,
    /// Container image.
    pub image: String,
    /// Environment for the pod. Values are secrets: stored apart, never returned.
    pub env: BTreeMap<String, String>,
    /// Persistent disk to mount.
    pub disk_name: Option<String>,
    /// Start Jupyter.
    pub jupyter_enabled: bool,
    /// GitHub login whose keys are installed.
    pub github_user: Option<String>,
    /// Scheduling priority, -100..=100.
    pub priority: i32,
    /// Client-chosen key that makes retries of the same submit return the first result.
    pub idempotency_key: Option<String>,
    /// Version of the submitting CLI.
    pub cli_version: Option<String>,
    /// SHA-256 (hex) of the canonical request body, to tell a retry from a different request.
    pub request_hash: Option<String>,
    /// Command to run in the dev box (the original API's `command`).
    pub command: Option<String>,
    /// Size of the persistent disk when it has to be created (10–10000 GB).
    pub disk_size_gb: Option<i32>,
}

/// A stored reservation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct Reservation {
    pub reservation_id: Uuid,
    /// Owner's id.
    pub user_id: i64,
    /// Owner's name.
    pub username: String,
    /// Where it is in its life.
    pub status: ReservationStatus,
    /// Human-readable progress ("waiting for 4 h100 GPUs", "pulling image").
    pub detailed_status: Option<String>,
    /// Why it failed or was cancelled.
    pub failure_reason: Option<String>,
    /// Display name.
    pub name: Option<String>,
    pub gpu_type: String,
    /// GPUs in total.
    pub gpu_count: i32,
    pub node_count: i32,
    /// Requested duration.
    pub duration_hours: f64,
    /// Hours added by extensions.
    pub extended_hours: f64,
    /// Container image.
    pub image: String,
    /// Names (never values) of the environment variables given.
    pub env_names: Vec<String>,
    /// Persistent disk.
    pub disk_name: Option<String>,
    /// Jupyter wanted.
    pub jupyter_enabled: bool,
    /// GitHub login for keys.
    pub github_user: Option<String>,
    /// Other GitHub users given access.
    pub secondary_users: Vec<String>,
    /// Scheduling priority.
    pub priority: i32,
    /// Client's idempotency key.
    pub idempotency_key: Option<String>,
    pub cli_version: Option<String>,
    /// 1-based position in its queue while queued.
    pub queue_position: Option<i32>,
    /// Estimated start while queued.
    pub estimated_start_at: Option<DateTime<Utc>>,
    /// Node instance type once placed.
    pub instance_type: Option<String>,
    /// Kubernetes namespace of its pod.
    pub namespace: Option<String>,
    pub pod_name: Option<String>,
    /// Nodes it was placed on.
    pub node_names: Vec<String>,
    /// Address users SSH to.
    pub node_ip: Option<String>,
    /// Port users SSH to.
    pub node_port: Option<i32>,
    /// Ready-made SSH command.
    pub ssh_command: Option<String>,
    pub jupyter_url: Option<String>,
    /// Expiry warnings already sent (levels such as `30m`).
    pub warnings_sent: Vec<String>,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it was admitted (entered `preparing`).
    pub admitted_at: Option<DateTime<Utc>>,
    /// When it became active.
    pub launched_at: Option<DateTime<Utc>>,
    /// When it ends unless extended.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it reached a terminal state.
    pub ended_at: Option<DateTime<Utc>>,
    /// SHA-256 (hex) of the canonical request body it was submitted with.
    pub request_hash: Option<String>,
    /// Token of its Jupyter server (for its owner).
    pub jupyter_token: Option<String>,
    /// Command to run in the dev box.
    pub command: Option<String>,
    /// Size of the persistent disk when it has to be created.
    pub disk_size_gb: Option<i32>,
}

const COLUMNS: &str = "r.reservation_id, r.user_id, u.username, r.status, r.detailed_status, \
    r.failure_reason, r.name, r.gpu_type, r.gpu_count, r.node_count, r.duration_hours, \
    r.extended_hours, r.image, r.env_names, r.disk_name, r.jupyter_enabled, r.github_user, \
    r.secondary_users, r.priority, r.idempotency_key, r.cli_version, r.queue_position, \
    r.estimated_start_at, r.instance_type, r.namespace, r.pod_name, r.node_names, r.node_ip, \
    r.node_port, r.ssh_command, r.jupyter_url, r.warnings_sent, r.created_at, r.updated_at, \
    r.admitted_at, r.launched_at, r.expires_at, r.ended_at, r.request_hash, r.jupyter_token, \
    r.command, r.disk_size_gb";

fn from_row(r: &Row) -> Result<Reservation, StoreError> {
    let status: &str = r.get("status");
    Ok(Reservation {
        reservation_id: r.get("reservation_id"),
        user_id: r.get("user_id"),
        username: r.get("username"),
        status: status
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("{e}")))?,
        detailed_status: r.get("detailed_status"),
        failure_reason: r.get("failure_reason"),
        name: r.get("name"),
        gpu_type: r.get("gpu_type"),
        gpu_count: r.get("gpu_count"),
        node_count: r.get("node_count"),
        duration_hours: r.get("duration_hours"),
        extended_hours: r.get("extended_hours"),
        image: r.get("image"),
        env_names: r.get("env_names"),
        disk_name: r.get("disk_name"),
        jupyter_enabled: r.get("jupyter_enabled"),
        github_user: r.get("github_user"),
        secondary_users: r.get("secondary_users"),
        priority: r.get("priority"),
        idempotency_key: r.get("idempotency_key"),
        cli_version: r.get("cli_version"),
        queue_position: r.get("queue_position"),
        estimated_start_at: r.get("estimated_start_at"),
        instance_type: r.get("instance_type"),
        namespace: r.get("namespace"),
        pod_name: r.get("pod_name"),
        node_names: r.get("node_names"),
        node_ip: r.get("node_ip"),
        node_port: r.get("node_port"),
        ssh_command: r.get("ssh_command"),
        jupyter_url: r.get("jupyter_url"),
        warnings_sent: r.get("warnings_sent"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        admitted_at: r.get("admitted_at"),
        launched_at: r.get("launched_at"),
        expires_at: r.get("expires_at"),
        ended_at: r.get("ended_at"),
        request_hash: r.get("request_hash"),
        jupyter_token: r.get("jupyter_token"),
        command: r.get("command"),
        disk_size_gb: r.get("disk_size_gb"),
    })
}

/// The outcome of [`submit`].
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// A new reservation was stored and its message sent.
    Created {
        /// The stored reservation.
        reservation: Box<Reservation>,
        /// The PGMQ message id.
        msg_id: i64,
    },
    /// The idempotency key was used before: the first reservation, untouched, and no new message.
    Existing(Box<Reservation>),
}

/// Stores a reservation as `queued`, records its creation event, and sends its PGMQ message, all in
/// one transaction. When the owner already used the idempotency key, nothing is written and the
/// existing reservation is returned.
pub async fn submit(
    client: &mut Client,
    queue: &Queue,
    new: &NewReservation,
) -> Result<Submitted, StoreError> {
    let tx = client.transaction().await?;
    let submitted = submit_in(&tx, queue, new).await?;
    match submitted {
        Submitted::Created { .. } => tx.commit().await?,
        Submitted::Existing(_) => tx.rollback().await?,
    }
    Ok(submitted)
}

/// [`submit`] inside the caller's transaction, so the caller can check quotas and write its audit
/// record in the same unit of work. Nothing is visible (and no message is delivered) until the
/// caller commits. A reused idempotency key writes nothing and returns
/// [`Submitted::Existing`]; a reservation id that is already taken fails with a unique violation
/// ([`StoreError::is_unique_violation`]), which aborts the transaction.
pub async fn submit_in(
    tx: &impl Db,
    queue: &Queue,
    new: &NewReservation,
) -> Result<Submitted, StoreError> {
    match insert(tx, queue, new, None).await? {
        Checked::Submitted(s) => Ok(s),
        // No quota was given, so none can be exceeded.
        Checked::OverQuota(_) => Err(StoreError::Corrupt(
            "a submit without a quota was refused for its quota".into(),
        )),
    }
}

/// Per-user limits checked by [`submit_within`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Most `queued`, `preparing` and `active` reservations a user may hold.
    pub max_reservations: i64,
    /// Most GPUs over those reservations.
    pub max_gpus: i64,
}

/// The outcome of [`submit_within`].
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    /// Within the quota: what [`submit_in`] would have returned.
    Submitted(Submitted),
    /// Nothing was written: the user already holds this much, and the new reservation would pass
    /// a limit.
    OverQuota(UserLoad),
}

/// [`submit_in`] with the quota check in the same statement: the user's [`UserLoad`] is read and
/// the reservation, its event, its secrets and its PGMQ message are written only when it stays
/// within `quota` — one round trip. Call it after [`lock_user_submissions`] in the same
/// transaction: the statement then reads the load after every earlier submit of the user has
/// committed, so two submits cannot both pass the check.
pub async fn submit_within(
    tx: &impl Db,
    queue: &Queue,
    new: &NewReservation,
    quota: Quota,
) -> Result<Checked, StoreError> {
    insert(tx, queue, new, Some(quota)).await
}

/// True when a user holding `load` may add a reservation of `gpus` GPUs.
fn within(load: UserLoad, gpus: i32, quota: Quota) -> bool {
    load.reservations < quota.max_reservations
        && load.gpus.saturating_add(i64::from(gpus)) <= quota.max_gpus
}

/// One statement: the user's load, the reservation (unless over `quota` or its idempotency key is
/// taken), its secrets, its creation event and its PGMQ message, and the stored row.
async fn insert(
    tx: &impl Db,
    queue: &Queue,
    new: &NewReservation,
    quota: Option<Quota>,
) -> Result<Checked, StoreError> {
    let env_names: Vec<&str> = new.env.keys().map(String::as_str).collect();
    let env = if new.env.is_empty() {
        None
    } else {
        Some(
            serde_json::to_value(&new.env)
                .map_err(|e| StoreError::Corrupt(format!("environment does not serialise: {e}")))?,
        )
    };
    let hint = serde_json::to_value(QueueMessage::Create(ReservationHint {
        reservation_id: new.reservation_id,
        username: new.username.clone(),
        requested_at: Utc::now(),
        details: serde_json::json!({
            "gpu_type": new.gpu_type,
            "gpu_count": new.gpu_count,
            "node_count": new.node_count,
        }),
    }))
    .map_err(|e| StoreError::Corrupt(format!("message does not serialise: {e}")))?;
    let max_reservations = quota.map(|q| q.max_reservations);
    let max_gpus = quota.map(|q| q.max_gpus);
    // `load` is read with this statement's snapshot, before `ins` writes; the secrets, the event
    // and the message are written only for an inserted row (none on a quota refusal or a reused
    // idempotency key, where ON CONFLICT DO NOTHING leaves the transaction usable).
    let row = tx
        .query_one(
            &format!(
                "WITH load AS ( \
                   SELECT count(*) AS n, coalesce(sum(gpu_count), 0)::bigint AS gpus \
                   FROM reservations \
                   WHERE user_id = $2 AND status IN {live}), \
                 ins AS ( \
                   INSERT INTO reservations (reservation_id, user_id, name, gpu_type, gpu_count, \
                     node_count, duration_hours, image, env_names, disk_name, jupyter_enabled, \
                     github_user, priority, idempotency_key, cli_version, request_hash, command, \
                     disk_size_gb, detailed_status) \
                   SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, $18, 'waiting in queue' FROM load \
                   WHERE ($19::bigint IS NULL OR load.n < $19) \
                     AND ($20::bigint IS NULL OR load.gpus + $5::integer <= $20) \
                   ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
                   RETURNING *), \
                 sec AS ( \
                   INSERT INTO reservation_secrets (reservation_id, env) \
                   SELECT reservation_id, $21::jsonb FROM ins WHERE $21::jsonb IS NOT NULL), \
                 ev AS ( \
                   INSERT INTO reservation_events (reservation_id, kind, to_status, reason, actor) \
                   SELECT reservation_id, 'transition', 'queued', 'submitted', $22 FROM ins), \
                 msg AS (SELECT pgmq.send($23, $24::jsonb) AS msg_id FROM ins) \
                 SELECT load.n AS load_reservations, load.gpus AS load_gpus, msg.msg_id, {COLUMNS} \
                 FROM load LEFT JOIN (ins r JOIN users u USING (user_id) CROSS JOIN msg) ON true",
                live = crate::live_statuses!(),
            ),
            &[
                &new.reservation_id,
                &new.user_id,
                &new.name,
                &new.gpu_type,
                &new.gpu_count,
                &new.node_count,
                &new.duration_hours,
                &new.image,
                &env_names,
                &new.disk_name,
                &new.jupyter_enabled,
                &new.github_user,
                &new.priority,
                &new.idempotency_key,
                &new.cli_version,
                &new.request_hash,
                &new.command,
                &new.disk_size_gb,
                &max_reservations,
                &max_gpus,
                &env,
                &new.username,
                &queue.name(),
                &hint,
            ],
        )
        .await?;
    let msg_id: Option<i64> = row.get("msg_id");
    if let Some(msg_id) = msg_id {
        return Ok(Checked::Submitted(Submitted::Created {
            reservation: Box::new(from_row(&row)?),
            msg_id,
        }));
    }
    let load = UserLoad {
        reservations: row.get("load_reservations"),
        gpus: row.get("load_gpus"),
    };
    if let Some(quota) = quota
        && !within(load, new.gpu_count, quota)
    {
        return Ok(Checked::OverQuota(load));
    }
    // Not inserted within the quota: the idempotency key was used before. Read the first
    // reservation in the same transaction.
    let key = new.idempotency_key.as_deref().unwrap_or_default();
    let existing =
        find_by_idempotency_key(tx, new.user_id, key)
            .await?
            .ok_or(StoreError::NotFound(NotFound::Reservation(
                new.reservation_id,
            )))?;
    Ok(Checked::Submitted(Submitted::Existing(Box::new(existing))))
}

/// The reservation `user_id` submitted with an idempotency key, if any.
pub async fn find_by_idempotency_key(
    db: &impl Db,
    user_id: i64,
    key: &str,
) -> Result<Option<Reservation>, StoreError> {
    let row = db
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM reservations r JOIN users u USING (user_id) \
                 WHERE r.user_id = $1 AND r.idempotency_key = $2"
            ),
            &[&user_id, &key],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Serialises a user's submissions until the end of the caller's transaction (a transaction-level
/// advisory lock keyed by the user), so checks such as quotas and "is this id taken" cannot be
/// passed by two concurrent submits at once.
pub async fn lock_user_submissions(db: &impl Db, user_id: i64) -> Result<(), StoreError> {
    db.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('gpudev.submit.' || $1::bigint::text, 0))",
        &[&user_id],
    )
    .await?;
    Ok(())
}

/// How much a user holds right now: reservations and GPUs over their `queued`, `preparing` and
/// `active` reservations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct UserLoad {
    /// Live reservations.
    pub reservations: i64,
    /// GPUs over those reservations.
    pub gpus: i64,
}

/// A user's live reservations and GPUs (for quotas).
pub async fn user_load(db: &impl Db, user_id: i64) -> Result<UserLoad, StoreError> {
    let row = db
        .query_one(
            concat!(
                "SELECT count(*), coalesce(sum(gpu_count), 0)::bigint FROM reservations \
                 WHERE user_id = $1 AND status IN ",
                crate::live_statuses!()
            ),
            &[&user_id],
        )
        .await?;
    Ok(UserLoad {
        reservations: row.get(0),
        gpus: row.get(1),
    })
}

/// One live reservation as capacity planning sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct LiveReservation {
    pub reservation_id: Uuid,
    pub gpu_type: String,
    /// `queued`, `preparing` or `active`.
    pub status: ReservationStatus,
    /// GPUs in total.
    pub gpu_count: i32,
    /// Scheduling priority.
    pub priority: i32,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// When its GPUs are expected back: `expires_at` when active, now + its booked hours while
    /// preparing, none while queued.
    pub ends_at: Option<DateTime<Utc>>,
}

/// Where a queued reservation stands in its GPU type's queue, for a first answer before the
/// scheduler's next pass writes the real position and estimate.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct QueueStanding {
    /// Queued reservations of the type ahead of it: higher priority, or the same priority and
    /// submitted earlier.
    pub ahead: i64,
    /// GPUs those reservations ask for.
    pub gpus_ahead: i64,
    /// `(expected end, GPUs)` of the type's `preparing` and `active` reservations, soonest first.
    pub running: Vec<(DateTime<Utc>, i32)>,
}

/// [`QueueStanding`] of reservation `id` (priority `priority`, submitted at `created_at`) among
/// the live reservations of `gpu_type`, in one statement.
pub async fn queue_standing(
    db: &impl Db,
    gpu_type: &str,
    priority: i32,
    created_at: DateTime<Utc>,
    id: Uuid,
) -> Result<QueueStanding, StoreError> {
    queue_standing_upto(db, gpu_type, priority, created_at, id, i64::MAX).await
}

/// [`queue_standing`] counting at most `limit` queued reservations ahead (in queue order, from the
/// `reservations_live` index), so its cost does not grow with the queue: an `ahead` of `limit`
/// means "at least `limit`", and `gpus_ahead` is then the GPUs of those first `limit` only.
pub async fn queue_standing_upto(
    db: &impl Db,
    gpu_type: &str,
    priority: i32,
    created_at: DateTime<Utc>,
    id: Uuid,
    limit: i64,
) -> Result<QueueStanding, StoreError> {
    let row = db
        .query_one(
            "WITH ahead AS ( \
               (SELECT gpu_count FROM reservations \
                WHERE gpu_type = $1 AND status = 'queued' AND priority > $2 \
                ORDER BY priority DESC, created_at, reservation_id LIMIT $5) \
               UNION ALL \
               (SELECT gpu_count FROM reservations \
                WHERE gpu_type = $1 AND status = 'queued' AND priority = $2 \
                  AND (created_at, reservation_id) < ($3, $4) \
                ORDER BY priority DESC, created_at, reservation_id LIMIT $5) \
               LIMIT $5), \
             running AS ( \
               SELECT reservation_id, gpu_count, \
                 CASE WHEN status = 'active' THEN expires_at \
                      ELSE now() + make_interval(secs => (duration_hours + extended_hours) * 3600) \
                 END AS ends_at \
               FROM reservations WHERE gpu_type = $1 AND status IN ('preparing', 'active')) \
             SELECT (SELECT count(*) FROM ahead), \
               (SELECT coalesce(sum(gpu_count), 0)::bigint FROM ahead), \
               coalesce((SELECT array_agg(ends_at ORDER BY ends_at, reservation_id) FROM running), '{}'), \
               coalesce((SELECT array_agg(gpu_count ORDER BY ends_at, reservation_id) FROM running), '{}')",
            &[&gpu_type, &priority, &created_at, &id, &limit],
        )
        .await?;
    let ends: Vec<DateTime<Utc>> = row.get(2);
    let gpus: Vec<i32> = row.get(3);
    Ok(QueueStanding {
        ahead: row.get(0),
        gpus_ahead: row.get(1),
        running: ends.into_iter().zip(gpus).collect(),
    })
}

/// Every `queued`, `preparing` and `active` reservation, oldest first.
pub async fn live(db: &impl Db) -> Result<Vec<LiveReservation>, StoreError> {
    let rows = db
        .query(
            concat!(
                "SELECT reservation_id, gpu_type, status, gpu_count, priority, created_at, \
               CASE WHEN status = 'active' THEN expires_at \
                    WHEN status = 'preparing' \
                      THEN now() + make_interval(secs => (duration_hours + extended_hours) * 3600) \
               END AS ends_at \
             FROM reservations WHERE status IN ",
                crate::live_statuses!(),
                " ORDER BY created_at, reservation_id"
            ),
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let status: &str = r.get(2);
            Ok(LiveReservation {
                reservation_id: r.get(0),
                gpu_type: r.get(1),
                status: status
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("{e}")))?,
                gpu_count: r.get(3),
                priority: r.get(4),
                created_at: r.get(5),
                ends_at: r.get(6),
            })
        })
        .collect()
}

/// Sends a hint about an existing reservation (cancel, extend, …), typically inside the
/// transaction that made the change it announces. `action` is the message's variant
/// (`QueueMessage::Cancel`, …).
pub async fn send_hint(
    db: &impl Db,
    queue: &Queue,
    reservation: &Reservation,
    action: fn(ReservationHint) -> QueueMessage,
    details: Value,
) -> Result<i64, StoreError> {
    let hint = ReservationHint {
        reservation_id: reservation.reservation_id,
        username: reservation.username.clone(),
        requested_at: Utc::now(),
        details,
    };
    queue.send(db, &action(hint)).await
}

async fn get_in(db: &impl Db, id: Uuid) -> Result<Reservation, StoreError> {
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

/// A reservation's history as one JSON array column `events` (oldest first), for a statement
/// over `reservations r`: one aggregate per row, evaluated only for the rows returned.
const EVENTS_JSON: &str = "(SELECT json_agg(json_build_array(e.event_id, e.kind, e.from_status, \
    e.to_status, e.reason, e.actor, e.details, e.created_at) ORDER BY e.event_id) \
    FROM reservation_events e WHERE e.reservation_id = r.reservation_id) AS events";

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

/// Reservations newest first, with the total number matching the filter.
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
            let events = if with_events {
                format!(", {EVENTS_JSON}")
            } else {
                String::new()
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

/// One event as `json_build_array` writes it in [`list_rows`].
type EventJson = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Value,
    DateTime<Utc>,
);

/// The history in the `events` column of a [`list_with_events`] row.
fn events_from_json(r: &Row) -> Result<Vec<Event>, StoreError> {
    let events: Option<tokio_postgres::types::Json<Vec<EventJson>>> = r
        .try_get("events")
        .map_err(|e| StoreError::Corrupt(format!("reservation events: {e}")))?;
    Ok(events
        .map(|j| j.0)
        .unwrap_or_default()
        .into_iter()
        .map(
            |(event_id, kind, from_status, to_status, reason, actor, details, created_at)| Event {
                event_id,
                kind,
                from_status,
                to_status,
                reason,
                actor,
                details,
                created_at,
            },
        )
        .collect())
}

/// A requested status change.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    /// The target status.
    pub to: ReservationStatus,
    /// Why (stored in the event; for `failed` also as the failure reason).
    pub reason: Option<&'a str>,
    /// Who made the change (`processor`, `expiry`, a username).
    pub actor: &'a str,
}

/// Applies a status change if, and only if, the current status allows it; records it in the
/// history in the same statement. A refused change writes nothing and returns
/// [`StoreError::Transition`] naming the current status.
///
/// Entering `active` starts the clock: `expires_at` = now + duration + extensions. Leaving
/// `queued` clears the queue position; going back to `queued` clears the placement; terminal
/// states set `ended_at`.
pub async fn transition(
    db: &impl Db,
    id: Uuid,
    t: Transition<'_>,
) -> Result<Reservation, StoreError> {
    let allowed: Vec<&str> = t.to.predecessors().iter().map(|s| s.as_str()).collect();
    // `cur` locks the row and reads its latest status (FOR UPDATE re-reads a row changed by a
    // concurrent transaction), `upd` changes it only from an allowed status, `ev` records it.
    let row = db
        .query_opt(
            "WITH cur AS ( \
                   SELECT reservation_id, status AS from_status FROM reservations \
                   WHERE reservation_id = $1 FOR UPDATE), \
                 upd AS ( \
                   UPDATE reservations r SET status = $2, \
                     detailed_status = coalesce($4, r.detailed_status), \
                     failure_reason = CASE WHEN $2 = 'failed' THEN coalesce($4, 'failed') ELSE r.failure_reason END, \
                     queue_position = CASE WHEN $2 = 'queued' THEN r.queue_position ELSE NULL END, \
                     estimated_start_at = CASE WHEN $2 = 'queued' THEN r.estimated_start_at ELSE NULL END, \
                     admitted_at = CASE WHEN $2 = 'preparing' THEN now() \
                                        WHEN $2 = 'queued' THEN NULL ELSE r.admitted_at END, \
                     node_names = CASE WHEN $2 = 'queued' THEN '{}' ELSE r.node_names END, \
                     pod_name = CASE WHEN $2 = 'queued' THEN NULL ELSE r.pod_name END, \
                     launched_at = CASE WHEN $2 = 'active' THEN now() ELSE r.launched_at END, \
                     expires_at = CASE WHEN $2 = 'active' \
                       THEN now() + make_interval(secs => (r.duration_hours + r.extended_hours) * 3600) \
                       ELSE r.expires_at END, \
                     ended_at = CASE WHEN $2 IN ('expired', 'cancelled', 'failed') THEN now() ELSE r.ended_at END \
                   FROM cur WHERE r.reservation_id = cur.reservation_id AND cur.from_status = ANY($3) \
                   RETURNING r.reservation_id, cur.from_status), \
                 ev AS ( \
                   INSERT INTO reservation_events (reservation_id, kind, from_status, to_status, reason, actor) \
                   SELECT reservation_id, 'transition', from_status, $2, $4, $5 FROM upd) \
                 SELECT cur.from_status, upd.reservation_id IS NOT NULL AS changed \
                 FROM cur LEFT JOIN upd ON true",
            &[&id, &t.to.as_str(), &allowed, &t.reason, &t.actor],
        )
        .await?
        .ok_or(StoreError::NotFound(NotFound::Reservation(id)))?;
    let changed: bool = row.get(1);
    if !changed {
        let from: &str = row.get(0);
        let from: ReservationStatus = from
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("{e}")))?;
        return Err(StoreError::Transition(gpudev_domain::TransitionError {
            from,
            to: t.to,
        }));
    }
    get_in(db, id).await
}

/// One entry in a reservation's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Order of events.
    pub event_id: i64,
    /// `transition`, `warning`, `extend` or `note`.
    pub kind: String,
    /// Status before (transitions; none for creation).
    pub from_status: Option<String>,
    /// Status after (transitions).
    pub to_status: Option<String>,
    /// Why it happened (a failure or cancellation reason, a warning's text).
    pub reason: Option<String>,
    /// Who made it happen: `processor`, `expiry`, or a username.
    pub actor: String,
    /// Extra data.
    pub details: Value,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
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

/// Records a non-transition event (`warning`, `extend`, `note`).
pub async fn record_event(
    db: &impl Db,
    id: Uuid,
    kind: &str,
    reason: &str,
    actor: &str,
    details: Value,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO reservation_events (reservation_id, kind, reason, actor, details) \
         VALUES ($1, $2, $3, $4, $5)",
        &[&id, &kind, &reason, &actor, &details],
    )
    .await?;
    Ok(())
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

/// The outcome of a change that only some statuses allow.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The change was made; the reservation as it is now.
    Applied(Box<Reservation>),
    /// Nothing was written; the reservation as it is (its status or limits refused the change).
    Refused(Box<Reservation>),
}

/// Extends an `active` reservation by `hours`: its `expires_at` moves by that much, its
/// `extended_hours` grows, the expiry warnings already sent are forgotten (so they are sent again
/// before the new end) and an `extend` event is recorded — all in one guarded statement.
///
/// Refused, writing nothing, unless the reservation is `active` and its booked lifetime (duration
/// plus every extension, this one included) stays within `max_lifetime_hours` (compared in whole
/// seconds, as the domain's `check_extension` does).
pub async fn extend(
    db: &impl Db,
    id: Uuid,
    hours: f64,
    max_lifetime_hours: f64,
    actor: &str,
) -> Result<Change, StoreError> {
    let row = db
        .query_opt(
            "WITH cur AS ( \
                   SELECT reservation_id, status, duration_hours + extended_hours AS lifetime \
                   FROM reservations WHERE reservation_id = $1 FOR UPDATE), \
                 upd AS ( \
                   UPDATE reservations r SET extended_hours = r.extended_hours + $2::float8, \
                     expires_at = r.expires_at + make_interval(secs => $2::float8 * 3600), \
                     warnings_sent = '{}' \
                   FROM cur WHERE r.reservation_id = cur.reservation_id AND cur.status = 'active' \
                     AND r.expires_at IS NOT NULL AND $2::float8 > 0 \
                     AND round((cur.lifetime + $2::float8) * 3600) <= round($3::float8 * 3600) \
                   RETURNING r.reservation_id, r.expires_at), \
                 ev AS ( \
                   INSERT INTO reservation_events (reservation_id, kind, reason, actor, details) \
                   SELECT reservation_id, 'extend', 'extended by ' || $2::float8 || ' h', $4, \
                     jsonb_build_object('extension_hours', $2::float8, 'expires_at', expires_at) \
                   FROM upd) \
                 SELECT upd.reservation_id IS NOT NULL AS changed FROM cur LEFT JOIN upd ON true",
            &[&id, &hours, &max_lifetime_hours, &actor],
        )
        .await?
        .ok_or(StoreError::NotFound(NotFound::Reservation(id)))?;
    let changed: bool = row.get(0);
    let now = get_in(db, id).await?;
    Ok(if changed {
        Change::Applied(Box::new(now))
    } else {
        Change::Refused(Box::new(now))
    })
}

/// Records whether Jupyter is wanted. Applied only while the reservation is `queued` (it starts
/// with that setting) or `active` (the processor, told by a hint, starts or stops the server);
/// a `note` event records the request.
pub async fn set_jupyter(
    db: &impl Db,
    id: Uuid,
    enabled: bool,
    actor: &str,
) -> Result<Change, StoreError> {
    let reason = if enabled {
        "jupyter enable requested"
    } else {
        "jupyter disable requested"
    };
    guarded_update(
        db,
        id,
        "jupyter_enabled = $2::bool",
        &enabled,
        reason,
        actor,
        serde_json::json!({ "jupyter_enabled": enabled }),
    )
    .await
}

/// Adds a GitHub login to the users given SSH access (once; adding a login twice changes
/// nothing but still counts as applied). Applied only while the reservation is `queued` (the keys
/// are installed at start) or `active` (the processor, told by a hint, installs them); a `note`
/// event records the request.
pub async fn add_secondary_user(
    db: &impl Db,
    id: Uuid,
    github_user: &str,
    actor: &str,
) -> Result<Change, StoreError> {
    guarded_update(
        db,
        id,
        "secondary_users = CASE WHEN $2::text = ANY(r.secondary_users) THEN r.secondary_users \
           ELSE array_append(r.secondary_users, $2::text) END",
        &github_user,
        "user added",
        actor,
        serde_json::json!({ "github_username": github_user }),
    )
    .await
}

/// `UPDATE … SET <set>` (with `$2` = `value`) for a `queued` or `active` reservation, recording a
/// `note` event, in one statement.
async fn guarded_update(
    db: &impl Db,
    id: Uuid,
    set: &str,
    value: &(dyn tokio_postgres::types::ToSql + Sync),
    reason: &str,
    actor: &str,
    details: Value,
) -> Result<Change, StoreError> {
    let sql = format!(
        "WITH cur AS ( \
               SELECT reservation_id, status FROM reservations WHERE reservation_id = $1 FOR UPDATE), \
             upd AS ( \
               UPDATE reservations r SET {set} \
               FROM cur WHERE r.reservation_id = cur.reservation_id \
                 AND cur.status IN ('queued', 'active') \
               RETURNING r.reservation_id), \
             ev AS ( \
               INSERT INTO reservation_events (reservation_id, kind, reason, actor, details) \
               SELECT reservation_id, 'note', $3, $4, $5 FROM upd) \
             SELECT upd.reservation_id IS NOT NULL AS changed FROM cur LEFT JOIN upd ON true"
    );
    let row = db
        .query_opt(&sql, &[&id, value, &reason, &actor, &details])
        .await?
        .ok_or(StoreError::NotFound(NotFound::Reservation(id)))?;
    let changed: bool = row.get(0);
    let now = get_in(db, id).await?;
    Ok(if changed {
        Change::Applied(Box::new(now))
    } else {
        Change::Refused(Box::new(now))
    })
}

/// The environment values of a reservation (for the processor to put into a Kubernetes Secret).
pub async fn secret_env(db: &impl Db, id: Uuid) -> Result<BTreeMap<String, String>, StoreError> {
    let row = db
        .query_opt(
            "SELECT env FROM reservation_secrets WHERE reservation_id = $1",
            &[&id],
        )
        .await?;
    match row {
        None => Ok(BTreeMap::new()),
        Some(r) => serde_json::from_value(r.get(0))
            .map_err(|e| StoreError::Corrupt(format!("reservation secrets: {e}"))),
    }
}

/// Forgets the environment values once a reservation has ended.
pub async fn delete_secret_env(db: &impl Db, id: Uuid) -> Result<bool, StoreError> {
    Ok(db
        .execute(
            "DELETE FROM reservation_secrets WHERE reservation_id = $1",
            &[&id],
        )
        .await?
        == 1)
}
