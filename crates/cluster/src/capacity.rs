//! What each node can still take: the scheduler's view of the cluster, computed from the Nodes
//! and Pods the API server lists (pure; [`crate::ops::capacity`] fetches them).
//!
//! A node counts when it carries the GPU type label (`GPU_TYPE_LABEL`) with a valid GPU type
//! name. Its *slots* are its allocatable `nvidia.com/gpu`, or [`CPU_SLOTS_PER_NODE`] for a type
//! the catalog lists as CPU-only. Slots in use are the GPUs requested by every unfinished pod
//! bound to the node, in any namespace (a training job outside gpudev holds GPUs too); on a
//! CPU-only node, the dev boxes bound to it.
//!
//! A node is *schedulable* when it is Ready, not cordoned, and carries no `NoSchedule` or
//! `NoExecute` taint other than the `nvidia.com/gpu` one dev boxes tolerate. Nodes that are not
//! still count when deciding whether a request could ever fit.

use std::borrow::Borrow;
use std::collections::HashMap;

use gpudev_domain::{GpuCatalog, GpuType, NodeCapacity};
use k8s_openapi::api::core::v1::{Node, Pod, ResourceRequirements};

use crate::labels;
use crate::resources::{CPU_SLOTS_PER_NODE, GPU_RESOURCE};

/// The node label Kubernetes sets to the node's host name; dev box Pods are pinned to their
/// admitted node through it.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// The node label naming the node's instance type.
pub const INSTANCE_TYPE_LABEL: &str = "node.kubernetes.io/instance-type";

/// Every node carrying a GPU type label, with its slots and free slots now.
///
/// Takes owned objects or shared ones (`Arc<Pod>` from a reflector store) alike.
pub fn node_capacities<N: Borrow<Node>, P: Borrow<Pod>>(
    nodes: &[N],
    pods: &[P],
    gpu_type_label: &str,
    catalog: &GpuCatalog,
) -> Vec<NodeCapacity> {
    // GPUs and dev boxes bound to each node.
    let mut used: HashMap<&str, (u64, u32)> = HashMap::new();
    for pod in pods {
        let pod: &Pod = pod.borrow();
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        if node.is_empty() || is_finished(pod) {
            continue;
        }
        let entry = used.entry(node).or_default();
        entry.0 += gpus_requested(pod);
        if is_devbox(pod) {
            entry.1 += 1;
        }
    }
    nodes
        .iter()
        .filter_map(|node| {
            let node: &Node = node.borrow();
            let name = node.metadata.name.as_deref()?;
            let gpu_type = node
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(gpu_type_label))
                .and_then(|v| GpuType::parse(v).ok())?;
            let cpu_only = catalog.get(&gpu_type).is_some_and(|s| s.is_cpu_only());
            let (gpus_used, devboxes) = used.get(name).copied().unwrap_or_default();
            let (slots_total, slots_used) = if cpu_only {
                (CPU_SLOTS_PER_NODE, devboxes)
            } else {
                (
                    allocatable_gpus(node),
                    u32::try_from(gpus_used).unwrap_or(u32::MAX),
                )
            };
            Some(NodeCapacity {
                name: name.to_owned(),
                gpu_type,
                slots_total,
                slots_free: slots_total.saturating_sub(slots_used),
                schedulable: is_schedulable(node),
            })
        })
        .collect()
}

/// True when the pod no longer holds its node's resources (`Succeeded` or `Failed`).
pub fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// True for gpudev's dev box Pods.
pub fn is_devbox(pod: &Pod) -> bool {
    pod.metadata.labels.as_ref().is_some_and(|l| {
        l.get(labels::MANAGED_BY).map(String::as_str) == Some(labels::MANAGED_BY_VALUE)
            && l.get(labels::APP_NAME).map(String::as_str) == Some(labels::APP_DEVBOX)
    })
}

/// GPUs a pod holds: the sum over its containers, or the largest init container if that is
/// more (as the scheduler counts). A container without a GPU request uses its limit, which is
/// what Kubernetes defaults the request of an extended resource to.
pub fn gpus_requested(pod: &Pod) -> u64 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let of = |r: Option<&ResourceRequirements>| -> u64 {
        let Some(r) = r else { return 0 };
        r.requests
            .as_ref()
            .and_then(|m| m.get(GPU_RESOURCE))
            .or_else(|| r.limits.as_ref().and_then(|m| m.get(GPU_RESOURCE)))
            .and_then(|q| q.0.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let containers: u64 = spec
        .containers
        .iter()
        .map(|c| of(c.resources.as_ref()))
        .sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| of(c.resources.as_ref()))
        .max()
        .unwrap_or(0);
    containers.max(init)
}

/// A node's allocatable GPUs (0 when the device plugin has not reported any).
pub fn allocatable_gpus(node: &Node) -> u32 {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get(GPU_RESOURCE))
        .and_then(|q| q.0.trim().parse::<u32>().ok())
        .unwrap_or(0)
}

/// Ready, not cordoned, and no taint a dev box does not tolerate.
pub fn is_schedulable(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let spec = node.spec.as_ref();
    let cordoned = spec.and_then(|s| s.unschedulable).unwrap_or(false);
    let blocking_taint = spec.and_then(|s| s.taints.as_ref()).is_some_and(|taints| {
        taints.iter().any(|t| {
            matches!(t.effect.as_str(), "NoSchedule" | "NoExecute") && t.key != GPU_RESOURCE
        })
    });
    ready && !cordoned && !blocking_taint
}

/// The node's `InternalIP` address (where NodePorts answer inside the network), falling back
/// to its `ExternalIP`.
pub fn node_address(node: &Node) -> Option<String> {
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    ["InternalIP", "ExternalIP"].iter().find_map(|kind| {
        addresses
            .iter()
            .find(|a| a.type_ == *kind && !a.address.is_empty())
            .map(|a| a.address.clone())
    })
}

/// The node's instance type label, when it has one.
pub fn instance_type(node: &Node) -> Option<String> {
    node.metadata
        .labels
        .as_ref()?
        .get(INSTANCE_TYPE_LABEL)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LABEL: &str = "gpudev.io/gpu-type";

    fn node(name: &str, gpu_type: &str, gpus: u32, extra: serde_json::Value) -> Node {
        let mut n = json!({
            "metadata": { "name": name, "labels": { LABEL: gpu_type } },
            "spec": {},
            "status": {
                "allocatable": { "nvidia.com/gpu": gpus.to_string(), "cpu": "96" },
                "conditions": [{ "type": "Ready", "status": "True" }],
                "addresses": [
                    { "type": "Hostname", "address": name },
                    { "type": "InternalIP", "address": "10.0.0.7" },
                ],
            },
        });
        if let (Some(base), Some(more)) = (n.as_object_mut(), extra.as_object()) {
            for (k, v) in more {
                base.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(n).unwrap()
    }

    fn pod(node: &str, gpus: u32, phase: &str, devbox: bool) -> Pod {
        let labels = if devbox {
            json!({ "app.kubernetes.io/managed-by": "gpudev", "app.kubernetes.io/name": "gpudev-devbox" })
        } else {
            json!({})
        };
        serde_json::from_value(json!({
            "metadata": { "name": "p", "labels": labels },
            "spec": {
                "nodeName": node,
                "containers": [{ "name": "c", "resources": { "limits": { "nvidia.com/gpu": gpus.to_string() } } }],
            },
            "status": { "phase": phase },
        }))
        .unwrap()
    }

    #[test]
    fn free_gpus_are_allocatable_minus_what_unfinished_pods_request() {
        let nodes = [
            node("h-0", "h100", 8, json!({})),
            node("h-1", "h100", 8, json!({})),
        ];
        let pods = [
            pod("h-0", 3, "Running", false),
            pod("h-0", 2, "Pending", true),
            pod("h-0", 4, "Succeeded", false),
            pod("h-1", 8, "Failed", true),
        ];
        let caps = node_capacities(&nodes, &pods, LABEL, &GpuCatalog::default());
        assert_eq!(caps.len(), 2);
        assert_eq!((caps[0].slots_total, caps[0].slots_free), (8, 3));
        assert_eq!((caps[1].slots_total, caps[1].slots_free), (8, 8));
        assert!(caps[0].schedulable);
    }

    #[test]
    fn cpu_only_nodes_have_fixed_slots_taken_by_dev_boxes() {
        let nodes = [node("c-0", "cpu-x86", 0, json!({}))];
        let pods = [
            pod("c-0", 0, "Running", true),
            pod("c-0", 0, "Running", false),
        ];
        let caps = node_capacities(&nodes, &pods, LABEL, &GpuCatalog::default());
        assert_eq!(
            (caps[0].slots_total, caps[0].slots_free),
            (CPU_SLOTS_PER_NODE, 3)
        );
    }

    #[test]
    fn unlabelled_nodes_are_ignored_and_unready_or_tainted_ones_are_unschedulable() {
        let mut plain = node("plain", "h100", 8, json!({}));
        plain.metadata.labels = None;
        let cordoned = node(
            "cordoned",
            "h100",
            8,
            json!({ "spec": { "unschedulable": true } }),
        );
        let tainted = node(
            "tainted",
            "h100",
            8,
            json!({ "spec": { "taints": [{ "key": "maintenance", "effect": "NoSchedule" }] } }),
        );
        let gpu_taint = node(
            "gpu-taint",
            "h100",
            8,
            json!({ "spec": { "taints": [{ "key": "nvidia.com/gpu", "effect": "NoSchedule" }] } }),
        );
        let mut unready = node("unready", "h100", 8, json!({}));
        if let Some(s) = unready.status.as_mut() {
            s.conditions = Some(vec![k8s_openapi::api::core::v1::NodeCondition {
                type_: "Ready".into(),
                status: "False".into(),
                ..Default::default()
            }]);
        }
        let caps = node_capacities(
            &[plain, cordoned, tainted, gpu_taint, unready],
            &[] as &[Pod],
            LABEL,
            &GpuCatalog::default(),
        );
        let schedulable: Vec<(&str, bool)> = caps
            .iter()
            .map(|c| (c.name.as_str(), c.schedulable))
            .collect();
        assert_eq!(
            schedulable,
            [
                ("cordoned", false),
                ("tainted", false),
                ("gpu-taint", true),
                ("unready", false)
            ]
        );
    }

    #[test]
    fn requests_win_over_limits_and_init_containers_count_as_the_scheduler_counts() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": { "name": "p" },
            "spec": {
                "initContainers": [{ "name": "i", "resources": { "limits": { "nvidia.com/gpu": "6" } } }],
                "containers": [
                    { "name": "a", "resources": { "requests": { "nvidia.com/gpu": "2" }, "limits": { "nvidia.com/gpu": "2" } } },
                    { "name": "b", "resources": { "limits": { "nvidia.com/gpu": "1" } } },
                    { "name": "c" },
                ],
            },
        }))
        .unwrap();
        assert_eq!(gpus_requested(&p), 6);
    }

    #[test]
    fn addresses_prefer_the_internal_ip() {
        let n = node("h-0", "h100", 8, json!({}));
        assert_eq!(node_address(&n).as_deref(), Some("10.0.0.7"));
        assert_eq!(instance_type(&n), None);
    }
}
