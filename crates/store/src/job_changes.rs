//! Whose jobs changed, as the `job_changes` triggers record it (one row per statement and owner,
//! with the writing transaction's id). A reader keeps the snapshot of its previous look and asks
//! for the rows that are visible now but were not then: every committed change is reported
//! exactly once per reader, in whatever order the transactions committed.

use crate::{Db, StoreError};

/// A transaction-local setting: `on` while the transaction's statements record their own job
/// changes, so the insert triggers on `reservations` and `reservation_events` stand aside. The
/// submit statement is such a statement (it writes both tables and records its owners once,
/// instead of two trigger calls doing so twice): a batch of submits begins with
/// [`crate::reservations::begin_submits`], which sets it. Everything else leaves it unset.
pub const RECORDED_BY_STATEMENT: &str = "gpudev.job_changes_recorded";

/// A PostgreSQL snapshot (`pg_snapshot` in its text form): the point a reader has read up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark(String);

/// Where to start: nothing before now will be reported.
pub async fn mark(db: &impl Db) -> Result<Mark, StoreError> {
    let row = db
        .query_one("SELECT pg_current_snapshot()::text", &[])
        .await?;
    Ok(Mark(row.get(0)))
}

/// The users whose jobs changed in transactions that committed after `since` was taken (and
/// before now), deduplicated, and the mark to read from next time.
pub async fn since(db: &impl Db, since: &Mark) -> Result<(Vec<i64>, Mark), StoreError> {
    // Rows of transactions below the old snapshot's xmin were visible to it already; the index
    // on `xid` limits the scan to the rest.
    let row = db
        .query_one(
            "SELECT pg_current_snapshot()::text, ARRAY( \
               SELECT DISTINCT user_id FROM job_changes \
               WHERE xid >= pg_snapshot_xmin($1::text::pg_snapshot) \
                 AND NOT pg_visible_in_snapshot(xid, $1::text::pg_snapshot))",
            &[&since.0],
        )
        .await?;
    Ok((row.get(1), Mark(row.get(0))))
}

/// Deletes the rows of transactions that had finished when `seen` was taken: every reader that
/// has looked since then has seen them. Returns how many were deleted.
pub async fn purge_before(db: &impl Db, seen: &Mark) -> Result<u64, StoreError> {
    Ok(db
        .execute(
            "DELETE FROM job_changes WHERE xid < pg_snapshot_xmin($1::text::pg_snapshot)",
            &[&seen.0],
        )
        .await?)
}
