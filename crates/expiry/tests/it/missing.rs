//! Active reservations whose Pod disappeared.

use gpudev_domain::ReservationStatus;

use crate::common::env;

async fn missing_since_is_set(env: &crate::common::Env, made: &crate::common::Made) -> bool {
    env.client
        .query_one(
            "SELECT pod_missing_since IS NOT NULL FROM reservations WHERE reservation_id = $1",
            &[&made.id],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_reservation_without_its_pod_is_marked_then_expired_once_missing_for_ten_minutes() {
    let env = env().await;
    let made = env.reservation("alice", ReservationStatus::Active).await;
    env.attached_disk(&made, "home").await;

    let first = env.run().await;

    assert_eq!(first.summary.pods_missing, 1);
    assert_eq!(env.status(&made).await, "active", "not after one look");
    assert!(missing_since_is_set(&env, &made).await);
    let notes: Vec<_> = env
        .events(&made)
        .await
        .into_iter()
        .filter(|e| e.kind == "note")
        .collect();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].reason.as_deref(), Some("pod missing"));

    env.sql(&format!(
        "UPDATE reservations SET pod_missing_since = now() - interval '10 minutes 5 seconds' WHERE reservation_id = '{}'",
        made.id
    ))
    .await;
    let second = env.run().await;

    assert_eq!(second.summary.pod_disappeared, 1, "{:?}", second.summary);
    assert_eq!(second.summary.pods_missing, 0, "already marked");
    assert_eq!(env.status(&made).await, "expired");
    let event = env
        .events(&made)
        .await
        .into_iter()
        .find(|e| e.to_status.as_deref() == Some("expired"))
        .unwrap();
    assert_eq!(event.reason.as_deref(), Some("pod disappeared"));
    assert_eq!(
        second.summary.snapshots_created, 1,
        "the disk is kept in a snapshot"
    );
}

#[tokio::test]
async fn a_reservation_missing_its_pod_for_nine_minutes_stays_active() {
    let env = env().await;
    let made = env.reservation("bob", ReservationStatus::Active).await;
    env.run().await;
    env.sql(&format!(
        "UPDATE reservations SET pod_missing_since = now() - interval '9 minutes' WHERE reservation_id = '{}'",
        made.id
    ))
    .await;

    let report = env.run().await;

    assert_eq!(report.summary.pod_disappeared, 0);
    assert_eq!(env.status(&made).await, "active");
}

#[tokio::test]
async fn a_pod_that_is_back_clears_the_missing_mark() {
    let env = env().await;
    let made = env.reservation("carol", ReservationStatus::Active).await;
    env.run().await;
    assert!(missing_since_is_set(&env, &made).await);
    env.devbox(&made).await;

    let report = env.run().await;

    assert_eq!(report.summary.pods_found_again, 1);
    assert!(!missing_since_is_set(&env, &made).await);
    assert_eq!(env.status(&made).await, "active");
}
