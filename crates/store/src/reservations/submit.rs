//! Submitting: quotas, idempotency and the one transaction that writes the row, its event, its
//! environment values and its queue message.

use chrono::Utc;
use serde::Serialize;
use tokio_postgres::Client;
use uuid::Uuid;

use super::model::{COLUMNS, NewReservation, Reservation, from_row};
use crate::hints::{QueueMessage, ReservationHint};
use crate::{Db, Queue, StoreError};

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
/// [`Submitted::Existing`]; a reservation id that is already taken writes nothing and fails with
/// [`StoreError::Conflict`], leaving the transaction usable.
pub async fn submit_in(
    tx: &impl Db,
    queue: &Queue,
    new: &NewReservation,
) -> Result<Submitted, StoreError> {
    match insert(tx, queue, new, None).await? {
        Checked::Submitted(s) => Ok(s),
        Checked::IdTaken(_) => Err(StoreError::Conflict(format!(
            "reservation id {} is already in use",
            new.reservation_id
        ))),
        // No quota was given, so none can be exceeded.
        Checked::OverQuota(_) => Err(StoreError::Corrupt(
            "a submit without a quota was refused for its quota".into(),
        )),
    }
}

/// The per-user limit checked by [`submit_within`]. Limits on what a user *holds* are the
/// scheduler's: beyond them a reservation waits in the queue instead of being refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Most `queued` reservations a user may have.
    pub max_queued: i64,
}

/// The outcome of [`submit_within`].
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    /// Within the quota: what [`submit_in`] would have returned.
    Submitted(Submitted),
    /// Nothing was written: the user already has this many reservations queued.
    OverQuota(UserLoad),
    /// Nothing was written: the proposed reservation id belongs to another reservation — the
    /// same user's (given, so a retry can be answered with it) or someone else's (`None`).
    IdTaken(Option<Box<Reservation>>),
}

/// [`submit_in`] with the quota check in the same statement: the user's [`UserLoad`] is read and
/// the reservation, its event, its secrets and its PGMQ message are written only when it stays
/// within `quota` — one round trip. Call it after [`lock_user_submissions`] in the same
/// transaction: the statement then reads the load after every earlier submit of the user has
/// committed, so two submits cannot both pass the check. Nothing it refuses aborts the
/// transaction, so several submits can share one (their statements may be sent together; each
/// sees the ones before it).
pub async fn submit_within(
    tx: &impl Db,
    queue: &Queue,
    new: &NewReservation,
    quota: Quota,
) -> Result<Checked, StoreError> {
    insert(tx, queue, new, Some(quota)).await
}

/// True when a user with `load` queued may queue one more.
fn within(load: UserLoad, quota: Quota) -> bool {
    load.reservations < quota.max_queued
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
        username: new.username.to_string(),
        requested_at: Utc::now(),
        details: serde_json::json!({
            "gpu_type": new.gpu_type,
            "gpu_count": new.gpu_count,
            "node_count": new.node_count,
        }),
    }))
    .map_err(|e| StoreError::Corrupt(format!("message does not serialise: {e}")))?;
    let name = new.name.as_ref().map(|n| n.as_str());
    let disk_name = new.disk_name.as_ref().map(|d| d.as_str());
    let github_user = new.github_user.as_ref().map(|g| g.as_str());
    let max_queued = quota.map(|q| q.max_queued);
    // `prior` and `load` are read with this statement's snapshot, before `ins` writes: a
    // reservation with the proposed id or the same idempotency key, and the user's queue. The
    // secrets, the event and the message are written only for an inserted row; none is inserted
    // over the quota or when `prior` found one, and ON CONFLICT DO NOTHING covers the same id or
    // key committed by a concurrent transaction after the snapshot (no error, the transaction
    // stays usable).
    let row = tx
        .query_one(
            &format!(
                "WITH prior AS ( \
                   SELECT reservation_id, user_id, \
                     coalesce(user_id = $2 AND idempotency_key = $14, false) AS by_key \
                   FROM reservations \
                   WHERE reservation_id = $1 OR (user_id = $2 AND idempotency_key = $14) \
                   ORDER BY 3 DESC LIMIT 1), \
                 load AS ( \
                   SELECT count(*) AS n, coalesce(sum(gpu_count), 0)::bigint AS gpus \
                   FROM reservations \
                   WHERE user_id = $2 AND status = 'queued'), \
                 ins AS ( \
                   INSERT INTO reservations (reservation_id, user_id, name, gpu_type, gpu_count, \
                     node_count, duration_hours, image, env_names, disk_name, jupyter_enabled, \
                     github_user, priority, idempotency_key, cli_version, request_hash, command, \
                     disk_size_gb, detailed_status) \
                   SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, $18, 'waiting in queue' FROM load \
                   WHERE ($19::bigint IS NULL OR load.n < $19) AND NOT EXISTS (SELECT 1 FROM prior) \
                   ON CONFLICT DO NOTHING \
                   RETURNING *), \
                 sec AS ( \
                   INSERT INTO reservation_secrets (reservation_id, env) \
                   SELECT reservation_id, $20::jsonb FROM ins WHERE $20::jsonb IS NOT NULL), \
                 ev AS ( \
                   INSERT INTO reservation_events (reservation_id, kind, to_status, reason, actor) \
                   SELECT reservation_id, 'transition', 'queued', 'submitted', $21 FROM ins), \
                 msg AS (SELECT pgmq.send($22, $23::jsonb) AS msg_id FROM ins) \
                 SELECT load.n AS load_reservations, load.gpus AS load_gpus, msg.msg_id, \
                   prior.reservation_id AS prior_id, prior.user_id AS prior_user, \
                   prior.by_key AS prior_by_key, {COLUMNS} \
                 FROM load LEFT JOIN prior ON true \
                 LEFT JOIN (ins r JOIN users u USING (user_id) CROSS JOIN msg) ON true",
            ),
            &[
                &new.reservation_id,
                &new.user_id,
                &name,
                &new.gpu_type.as_str(),
                &new.gpu_count,
                &new.node_count,
                &new.duration_hours,
                &new.image.as_str(),
                &env_names,
                &disk_name,
                &new.jupyter_enabled,
                &github_user,
                &new.priority,
                &new.idempotency_key,
                &new.cli_version,
                &new.request_hash,
                &new.command,
                &new.disk_size_gb,
                &max_queued,
                &env,
                &new.username.as_str(),
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
    let prior: Option<(Uuid, i64, bool)> = row
        .get::<_, Option<Uuid>>("prior_id")
        .map(|id| (id, row.get("prior_user"), row.get("prior_by_key")));
    if let Some((id, owner, by_key)) = prior {
        return existing(tx, new, id, owner, by_key).await;
    }
    let load = UserLoad {
        reservations: row.get("load_reservations"),
        gpus: row.get("load_gpus"),
    };
    if let Some(quota) = quota
        && !within(load, quota)
    {
        return Ok(Checked::OverQuota(load));
    }
    // Within the quota and nothing found before, yet not inserted: a concurrent transaction
    // committed the same id or key after this statement's snapshot. A new statement sees it.
    let key = new.idempotency_key.as_deref();
    let found = match key {
        Some(key) => find_by_idempotency_key(tx, new.user_id, key).await?,
        None => None,
    };
    if let Some(first) = found {
        return Ok(Checked::Submitted(Submitted::Existing(Box::new(first))));
    }
    let taken = super::queries::find(tx, new.reservation_id).await?;
    Ok(Checked::IdTaken(
        taken.filter(|r| r.user_id == new.user_id).map(Box::new),
    ))
}

/// The answer when `prior` found reservation `id` of user `owner`, by the idempotency key or by
/// the proposed id.
async fn existing(
    tx: &impl Db,
    new: &NewReservation,
    id: Uuid,
    owner: i64,
    by_key: bool,
) -> Result<Checked, StoreError> {
    if !by_key && owner != new.user_id {
        return Ok(Checked::IdTaken(None));
    }
    let first = super::queries::get(tx, id).await?;
    Ok(if by_key {
        Checked::Submitted(Submitted::Existing(Box::new(first)))
    } else {
        Checked::IdTaken(Some(Box::new(first)))
    })
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
    lock_users_submissions(db, &[user_id]).await
}

/// [`lock_user_submissions`] for every user in `user_ids`, in one statement. The locks are taken
/// in ascending order of user id, as every caller takes them, so two transactions locking some
/// of the same users cannot wait on each other in a cycle.
pub async fn lock_users_submissions(db: &impl Db, user_ids: &[i64]) -> Result<(), StoreError> {
    let mut ids = user_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    // A function scan returns the array's elements in order, so the locks follow it.
    db.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('gpudev.submit.' || u::text, 0)) \
         FROM unnest($1::bigint[]) AS u",
        &[&ids],
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
