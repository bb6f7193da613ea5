//! The PGMQ queue through PGMQ's own functions: visibility, archive and dead letters.

use std::time::Duration;

use gpudev_store::Queue;
use serde_json::json;

#[tokio::test]
async fn a_read_message_is_hidden_until_its_visibility_timeout_then_archived() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let q = Queue::new("gpu_reservations").unwrap();
    let id = q.send(&client, &json!({"action": "create"})).await.unwrap();

    let first = q.read(&client, 30, 10).await.unwrap();
    let hidden = q.read(&client, 30, 10).await.unwrap();

    assert_eq!(first.len(), 1);
    assert_eq!(first[0].msg_id, id);
    assert_eq!(first[0].read_ct, 1);
    assert!(
        hidden.is_empty(),
        "a read message stays hidden for its visibility timeout"
    );
    assert!(q.archive(&client, id).await.unwrap());
    assert!(
        !q.archive(&client, id).await.unwrap(),
        "archiving twice reports false"
    );
    assert_eq!(q.metrics(&client).await.unwrap().queue_length, 0);
}

#[tokio::test]
async fn a_message_not_archived_reappears_with_a_higher_read_count() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let q = Queue::new("gpu_reservations").unwrap();
    q.send(&client, &json!({"n": 1})).await.unwrap();

    q.read(&client, 0, 1).await.unwrap();
    let again = q.read_with_poll(&client, 30, 1, 1).await.unwrap();

    assert_eq!(again.len(), 1);
    assert_eq!(again[0].read_ct, 2);
}

#[tokio::test]
async fn long_poll_returns_empty_after_waiting_when_nothing_arrives() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let q = Queue::new("gpu_reservations").unwrap();

    let got = q.read_with_poll(&client, 30, 1, 1).await.unwrap();

    assert!(got.is_empty());
}

#[tokio::test]
async fn a_dead_lettered_message_moves_to_the_dead_letter_queue_with_its_reason() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let q = Queue::new("gpu_reservations").unwrap();
    q.send(
        &client,
        &json!({"action": "create", "reservation_id": "r1"}),
    )
    .await
    .unwrap();
    let msg = q.read(&client, 0, 1).await.unwrap().remove(0);

    let tx = client.transaction().await.unwrap();
    assert!(
        q.dead_letter(&tx, &msg, "pod create failed 5 times")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    assert_eq!(q.metrics(&client).await.unwrap().queue_length, 0);
    let letters = q.dead_letters(&client, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body["reason"], "pod create failed 5 times");
    assert_eq!(letters[0].body["original_msg_id"], msg.msg_id);
    assert_eq!(letters[0].body["message"]["reservation_id"], "r1");
    // Browsing dead letters does not consume them.
    assert_eq!(q.dead_letters(&client, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn metrics_of_a_missing_queue_is_not_found() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;

    let res = Queue::new("nope").unwrap().metrics(&client).await;

    assert!(
        matches!(res, Err(gpudev_store::StoreError::NotFound(_))),
        "{res:?}"
    );
}

#[tokio::test]
async fn set_vt_hides_a_message_for_the_delay_given_and_reports_a_missing_one() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let q = Queue::new("gpu_reservations").unwrap();
    let id = q.send(&client, &json!({"n": 1})).await.unwrap();
    let read = q.read(&client, 0, 1).await.unwrap();
    assert_eq!(read.len(), 1);

    let before = chrono::Utc::now();
    let vt = q
        .set_vt(&client, id, Duration::from_millis(90_500))
        .await
        .unwrap()
        .expect("the message is in the queue");
    let stored: chrono::DateTime<chrono::Utc> = client
        .query_one(
            "SELECT vt FROM pgmq.q_gpu_reservations WHERE msg_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, vt);
    let hidden_for = (vt - before).num_milliseconds();
    assert!(
        (90_500..95_000).contains(&hidden_for),
        "hidden for {hidden_for} ms"
    );
    assert!(q.read(&client, 30, 1).await.unwrap().is_empty());

    // Back to visible at once: the next read delivers it again.
    q.set_vt(&client, id, Duration::ZERO).await.unwrap();
    let again = q.read(&client, 30, 1).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].read_ct, 2);

    assert!(q.archive(&client, id).await.unwrap());
    assert_eq!(
        q.set_vt(&client, id, Duration::from_secs(5)).await.unwrap(),
        None
    );
}
