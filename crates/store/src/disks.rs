//! Persistent disks and their snapshots.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tokio_postgres::Row;

use uuid::Uuid;

use gpudev_domain::DiskName;

use crate::columns::parsed;
use crate::error::NotFound;
use crate::{Db, StoreError};

/// A stored disk.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct Disk {
    pub disk_id: Uuid,
    /// The owner's id.
    pub user_id: i64,
    /// Name, unique per owner among live disks.
    pub disk_name: DiskName,
    /// Name of its PersistentVolumeClaim.
    pub kube_name: String,
    pub size_gb: i32,
    /// `pending`, `ready`, `in_use`, `deleting`, `deleted` or `failed`.
    pub status: String,
    /// Reservation using it.
    pub reservation_id: Option<Uuid>,
    /// Soft-deleted.
    pub is_deleted: bool,
    /// When a soft-deleted disk is removed for good.
    pub delete_after: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last time a reservation used it.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Ready snapshots.
    pub snapshot_count: i64,
    /// The latest create/delete operation on the disk.
    pub operation_id: Option<Uuid>,
    /// `pending`, `completed` or `failed`.
    pub operation_status: Option<String>,
    /// Why the operation failed.
    pub operation_error: Option<String>,
    /// Last change to the row.
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT d.disk_id, d.user_id, d.disk_name, d.kube_name, d.size_gb, d.status, \
    d.reservation_id, d.is_deleted, d.delete_after, d.created_at, d.last_used_at, \
    (SELECT count(*) FROM disk_snapshots s WHERE s.disk_id = d.disk_id AND s.status = 'ready'), \
    d.operation_id, d.operation_status, d.operation_error, d.updated_at \
    FROM disks d";

/// Parses a disk row once; a name the domain refuses is a corrupt row naming its column.
fn from_row(r: &Row) -> Result<Disk, StoreError> {
    Ok(Disk {
        disk_id: r.get(0),
        user_id: r.get(1),
        disk_name: parsed(r, "disks", "disk_name", DiskName::parse)?,
        kube_name: r.get(3),
        size_gb: r.get(4),
        status: r.get(5),
        reservation_id: r.get(6),
        is_deleted: r.get(7),
        delete_after: r.get(8),
        created_at: r.get(9),
        last_used_at: r.get(10),
        snapshot_count: r.get(11),
        operation_id: r.get(12),
        operation_status: r.get(13),
        operation_error: r.get(14),
        updated_at: r.get(15),
    })
}

/// A disk record to create.
#[derive(Debug, Clone)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct NewDisk<'a> {
    /// Its id, chosen by the caller so that the claim name can be derived from it.
    pub disk_id: Uuid,
    /// The owner.
    pub user_id: i64,
    /// The name the owner gave it.
    pub disk_name: &'a DiskName,
    /// Its PersistentVolumeClaim's name (`DiskName::kube_name` of the owner and `disk_id`),
    /// fixed for the life of the disk: renames do not change it.
    pub kube_name: &'a str,
    pub size_gb: i32,
    /// The operation that tracks the creation, completed by the processor.
    pub operation_id: Option<Uuid>,
}

/// Creates a disk record; a live disk of the same name for the same owner is a conflict. With an
/// `operation_id` the creation is tracked as a pending operation the processor completes.
///
/// A taken name is found by `ON CONFLICT DO NOTHING`, not by a unique violation, so clients
/// asking for taken names cannot fill the server's log with errors.
pub async fn create(db: &impl Db, new: &NewDisk<'_>) -> Result<Disk, StoreError> {
    let disk_name = new.disk_name.as_str();
    let row = db
        .query_opt(
            "WITH d AS ( \
                   INSERT INTO disks (disk_id, user_id, disk_name, kube_name, size_gb, operation_id, \
                     operation_status) \
                   VALUES ($1, $2, $3, $4, $5, $6, \
                     CASE WHEN $6::uuid IS NULL THEN NULL ELSE 'pending' END) \
                   ON CONFLICT (user_id, disk_name) WHERE NOT is_deleted DO NOTHING \
                   RETURNING disk_id, operation_id), \
                 op AS ( \
                   INSERT INTO disk_operations (operation_id, disk_id, action) \
                   SELECT operation_id, disk_id, 'create' FROM d WHERE operation_id IS NOT NULL) \
             SELECT disk_id FROM d",
            &[
                &new.disk_id,
                &new.user_id,
                &disk_name,
                &new.kube_name,
                &new.size_gb,
                &new.operation_id,
            ],
        )
        .await?;
    let Some(row) = row else {
        return Err(StoreError::Conflict(format!(
            "disk {disk_name:?} already exists"
        )));
    };
    by_id(db, row.get(0)).await
}

/// A user's live disks by name (soft-deleted ones too when `include_deleted`).
pub async fn list(
    db: &impl Db,
    user_id: i64,
    include_deleted: bool,
) -> Result<Vec<Disk>, StoreError> {
    let rows = db
        .query(
            &format!(
                "{SELECT} WHERE d.user_id = $1 AND ($2 OR NOT d.is_deleted) \
                 ORDER BY d.disk_name, d.created_at DESC"
            ),
            &[&user_id, &include_deleted],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

/// A user's live disk by name.
pub async fn get(db: &impl Db, user_id: i64, name: &str) -> Result<Disk, StoreError> {
    let row = db
        .query_opt(
            &format!("{SELECT} WHERE d.user_id = $1 AND d.disk_name = $2 AND NOT d.is_deleted"),
            &[&user_id, &name],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(NotFound::Disk(name.to_owned())))?;
    from_row(&row)
}

/// Soft-deletes a disk that is not in use; it is removed for good after `grace`. The deletion is
/// tracked as operation `operation_id`.
///
/// One guarded statement finds, checks and changes the row, so of concurrent deletes (or a delete
/// racing an attach) exactly one wins and the others are refused: not found once it is deleted, a
/// conflict naming the reservation once it is attached.
pub async fn soft_delete(
    db: &impl Db,
    user_id: i64,
    name: &str,
    grace: Duration,
    operation_id: Uuid,
) -> Result<Disk, StoreError> {
    let delete_after = Utc::now() + grace;
    // `cur` locks the live disk of that name and reads its latest version (a concurrent change
    // is waited for, then the row re-checked); `upd` changes it only while nothing holds it.
    let row = db
        .query_opt(
            "WITH cur AS ( \
                   SELECT disk_id, reservation_id FROM disks \
                   WHERE user_id = $1 AND disk_name = $2 AND NOT is_deleted FOR UPDATE), \
                 upd AS ( \
                   UPDATE disks d SET is_deleted = true, delete_after = $3, status = 'deleting', \
                     operation_id = $4, operation_status = 'pending', operation_error = NULL \
                   FROM cur WHERE d.disk_id = cur.disk_id AND cur.reservation_id IS NULL \
                   RETURNING d.disk_id), \
                 op AS ( \
                   INSERT INTO disk_operations (operation_id, disk_id, action) \
                   SELECT $4, disk_id, 'delete' FROM upd) \
             SELECT cur.disk_id, cur.reservation_id, upd.disk_id IS NOT NULL \
             FROM cur LEFT JOIN upd ON true",
            &[&user_id, &name, &delete_after, &operation_id],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(NotFound::Disk(name.to_owned())))?;
    let (disk_id, holder, changed): (Uuid, Option<Uuid>, bool) =
        (row.get(0), row.get(1), row.get(2));
    if !changed {
        return Err(StoreError::Conflict(format!(
            "disk {name:?} is in use by reservation {}",
            holder.map_or_else(|| "unknown".to_owned(), |r| r.to_string())
        )));
    }
    by_id(db, disk_id).await
}

/// What a rename did.
#[derive(Debug, Clone, PartialEq)]
pub enum Renamed {
    /// The disk, under its new name.
    Done(Box<Disk>),
    /// The owner has no live disk of the old name (or it was renamed or deleted meanwhile).
    NotFound,
    /// The disk is attached to this reservation.
    InUse(Uuid),
    /// The owner has a live disk of the new name already.
    NameTaken,
}

/// Renames a live disk that is not in use, in one guarded statement whose result decides the
/// answer: of concurrent renames of one disk exactly one is [`Renamed::Done`]; a rename that
/// loses to an attach is [`Renamed::InUse`], never a success that changed nothing.
///
/// Call it inside a transaction: it first takes the owner's disk-name lock (see
/// [`lock_names`]), so the check that the new name is free cannot be overtaken by a concurrent
/// create or rename, and a taken name is refused without a unique-violation error in the
/// server's log.
pub async fn rename(
    db: &impl Db,
    user_id: i64,
    old: &str,
    new: &str,
) -> Result<Renamed, StoreError> {
    lock_names(db, user_id).await?;
    let row = db
        .query_opt(
            "WITH cur AS ( \
                   SELECT disk_id, reservation_id FROM disks \
                   WHERE user_id = $1 AND disk_name = $2 AND NOT is_deleted FOR UPDATE), \
                 taken AS ( \
                   SELECT EXISTS (SELECT 1 FROM disks t, cur \
                     WHERE t.user_id = $1 AND t.disk_name = $3 AND NOT t.is_deleted \
                       AND t.disk_id <> cur.disk_id) AS taken), \
                 upd AS ( \
                   UPDATE disks d SET disk_name = $3 FROM cur, taken \
                   WHERE d.disk_id = cur.disk_id AND cur.reservation_id IS NULL AND NOT taken.taken \
                   RETURNING d.disk_id) \
             SELECT cur.disk_id, cur.reservation_id, taken.taken, upd.disk_id IS NOT NULL \
             FROM cur CROSS JOIN taken LEFT JOIN upd ON true",
            &[&user_id, &old, &new],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Renamed::NotFound);
    };
    let (disk_id, holder, taken, changed): (Uuid, Option<Uuid>, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    Ok(match (changed, holder) {
        (true, _) => Renamed::Done(Box::new(by_id(db, disk_id).await?)),
        (false, Some(r)) => Renamed::InUse(r),
        (false, None) => {
            debug_assert!(taken, "a free disk and a free name are renamed");
            Renamed::NameTaken
        }
    })
}

/// Serialises changes to one owner's disk names until the end of the caller's transaction (a
/// transaction-level advisory lock keyed by the owner), so "is this name free" and the write
/// that takes it cannot be split by a concurrent create or rename.
pub async fn lock_names(db: &impl Db, user_id: i64) -> Result<(), StoreError> {
    db.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('gpudev.disk_names.' || $1::bigint::text, 0))",
        &[&user_id],
    )
    .await?;
    Ok(())
}

/// A disk by id.
async fn by_id(db: &impl Db, disk_id: Uuid) -> Result<Disk, StoreError> {
    let row = db
        .query_one(&format!("{SELECT} WHERE d.disk_id = $1"), &[&disk_id])
        .await?;
    from_row(&row)
}

/// Attaches a disk to a reservation; false when it is already attached to another one.
pub async fn attach(db: &impl Db, disk_id: Uuid, reservation_id: Uuid) -> Result<bool, StoreError> {
    let n = db
        .execute(
            "UPDATE disks SET reservation_id = $2, status = 'in_use', last_used_at = now() \
             WHERE disk_id = $1 AND NOT is_deleted \
               AND (reservation_id IS NULL OR reservation_id = $2)",
            &[&disk_id, &reservation_id],
        )
        .await?;
    Ok(n == 1)
}

/// The disks attached to reservation `reservation_id` (at most one in practice).
pub async fn attached_to(db: &impl Db, reservation_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
    let rows = db
        .query(
            "SELECT disk_id FROM disks WHERE reservation_id = $1",
            &[&reservation_id],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Releases a disk from a reservation; false when it was not attached to it.
pub async fn release(
    db: &impl Db,
    disk_id: Uuid,
    reservation_id: Uuid,
) -> Result<bool, StoreError> {
    let n = db
        .execute(
            "UPDATE disks SET reservation_id = NULL, status = 'ready', last_used_at = now() \
             WHERE disk_id = $1 AND reservation_id = $2",
            &[&disk_id, &reservation_id],
        )
        .await?;
    Ok(n == 1)
}

/// Records a snapshot being taken of a disk.
pub async fn add_snapshot(
    db: &impl Db,
    disk_id: Uuid,
    kube_name: &str,
    reservation_id: Option<Uuid>,
) -> Result<Uuid, StoreError> {
    let row = db
        .query_one(
            "INSERT INTO disk_snapshots (disk_id, kube_name, reservation_id) VALUES ($1, $2, $3) \
             RETURNING snapshot_id",
            &[&disk_id, &kube_name, &reservation_id],
        )
        .await?;
    Ok(row.get(0))
}

/// Keeps what the disk held when snapshot `snapshot_id` was taken (a listing of its files).
pub async fn set_snapshot_listing(
    db: &impl Db,
    snapshot_id: Uuid,
    listing: &str,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE disk_snapshots SET content_listing = $2, listed_at = now() WHERE snapshot_id = $1",
        &[&snapshot_id, &listing],
    )
    .await?;
    Ok(())
}

/// The newest listing of a disk's files, with when its snapshot was taken and the snapshot's
/// status; `None` when no snapshot of it has one.
pub async fn latest_listing(
    db: &impl Db,
    disk_id: Uuid,
) -> Result<Option<SnapshotListing>, StoreError> {
    Ok(db
        .query_opt(
            "SELECT content_listing, created_at, listed_at, status FROM disk_snapshots \
             WHERE disk_id = $1 AND content_listing IS NOT NULL \
             ORDER BY created_at DESC LIMIT 1",
            &[&disk_id],
        )
        .await?
        .map(|row| SnapshotListing {
            listing: row.get(0),
            snapshot_taken_at: row.get(1),
            listed_at: row.get(2),
            snapshot_status: row.get(3),
        }))
}

/// A disk's files as listed when one of its snapshots was taken.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotListing {
    /// One path per line, relative to the home directory.
    pub listing: String,
    /// When the snapshot was taken.
    pub snapshot_taken_at: DateTime<Utc>,
    /// When the listing was made (just before).
    pub listed_at: DateTime<Utc>,
    /// `pending`, `ready`, `failed` or `deleted`.
    pub snapshot_status: String,
}

/// Marks a snapshot ready; false when it was not pending.
pub async fn snapshot_ready(
    db: &impl Db,
    snapshot_id: Uuid,
    size_bytes: Option<i64>,
) -> Result<bool, StoreError> {
    let n = db
        .execute(
            "UPDATE disk_snapshots SET status = 'ready', ready_at = now(), size_bytes = $2 \
             WHERE snapshot_id = $1 AND status = 'pending'",
            &[&snapshot_id, &size_bytes],
        )
        .await?;
    Ok(n == 1)
}

/// The disk (live or soft-deleted) of `user_id` named `name` that operation `op` was on, with
/// its `operation_*` fields describing `op` (not necessarily the disk's latest operation).
pub async fn find_operation(
    db: &impl Db,
    user_id: i64,
    name: &str,
    op: Uuid,
) -> Result<Option<Disk>, StoreError> {
    let row = db
        .query_opt(
            &format!(
                "{SELECT} JOIN disk_operations o ON o.disk_id = d.disk_id \
                 WHERE o.operation_id = $3 AND d.user_id = $1 AND d.disk_name = $2"
            ),
            &[&user_id, &name, &op],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut disk = from_row(&row)?;
    let (status, error): (String, Option<String>) = db
        .query_one(
            "SELECT status, error FROM disk_operations WHERE operation_id = $1",
            &[&op],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))?;
    disk.operation_id = Some(op);
    disk.operation_status = Some(status);
    disk.operation_error = error;
    Ok(Some(disk))
}

/// Records the end of a disk operation (by the processor); false when `op` is not a pending
/// operation of the disk. The disk's own status follows only its latest operation.
pub async fn finish_operation(
    db: &impl Db,
    disk_id: Uuid,
    op: Uuid,
    error: Option<&str>,
) -> Result<bool, StoreError> {
    let row = db
        .query_one(
            "WITH op AS ( \
                   UPDATE disk_operations SET \
                     status = CASE WHEN $3::text IS NULL THEN 'completed' ELSE 'failed' END, \
                     error = $3, updated_at = now() \
                   WHERE operation_id = $2 AND disk_id = $1 AND status = 'pending' \
                   RETURNING operation_id), \
                 d AS ( \
                   UPDATE disks SET \
                     operation_status = CASE WHEN $3::text IS NULL THEN 'completed' ELSE 'failed' END, \
                     operation_error = $3, \
                     status = CASE WHEN $3::text IS NOT NULL THEN 'failed' \
                                   WHEN is_deleted THEN 'deleted' \
                                   WHEN status = 'pending' THEN 'ready' ELSE status END \
                   WHERE disk_id = $1 AND operation_id = $2 AND operation_status = 'pending' \
                   RETURNING disk_id) \
             SELECT (SELECT count(*) FROM op) + (SELECT count(*) FROM d)",
            &[&disk_id, &op, &error],
        )
        .await?;
    let changed: i64 = row.get(0);
    Ok(changed > 0)
}
