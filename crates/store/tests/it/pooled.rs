//! The API's paths through a pooled connection, whose statements are prepared once and cached:
//! the submit with its quota in one statement, the bounded queue standing, and the list with
//! histories in one statement.

use crate::common::{SECRET_VALUE, count, opened_secrets, pool, reservation_for, user};
use gpudev_domain::ReservationStatus;
use gpudev_store::reservations::{self, Checked, ListFilter, Quota, Submitted, Transition};
use gpudev_store::{Db, Queue};

fn queue() -> Queue {
    Queue::new("gpu_reservations").unwrap()
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

#[tokio::test]
async fn submit_within_a_quota_writes_everything_and_beyond_it_nothing() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let alice = user(&client, "alice").await;
    let pool = pool(&db, 2).await;
    let quota = Quota { max_queued: 2 };
    let mut conn = pool.get().await.unwrap();
    let mut submit = async |gpus: i32| {
        let mut new = reservation_for(&alice);
        new.gpu_count = gpus;
        let tx = conn.transaction().await.unwrap();
        reservations::lock_user_submissions(&tx, alice.user_id)
            .await
            .unwrap();
        let out = reservations::submit_within(&tx, &queue(), &new, Some(quota))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (new, out)
    };

    let (first, created) = submit(4).await;
    let (_, second) = submit(8).await;
    let (_, too_many_jobs) = submit(1).await;

    match created {
        Checked::Submitted(Submitted::Created {
            reservation,
            msg_id,
        }) => {
            assert_eq!(reservation.reservation_id, first.reservation_id);
            assert_eq!(reservation.status, ReservationStatus::Queued);
            assert_eq!(reservation.username.as_str(), "alice");
            assert_eq!(reservation.gpu_count, 4);
            assert_eq!(reservation.env_names, vec!["WANDB_API_KEY".to_owned()]);
            assert!(msg_id > 0);
        }
        other => panic!("expected a new reservation, got {other:?}"),
    }
    assert!(matches!(
        second,
        Checked::Submitted(Submitted::Created { .. })
    ));
    match too_many_jobs {
        Checked::OverQuota(limit) => assert_eq!(limit, quota),
        other => panic!("a third queued reservation is over 2, got {other:?}"),
    }
    assert_eq!(count(&client, "SELECT count(*) FROM reservations").await, 2);
    assert_eq!(
        count(&client, "SELECT count(*) FROM reservation_events").await,
        2
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM reservation_secrets").await,
        2
    );
    assert_eq!(
        queue().metrics(&client).await.unwrap().queue_length,
        2,
        "one message per reservation written, none for a refusal"
    );
    let secrets = opened_secrets(&client, first.reservation_id).await;
    assert_eq!(
        secrets.env.get("WANDB_API_KEY").map(String::as_str),
        Some(SECRET_VALUE)
    );
}

#[tokio::test]
async fn submit_within_counts_only_queued_reservations_and_replays_a_reused_key() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let mut ended = reservation_for(&alice);
    ended.idempotency_key = Some("k1".into());
    reservations::submit(&mut client, &queue(), &ended)
        .await
        .unwrap();
    reservations::transition(
        &client,
        ended.reservation_id,
        Transition {
            to: ReservationStatus::Cancelled,
            reason: None,
            actor: "alice",
        },
    )
    .await
    .unwrap();
    let quota = Quota { max_queued: 1 };
    let pool = pool(&db, 1).await;
    let mut conn = pool.get().await.unwrap();
    let tx = conn.transaction().await.unwrap();

    let fresh = reservations::submit_within(&tx, &queue(), &reservation_for(&alice), Some(quota))
        .await
        .unwrap();
    let mut retry = reservation_for(&alice);
    retry.idempotency_key = Some("k1".into());
    let replayed =
        reservations::submit_within(&tx, &queue(), &retry, Some(Quota { max_queued: 10 }))
            .await
            .unwrap();
    tx.commit().await.unwrap();

    assert!(
        matches!(fresh, Checked::Submitted(Submitted::Created { .. })),
        "a cancelled reservation does not count: {fresh:?}"
    );
    match replayed {
        Checked::Submitted(Submitted::Existing(r)) => {
            assert_eq!(r.reservation_id, ended.reservation_id)
        }
        other => panic!("expected the first reservation, got {other:?}"),
    }
}

#[tokio::test]
async fn the_list_with_histories_pages_newest_first_and_totals_every_page() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let bob = user(&client, "bob").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let new = reservation_for(&alice);
        reservations::submit(&mut client, &queue(), &new)
            .await
            .unwrap();
        ids.push(new.reservation_id);
    }
    reservations::submit(&mut client, &queue(), &reservation_for(&bob))
        .await
        .unwrap();
    reservations::transition(
        &client,
        ids[0],
        Transition {
            to: ReservationStatus::Cancelled,
            reason: Some("changed my mind"),
            actor: "alice",
        },
    )
    .await
    .unwrap();
    let pool = pool(&db, 1).await;
    let conn = pool.get().await.unwrap();
    let list = async |statuses: Vec<ReservationStatus>, limit: i64, offset: i64| {
        reservations::list_with_events(
            &conn,
            &ListFilter {
                user_id: Some(alice.user_id),
                statuses,
                limit,
                offset,
            },
        )
        .await
        .unwrap()
    };

    let (all, total) = list(vec![], 10, 0).await;
    let (page, paged_total) = list(vec![], 1, 1).await;
    let (past_end, past_total) = list(vec![], 5, 10).await;
    let (cancelled, cancelled_total) = list(vec![ReservationStatus::Cancelled], 10, 0).await;
    let (everyone, everyone_total) = reservations::list(
        &conn,
        &ListFilter {
            user_id: None,
            statuses: vec![],
            limit: 10,
            offset: 0,
        },
    )
    .await
    .unwrap();

    let listed: Vec<_> = all.iter().map(|(r, _)| r.reservation_id).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    assert_eq!(total, 3);
    let (oldest, history) = &all[2];
    assert_eq!(oldest.status, ReservationStatus::Cancelled);
    let steps: Vec<_> = history.iter().map(|e| e.to_status.as_deref()).collect();
    assert_eq!(steps, vec![Some("queued"), Some("cancelled")]);
    assert_eq!(history[1].reason.as_deref(), Some("changed my mind"));
    assert_eq!(history[1].from_status.as_deref(), Some("queued"));
    assert!(history[0].event_id < history[1].event_id);
    assert_eq!(
        *history,
        reservations::events(&client, ids[0]).await.unwrap(),
        "the same history as read alone"
    );
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].0.reservation_id, ids[1]);
    assert_eq!(paged_total, 3);
    assert!(past_end.is_empty());
    assert_eq!(past_total, 3, "the total is right past the end too");
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled_total, 1);
    assert_eq!(everyone.len(), 4);
    assert_eq!(everyone_total, 4);
}

#[tokio::test]
async fn a_statement_sent_with_its_commit_runs_inside_the_transaction_and_commits_it() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    client
        .batch_execute("CREATE TABLE probe (a int)")
        .await
        .unwrap();
    let pool = pool(&db, 1).await;
    let conn = pool.get().await.unwrap();
    // A fresh connection: neither the statement nor COMMIT is prepared yet, and the statement
    // must still reach the server before COMMIT (inside the transaction, seeing its setting).
    conn.batch_execute("BEGIN; SET LOCAL application_name = 'inside'")
        .await
        .unwrap();
    let mut answered = false;
    let rows = gpudev_store::query_committing(
        &conn,
        "INSERT INTO probe VALUES ($1) RETURNING current_setting('application_name')",
        &[&7_i32],
        || answered = true,
    )
    .await
    .unwrap();

    assert!(answered);
    assert_eq!(rows[0].get::<_, &str>(0), "inside");
    let after: String = Db::query_one(&conn, "SELECT current_setting('application_name')", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(after, "inside", "the transaction ended");
    let seen: i64 = client
        .query_one("SELECT count(*) FROM probe WHERE a = 7", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 1, "committed: another connection sees the row");

    // A failing statement: its error, and nothing of the transaction committed.
    conn.batch_execute("BEGIN; INSERT INTO probe VALUES (8)")
        .await
        .unwrap();
    let failed = gpudev_store::query_committing(&conn, "SELECT 1 / $1", &[&0_i32], || {}).await;
    assert!(failed.is_err());
    let _ = conn.batch_execute("ROLLBACK").await;
    let kept: i64 = client
        .query_one("SELECT count(*) FROM probe WHERE a = 8", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 0, "the transaction was rolled back");
}

/// The pool lends the connection returned last: under light load the same few connections
/// serve every request, and the others, opened for a burst, stay idle (their buffers and
/// statement caches are not grown by work any connection could have done).
#[tokio::test]
async fn the_pool_lends_the_connection_returned_last() {
    let db = gpudev_testkit::test_db().await;
    let pool = pool(&db, 4).await;
    async fn backend(c: &deadpool_postgres::Object) -> i32 {
        Db::query_one(c, "SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0)
    }
    // A burst opens all four.
    let burst = futures::future::join_all((0..4).map(|_| pool.get())).await;
    let mut burst: Vec<_> = burst.into_iter().map(Result::unwrap).collect();
    // The third is returned after the others.
    let third = burst.remove(2);
    let last = backend(&third).await;
    drop(burst);
    drop(third);
    assert_eq!(pool.status().available, 4);

    for _ in 0..5 {
        let c = pool.get().await.unwrap();
        assert_eq!(
            backend(&c).await,
            last,
            "the connection returned last is lent again"
        );
    }
}

/// Pooled sessions never JIT-compile: a statement whose estimated cost passes `jit_above_cost`
/// (a generic plan for a user with thousands of queued reservations did) would otherwise be
/// compiled on every execution, for far longer than it runs.
#[tokio::test]
async fn pooled_sessions_run_without_jit() {
    let db = gpudev_testkit::test_db().await;
    let pool = pool(&db, 1).await;
    let conn = pool.get().await.unwrap();
    let jit: String = Db::query_one(&conn, "SELECT current_setting('jit')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(jit, "off");
}
