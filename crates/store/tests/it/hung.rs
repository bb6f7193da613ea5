//! A database that stops answering: every statement is bounded, by the server
//! (`statement_timeout`) while it runs and by the client (the answer bound) when it is hung or
//! unreachable; a connection that timed out is discarded, and the same pool works again once the
//! server answers.

use std::time::{Duration, Instant};

use gpudev_store::{DbConfig, Pool, StoreError};
use gpudev_testkit::TestDb;

/// `DB_STATEMENT_TIMEOUT_SECONDS` in these tests; the client gives up 2 s later.
const STATEMENT_SECS: &str = "1";
const ANSWER_BOUND: Duration = Duration::from_secs(3);

fn config(url: &str) -> DbConfig {
    let vars = [
        ("DATABASE_URL", url.to_owned()),
        ("DB_STATEMENT_TIMEOUT_SECONDS", STATEMENT_SECS.to_owned()),
        ("DB_CONNECT_TIMEOUT_SECONDS", "2".to_owned()),
        ("DB_POOL_SIZE", "1".to_owned()),
    ];
    DbConfig::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap()
}

async fn backend_pid(pool: &Pool) -> Result<i32, StoreError> {
    let db = pool.get().await?;
    Ok(db.query_one("SELECT pg_backend_pid()", &[]).await?.get(0))
}

/// Runs `SELECT pg_backend_pid()` and says how long it took to fail, checking the failure is an
/// outage (503 and retry), not a bug.
async fn fails_as_unavailable(pool: &Pool) -> Duration {
    let started = Instant::now();
    let err = backend_pid(pool).await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_unavailable(), "{err}");
    took
}

/// With the server unreachable, the pooled connection's statement fails after the answer bound,
/// and the next one (on a new connection, since the pool dropped the old) fails within it too.
async fn gives_up_within_the_bound(pool: &Pool) {
    let took = fails_as_unavailable(pool).await;
    assert!(
        took >= ANSWER_BOUND - Duration::from_millis(100)
            && took < ANSWER_BOUND + Duration::from_secs(2),
        "given up after {took:?}; the answer bound is {ANSWER_BOUND:?}"
    );
    let took = fails_as_unavailable(pool).await;
    assert!(took < ANSWER_BOUND + Duration::from_secs(2), "{took:?}");
}

fn with_port(db: &TestDb, port: u16) -> String {
    format!("postgres://{}@127.0.0.1:{port}/{}", db.user(), db.name())
}

#[tokio::test]
async fn the_server_cancels_a_statement_over_its_timeout_and_the_connection_stays_usable() {
    let db = gpudev_testkit::test_db().await;
    let pool = gpudev_store::connect_pool(&config(&db.url()))
        .await
        .unwrap();
    let before = backend_pid(&pool).await.unwrap();
    let conn = pool.get().await.unwrap();
    let shown: String = conn
        .query_one("SHOW idle_in_transaction_session_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(shown, "1min");

    let started = Instant::now();
    let err = conn.simple_query("SELECT pg_sleep(30)").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(conn);
    assert_eq!(
        backend_pid(&pool).await.unwrap(),
        before,
        "the connection is kept"
    );
}

#[tokio::test]
async fn a_black_holed_server_fails_the_statement_after_the_bound_and_its_connection_is_dropped() {
    let db = gpudev_testkit::test_db().await;
    let proxy = gpudev_testkit::tcp_proxy(([127, 0, 0, 1], db.port()).into()).await;
    let pool = gpudev_store::connect_pool(&config(&with_port(&db, proxy.addr().port())))
        .await
        .unwrap();
    let before = backend_pid(&pool).await.unwrap();

    proxy.black_hole();
    gives_up_within_the_bound(&pool).await;

    proxy.resume();
    let after = backend_pid(&pool).await.unwrap();
    assert_ne!(
        after, before,
        "the timed-out connection was discarded, not lent again"
    );
}

#[tokio::test]
async fn a_frozen_server_fails_statements_after_the_bound_and_the_same_pool_recovers() {
    let cluster = gpudev_testkit::private_cluster().await;
    let db = cluster.test_db().await;
    let pool = gpudev_store::connect_pool(&config(&db.url()))
        .await
        .unwrap();
    let before = backend_pid(&pool).await.unwrap();

    let frozen = cluster.freeze();
    gives_up_within_the_bound(&pool).await;
    drop(frozen);

    let resumed = Instant::now();
    let after = loop {
        match backend_pid(&pool).await {
            Ok(pid) => break pid,
            Err(e) => assert!(
                resumed.elapsed() < Duration::from_secs(10),
                "no recovery within 10 s: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(after, before, "the timed-out connection was discarded");
}
