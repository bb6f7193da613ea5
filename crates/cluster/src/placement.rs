//! Pinning a Pod to the node the scheduler admitted it on.
//!
//! The scheduling pass plans every admitted reservation onto a node and builds the next pass on
//! that plan; if the Kubernetes scheduler were free to put the Pod elsewhere, two reservations
//! could be promised the same GPUs. A *required* node affinity on the node's host name keeps the
//! Pod on its node while still going through the scheduler (taints, resources and the kubelet's
//! admission are checked as usual), which setting `spec.nodeName` directly would skip.

use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
};

use crate::capacity::HOSTNAME_LABEL;

/// Requires `pod` to run on the node whose `kubernetes.io/hostname` label is `node_name`
/// (the node name on the clusters gpudev targets). Replaces any earlier required node
/// affinity; idempotent.
pub fn pin_to_node(pod: &mut Pod, node_name: &str) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: HOSTNAME_LABEL.to_owned(),
                operator: "In".to_owned(),
                values: Some(vec![node_name.to_owned()]),
            }]),
            match_fields: None,
        }],
    });
}

/// The node a Pod was pinned to by [`pin_to_node`], if any.
pub fn pinned_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_expressions.iter().flatten())
        .find(|e| e.key == HOSTNAME_LABEL && e.operator == "In")
        .and_then(|e| e.values.as_ref()?.first())
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::spec;
    use crate::pod::pod;

    #[test]
    fn a_pinned_pod_requires_its_node_and_pinning_twice_changes_nothing() {
        let plan = &spec("t4", 1, 1).pod_plans().unwrap()[0];
        let mut p = pod(plan);
        assert_eq!(pinned_node(&p), None);
        pin_to_node(&mut p, "t4-node-3");
        let once = p.clone();
        pin_to_node(&mut p, "t4-node-3");
        assert_eq!(p, once);
        assert_eq!(pinned_node(&p), Some("t4-node-3"));
        // The GPU type node selector stays.
        let selector = p.spec.as_ref().unwrap().node_selector.as_ref().unwrap();
        assert_eq!(selector["gpudev.io/gpu-type"], "t4");
    }
}
