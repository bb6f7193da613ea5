//! What a GPU type's nodes offer, from their capacities (pure): the figures the availability job
//! stores and the API falls back on before that job has run, computed one way for both.
//!
//! Over the nodes of one type:
//! - `running_nodes`: Ready nodes (cordoned ones included: they run, they just take nothing new);
//! - `total_slots`: slots on Ready nodes; `in_use_slots`: the slots pods hold there;
//! - `free_slots`: free slots on schedulable nodes (Ready, not cordoned, no taint a dev box does
//!   not tolerate);
//! - `full_nodes`: schedulable nodes with every slot free (and at least a whole node's worth of
//!   GPUs);
//! - `max_reservable`: the largest request that could start now, by the scheduler's rules: a
//!   single-node request needs its GPUs on one node, so it is the most free GPUs on one
//!   schedulable node (at most a node's worth); a multi-node request needs whole free nodes, so
//!   for a multinode type it is also `min(full nodes, max_nodes) × GPUs per node` when at least
//!   two nodes are whole.
//!
//! A slot is a GPU, except on CPU-only types (0 GPUs per node), where it is a reservation's
//! share of the node, and `max_reservable` is 1 when a slot is free (a CPU reservation takes one).

use crate::scheduler::NodeCapacity;

/// The figures of one type's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeFigures {
    /// Ready nodes.
    pub running_nodes: u64,
    /// Slots on Ready nodes.
    pub total_slots: u64,
    /// Slots pods hold on Ready nodes.
    pub in_use_slots: u64,
    /// Free slots on schedulable nodes.
    pub free_slots: u64,
    /// Schedulable nodes with every slot free.
    pub full_nodes: u64,
    /// The largest request that could start now.
    pub max_reservable: u64,
}

/// The figures of a type with `gpus_per_node` GPUs per node (0: CPU-only) over `nodes`, its
/// nodes; `is_ready` tells the Ready ones. `max_nodes` bounds a multi-node request.
pub fn node_figures<'a>(
    gpus_per_node: u32,
    multinode: bool,
    nodes: impl IntoIterator<Item = &'a NodeCapacity>,
    is_ready: impl Fn(&NodeCapacity) -> bool,
    max_nodes: u32,
) -> NodeFigures {
    let cpu_only = gpus_per_node == 0;
    let mut f = NodeFigures::default();
    let mut largest = 0u32;
    for node in nodes {
        if is_ready(node) {
            f.running_nodes += 1;
            f.total_slots += u64::from(node.slots_total);
            f.in_use_slots += u64::from(node.slots_total - node.slots_free.min(node.slots_total));
        }
        if !node.schedulable {
            continue;
        }
        f.free_slots += u64::from(node.slots_free);
        let whole = node.slots_total > 0
            && node.slots_free >= node.slots_total
            && (cpu_only || node.slots_total >= gpus_per_node);
        if whole {
            f.full_nodes += 1;
        }
        let fits = if cpu_only {
            node.slots_free.min(1)
        } else {
            node.slots_free.min(gpus_per_node)
        };
        largest = largest.max(fits);
    }
    let multi = if multinode && !cpu_only && max_nodes >= 2 && f.full_nodes >= 2 {
        f.full_nodes.min(u64::from(max_nodes)) * u64::from(gpus_per_node)
    } else {
        0
    };
    f.max_reservable = multi.max(u64::from(largest));
    f
}
