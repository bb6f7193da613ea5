//! Multi-node reservations the original client sends one node at a time (ADR 16): one
//! reservation of N nodes, created by the first member to arrive and invisible to the scheduler
//! until the other N − 1 have joined, each member keeping the id the client polls.

use uuid::Uuid;

use super::model::Reservation;
use super::queries::get_in;
use crate::{Db, StoreError};

/// Makes a just-stored, still uncommitted `queued` reservation a group waiting for
/// `waiting_for` more members until `window_secs` from now, and records its first member
/// (its own id, at `node_index`).
pub async fn start_group(
    tx: &impl Db,
    reservation_id: Uuid,
    node_index: i32,
    waiting_for: i32,
    window_secs: f64,
) -> Result<(), StoreError> {
    let changed = tx
        .execute(
            "WITH upd AS ( \
               UPDATE reservations SET group_waiting_for = $3, \
                 group_deadline = now() + make_interval(secs => $4) \
               WHERE reservation_id = $1 AND status = 'queued' AND group_waiting_for = 0 \
               RETURNING reservation_id) \
             INSERT INTO reservation_group_members (member_id, reservation_id, node_index) \
             SELECT reservation_id, reservation_id, $2 FROM upd",
            &[&reservation_id, &node_index, &waiting_for, &window_secs],
        )
        .await?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "reservation {reservation_id} cannot start a group"
        )))
    }
}

/// The owner's group named `name` of `node_count` nodes of `gpu_type` that is still waiting for
/// members and whose deadline has not passed, locked for the caller's transaction.
pub async fn open_group(
    tx: &impl Db,
    user_id: i64,
    name: &str,
    gpu_type: &str,
    node_count: i32,
) -> Result<Option<Reservation>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT reservation_id FROM reservations \
             WHERE user_id = $1 AND status = 'queued' AND group_waiting_for > 0 \
               AND group_deadline > now() AND name = $2 AND gpu_type = $3 AND node_count = $4 \
             ORDER BY created_at LIMIT 1 FOR UPDATE",
            &[&user_id, &name, &gpu_type, &node_count],
        )
        .await?;
    match row {
        Some(row) => Ok(Some(get_in(tx, row.get(0)).await?)),
        None => Ok(None),
    }
}

/// What joining a group did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// The member joined; this many are still to come (0: the group is complete and may be
    /// scheduled).
    Joined {
        /// Members still to come.
        waiting_for: i32,
    },
    /// Another member already holds that node index.
    IndexTaken,
    /// The member's id is already a reservation's or another member's.
    IdTaken,
    /// The group is no longer waiting (complete, cancelled, failed or past its deadline).
    Closed,
}

/// Adds member `member_id` at `node_index` to the group `reservation_id`, in one statement: the
/// member row is written and the group's count of members to come decreases only together, and
/// only while the group is queued, waiting and within its deadline. A `note` event records it.
pub async fn join_group(
    tx: &impl Db,
    reservation_id: Uuid,
    member_id: Uuid,
    node_index: i32,
    actor: &str,
) -> Result<Joined, StoreError> {
    let row = tx
        .query_one(
            "WITH g AS ( \
               SELECT reservation_id FROM reservations \
               WHERE reservation_id = $1 AND status = 'queued' AND group_waiting_for > 0 \
                 AND group_deadline > now() FOR UPDATE), \
             free AS ( \
               SELECT NOT EXISTS (SELECT 1 FROM reservations WHERE reservation_id = $2) \
                  AND NOT EXISTS (SELECT 1 FROM reservation_group_members WHERE member_id = $2) \
                  AS id_free, \
                 NOT EXISTS (SELECT 1 FROM reservation_group_members \
                   WHERE reservation_id = $1 AND node_index = $3) AS index_free), \
             ins AS ( \
               INSERT INTO reservation_group_members (member_id, reservation_id, node_index) \
               SELECT $2, g.reservation_id, $3 FROM g, free WHERE free.id_free AND free.index_free \
               ON CONFLICT DO NOTHING RETURNING reservation_id), \
             upd AS ( \
               UPDATE reservations r SET group_waiting_for = r.group_waiting_for - 1 \
               FROM ins WHERE r.reservation_id = ins.reservation_id \
               RETURNING r.reservation_id, r.group_waiting_for), \
             ev AS ( \
               INSERT INTO reservation_events (reservation_id, kind, reason, actor, details) \
               SELECT reservation_id, 'note', \
                 'node ' || ($3 + 1) || ' of the group joined', $4, \
                 jsonb_build_object('member_id', $2::uuid, 'node_index', $3::int, \
                   'waiting_for', group_waiting_for) \
               FROM upd) \
             SELECT EXISTS (SELECT 1 FROM g), free.id_free, free.index_free, \
               (SELECT group_waiting_for FROM upd) \
             FROM free",
            &[&reservation_id, &member_id, &node_index, &actor],
        )
        .await?;
    let (open, id_free, index_free, waiting): (bool, bool, bool, Option<i32>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    Ok(match waiting {
        Some(waiting_for) => Joined::Joined { waiting_for },
        None if !open => Joined::Closed,
        None if !id_free => Joined::IdTaken,
        None if !index_free => Joined::IndexTaken,
        None => Joined::Closed,
    })
}

/// The reservation a group member's id stands for, and the member's node index.
pub async fn member(db: &impl Db, member_id: Uuid) -> Result<Option<(Uuid, i32)>, StoreError> {
    Ok(db
        .query_opt(
            "SELECT reservation_id, node_index FROM reservation_group_members \
             WHERE member_id = $1",
            &[&member_id],
        )
        .await?
        .map(|row| (row.get(0), row.get(1))))
}

/// Groups whose deadline passed before all their members arrived.
pub async fn incomplete(db: &impl Db) -> Result<Vec<Uuid>, StoreError> {
    Ok(db
        .query(
            "SELECT reservation_id FROM reservations \
             WHERE group_waiting_for > 0 AND group_deadline <= now() AND status = 'queued' \
             ORDER BY group_deadline",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Locks a group for the caller's transaction if it is still queued, incomplete and past its
/// deadline; returns how many members arrived and how many the group has, or `None`.
pub async fn lock_if_incomplete(
    tx: &impl Db,
    reservation_id: Uuid,
) -> Result<Option<(i32, i32)>, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT node_count - group_waiting_for, node_count FROM reservations \
             WHERE reservation_id = $1 AND group_waiting_for > 0 AND group_deadline <= now() \
               AND status = 'queued' FOR UPDATE",
            &[&reservation_id],
        )
        .await?
        .map(|row| (row.get(0), row.get(1))))
}
