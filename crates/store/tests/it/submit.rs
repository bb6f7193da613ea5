//! Submitting a reservation writes the row, its event, its secrets and its PGMQ message in one
//! transaction (real PostgreSQL with real PGMQ).

use crate::common::{SECRET_VALUE, count, opened_secrets, reservation_for, user};
use gpudev_domain::ReservationStatus;
use gpudev_store::Queue;
use gpudev_store::QueueMessage;
use gpudev_store::reservations::{self, Submitted};

#[tokio::test]
async fn submit_stores_the_row_its_event_its_secrets_and_one_message() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let queue = Queue::new("gpu_reservations").unwrap();
    let new = reservation_for(&alice);

    let Submitted::Created {
        reservation,
        msg_id,
    } = reservations::submit(&mut client, &queue, &new)
        .await
        .unwrap()
    else {
        panic!("a first submit must create");
    };

    assert_eq!(reservation.status, ReservationStatus::Queued);
    assert_eq!(reservation.username.as_str(), "alice");
    assert_eq!(reservation.env_names, vec!["WANDB_API_KEY".to_owned()]);
    assert!(
        reservation.expires_at.is_none(),
        "the clock starts at activation"
    );
    let msgs = queue.read(&client, 30, 10).await.unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].msg_id, msg_id);
    let Ok(QueueMessage::Create(hint)) = QueueMessage::parse(&msgs[0].body) else {
        panic!("not a create hint: {}", msgs[0].body);
    };
    assert_eq!(hint.reservation_id, new.reservation_id);
    assert!(
        !msgs[0].body.to_string().contains("s3cr3t-value"),
        "secrets never travel in messages"
    );
    let events = reservations::events(&client, new.reservation_id)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].to_status.as_deref(), Some("queued"));
    assert_eq!(events[0].from_status, None);
    let secrets = opened_secrets(&client, new.reservation_id).await;
    assert_eq!(
        secrets.env.get("WANDB_API_KEY").map(String::as_str),
        Some(SECRET_VALUE)
    );
}

#[tokio::test]
async fn a_failed_send_leaves_no_row_no_event_and_no_secret() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    // A queue that does not exist makes pgmq.send fail after the row was inserted.
    let missing = Queue::new("no_such_queue").unwrap();

    let res = reservations::submit(&mut client, &missing, &reservation_for(&alice)).await;

    assert!(res.is_err(), "submit to a missing queue must fail");
    assert_eq!(count(&client, "SELECT count(*) FROM reservations").await, 0);
    assert_eq!(
        count(&client, "SELECT count(*) FROM reservation_events").await,
        0
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM reservation_secrets").await,
        0
    );
}

#[tokio::test]
async fn a_failed_insert_leaves_no_message() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let queue = Queue::new("gpu_reservations").unwrap();
    let first = reservation_for(&alice);
    reservations::submit(&mut client, &queue, &first)
        .await
        .unwrap();
    queue.read(&client, 0, 10).await.unwrap();
    let before = queue.metrics(&client).await.unwrap().total_messages;
    // The same id again violates the primary key.
    let mut dup = reservation_for(&alice);
    dup.reservation_id = first.reservation_id;

    let res = reservations::submit(&mut client, &queue, &dup).await;

    assert!(res.is_err());
    let m = queue.metrics(&client).await.unwrap();
    assert_eq!(
        m.total_messages, before,
        "no message may be sent for a failed insert"
    );
    assert_eq!(m.queue_length, 1);
    assert_eq!(count(&client, "SELECT count(*) FROM reservations").await, 1);
}

#[tokio::test]
async fn a_reused_idempotency_key_returns_the_first_reservation_and_sends_nothing() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let bob = user(&client, "bob").await;
    let queue = Queue::new("gpu_reservations").unwrap();
    let mut first = reservation_for(&alice);
    first.idempotency_key = Some("retry-1".into());
    reservations::submit(&mut client, &queue, &first)
        .await
        .unwrap();
    let mut retry = reservation_for(&alice);
    retry.idempotency_key = Some("retry-1".into());

    let again = reservations::submit(&mut client, &queue, &retry)
        .await
        .unwrap();

    match again {
        Submitted::Existing(r) => assert_eq!(r.reservation_id, first.reservation_id),
        other => panic!("expected the existing reservation, got {other:?}"),
    }
    assert_eq!(queue.metrics(&client).await.unwrap().queue_length, 1);
    // Keys are per user: bob may use the same key.
    let mut bobs = reservation_for(&bob);
    bobs.idempotency_key = Some("retry-1".into());
    let res = reservations::submit(&mut client, &queue, &bobs)
        .await
        .unwrap();
    assert!(matches!(res, Submitted::Created { .. }));
    assert_eq!(count(&client, "SELECT count(*) FROM reservations").await, 2);
}

/// A submitted reservation read back after its `column` was set to `value` behind the store's
/// back.
async fn read_after_setting(
    column: &str,
    value: &str,
) -> Result<Option<gpudev_store::reservations::Reservation>, gpudev_store::StoreError> {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let queue = Queue::new("gpu_reservations").unwrap();
    let new = reservation_for(&alice);
    reservations::submit(&mut client, &queue, &new)
        .await
        .unwrap();
    client
        .execute(
            &format!("UPDATE reservations SET {column} = $2 WHERE reservation_id = $1"),
            &[&new.reservation_id, &value],
        )
        .await
        .unwrap();
    reservations::find(&client, new.reservation_id).await
}

#[tokio::test]
async fn a_row_the_domain_refuses_is_an_error_naming_its_column() {
    let err = read_after_setting("gpu_type", "Not A GPU!")
        .await
        .unwrap_err();

    assert!(
        matches!(&err, gpudev_store::StoreError::Corrupt(detail) if detail.contains("gpu_type")),
        "{err}"
    );
}

#[tokio::test]
async fn an_image_the_domain_refuses_is_an_error_naming_its_column_and_a_blank_one_is_the_default()
{
    let err = read_after_setting("image", "UPPER/case").await.unwrap_err();
    let blank = read_after_setting("image", "").await.unwrap().unwrap();

    assert!(
        matches!(&err, gpudev_store::StoreError::Corrupt(detail) if detail.contains("column image")),
        "{err}"
    );
    assert_eq!(blank.image, None);
}

#[tokio::test]
async fn many_submits_in_one_statement_answer_as_if_written_one_after_the_other() {
    use reservations::{Checked, Quota};
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let bob = user(&client, "bob").await;
    let queue = Queue::new("gpu_reservations").unwrap();
    let bobs_earlier = reservation_for(&bob);
    reservations::submit(&mut client, &queue, &bobs_earlier)
        .await
        .unwrap();
    let before = count(&client, "SELECT count(*) FROM pgmq.q_gpu_reservations").await;

    // Alice may queue 2: her first two new ones pass, the third is refused. Her keyed submit
    // and its retry in the same batch: the retry is answered with the first. Bob proposes an id
    // Bob already used (a retry) and one of Alice's (taken); Bob has no quota.
    let cap = Some(Quota { max_queued: 2 });
    let mut keyed = reservation_for(&alice);
    keyed.idempotency_key = Some("k".into());
    let mut retry = reservation_for(&alice);
    retry.idempotency_key = Some("k".into());
    let second = reservation_for(&alice);
    let third = reservation_for(&alice);
    let mut bobs_retry = reservation_for(&bob);
    bobs_retry.reservation_id = bobs_earlier.reservation_id;
    let mut bobs_taken = reservation_for(&bob);
    bobs_taken.reservation_id = second.reservation_id;
    let bobs_new = reservation_for(&bob);
    let submits = [
        (&keyed, cap),
        (&retry, cap),
        (&bobs_retry, None),
        (&second, cap),
        (&third, cap),
        (&bobs_new, None),
        (&bobs_taken, None),
    ];
    let tx = client.transaction().await.unwrap();
    reservations::lock_users_submissions(&tx, &[alice.user_id, bob.user_id])
        .await
        .unwrap();
    let out = reservations::submit_many(&tx, &queue, &submits)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let created = |c: &Checked| match c {
        Checked::Submitted(Submitted::Created { reservation, .. }) => {
            Some(reservation.reservation_id)
        }
        _ => None,
    };
    assert_eq!(created(&out[0]), Some(keyed.reservation_id));
    assert!(
        matches!(&out[1], Checked::Submitted(Submitted::Existing(r)) if r.reservation_id == keyed.reservation_id),
        "{:?}",
        out[1]
    );
    assert!(
        matches!(&out[2], Checked::IdTaken(Some(r)) if r.reservation_id == bobs_earlier.reservation_id),
        "{:?}",
        out[2]
    );
    assert_eq!(created(&out[3]), Some(second.reservation_id));
    assert_eq!(out[4], Checked::OverQuota(Quota { max_queued: 2 }));
    assert_eq!(created(&out[5]), Some(bobs_new.reservation_id));
    // Bob's proposed id was taken by Alice's in the round before.
    assert_eq!(out[6], Checked::IdTaken(None));

    // Three new rows, each with its event and one message, queued in the order submitted.
    let ids: Vec<uuid::Uuid> = client
        .query(
            "SELECT reservation_id FROM reservations WHERE reservation_id <> $1 \
             ORDER BY created_at, reservation_id",
            &[&bobs_earlier.reservation_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        ids,
        vec![
            keyed.reservation_id,
            second.reservation_id,
            bobs_new.reservation_id
        ]
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM reservation_events WHERE reason = 'submitted'"
        )
        .await,
        4
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM reservation_secrets").await,
        4
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgmq.q_gpu_reservations").await - before,
        3
    );
}

#[tokio::test]
async fn a_statement_whose_submits_are_all_refused_sends_nothing() {
    use reservations::{Checked, Quota};
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let queue = Queue::new("gpu_reservations").unwrap();
    let (a, b) = (reservation_for(&alice), reservation_for(&alice));
    let none = Some(Quota { max_queued: 0 });

    let tx = client.transaction().await.unwrap();
    let out = reservations::submit_many(&tx, &queue, &[(&a, none), (&b, none)])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(out, vec![Checked::OverQuota(Quota { max_queued: 0 }); 2]);
    assert_eq!(count(&client, "SELECT count(*) FROM reservations").await, 0);
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgmq.q_gpu_reservations").await,
        0
    );
}

#[tokio::test]
async fn bookings_in_one_statement_are_capped_by_booked_gpu_hours_in_order_and_plain_submits_are_not()
 {
    use reservations::{Checked, Checks};
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let queue = Queue::new("gpu_reservations").unwrap();
    let at = Some(chrono::Utc::now() + chrono::Duration::hours(5));
    // Each is 4 GPUs for 1.5 h: 6 GPU-hours.
    let booked = || {
        let mut r = reservation_for(&alice);
        r.start_at = at;
        r
    };
    let (first, second, third, plain) = (booked(), booked(), booked(), reservation_for(&alice));
    let cap = Checks {
        max_booked_gpu_hours: Some(13),
        ..Checks::default()
    };
    let tx = client.transaction().await.unwrap();
    reservations::submit_checked(&tx, &queue, &[(&first, cap)])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let tx = client.transaction().await.unwrap();
    let out =
        reservations::submit_checked(&tx, &queue, &[(&second, cap), (&third, cap), (&plain, cap)])
            .await
            .unwrap();
    tx.commit().await.unwrap();

    assert!(
        matches!(out[0], Checked::Submitted(Submitted::Created { .. })),
        "{out:?}"
    );
    assert_eq!(
        out[1],
        Checked::OverBookedHours {
            limit: 13,
            booked: 6.0
        }
    );
    assert!(
        matches!(out[2], Checked::Submitted(Submitted::Created { .. })),
        "{out:?}"
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM reservations WHERE start_at IS NOT NULL"
        )
        .await,
        2
    );
}
