//! Reservations stuck in the queue or in preparation.

use gpudev_domain::ReservationStatus;

use crate::common::env;

#[tokio::test]
async fn a_reservation_queued_for_more_than_48_hours_is_cancelled_with_the_reason() {
    let env = env().await;
    let made = env.reservation("alice", ReservationStatus::Queued).await;
    env.sql(&format!(
        "UPDATE reservations SET created_at = now() - interval '48 hours 1 minute' WHERE reservation_id = '{}'",
        made.id
    ))
    .await;

    let report = env.run().await;

    assert_eq!(report.summary.queued_cancelled, 1);
    assert_eq!(env.status(&made).await, "cancelled");
    let event = env
        .events(&made)
        .await
        .into_iter()
        .find(|e| e.to_status.as_deref() == Some("cancelled"))
        .unwrap();
    assert!(event.reason.unwrap().contains("not started within 48 h"));
    assert_eq!(
        env.count("SELECT count(*) FROM reservation_secrets").await,
        0
    );
}

#[tokio::test]
async fn a_reservation_queued_for_47_hours_stays_in_the_queue() {
    let env = env().await;
    let made = env.reservation("bob", ReservationStatus::Queued).await;
    env.sql(&format!(
        "UPDATE reservations SET created_at = now() - interval '47 hours' WHERE reservation_id = '{}'",
        made.id
    ))
    .await;

    let report = env.run().await;

    assert_eq!(report.summary.queued_cancelled, 0);
    assert_eq!(env.status(&made).await, "queued");
}

#[tokio::test]
async fn a_reservation_queued_for_days_that_holds_a_promised_start_is_not_cancelled() {
    let env = env().await;
    let made = env.reservation("erin", ReservationStatus::Queued).await;
    env.sql(&format!(
        "UPDATE reservations SET created_at = now() - interval '60 hours', \
           promised_start_at = now() + interval '1 hour', promised_nodes = '{{gpu-node-0}}' \
         WHERE reservation_id = '{}'",
        made.id
    ))
    .await;

    let report = env.run().await;

    assert_eq!(report.summary.queued_cancelled, 0);
    assert_eq!(env.status(&made).await, "queued");
}

#[tokio::test]
async fn an_old_reservation_admitted_a_moment_ago_is_not_cancelled_as_stale() {
    let env = env().await;
    let made = env.reservation("carol", ReservationStatus::Preparing).await;
    // Submitted three days ago, admitted just now: it is not stale in any sense.
    env.sql(&format!(
        "UPDATE reservations SET created_at = now() - interval '72 hours' WHERE reservation_id = '{}'",
        made.id
    ))
    .await;

    let report = env.run().await;

    assert_eq!(
        report.summary.queued_cancelled + report.summary.preparing_failed,
        0
    );
    assert_eq!(env.status(&made).await, "preparing");
}

#[tokio::test]
async fn a_reservation_preparing_for_more_than_an_hour_fails_its_pod_is_deleted_and_its_disk_released()
 {
    let env = env().await;
    let made = env.reservation("dave", ReservationStatus::Preparing).await;
    let pod = env.devbox(&made).await;
    let disk_id = env.attached_disk(&made, "home").await;
    env.sql(&format!(
        "UPDATE reservations SET admitted_at = now() - interval '61 minutes' WHERE reservation_id = '{}'",
        made.id
    ))
    .await;

    let report = env.run().await;

    assert_eq!(report.summary.preparing_failed, 1);
    assert_eq!(env.status(&made).await, "failed");
    assert!(env.gone("pods", &pod).await);
    assert!(env.gone("services", &format!("{pod}-ssh")).await);
    let attached = env
        .count(&format!(
            "SELECT count(*) FROM disks WHERE disk_id = '{disk_id}' AND reservation_id IS NOT NULL"
        ))
        .await;
    assert_eq!(attached, 0);
    let reason: Option<String> = env
        .client
        .query_one(
            "SELECT failure_reason FROM reservations WHERE reservation_id = $1",
            &[&made.id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(reason.unwrap().contains("within 60 min"));
}

#[tokio::test]
async fn a_reservation_preparing_for_50_minutes_is_left_alone() {
    let env = env().await;
    let made = env.reservation("erin", ReservationStatus::Preparing).await;
    let pod = env.devbox(&made).await;
    env.sql(&format!(
        "UPDATE reservations SET admitted_at = now() - interval '50 minutes' WHERE reservation_id = '{}'",
        made.id
    ))
    .await;

    env.run().await;

    assert_eq!(env.status(&made).await, "preparing");
    assert!(env.exists("pods", &pod).await);
}

#[tokio::test]
async fn a_group_whose_nodes_did_not_all_arrive_in_time_fails_naming_how_many_did() {
    let env = env().await;
    let late = env.reservation("frank", ReservationStatus::Queued).await;
    let waiting = env.reservation("grace", ReservationStatus::Queued).await;
    for (made, deadline) in [
        (&late, "now() - interval '1 second'"),
        (&waiting, "now() + interval '1 minute'"),
    ] {
        env.sql(&format!(
            "UPDATE reservations SET node_count = 3, group_waiting_for = 1, \
               group_deadline = {deadline} WHERE reservation_id = '{}'",
            made.id
        ))
        .await;
    }

    let report = env.run().await;

    assert_eq!(report.summary.groups_failed, 1);
    assert_eq!(env.status(&late).await, "failed");
    assert_eq!(
        env.status(&waiting).await,
        "queued",
        "its members may still come"
    );
    let event = env
        .events(&late)
        .await
        .into_iter()
        .find(|e| e.to_status.as_deref() == Some("failed"))
        .unwrap();
    let reason = event.reason.unwrap();
    assert!(reason.contains("only 2 of the 3 nodes"), "{reason}");
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM reservation_secrets WHERE reservation_id = '{}'",
            late.id
        ))
        .await,
        0,
        "its sealed environment is gone"
    );
}
