//! Submitting: quotas, idempotency and the one transaction that writes the row, its event, its
//! sealed environment values and command, and its queue message.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use serde::Serialize;
use tokio_postgres::Client;
use uuid::Uuid;

use super::model::{COLUMNS, NewReservation, Reservation, from_row};
use crate::audit::{AuditEntry, audit_entry_columns, audit_entry_record};
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
    let submitted = submit_many(tx, queue, &[(new, None)]).await?.pop();
    match submitted.ok_or_else(|| StoreError::Corrupt("a submit went unanswered".into()))? {
        Checked::Submitted(s) => Ok(s),
        Checked::IdTaken(_) => Err(StoreError::Conflict(format!(
            "reservation id {} is already in use",
            new.reservation_id
        ))),
        // No quota was given, so none can be exceeded.
        Checked::OverQuota(_) => Err(StoreError::Corrupt(
            "a submit without a quota was refused for its quota".into(),
        )),
        // No SSH access check was asked for.
        Checked::NoSshAccess => Err(StoreError::Corrupt(
            "a submit without an SSH access check was refused for SSH access".into(),
        )),
        // No cap on booked hours was given.
        Checked::OverBookedHours { .. } => Err(StoreError::Corrupt(
            "a submit without a booking cap was refused for booked hours".into(),
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

/// What [`submit_checked`] checks of a submit before writing it, in the same statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checks {
    /// The user's queued cap, if any.
    pub quota: Option<Quota>,
    /// Refuse the submit unless its dev box can get an SSH key from somewhere: the user has a
    /// stored key, the request names a GitHub user, or the user's account does.
    pub ssh_access: bool,
    /// For a booking: the most GPU-hours a user may have booked and waiting at once, this
    /// booking included (none for no cap). Ignored for a submit that is not a booking.
    pub max_booked_gpu_hours: Option<u32>,
}

impl Checks {
    /// Whether writing `new` with these checks must hold its user's submit lock
    /// ([`lock_users_submissions`]): when it counts what the user has waiting (a queued cap, or
    /// a cap on booked hours for a booking), which another of the user's submits, written at
    /// the same time, could change unseen. Ids and idempotency keys need no lock: a clash with
    /// a concurrent submit is found by the write itself.
    pub fn need_user_lock(&self, new: &NewReservation) -> bool {
        self.quota.is_some() || (new.start_at.is_some() && self.max_booked_gpu_hours.is_some())
    }
}

/// The outcome of [`submit_within`].
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    /// Within the quota: what [`submit_in`] would have returned.
    Submitted(Submitted),
    /// Nothing was written: the user already has as many reservations queued as this quota
    /// allows.
    OverQuota(Quota),
    /// Nothing was written: the proposed reservation id belongs to another reservation — the
    /// same user's (given, so a retry can be answered with it) or someone else's (`None`).
    IdTaken(Option<Box<Reservation>>),
    /// Nothing was written: [`Checks::ssh_access`] was asked for and the dev box could get no
    /// SSH key (the user has none stored, and neither the request nor the account names a
    /// GitHub user).
    NoSshAccess,
    /// Nothing was written: this booking would take the user's waiting bookings beyond
    /// [`Checks::max_booked_gpu_hours`].
    OverBookedHours {
        /// The cap.
        limit: u32,
        /// GPU-hours the user already has booked and waiting (before this booking).
        booked: f64,
    },
}

/// [`submit_in`] with the quota check (none for `None`) in the same statement: the user's
/// queued reservations are counted and the reservation, its event, its secrets and its PGMQ
/// message are written only when it stays within `quota` — one round trip. Call it after
/// [`lock_user_submissions`] in the same transaction: the statement then reads the queue after
/// every earlier submit of the user has committed, so two submits cannot both pass the check.
/// Nothing it refuses aborts the transaction.
pub async fn submit_within(
    tx: &impl Db,
    queue: &Queue,
    new: &NewReservation,
    quota: Option<Quota>,
) -> Result<Checked, StoreError> {
    let mut one = submit_many(tx, queue, &[(new, quota)]).await?;
    one.pop()
        .ok_or_else(|| StoreError::Corrupt("a submit statement answered nothing".into()))
}

/// [`submit_within`] for many submits at once, in one statement where it can (several where two
/// of them propose the same id or repeat one user's idempotency key: the later one is then
/// written after, and answered as a retry of, the earlier). The outcomes are in the order of
/// `submits`, and the same as writing them one after the other in that order: a user's quota
/// admits their first submits and refuses the rest. Call it after [`lock_users_submissions`]
/// for all their users in the same transaction.
pub async fn submit_many(
    tx: &impl Db,
    queue: &Queue,
    submits: &[(&NewReservation, Option<Quota>)],
) -> Result<Vec<Checked>, StoreError> {
    let checked: Vec<_> = submits
        .iter()
        .map(|&(new, quota)| {
            (
                new,
                Checks {
                    quota,
                    ssh_access: false,
                    max_booked_gpu_hours: None,
                },
            )
        })
        .collect();
    submit_checked(tx, queue, &checked).await
}

/// [`submit_many`] with every check of [`Checks`]: each submit's quota and, where asked, its
/// SSH access are decided by the statement that writes it, so a key removed or added meanwhile
/// is seen as of the write, and a refusal writes nothing.
pub async fn submit_checked(
    tx: &impl Db,
    queue: &Queue,
    submits: &[(&NewReservation, Checks)],
) -> Result<Vec<Checked>, StoreError> {
    let unaudited: Vec<_> = submits
        .iter()
        .map(|&(new, checks)| (new, checks, None))
        .collect();
    submit_rounds(tx, queue, &unaudited, None::<Commit<'_, fn()>>).await
}

/// [`submit_checked`], where each submit may carry the audit entry to write if it is stored
/// (the statement that stores it writes the entry too, with the message's id added to its
/// `details` as `msg_id`; the records of the submits it does not store, a refusal's, are the
/// caller's), as the end of the transaction `db` is in (one its caller began, after whatever
/// else it holds, such as [`lock_users_submissions`]): the last submit statement and `COMMIT`
/// are sent together, so the submits are durable one round trip after they were sent.
/// `on_written` is called once that statement has answered, while the commit may still be
/// flushing. The answers that need more than the statement's rows (a replay of an earlier
/// submit, an id taken by another) are read after the commit.
///
/// Had anything failed, nothing is committed and the error is returned (the connection is left
/// outside a transaction, or in a failed one: roll back before reusing it).
pub async fn submit_audited_committing(
    db: &deadpool_postgres::Object,
    queue: &Queue,
    submits: &[(&NewReservation, Checks, Option<&AuditEntry<'_>>)],
    on_written: impl FnOnce(),
) -> Result<Vec<Checked>, StoreError> {
    if submits.is_empty() {
        db.execute("COMMIT", &[]).await?;
        on_written();
        return Ok(Vec::new());
    }
    let commit = Commit {
        db,
        on_rows: on_written,
    };
    submit_rounds(db, queue, submits, Some(commit)).await
}

/// The last statement of a transaction, which commits it ([`crate::db::query_committing`]).
struct Commit<'a, F> {
    db: &'a deadpool_postgres::Object,
    on_rows: F,
}

/// `submits` in rounds ([`rounds`]), the last one committing with `commit` if given.
async fn submit_rounds<F: FnOnce()>(
    tx: &impl Db,
    queue: &Queue,
    submits: &[(&NewReservation, Checks, Option<&AuditEntry<'_>>)],
    mut commit: Option<Commit<'_, F>>,
) -> Result<Vec<Checked>, StoreError> {
    let mut outcomes: Vec<Option<Checked>> = submits.iter().map(|_| None).collect();
    let keys: Vec<_> = submits
        .iter()
        .map(|&(new, checks, _)| (new, checks))
        .collect();
    let rounds = rounds(&keys);
    let last = rounds.len().saturating_sub(1);
    for (n, round) in rounds.into_iter().enumerate() {
        let batch: Vec<_> = round.iter().map(|&i| submits[i]).collect();
        let commit = if n == last { commit.take() } else { None };
        for (i, outcome) in round
            .into_iter()
            .zip(insert(tx, queue, &batch, commit).await?)
        {
            outcomes[i] = Some(outcome);
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.ok_or_else(|| StoreError::Corrupt("a submit went unanswered".into())))
        .collect()
}

/// `submits` split into rounds (indices, in order) in which no two propose the same id or share
/// a user and an idempotency key; almost always one round.
fn rounds(submits: &[(&NewReservation, Checks)]) -> Vec<Vec<usize>> {
    /// The submits of one round, and the ids and (user, key) pairs they hold.
    #[derive(Default)]
    struct Round<'a> {
        members: Vec<usize>,
        ids: HashSet<Uuid>,
        keys: HashSet<(i64, &'a str)>,
    }
    let mut rounds: Vec<Round<'_>> = Vec::new();
    for (i, (new, _)) in submits.iter().enumerate() {
        let key = new.idempotency_key.as_deref().map(|k| (new.user_id, k));
        // After the last round holding a submit it repeats, so the repeat sees it.
        let clash = rounds.iter().rposition(|r| {
            r.ids.contains(&new.reservation_id) || key.is_some_and(|k| r.keys.contains(&k))
        });
        let at = clash.map_or(0, |r| r + 1);
        if at == rounds.len() {
            rounds.push(Round::default());
        }
        let round = &mut rounds[at];
        round.members.push(i);
        round.ids.insert(new.reservation_id);
        round.keys.extend(key);
    }
    rounds.into_iter().map(|r| r.members).collect()
}

/// One statement for `submits`, none of which repeats another's id or key: each user's queued
/// reservations (counted as far as their quota), the reservations within it that neither a
/// reservation with the same id nor one with the same idempotency key precedes, their secrets,
/// creation events and PGMQ messages; a row per submit in their order.
async fn insert<F: FnOnce()>(
    tx: &impl Db,
    queue: &Queue,
    submits: &[(&NewReservation, Checks, Option<&AuditEntry<'_>>)],
    commit: Option<Commit<'_, F>>,
) -> Result<Vec<Checked>, StoreError> {
    let requested_at = Utc::now();
    let input = submits
        .iter()
        .map(|&(new, checks, audit)| input_row(new, checks, audit, requested_at))
        .collect::<Result<Vec<_>, _>>()?;
    let input = serde_json::Value::Array(input);
    // `input` keeps the submits' order (a function scan returns the array's elements in order).
    // `prior` looks each submit up twice, by key and by id, each an index lookup whatever the
    // planner knows of the table (one join on either condition was planned as a scan of the
    // whole table when its statistics were those of an empty one).
    // `prior` and `load` are read with this statement's snapshot, before `ins` writes. The quota
    // admits a user's first submits: those whose rank among the user's new ones, added to what
    // the user has queued, stays within it. The queue is counted only as far as the quota (not at
    // all without one), so that one user's long queue does not slow their submits. ON CONFLICT DO
    // NOTHING covers an id or key committed by a concurrent transaction after the snapshot (no
    // error: the transaction stays usable). `created_at` is each row's own time, in order, so
    // submits sharing a transaction keep their order in the queue. A submit without a predicted
    // position gets its place by arrival: after the last position its type's queue held at the
    // snapshot (one descent of `reservations_queued_position`, not a count of the queue), and
    // after the statement's earlier submits of that type (looked up only then: COALESCE stops at
    // the first non-null argument). The messages go into the queue's table as `pgmq.send` puts
    // them there, in the submits' order (so their ids follow it); `aud` writes the audit entry
    // each stored submit carries, with its message's id. `access` is whether the dev box can get
    // an SSH key (asked only with `ssh_check`): a stored key, or a GitHub user named by the
    // request or the account. `chg` records the owners of the new rows once, in a transaction
    // begun by `begin_submits` (whose setting makes the insert triggers stand aside); elsewhere
    // the triggers record them and `chg` writes nothing.
    let sql = format!(
        "WITH input AS ( \
                   SELECT *, ordinality AS ord FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS ( \
                     reservation_id uuid, user_id bigint, username text, name text, \
                     gpu_type text, gpu_count int, node_count int, duration_hours float8, \
                     image text, env_names text[], disk_name text, jupyter_enabled boolean, \
                     github_user text, priority int, idempotency_key text, cli_version text, \
                     request_hash text, disk_size_gb int, max_queued bigint, \
                     queue_position int, estimated_start_at timestamptz, \
                     key_id text, data_key text, sealed text, hint jsonb, ssh_check boolean, \
                     start_at timestamptz, max_booked float8, audit jsonb)) \
                   WITH ORDINALITY AS t), \
                 access AS ( \
                   SELECT i.ord, NOT coalesce(i.ssh_check, false) \
                     OR i.github_user IS NOT NULL \
                     OR EXISTS (SELECT 1 FROM user_ssh_keys k WHERE k.user_id = i.user_id) \
                     OR EXISTS (SELECT 1 FROM users u \
                                WHERE u.user_id = i.user_id AND u.github_username IS NOT NULL) \
                       AS ok \
                   FROM input i), \
                 prior AS ( \
                   SELECT DISTINCT ON (i.ord) i.ord, p.reservation_id, p.user_id, p.by_key \
                   FROM input i CROSS JOIN LATERAL ( \
                     SELECT k.reservation_id, k.user_id, true AS by_key FROM reservations k \
                     WHERE k.user_id = i.user_id AND k.idempotency_key = i.idempotency_key \
                     UNION ALL \
                     SELECT d.reservation_id, d.user_id, \
                       coalesce(d.user_id = i.user_id \
                         AND d.idempotency_key = i.idempotency_key, false) \
                     FROM reservations d WHERE d.reservation_id = i.reservation_id) p \
                   ORDER BY i.ord, p.by_key DESC), \
                 load AS ( \
                   SELECT d.user_id, q.n, q.gpus, b.hours AS booked \
                   FROM (SELECT user_id, (array_agg(max_queued))[1] AS max_queued, \
                           bool_or(start_at IS NOT NULL AND max_booked IS NOT NULL) AS booking \
                         FROM input GROUP BY user_id) d \
                   CROSS JOIN LATERAL ( \
                     SELECT count(*) AS n, coalesce(sum(gpu_count), 0)::bigint AS gpus \
                     FROM (SELECT gpu_count FROM reservations \
                           WHERE user_id = d.user_id AND status = 'queued' \
                           LIMIT coalesce(d.max_queued, 0)) AS queued) q \
                   CROSS JOIN LATERAL ( \
                     SELECT coalesce(sum(gpu_count * (duration_hours + extended_hours)), 0) \
                       AS hours \
                     FROM reservations \
                     WHERE d.booking AND user_id = d.user_id AND status = 'queued' \
                       AND start_at IS NOT NULL) b), \
                 cand AS ( \
                   SELECT i.*, row_number() OVER (PARTITION BY i.user_id ORDER BY i.ord) AS nth, \
                     row_number() OVER (PARTITION BY i.gpu_type ORDER BY i.ord) AS nth_of_type, \
                     sum(CASE WHEN i.start_at IS NULL THEN 0 \
                              ELSE i.gpu_count * i.duration_hours END) \
                       OVER (PARTITION BY i.user_id ORDER BY i.ord) AS booking_hours \
                   FROM input i JOIN access a USING (ord) \
                   WHERE a.ok AND NOT EXISTS (SELECT 1 FROM prior p WHERE p.ord = i.ord)), \
                 ins AS ( \
                   INSERT INTO reservations (reservation_id, user_id, name, gpu_type, gpu_count, \
                     node_count, duration_hours, image, env_names, disk_name, jupyter_enabled, \
                     github_user, priority, idempotency_key, cli_version, request_hash, \
                     disk_size_gb, detailed_status, created_at, queue_position, \
                     estimated_start_at, start_at) \
                   SELECT c.reservation_id, c.user_id, c.name, c.gpu_type, c.gpu_count, \
                     c.node_count, c.duration_hours, c.image, coalesce(c.env_names, '{{}}'), \
                     c.disk_name, c.jupyter_enabled, c.github_user, c.priority, \
                     c.idempotency_key, c.cli_version, c.request_hash, \
                     c.disk_size_gb, 'waiting in queue', clock_timestamp(), \
                     coalesce(c.queue_position, coalesce(( \
                       SELECT max(q.queue_position) FROM reservations q \
                       WHERE q.status = 'queued' AND q.gpu_type = c.gpu_type), 0) \
                       + c.nth_of_type::int), \
                     c.estimated_start_at, c.start_at \
                   FROM cand c JOIN load l USING (user_id) \
                   WHERE (c.max_queued IS NULL OR l.n + c.nth <= c.max_queued) \
                     AND (c.start_at IS NULL OR c.max_booked IS NULL \
                          OR l.booked + c.booking_hours <= c.max_booked + 1e-9) \
                   ORDER BY c.ord \
                   ON CONFLICT DO NOTHING \
                   RETURNING *), \
                 sent AS ( \
                   SELECT r.reservation_id, c.ord, c.hint, c.key_id, c.data_key, c.sealed, \
                     c.username, c.audit \
                   FROM ins r JOIN cand c USING (reservation_id)), \
                 sec AS ( \
                   INSERT INTO reservation_secrets (reservation_id, key_id, data_key, sealed) \
                   SELECT reservation_id, key_id, decode(data_key, 'base64'), \
                     decode(sealed, 'base64') \
                   FROM sent WHERE sealed IS NOT NULL), \
                 ev AS ( \
                   INSERT INTO reservation_events (reservation_id, kind, to_status, reason, actor) \
                   SELECT reservation_id, 'transition', 'queued', 'submitted', username \
                   FROM sent ORDER BY ord), \
                 msg AS ( \
                   INSERT INTO {queue} (vt, message) \
                   SELECT clock_timestamp(), hint FROM sent ORDER BY ord \
                   RETURNING msg_id, (message->>'reservation_id')::uuid AS reservation_id), \
                 aud AS ( \
                   INSERT INTO audit_log ({audit_columns}) \
                   SELECT e.actor_user_id, e.actor, e.auth_method, e.auth_issuer, e.action, \
                     e.target_type, e.target_id, e.outcome, e.request_id, e.client_addr, \
                     coalesce(e.details, '{{}}') || jsonb_build_object('msg_id', m.msg_id) \
                   FROM sent s JOIN msg m USING (reservation_id) \
                   CROSS JOIN LATERAL jsonb_to_record(s.audit) AS e({audit_record}) \
                   WHERE s.audit IS NOT NULL \
                   ORDER BY s.ord), \
                 chg AS ( \
                   INSERT INTO job_changes (user_id) \
                   SELECT DISTINCT user_id FROM ins \
                   WHERE current_setting('{recorded}', true) = 'on') \
                 SELECT i.ord, \
                   coalesce(i.max_queued IS NULL OR l.n + c.nth <= i.max_queued, false) AS admitted, \
                   msg.msg_id, p.reservation_id AS prior_id, p.user_id AS prior_user, \
                   p.by_key AS prior_by_key, a.ok AS ssh_access, \
                   coalesce(i.start_at IS NULL OR i.max_booked IS NULL \
                     OR l.booked + c.booking_hours <= i.max_booked + 1e-9, true) AS within_booked, \
                   l.booked AS booked_hours, {COLUMNS} \
                 FROM input i JOIN load l USING (user_id) JOIN access a USING (ord) \
                 LEFT JOIN prior p ON p.ord = i.ord \
                 LEFT JOIN cand c ON c.ord = i.ord \
                 LEFT JOIN (ins r JOIN users u USING (user_id) JOIN msg USING (reservation_id)) \
                   ON r.reservation_id = i.reservation_id \
                 ORDER BY i.ord",
        queue = queue.table(),
        audit_columns = audit_entry_columns!(),
        audit_record = audit_entry_record!(),
        recorded = crate::job_changes::RECORDED_BY_STATEMENT,
    );
    let rows = match commit {
        None => tx.query(&sql, &[&input]).await?,
        Some(c) => crate::db::query_committing(c.db, &sql, &[&input], c.on_rows).await?,
    };
    if rows.len() != submits.len() {
        return Err(StoreError::Corrupt(format!(
            "a statement for {} submits answered {} rows",
            submits.len(),
            rows.len()
        )));
    }
    let mut outcomes = Vec::with_capacity(rows.len());
    for (row, &(new, checks, _)) in rows.iter().zip(submits) {
        outcomes.push(outcome(tx, row, new, checks).await?);
    }
    Ok(outcomes)
}

/// One submit as a row of the statement's input.
fn input_row(
    new: &NewReservation,
    checks: Checks,
    audit: Option<&AuditEntry<'_>>,
    requested_at: chrono::DateTime<Utc>,
) -> Result<serde_json::Value, StoreError> {
    let hint = serde_json::to_value(QueueMessage::Create(ReservationHint {
        reservation_id: new.reservation_id,
        username: new.username.to_string(),
        requested_at,
        details: serde_json::json!({
            "gpu_type": new.gpu_type,
            "gpu_count": new.gpu_count,
            "node_count": new.node_count,
        }),
    }))
    .map_err(|e| StoreError::Corrupt(format!("message does not serialise: {e}")))?;
    Ok(serde_json::json!({
        "reservation_id": new.reservation_id,
        "user_id": new.user_id,
        "username": new.username.as_str(),
        "name": new.name.as_ref().map(|n| n.as_str()),
        "gpu_type": new.gpu_type.as_str(),
        "gpu_count": new.gpu_count,
        "node_count": new.node_count,
        "duration_hours": new.duration_hours,
        "image": new.image.as_str(),
        "env_names": new.env_names,
        "disk_name": new.disk_name.as_ref().map(|d| d.as_str()),
        "jupyter_enabled": new.jupyter_enabled,
        "github_user": new.github_user.as_ref().map(|g| g.as_str()),
        "priority": new.priority,
        "idempotency_key": new.idempotency_key,
        "cli_version": new.cli_version,
        "request_hash": new.request_hash,
        "disk_size_gb": new.disk_size_gb,
        "max_queued": checks.quota.map(|q| q.max_queued),
        "queue_position": new.queue_position,
        "estimated_start_at": new.estimated_start_at,
        "key_id": new.secrets.as_ref().map(|s| s.key_id.as_str()),
        "data_key": new.secrets.as_ref().map(|s| BASE64.encode(&s.data_key)),
        "sealed": new.secrets.as_ref().map(|s| BASE64.encode(&s.sealed)),
        "hint": hint,
        "ssh_check": checks.ssh_access,
        "start_at": new.start_at,
        "max_booked": checks.max_booked_gpu_hours.map(f64::from),
        "audit": audit,
    }))
}

/// What became of `new`, from its row of the statement.
async fn outcome(
    tx: &impl Db,
    row: &tokio_postgres::Row,
    new: &NewReservation,
    checks: Checks,
) -> Result<Checked, StoreError> {
    let quota = checks.quota;
    let msg_id: Option<i64> = row.get("msg_id");
    if let Some(msg_id) = msg_id {
        return Ok(Checked::Submitted(Submitted::Created {
            reservation: Box::new(from_row(row)?),
            msg_id,
        }));
    }
    let prior: Option<(Uuid, i64, bool)> = row
        .get::<_, Option<Uuid>>("prior_id")
        .map(|id| (id, row.get("prior_user"), row.get("prior_by_key")));
    if let Some((id, owner, by_key)) = prior {
        return existing(tx, new, id, owner, by_key).await;
    }
    if !row.get::<_, bool>("ssh_access") {
        return Ok(Checked::NoSshAccess);
    }
    if !row.get::<_, bool>("within_booked")
        && let Some(limit) = checks.max_booked_gpu_hours
    {
        return Ok(Checked::OverBookedHours {
            limit,
            booked: row.get("booked_hours"),
        });
    }
    if !row.get::<_, bool>("admitted") {
        return quota.map(Checked::OverQuota).ok_or_else(|| {
            StoreError::Corrupt("a submit without a quota was refused for its quota".into())
        });
    }
    // Admitted, not inserted, and nothing found before it: a concurrent transaction committed
    // the same id or key after the snapshot. A new statement sees it.
    if let Some(key) = new.idempotency_key.as_deref()
        && let Some(first) = find_by_idempotency_key(tx, new.user_id, key).await?
    {
        return Ok(Checked::Submitted(Submitted::Existing(Box::new(first))));
    }
    match super::queries::find(tx, new.reservation_id).await? {
        Some(taken) => Ok(Checked::IdTaken(
            (taken.user_id == new.user_id).then(|| Box::new(taken)),
        )),
        None => Err(StoreError::Corrupt(format!(
            "reservation {} was neither stored nor refused",
            new.reservation_id
        ))),
    }
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

/// What begins a transaction of submits written with [`submit_audited_committing`]: `BEGIN`,
/// sequential scans off (the statement's lookups stay index lookups even when it was planned
/// while the tables were a few pages: a young database whose statistics have not caught up, and
/// a connection keeps the plan it made then), and the submit statement recording its own job
/// changes ([`crate::job_changes::RECORDED_BY_STATEMENT`]).
pub fn begin_submits() -> &'static str {
    static BEGIN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL {} = on",
            crate::job_changes::RECORDED_BY_STATEMENT
        )
    });
    &BEGIN
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
