//! The decision of a scheduling pass, as a pure function of what was fetched: the database's
//! live reservations and recent usage, and the cluster's nodes and pods. It prepares the input
//! of [`gpudev_domain::schedule`] exactly as that function's documentation asks and runs it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gpudev_cluster::capacity::is_finished;
use gpudev_cluster::names;
use gpudev_domain::{
    Admission, GpuCatalog, GpuType, Impossible, NodeCapacity, PassInput, PassOutcome, QueueInfo,
    QueuePolicy, QueueState, Quotas, ReservationKey, ReservationStatus, Running, UsageRecord,
    Username, decayed_usage, schedule,
};
use k8s_openapi::api::core::v1::Pod;
use uuid::Uuid;

use gpudev_store::scheduling::{LiveRow, UsageRow};

/// How many half-lives of history fair share looks at (older use weighs under 1/256).
pub const USAGE_HORIZON_HALF_LIVES: f64 = 8.0;

/// What a pass decided.
#[derive(Debug, Clone, PartialEq)]
pub struct PassPlan {
    /// The policy's outcome.
    pub outcome: PassOutcome<Uuid>,
    /// Queued reservations that cannot even be read as a request (an unknown GPU type, a bad
    /// username), with the reason: they fail like impossible ones.
    pub rejected: Vec<(Uuid, String)>,
    /// Nodes considered.
    pub nodes: usize,
    /// What the next pass starts from, for the submit answer (ADR 5).
    pub state: QueueState<ReservationKey>,
}

/// Everything a pass looks at.
#[derive(Debug, Clone, Copy)]
pub struct PassFacts<'a> {
    /// The time of the pass.
    pub now: DateTime<Utc>,
    /// Live reservations.
    pub rows: &'a [LiveRow],
    /// Recent GPU use.
    pub usage: &'a [UsageRow],
    /// Node capacity as the cluster reports it ([`gpudev_cluster::capacity::node_capacities`]).
    pub capacities: &'a [NodeCapacity],
    /// Pods of every namespace.
    pub pods: &'a [Arc<Pod>],
    /// The namespace of dev box pods.
    pub namespace: &'a str,
    /// The GPU catalog.
    pub catalog: &'a GpuCatalog,
    /// Per-user limits.
    pub quotas: Quotas,
    /// Fair-share half-life.
    pub half_life: Duration,
    /// Each GPU type's fair-share virtual time from the last pass.
    pub clocks: &'a [(String, f64)],
    /// Promise horizon and aging.
    pub policy: QueuePolicy,
    /// How long after its end a reservation's nodes are really free (the expiry job's grace
    /// period and interval).
    pub release_delay: Duration,
}

/// Runs the policy over `facts`.
pub fn plan_pass(facts: &PassFacts<'_>) -> PassPlan {
    let now = facts.now.timestamp();
    let nodes = reserve_admitted(facts);
    let release_delay = i64::try_from(facts.release_delay.as_secs()).unwrap_or(i64::MAX);
    let mut rejected = Vec::new();
    let mut running = Vec::new();
    let mut queue = Vec::new();
    for row in facts.rows {
        match row.status {
            ReservationStatus::Preparing | ReservationStatus::Active => {
                if let Some(r) = running_of(row, now, release_delay) {
                    running.push(r);
                }
            }
            ReservationStatus::Queued => match row.pending(facts.catalog) {
                Ok(p) => queue.push(p),
                Err(reason) => rejected.push((row.reservation_id, reason)),
            },
            _ => {}
        }
    }
    let records: Vec<UsageRecord> = facts
        .usage
        .iter()
        .filter_map(|u| {
            Some(UsageRecord {
                user: Username::parse(&u.username).ok()?,
                gpus: u32::try_from(u.gpus).ok()?,
                started_at: u.started_at.timestamp(),
                ended_at: u.ended_at.timestamp(),
            })
        })
        .collect();
    let half_life = i64::try_from(facts.half_life.as_secs()).unwrap_or(i64::MAX);
    let usage = decayed_usage(&records, now, half_life);
    // A type whose clock cannot be read back starts again at 0, as a new type does.
    let clocks: BTreeMap<GpuType, f64> = facts
        .clocks
        .iter()
        .filter_map(|(t, v)| Some((GpuType::parse(t).ok()?, *v)))
        .collect();
    let input = PassInput {
        now,
        nodes: &nodes,
        running: &running,
        queue: &queue,
        usage: &usage,
        quotas: facts.quotas,
        clocks: &clocks,
        policy: facts.policy,
    };
    let decided = schedule(&input);
    let state = QueueState::after(&input, &decided, release_delay);
    let outcome = uuids(decided);
    PassPlan {
        outcome,
        rejected,
        nodes: nodes.len(),
        state,
    }
}

/// Slots one node of a reservation takes (one for a CPU-only reservation).
fn slots_per_node(row: &LiveRow) -> u32 {
    let nodes = u32::try_from(row.node_count.max(1)).unwrap_or(1);
    let gpus = u32::try_from(row.gpu_count.max(0)).unwrap_or(0);
    gpus.div_ceil(nodes).max(1)
}

/// The capacities with the slots of admitted reservations whose pods are not yet counted on
/// their nodes taken away (the policy's first requirement of its caller).
fn reserve_admitted(facts: &PassFacts<'_>) -> Vec<NodeCapacity> {
    let placed: HashSet<(&str, &str)> = facts
        .pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(facts.namespace) && !is_finished(p))
        .filter_map(|p| {
            let name = p.metadata.name.as_deref()?;
            let node = p.spec.as_ref()?.node_name.as_deref()?;
            Some((name, node))
        })
        .collect();
    let mut nodes = facts.capacities.to_vec();
    for row in facts.rows {
        if !matches!(
            row.status,
            ReservationStatus::Preparing | ReservationStatus::Active
        ) {
            continue;
        }
        let total = u32::try_from(row.node_count.max(1)).unwrap_or(1);
        for (index, node) in row.node_names.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let pod = names::pod_name(row.reservation_id, index, total);
            if placed.contains(&(pod.as_str(), node.as_str())) {
                continue;
            }
            if let Some(n) = nodes.iter_mut().find(|n| &n.name == node) {
                n.slots_free = n.slots_free.saturating_sub(slots_per_node(row));
            }
        }
    }
    nodes
}

/// A running reservation as the policy sees it: its nodes are released `release_delay` after
/// its end, when the expiry job has ended it.
fn running_of(row: &LiveRow, now: i64, release_delay: i64) -> Option<Running> {
    let user = Username::parse(&row.username).ok()?;
    let gpu_type = GpuType::parse(&row.gpu_type).ok()?;
    let booked = (row.hours * 3600.0).round() as i64;
    let expires_at = match (row.status, row.expires_at, row.admitted_at) {
        (ReservationStatus::Active, Some(t), _) => t.timestamp(),
        // Still preparing: expected to hold its nodes from admission for its booked time.
        (_, _, Some(admitted)) => admitted.timestamp().saturating_add(booked),
        _ => now.saturating_add(booked),
    }
    .saturating_add(release_delay);
    let gpus = u32::try_from(row.gpu_count.max(0)).unwrap_or(0);
    let nodes = u32::try_from(row.node_count.max(1)).unwrap_or(1);
    Some(Running {
        user,
        gpu_type,
        tag: row.queue_tag,
        booked_secs: booked,
        gpus_per_node: gpus / nodes,
        node_names: row.node_names.clone(),
        expires_at,
    })
}

/// The outcome with plain reservation ids.
fn uuids(o: PassOutcome<ReservationKey>) -> PassOutcome<Uuid> {
    PassOutcome {
        clocks: o.clocks,
        admissions: o
            .admissions
            .into_iter()
            .map(|a| Admission {
                reservation_id: a.reservation_id.id,
                tag: a.tag,
                node_names: a.node_names,
            })
            .collect(),
        positions: o
            .positions
            .into_iter()
            .map(|q| QueueInfo {
                reservation_id: q.reservation_id.id,
                tag: q.tag,
                promise: q.promise,
                promise_moved: q.promise_moved,
                position: q.position,
                estimated_start: q.estimated_start,
                blocked_reason: q.blocked_reason,
            })
            .collect(),
        impossible: o
            .impossible
            .into_iter()
            .map(|i| Impossible {
                reservation_id: i.reservation_id.id,
                reason: i.reason,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn row(n: u128, status: ReservationStatus, gpus: i32, nodes: &[&str]) -> LiveRow {
        LiveRow {
            reservation_id: id(n),
            username: "alice".into(),
            status,
            gpu_type: "h100".into(),
            gpu_count: gpus,
            node_count: 1,
            priority: 0,
            created_at: t(i64::try_from(n).unwrap()),
            hours: 2.0,
            admitted_at: Some(t(0)),
            expires_at: None,
            node_names: nodes.iter().map(|s| (*s).to_owned()).collect(),
            queue_tag: None,
            promised_start_at: None,
            promised_nodes: Vec::new(),
            start_at: None,
        }
    }

    fn cap(name: &str, total: u32, free: u32) -> NodeCapacity {
        NodeCapacity {
            name: name.into(),
            gpu_type: GpuType::parse("h100").unwrap(),
            slots_total: total,
            slots_free: free,
            schedulable: true,
        }
    }

    fn pod(name: &str, node: &str) -> Arc<Pod> {
        serde_json::from_value(json!({
            "metadata": { "name": name, "namespace": "gpu-dev" },
            "spec": { "nodeName": node, "containers": [] },
            "status": { "phase": "Running" },
        }))
        .map(Arc::new)
        .unwrap()
    }

    fn facts<'a>(
        rows: &'a [LiveRow],
        caps: &'a [NodeCapacity],
        pods: &'a [Arc<Pod>],
        catalog: &'a GpuCatalog,
    ) -> PassFacts<'a> {
        PassFacts {
            now: t(100),
            rows,
            usage: &[],
            capacities: caps,
            pods,
            namespace: "gpu-dev",
            catalog,
            quotas: Quotas::default(),
            half_life: Duration::from_secs(86_400),
            clocks: &[],
            policy: QueuePolicy {
                promise_horizon_secs: 7200,
                aging: 1.0,
                release_delay_secs: 0,
            },
            release_delay: Duration::ZERO,
        }
    }

    #[test]
    fn an_admitted_reservation_without_its_pod_on_the_node_holds_its_gpus() {
        let catalog = GpuCatalog::default();
        let rows = [
            row(1, ReservationStatus::Preparing, 8, &["n-0"]),
            row(2, ReservationStatus::Queued, 8, &[]),
        ];
        let caps = [cap("n-0", 8, 8)];
        let plan = plan_pass(&facts(&rows, &caps, &[], &catalog));
        assert!(plan.outcome.admissions.is_empty(), "{plan:?}");
        assert_eq!(plan.outcome.positions.len(), 1);
        // The preparing one is expected to end at admission + 2 h.
        assert_eq!(
            plan.outcome.positions[0].estimated_start,
            Some(t(0).timestamp() + 7200)
        );
    }

    #[test]
    fn a_pod_already_bound_to_its_node_is_not_counted_twice() {
        let catalog = GpuCatalog::default();
        let rows = [
            row(1, ReservationStatus::Active, 4, &["n-0"]),
            row(2, ReservationStatus::Queued, 4, &[]),
        ];
        // The cluster already counts the active pod's 4 GPUs.
        let caps = [cap("n-0", 8, 4)];
        let pods = [pod(&names::pod_name(id(1), 0, 1), "n-0")];
        let plan = plan_pass(&facts(&rows, &caps, &pods, &catalog));
        assert_eq!(plan.outcome.admissions.len(), 1, "{plan:?}");
        assert_eq!(plan.outcome.admissions[0].node_names, ["n-0"]);
    }

    #[test]
    fn four_gpus_never_span_two_nodes_with_two_free_each() {
        let catalog = GpuCatalog::default();
        let rows = [row(2, ReservationStatus::Queued, 4, &[])];
        let caps = [cap("n-0", 8, 2), cap("n-1", 8, 2)];
        let plan = plan_pass(&facts(&rows, &caps, &[], &catalog));
        assert!(plan.outcome.admissions.is_empty());
        assert_eq!(plan.outcome.positions.len(), 1);
    }

    #[test]
    fn unknown_gpu_types_are_rejected_with_a_reason() {
        let catalog = GpuCatalog::default();
        let mut bad = row(3, ReservationStatus::Queued, 1, &[]);
        bad.gpu_type = "tpu".into();
        let plan = plan_pass(&facts(&[bad], &[], &[], &catalog));
        assert_eq!(plan.rejected.len(), 1);
        assert!(plan.rejected[0].1.contains("tpu"), "{:?}", plan.rejected);
    }
}
