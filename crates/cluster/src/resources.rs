//! How much of a node one dev box Pod asks for.
//!
//! A Pod gets the fraction of its node that its GPUs are of the node's GPUs (4 of 8 GPUs → half
//! the vCPUs and memory), less [`HEADROOM_PERCENT`] so that the kubelet's reservations and the
//! node's DaemonSets still fit when one reservation takes the whole node. CPU-only types have no
//! GPUs to divide by, so a node is cut into [`CPU_SLOTS_PER_NODE`] equal slots and each
//! reservation takes one.
//!
//! Requests equal limits for every resource, which puts the Pod in the Guaranteed QoS class: it is
//! the last to be evicted under node pressure, and a dev box never takes CPU or memory that a
//! neighbour on the same node was promised.

use std::collections::BTreeMap;

use gpudev_domain::GpuSpec;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Percentage of a Pod's proportional node share it actually requests.
pub const HEADROOM_PERCENT: u64 = 90;
/// How many reservations of a CPU-only type share one node.
pub const CPU_SLOTS_PER_NODE: u32 = 4;
/// The extended resource name of NVIDIA GPUs (device plugin), also the taint key on GPU nodes.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// The resources of one Pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct NodeShare {
    /// GPUs (0 for CPU-only types).
    pub gpus: u32,
    /// CPU in millicores.
    pub cpu_millis: u64,
    pub memory_mib: u64,
}

impl NodeShare {
    /// The share of a node of type `spec` for a Pod with `gpus_on_node` GPUs (ignored for
    /// CPU-only types; more than the node has counts as the whole node).
    pub fn of(spec: &GpuSpec, gpus_on_node: u32) -> Self {
        let (gpus, numerator, denominator) = if spec.is_cpu_only() {
            (0, 1, u64::from(CPU_SLOTS_PER_NODE))
        } else {
            let gpus = gpus_on_node.min(spec.gpus_per_node);
            (gpus, u64::from(gpus), u64::from(spec.gpus_per_node))
        };
        let share = |per_node: u64| {
            let value = per_node * numerator * HEADROOM_PERCENT / (denominator * 100);
            value.max(1)
        };
        Self {
            gpus,
            cpu_millis: share(u64::from(spec.cpus_per_node) * 1000),
            memory_mib: share(u64::from(spec.memory_gib_per_node) * 1024),
        }
    }

    /// Whole CPUs, at least 1: a sensible default for thread-pool sizes inside the dev box.
    pub fn whole_cpus(&self) -> u64 {
        (self.cpu_millis / 1000).max(1)
    }

    /// The size limit of the memory-backed `/dev/shm`: half the Pod's memory. Pages written there
    /// count against the memory limit, so a bigger cap would only turn "no space left" into
    /// an out-of-memory kill; half leaves room for the processes that fill it (PyTorch
    /// DataLoader workers, NCCL).
    pub fn shm_mib(&self) -> u64 {
        (self.memory_mib / 2).max(64)
    }

    /// The container's requests and limits (equal, for Guaranteed QoS).
    pub fn requirements(&self) -> ResourceRequirements {
        let mut amounts = BTreeMap::from([
            ("cpu".to_owned(), Quantity(format!("{}m", self.cpu_millis))),
            (
                "memory".to_owned(),
                Quantity(format!("{}Mi", self.memory_mib)),
            ),
        ]);
        if self.gpus > 0 {
            amounts.insert(GPU_RESOURCE.to_owned(), Quantity(self.gpus.to_string()));
        }
        ResourceRequirements {
            requests: Some(amounts.clone()),
            limits: Some(amounts),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpudev_domain::GpuCatalog;

    fn spec(name: &str) -> GpuSpec {
        GpuCatalog::default().lookup(name).unwrap().clone()
    }

    #[test]
    fn one_t4_of_four_gets_ninety_percent_of_a_quarter_node() {
        // g4dn.12xlarge: 48 vCPUs, 192 GiB, 4 GPUs.
        let share = NodeShare::of(&spec("t4"), 1);
        assert_eq!(share.gpus, 1);
        assert_eq!(share.cpu_millis, 10_800); // 48 / 4 * 0.9
        assert_eq!(share.memory_mib, 44_236); // 192 GiB / 4 * 0.9 = 44236.8 MiB, rounded down
        assert_eq!(share.whole_cpus(), 10);
    }

    #[test]
    fn a_whole_h100_node_leaves_ten_percent_headroom() {
        // p5.48xlarge: 192 vCPUs, 2048 GiB, 8 GPUs.
        let share = NodeShare::of(&spec("h100"), 8);
        assert_eq!(share.gpus, 8);
        assert_eq!(share.cpu_millis, 172_800);
        assert_eq!(share.memory_mib, 1_887_436); // 2048 * 1024 * 0.9 = 1887436.8
        assert_eq!(share.shm_mib(), 943_718);
    }

    #[test]
    fn shares_scale_with_the_gpu_count() {
        let spec = spec("a100");
        let one = NodeShare::of(&spec, 1);
        let four = NodeShare::of(&spec, 4);
        assert_eq!(four.cpu_millis, 4 * one.cpu_millis);
        // Rounding down happens once per share, so four singles may be a few MiB smaller.
        assert!(four.memory_mib.abs_diff(4 * one.memory_mib) < 4);
        // Asking for more than a node has is capped at the node.
        assert_eq!(NodeShare::of(&spec, 9), NodeShare::of(&spec, 8));
    }

    #[test]
    fn cpu_types_take_a_fixed_slot_and_no_gpus() {
        // c7i.8xlarge: 32 vCPUs, 64 GiB, 4 slots.
        let share = NodeShare::of(&spec("cpu-x86"), 0);
        assert_eq!(share.gpus, 0);
        assert_eq!(share.cpu_millis, 7_200);
        assert_eq!(share.memory_mib, 14_745); // 16 GiB * 0.9 = 14745.6 MiB
        assert_eq!(NodeShare::of(&spec("cpu-x86"), 3), share);
    }

    #[test]
    fn requirements_set_equal_requests_and_limits_with_gpus_only_when_present() {
        let gpu = NodeShare::of(&spec("l4"), 2).requirements();
        assert_eq!(gpu.requests, gpu.limits);
        let limits = gpu.limits.unwrap();
        assert_eq!(limits["nvidia.com/gpu"], Quantity("2".into()));
        assert_eq!(limits["cpu"], Quantity("21600m".into()));
        assert_eq!(limits["memory"], Quantity("88473Mi".into()));

        let cpu = NodeShare::of(&spec("cpu-arm"), 0).requirements();
        assert!(!cpu.limits.unwrap().contains_key("nvidia.com/gpu"));
    }

    #[test]
    fn tiny_nodes_still_get_a_nonzero_share() {
        let mut tiny = spec("h100");
        tiny.cpus_per_node = 1;
        tiny.memory_gib_per_node = 1;
        let share = NodeShare::of(&tiny, 1);
        assert_eq!(share.cpu_millis, 112);
        assert_eq!(share.memory_mib, 115);
        assert_eq!(share.whole_cpus(), 1);
        assert_eq!(share.shm_mib(), 64);
    }
}
