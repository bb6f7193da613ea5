//! One run over a cluster of 1,000 nodes, measured (not asserted: the machine is shared).

use std::time::Instant;

use futures::future::join_all;

use crate::common::fake_env;

#[tokio::test]
async fn one_run_over_1000_nodes_and_2000_pods_is_measured() {
    let Some(env) =
        fake_env("a thousand nodes are a measurement of the job, not of the API server").await
    else {
        return;
    };
    let mut nodes = env.cluster.seed_nodes("h100", 500, 8).await;
    nodes.extend(env.cluster.seed_nodes("a100", 300, 8).await);
    nodes.extend(env.cluster.seed_nodes("t4", 200, 4).await);
    for chunk in nodes.chunks(100) {
        join_all(chunk.iter().flat_map(|node| {
            [
                env.pod_on("gpu-dev", node, 1, true),
                env.pod_on("research", node, 2, false),
            ]
        }))
        .await;
    }
    env.queue("h100", 8, 50).await;

    let started = Instant::now();
    let report = env.run().await;
    let elapsed = started.elapsed();

    eprintln!(
        "availability over {} nodes and {} pods: {:.0} ms (run_once, {} build)",
        report.nodes,
        report.pods,
        elapsed.as_secs_f64() * 1000.0,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    assert_eq!(report.nodes, 1000);
    assert_eq!(report.pods, 2000);
    let h100 = env.row("h100").await;
    assert_eq!(h100.in_use_gpus, 1500);
    assert_eq!(h100.max_reservable, 5);
    assert_eq!(h100.queued_gpus, 400);
}
