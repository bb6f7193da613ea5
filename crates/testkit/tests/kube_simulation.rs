//! The fake cluster's pretend scheduler and kubelet.

use std::time::Duration;

use gpudev_testkit::kube::{FakeCluster, FakeConfig, NodeSpec, PodFailure, PodMatch};
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolumeClaim, Pod, Secret};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, ResourceExt};
use serde_json::json;

const NS: &str = "gpu-dev";

fn gpu_pod(name: &str, gpu_type: &str, gpus: u32) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": "dev" } },
        "spec": {
            "nodeSelector": { "gpudev.io/gpu-type": gpu_type },
            "tolerations": [{ "key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule" }],
            "containers": [{
                "name": "dev",
                "image": "pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel",
                "resources": {
                    "requests": { "nvidia.com/gpu": gpus.to_string(), "cpu": "4", "memory": "32Gi" },
                    "limits": { "nvidia.com/gpu": gpus.to_string() },
                },
            }],
        },
    }))
    .unwrap_or_else(|e| panic!("test pod: {e}"))
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_of(pod: &Pod) -> Option<String> {
    pod.spec.as_ref().and_then(|s| s.node_name.clone())
}

async fn events_about(fake: &FakeCluster, name: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(fake.client(), NS);
    let lp = ListParams::default().fields(&format!("involvedObject.name={name}"));
    events
        .list(&lp)
        .await
        .unwrap_or_else(|e| panic!("listing events: {e}"))
        .items
}

#[tokio::test]
async fn seeded_nodes_carry_the_gpu_type_label_capacity_and_an_address() {
    let fake = FakeCluster::new();
    let names = fake.seed_nodes("H100", 2, 8);
    fake.seed_nodes("H100", 1, 8);
    let nodes: Api<Node> = Api::all(fake.client());

    let listed = nodes
        .list(&ListParams::default().labels("gpudev.io/gpu-type=H100"))
        .await
        .unwrap();

    assert_eq!(names, ["h100-node-0", "h100-node-1"]);
    assert_eq!(listed.items.len(), 3);
    let status = listed.items[0].status.clone().unwrap();
    assert_eq!(status.allocatable.unwrap()["nvidia.com/gpu"].0, "8");
    assert!(
        status
            .addresses
            .unwrap()
            .iter()
            .any(|a| a.type_ == "InternalIP")
    );
}

#[tokio::test]
async fn a_pod_is_scheduled_on_a_node_with_free_gpus_and_becomes_ready() {
    let fake = FakeCluster::new();
    fake.seed_nodes("a100", 1, 8);
    fake.seed_nodes("h100", 2, 8);
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    pods.create(&PostParams::default(), &gpu_pod("first", "h100", 6))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &gpu_pod("second", "h100", 4))
        .await
        .unwrap();

    fake.step();
    let first = pods.get("first").await.unwrap();
    let second = pods.get("second").await.unwrap();

    assert!(is_ready(&first) && is_ready(&second));
    let (a, b) = (node_of(&first).unwrap(), node_of(&second).unwrap());
    assert!(a.starts_with("h100-") && b.starts_with("h100-"));
    assert_ne!(a, b, "6 + 4 GPUs do not fit on one 8-GPU node");
    let status = first.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(status.pod_ip.is_some_and(|ip| ip.starts_with("10.244.")));
    assert!(status.host_ip.is_some());
    assert!(status.container_statuses.unwrap()[0].ready);
    let reasons: Vec<String> = events_about(&fake, "first")
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(reasons.contains(&"Scheduled".to_owned()) && reasons.contains(&"Started".to_owned()));
}

#[tokio::test]
async fn a_pod_too_big_for_any_node_stays_pending_with_failed_scheduling() {
    let fake = FakeCluster::new();
    fake.seed_nodes("h100", 2, 8);
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    pods.create(&PostParams::default(), &gpu_pod("huge", "h100", 16))
        .await
        .unwrap();

    fake.step();
    fake.step();
    let pod = pods.get("huge").await.unwrap();

    assert_eq!(node_of(&pod), None);
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let scheduled = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap();
    assert_eq!(
        (scheduled.status.as_str(), scheduled.reason.as_deref()),
        ("False", Some("Unschedulable"))
    );
    let events = events_about(&fake, "huge").await;
    assert_eq!(events.len(), 1, "reported once while nothing changes");
    assert_eq!(events[0].reason.as_deref(), Some("FailedScheduling"));
    assert!(
        events[0]
            .message
            .as_deref()
            .unwrap()
            .contains("Insufficient nvidia.com/gpu")
    );
}

#[tokio::test]
async fn a_pending_pod_is_scheduled_once_gpus_are_freed() {
    let fake = FakeCluster::new();
    fake.seed_nodes("h100", 1, 8);
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    pods.create(&PostParams::default(), &gpu_pod("holder", "h100", 8))
        .await
        .unwrap();
    fake.step();
    pods.create(&PostParams::default(), &gpu_pod("waiter", "h100", 2))
        .await
        .unwrap();
    fake.step();
    assert_eq!(node_of(&pods.get("waiter").await.unwrap()), None);

    pods.delete("holder", &DeleteParams::default())
        .await
        .unwrap();
    fake.step();

    assert!(is_ready(&pods.get("waiter").await.unwrap()));
}

#[tokio::test]
async fn nodes_that_are_not_ready_cordoned_or_tainted_are_skipped() {
    let fake = FakeCluster::new();
    let down = fake.add_node(NodeSpec {
        ready: false,
        ..NodeSpec::gpu("down", "h100", 8)
    });
    fake.add_node(NodeSpec::gpu("cordoned", "h100", 8));
    fake.set_node_unschedulable("cordoned", true);
    let tainted: k8s_openapi::api::core::v1::Taint = serde_json::from_value(
        json!({ "key": "maintenance", "value": "true", "effect": "NoSchedule" }),
    )
    .unwrap();
    fake.add_node(NodeSpec {
        taints: vec![tainted],
        ..NodeSpec::gpu("tainted", "h100", 8)
    });
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    pods.create(&PostParams::default(), &gpu_pod("p", "h100", 1))
        .await
        .unwrap();

    fake.step();
    assert_eq!(node_of(&pods.get("p").await.unwrap()), None);
    fake.set_node_ready(&down, true);
    fake.step();

    assert_eq!(
        node_of(&pods.get("p").await.unwrap()).as_deref(),
        Some("down")
    );
}

#[tokio::test]
async fn readiness_waits_for_the_configured_delay() {
    let fake = FakeCluster::with_config(FakeConfig {
        ready_delay: Duration::from_millis(200),
        ..FakeConfig::default()
    });
    fake.seed_nodes("h100", 1, 8);
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    pods.create(&PostParams::default(), &gpu_pod("p", "h100", 1))
        .await
        .unwrap();

    fake.step();
    let bound = pods.get("p").await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    fake.step();

    assert!(node_of(&bound).is_some() && !is_ready(&bound));
    assert!(is_ready(&pods.get("p").await.unwrap()));
}

#[tokio::test]
async fn pods_fail_with_the_reason_a_rule_chose() {
    let fake = FakeCluster::new();
    fake.seed_nodes("h100", 1, 8);
    fake.fail_pods(
        PodMatch::NameContains("badimage".into()),
        PodFailure::ImagePullBackOff,
    );
    fake.fail_pods(
        PodMatch::Label("crash".into(), "yes".into()),
        PodFailure::CrashLoopBackOff,
    );
    fake.fail_pods(
        PodMatch::NameContains("oom".into()),
        PodFailure::Failed("OOMKilled".into()),
    );
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    let mut crasher = gpu_pod("crasher", "h100", 1);
    crasher.labels_mut().insert("crash".into(), "yes".into());
    for pod in [
        gpu_pod("badimage", "h100", 1),
        crasher,
        gpu_pod("oom", "h100", 1),
    ] {
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }

    fake.step();
    let waiting_reason = |pod: &Pod| {
        pod.status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0]
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone())
    };
    let badimage = pods.get("badimage").await.unwrap();
    let crasher = pods.get("crasher").await.unwrap();
    let oom = pods.get("oom").await.unwrap();

    assert_eq!(
        waiting_reason(&badimage).as_deref(),
        Some("ImagePullBackOff")
    );
    assert_eq!(
        badimage.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
    assert_eq!(
        waiting_reason(&crasher).as_deref(),
        Some("CrashLoopBackOff")
    );
    assert!(!is_ready(&crasher));
    let oom = oom.status.unwrap();
    assert_eq!(
        (oom.phase.as_deref(), oom.reason.as_deref()),
        (Some("Failed"), Some("OOMKilled"))
    );
    let events = events_about(&fake, "badimage").await;
    assert!(events.iter().any(|e| {
        e.message
            .as_deref()
            .is_some_and(|m| m.contains("ErrImagePull"))
    }));
}

#[tokio::test]
async fn the_background_simulation_makes_pods_ready_for_await_condition() {
    let fake = FakeCluster::new();
    fake.seed_nodes("h100", 1, 8);
    let _simulation = fake.start_simulation(Duration::from_millis(10));
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    pods.create(&PostParams::default(), &gpu_pod("p", "h100", 2))
        .await
        .unwrap();

    let ready = tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(pods, "p", conditions::is_pod_running()),
    )
    .await;

    assert!(ready.unwrap().unwrap().is_some());
}

#[tokio::test]
async fn with_a_termination_period_deleted_pods_linger_then_go_with_their_dependents() {
    let fake = FakeCluster::with_config(FakeConfig {
        pod_termination: Duration::from_millis(100),
        ..FakeConfig::default()
    });
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    let secrets: Api<Secret> = Api::namespaced(fake.client(), NS);
    let owner = pods
        .create(&PostParams::default(), &gpu_pod("p", "h100", 0))
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "s", "ownerReferences": [{ "apiVersion": "v1", "kind": "Pod", "name": "p", "uid": owner.uid().unwrap() }] },
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let deleting = pods
        .delete("p", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    fake.step();
    let lingering = pods.get_opt("p").await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    fake.step();

    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert!(lingering.is_some());
    assert_eq!(pods.get_opt("p").await.unwrap(), None);
    assert_eq!(secrets.get_opt("s").await.unwrap(), None);
}

#[tokio::test]
async fn claims_are_bound_by_the_next_step() {
    let fake = FakeCluster::new();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(fake.client(), NS);
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": { "name": "home-alice" },
        "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": "gp3", "resources": { "requests": { "storage": "100Gi" } } },
    }))
    .unwrap();
    claims.create(&PostParams::default(), &claim).await.unwrap();

    fake.step();
    let status = claims.get("home-alice").await.unwrap().status.unwrap();

    assert_eq!(status.phase.as_deref(), Some("Bound"));
    assert_eq!(status.capacity.unwrap()["storage"].0, "100Gi");
}
