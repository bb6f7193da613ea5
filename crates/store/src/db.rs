//! [`Db`]: the connection or transaction a repository function runs its SQL on.
//!
//! tokio-postgres's `query(&str, …)` prepares an unnamed statement on every call: one extra round
//! trip, and PostgreSQL parses and analyses the text again each time. deadpool-postgres keeps a
//! per-connection cache of prepared statements, so through a pooled connection a statement is
//! prepared once and every later call is a single round trip. Repository functions take any
//! [`Db`]: pass a pooled connection (`&db`, a `deadpool_postgres::Object`) or its transaction
//! (`&tx`) to get the cache; plain tokio-postgres clients and transactions work too, uncached.
//!
//! Only constant SQL (or SQL built from constants) goes through here: the cache holds one
//! statement per distinct text for the life of the connection.
//!
//! The API's connections also run every cached statement with one generic plan
//! ([`crate::DbConfig::with_generic_plans`]), so a statement must find a good plan without its
//! parameter values: where a filter is optional, write one text per case rather than
//! `$1 IS NULL OR col = $1`.

use std::future::Future;

use deadpool_postgres::StatementCache;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row, Statement};

/// A connection or transaction to run statements on. Each method mirrors tokio-postgres's method
/// of the same name.
pub trait Db: Sync {
    /// Runs a statement and returns its rows.
    fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send;

    /// Runs a statement that returns exactly one row (an error otherwise).
    fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send;

    /// Runs a statement that returns at most one row (an error for more).
    fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send;

    /// Runs a statement and returns the number of rows it changed.
    fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, Error>> + Send;
}

/// Uncached: each call prepares an unnamed statement.
macro_rules! plain {
    ($ty:ty) => {
        impl Db for $ty {
            async fn query(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<Row>, Error> {
                <$ty>::query(self, sql, params).await
            }

            async fn query_one(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Row, Error> {
                <$ty>::query_one(self, sql, params).await
            }

            async fn query_opt(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, Error> {
                <$ty>::query_opt(self, sql, params).await
            }

            async fn execute(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, Error> {
                <$ty>::execute(self, sql, params).await
            }
        }
    };
}

plain!(tokio_postgres::Client);
plain!(tokio_postgres::Transaction<'_>);

/// True for the errors of a cached statement that no longer matches the database (a migration
/// changed its result type, or the server forgot it): the statement is dropped from the cache so
/// the next call prepares it afresh.
fn stale(e: &Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::FEATURE_NOT_SUPPORTED
        || *c == SqlState::INVALID_SQL_STATEMENT_NAME)
}

/// Prepares `sql` through `cache` (once per connection) and runs it with `run`. A stale statement
/// is evicted; with `retry` (outside a transaction, where the failed call changed nothing) it is
/// prepared again and run once more.
async fn cached<T, F, Fut>(
    cache: &StatementCache,
    client: &tokio_postgres::Client,
    sql: &str,
    retry: bool,
    run: F,
) -> Result<T, Error>
where
    F: Fn(Statement) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let stmt = cache.prepare(client, sql).await?;
    match run(stmt).await {
        Err(e) if stale(&e) => {
            drop(cache.remove(sql, &[]));
            if !retry {
                return Err(e);
            }
            let stmt = cache.prepare(client, sql).await?;
            run(stmt).await
        }
        other => other,
    }
}

/// Cached: the statement is prepared once per connection, then only bound and executed.
/// `$inner` is the tokio-postgres type the wrapper dereferences to, `$client` how to reach the
/// tokio-postgres client, `$retry` whether a stale statement may be run again.
macro_rules! cached {
    ($ty:ty, $inner:ty, $client:expr, $retry:expr) => {
        impl Db for $ty {
            async fn query(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<Row>, Error> {
                cached(
                    &self.statement_cache,
                    $client(self),
                    sql,
                    $retry,
                    |s| async move { <$inner>::query(self, &s, params).await },
                )
                .await
            }

            async fn query_one(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Row, Error> {
                cached(
                    &self.statement_cache,
                    $client(self),
                    sql,
                    $retry,
                    |s| async move { <$inner>::query_one(self, &s, params).await },
                )
                .await
            }

            async fn query_opt(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, Error> {
                cached(
                    &self.statement_cache,
                    $client(self),
                    sql,
                    $retry,
                    |s| async move { <$inner>::query_opt(self, &s, params).await },
                )
                .await
            }

            async fn execute(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, Error> {
                cached(
                    &self.statement_cache,
                    $client(self),
                    sql,
                    $retry,
                    |s| async move { <$inner>::execute(self, &s, params).await },
                )
                .await
            }
        }
    };
}

fn wrapper_client(c: &deadpool_postgres::ClientWrapper) -> &tokio_postgres::Client {
    c
}

fn transaction_client<'a>(t: &'a deadpool_postgres::Transaction<'_>) -> &'a tokio_postgres::Client {
    t.client()
}

cached!(
    deadpool_postgres::ClientWrapper,
    tokio_postgres::Client,
    wrapper_client,
    true
);
cached!(
    deadpool_postgres::Transaction<'_>,
    tokio_postgres::Transaction<'_>,
    transaction_client,
    false
);

/// A pooled connection: its [`deadpool_postgres::ClientWrapper`], with the statement cache.
impl Db for deadpool_postgres::Object {
    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error> {
        Db::query(&**self, sql, params).await
    }

    async fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, Error> {
        Db::query_one(&**self, sql, params).await
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        Db::query_opt(&**self, sql, params).await
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
        Db::execute(&**self, sql, params).await
    }
}

/// Runs `sql` as the last statement of the transaction `db` is in (one its caller began) and
/// commits it, sending the statement and `COMMIT` together: one round trip to the server where
/// the two would take two. `on_rows` is called once the statement has answered, while the
/// commit may still be flushing the WAL (a caller can start its next piece of work then).
///
/// Both are prepared first (once per connection, through its statement cache), so that the
/// statement is sent before `COMMIT` (a request goes out when it is first polled, and a
/// statement still being prepared would be sent only after the prepare's answer). Had the
/// statement failed, the server answers `COMMIT` by rolling back, and the statement's error is
/// returned; otherwise the commit's.
pub async fn query_committing(
    db: &deadpool_postgres::Object,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    on_rows: impl FnOnce(),
) -> Result<Vec<Row>, Error> {
    let statement = db.statement_cache.prepare(db, sql).await?;
    let commit = db.statement_cache.prepare(db, "COMMIT").await?;
    let client: &tokio_postgres::Client = db;
    // `join` polls its futures in order: the statement is sent, then `COMMIT`.
    let (rows, committed) = futures::future::join(
        async {
            let rows = client.query(&statement, params).await;
            on_rows();
            rows
        },
        client.execute(&commit, &[]),
    )
    .await;
    for (text, result) in [
        (sql, rows.as_ref().err()),
        ("COMMIT", committed.as_ref().err()),
    ] {
        if result.is_some_and(stale) {
            drop(db.statement_cache.remove(text, &[]));
        }
    }
    let rows = rows?;
    committed?;
    Ok(rows)
}
