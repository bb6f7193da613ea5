//! The processor's watches on a real API server that goes away: its history compacted and the
//! server restarted, the watches resume (relisting after 410 Gone) and dev boxes keep starting.

use std::time::Duration;

use gpudev_domain::ReservationStatus;
use gpudev_testkit::TestCluster;
use gpudev_testkit::control_plane::private_control_plane;

use crate::common::{Ask, NS, env_on, run, wait_status};

#[tokio::test]
async fn the_pod_watch_survives_an_etcd_compaction_and_an_api_server_restart() {
    if gpudev_testkit::skip_on_fake("it restarts a real API server") {
        return;
    }
    let plane = private_control_plane().await;
    let mut env = env_on(TestCluster::real_on(&plane, NS).await).await;
    // Only the watch can activate quickly: the periodic pass is an hour away.
    env.config.scheduler_interval = Duration::from_secs(3600);
    env.cluster.seed_nodes("t4", 2, 4).await;
    let alice = env.user("alice").await;
    let p = env.processor().await;
    let running = run(&p);
    let first = env.submit(&alice, Ask::gpus("t4", 2)).await;
    wait_status(
        &env,
        first,
        ReservationStatus::Active,
        Duration::from_secs(20),
    )
    .await;

    // Writes the watches have not seen yet, compacted away, then the server goes and comes back.
    for i in 0..20 {
        env.cluster.namespace_like(&format!("churn-{i}")).await;
    }
    let revision = plane.compact_etcd().await;
    assert!(revision > 0);
    plane.restart_apiserver().await;

    let second = env.submit(&alice, Ask::gpus("t4", 2)).await;
    wait_status(
        &env,
        second,
        ReservationStatus::Active,
        Duration::from_secs(60),
    )
    .await;
    assert!(env.get(second).await.ssh_command.is_some());
    running.stop().await;
}
