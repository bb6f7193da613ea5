//! The submit writer on its own, against a real PostgreSQL with PGMQ: submits that arrive while
//! a transaction is busy share the next one, one that fails there fails alone, and a user whose
//! submits need their lock is never in two transactions at once.

use std::sync::Arc;

use gpudev_api::audit::RequestCtx;
use gpudev_api::auth::Caller;
use gpudev_api::metrics::Metrics;
use gpudev_api::submit_writer::{SubmitRequest, SubmitWriter};
use gpudev_domain::{GpuType, ImageRef};
use gpudev_store::reservations::{Checked, Checks, NewReservation, Quota, Submitted};
use gpudev_store::users::{self, Role};
use gpudev_store::{DbConfig, Queue};
use uuid::Uuid;

fn request(caller: &Caller, priority: i32) -> SubmitRequest {
    SubmitRequest {
        new: NewReservation {
            reservation_id: Uuid::new_v4(),
            user_id: caller.user_id,
            username: caller.username.clone(),
            name: None,
            gpu_type: GpuType::parse("t4").unwrap(),
            gpu_count: 1,
            node_count: 1,
            duration_hours: 1.0,
            image: ImageRef::parse("pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel").unwrap(),
            env_names: vec!["TOKEN".to_owned()],
            disk_name: None,
            jupyter_enabled: false,
            github_user: None,
            priority,
            idempotency_key: None,
            cli_version: None,
            request_hash: None,
            secrets: None,
            disk_size_gb: None,
            queue_position: None,
            estimated_start_at: None,
            start_at: None,
        },
        checks: Checks {
            quota: Some(Quota { max_queued: 1000 }),
            ssh_access: false,
            max_booked_gpu_hours: None,
        },
        caller: caller.clone(),
        ctx: RequestCtx::default(),
    }
}

#[actix_web::test]
async fn a_submit_that_fails_in_a_shared_transaction_fails_alone() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let caller = caller(&client, "alice").await;
    let pool = gpudev_store::pool::build_pool(&DbConfig::from_url(&db.url()).unwrap()).unwrap();
    let metrics = Arc::new(Metrics::new().unwrap());
    // One writer: the first submit is written alone, and the 19 that arrive meanwhile share the
    // next transaction.
    let writer = Arc::new(SubmitWriter::new(
        pool,
        Queue::new("gpu_reservations").unwrap(),
        metrics.clone(),
        1,
    ));
    // A priority the database's check refuses (the API never sends one): its statement fails
    // inside the shared transaction.
    let requests: Vec<SubmitRequest> = (0..20)
        .map(|i| request(&caller, if i == 10 { 500 } else { 0 }))
        .collect();
    let bad = requests[10].new.reservation_id;
    let outcomes = futures::future::join_all(requests.into_iter().map(|r| {
        let writer = writer.clone();
        async move { writer.write(r).await }
    }))
    .await;

    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 10 {
            assert!(outcome.is_err(), "the bad submit fails: {outcome:?}");
        } else {
            assert!(
                matches!(outcome, Ok(Checked::Submitted(Submitted::Created { .. }))),
                "submit {i}: {outcome:?}"
            );
        }
    }
    let stored: i64 = client
        .query_one("SELECT count(*) FROM reservations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 19);
    let bad_rows: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM reservations WHERE reservation_id = $1) \
             + (SELECT count(*) FROM audit_log WHERE target_id = $1::text)",
            &[&bad],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bad_rows, 0, "nothing of the bad submit was written");
    let audited: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'reservation.submit' AND outcome = 'success'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 19);
    let messages: i64 = client
        .query_one("SELECT count(*) FROM pgmq.q_gpu_reservations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(messages, 19);
    // The first alone, then the 19 together (which failed and were written one by one).
    assert_eq!(metrics.submit_batch_size.get_sample_count(), 2);
    assert_eq!(metrics.submit_batch_size.get_sample_sum(), 20.0);
}

/// A user of the test database, as the submit writer sees its callers.
async fn caller(client: &tokio_postgres::Client, name: &str) -> Caller {
    let user = users::create(
        client,
        &gpudev_domain::Username::parse(name).unwrap(),
        Role::User,
    )
    .await
    .unwrap();
    Caller {
        user_id: user.user_id,
        username: user.username.clone(),
        role: Role::User,
        key_id: 0,
        key_expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
        rate_limit_per_minute: None,
        key_auth_method: "admin".into(),
        key_auth_issuer: None,
    }
}

/// Writes `requests` at once through a writer with two transactions, and answers every outcome
/// with the batch sizes (as the metric counts them: how many transactions, how many submits).
async fn write_all(url: &str, requests: Vec<SubmitRequest>) -> (Vec<Checked>, u64, f64) {
    let pool = gpudev_store::pool::build_pool(&DbConfig::from_url(url).unwrap()).unwrap();
    let metrics = Arc::new(Metrics::new().unwrap());
    let writer = Arc::new(SubmitWriter::new(
        pool,
        Queue::new("gpu_reservations").unwrap(),
        metrics.clone(),
        2,
    ));
    // Every request is handed over before the first transaction's task first runs (one thread).
    let outcomes = futures::future::join_all(requests.into_iter().map(|r| {
        let writer = writer.clone();
        async move { writer.write(r).await.unwrap() }
    }))
    .await;
    (
        outcomes,
        metrics.submit_batch_size.get_sample_count(),
        metrics.submit_batch_size.get_sample_sum(),
    )
}

#[actix_web::test]
async fn a_user_whose_submits_need_the_lock_waits_for_the_transaction_holding_it() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let alice = caller(&client, "alice").await;
    let bob = caller(&client, "bob").await;
    // Alice's first submit starts a transaction at once; her 9 next ones wait for it (it holds
    // her lock), and bob's 8 then start a second transaction as soon as they are enough to
    // share one. Alice's 9 go into a third once her first has committed. Had they been taken
    // into the second, it would have waited on her lock.
    const { assert!(gpudev_api::submit_writer::MIN_SECOND_BATCH <= 8) };
    let mut requests = vec![request(&alice, 0)];
    requests.extend((0..9).map(|_| request(&alice, 0)));
    requests.extend((0..8).map(|_| request(&bob, 0)));
    let (outcomes, transactions, submits) = write_all(&db.url(), requests).await;

    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Checked::Submitted(Submitted::Created { .. }))),
        "{outcomes:?}"
    );
    assert_eq!((transactions, submits), (3, 18.0));
    let (alices, bobs): (i64, i64) = {
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE user_id = $1), count(*) FILTER (WHERE user_id = $2) \
                 FROM reservations",
                &[&alice.user_id, &bob.user_id],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((alices, bobs), (10, 8));
    // Rows written by one transaction share its id: each transaction wrote one user's submits.
    let mut per_transaction: Vec<(String, i64)> = client
        .query(
            "SELECT min(u.username), count(*) FROM reservations r JOIN users u USING (user_id) \
             GROUP BY r.xmin::text HAVING count(DISTINCT r.user_id) = 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    per_transaction.sort();
    assert_eq!(
        per_transaction,
        [("alice".into(), 1), ("alice".into(), 9), ("bob".into(), 8)]
    );
}

#[actix_web::test]
async fn submits_that_count_nothing_go_into_the_next_transaction_without_waiting() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let alice = caller(&client, "alice").await;
    // Without a queued cap (and no booking), a submit needs no lock: alice's later submits
    // start a second transaction while her first is being written, as soon as 8 could share it,
    // and the other 10 a third. Had they needed her lock, they would all have waited for the
    // first, and shared one transaction.
    let mut requests = vec![request(&alice, 0)];
    for _ in 0..18 {
        let mut r = request(&alice, 0);
        r.checks.quota = None;
        requests.push(r);
    }
    let (outcomes, transactions, submits) = write_all(&db.url(), requests).await;

    assert_eq!(outcomes.len(), 19);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Checked::Submitted(Submitted::Created { .. })))
    );
    assert_eq!(gpudev_api::submit_writer::MIN_SECOND_BATCH, 8);
    assert_eq!((transactions, submits), (3, 19.0));
}

#[actix_web::test]
async fn a_second_transaction_waits_until_enough_submits_could_share_it() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let alice = caller(&client, "alice").await;
    let bob = caller(&client, "bob").await;
    // Bob's 3 submits are fewer than a second transaction needs: they wait for alice's to end.
    let mut requests = vec![request(&alice, 0)];
    requests.extend((0..3).map(|_| request(&bob, 0)));
    let (_, transactions, submits) = write_all(&db.url(), requests).await;

    const {
        assert!(
            gpudev_api::submit_writer::MIN_SECOND_BATCH > 3,
            "3 are too few"
        )
    };
    assert_eq!((transactions, submits), (2, 4.0));
}

#[actix_web::test]
async fn a_stored_submits_record_is_written_by_its_transaction_and_a_refusals_after_it() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let alice = caller(&client, "alice").await;
    // A queued cap of 2: of alice's 5 submits (one transaction after her first), 2 are stored
    // and 3 refused.
    let requests: Vec<SubmitRequest> = (0..5)
        .map(|_| {
            let mut r = request(&alice, 0);
            r.checks.quota = Some(Quota { max_queued: 2 });
            r
        })
        .collect();
    let ids: Vec<Uuid> = requests.iter().map(|r| r.new.reservation_id).collect();
    let (outcomes, _, _) = write_all(&db.url(), requests).await;

    let mut stored = Vec::new();
    for (id, outcome) in ids.iter().zip(&outcomes) {
        match outcome {
            Checked::Submitted(Submitted::Created { msg_id, .. }) => stored.push((*id, *msg_id)),
            Checked::OverQuota(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(stored.len(), 2, "{outcomes:?}");
    for (id, msg_id) in &stored {
        // Written by the transaction that stored the reservation (rows it wrote share its id),
        // with the id of the reservation's queue message.
        let row = client
            .query_one(
                "SELECT a.xmin::text = r.xmin::text, (a.details->>'msg_id')::bigint, a.actor, \
                   a.details->>'gpu_type' \
                 FROM audit_log a JOIN reservations r ON r.reservation_id::text = a.target_id \
                 WHERE r.reservation_id = $1 AND a.action = 'reservation.submit' \
                   AND a.outcome = 'success'",
                &[id],
            )
            .await
            .unwrap();
        assert!(
            row.get::<_, bool>(0),
            "the record shares the reservation's transaction"
        );
        assert_eq!(row.get::<_, i64>(1), *msg_id);
        assert_eq!(row.get::<_, &str>(2), "alice");
        assert_eq!(row.get::<_, &str>(3), "t4");
    }
    let denied: Vec<String> = client
        .query(
            "SELECT target_id FROM audit_log \
             WHERE action = 'reservation.submit' AND outcome = 'denied' \
               AND details->>'reason' = 'quota_exceeded'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut refused: Vec<String> = ids
        .iter()
        .filter(|id| !stored.iter().any(|(s, _)| s == *id))
        .map(Uuid::to_string)
        .collect();
    refused.sort();
    let mut denied = denied;
    denied.sort();
    assert_eq!(denied, refused, "each refusal has its record");
}
