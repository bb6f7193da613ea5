//! Migrations: complete on an empty database, idempotent, safe concurrently, and refusing a
//! database that is ahead of this build.

use gpudev_store::migrate;

const TABLES: [&str; 25] = [
    "users",
    "user_ssh_keys",
    "api_keys",
    "reservations",
    "reservation_secrets",
    "reservation_events",
    "reservation_group_members",
    "job_changes",
    "disks",
    "disk_operations",
    "disk_snapshots",
    "used_login_signatures",
    "gpu_types",
    "audit_log",
    "cronjob_runs",
    "scheduler_clocks",
    "scheduler_state",
    "rate_limit_buckets",
    "extend_requests",
    "console_links",
    "console_sessions",
    "reservation_activity",
    "activity_reports",
    "console_oidc_signins",
    "refinery_schema_history",
];

async fn public_tables(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn migrating_an_empty_database_creates_every_table_and_the_queue() {
    let db = gpudev_testkit::empty_db().await;
    let mut client = db.connect().await;
    assert!(public_tables(&client).await.is_empty());

    let applied = migrate::run(&mut client).await.unwrap();

    assert_eq!(applied, migrate::known());
    let mut expected: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
    expected.sort();
    assert_eq!(public_tables(&client).await, expected);
    let queues: Vec<String> = client
        .query("SELECT queue_name FROM pgmq.list_queues() ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(queues, vec!["gpu_reservations", "gpu_reservations_dlq"]);
    // The seeded GPU types are the built-in catalog's, shape for shape.
    let mut seeded: Vec<(String, i32, String, i32, i32, bool)> = client
        .query(
            "SELECT gpu_type, gpus_per_node, instance_type, cpus_per_node, memory_gib_per_node, \
               multinode FROM gpu_types",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    seeded.sort();
    let mut catalog: Vec<(String, i32, String, i32, i32, bool)> =
        gpudev_domain::GpuCatalog::default()
            .iter()
            .map(|s| {
                let n = |v: u32| i32::try_from(v).unwrap();
                (
                    s.name.to_string(),
                    n(s.gpus_per_node),
                    s.instance_type.clone(),
                    n(s.cpus_per_node),
                    n(s.memory_gib_per_node),
                    s.multinode,
                )
            })
            .collect();
    catalog.sort();
    assert_eq!(seeded, catalog);
}

#[tokio::test]
async fn a_second_run_changes_nothing() {
    let db = gpudev_testkit::empty_db().await;
    let mut client = db.connect().await;
    migrate::run(&mut client).await.unwrap();
    let history = || async {
        let c = db.connect().await;
        c.query(
            "SELECT version, checksum FROM refinery_schema_history ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)))
        .collect::<Vec<_>>()
    };
    let before = history().await;

    let applied = migrate::run(&mut client).await.unwrap();

    assert!(applied.is_empty());
    assert_eq!(history().await, before);
}

#[tokio::test]
async fn concurrent_runs_both_succeed_and_apply_each_migration_once() {
    let db = gpudev_testkit::empty_db().await;
    let mut a = db.connect().await;
    let mut b = db.connect().await;

    let (ra, rb) = tokio::join!(migrate::run(&mut a), migrate::run(&mut b));

    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(
        ra.len() + rb.len(),
        migrate::known().len(),
        "{ra:?} / {rb:?}"
    );
    let rows: i64 = a
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows as usize, migrate::known().len());
}

#[tokio::test]
async fn a_database_with_migrations_this_build_does_not_know_is_refused() {
    let db = gpudev_testkit::empty_db().await;
    let mut client = db.connect().await;
    migrate::run(&mut client).await.unwrap();
    client
        .execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             SELECT 299912310000, 'from_the_future', applied_on, '1' FROM refinery_schema_history LIMIT 1",
            &[],
        )
        .await
        .unwrap();

    let err = migrate::run(&mut client).await.unwrap_err();

    assert!(err.to_string().contains("from_the_future"), "{err}");
}
