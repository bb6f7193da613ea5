//! Retries back off: a message whose handling failed is hidden for a delay that doubles with each
//! delivery (with jitter, up to a cap), read from PGMQ's own table; it still succeeds once the
//! fault clears. (Dead-lettering after `MAX_READS` deliveries, with the same backoff, is in
//! `dead_letters`.)

use std::time::Duration;

use gpudev_domain::ReservationStatus;
use gpudev_processor::Backoff;

use crate::common::env;

const BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(2),
    max: Duration::from_secs(10),
};

#[tokio::test]
async fn a_failing_message_is_hidden_longer_after_each_delivery_and_succeeds_once_the_fault_clears()
{
    let mut env = env().await;
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

    env.fake.clear_faults();
    let outcome = p.process_once().await.unwrap();
    assert_eq!(outcome.archived, 1, "{outcome:?}");
    assert_eq!(env.queued_messages().await, 0);
    assert_eq!(env.objects_of(id), 3);
    assert_eq!(env.creates("pods"), 1);
    assert!(env.dead_letters().await.is_empty());
}
