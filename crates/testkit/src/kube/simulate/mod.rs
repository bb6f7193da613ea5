//! The pretend scheduler and kubelet: binds pending pods to nodes with room, runs them (Ready
//! after the configured delay) or fails them as a test asked, binds claims, readies snapshots
//! and removes terminated pods.

mod events;
mod kubelet;
mod scheduler;
mod storage;

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde_json::{Value, json};

use self::events::event;
use self::kubelet::{counts_against_node, finish_terminations, run, started};
use self::scheduler::{bind, nodes, requests, schedule};
use self::storage::{bind_claims, ready_snapshots};
use super::resources;
use super::state::{FakeConfig, Inner};
use super::store::Key;
use super::time;

/// Which pods a failure rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodMatch {
    /// Every pod.
    Any,
    /// Pods whose name contains this text.
    NameContains(String),
    /// Pods carrying this label with this value.
    Label(String, String),
}

impl PodMatch {
    fn matches(&self, pod: &Value) -> bool {
        match self {
            Self::Any => true,
            Self::NameContains(text) => name_of(pod).contains(text.as_str()),
            Self::Label(key, value) => {
                pod.pointer("/metadata/labels")
                    .and_then(|l| l.get(key))
                    .and_then(Value::as_str)
                    == Some(value)
            }
        }
    }
}

/// How a matching pod fails instead of becoming Ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodFailure {
    /// Stays Pending; containers wait with `ImagePullBackOff`; a `Failed`/`BackOff` Event.
    ImagePullBackOff,
    /// Stays Pending; containers wait with `ErrImagePull`; a `Failed` Event.
    ErrImagePull,
    /// Running but never Ready; containers wait with `CrashLoopBackOff` after restarts.
    CrashLoopBackOff,
    /// Phase `Failed` with this reason (e.g. `OOMKilled`, `Evicted`).
    Failed(String),
    /// Never scheduled: stays Pending with `PodScheduled=False` and a `FailedScheduling` Event,
    /// whatever the free capacity.
    Unschedulable,
}

/// What the simulation remembers between steps.
#[derive(Debug, Default)]
pub(crate) struct SimState {
    rules: Vec<(PodMatch, PodFailure)>,
    /// When each pod (by uid) was seen bound to a node.
    bound_at: HashMap<String, Instant>,
    /// The last FailedScheduling message reported per pod uid.
    reported: HashMap<String, String>,
    /// When each terminating pod (by uid) was first seen terminating.
    terminating_since: HashMap<String, Instant>,
}

impl SimState {
    pub(crate) fn add_rule(&mut self, matcher: PodMatch, failure: PodFailure) {
        self.rules.push((matcher, failure));
    }
}

/// One pass over pods, claims and snapshots; returns how many objects changed.
pub(crate) fn step(inner: &mut Inner, config: &FakeConfig) -> usize {
    let now = Instant::now();
    let Inner { store, sim, .. } = inner;
    let mut changed = 0;
    changed += finish_terminations(store, sim, config, now);
    let mut nodes = nodes(store);
    for (_, pod) in store.all(&resources::PODS) {
        if let Some(node) = pod.pointer("/spec/nodeName").and_then(Value::as_str)
            && counts_against_node(pod)
            && let Some(n) = nodes.iter_mut().find(|n| n.name == node)
        {
            n.used.add(&requests(pod));
        }
    }
    // Only pods with something left to do are copied: running pods are the bulk at scale.
    let mut pods: Vec<(Key, Value)> = store
        .all(&resources::PODS)
        .filter(|(_, p)| {
            counts_against_node(p)
                && p.pointer("/metadata/deletionTimestamp").is_none()
                && !started(p)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // First come, first served, as the default scheduler's queue.
    pods.sort_by(|(a_key, a), (b_key, b)| {
        let created = |p: &Value| {
            p.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        (created(a), a_key).cmp(&(created(b), b_key))
    });
    for (key, pod) in pods {
        let uid = uid_of(&pod);
        let rule = sim
            .rules
            .iter()
            .find(|(m, _)| m.matches(&pod))
            .map(|(_, f)| f.clone());
        let mut pod = pod;
        if pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            match schedule(&pod, &mut nodes, rule.as_ref()) {
                Ok(node) => {
                    bind(&mut pod, node);
                    pod = store.write(&resources::PODS, &key, pod);
                    event(
                        store,
                        &pod,
                        "Normal",
                        "Scheduled",
                        &format!(
                            "Successfully assigned {}/{} to {}",
                            key.namespace, key.name, node.name
                        ),
                        "default-scheduler",
                    );
                    sim.bound_at.insert(uid.clone(), now);
                    sim.reported.remove(&uid);
                    changed += 1;
                }
                Err(message) => {
                    if sim.reported.get(&uid) != Some(&message) {
                        set_condition(
                            &mut pod,
                            condition("PodScheduled", false, Some("Unschedulable"), Some(&message)),
                        );
                        store.write(&resources::PODS, &key, pod.clone());
                        event(
                            store,
                            &pod,
                            "Warning",
                            "FailedScheduling",
                            &message,
                            "default-scheduler",
                        );
                        sim.reported.insert(uid, message);
                        changed += 1;
                    }
                    continue;
                }
            }
        }
        if started(&pod) {
            continue;
        }
        let bound_at = *sim.bound_at.entry(uid).or_insert(now);
        if now.duration_since(bound_at) < config.ready_delay {
            continue;
        }
        store.serial += 1;
        let pod_ip = format!(
            "10.244.{}.{}",
            (store.serial / 250) % 250,
            store.serial % 250 + 1
        );
        let events = run(&mut pod, rule.as_ref(), &pod_ip);
        let pod = store.write(&resources::PODS, &key, pod);
        for (kind, reason, message) in events {
            event(store, &pod, kind, reason, &message, "kubelet");
        }
        changed += 1;
    }
    changed + bind_claims(store) + ready_snapshots(store)
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, message: Option<&str>) -> Value {
    let mut c = json!({
        "type": kind,
        "status": if ok { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": time::now(),
    });
    if let Some(reason) = reason {
        c["reason"] = json!(reason);
    }
    if let Some(message) = message {
        c["message"] = json!(message);
    }
    c
}

/// Sets a condition, replacing one of the same type.
fn set_condition(object: &mut Value, condition: Value) {
    if !object["status"].is_object() {
        object["status"] = json!({});
    }
    let conditions = &mut object["status"]["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    if let Some(list) = conditions.as_array_mut() {
        list.retain(|c| c["type"] != condition["type"]);
        list.push(condition);
    }
}

fn name_of(object: &Value) -> String {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn uid_of(object: &Value) -> String {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}
