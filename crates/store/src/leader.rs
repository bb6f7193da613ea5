//! The processor's leader lock: a session-level advisory lock, one per queue (a database may
//! serve several installations). Holding it is leadership; the processor keeps the session and
//! fences its writes through it (`gpudev_processor::leader`).

use crate::{Db, StoreError};

/// The lock key of queue `$1`.
const LOCK_KEY_SQL: &str = "hashtextextended('gpudev.processor.leader:' || $1::text, 0)";

/// Takes the leader lock of `queue` for the session of `db` if no other session holds it: the
/// session's backend pid when it did, `None` when another session leads. Run it on a dedicated
/// connection: the lock lasts as long as that session.
pub async fn try_lock(db: &impl Db, queue: &str) -> Result<Option<i32>, StoreError> {
    let row = db
        .query_one(
            &format!("SELECT pg_try_advisory_lock({LOCK_KEY_SQL}), pg_backend_pid()"),
            &[&queue],
        )
        .await?;
    let (got, pid): (bool, i32) = (row.get(0), row.get(1));
    Ok(got.then_some(pid))
}

/// The pid of the session holding the leader lock of `queue`, if any (for operators and tests).
pub async fn holder_pid(db: &impl Db, queue: &str) -> Result<Option<i32>, StoreError> {
    let row = db
        .query_opt(
            &format!(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = {LOCK_KEY_SQL}"
            ),
            &[&queue],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}
