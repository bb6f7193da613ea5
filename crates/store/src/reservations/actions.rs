//! What users do to a reservation after submitting it: extend it, switch Jupyter, add a user;
//! and the queue hints that announce it.

use chrono::Utc;
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
/// becomes active. All in one guarded statement.
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
    let row = db
        .query_opt(
            concat!(
                "WITH cur AS ( \
                   SELECT reservation_id, status, duration_hours + extended_hours AS lifetime \
                   FROM reservations WHERE reservation_id = $1 FOR UPDATE), \
                 upd AS ( \
                   UPDATE reservations r SET extended_hours = r.extended_hours + $2::float8, \
                     expires_at = r.expires_at + make_interval(secs => $2::float8 * 3600), \
                     warnings_sent = '{}' \
                   FROM cur WHERE r.reservation_id = cur.reservation_id \
                     AND cur.status IN ",
                crate::live_statuses!(),
                " \
                     AND (cur.status <> 'active' OR r.expires_at IS NOT NULL) AND $2::float8 > 0 \
                     AND round((cur.lifetime + $2::float8) * 3600) <= round($3::float8 * 3600) \
                   RETURNING r.reservation_id, r.expires_at), \
                 ev AS ( \
                   INSERT INTO reservation_events (reservation_id, kind, reason, actor, details) \
                   SELECT reservation_id, 'extend', 'extended by ' || $2::float8 || ' h', $4, \
                     jsonb_build_object('extension_hours', $2::float8, 'expires_at', expires_at) \
                   FROM upd) \
                 SELECT upd.reservation_id IS NOT NULL AS changed FROM cur LEFT JOIN upd ON true"
            ),
            &[&id, &hours, &max_lifetime_hours, &actor],
        )
        .await?
        .ok_or(StoreError::NotFound(NotFound::Reservation(id)))?;
    outcome(db, id, row.get(0)).await
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
