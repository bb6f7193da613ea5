//! Statements through a pooled connection are prepared once and cached.

use std::time::Duration;

use gpudev_store::{Db, DbConfig, Pool};
use gpudev_testkit::TestDb;

async fn pool(db: &TestDb, size: usize) -> Pool {
    let mut cfg = DbConfig::from_url(&db.url()).unwrap();
    cfg.pool_size = size;
    cfg.connect_timeout = Duration::from_secs(10);
    gpudev_store::connect_pool(&cfg).await.unwrap()
}

#[tokio::test]
async fn statements_through_a_pooled_connection_are_prepared_once() {
    let db = gpudev_testkit::test_db().await;
    let pool = pool(&db, 1).await;
    let conn = pool.get().await.unwrap();
    let before = conn.statement_cache.size();

    for _ in 0..3 {
        let row = Db::query_one(&conn, "SELECT $1::int + 1", &[&41_i32])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
    }

    assert_eq!(conn.statement_cache.size(), before + 1);
}

#[tokio::test]
async fn a_cached_statement_outdated_by_a_migration_is_prepared_again() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    client
        .batch_execute("CREATE TABLE probe (a int); INSERT INTO probe VALUES (1)")
        .await
        .unwrap();
    let pool = pool(&db, 1).await;
    let conn = pool.get().await.unwrap();
    assert_eq!(
        Db::query(&conn, "SELECT * FROM probe", &[]).await.unwrap()[0].len(),
        1
    );
    // Its result type changes under the cached statement.
    client
        .batch_execute("ALTER TABLE probe ADD COLUMN b int DEFAULT 2")
        .await
        .unwrap();

    let rows = Db::query(&conn, "SELECT * FROM probe", &[]).await.unwrap();

    assert_eq!(rows[0].len(), 2, "the statement was prepared again");
    assert_eq!(rows[0].get::<_, i32>(1), 2);
}
