//! The scheduling policy: which queued reservations start now, on which nodes, and when the rest
//! are expected to start. A pure function of its input; the processor does the I/O around it.
//!
//! # Model
//!
//! Capacity is counted per node in *slots*: a slot is one GPU on a GPU node, and room for one
//! reservation on a CPU-only node (a type with 0 GPUs per node). A single-node reservation
//! needs its slots on one node (four free GPUs spread 2 + 2 over two nodes do not take a
//! 4-GPU reservation). A multi-node reservation of `k` nodes is a gang: it needs `k` whole nodes
//! free at the same time, and gets all of them or none.
//!
//! Every node has an *availability profile*: its free slots as a step function of time. It
//! starts at the node's free slots now and rises at each running reservation's `expires_at` by
//! what that reservation holds there (a release that is already overdue counts from `now + 1`:
//! those GPUs are not free *now*). Nodes of different GPU types never share a reservation, so
//! each type is a separate pool.
//!
//! # Order
//!
//! The queue is sorted by priority (higher first), then fair share (lower decayed GPU usage
//! first, see [`decayed_usage`]), then FIFO (`submitted_at`), then reservation id, so the order
//! is total and the pass deterministic. Walking each user's reservations in that order, one that
//! would put its user over a [`Quotas`] limit — counting what the user holds now and the user's
//! reservations before it in the queue — moves behind every reservation that is within quota.
//! So a user at their limit never holds anyone else back.
//!
//! # Conservative backfill
//!
//! The pass walks the ordered queue once and gives *every* reservation a place on the timeline,
//! as Slurm does with conservative backfill:
//!
//! 1. its earliest start is the first time `t >= now` at which its slots are free for its whole
//!    duration `[t, t + duration)` in the profiles as they stand, *and* its user's quota has room
//!    for it over the same interval (quotas are a per-user profile of the same kind: what the
//!    user holds, releasing at each `expires_at`);
//! 2. its slots are taken from those profiles over `[t, t + duration)` — on the chosen node(s)
//!    and in the user's quota;
//! 3. if `t == now` it is admitted; otherwise it waits with `t` as its estimated start, and the
//!    slots taken in step 2 are its *shadow*: a reservation of exactly those nodes at exactly
//!    that time.
//!
//! A reservation later in the order only sees what earlier ones left, so it may start now (be
//! backfilled) only where it ends before every shadow on the node it uses, or uses slots no
//! shadow needs. It can never delay the estimated start of any reservation ahead of it. The
//! estimate is exact under the model: it is the earliest time enough slots are released on
//! one node (or enough whole nodes together), given every running reservation ends at its
//! `expires_at` and every reservation ahead starts at its own estimate.
//!
//! Node choice: a single-node reservation goes to the node that allows the earliest start and,
//! among those, has the fewest free slots at that time (best fit), then the first by name — so
//! large holes stay whole for large requests. A gang takes the first nodes by name among those
//! whole for the duration.
//!
//! A reservation for which no start can be predicted (its slots are held by work with no known
//! end, or too few of the nodes that could hold it are schedulable) waits without an estimate
//! and without a shadow. A reservation that can never fit — no nodes of its type, more slots per
//! node than any node of its type has, more whole nodes than exist, more GPUs than the per-user
//! limit — is reported as impossible instead of waiting.
//!
//! # Outputs
//!
//! Every queued reservation lands in exactly one list of the [`PassOutcome`]: admitted now
//! (with its nodes), still waiting (with its 1-based position among the *waiting*
//! reservations of its GPU type, its estimated start and, when it is held back by its user's
//! quota or by missing nodes, the reason), or impossible (with the reason).
//!
//! # What the caller must pass
//!
//! * `slots_free` of each node must already exclude reservations admitted by an earlier pass
//!   whose pods are not yet counted on the node, and each admitted pod must be pinned to the
//!   node it was given; otherwise the next pass plans on GPUs that are already promised.
//! * `running` lists every active and preparing reservation (a preparing one with its
//!   expected end), so releases and per-user quotas are known.
//!
//! # Cost
//!
//! One pass is `O(queue × nodes of the type × log(steps per node))` in the worst case. Earliest
//! starts only move later during a pass, and a larger shape can start no earlier than a smaller
//! one, so the search for each reservation starts at the best lower bound found so far instead
//! of at `now`, and a node is abandoned as soon as it cannot beat the best node found. Each
//! node also keeps its whole-node stretches up to date, so a gang search looks at a few
//! stretches per node instead of walking every profile. One pass over 1,000 nodes × 8 GPUs
//! with 10,000 queued reservations takes about 0.15 s in release mode (the ignored test
//! `one_pass_over_1000_nodes_and_10000_queued_reservations_is_fast` measures it).

mod fair_share;
mod pool;
mod profile;
mod quota;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

pub use fair_share::{UsageRecord, decayed_usage};
pub use quota::Quotas;

use crate::gpu::GpuType;
use crate::username::Username;
use pool::{NodeState, Pool, Shape};
use profile::Profile;
use quota::{Holdings, Limit, UserQuota};

/// One node that carries a GPU type label, with its capacity now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCapacity {
    /// The Kubernetes node name.
    pub name: String,
    /// The GPU type the node belongs to.
    pub gpu_type: GpuType,
    /// Slots on the node: allocatable GPUs, or for a CPU-only type how many reservations the
    /// node takes.
    pub slots_total: u32,
    /// Slots free now: `slots_total` minus what every pod on the node requests, in any
    /// namespace, *and* minus admitted reservations whose pods are not yet counted there.
    pub slots_free: u32,
    /// False for nodes that are not Ready or are cordoned: they count when deciding whether a
    /// request could ever fit, but nothing is planned on them.
    pub schedulable: bool,
}

/// A reservation that holds capacity now (active or preparing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// Its owner (counts against the owner's quota).
    pub user: Username,
    /// GPUs it holds on each of its nodes (0 for a CPU-only reservation, which holds one slot
    /// per node).
    pub gpus_per_node: u32,
    /// The nodes it runs on.
    pub node_names: Vec<String>,
    /// When it releases its nodes (unix seconds). For a reservation still preparing, pass when
    /// it is expected to end (admission time plus duration).
    pub expires_at: i64,
}

/// A queued reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending<Id> {
    /// Its id (any totally ordered type; the last tie-break of the order).
    pub reservation_id: Id,
    /// Its owner.
    pub user: Username,
    /// The GPU type asked for.
    pub gpu_type: GpuType,
    /// GPUs over all nodes (0 for a CPU-only type).
    pub gpu_count: u32,
    /// Nodes it spans: 1, or `k >= 2` whole nodes for a multi-node reservation.
    pub nodes: u32,
    /// Queue priority; higher goes first.
    pub priority: i32,
    /// When it was submitted (unix seconds).
    pub submitted_at: i64,
    /// How long it will hold its nodes once started, in seconds.
    pub duration_secs: i64,
}

/// Everything one pass looks at.
#[derive(Debug, Clone, Copy)]
pub struct PassInput<'a, Id> {
    /// The time of the pass (unix seconds).
    pub now: i64,
    /// Every node carrying a GPU type label (schedulable or not).
    pub nodes: &'a [NodeCapacity],
    /// Active and preparing reservations.
    pub running: &'a [Running],
    /// Queued reservations, in any order.
    pub queue: &'a [Pending<Id>],
    /// Each user's decayed GPU usage (see [`decayed_usage`]); absent users count as zero.
    pub usage: &'a BTreeMap<Username, f64>,
    /// Per-user limits.
    pub quotas: Quotas,
}

/// A reservation to start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission<Id> {
    /// Which reservation.
    pub reservation_id: Id,
    /// The nodes it is placed on (one, or the gang's nodes in name order). Its pod(s) must be
    /// pinned to them, or the plan the next pass builds on will not hold.
    pub node_names: Vec<String>,
}

/// Where a reservation that keeps waiting stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo<Id> {
    /// Which reservation.
    pub reservation_id: Id,
    /// 1-based place among the waiting reservations of its GPU type, in scheduling order.
    pub position: u32,
    /// When it is expected to start (unix seconds), or `None` when no start can be predicted.
    pub estimated_start: Option<i64>,
    /// Why it waits, when that is something other than plain lack of capacity, in words.
    pub blocked_reason: Option<String>,
}

/// A reservation that can never be admitted as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impossible<Id> {
    /// Which reservation.
    pub reservation_id: Id,
    /// Why, in words for the user.
    pub reason: String,
}

/// The result of one scheduling pass. Every queued reservation appears in exactly one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassOutcome<Id> {
    /// Reservations to start now, in scheduling order.
    pub admissions: Vec<Admission<Id>>,
    /// Reservations that keep waiting, in scheduling order.
    pub positions: Vec<QueueInfo<Id>>,
    /// Reservations to fail now, in scheduling order.
    pub impossible: Vec<Impossible<Id>>,
}

/// Slots one node of a reservation takes: its GPUs, or one slot for a CPU-only reservation.
fn slots(gpus_per_node: u32) -> i64 {
    i64::from(gpus_per_node.max(1))
}

/// A queued reservation with what the pass derives from it.
struct Job<'a, Id> {
    pending: &'a Pending<Id>,
    usage: f64,
    shape: Shape,
    gpus: i64,
}

impl<Id: Ord> Job<'_, Id> {
    /// Priority (higher first), fair share (less usage first), FIFO, id.
    fn order(&self, other: &Self) -> Ordering {
        let (a, b) = (self.pending, other.pending);
        b.priority
            .cmp(&a.priority)
            .then(self.usage.total_cmp(&other.usage))
            .then(a.submitted_at.cmp(&b.submitted_at))
            .then(a.reservation_id.cmp(&b.reservation_id))
    }
}

/// Runs one scheduling pass. See the module documentation for the policy.
pub fn schedule<Id: Clone + Ord>(input: &PassInput<'_, Id>) -> PassOutcome<Id> {
    let now = input.now;
    let mut pools = build_pools(input);
    let mut quotas = build_quotas(input);

    let mut jobs: Vec<Job<'_, Id>> = input
        .queue
        .iter()
        .map(|pending| {
            let nodes = pending.nodes.max(1);
            Job {
                pending,
                usage: input.usage.get(&pending.user).copied().unwrap_or(0.0),
                shape: Shape {
                    per_node: slots(pending.gpu_count.div_ceil(nodes)),
                    nodes,
                    duration: pending.duration_secs.max(1),
                },
                gpus: i64::from(pending.gpu_count),
            }
        })
        .collect();
    jobs.sort_by(Job::order);

    let mut outcome = PassOutcome {
        admissions: Vec::new(),
        positions: Vec::new(),
        impossible: Vec::new(),
    };
    let mut feasible = Vec::with_capacity(jobs.len());
    for job in jobs {
        let pool = pools.get(&job.pending.gpu_type);
        match never_fits(&job, pool, input.quotas) {
            Some(reason) => outcome.impossible.push(Impossible {
                reservation_id: job.pending.reservation_id.clone(),
                reason,
            }),
            None => feasible.push(job),
        }
    }
    let ordered = within_quota_first(feasible, input);

    let mut positions: HashMap<&GpuType, u32> = HashMap::new();
    for job in ordered {
        let Some(pool) = pools.get_mut(&job.pending.gpu_type) else {
            continue;
        };
        let quota = quotas.get_mut(&job.pending.user);
        let placed = place(&job, pool, quota.as_deref(), now);
        let blocked_reason = match &placed {
            Placement::Fits { start, .. } if *start == now => None,
            Placement::Fits { capacity_start, .. } | Placement::Never { capacity_start } => {
                let check_at = capacity_start.unwrap_or(now);
                quota
                    .as_deref()
                    .and_then(|q| {
                        q.blocking(
                            check_at,
                            check_at.saturating_add(job.shape.duration),
                            job.gpus,
                        )
                    })
                    .map(|limit| quota_reason(&job, limit))
                    .or_else(|| {
                        capacity_start
                            .is_none()
                            .then(|| no_estimate_reason(&job, pool))
                    })
            }
        };
        let estimated_start = match placed {
            Placement::Fits { start, nodes, .. } => {
                pool.reserve(job.shape, &nodes, start);
                if let Some(q) = quota {
                    q.reserve(start, start.saturating_add(job.shape.duration), job.gpus);
                }
                if start == now {
                    outcome.admissions.push(Admission {
                        reservation_id: job.pending.reservation_id.clone(),
                        node_names: nodes
                            .iter()
                            .filter_map(|&i| pool.nodes.get(i).map(|n| n.name.to_owned()))
                            .collect(),
                    });
                    continue;
                }
                Some(start)
            }
            Placement::Never { .. } => None,
        };
        let position = positions.entry(&job.pending.gpu_type).or_insert(0);
        *position += 1;
        outcome.positions.push(QueueInfo {
            reservation_id: job.pending.reservation_id.clone(),
            position: *position,
            estimated_start,
            blocked_reason,
        });
    }
    outcome
}

/// The nodes of each GPU type with their availability profiles.
fn build_pools<'a, Id>(input: &PassInput<'a, Id>) -> BTreeMap<&'a GpuType, Pool<'a>> {
    let mut sorted: Vec<&NodeCapacity> = input.nodes.iter().collect();
    // Every field takes part so that even duplicate names come out in one order.
    fn key(n: &NodeCapacity) -> (&GpuType, &str, u32, u32, bool) {
        (
            &n.gpu_type,
            &n.name,
            n.slots_total,
            n.slots_free,
            n.schedulable,
        )
    }
    sorted.sort_by(|a, b| key(a).cmp(&key(b)));
    sorted.dedup_by(|a, b| a.name == b.name && a.gpu_type == b.gpu_type);

    let index: HashMap<&str, usize> = sorted
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let mut releases: Vec<Vec<(i64, i64)>> = vec![Vec::new(); sorted.len()];
    for running in input.running {
        for name in &running.node_names {
            if let Some(&i) = index.get(name.as_str()) {
                releases[i].push((running.expires_at, slots(running.gpus_per_node)));
            }
        }
    }

    let mut pools: BTreeMap<&GpuType, Vec<NodeState<'a>>> = BTreeMap::new();
    for (node, events) in sorted.into_iter().zip(releases) {
        let cap = i64::from(node.slots_total);
        let profile = Profile::from_events(input.now, i64::from(node.slots_free), events, cap);
        pools
            .entry(&node.gpu_type)
            .or_default()
            .push(NodeState::new(&node.name, cap, node.schedulable, profile));
    }
    pools
        .into_iter()
        .map(|(gpu_type, nodes)| (gpu_type, Pool::new(nodes)))
        .collect()
}

/// A quota profile for each queued user, when any limit is set.
fn build_quotas<'a, Id>(input: &PassInput<'a, Id>) -> BTreeMap<&'a Username, UserQuota> {
    let quotas = input.quotas;
    if quotas.max_active_reservations_per_user.is_none() && quotas.max_gpus_per_user.is_none() {
        return BTreeMap::new();
    }
    let mut holdings: BTreeMap<&Username, Holdings> = input
        .queue
        .iter()
        .map(|p| (&p.user, Holdings::new()))
        .collect();
    for running in input.running {
        if let Some(held) = holdings.get_mut(&running.user) {
            let nodes = i64::try_from(running.node_names.len().max(1)).unwrap_or(i64::MAX);
            let gpus = i64::from(running.gpus_per_node).saturating_mul(nodes);
            held.push((running.expires_at, gpus));
        }
    }
    holdings
        .into_iter()
        .map(|(user, held)| (user, UserQuota::new(quotas, input.now, &held)))
        .collect()
}

/// Why a reservation can never be admitted, if it cannot.
fn never_fits<Id>(job: &Job<'_, Id>, pool: Option<&Pool<'_>>, quotas: Quotas) -> Option<String> {
    let p = job.pending;
    let Some(pool) = pool else {
        return Some(format!("the cluster has no {} nodes", p.gpu_type));
    };
    let need = job.shape.per_node;
    let what = if p.gpu_count == 0 {
        "a reservation slot".to_owned()
    } else {
        format!("{need} GPUs")
    };
    if job.shape.nodes == 1 {
        let largest = pool.nodes.iter().map(|n| n.cap).max().unwrap_or(0);
        if largest < need {
            return Some(format!(
                "needs {what} on one node, but the largest {} node has {largest}",
                p.gpu_type
            ));
        }
    } else {
        let big_enough = pool.nodes.iter().filter(|n| n.cap >= need).count();
        if big_enough < usize::try_from(job.shape.nodes).unwrap_or(usize::MAX) {
            return Some(format!(
                "needs {} whole {} nodes with {what} each, but the cluster has {big_enough}",
                job.shape.nodes, p.gpu_type
            ));
        }
    }
    if quotas.max_active_reservations_per_user == Some(0) {
        return Some("the per-user limit of active reservations is 0".to_owned());
    }
    if let Some(max) = quotas.max_gpus_per_user
        && p.gpu_count > max
    {
        return Some(format!(
            "needs {} GPUs, more than the per-user limit of {max}",
            p.gpu_count
        ));
    }
    None
}

/// Puts the reservations whose users stay within quota — counting what each user holds now and
/// their reservations ahead in the queue — first, keeping the order within both groups.
fn within_quota_first<'a, Id>(
    jobs: Vec<Job<'a, Id>>,
    input: &PassInput<'_, Id>,
) -> Vec<Job<'a, Id>> {
    let quotas = input.quotas;
    if quotas.max_active_reservations_per_user.is_none() && quotas.max_gpus_per_user.is_none() {
        return jobs;
    }
    let mut held: HashMap<&Username, (i64, i64)> = HashMap::new();
    for running in input.running {
        let entry = held.entry(&running.user).or_default();
        let nodes = i64::try_from(running.node_names.len().max(1)).unwrap_or(i64::MAX);
        entry.0 += 1;
        entry.1 += i64::from(running.gpus_per_node).saturating_mul(nodes);
    }
    let max_count = quotas.max_active_reservations_per_user.map(i64::from);
    let max_gpus = quotas.max_gpus_per_user.map(i64::from);
    let (mut within, mut over) = (Vec::new(), Vec::new());
    for job in jobs {
        let (count, gpus) = held.get(&job.pending.user).copied().unwrap_or_default();
        let count_ok = max_count.is_none_or(|m| count < m);
        let gpus_ok = job.gpus == 0 || max_gpus.is_none_or(|m| gpus + job.gpus <= m);
        if count_ok && gpus_ok {
            let entry = held.entry(&job.pending.user).or_default();
            entry.0 += 1;
            entry.1 += job.gpus;
            within.push(job);
        } else {
            over.push(job);
        }
    }
    within.extend(over);
    within
}

/// Where a reservation lands on the timeline.
enum Placement {
    /// It can start at `start` on `nodes`; the nodes alone would allow `capacity_start`.
    Fits {
        start: i64,
        nodes: Vec<usize>,
        capacity_start: Option<i64>,
    },
    /// No start can be predicted; `capacity_start` is what the nodes alone would allow.
    Never { capacity_start: Option<i64> },
}

/// The earliest start that both the nodes and the user's quota allow.
fn place<Id>(
    job: &Job<'_, Id>,
    pool: &mut Pool<'_>,
    quota: Option<&UserQuota>,
    now: i64,
) -> Placement {
    let from = pool.lower_bound(job.shape, now);
    let mut found = pool.earliest(job.shape, from);
    let capacity_start = found.as_ref().map(|(t, _)| *t);
    if let Some(t) = capacity_start {
        pool.record_bound(job.shape, t);
    }
    // Alternate between the two constraints; each step moves to a later step of one profile,
    // so this ends.
    loop {
        let Some((start, nodes)) = found else {
            return Placement::Never { capacity_start };
        };
        let allowed = match quota {
            None => Some(start),
            Some(q) => q.earliest(start, job.gpus, job.shape.duration),
        };
        match allowed {
            Some(t) if t == start => {
                return Placement::Fits {
                    start,
                    nodes,
                    capacity_start,
                };
            }
            Some(t) => found = pool.earliest(job.shape, t),
            None => return Placement::Never { capacity_start },
        }
    }
}

fn quota_reason<Id>(job: &Job<'_, Id>, limit: Limit) -> String {
    let user = &job.pending.user;
    match limit {
        Limit::Reservations(max) => {
            format!("waiting for quota: {user} may hold at most {max} reservations at once")
        }
        Limit::Gpus(max) => format!(
            "waiting for quota: {user} may hold at most {max} GPUs at once and this reservation \
             needs {}",
            job.gpus
        ),
    }
}

fn no_estimate_reason<Id>(job: &Job<'_, Id>, pool: &Pool<'_>) -> String {
    let need = job.shape.per_node;
    let could_hold = pool.nodes.iter().filter(|n| n.cap >= need).count();
    let schedulable = pool
        .nodes
        .iter()
        .filter(|n| n.cap >= need && n.schedulable)
        .count();
    let needed = usize::try_from(job.shape.nodes).unwrap_or(usize::MAX);
    if schedulable < needed {
        format!(
            "waiting for {} nodes: only {schedulable} of the {could_hold} that could hold it \
             are ready and schedulable",
            job.pending.gpu_type
        )
    } else {
        "no start can be predicted: the capacity it needs is held by work with no known end"
            .to_owned()
    }
}
