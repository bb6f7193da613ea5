//! Pods that do not start: image pull errors and crash loops fail the reservation with the
//! reason and the pod's events; a pod that cannot be scheduled goes back to the queue once, then
//! fails.

use std::time::Duration;

use gpudev_domain::ReservationStatus;
use gpudev_testkit::kube::{PodFailure, PodMatch};

use crate::common::{Ask, env, fake_env};

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_the_reservation_with_the_pod_events() {
    let env = env().await;
    env.cluster.seed_nodes("t4", 1, 4).await;
    // The real control plane's kwok nodes fail to pull exactly this image.
    if let Some(fake) = env.cluster.fake() {
        fake.fail_pods(PodMatch::Any, PodFailure::ImagePullBackOff);
    }
    let alice = env.user("alice").await;
    let id = env
        .submit(
            &alice,
            Ask {
                image: "unpullable.invalid/gpudev/missing:1",
                ..Ask::gpus("t4", 1)
            },
        )
        .await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    env.cluster.step().await;
    let report = p.reconcile().await.unwrap();
    assert_eq!(report.failed, vec![id]);
    let r = env.get(id).await;
    assert_eq!(r.status, ReservationStatus::Failed);
    let reason = r.failure_reason.unwrap();
    assert!(reason.contains("ImagePullBackOff"), "{reason}");
    let detail = r.detailed_status.unwrap();
    assert!(detail.contains("pod events:"), "{detail}");
    assert!(detail.contains("Failed to pull image"), "{detail}");
    env.assert_gone(id).await;
}

#[tokio::test]
async fn a_crash_loop_is_noticed_by_the_pod_watcher() {
    let Some(mut env) = fake_env("makes pods fail on demand").await else {
        return;
    };
    env.config.scheduler_interval = Duration::from_secs(3600);
    env.cluster.seed_nodes("t4", 1, 4).await;
    env.fake()
        .fail_pods(PodMatch::Any, PodFailure::CrashLoopBackOff);
    let _sim = env.cluster.start_background(Duration::from_millis(50));
    let alice = env.user("alice").await;
    let p = env.processor().await;
    let running = crate::common::run(&p);
    let id = env.submit(&alice, Ask::gpus("t4", 1)).await;
    crate::common::wait_status(&env, id, ReservationStatus::Failed, Duration::from_secs(10)).await;
    let reason = env.get(id).await.failure_reason.unwrap();
    assert!(reason.contains("CrashLoopBackOff"), "{reason}");
    running.stop().await;
}

#[tokio::test]
async fn an_unschedulable_pod_goes_back_to_the_queue_once_then_fails() {
    let Some(mut env) = fake_env("makes pods fail on demand").await else {
        return;
    };
    env.config.pod_ready_timeout = Duration::from_millis(300);
    env.cluster.seed_nodes("h100", 1, 8).await;
    env.fake()
        .fail_pods(PodMatch::Any, PodFailure::Unschedulable);
    let alice = env.user("alice").await;
    let id = env.submit(&alice, Ask::gpus("h100", 8)).await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    env.cluster.step().await;
    let report = p.reconcile().await.unwrap();
    assert!(
        report.requeued.is_empty() && report.failed.is_empty(),
        "{report:?}"
    );
    let r = env.get(id).await;
    assert!(
        r.detailed_status
            .as_deref()
            .unwrap()
            .starts_with("waiting for the node"),
        "{:?}",
        r.detailed_status
    );

    tokio::time::sleep(Duration::from_millis(400)).await;
    let report = p.reconcile().await.unwrap();
    assert_eq!(report.requeued, vec![id]);
    let r = env.get(id).await;
    assert_eq!(r.status, ReservationStatus::Queued);
    assert!(r.node_names.is_empty());
    env.assert_gone(id).await;

    // Admitted again, still unschedulable: this time it fails.
    let pass = p.scheduler_pass().await.unwrap();
    assert_eq!(pass.admitted, vec![id]);
    env.cluster.step().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let report = p.reconcile().await.unwrap();
    assert_eq!(report.failed, vec![id]);
    let r = env.get(id).await;
    assert_eq!(r.status, ReservationStatus::Failed);
    assert!(r.failure_reason.unwrap().contains("could not be scheduled"));
    env.assert_gone(id).await;
}
