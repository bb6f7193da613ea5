//! The pretend scheduler and kubelet: binds pending pods to nodes with room, runs them (Ready
//! after the configured delay) or fails them as a test asked, binds claims, readies snapshots
//! and removes terminated pods.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde_json::{Value, json};

use super::quantity;
use super::resources::{self, ResourceType};
use super::state::{FakeConfig, Inner};
use super::store::{Key, Store};
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
    let mut pods: Vec<(Key, Value)> = store
        .all(&resources::PODS)
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
    for (_, pod) in &pods {
        if let Some(node) = pod.pointer("/spec/nodeName").and_then(Value::as_str)
            && counts_against_node(pod)
            && let Some(n) = nodes.iter_mut().find(|n| n.name == node)
        {
            n.used.add(&requests(pod));
        }
    }
    for (key, pod) in pods {
        if !counts_against_node(&pod) || pod.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
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

/// A node as the scheduler sees it.
#[derive(Debug)]
struct NodeView {
    name: String,
    ip: String,
    labels: BTreeMap<String, String>,
    ready: bool,
    unschedulable: bool,
    taints: Vec<Value>,
    allocatable: Resources,
    used: Resources,
}

#[derive(Debug, Default, Clone, Copy)]
struct Resources {
    gpu: f64,
    cpu: f64,
    memory: f64,
}

impl Resources {
    fn add(&mut self, other: &Self) {
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

fn nodes(store: &Store) -> Vec<NodeView> {
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
fn requests(pod: &Value) -> Resources {
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
fn schedule<'a>(
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
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<usize> = None;
    for (i, node) in nodes.iter().enumerate() {
        let free = |a: f64, u: f64| a - u;
        let reason = if rule == Some(&PodFailure::Unschedulable) {
            Some("node(s) were rejected by the test's fault rule".to_owned())
        } else if !node.ready {
            Some("node(s) had untolerated taint {node.kubernetes.io/not-ready: }".to_owned())
        } else if node.unschedulable {
            Some("node(s) were unschedulable".to_owned())
        } else if let Some(taint) = node.taints.iter().find(|t| !tolerated(t, &tolerations)) {
            Some(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint["key"].as_str().unwrap_or_default(),
                taint["value"].as_str().unwrap_or_default()
            ))
        } else if selector.iter().any(|(k, v)| node.labels.get(k) != Some(v)) {
            Some("node(s) didn't match Pod's node affinity/selector".to_owned())
        } else if want.gpu > free(node.allocatable.gpu, node.used.gpu) {
            Some("Insufficient nvidia.com/gpu".to_owned())
        } else if want.cpu > free(node.allocatable.cpu, node.used.cpu) {
            Some("Insufficient cpu".to_owned())
        } else if want.memory > free(node.allocatable.memory, node.used.memory) {
            Some("Insufficient memory".to_owned())
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

fn bind(pod: &mut Value, node: &NodeView) {
    pod["spec"]["nodeName"] = json!(node.name);
    pod["status"]["phase"] = json!("Pending");
    pod["status"]["hostIP"] = json!(node.ip);
    pod["status"]["hostIPs"] = json!([{ "ip": node.ip }]);
    set_condition(pod, condition("PodScheduled", true, None, None));
}

/// An Event to record: type, reason, message.
type EventNote = (&'static str, &'static str, String);

/// Starts the pod's containers: Ready, or failing as the rule says. Returns the Events to record.
fn run(pod: &mut Value, rule: Option<&PodFailure>, pod_ip: &str) -> Vec<EventNote> {
    let now = time::now();
    let containers: Vec<(String, String)> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                c["image"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let image = containers
        .first()
        .map(|(_, i)| i.clone())
        .unwrap_or_default();
    let status = |name: &str,
                  image: &str,
                  ready: bool,
                  state: Value,
                  restarts: u32,
                  last: Value| {
        json!({
            "name": name,
            "image": image,
            "imageID": if ready { format!("{image}@sha256:{}", "0".repeat(64)) } else { String::new() },
            "containerID": format!("containerd://{}", "f".repeat(64)),
            "ready": ready,
            "started": ready,
            "restartCount": restarts,
            "state": state,
            "lastState": last,
        })
    };
    pod["status"]["startTime"] = json!(now);
    pod["status"]["podIP"] = json!(pod_ip);
    pod["status"]["podIPs"] = json!([{ "ip": pod_ip }]);
    set_condition(pod, condition("Initialized", true, None, None));
    let (phase, waiting, events): (&str, Option<(&str, String)>, Vec<EventNote>) = match rule {
        None | Some(PodFailure::Unschedulable) => {
            let statuses: Vec<Value> = containers
                .iter()
                .map(|(n, i)| {
                    status(
                        n,
                        i,
                        true,
                        json!({ "running": { "startedAt": now } }),
                        0,
                        json!({}),
                    )
                })
                .collect();
            pod["status"]["phase"] = json!("Running");
            pod["status"]["containerStatuses"] = json!(statuses);
            set_condition(pod, condition("ContainersReady", true, None, None));
            set_condition(pod, condition("Ready", true, None, None));
            let mut events = vec![(
                "Normal",
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            )];
            events.extend(
                containers
                    .iter()
                    .map(|(n, _)| ("Normal", "Started", format!("Started container {n}"))),
            );
            return events;
        }
        Some(PodFailure::ImagePullBackOff) => (
            "Pending",
            Some((
                "ImagePullBackOff",
                format!("Back-off pulling image \"{image}\""),
            )),
            vec![
                (
                    "Warning",
                    "Failed",
                    format!(
                        "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
                    ),
                ),
                ("Warning", "Failed", "Error: ErrImagePull".to_owned()),
                (
                    "Normal",
                    "BackOff",
                    format!("Back-off pulling image \"{image}\""),
                ),
                ("Warning", "Failed", "Error: ImagePullBackOff".to_owned()),
            ],
        ),
        Some(PodFailure::ErrImagePull) => (
            "Pending",
            Some((
                "ErrImagePull",
                format!("failed to pull and unpack image \"{image}\": not found"),
            )),
            vec![
                (
                    "Warning",
                    "Failed",
                    format!(
                        "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
                    ),
                ),
                ("Warning", "Failed", "Error: ErrImagePull".to_owned()),
            ],
        ),
        Some(PodFailure::CrashLoopBackOff) => (
            "Running",
            Some((
                "CrashLoopBackOff",
                "back-off 5m0s restarting failed container".to_owned(),
            )),
            vec![(
                "Warning",
                "BackOff",
                "Back-off restarting failed container".to_owned(),
            )],
        ),
        Some(PodFailure::Failed(reason)) => {
            let statuses: Vec<Value> = containers
                .iter()
                .map(|(n, i)| {
                    let terminated = json!({ "terminated": { "exitCode": 137, "reason": reason, "startedAt": now, "finishedAt": now } });
                    status(n, i, false, terminated, 0, json!({}))
                })
                .collect();
            pod["status"]["phase"] = json!("Failed");
            pod["status"]["reason"] = json!(reason);
            pod["status"]["message"] = json!(format!("The pod failed: {reason}"));
            pod["status"]["containerStatuses"] = json!(statuses);
            set_condition(
                pod,
                condition("ContainersReady", false, Some("PodFailed"), None),
            );
            set_condition(pod, condition("Ready", false, Some("PodFailed"), None));
            return vec![("Warning", "Failed", format!("The pod failed: {reason}"))];
        }
    };
    let crash = matches!(rule, Some(PodFailure::CrashLoopBackOff));
    let statuses: Vec<Value> = containers
        .iter()
        .map(|(n, i)| {
            let (reason, message) = waiting.clone().unwrap_or_default();
            let state = json!({ "waiting": { "reason": reason, "message": message } });
            let last = if crash {
                json!({ "terminated": { "exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now } })
            } else {
                json!({})
            };
            status(n, i, false, state, if crash { 5 } else { 0 }, last)
        })
        .collect();
    pod["status"]["phase"] = json!(phase);
    pod["status"]["containerStatuses"] = json!(statuses);
    let names: Vec<&str> = containers.iter().map(|(n, _)| n.as_str()).collect();
    let message = format!("containers with unready status: [{}]", names.join(" "));
    set_condition(
        pod,
        condition(
            "ContainersReady",
            false,
            Some("ContainersNotReady"),
            Some(&message),
        ),
    );
    set_condition(
        pod,
        condition("Ready", false, Some("ContainersNotReady"), Some(&message)),
    );
    events
}

/// Whether the kubelet part already ran for this pod.
fn started(pod: &Value) -> bool {
    pod.pointer("/status/startTime").is_some()
}

/// Pods that hold their node's resources (not finished).
fn counts_against_node(pod: &Value) -> bool {
    !matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
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

/// Removes pods whose termination period is over.
fn finish_terminations(
    store: &mut Store,
    sim: &mut SimState,
    config: &FakeConfig,
    now: Instant,
) -> usize {
    let terminating: Vec<(Key, String)> = store
        .all(&resources::PODS)
        .filter(|(_, p)| p.pointer("/metadata/deletionTimestamp").is_some())
        .map(|(k, p)| (k.clone(), uid_of(p)))
        .collect();
    let mut removed = 0;
    for (key, uid) in terminating {
        let since = *sim.terminating_since.entry(uid.clone()).or_insert(now);
        if now.duration_since(since) >= config.pod_termination {
            store.remove(&resources::PODS, &key, false);
            sim.terminating_since.remove(&uid);
            sim.bound_at.remove(&uid);
            sim.reported.remove(&uid);
            removed += 1;
        }
    }
    removed
}

/// Binds every Pending claim, as a dynamic provisioner would.
fn bind_claims(store: &mut Store) -> usize {
    let pending: Vec<(Key, Value)> = store
        .all(&resources::PVCS)
        .filter(|(_, c)| c.pointer("/status/phase").and_then(Value::as_str) != Some("Bound"))
        .map(|(k, c)| (k.clone(), c.clone()))
        .collect();
    let count = pending.len();
    for (key, mut claim) in pending {
        let size = claim
            .pointer("/spec/resources/requests/storage")
            .cloned()
            .unwrap_or(json!("1Gi"));
        let modes = claim
            .pointer("/spec/accessModes")
            .cloned()
            .unwrap_or(json!(["ReadWriteOnce"]));
        claim["spec"]["volumeName"] = json!(format!("pvc-{}", uid_of(&claim)));
        claim["status"] =
            json!({ "phase": "Bound", "accessModes": modes, "capacity": { "storage": size } });
        store.write(&resources::PVCS, &key, claim);
    }
    count
}

/// Marks every new VolumeSnapshot ready to use, sized as its source claim.
fn ready_snapshots(store: &mut Store) -> usize {
    let fresh: Vec<(Key, Value)> = store
        .all(&resources::VOLUME_SNAPSHOTS)
        .filter(|(_, s)| s.pointer("/status/readyToUse").and_then(Value::as_bool) != Some(true))
        .map(|(k, s)| (k.clone(), s.clone()))
        .collect();
    let count = fresh.len();
    for (key, mut snapshot) in fresh {
        let size = snapshot
            .pointer("/spec/source/persistentVolumeClaimName")
            .and_then(Value::as_str)
            .and_then(|claim| {
                store
                    .get(&resources::PVCS, Some(&key.namespace), claim)
                    .ok()
            })
            .and_then(|claim| claim.pointer("/status/capacity/storage").cloned())
            .unwrap_or(json!("0"));
        snapshot["status"] = json!({
            "readyToUse": true,
            "creationTime": time::now(),
            "restoreSize": size,
            "boundVolumeSnapshotContentName": format!("snapcontent-{}", uid_of(&snapshot)),
        });
        store.write(&resources::VOLUME_SNAPSHOTS, &key, snapshot);
    }
    count
}

/// Records a core/v1 Event about an object.
pub(crate) fn event(
    store: &mut Store,
    about: &Value,
    kind: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    store.serial += 1;
    let namespace = about
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_owned();
    let name = name_of(about);
    let rt: &ResourceType = resources_of(about);
    let now = time::now();
    let object = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": { "name": format!("{name}.{:016x}", store.serial), "namespace": namespace },
        "involvedObject": {
            "apiVersion": rt.api_version(),
            "kind": rt.kind,
            "name": name,
            "namespace": namespace,
            "uid": uid_of(about),
            "resourceVersion": about.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!("")),
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": { "component": component },
        "reportingComponent": component,
        "reportingInstance": "",
    });
    // An event that cannot be stored is not worth failing the simulation over.
    let _ = store.create(&resources::EVENTS, Some(&namespace), object);
}

fn resources_of(object: &Value) -> &'static ResourceType {
    let kind = object["kind"].as_str().unwrap_or("Pod");
    resources::RESOURCES
        .iter()
        .copied()
        .find(|r| r.kind == kind)
        .unwrap_or(&resources::PODS)
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
