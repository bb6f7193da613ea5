//! Poison messages: what cannot be a hint is dead-lettered at once; what keeps failing is
//! dead-lettered after `MAX_READS` deliveries (each failed one hidden for a growing delay), with
//! its last error, and its reservation fails.

use std::time::Duration;

use gpudev_domain::ReservationStatus;
use gpudev_processor::Backoff;

use crate::common::{Ask, env, fake_env};

#[tokio::test]
async fn a_message_that_is_not_a_hint_is_dead_lettered_at_once_with_its_reason() {
    let env = env().await;
    env.send_raw(serde_json::json!({"hello": "world"})).await;
    env.send_raw(
        serde_json::json!({"action": "launch_rockets", "reservation_id": uuid::Uuid::new_v4()}),
    )
    .await;
    let p = env.leader().await;
    let outcome = p.process_once().await.unwrap();
    assert_eq!(outcome.received, 2);
    assert_eq!(outcome.dead_lettered, 2);
    assert_eq!(env.queued_messages().await, 0);
    let letters = env.dead_letters().await;
    assert_eq!(letters.len(), 2);
    let reasons: Vec<&str> = letters
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"not a hint: no \"action\" string"),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"unknown action \"launch_rockets\""),
        "{reasons:?}"
    );
    assert_eq!(letters[0]["queue"], "gpu_reservations");
    assert!(
        p.metrics()
            .render()
            .contains("action=\"invalid\",outcome=\"dead_letter\"} 2")
    );
}

#[tokio::test]
async fn a_hint_that_keeps_failing_is_dead_lettered_after_max_reads_and_its_reservation_fails() {
    let Some(mut env) = fake_env("injects Kubernetes faults").await else {
        return;
    };
    env.config.max_reads = 3;
    env.config.retry_backoff = Backoff {
        base: Duration::from_secs(2),
        max: Duration::from_secs(10),
    };
    let id = env.submit_with_failing_pod_creates().await;
    let p = env.processor().await;
    assert!(p.try_become_leader().await.unwrap());

    for delivery in 1..=2 {
        env.fail_delivery(&p, delivery).await;
        assert_eq!(env.status(id).await, ReservationStatus::Preparing);
    }
    let outcome = p.process_once().await.unwrap();
    assert_eq!(outcome.dead_lettered, 1, "{outcome:?}");
    assert_eq!(env.queued_messages().await, 0);

    let letters = env.dead_letters().await;
    assert_eq!(letters.len(), 1);
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("gave up after 3 deliveries; last error: create Pod"),
        "{reason}"
    );
    assert!(reason.contains("500"), "{reason}");
    assert_eq!(letters[0]["message"]["reservation_id"], id.to_string());

    let r = env.get(id).await;
    assert_eq!(r.status, ReservationStatus::Failed);
    let why = r.failure_reason.unwrap();
    assert!(
        why.starts_with("could not be started: gave up after 3 deliveries"),
        "{why}"
    );
    env.fake().clear_faults();
    assert_eq!(
        env.objects_of(id).await,
        0,
        "the secret created on the way is removed"
    );
}

#[tokio::test]
async fn a_message_read_too_often_without_an_answer_is_dead_lettered_without_another_attempt() {
    let mut env = env().await;
    env.config.max_reads = 2;
    env.cluster.seed_nodes("h100", 1, 8).await;
    let alice = env.user("alice").await;
    let id = env.submit(&alice, Ask::gpus("h100", 1)).await;
    // Two deliveries that never finished (a processor crashing while handling the message).
    let db = env.db.connect().await;
    for _ in 0..2 {
        env.queue().read(&db, 30, 10).await.unwrap();
        env.expire_visibility().await;
    }
    let p = env.processor().await;
    assert!(p.try_become_leader().await.unwrap());
    let outcome = p.process_once().await.unwrap();
    assert_eq!(outcome.dead_lettered, 1);
    let letters = env.dead_letters().await;
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("gave up after 3 deliveries"),
        "{letters:?}"
    );
    // The reservation was admitted by the pass before the message was given up on, then failed.
    assert_eq!(env.status(id).await, ReservationStatus::Failed);
}
