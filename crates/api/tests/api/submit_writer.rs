//! The submit writer on its own, against a real PostgreSQL with PGMQ: submits that arrive while
//! a transaction is busy share the next one, and one that fails there fails alone.

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
    let user = users::create(
        &client,
        &gpudev_domain::Username::parse("alice").unwrap(),
        Role::User,
    )
    .await
    .unwrap();
    let caller = Caller {
        user_id: user.user_id,
        username: user.username.clone(),
        role: Role::User,
        key_id: 0,
        key_expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
        rate_limit_per_minute: None,
        key_auth_method: "admin".into(),
        key_auth_issuer: None,
    };
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
