//! Leadership: one processor schedules at a time, elected through a PostgreSQL advisory lock
//! held by a dedicated session, and fenced by writing through that same session.
//!
//! # Why this is safe
//!
//! A session-level advisory lock is held exactly as long as the session that took it. Every
//! write that matters (admissions, status transitions, dead letters, disk operations) goes
//! through the session holding the lock: while it lives, it holds the lock; once it has ended,
//! nothing can be written through it. So a deposed leader cannot write, whatever it believes,
//! and two leaders can never write at once — the lock *is* the fence.
//!
//! # How a dead leader is noticed
//!
//! - The process exits or crashes: the connection closes and PostgreSQL releases the lock at
//!   once.
//! - The process hangs, or the network between it and the database breaks: the session sets
//!   `idle_session_timeout` to the lease, and a heartbeat runs a query every quarter lease. A
//!   leader that misses its heartbeats for a whole lease has its session ended by the server,
//!   which releases the lock. Standbys retry every `LEADER_RETRY_SECONDS`, so a standby takes
//!   over within lease + retry (13 s with the defaults).
//! - The same when it falls silent inside one of its transactions: `idle_session_timeout` does
//!   not apply there, so the session sets `idle_in_transaction_session_timeout` to the lease as
//!   well (the pool's sessions keep `DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS`, 60 s by default,
//!   which would otherwise keep the lock that long). Its transactions hold only statements,
//!   never a call to Kubernetes, so a live leader is never idle in one for a lease.
//! - The database hangs (a frozen server, or one the whole network lost): nobody can take the
//!   lock, since nobody reaches the server. The leader's statements and heartbeat go unanswered
//!   and it gives itself up within the answer bound or half a lease; once the server answers
//!   again, the old session finds its socket closed and ends, and the processor bids afresh.
//! - The leader sees its own loss when a heartbeat or a write fails; it then stops scheduling
//!   and goes back to standing by.
//!
//! Kubernetes writes cannot be fenced this way; a deposed leader finishing a create is repaired
//! by the next leader's reconciliation, which deletes objects of reservations that are not live.
//!
//! The lock's SQL lives in the store ([`gpudev_store::leader`]); what stays here is the
//! session itself: its connection, its `idle_session_timeout` and its heartbeat.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gpudev_store::DbConfig;
use tokio::sync::{Mutex, MutexGuard};
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::error::{ProcessorError, Result};

/// The session holding the leader lock. Dropping it ends the session and releases the lock.
#[derive(Debug)]
pub struct LeaderSession {
    client: Arc<Mutex<Client>>,
    pid: i32,
    lost: Arc<AtomicBool>,
    connection: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
}

impl LeaderSession {
    /// Connects and tries to take the lock for `queue`; `None` when another session holds it.
    pub async fn try_acquire(db: &DbConfig, queue: &str, lease: Duration) -> Result<Option<Self>> {
        let db = db.clone().with_application_name("gpudev-processor-leader");
        let (client, connection) = gpudev_store::connect::connect(&db).await?;
        let lost = Arc::new(AtomicBool::new(false));
        let connection = {
            let lost = Arc::clone(&lost);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "leader session connection ended");
                }
                lost.store(true, Ordering::Release);
            })
        };
        // Ends the session (and frees the lock) when the leader stops talking for a lease,
        // between its transactions or inside one.
        let lease_ms = lease.as_millis().max(1000);
        client
            .batch_execute(&format!(
                "SET idle_in_transaction_session_timeout = {lease_ms}"
            ))
            .await?;
        if let Err(e) = client
            .batch_execute(&format!("SET idle_session_timeout = {lease_ms}"))
            .await
        {
            tracing::warn!(error = %e, "idle_session_timeout is not supported; a hung leader keeps the lock");
        }
        let Some(pid) = gpudev_store::leader::try_lock(&client, queue).await? else {
            connection.abort();
            return Ok(None);
        };
        let client = Arc::new(Mutex::new(client));
        let heartbeat = tokio::spawn(heartbeat(Arc::downgrade(&client), Arc::clone(&lost), lease));
        Ok(Some(Self {
            client,
            pid,
            lost,
            connection,
            heartbeat,
        }))
    }

    /// The backend process id of the session (what `pg_terminate_backend` takes).
    pub fn backend_pid(&self) -> i32 {
        self.pid
    }

    /// True once the session has ended or stopped answering.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Exclusive use of the session for a fenced write (a statement or a transaction). Refused
    /// once the session is lost.
    pub async fn lock(&self) -> Result<MutexGuard<'_, Client>> {
        if self.is_lost() {
            return Err(ProcessorError::LostLeadership(
                "the leader lock's session has ended".into(),
            ));
        }
        let guard = self.client.lock().await;
        if guard.is_closed() || self.is_lost() {
            self.lost.store(true, Ordering::Release);
            return Err(ProcessorError::LostLeadership(
                "the leader lock's session has ended".into(),
            ));
        }
        Ok(guard)
    }

    /// Turns an error from a fenced write into [`ProcessorError::LostLeadership`] when the
    /// session died under it.
    pub fn classify(&self, e: ProcessorError) -> ProcessorError {
        let closed =
            matches!(&e, ProcessorError::Store(gpudev_store::StoreError::Db(db)) if db.is_closed());
        if closed || self.connection.is_finished() {
            self.lost.store(true, Ordering::Release);
            ProcessorError::LostLeadership(e.to_string())
        } else {
            e
        }
    }
}

impl Drop for LeaderSession {
    fn drop(&mut self) {
        self.heartbeat.abort();
        // Stopping the connection's driver closes the socket, so the server ends the session
        // and releases the lock now, even if a clone of the client is still held somewhere.
        self.connection.abort();
    }
}

/// Keeps the session busy enough that `idle_session_timeout` never ends it while the leader is
/// alive; marks the session lost when a heartbeat fails or hangs.
async fn heartbeat(client: std::sync::Weak<Mutex<Client>>, lost: Arc<AtomicBool>, lease: Duration) {
    let every = lease / 4;
    loop {
        tokio::time::sleep(every).await;
        let Some(client) = client.upgrade() else {
            return;
        };
        let ok = {
            let guard = client.lock().await;
            matches!(
                tokio::time::timeout(lease / 2, guard.simple_query("SELECT 1")).await,
                Ok(Ok(_))
            )
        };
        if !ok {
            tracing::warn!("leader heartbeat failed: giving up leadership");
            lost.store(true, Ordering::Release);
            return;
        }
    }
}

/// The pid of the session holding the leader lock of `queue`, if any (for operators and tests).
pub async fn current_leader_pid(db: &impl gpudev_store::Db, queue: &str) -> Result<Option<i32>> {
    Ok(gpudev_store::leader::holder_pid(db, queue).await?)
}
