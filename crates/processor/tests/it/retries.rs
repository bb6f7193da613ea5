//! Retries back off: a message whose handling failed is hidden for a delay that doubles with each
//! delivery (with jitter, up to a cap), read from PGMQ's own table; it still succeeds once the
//! fault clears. (Dead-lettering after `MAX_READS` deliveries, with the same backoff, is in
//! `dead_letters`.) The reconciliation, which re-creates what a `preparing` reservation lacks,
//! backs off the same way.

use std::time::{Duration, Instant};

use gpudev_domain::ReservationStatus;
use gpudev_processor::Backoff;
use gpudev_testkit::kube::Verb;

use crate::common::fake_env;

const BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(2),
    max: Duration::from_secs(10),
};

#[tokio::test]
async fn a_failing_message_is_hidden_longer_after_each_delivery_and_succeeds_once_the_fault_clears()
{
    let Some(mut env) = fake_env("injects Kubernetes faults").await else {
        return;
    };
    env.config.max_reads = 10;
    env.config.retry_backoff = BACKOFF;
    let id = env.submit_with_failing_pod_creates().await;
    let p = env.leader().await;

    let mut delays = Vec::new();
    for delivery in 1..=5 {
        delays.push(env.fail_delivery(&p, delivery).await);
        assert_eq!(env.status(id).await, ReservationStatus::Preparing);
    }
    // 2, 4, 8 s ceilings with jitter in their upper halves: each delay is longer than the one
    // two deliveries before; then the 10 s cap holds.
    assert!(delays[2] > delays[0] && delays[3] > delays[1], "{delays:?}");
    assert!(delays[4] <= BACKOFF.max.as_secs_f64(), "{delays:?}");

    env.fake().clear_faults();
    let outcome = p.process_once().await.unwrap();
    assert_eq!(outcome.archived, 1, "{outcome:?}");
    assert_eq!(env.queued_messages().await, 0);
    assert_eq!(env.objects_of(id).await, 3);
    assert_eq!(env.creates("pods"), 1);
    assert!(env.dead_letters().await.is_empty());
}

#[tokio::test]
async fn the_reconciliation_retries_a_dev_box_it_could_not_create_less_and_less_often() {
    let Some(mut env) = fake_env("injects Kubernetes faults").await else {
        return;
    };
    env.config.retry_backoff = Backoff {
        base: Duration::from_millis(300),
        max: Duration::from_secs(10),
    };
    let id = env.submit_with_failing_pod_creates().await;
    let p = env.leader().await;
    p.scheduler_pass().await.unwrap();
    assert_eq!(env.status(id).await, ReservationStatus::Preparing);
    let before = env.fake().count(Verb::Create, "pods");

    // Reconcile every 50 ms for 2.5 s while every pod create fails.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        p.reconcile().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let attempts = env.fake().count(Verb::Create, "pods") - before;

    // Without a backoff that is ~50 attempts. With waits of at least 0.15, 0.3, 0.6 and 1.2 s
    // (half of each doubling ceiling) there is room for 5 at most; waits of at most 0.3 and
    // 0.6 s leave room for 3 at least, even on a slow machine.
    assert!((3..=5).contains(&attempts), "{attempts} attempts in 2.5 s");
    assert_eq!(env.status(id).await, ReservationStatus::Preparing);

    // Once Kubernetes works again, the next attempt after the backoff creates the dev box.
    env.fake().clear_faults();
    let deadline = Instant::now() + Duration::from_secs(15);
    while env.objects_of(id).await < 3 {
        assert!(Instant::now() < deadline, "never created");
        p.reconcile().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(env.creates("pods"), 1);
}
