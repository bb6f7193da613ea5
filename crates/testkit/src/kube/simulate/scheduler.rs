//! The scheduler's part: which node a pod fits on, or why none does.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{PodFailure, condition, set_condition, string_map};
use crate::kube::quantity;
use crate::kube::resources;
use crate::kube::store::Store;

/// A node as the scheduler sees it.
#[derive(Debug)]
pub(super) struct NodeView {
    pub(super) name: String,
    ip: String,
    labels: BTreeMap<String, String>,
    ready: bool,
    unschedulable: bool,
    taints: Vec<Value>,
    allocatable: Resources,
    pub(super) used: Resources,
}

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Resources {
    gpu: f64,
    cpu: f64,
    memory: f64,
}

impl Resources {
    pub(super) fn add(&mut self, other: &Self) {
        self.gpu += other.gpu;
        self.cpu += other.cpu;
        self.memory += other.memory;
    }

    fn of(map: Option<&Value>) -> Self {
        let get = |name: &str| {
            map.and_then(|m| m.get(name))
                .and_then(quantity::of)
                .unwrap_or(0.0)
        };
        Self {
            gpu: get("nvidia.com/gpu"),
            cpu: get("cpu"),
            memory: get("memory"),
        }
    }
}

pub(super) fn nodes(store: &Store) -> Vec<NodeView> {
    store
        .all(&resources::NODES)
        .map(|(key, node)| NodeView {
            name: key.name.clone(),
            ip: node
                .pointer("/status/addresses")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
                .and_then(|x| x["address"].as_str())
                .unwrap_or_default()
                .to_owned(),
            labels: string_map(node.pointer("/metadata/labels")),
            ready: node
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                }),
            unschedulable: node
                .pointer("/spec/unschedulable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            taints: node
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            allocatable: Resources::of(node.pointer("/status/allocatable")),
            used: Resources::default(),
        })
        .collect()
}

/// The pod's requests: per container, `requests` or else `limits` (as the API server defaults).
pub(super) fn requests(pod: &Value) -> Resources {
    let mut total = Resources::default();
    for container in pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let limits = Resources::of(container.pointer("/resources/limits"));
        let requests = Resources::of(container.pointer("/resources/requests"));
        let pick = |r: f64, l: f64| if r > 0.0 { r } else { l };
        total.add(&Resources {
            gpu: pick(requests.gpu, limits.gpu),
            cpu: pick(requests.cpu, limits.cpu),
            memory: pick(requests.memory, limits.memory),
        });
    }
    total
}

/// Picks the fullest node the pod fits on (best fit keeps whole nodes free for big requests),
/// or explains, as the default scheduler does, why none fits.
pub(super) fn schedule<'a>(
    pod: &Value,
    nodes: &'a mut [NodeView],
    rule: Option<&PodFailure>,
) -> Result<&'a NodeView, String> {
    let want = requests(pod);
    let selector = string_map(pod.pointer("/spec/nodeSelector"));
    let tolerations = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let affinity = required_terms(pod);
    let mut reasons: BTreeMap<Cow<'static, str>, usize> = BTreeMap::new();
    let mut best: Option<usize> = None;
    for (i, node) in nodes.iter().enumerate() {
        let free = |a: f64, u: f64| a - u;
        let reason = if rule == Some(&PodFailure::Unschedulable) {
            Some(Cow::Borrowed(
                "node(s) were rejected by the test's fault rule",
            ))
        } else if !node.ready {
            Some(Cow::Borrowed(
                "node(s) had untolerated taint {node.kubernetes.io/not-ready: }",
            ))
        } else if node.unschedulable {
            Some(Cow::Borrowed("node(s) were unschedulable"))
        } else if let Some(taint) = node.taints.iter().find(|t| !tolerated(t, &tolerations)) {
            Some(Cow::Owned(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint["key"].as_str().unwrap_or_default(),
                taint["value"].as_str().unwrap_or_default()
            )))
        } else if selector.iter().any(|(k, v)| node.labels.get(k) != Some(v))
            || !terms_allow(affinity, &node.labels)
        {
            Some(Cow::Borrowed(
                "node(s) didn't match Pod's node affinity/selector",
            ))
        } else if want.gpu > free(node.allocatable.gpu, node.used.gpu) {
            Some(Cow::Borrowed("Insufficient nvidia.com/gpu"))
        } else if want.cpu > free(node.allocatable.cpu, node.used.cpu) {
            Some(Cow::Borrowed("Insufficient cpu"))
        } else if want.memory > free(node.allocatable.memory, node.used.memory) {
            Some(Cow::Borrowed("Insufficient memory"))
        } else {
            None
        };
        match reason {
            Some(reason) => *reasons.entry(reason).or_default() += 1,
            None => {
                let spare = free(node.allocatable.gpu, node.used.gpu);
                if best.is_none_or(|b| spare < free(nodes[b].allocatable.gpu, nodes[b].used.gpu)) {
                    best = Some(i);
                }
            }
        }
    }
    if let Some(i) = best {
        nodes[i].used.add(&want);
        return Ok(&nodes[i]);
    }
    let detail: Vec<String> = reasons
        .iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    Err(if nodes.is_empty() {
        "0/0 nodes are available: no nodes available to schedule pods.".to_owned()
    } else {
        format!(
            "0/{} nodes are available: {}. preemption: 0/{} nodes are available: {} No preemption victims found for incoming pod.",
            nodes.len(),
            detail.join(", "),
            nodes.len(),
            nodes.len()
        )
    })
}

fn tolerated(taint: &Value, tolerations: &[Value]) -> bool {
    let effect = taint["effect"].as_str().unwrap_or_default();
    if effect == "PreferNoSchedule" {
        return true;
    }
    tolerations.iter().any(|t| {
        let key = t["key"].as_str().unwrap_or_default();
        let exists = t["operator"].as_str() == Some("Exists");
        let key_ok = key == taint["key"].as_str().unwrap_or_default() || (key.is_empty() && exists);
        let value_ok = exists
            || t["value"].as_str().unwrap_or_default()
                == taint["value"].as_str().unwrap_or_default();
        let effect_ok = t["effect"]
            .as_str()
            .is_none_or(|e| e.is_empty() || e == effect);
        key_ok && value_ok && effect_ok
    })
}

pub(super) fn bind(pod: &mut Value, node: &NodeView) {
    pod["spec"]["nodeName"] = json!(node.name);
    pod["status"]["phase"] = json!("Pending");
    pod["status"]["hostIP"] = json!(node.ip);
    pod["status"]["hostIPs"] = json!([{ "ip": node.ip }]);
    set_condition(pod, condition("PodScheduled", true, None, None));
}

/// The pod's required node affinity terms, if it has any.
fn required_terms(pod: &Value) -> Option<&Vec<Value>> {
    pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
}

/// Whether required node affinity terms (any term; all expressions of a term) admit a node
/// with these labels. No terms admit every node.
fn terms_allow(terms: Option<&Vec<Value>>, labels: &BTreeMap<String, String>) -> bool {
    let Some(terms) = terms else { return true };
    terms.iter().any(|term| {
        term.get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .all(|expr| expression_holds(expr, labels))
    })
}

fn expression_holds(expr: &Value, labels: &BTreeMap<String, String>) -> bool {
    let key = expr["key"].as_str().unwrap_or_default();
    let values: Vec<&str> = expr["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let label = labels.get(key).map(String::as_str);
    let number = |text: &str| text.parse::<i64>().ok();
    match expr["operator"].as_str().unwrap_or_default() {
        "In" => label.is_some_and(|l| values.contains(&l)),
        "NotIn" => !label.is_some_and(|l| values.contains(&l)),
        "Exists" => label.is_some(),
        "DoesNotExist" => label.is_none(),
        "Gt" => {
            matches!((label.and_then(number), values.first().and_then(|v| number(v))), (Some(l), Some(v)) if l > v)
        }
        "Lt" => {
            matches!((label.and_then(number), values.first().and_then(|v| number(v))), (Some(l), Some(v)) if l < v)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_node_affinity_terms_are_ored_and_expressions_anded() {
        let labels = BTreeMap::from([
            ("gpu".to_owned(), "h100".to_owned()),
            ("zone".to_owned(), "a".to_owned()),
        ]);
        let pod = |terms: Value| {
            json!({ "spec": { "affinity": { "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": terms } } } } })
        };
        let expr = |key: &str, op: &str, values: &[&str]| json!({ "key": key, "operator": op, "values": values });
        let affinity_allows = |pod: &Value, labels: &BTreeMap<String, String>| {
            terms_allow(required_terms(pod), labels)
        };
        assert!(affinity_allows(&json!({ "spec": {} }), &labels));
        assert!(affinity_allows(
            &pod(
                json!([{ "matchExpressions": [expr("gpu", "In", &["h100", "a100"]), expr("zone", "Exists", &[])] }])
            ),
            &labels
        ));
        assert!(!affinity_allows(
            &pod(json!([{ "matchExpressions": [expr("gpu", "NotIn", &["h100"])] }])),
            &labels
        ));
        assert!(affinity_allows(
            &pod(json!([
                { "matchExpressions": [expr("gpu", "In", &["b200"])] },
                { "matchExpressions": [expr("rack", "DoesNotExist", &[])] },
            ])),
            &labels
        ));
    }
}
