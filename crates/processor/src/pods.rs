//! Reading a dev box Pod's state (pure): is it Ready, failing for good, unschedulable, or still
//! on its way? And what does that mean for the reservation, whose Pods must all be Ready?

use k8s_openapi::api::core::v1::{Event, Pod};

/// Waiting reasons that do not fix themselves: the reservation fails.
const FATAL_WAITING: [&str; 5] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CrashLoopBackOff",
];

/// Where one Pod stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Ready: sshd answers.
    Ready,
    /// Will not become Ready without a new Pod (image cannot be pulled, crash loop, the Pod
    /// failed); the text says why.
    Failed(String),
    /// The scheduler cannot place it; the text is its message.
    Unschedulable(String),
    /// On its way (scheduled, pulling, starting); the reason when one is reported.
    Starting(Option<String>),
    /// Being deleted.
    Terminating,
}

/// The state of one Pod.
pub fn judge(pod: &Pod) -> PodState {
    if pod.metadata.deletion_timestamp.is_some() {
        return PodState::Terminating;
    }
    let Some(status) = pod.status.as_ref() else {
        return PodState::Starting(None);
    };
    if status.phase.as_deref() == Some("Failed") {
        let why = status
            .reason
            .clone()
            .or_else(|| status.message.clone())
            .unwrap_or_else(|| "the pod failed".to_owned());
        return PodState::Failed(format!("the dev box failed: {why}"));
    }
    if status.phase.as_deref() == Some("Succeeded") {
        return PodState::Failed("the dev box exited".to_owned());
    }
    for cs in status.container_statuses.iter().flatten() {
        if let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = waiting.reason.as_deref().unwrap_or_default();
            if FATAL_WAITING.contains(&reason) {
                let message = waiting.message.as_deref().unwrap_or_default();
                return PodState::Failed(if message.is_empty() {
                    format!("container {}: {reason}", cs.name)
                } else {
                    format!("container {}: {reason}: {message}", cs.name)
                });
            }
        }
    }
    let condition = |kind: &str| status.conditions.iter().flatten().find(|c| c.type_ == kind);
    if condition("Ready").is_some_and(|c| c.status == "True") {
        return PodState::Ready;
    }
    if let Some(c) = condition("PodScheduled")
        && c.status == "False"
        && c.reason.as_deref() == Some("Unschedulable")
    {
        return PodState::Unschedulable(c.message.clone().unwrap_or_default());
    }
    let waiting = status
        .container_statuses
        .iter()
        .flatten()
        .find_map(|cs| cs.state.as_ref()?.waiting.as_ref()?.reason.clone());
    PodState::Starting(waiting)
}

/// Where a reservation stands, from all its Pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservationState {
    /// Every expected Pod is Ready.
    Ready,
    /// A Pod failed for good.
    Failed(String),
    /// A Pod cannot be scheduled (and none failed).
    Unschedulable(String),
    /// Some Pods are missing.
    Missing,
    /// On its way.
    Starting(Option<String>),
}

/// Combines the states of a reservation's Pods; `expected` is its node count.
pub fn combine(pods: &[&Pod], expected: usize) -> ReservationState {
    let states: Vec<PodState> = pods.iter().map(|p| judge(p)).collect();
    if let Some(why) = states.iter().find_map(|s| match s {
        PodState::Failed(why) => Some(why.clone()),
        _ => None,
    }) {
        return ReservationState::Failed(why);
    }
    let live = states
        .iter()
        .filter(|s| !matches!(s, PodState::Terminating))
        .count();
    if live < expected.max(1) {
        return ReservationState::Missing;
    }
    if let Some(why) = states.iter().find_map(|s| match s {
        PodState::Unschedulable(why) => Some(why.clone()),
        _ => None,
    }) {
        return ReservationState::Unschedulable(why);
    }
    if states.iter().all(|s| matches!(s, PodState::Ready)) {
        return ReservationState::Ready;
    }
    ReservationState::Starting(states.into_iter().find_map(|s| match s {
        PodState::Starting(reason) => reason,
        _ => None,
    }))
}

/// The newest few Events of a Pod as one line (`Reason: message | …`), for the detailed status
/// of a failed reservation.
pub fn summarize_events(events: &[Event], most: usize) -> String {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    });
    let mut lines: Vec<String> = sorted
        .iter()
        .rev()
        .take(most)
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.as_deref().unwrap_or("Event"),
                e.message.as_deref().unwrap_or_default().trim()
            )
        })
        .collect();
    lines.reverse();
    lines.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({ "metadata": { "name": "p" }, "status": status })).unwrap()
    }

    fn ready() -> Pod {
        pod(json!({ "phase": "Running", "conditions": [{ "type": "Ready", "status": "True" }] }))
    }

    #[test]
    fn pods_are_read_as_ready_failed_unschedulable_or_starting() {
        assert_eq!(judge(&ready()), PodState::Ready);
        let pull = pod(json!({ "phase": "Pending", "containerStatuses": [{
            "name": "dev", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": { "waiting": { "reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\"" } } }] }));
        assert_eq!(
            judge(&pull),
            PodState::Failed(
                "container dev: ImagePullBackOff: Back-off pulling image \"x\"".into()
            )
        );
        let oom = pod(json!({ "phase": "Failed", "reason": "OOMKilled" }));
        assert_eq!(
            judge(&oom),
            PodState::Failed("the dev box failed: OOMKilled".into())
        );
        let unschedulable = pod(json!({ "phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/2 nodes are available" }] }));
        assert_eq!(
            judge(&unschedulable),
            PodState::Unschedulable("0/2 nodes are available".into())
        );
        let creating = pod(json!({ "phase": "Pending", "containerStatuses": [{
            "name": "dev", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": { "waiting": { "reason": "ContainerCreating" } } }] }));
        assert_eq!(
            judge(&creating),
            PodState::Starting(Some("ContainerCreating".into()))
        );
    }

    #[test]
    fn a_reservation_is_ready_only_when_every_node_is() {
        let (a, b) = (ready(), pod(json!({ "phase": "Pending" })));
        assert_eq!(combine(&[&a], 1), ReservationState::Ready);
        assert_eq!(combine(&[&a], 2), ReservationState::Missing);
        assert_eq!(combine(&[&a, &b], 2), ReservationState::Starting(None));
        let failed = pod(json!({ "phase": "Failed", "reason": "Evicted" }));
        assert!(matches!(
            combine(&[&a, &failed], 2),
            ReservationState::Failed(_)
        ));
    }

    #[test]
    fn events_are_summarized_oldest_first() {
        let events: Vec<Event> = (0..5)
            .map(|i| {
                serde_json::from_value(json!({
                    "metadata": { "name": format!("e{i}") },
                    "involvedObject": {},
                    "reason": format!("R{i}"),
                    "message": format!("m{i}"),
                    "lastTimestamp": format!("2026-01-01T00:00:0{i}Z"),
                }))
                .unwrap()
            })
            .collect();
        assert_eq!(summarize_events(&events, 2), "R3: m3 | R4: m4");
    }
}
