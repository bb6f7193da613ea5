//! The throwaway PostgreSQL cluster: migrated, isolated, fast, and stoppable when private.

use std::collections::HashSet;
use std::time::Instant;

use gpudev_testkit::{cluster, empty_db, private_cluster, test_db};

#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failed query fails the test"
)]
async fn queues(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query("SELECT queue_name FROM pgmq.list_queues() ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failed query fails the test"
)]
async fn user_tables(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables \
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn test_databases_hold_the_migrated_schema_and_the_queue() {
    let db = test_db().await;
    let client = db.connect().await;

    let tables = user_tables(&client).await;
    assert!(
        tables.contains(&"public.reservations".to_owned()),
        "{tables:?}"
    );
    assert!(tables.contains(&"public.users".to_owned()), "{tables:?}");
    assert!(
        queues(&client)
            .await
            .contains(&"gpu_reservations".to_owned())
    );
}

#[tokio::test]
async fn two_test_databases_are_isolated() {
    let first = test_db().await;
    let second = test_db().await;
    assert_ne!(first.name(), second.name());
    let a = first.connect().await;
    let b = second.connect().await;

    a.execute("SELECT pgmq.send('gpu_reservations', '{\"n\": 1}')", &[])
        .await
        .unwrap();
    a.batch_execute("CREATE TABLE only_in_first (id int)")
        .await
        .unwrap();

    let in_a: i64 = a
        .query_one(
            "SELECT queue_length FROM pgmq.metrics('gpu_reservations')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let in_b: i64 = b
        .query_one(
            "SELECT queue_length FROM pgmq.metrics('gpu_reservations')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!((in_a, in_b), (1, 0));
    assert!(
        !user_tables(&b)
            .await
            .contains(&"public.only_in_first".to_owned())
    );
}

#[tokio::test]
async fn empty_database_has_no_tables_and_no_pgmq() {
    let db = empty_db().await;
    let client = db.connect().await;

    assert_eq!(user_tables(&client).await, Vec::<String>::new());
    let pgmq = client
        .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'pgmq'", &[])
        .await
        .unwrap();
    assert!(pgmq.is_none());
}

#[tokio::test]
async fn empty_database_can_be_migrated_from_scratch() {
    let db = empty_db().await;
    let mut client = db.connect().await;

    let applied = gpudev_store::migrate::run(&mut client).await.unwrap();

    assert!(!applied.is_empty());
    assert!(
        queues(&client)
            .await
            .contains(&"gpu_reservations".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_test_databases_all_succeed() {
    cluster().await;
    let started = Instant::now();

    let tasks: Vec<_> = (0..20).map(|_| tokio::spawn(test_db())).collect();
    let mut names = HashSet::new();
    for task in tasks {
        let db = task.await.unwrap();
        let client = db.connect().await;
        assert!(
            queues(&client)
                .await
                .contains(&"gpu_reservations".to_owned())
        );
        names.insert(db.name().to_owned());
    }

    assert_eq!(names.len(), 20);
    eprintln!("20 concurrent test databases: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_test_database_takes_tens_of_milliseconds() {
    cluster().await;
    let mut times = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let db = test_db().await;
        drop(db.connect().await);
        times.push(started.elapsed());
    }
    times.sort();
    eprintln!("test_db() + connect, 10 sequential: {times:?}");
    assert!(times[5].as_millis() < 1000, "median {:?}", times[5]);
}

#[tokio::test]
async fn private_cluster_stops_and_starts_without_touching_the_shared_one() {
    let private = private_cluster().await;
    let shared = cluster().await;
    assert_ne!(private.port(), shared.port());
    let db = private.test_db().await;
    let before = db.connect().await;
    before
        .execute("SELECT pgmq.send('gpu_reservations', '{}')", &[])
        .await
        .unwrap();

    private.stop().await;
    assert!(before.simple_query("SELECT 1").await.is_err());
    let shared_db = test_db().await;
    shared_db
        .connect()
        .await
        .simple_query("SELECT 1")
        .await
        .unwrap();

    private.start().await;
    let after = db.connect().await;
    let length: i64 = after
        .query_one(
            "SELECT queue_length FROM pgmq.metrics('gpu_reservations')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(length, 1);
}

#[tokio::test]
async fn private_cluster_recovers_from_a_crash() {
    let private = private_cluster().await;
    let db = private.test_db().await;

    private.crash().await;
    private.start().await;

    db.connect().await.simple_query("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn a_dropped_private_cluster_leaves_nothing_running() {
    let private = private_cluster().await;
    let port = private.port();

    drop(private);

    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
