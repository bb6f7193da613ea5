//! The figures written for clusters of known shape.

use gpudev_testkit::NodeSpec;
use gpudev_testkit::kube::{PodFailure, PodMatch};

use crate::common::{env, fake_env};

#[tokio::test]
async fn a_fragmented_cluster_with_three_gpus_in_use_on_every_node_offers_five() {
    let env = env().await;
    for node in env.cluster.seed_nodes("h100", 4, 8).await {
        // Pods of another team, in another namespace, hold GPUs too.
        env.pod_on("research", &node, 3, false).await;
    }

    env.run().await;

    let h100 = env.row("h100").await;
    assert_eq!(h100.total_gpus, 32);
    assert_eq!(h100.in_use_gpus, 12);
    assert_eq!(h100.available_gpus, 20);
    assert_eq!(h100.full_nodes_available, 0);
    assert_eq!(h100.max_reservable, 5);
    assert_eq!(h100.running_nodes, 4);
    assert_eq!(
        h100.last_availability_updated_by.as_deref(),
        Some("availability-test")
    );
    assert!(h100.last_availability_update.is_some());
}

#[tokio::test]
async fn whole_free_nodes_of_a_multinode_type_add_up_to_a_multi_node_request() {
    let env = env().await;
    let nodes = env.cluster.seed_nodes("h100", 3, 8).await;
    env.pod_on("gpu-dev", &nodes[0], 1, true).await;

    env.run().await;

    let h100 = env.row("h100").await;
    assert_eq!(h100.full_nodes_available, 2);
    assert_eq!(h100.max_reservable, 16, "two whole nodes of 8");
    assert_eq!(h100.available_gpus, 23);
}

#[tokio::test]
async fn a_single_node_type_offers_at_most_one_node() {
    let env = env().await;
    env.cluster.seed_nodes("l4", 3, 4).await;

    env.run().await;

    let l4 = env.row("l4").await;
    assert_eq!(l4.full_nodes_available, 3);
    assert_eq!(l4.max_reservable, 4);
}

#[tokio::test]
async fn finished_pods_and_unready_or_cordoned_nodes_give_nothing_to_schedule() {
    let Some(env) = fake_env("marks nodes not ready and fails pods on demand").await else {
        return;
    };
    let nodes = env.cluster.seed_nodes("a100", 3, 8).await;
    env.fake().set_node_ready(&nodes[1], false);
    env.fake().set_node_unschedulable(&nodes[2], true);
    env.fake().fail_pods(
        PodMatch::NameContains("p-".into()),
        PodFailure::Failed("OOMKilled".into()),
    );
    env.pod_on("research", &nodes[0], 8, false).await;
    env.cluster.step().await; // the pod fails and stops holding its GPUs

    env.run().await;

    let a100 = env.row("a100").await;
    assert_eq!(a100.running_nodes, 2, "the NotReady node is not running");
    assert_eq!(a100.total_gpus, 16);
    assert_eq!(a100.in_use_gpus, 0, "a failed pod holds nothing");
    assert_eq!(a100.available_gpus, 8, "only the Ready, uncordoned node");
    assert_eq!(a100.max_reservable, 8);
}

#[tokio::test]
async fn queued_reservations_are_counted_for_their_own_type() {
    let env = env().await;
    env.cluster.seed_nodes("h100", 1, 8).await;
    env.queue("h100", 4, 2).await;
    env.queue("t4", 1, 3).await;
    env.queue("cpu-x86", 0, 2).await;

    env.run().await;

    assert_eq!(env.row("h100").await.queued_gpus, 8);
    assert_eq!(env.row("t4").await.queued_gpus, 3);
    assert_eq!(
        env.row("cpu-x86").await.queued_gpus,
        2,
        "CPU types count reservations"
    );
    assert_eq!(env.row("l4").await.queued_gpus, 0);
}

#[tokio::test]
async fn cpu_only_nodes_have_four_slots_taken_by_dev_boxes() {
    let env = env().await;
    env.cluster
        .add_node(NodeSpec::gpu("cpu-0", "cpu-x86", 0))
        .await;
    env.cluster
        .add_node(NodeSpec::gpu("cpu-1", "cpu-x86", 0))
        .await;
    for _ in 0..4 {
        env.pod_on("gpu-dev", "cpu-0", 0, true).await;
    }
    env.pod_on("gpu-dev", "cpu-1", 0, true).await;
    env.pod_on("kube-system", "cpu-1", 0, false).await; // not a dev box: takes no slot

    env.run().await;

    let cpu = env.row("cpu-x86").await;
    assert_eq!(cpu.total_gpus, 8);
    assert_eq!(cpu.in_use_gpus, 5);
    assert_eq!(cpu.available_gpus, 3);
    assert_eq!(cpu.full_nodes_available, 0);
    assert_eq!(cpu.max_reservable, 1);
}

#[tokio::test]
async fn nodes_without_the_label_or_of_unknown_types_are_not_counted() {
    let env = env().await;
    env.cluster
        .add_node(NodeSpec::cpu_only("plain", 16, 64))
        .await;
    env.cluster.seed_nodes("mystery", 2, 8).await;
    env.cluster.seed_nodes("t4", 1, 4).await;

    let report = env.run().await;

    assert_eq!(report.nodes, 3, "only labelled nodes");
    assert_eq!(report.nodes_of_unknown_types, 2);
    assert_eq!(env.row("t4").await.total_gpus, 4);
}
