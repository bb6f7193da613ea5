//! The figures of one GPU type, from the capacity of its nodes (pure): the node figures are
//! [`gpudev_domain::node_figures`] (documented there, shared with the API), plus
//! `queued_gpus`: GPUs asked for by queued reservations.
//!
//! A slot is a GPU, except on CPU-only types (0 GPUs per node), where a node has
//! [`gpudev_cluster::resources::CPU_SLOTS_PER_NODE`] reservation slots: there `total_gpus`,
//! `available_gpus` and `in_use_gpus` count slots, `queued_gpus` counts queued reservations and
//! `max_reservable` is 1 when a slot is free (a CPU reservation takes one).

use std::collections::HashSet;

use gpudev_domain::{NodeCapacity, node_figures};
use gpudev_store::availability::Queued;
use gpudev_store::gpu_types::Availability;

/// What a type's nodes look like, from its catalog row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeShape {
    /// GPUs on one node (0 for CPU-only types).
    pub gpus_per_node: u32,
    /// Whether multi-node reservations are offered.
    pub multinode: bool,
}

/// The availability of one type. `nodes` are the capacities of the type's nodes, `ready` the
/// names of the Ready nodes among them.
pub fn availability<'a>(
    shape: TypeShape,
    nodes: impl IntoIterator<Item = &'a NodeCapacity>,
    ready: &HashSet<String>,
    queued: Queued,
    max_nodes: u32,
) -> Availability {
    let f = node_figures(
        shape.gpus_per_node,
        shape.multinode,
        nodes,
        |n| ready.contains(&n.name),
        max_nodes,
    );
    let queued = if shape.gpus_per_node == 0 {
        queued.reservations
    } else {
        queued.gpus
    };
    Availability {
        total_gpus: clamp(f.total_slots),
        available_gpus: clamp(f.free_slots),
        in_use_gpus: clamp(f.in_use_slots),
        queued_gpus: clamp(u64::try_from(queued).unwrap_or(0)),
        full_nodes_available: clamp(f.full_nodes),
        max_reservable: clamp(f.max_reservable),
        running_nodes: clamp(f.running_nodes),
    }
}

fn clamp(v: u64) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpudev_domain::GpuType;

    fn node(name: &str, total: u32, free: u32, schedulable: bool) -> NodeCapacity {
        NodeCapacity {
            name: name.into(),
            gpu_type: GpuType::parse("h100").unwrap(),
            slots_total: total,
            slots_free: free,
            schedulable,
        }
    }

    const H100: TypeShape = TypeShape {
        gpus_per_node: 8,
        multinode: true,
    };

    fn all_ready(nodes: &[NodeCapacity]) -> HashSet<String> {
        nodes.iter().map(|n| n.name.clone()).collect()
    }

    #[test]
    fn a_fragmented_type_can_start_only_what_fits_on_one_node() {
        let nodes: Vec<_> = (0..4).map(|i| node(&format!("n{i}"), 8, 5, true)).collect();
        let a = availability(H100, &nodes, &all_ready(&nodes), Queued::default(), 4);
        assert_eq!(a.total_gpus, 32);
        assert_eq!(a.available_gpus, 20);
        assert_eq!(a.in_use_gpus, 12);
        assert_eq!(a.full_nodes_available, 0);
        assert_eq!(a.max_reservable, 5);
        assert_eq!(a.running_nodes, 4);
    }

    #[test]
    fn whole_free_nodes_make_a_multi_node_request_up_to_max_nodes() {
        let nodes: Vec<_> = (0..6).map(|i| node(&format!("n{i}"), 8, 8, true)).collect();
        let a = availability(H100, &nodes, &all_ready(&nodes), Queued::default(), 4);
        assert_eq!(a.full_nodes_available, 6);
        assert_eq!(a.max_reservable, 32);
        let single = TypeShape {
            multinode: false,
            ..H100
        };
        assert_eq!(
            availability(single, &nodes, &all_ready(&nodes), Queued::default(), 4).max_reservable,
            8
        );
    }

    #[test]
    fn cordoned_and_unready_nodes_offer_nothing() {
        let nodes = vec![
            node("ready", 8, 8, true),
            node("cordoned", 8, 8, false),
            node("down", 8, 8, false),
        ];
        let ready: HashSet<String> = ["ready", "cordoned"].map(String::from).into();
        let a = availability(H100, &nodes, &ready, Queued::default(), 4);
        assert_eq!(a.running_nodes, 2);
        assert_eq!(a.total_gpus, 16);
        assert_eq!(a.available_gpus, 8);
        assert_eq!(a.full_nodes_available, 1);
        assert_eq!(a.max_reservable, 8);
    }

    #[test]
    fn cpu_types_count_slots_and_queued_reservations() {
        let shape = TypeShape {
            gpus_per_node: 0,
            multinode: false,
        };
        let nodes = vec![node("c0", 4, 0, true), node("c1", 4, 3, true)];
        let queued = Queued {
            reservations: 2,
            gpus: 0,
        };
        let a = availability(shape, &nodes, &all_ready(&nodes), queued, 4);
        assert_eq!((a.total_gpus, a.available_gpus, a.in_use_gpus), (8, 3, 5));
        assert_eq!(a.queued_gpus, 2);
        assert_eq!(a.max_reservable, 1);
        assert_eq!(a.full_nodes_available, 0);
    }

    #[test]
    fn no_nodes_means_all_zero() {
        let a = availability(
            H100,
            &[],
            &HashSet::new(),
            Queued {
                reservations: 1,
                gpus: 8,
            },
            4,
        );
        assert_eq!(
            a,
            Availability {
                queued_gpus: 8,
                ..Availability::default()
            }
        );
    }
}
