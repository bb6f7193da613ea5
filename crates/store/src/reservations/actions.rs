//! What users do to a reservation after submitting it: extend it, switch Jupyter, add a user;
//! and the queue hints that announce it.

use chrono::{DateTime, Utc};
use gpudev_domain::GithubUser;
use serde_json::Value;
use uuid::Uuid;

use super::model::Reservation;
use super::queries::get_in;
use crate::error::NotFound;
use crate::hints::{QueueMessage, ReservationHint};
use crate::{Db, Queue, StoreError};

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
        username: reservation.username.to_string(),
        requested_at: Utc::now(),
        details,
    };
    queue.send(db, &action(hint)).await
}

/// The outcome of a change that only some statuses allow.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The change was made; the reservation as it is now.
    Applied(Box<Reservation>),
    /// Nothing was written; the reservation as it is (its status or limits refused the change).
    Refused(Box<Reservation>),
}

/// Extends a live reservation by `hours`: its `extended_hours` grows and an `extend` event is
/// recorded; when it is `active`, its `expires_at` moves by that much and the expiry warnings
/// already sent are forgotten (so they are sent again before the new end). A `queued` or
/// `preparing` one has no end yet: it runs for its duration plus its extensions from when it
/// becomes active. All in one guarded statement ([`extend_request`] without a key or a delay).
///
/// Refused, writing nothing, unless the reservation is live and its booked lifetime (duration
/// plus every extension, this one included) stays within `max_lifetime_hours` (compared in whole
/// seconds, as the domain's `check_extension` does).
pub async fn extend(
    db: &impl Db,
    id: Uuid,
    hours: f64,
    max_lifetime_hours: f64,
    actor: &str,
) -> Result<Change, StoreError> {
    let call = ExtendCall {
        reservation_id: id,
        user_id: None,
        hours,
        max_lifetime_hours,
        actor,
        idempotency_key: None,
        request_hash: None,
        defer: None,
    };
    Ok(match extend_request(db, &call).await? {
        Extension::Applied { reservation, .. } => Change::Applied(reservation),
        Extension::Refused(now) => Change::Refused(now),
        Extension::Repeated(_) => {
            return Err(StoreError::Corrupt(
                "an extension without a key was answered as a repeat".into(),
            ));
        }
    })
}

/// How long an extension's `Idempotency-Key` is remembered (per user and reservation).
pub const EXTEND_KEY_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Time left before the end under which a deferred extension is applied at once instead: the
/// delay and the processor's next tick must not let the reservation expire first.
const DEFER_MARGIN_SECONDS: f64 = 120.0;

/// An extension to make ([`extend_request`]).
#[derive(Debug, Clone)]
pub struct ExtendCall<'a> {
    /// The reservation.
    pub reservation_id: Uuid,
    /// Who asks (the owner when `None`).
    pub user_id: Option<i64>,
    /// Hours to add.
    pub hours: f64,
    /// The most a reservation may live, extensions included.
    pub max_lifetime_hours: f64,
    /// Who is recorded in the event.
    pub actor: &'a str,
    /// The client's `Idempotency-Key`: a repeat within [`EXTEND_KEY_WINDOW`] extends nothing.
    pub idempotency_key: Option<&'a str>,
    /// A digest of the request, to tell a repeat from another request under the same key.
    pub request_hash: Option<&'a str>,
    /// Book the hours now but move an active reservation's `expires_at` only after this long,
    /// when the processor applies it ([`apply_due_extensions`]); ignored for a reservation
    /// that has not started or ends too soon for a delay.
    pub defer: Option<std::time::Duration>,
}

/// An accepted extension as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtendRecord {
    /// The reservation.
    pub reservation_id: Uuid,
    /// Hours added.
    pub extension_hours: f64,
    /// The end it gave (null while the reservation had not started).
    pub expires_at: Option<DateTime<Utc>>,
    /// When it takes effect: `now`, `shortly` or `at_start`.
    pub applies: String,
    /// The request's digest.
    pub request_hash: Option<String>,
    /// When it was asked.
    pub requested_at: DateTime<Utc>,
    /// When the processor moved `expires_at` for it (at once unless deferred).
    pub applied_at: Option<DateTime<Utc>>,
}

/// The outcome of [`extend_request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Extension {
    /// Extended; the reservation as it is now, and the record.
    Applied {
        /// The reservation after the change.
        reservation: Box<Reservation>,
        /// What was recorded.
        request: ExtendRecord,
    },
    /// Nothing written: not live, or past the lifetime cap; the reservation as it is.
    Refused(Box<Reservation>),
    /// Nothing written: the key was used for this reservation within the window; the first
    /// request's record (compare its `request_hash`).
    Repeated(ExtendRecord),
}

/// Extends a live reservation ([`extend`]), records the request in `extend_requests`, and, with
/// a key, makes a repeat within [`EXTEND_KEY_WINDOW`] extend nothing: one guarded statement
/// decides. Repeats of one key are serialised by a transaction-level advisory lock, so the
/// later one finds the first's record; the unique index on (user, reservation, key) stays as
/// the backstop (a violation is answered as a repeat). With a key the call must run inside a
/// transaction (it takes that lock and a savepoint).
pub async fn extend_request(db: &impl Db, call: &ExtendCall<'_>) -> Result<Extension, StoreError> {
    let window = EXTEND_KEY_WINDOW.as_secs_f64();
    if let Some(key) = call.idempotency_key {
        // Repeats of one key wait for each other here (until the end of the transaction), so
        // a repeat reads the first one's record instead of racing it for the reservation's row.
        db.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended( \
               'gpudev.extend.' || $1::text || '.' || $2::text || '.' || coalesce($3::bigint, 0)::text, 0))",
            &[&call.reservation_id.to_string(), &key, &call.user_id],
        )
        .await?;
        // A key older than the window is forgotten, so that it extends again.
        db.execute(
            "DELETE FROM extend_requests WHERE reservation_id = $1 AND idempotency_key = $2 \
               AND user_id = $3 AND requested_at <= now() - make_interval(secs => $4)",
            &[&call.reservation_id, &key, &call.user_id, &window],
        )
        .await?;
        if let Some(first) = find_extend_request(db, call).await? {
            return Ok(Extension::Repeated(first));
        }
        db.execute("SAVEPOINT gpudev_extend", &[]).await?;
    }
    let defer = call.defer.map_or(0.0, |d| d.as_secs_f64());
    let sql = format!(
        "WITH prior AS ( \
           SELECT e.request_id FROM extend_requests e \
           WHERE $5::text IS NOT NULL AND e.reservation_id = $1 AND e.idempotency_key = $5 \
             AND e.user_id IS NOT DISTINCT FROM $6::bigint), \
         cur AS ( \
           SELECT reservation_id, status, expires_at, \
             duration_hours + extended_hours AS lifetime, \
             status = 'active' AND $7::float8 > 0 \
               AND expires_at > now() + make_interval(secs => $7::float8 + $8::float8) \
               AS deferred \
           FROM reservations WHERE reservation_id = $1 FOR UPDATE), \
         upd AS ( \
           UPDATE reservations r SET extended_hours = r.extended_hours + $2::float8, \
             expires_at = CASE WHEN cur.deferred THEN r.expires_at \
               ELSE r.expires_at + make_interval(secs => $2::float8 * 3600) END, \
             warnings_sent = CASE WHEN cur.deferred THEN r.warnings_sent ELSE '{{}}' END \
           FROM cur WHERE r.reservation_id = cur.reservation_id \
             AND NOT EXISTS (SELECT 1 FROM prior) \
             AND cur.status IN {live} \
             AND (cur.status <> 'active' OR r.expires_at IS NOT NULL) AND $2::float8 > 0 \
             AND round((cur.lifetime + $2::float8) * 3600) <= round($3::float8 * 3600) \
           RETURNING r.reservation_id, r.user_id, cur.deferred, \
             CASE WHEN cur.deferred \
               THEN r.expires_at + make_interval(secs => $2::float8 * 3600) \
               ELSE r.expires_at END AS new_end, \
             CASE WHEN cur.deferred THEN 'shortly' \
               WHEN cur.status = 'active' THEN 'now' ELSE 'at_start' END AS applies), \
         req AS ( \
           INSERT INTO extend_requests (reservation_id, user_id, idempotency_key, request_hash, \
             extension_hours, expires_at, applies, due_at, applied_at) \
           SELECT reservation_id, coalesce($6::bigint, user_id), $5, $9, $2::float8, new_end, \
             applies, now() + make_interval(secs => CASE WHEN deferred THEN $7::float8 ELSE 0 END), \
             CASE WHEN deferred THEN NULL ELSE now() END \
           FROM upd RETURNING request_id), \
         ev AS ( \
           INSERT INTO reservation_events (reservation_id, kind, reason, actor, details) \
           SELECT reservation_id, 'extend', 'extended by ' || $2::float8 || ' h', $4, \
             jsonb_build_object('extension_hours', $2::float8, 'expires_at', new_end, \
               'applies', applies) \
           FROM upd) \
         SELECT (SELECT request_id FROM req) AS made FROM cur",
        live = crate::live_statuses!()
    );
    let row = db
        .query_opt(
            &sql,
            &[
                &call.reservation_id,
                &call.hours,
                &call.max_lifetime_hours,
                &call.actor,
                &call.idempotency_key,
                &call.user_id,
                &defer,
                &DEFER_MARGIN_SECONDS,
                &call.request_hash,
            ],
        )
        .await;
    let row = match row {
        Err(e)
            if call.idempotency_key.is_some()
                && e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
        {
            // The same key committed by a concurrent request after this one's snapshot.
            db.execute("ROLLBACK TO SAVEPOINT gpudev_extend", &[])
                .await?;
            return match find_extend_request(db, call).await? {
                Some(first) => Ok(Extension::Repeated(first)),
                None => Err(StoreError::Corrupt(
                    "an extension's key was taken but no request holds it".into(),
                )),
            };
        }
        other => other?,
    }
    .ok_or(StoreError::NotFound(NotFound::Reservation(
        call.reservation_id,
    )))?;
    if call.idempotency_key.is_some() {
        db.execute("RELEASE SAVEPOINT gpudev_extend", &[]).await?;
    }
    let made: Option<i64> = row.get("made");
    let now = get_in(db, call.reservation_id).await?;
    match made {
        Some(request_id) => {
            let request = extend_record(db, "request_id = $1", &[&request_id])
                .await?
                .ok_or_else(|| StoreError::Corrupt("a recorded extension is missing".into()))?;
            Ok(Extension::Applied {
                reservation: Box::new(now),
                request,
            })
        }
        None => Ok(Extension::Refused(Box::new(now))),
    }
}

/// The request `call`'s key names, if any.
async fn find_extend_request(
    db: &impl Db,
    call: &ExtendCall<'_>,
) -> Result<Option<ExtendRecord>, StoreError> {
    extend_record(
        db,
        "reservation_id = $1 AND idempotency_key = $2 AND user_id IS NOT DISTINCT FROM $3",
        &[&call.reservation_id, &call.idempotency_key, &call.user_id],
    )
    .await
}

async fn extend_record(
    db: &impl Db,
    filter: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<ExtendRecord>, StoreError> {
    let row = db
        .query_opt(
            &format!(
                "SELECT reservation_id, extension_hours, expires_at, applies, request_hash, \
                   requested_at, applied_at FROM extend_requests WHERE {filter}"
            ),
            params,
        )
        .await?;
    Ok(row.map(|r| ExtendRecord {
        reservation_id: r.get("reservation_id"),
        extension_hours: r.get("extension_hours"),
        expires_at: r.get("expires_at"),
        applies: r.get("applies"),
        request_hash: r.get("request_hash"),
        requested_at: r.get("requested_at"),
        applied_at: r.get("applied_at"),
    }))
}

/// Moves the end of every active reservation whose deferred extensions are due (ADR 15), and
/// marks them applied, in one statement; a reservation that ended meanwhile is only marked.
/// Returns the reservations whose end moved. Run by the processor's leader on every tick.
pub async fn apply_due_extensions(db: &impl Db) -> Result<Vec<Uuid>, StoreError> {
    let rows = db
        .query(
            "WITH due AS ( \
               SELECT request_id, reservation_id, extension_hours FROM extend_requests \
               WHERE applied_at IS NULL AND due_at <= now() \
               FOR UPDATE SKIP LOCKED), \
             per AS ( \
               SELECT reservation_id, sum(extension_hours) AS hours FROM due \
               GROUP BY reservation_id), \
             upd AS ( \
               UPDATE reservations r \
               SET expires_at = r.expires_at + make_interval(secs => per.hours * 3600), \
                 warnings_sent = '{}' \
               FROM per WHERE r.reservation_id = per.reservation_id \
                 AND r.status = 'active' AND r.expires_at IS NOT NULL \
               RETURNING r.reservation_id), \
             done AS ( \
               UPDATE extend_requests e SET applied_at = now() \
               FROM due WHERE e.request_id = due.request_id) \
             SELECT reservation_id FROM upd",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Records whether Jupyter is wanted, while the reservation is live: a `queued` one starts with
/// that setting; for a `preparing` or `active` one the processor, told by a hint, switches the
/// dev box's server. A `note` event records the request.
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
/// nothing but still counts as applied), while the reservation is live: a `queued` one starts
/// with the keys; for a `preparing` or `active` one the processor, told by a hint, installs
/// them. A `note` event records the request.
pub async fn add_secondary_user(
    db: &impl Db,
    id: Uuid,
    github_user: &GithubUser,
    actor: &str,
) -> Result<Change, StoreError> {
    let github_user = github_user.as_str();
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

/// `UPDATE … SET <set>` (with `$2` = `value`) for a live reservation, recording a `note` event,
/// in one statement.
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
                 AND cur.status IN {live} \
               RETURNING r.reservation_id), \
             ev AS ( \
               INSERT INTO reservation_events (reservation_id, kind, reason, actor, details) \
               SELECT reservation_id, 'note', $3, $4, $5 FROM upd) \
             SELECT upd.reservation_id IS NOT NULL AS changed FROM cur LEFT JOIN upd ON true",
        live = crate::live_statuses!()
    );
    let row = db
        .query_opt(&sql, &[&id, value, &reason, &actor, &details])
        .await?
        .ok_or(StoreError::NotFound(NotFound::Reservation(id)))?;
    outcome(db, id, row.get(0)).await
}

/// The answer to a guarded change: applied or refused by its own statement's row count, with
/// the reservation as it now stands.
async fn outcome(db: &impl Db, id: Uuid, changed: bool) -> Result<Change, StoreError> {
    let now = get_in(db, id).await?;
    Ok(if changed {
        Change::Applied(Box::new(now))
    } else {
        Change::Refused(Box::new(now))
    })
}
