//! Queries and guarded updates of the expiry job.
//!
//! Every change here is conditional on the state that made the job decide it (a status, a
//! level not yet sent, a marker not yet set), so two overlapping runs make each change once.
//! Work that spans the cluster and the database is serialised per object with
//! [`try_lock`], a transaction-level advisory lock the second run skips instead of waiting for.

use chrono::{DateTime, Utc};
use gpudev_domain::{DiskName, DisplayName, GpuType, Username};
use serde_json::Value;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::{StoreError, columns};

/// An active reservation as the expiry job sees it.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct ActiveReservation {
    pub reservation_id: Uuid,
    /// Owner's name.
    pub username: Username,
    /// The name its owner gave it.
    pub name: Option<DisplayName>,
    pub gpu_type: GpuType,
    /// When it ends unless extended.
    pub expires_at: DateTime<Utc>,
    /// Seconds from now (database time) to `expires_at`; negative once past.
    pub seconds_left: f64,
    /// Warning levels already sent (`30m`, …).
    pub warnings_sent: Vec<String>,
    /// When it became active.
    pub launched_at: Option<DateTime<Utc>>,
    /// When a run first saw it without its Pod, if it is missing now.
    pub pod_missing_since: Option<DateTime<Utc>>,
}

/// Parses an [`ACTIVE_SELECT`] row once; a value the domain refuses names its column.
fn active_from_row(r: &Row) -> Result<ActiveReservation, StoreError> {
    Ok(ActiveReservation {
        reservation_id: r.get(0),
        username: columns::parsed(r, "user", "username", Username::parse)?,
        name: columns::parsed_opt(r, "reservation", "name", DisplayName::parse)?,
        gpu_type: columns::parsed(r, "reservation", "gpu_type", GpuType::parse)?,
        expires_at: r.get(4),
        seconds_left: r.get(5),
        warnings_sent: r.get(6),
        launched_at: r.get(7),
        pod_missing_since: r.get(8),
    })
}

const ACTIVE_SELECT: &str = "SELECT r.reservation_id, u.username, r.name, r.gpu_type, r.expires_at, \
    extract(epoch FROM r.expires_at - now())::float8, r.warnings_sent, r.launched_at, \
    r.pod_missing_since FROM reservations r JOIN users u USING (user_id)";

/// Every active reservation with an end time, soonest end first.
pub async fn active(db: &impl GenericClient) -> Result<Vec<ActiveReservation>, StoreError> {
    let rows = db
        .query(
            &format!(
                "{ACTIVE_SELECT} WHERE r.status = 'active' AND r.expires_at IS NOT NULL \
                 ORDER BY r.expires_at, r.reservation_id"
            ),
            &[],
        )
        .await?;
    rows.iter().map(active_from_row).collect()
}

/// One active reservation, re-read (typically after taking its lock).
pub async fn active_one(
    db: &impl GenericClient,
    id: Uuid,
) -> Result<Option<ActiveReservation>, StoreError> {
    let row = db
        .query_opt(
            &format!(
                "{ACTIVE_SELECT} WHERE r.reservation_id = $1 AND r.status = 'active' \
                 AND r.expires_at IS NOT NULL"
            ),
            &[&id],
        )
        .await?;
    row.as_ref().map(active_from_row).transpose()
}

/// Takes a transaction-level advisory lock on `(scope, id)` if no one else holds it; false
/// when another session does. Released when the caller's transaction ends.
pub async fn try_lock(db: &impl GenericClient, scope: &str, id: Uuid) -> Result<bool, StoreError> {
    let row = db
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtextextended('gpudev.' || $1::text || '.' || $2::uuid::text, 0))",
            &[&scope, &id],
        )
        .await?;
    Ok(row.get(0))
}

/// A warning that was claimed for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedWarning {
    /// When the reservation ends.
    pub expires_at: DateTime<Utc>,
    /// Whole minutes left, rounded up.
    pub minutes_left: i64,
}

/// Claims the warning `level` of an active reservation: adds `levels` (the level and every less
/// urgent one, so a late first warning does not send the skipped ones after it) to
/// `warnings_sent` and records a `warning` event, in one statement, only if the reservation is
/// active, ends within `threshold_seconds` and `level` was not sent yet. `None` when another
/// run claimed it first, the reservation was extended past the threshold, or it ended.
pub async fn claim_warning(
    db: &impl GenericClient,
    id: Uuid,
    level: &str,
    levels: &[String],
    threshold_seconds: f64,
    actor: &str,
) -> Result<Option<ClaimedWarning>, StoreError> {
    let row = db
        .query_opt(
            "WITH upd AS ( \
               UPDATE reservations r SET warnings_sent = ARRAY( \
                   SELECT DISTINCT unnest(r.warnings_sent || $3::text[]) ORDER BY 1) \
               WHERE r.reservation_id = $1 AND r.status = 'active' \
                 AND r.expires_at > now() \
                 AND r.expires_at <= now() + make_interval(secs => $4::float8) \
                 AND NOT ($2 = ANY(r.warnings_sent)) \
               RETURNING r.reservation_id, r.expires_at, \
                 ceil(extract(epoch FROM r.expires_at - now()) / 60)::bigint AS minutes_left), \
             ev AS ( \
               INSERT INTO reservation_events (reservation_id, kind, reason, actor, details) \
               SELECT reservation_id, 'warning', \
                 'expires in ' || minutes_left || ' minute' || CASE WHEN minutes_left = 1 THEN '' ELSE 's' END, \
                 $5, jsonb_build_object('level', $2::text, 'minutes_left', minutes_left, 'expires_at', expires_at) \
               FROM upd) \
             SELECT expires_at, minutes_left FROM upd",
            &[&id, &level, &levels, &threshold_seconds, &actor],
        )
        .await?;
    Ok(row.map(|r| ClaimedWarning {
        expires_at: r.get(0),
        minutes_left: r.get(1),
    }))
}

/// Adds delivery results to the reservation's newest `warning` event for `level`.
pub async fn record_warning_delivery(
    db: &impl GenericClient,
    id: Uuid,
    level: &str,
    delivery: &Value,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE reservation_events SET details = details || jsonb_build_object('delivery', $3::jsonb) \
         WHERE event_id = (SELECT max(event_id) FROM reservation_events \
           WHERE reservation_id = $1 AND kind = 'warning' AND details->>'level' = $2)",
        &[&id, &level, delivery],
    )
    .await?;
    Ok(())
}

/// Records that an active reservation's Pod is missing: sets `pod_missing_since` the first time
/// (with a `note` event) and returns how long ago it was first seen missing, in seconds.
/// `None` when the reservation is no longer active.
pub async fn mark_pod_missing(
    db: &impl GenericClient,
    id: Uuid,
    actor: &str,
) -> Result<Option<f64>, StoreError> {
    let row = db
        .query_opt(
            "WITH cur AS ( \
               SELECT reservation_id, pod_missing_since AS before FROM reservations \
               WHERE reservation_id = $1 AND status = 'active' FOR UPDATE), \
             upd AS ( \
               UPDATE reservations r SET pod_missing_since = coalesce(r.pod_missing_since, now()) \
               FROM cur WHERE r.reservation_id = cur.reservation_id \
               RETURNING r.reservation_id, r.pod_missing_since, cur.before), \
             ev AS ( \
               INSERT INTO reservation_events (reservation_id, kind, reason, actor) \
               SELECT reservation_id, 'note', 'pod missing', $2 FROM upd WHERE before IS NULL) \
             SELECT extract(epoch FROM now() - pod_missing_since)::float8 FROM upd",
            &[&id, &actor],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Forgets that a reservation's Pod was missing (it is back); true when a marker was cleared.
pub async fn clear_pod_missing(db: &impl GenericClient, id: Uuid) -> Result<bool, StoreError> {
    let n = db
        .execute(
            "UPDATE reservations SET pod_missing_since = NULL \
             WHERE reservation_id = $1 AND pod_missing_since IS NOT NULL",
            &[&id],
        )
        .await?;
    Ok(n == 1)
}

/// Reservations in `status` since longer than `older_than_seconds` (`queued`: since
/// submission, or for a booking since its booked start; `preparing`: since admission), oldest
/// first. A queued reservation that holds a promised start is never stale: its start is known.
pub async fn stale(
    db: &impl GenericClient,
    status: gpudev_domain::ReservationStatus,
    older_than_seconds: f64,
) -> Result<Vec<Uuid>, StoreError> {
    let rows = db
        .query(
            "SELECT reservation_id FROM reservations \
             WHERE status = $1 AND promised_start_at IS NULL \
               AND CASE WHEN status = 'preparing' THEN coalesce(admitted_at, created_at) \
                        ELSE greatest(created_at, start_at) END \
                   < now() - make_interval(secs => $2::float8) \
             ORDER BY created_at, reservation_id",
            &[&status.as_str(), &older_than_seconds],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Locks a reservation's row until the end of the caller's transaction and says whether it is
/// still [`stale`] (same status, same age rule). Lets the caller change a status that several
/// statuses may lead to (`cancelled`, `failed`) only from the one it saw.
pub async fn lock_if_stale(
    db: &impl GenericClient,
    id: Uuid,
    status: gpudev_domain::ReservationStatus,
    older_than_seconds: f64,
) -> Result<bool, StoreError> {
    let row = db
        .query_opt(
            "SELECT CASE WHEN status = 'preparing' THEN coalesce(admitted_at, created_at) \
                        ELSE greatest(created_at, start_at) END \
                   < now() - make_interval(secs => $3::float8) AND promised_start_at IS NULL \
             FROM reservations WHERE reservation_id = $1 AND status = $2 FOR UPDATE",
            &[&id, &status.as_str(), &older_than_seconds],
        )
        .await?;
    Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
}

/// Ids of every `queued`, `preparing` and `active` reservation.
pub async fn live_ids(
    db: &impl GenericClient,
) -> Result<std::collections::HashSet<Uuid>, StoreError> {
    let rows = db
        .query(
            concat!(
                "SELECT reservation_id FROM reservations WHERE status IN ",
                crate::live_statuses!()
            ),
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A disk attached to a reservation.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct AttachedDisk {
    pub disk_id: Uuid,
    /// Name chosen by the owner.
    pub disk_name: DiskName,
    /// Name of its PersistentVolumeClaim.
    pub kube_name: String,
    /// Owner's name.
    pub username: Username,
}

/// The disks attached to a reservation.
pub async fn attached_disks(
    db: &impl GenericClient,
    reservation_id: Uuid,
) -> Result<Vec<AttachedDisk>, StoreError> {
    let rows = db
        .query(
            "SELECT d.disk_id, d.disk_name, d.kube_name, u.username FROM disks d \
             JOIN users u USING (user_id) WHERE d.reservation_id = $1 ORDER BY d.disk_name",
            &[&reservation_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AttachedDisk {
                disk_id: r.get(0),
                disk_name: columns::parsed(r, "disk", "disk_name", DiskName::parse)?,
                kube_name: r.get(2),
                username: columns::parsed(r, "user", "username", Username::parse)?,
            })
        })
        .collect()
}

/// A recorded snapshot.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct SnapshotRef {
    pub snapshot_id: Uuid,
    /// The disk it belongs to.
    pub disk_id: Uuid,
    /// Name of the VolumeSnapshot.
    pub kube_name: String,
}

fn snapshot_from_row(r: &Row) -> SnapshotRef {
    SnapshotRef {
        snapshot_id: r.get(0),
        disk_id: r.get(1),
        kube_name: r.get(2),
    }
}

/// Snapshots still `pending` (taken, not yet reported ready).
pub async fn pending_snapshots(db: &impl GenericClient) -> Result<Vec<SnapshotRef>, StoreError> {
    let rows = db
        .query(
            "SELECT snapshot_id, disk_id, kube_name FROM disk_snapshots WHERE status = 'pending' \
             ORDER BY created_at, snapshot_id",
            &[],
        )
        .await?;
    Ok(rows.iter().map(snapshot_from_row).collect())
}

/// Marks a pending snapshot failed; false when it was not pending.
pub async fn snapshot_failed(
    db: &impl GenericClient,
    snapshot_id: Uuid,
) -> Result<bool, StoreError> {
    let n = db
        .execute(
            "UPDATE disk_snapshots SET status = 'failed' WHERE snapshot_id = $1 AND status = 'pending'",
            &[&snapshot_id],
        )
        .await?;
    Ok(n == 1)
}

/// Ready snapshots of live disks beyond the newest `keep` ready ones of each disk, and failed
/// snapshots of any disk: those the job deletes. Pending snapshots are never returned, so the
/// newest copy that can be restored is kept until a newer one is ready.
pub async fn surplus_snapshots(
    db: &impl GenericClient,
    keep: i64,
) -> Result<Vec<SnapshotRef>, StoreError> {
    let rows = db
        .query(
            "SELECT snapshot_id, disk_id, kube_name FROM ( \
               SELECT s.snapshot_id, s.disk_id, s.kube_name, s.status, s.created_at, \
                 row_number() OVER (PARTITION BY s.disk_id, s.status = 'ready' \
                                    ORDER BY s.created_at DESC, s.snapshot_id DESC) AS rank \
               FROM disk_snapshots s JOIN disks d USING (disk_id) \
               WHERE s.status IN ('ready', 'failed') AND d.purged_at IS NULL) ranked \
             WHERE status = 'failed' OR rank > $1 \
             ORDER BY created_at, snapshot_id",
            &[&keep],
        )
        .await?;
    Ok(rows.iter().map(snapshot_from_row).collect())
}

/// Marks a snapshot deleted; false when it already was.
pub async fn snapshot_deleted(
    db: &impl GenericClient,
    snapshot_id: Uuid,
) -> Result<bool, StoreError> {
    let n = db
        .execute(
            "UPDATE disk_snapshots SET status = 'deleted', deleted_at = now() \
             WHERE snapshot_id = $1 AND status <> 'deleted'",
            &[&snapshot_id],
        )
        .await?;
    Ok(n == 1)
}

/// A soft-deleted disk whose delete date has passed.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct DiskToPurge {
    pub disk_id: Uuid,
    /// Name of its PersistentVolumeClaim.
    pub kube_name: String,
    /// Names of its VolumeSnapshots not yet deleted.
    pub snapshots: Vec<String>,
}

/// Soft-deleted disks past their delete date that were not purged yet (and are attached to
/// nothing), oldest date first.
pub async fn disks_to_purge(db: &impl GenericClient) -> Result<Vec<DiskToPurge>, StoreError> {
    let rows = db
        .query(
            "SELECT d.disk_id, d.kube_name, coalesce(array_agg(s.kube_name ORDER BY s.created_at) \
               FILTER (WHERE s.snapshot_id IS NOT NULL), '{}') \
             FROM disks d LEFT JOIN disk_snapshots s ON s.disk_id = d.disk_id AND s.status <> 'deleted' \
             WHERE d.is_deleted AND d.purged_at IS NULL AND d.delete_after < now() \
               AND d.reservation_id IS NULL \
             GROUP BY d.disk_id ORDER BY min(d.delete_after), d.disk_id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DiskToPurge {
            disk_id: r.get(0),
            kube_name: r.get(1),
            snapshots: r.get(2),
        })
        .collect())
}

/// True while a disk is still due for purging (re-checked under its lock).
pub async fn purge_due(db: &impl GenericClient, disk_id: Uuid) -> Result<bool, StoreError> {
    let row = db
        .query_opt(
            "SELECT 1 FROM disks WHERE disk_id = $1 AND is_deleted AND purged_at IS NULL \
               AND delete_after < now() AND reservation_id IS NULL",
            &[&disk_id],
        )
        .await?;
    Ok(row.is_some())
}

/// Records that a soft-deleted disk's claim and snapshots are gone: the disk becomes `deleted`
/// with `purged_at`, and its snapshots `deleted`. False when it was already purged.
pub async fn mark_purged(db: &impl GenericClient, disk_id: Uuid) -> Result<bool, StoreError> {
    let n = db
        .execute(
            "UPDATE disks SET purged_at = now(), status = 'deleted' \
             WHERE disk_id = $1 AND is_deleted AND purged_at IS NULL",
            &[&disk_id],
        )
        .await?;
    if n == 1 {
        db.execute(
            "UPDATE disk_snapshots SET status = 'deleted', deleted_at = now() \
             WHERE disk_id = $1 AND status <> 'deleted'",
            &[&disk_id],
        )
        .await?;
    }
    Ok(n == 1)
}
