//! Test nodes: GPU servers with a GPU-type label, `nvidia.com/gpu` capacity and an address.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Taint;
use serde_json::{Value, json};

use super::time;

/// A node to add to the fake cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// The node name.
    pub name: String,
    /// The GPU type, put in the configured GPU-type label; `None` for a CPU-only node.
    pub gpu_type: Option<String>,
    /// `nvidia.com/gpu` capacity and allocatable.
    pub gpus: u32,
    /// CPU cores.
    pub cpu: u32,
    /// Memory in GiB.
    pub memory_gib: u32,
    /// The `Ready` condition.
    pub ready: bool,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// Extra labels (`kubernetes.io/hostname` and the GPU-type label are added).
    pub labels: BTreeMap<String, String>,
    /// Taints, e.g. `nvidia.com/gpu=present:NoSchedule`.
    pub taints: Vec<Taint>,
}

impl NodeSpec {
    /// A Ready, schedulable GPU node with generous CPU and memory (64 cores and 512 GiB per GPU,
    /// or per node when it has none), so that the GPU count is what limits scheduling.
    pub fn gpu(name: impl Into<String>, gpu_type: impl Into<String>, gpus: u32) -> Self {
        let per_gpu = gpus.max(1);
        Self {
            name: name.into(),
            gpu_type: Some(gpu_type.into()),
            gpus,
            cpu: 64 * per_gpu,
            memory_gib: 512 * per_gpu,
            ready: true,
            unschedulable: false,
            labels: BTreeMap::new(),
            taints: Vec::new(),
        }
    }

    /// A Ready CPU-only node.
    pub fn cpu_only(name: impl Into<String>, cpu: u32, memory_gib: u32) -> Self {
        Self {
            cpu,
            memory_gib,
            gpu_type: None,
            ..Self::gpu(name, "", 0)
        }
    }

    /// The Node object, with its InternalIP.
    pub(crate) fn to_object(&self, gpu_type_label: &str, internal_ip: &str) -> Value {
        let mut labels: BTreeMap<String, String> = BTreeMap::from([
            ("kubernetes.io/hostname".to_owned(), self.name.clone()),
            ("kubernetes.io/os".to_owned(), "linux".to_owned()),
            ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
        ]);
        if let Some(gpu_type) = &self.gpu_type {
            labels.insert(gpu_type_label.to_owned(), gpu_type.clone());
        }
        labels.extend(self.labels.clone());
        let resources = json!({
            "cpu": self.cpu.to_string(),
            "memory": format!("{}Gi", self.memory_gib),
            "nvidia.com/gpu": self.gpus.to_string(),
            "pods": "110",
            "ephemeral-storage": "500Gi",
        });
        let mut spec = json!({});
        if self.unschedulable {
            spec["unschedulable"] = json!(true);
        }
        if !self.taints.is_empty() {
            spec["taints"] = serde_json::to_value(&self.taints).unwrap_or_default();
        }
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": { "name": self.name, "labels": labels },
            "spec": spec,
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "conditions": [ready_condition(self.ready)],
                "addresses": [
                    { "type": "InternalIP", "address": internal_ip },
                    { "type": "Hostname", "address": self.name },
                ],
            },
        })
    }
}

/// A node's `Ready` condition.
pub(crate) fn ready_condition(ready: bool) -> Value {
    let now = time::now();
    json!({
        "type": "Ready",
        "status": if ready { "True" } else { "False" },
        "reason": if ready { "KubeletReady" } else { "KubeletNotReady" },
        "message": if ready { "kubelet is posting ready status" } else { "container runtime is down" },
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    })
}
