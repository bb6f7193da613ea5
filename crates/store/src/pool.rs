//! The connection pool.

use deadpool_postgres::{Manager, ManagerConfig, QueueMode, RecyclingMethod, Runtime, Timeouts};

use crate::connect::PoolConnect;
use crate::{DbConfig, StoreError};

/// A pool of PostgreSQL connections.
pub type Pool = deadpool_postgres::Pool;

/// Builds a pool and proves the database answers, so start-up fails fast with a clear message.
pub async fn connect_pool(cfg: &DbConfig) -> Result<Pool, StoreError> {
    let pool = build_pool(cfg)?;
    let client = pool.get().await.map_err(|e| unreachable(cfg, e))?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| StoreError::Unavailable(format!("{cfg} (from {}): {e}", cfg.source)))?;
    Ok(pool)
}

/// Builds a pool without connecting; connections open on first use, through
/// [`crate::connect::connect`], so every statement is bounded. A connection that failed (its
/// server stopped answering, say) is closed, and the recycle check (`Fast`: is it closed?)
/// discards it instead of lending it again.
///
/// The connection returned last is lent first: the few connections that steady load needs do
/// all its work, and those opened for a burst stay idle. A connection keeps the buffers its
/// largest exchange needed (a batch of submits: hundreds of kilobytes) and a statement cache,
/// so lending every connection in turn made each of them that large (measured on the API with
/// 32 pooled connections under 64 users' submits at 64 connections: 2.3 MiB less peak resident
/// memory).
pub fn build_pool(cfg: &DbConfig) -> Result<Pool, StoreError> {
    let manager = Manager::from_connect(
        cfg.pg().clone(),
        PoolConnect(cfg.clone()),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(cfg.pool_size)
        .queue_mode(QueueMode::Lifo)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(cfg.connect_timeout),
            create: Some(cfg.connect_timeout),
            recycle: Some(cfg.connect_timeout),
        })
        .build()
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

fn unreachable(cfg: &DbConfig, e: deadpool_postgres::PoolError) -> StoreError {
    let cause = match &e {
        deadpool_postgres::PoolError::Backend(db) => describe(db),
        deadpool_postgres::PoolError::Timeout(_) => "timed out".to_owned(),
        other => other.to_string(),
    };
    StoreError::Unavailable(format!(
        "cannot connect to PostgreSQL at {cfg} (from {}): {cause}",
        cfg.source
    ))
}

/// The most specific message in a driver error chain ("password authentication failed …",
/// "Connection refused"), which the top-level message often hides.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_owned();
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    msg
}
