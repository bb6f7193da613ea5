use crate::{admin, stdout};

#[tokio::test]
async fn migrate_creates_everything_once_and_then_reports_the_schema_current() {
    let db = gpudev_testkit::empty_db().await;

    let first = admin(&db.url(), &["migrate"]).await;
    let second = admin(&db.url(), &["migrate"]).await;

    assert!(first.status.success(), "{first:?}");
    let expected = format!(
        "applied {} migration(s)",
        gpudev_store::migrate::known().len()
    );
    assert!(stdout(&first).contains(&expected), "{}", stdout(&first));
    assert!(second.status.success());
    assert!(
        stdout(&second).starts_with("schema is current"),
        "{}",
        stdout(&second)
    );
    let client = db.connect().await;
    let queues: i64 = client
        .query_one(
            "SELECT count(*) FROM pgmq.list_queues() WHERE queue_name = 'gpu_reservations'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(queues, 1);
}

#[tokio::test]
async fn two_concurrent_migrates_both_succeed() {
    let db = gpudev_testkit::empty_db().await;
    let url = db.url();

    let (a, b) = tokio::join!(admin(&url, &["migrate"]), admin(&url, &["migrate"]));

    assert!(a.status.success(), "{a:?}");
    assert!(b.status.success(), "{b:?}");
    let client = db.connect().await;
    let applied: i64 = client
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied as usize, gpudev_store::migrate::known().len());
}

#[tokio::test]
async fn migrate_refuses_a_database_ahead_of_this_build() {
    let db = gpudev_testkit::test_db().await;
    db.connect()
        .await
        .execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             SELECT 299912310000, 'newer_release', applied_on, '1' FROM refinery_schema_history LIMIT 1",
            &[],
        )
        .await
        .unwrap();

    let out = admin(&db.url(), &["migrate"]).await;

    assert_eq!(out.status.code(), Some(1));
    assert!(
        crate::stderr(&out).contains("newer_release"),
        "{}",
        crate::stderr(&out)
    );
}

#[tokio::test]
async fn migrate_creates_the_queue_named_by_queue_name() {
    let db = gpudev_testkit::test_db().await;

    let out = admin(&db.url(), &["migrate", "--queue", "team_a_reservations"]).await;

    assert!(out.status.success(), "{out:?}");
    let n: i64 = db
        .connect()
        .await
        .query_one(
            "SELECT count(*) FROM pgmq.list_queues() WHERE queue_name IN ('team_a_reservations', 'team_a_reservations_dlq')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

/// The `sslmode=verify-full` URL of the TLS-only test server, trusting `root`.
fn verify_full(tls: &gpudev_testkit::TlsCluster, root: &std::path::Path) -> String {
    let f = &tls.files;
    tls.url(
        "localhost",
        &format!(
            "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            root.display(),
            f.client_cert.display(),
            f.client_key.display()
        ),
    )
}

#[tokio::test]
async fn migrate_runs_over_verified_tls_and_refuses_a_server_it_cannot_verify_in_one_line() {
    let tls = gpudev_testkit::tls_cluster().await;

    let ok = admin(&verify_full(&tls, &tls.files.ca), &["migrate"]).await;
    assert!(ok.status.success(), "{}", crate::stderr(&ok));
    assert!(stdout(&ok).contains("migration(s)"), "{}", stdout(&ok));

    let refused = admin(&verify_full(&tls, &tls.files.other_ca), &["migrate"]).await;
    assert!(!refused.status.success());
    let err = crate::stderr(&refused);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("sslmode=verify-full"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("not signed by the sslrootcert authority"),
        "{err}"
    );
}
