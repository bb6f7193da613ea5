//! The kubelet's part: starting containers (or failing them) and finishing terminations.

use std::time::Instant;

use serde_json::{Value, json};

use super::{PodFailure, SimState, condition, set_condition, uid_of};
use crate::kube::resources;
use crate::kube::state::FakeConfig;
use crate::kube::store::{Key, Store};
use crate::kube::time;

/// An Event to record: type, reason, message.
pub(super) type EventNote = (&'static str, &'static str, String);

/// Starts the pod's containers: Ready, or failing as the rule says. Returns the Events to record.
pub(super) fn run(pod: &mut Value, rule: Option<&PodFailure>, pod_ip: &str) -> Vec<EventNote> {
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
pub(super) fn started(pod: &Value) -> bool {
    pod.pointer("/status/startTime").is_some()
}

/// Pods that hold their node's resources (not finished).
pub(super) fn counts_against_node(pod: &Value) -> bool {
    !matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// Removes pods whose termination period is over.
pub(super) fn finish_terminations(
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
