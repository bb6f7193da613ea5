//! Two runs at once against the same database and cluster do each thing once.

use std::collections::HashMap;
use std::time::Duration;

use gpudev_domain::ReservationStatus;
use gpudev_testkit::kube::Verb;

use crate::common::{Made, fake_env_with_slow_pods};

#[tokio::test]
async fn two_overlapping_runs_warn_once_expire_once_and_clean_up_once() {
    let Some(env) = fake_env_with_slow_pods("counts the requests of overlapping runs").await else {
        return;
    };
    let _simulation = env.cluster.start_background(Duration::from_millis(50));
    let mut warned = Vec::new();
    for (i, minutes) in [25.0, 12.0, 3.0].into_iter().enumerate() {
        let made = env.active_ending_in(&format!("warned{i}"), minutes).await;
        env.devbox(&made).await;
        warned.push(made);
    }
    let mut expired: Vec<Made> = Vec::new();
    for i in 0..3 {
        let made = env.active_ending_in(&format!("expired{i}"), -5.0).await;
        env.devbox(&made).await;
        env.attached_disk(&made, "home").await;
        expired.push(made);
    }
    let queued = env.reservation("queued", ReservationStatus::Queued).await;
    let preparing = env
        .reservation("preparing", ReservationStatus::Preparing)
        .await;
    env.devbox(&preparing).await;
    env.sql(&format!(
        "UPDATE reservations SET created_at = now() - interval '49 hours' WHERE reservation_id = '{}'; \
         UPDATE reservations SET admitted_at = now() - interval '2 hours' WHERE reservation_id = '{}'",
        queued.id, preparing.id
    ))
    .await;
    env.fake().clear_requests();

    let (first, second) = (env.job(), env.job());
    let (a, b) = tokio::join!(first.run_once(), second.run_once());
    let (a, b) = (a.unwrap().summary, b.unwrap().summary);

    eprintln!("run a: {}\nrun b: {}", a.line(), b.line());
    // The runs really overlapped: one found the other holding reservations it was expiring.
    assert!(a.skipped_busy + b.skipped_busy >= 1, "{a:?} {b:?}");
    // Each warning was claimed by exactly one run, and delivered once.
    assert_eq!(a.warnings + b.warnings, 3, "{a:?} {b:?}");
    let mut per_reservation: HashMap<uuid::Uuid, usize> = HashMap::new();
    for (_, notice) in env.recorder.notices() {
        *per_reservation.entry(notice.reservation_id).or_default() += 1;
    }
    for made in &warned {
        assert_eq!(per_reservation.get(&made.id), Some(&1));
        let warnings = env
            .events(made)
            .await
            .iter()
            .filter(|e| e.kind == "warning")
            .count();
        assert_eq!(warnings, 1);
    }
    // Each expiry happened once: one transition, one snapshot, one record.
    assert_eq!(a.expired + b.expired, 3, "{a:?} {b:?}");
    for made in &expired {
        assert_eq!(env.status(made).await, "expired");
        let transitions = env
            .events(made)
            .await
            .iter()
            .filter(|e| e.to_status.as_deref() == Some("expired"))
            .count();
        assert_eq!(transitions, 1);
    }
    assert_eq!(env.fake().count_ok(Verb::Create, "volumesnapshots"), 3);
    assert_eq!(env.count("SELECT count(*) FROM disk_snapshots").await, 3);
    assert_eq!(a.snapshots_created + b.snapshots_created, 3);
    // The stale ones changed once.
    assert_eq!(a.queued_cancelled + b.queued_cancelled, 1);
    assert_eq!(a.preparing_failed + b.preparing_failed, 1);
    assert_eq!(env.status(&queued).await, "cancelled");
    assert_eq!(env.status(&preparing).await, "failed");
    assert_eq!(
        env.count(
            "SELECT count(*) FROM reservation_events WHERE to_status IN ('cancelled', 'failed')"
        )
        .await,
        2
    );
    assert!(
        a.errors.is_empty() && b.errors.is_empty(),
        "{:?} {:?}",
        a.errors,
        b.errors
    );
}
