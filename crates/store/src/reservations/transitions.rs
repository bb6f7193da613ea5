//! Guarded status changes and the events that record them.

use gpudev_domain::ReservationStatus;
use serde_json::Value;
use uuid::Uuid;

use super::model::Reservation;
use super::queries::get_in;
use crate::error::NotFound;
use crate::{Db, StoreError};

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
                     promised_start_at = CASE WHEN $2 = 'queued' THEN r.promised_start_at ELSE NULL END, \
                     promised_nodes = CASE WHEN $2 = 'queued' THEN r.promised_nodes ELSE NULL END, \
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
