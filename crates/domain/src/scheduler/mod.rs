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
//! Every queued reservation carries a fair-share *tag*, given by the first pass that sees it
//! and never changed (start-time fair queueing over booked slot-seconds, see `fair_queue.rs`):
//! a user's requests queue behind their own earlier ones by what those booked, and a user with
//! no live work of the type starts level with everyone else — behind by at most one request's
//! worth of their decayed past use ([`decayed_usage`]). The order is priority (higher first),
//! then the *key* `tag + aging × slots of the type × submitted_at` (so a fair-share lead of `h`
//! hours of the whole pool delays a request by at most `h` hours against first come, first
//! served), then FIFO, then reservation id: total, deterministic, and — since tags are fixed —
//! the same from pass to pass except where new requests come in.
//!
//! Walking each user's reservations in that order, one that would put its user over a
//! [`Quotas`] limit — counting what the user holds now and the user's reservations before it in
//! the queue — moves behind every reservation that is within quota. So a user at their limit
//! never holds anyone else back.
//!
//! # Promises
//!
//! A waiting reservation is *promised* its planned start and nodes when that start is within
//! the promise horizon, or when no later request can ever be ordered ahead of it (its key is
//! at most `v + aging × slots × now`, where `v`, the type's virtual time, is the smallest tag
//! still waiting: every new tag is at least `v`, and ties go to the earlier submission). Each
//! pass first puts every promise back exactly as made (same nodes, same start), then moves each
//! one earlier where released capacity allows — in promise order, each search seeing every
//! other promise in place, so none moves another later — and only then places the rest in fair
//! order around them. A promise is therefore never moved later by a new request, a change of
//! usage or an admin's priority; only by losing what it was built on: a node that is gone or
//! no longer schedulable, a reservation on its nodes running past its expected end or
//! extended, work outside gpudev, or its owner's quota. Such a promise is placed again and the
//! outcome says why ([`QueueInfo::promise_moved`]).
//!
//! # Bookings
//!
//! A *booking* is a queued reservation with a booked start ([`Pending::start_at`]). It is a
//! promise fixed at that time: the first pass that sees it places it at its booked start (or,
//! if its capacity is taken then, as soon after as it is free, saying why), on the nodes that
//! allow it, right after the promises of earlier passes are put back and *before* any promise
//! is moved earlier and before anything else is placed. So nothing placed after it — queued
//! work admitted now, promises moving up, later requests — can overlap its slots: other work
//! is backfilled around it only where it ends in time or uses slots it does not need. Later
//! passes keep it like any promise, but never move it before its booked start; once that has
//! come it is admitted as soon as its nodes are free and Ready. Bookings are placed in the
//! order of their booked starts. A booking is tagged like any reservation, so what it books
//! counts in its owner's fair share at once, but it does not hold its type's virtual time back
//! while it waits for its time.
//!
//! # Conservative backfill
//!
//! After the promises, the pass walks the ordered queue once and gives *every* other
//! reservation a place on the timeline, as Slurm does with conservative backfill:
//!
//! 1. its earliest start is the first time `t >= now` at which its slots are free for its whole
//!    duration `[t, t + duration)` in the profiles as they stand, *and* its user's quota has room
//!    for it over the same interval (quotas are a per-user profile of the same kind: what the
//!    user holds, releasing at each `expires_at`);
//! 2. its slots are taken from those profiles over `[t, t + duration)` — on the chosen node(s)
//!    and in the user's quota; here, and in step 1, `duration` includes the policy's release
//!    delay ([`QueuePolicy::release_delay_secs`]), since once running the reservation holds its
//!    nodes that much past its end;
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
//! (with its nodes and tag), still waiting (with its tag, its 1-based position among the
//! *waiting* reservations of its GPU type — promised ones first —, its estimated start, its
//! promise if it has one and, when it is held back by its user's quota or by missing nodes, the
//! reason), or impossible (with the reason). The outcome also carries each type's virtual time
//! for the next pass. The caller stores tags, promises and clocks and passes them back.
//!
//! # What the caller must pass
//!
//! * `slots_free` of each node must already exclude reservations admitted by an earlier pass
//!   whose pods are not yet counted on the node, and each admitted pod must be pinned to the
//!   node it was given; otherwise the next pass plans on GPUs that are already promised.
//! * `running` lists every active and preparing reservation (a preparing one with its
//!   expected end) with the tag it was admitted with, so releases, per-user quotas and
//!   fair-share finish tags are known. Its `expires_at` should be when its nodes are really
//!   released (the expiry job's grace and interval included), or promises made on it will be
//!   moved when it runs over.
//! * `queue` carries each reservation's tag and promise from the last pass, and `clocks` the
//!   last pass's [`PassOutcome::clocks`].
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

mod fair_queue;
mod fair_share;
mod pool;
mod profile;
mod quota;
mod state;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

pub use fair_share::{UsageRecord, decayed_usage};
pub use quota::Quotas;
pub use state::{Bookable, Prediction, QueueState, ReservationKey};

use crate::gpu::GpuType;
use crate::username::Username;
use pool::{NodeState, Pool, Shape};
use profile::Profile;
use quota::{Holdings, Limit, UserQuota};

/// One node that carries a GPU type label, with its capacity now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Running {
    /// Its owner (counts against the owner's quota).
    pub user: Username,
    /// Its GPU type.
    pub gpu_type: GpuType,
    /// Its fair-share tag, from the pass that admitted it (`None` for one admitted before tags
    /// existed: it then costs its owner no share).
    pub tag: Option<f64>,
    /// Its booked duration in seconds, extensions included (its fair-share cost).
    pub booked_secs: i64,
    /// GPUs it holds on each of its nodes (0 for a CPU-only reservation, which holds one slot
    /// per node).
    pub gpus_per_node: u32,
    /// The nodes it runs on.
    pub node_names: Vec<String>,
    /// When it releases its nodes (unix seconds). For a reservation still preparing, pass when
    /// it is expected to end (admission time plus duration).
    pub expires_at: i64,
}

/// A start promised to a waiting reservation by an earlier pass, kept from pass to pass.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Promise {
    /// The promised start (unix seconds).
    pub start: i64,
    /// The nodes it will start on (one, or the gang's nodes in name order).
    pub node_names: Vec<String>,
}

/// A queued reservation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// Its fair-share tag from an earlier pass, or `None` if this pass sees it first.
    pub tag: Option<f64>,
    /// The start an earlier pass promised it, if any.
    pub promise: Option<Promise>,
    /// For a booking, the start its owner booked (unix seconds): it is placed at that time and
    /// never earlier (see *Bookings* in the module documentation). `None` for a reservation
    /// that starts as soon as it can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<i64>,
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
    /// Each GPU type's fair-share virtual time from the last pass (absent: 0).
    pub clocks: &'a BTreeMap<GpuType, f64>,
    /// How promises are made and how waiting ages.
    pub policy: QueuePolicy,
}

/// The settings of the queue's policy.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QueuePolicy {
    /// A waiting reservation whose planned start is at most this many seconds away is
    /// promised that start; later ones get an estimate that a new request with a smaller key
    /// may still move (unless no request can ever come before them: those are promised too).
    pub promise_horizon_secs: i64,
    /// Aging: a reservation submitted one second earlier than another is ordered as if its tag
    /// were `aging` × (the type's total slots) smaller. With 1.0, a lead in fair-share tags
    /// worth `h` hours of the whole pool delays a reservation by at most `h` hours compared
    /// with first come, first served. 0 turns aging off (pure fair share).
    pub aging: f64,
    /// How long after its end a reservation's nodes are really free (the expiry job's grace
    /// and interval): every reservation placed on the timeline holds its nodes this much longer
    /// than it lasts, as it will once it runs (running ones are passed with it already in their
    /// `expires_at`), so work promised or booked right after it is not moved when it starts.
    #[serde(default)]
    pub release_delay_secs: i64,
}

/// A reservation to start now.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission<Id> {
    /// Which reservation.
    pub reservation_id: Id,
    /// Its fair-share tag (kept while it runs: it counts toward its owner's share).
    pub tag: f64,
    /// The nodes it is placed on (one, or the gang's nodes in name order). Its pod(s) must be
    /// pinned to them, or the plan the next pass builds on will not hold.
    pub node_names: Vec<String>,
}

/// Where a reservation that keeps waiting stands.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueInfo<Id> {
    /// Which reservation.
    pub reservation_id: Id,
    /// Its fair-share tag.
    pub tag: f64,
    /// Its promise, when its start is promised (`estimated_start` is then the promised start).
    pub promise: Option<Promise>,
    /// Why an earlier promise could not be kept, when this pass had to move it later.
    pub promise_moved: Option<String>,
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
#[derive(Debug, Clone, PartialEq)]
pub struct PassOutcome<Id> {
    /// Each GPU type's virtual time for the next pass.
    pub clocks: BTreeMap<GpuType, f64>,
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
    shape: Shape,
    gpus: i64,
    tag: f64,
    /// The fair-order key: the tag plus the aging credit of its submission time.
    key: f64,
}

impl<Id: Ord> Job<'_, Id> {
    /// Priority (higher first), fair-share tag, FIFO, id.
    fn order(&self, other: &Self) -> Ordering {
        let (a, b) = (self.pending, other.pending);
        b.priority
            .cmp(&a.priority)
            .then(self.key.total_cmp(&other.key))
            .then(a.submitted_at.cmp(&b.submitted_at))
            .then(a.reservation_id.cmp(&b.reservation_id))
    }

    /// Bookings are placed in the order of their booked starts, then first come, first served.
    fn booking_order(&self, other: &Self) -> Ordering {
        let (a, b) = (self.pending, other.pending);
        a.start_at
            .cmp(&b.start_at)
            .then(a.submitted_at.cmp(&b.submitted_at))
            .then(a.reservation_id.cmp(&b.reservation_id))
    }

    /// The earliest start this reservation may be placed at: its booked start for a booking
    /// (or now, once that has passed), now for everything else.
    fn floor(&self, now: i64) -> i64 {
        self.pending.start_at.map_or(now, |s| s.max(now))
    }

    /// Promised reservations keep their places: priority, promised start, tag, id.
    fn promise_order(&self, other: &Self) -> Ordering {
        let start = |j: &Self| j.pending.promise.as_ref().map_or(i64::MAX, |p| p.start);
        other
            .pending
            .priority
            .cmp(&self.pending.priority)
            .then(start(self).cmp(&start(other)))
            .then(self.tag.total_cmp(&other.tag))
            .then(
                self.pending
                    .reservation_id
                    .cmp(&other.pending.reservation_id),
            )
    }
}

/// Runs one scheduling pass. See the module documentation for the policy.
pub fn schedule<Id: Clone + Ord>(input: &PassInput<'_, Id>) -> PassOutcome<Id> {
    run_pass(input, None)
}

/// A pass that stops once `stop` is placed, when given: everything after it in the order cannot
/// change its fate, so a prediction for one reservation need not place them.
fn run_pass<Id: Clone + Ord>(input: &PassInput<'_, Id>, stop: Option<&Id>) -> PassOutcome<Id> {
    let mut pass = Pass {
        now: input.now,
        horizon: input.policy.promise_horizon_secs.max(0),
        pools: build_pools(input),
        quotas: build_quotas(input),
        outcome: PassOutcome {
            clocks: BTreeMap::new(),
            admissions: Vec::new(),
            positions: Vec::new(),
            impossible: Vec::new(),
        },
        positions: HashMap::new(),
        firm_line: input
            .queue
            .iter()
            .map(|p| {
                let v = input.clocks.get(&p.gpu_type).copied().unwrap_or(0.0);
                let line = v + aging_rate(input, &p.gpu_type) * input.now as f64;
                (&p.gpu_type, line)
            })
            .collect(),
        waiting_min: BTreeMap::new(),
        admitted_max: BTreeMap::new(),
    };
    let jobs = tagged_jobs(input);

    let mut feasible = Vec::with_capacity(jobs.len());
    for job in jobs {
        let pool = pass.pools.get(&job.pending.gpu_type);
        match never_fits(&job, pool, input.quotas) {
            Some(reason) => pass.outcome.impossible.push(Impossible {
                reservation_id: job.pending.reservation_id.clone(),
                reason,
            }),
            None => feasible.push(job),
        }
    }
    // Promises of earlier passes first, in promise order; then everything else in fair order
    // (priority first, so an admin's request goes before every reservation without a promise).
    let (mut promised, rest): (Vec<_>, Vec<_>) = feasible
        .into_iter()
        .partition(|j| j.pending.promise.is_some());
    promised.sort_by(Job::promise_order);

    let mut kept = Vec::new();
    let mut moved = Vec::new();
    for job in promised {
        match pass.keep(&job) {
            Ok(nodes) => kept.push((job, nodes)),
            Err(reason) => moved.push((job, reason)),
        }
    }
    // New bookings take their booked start next, before any promise moves earlier into the
    // room they need: nothing placed after them may overlap them.
    let (mut bookings, rest): (Vec<_>, Vec<_>) =
        rest.into_iter().partition(|j| j.pending.start_at.is_some());
    bookings.sort_by(Job::booking_order);
    for job in bookings {
        pass.place_new(&job, None);
        if stop == Some(&job.pending.reservation_id) {
            return pass.finish(input);
        }
    }
    // Released capacity (an early end, a node back) lets promises move earlier, in promise
    // order; each search sees every other promise in place, so none moves another later.
    for (job, nodes) in kept {
        pass.compress(&job, nodes);
    }
    // Compression gave capacity back, so what earlier searches learnt no longer bounds later
    // ones.
    for pool in pass.pools.values_mut() {
        pool.clear_bounds();
    }
    for (job, reason) in moved {
        pass.place_new(&job, Some(reason));
    }
    for job in within_quota_first(rest, input) {
        pass.place_new(&job, None);
        if stop == Some(&job.pending.reservation_id) {
            break;
        }
    }
    pass.finish(input)
}

/// The queue as jobs, sorted in fair order, each with its tag (new ones get theirs here).
fn tagged_jobs<'a, Id: Ord>(input: &PassInput<'a, Id>) -> Vec<Job<'a, Id>> {
    let mut finishes = fair_queue::Finishes::default();
    for r in input.running {
        if let Some(tag) = r.tag {
            let nodes = u32::try_from(r.node_names.len().max(1)).unwrap_or(u32::MAX);
            let cost = fair_queue::cost(slots(r.gpus_per_node), nodes, r.booked_secs);
            finishes.record(&r.gpu_type, &r.user, tag + cost);
        }
    }
    let hold = input.policy.release_delay_secs.max(0);
    let shape_of = |p: &Pending<Id>| {
        let nodes = p.nodes.max(1);
        Shape {
            per_node: slots(p.gpu_count.div_ceil(nodes)),
            nodes,
            duration: p.duration_secs.max(1).saturating_add(hold),
        }
    };
    // What it books costs share; the release delay after it does not.
    let cost_of = |p: &Pending<Id>| {
        let shape = shape_of(p);
        fair_queue::cost(shape.per_node, shape.nodes, p.duration_secs.max(1))
    };
    for p in input.queue {
        if let Some(tag) = p.tag {
            finishes.record(&p.gpu_type, &p.user, tag + cost_of(p));
        }
    }
    // New requests are tagged in submission order, each behind its owner's earlier ones.
    let mut new: Vec<&Pending<Id>> = input.queue.iter().filter(|p| p.tag.is_none()).collect();
    new.sort_by(|a, b| {
        (a.submitted_at, &a.reservation_id).cmp(&(b.submitted_at, &b.reservation_id))
    });
    let mut assigned: BTreeMap<&Id, f64> = BTreeMap::new();
    for p in new {
        let v = input.clocks.get(&p.gpu_type).copied().unwrap_or(0.0);
        let cost = cost_of(p);
        let history = input.usage.get(&p.user).copied().unwrap_or(0.0);
        assigned.insert(
            &p.reservation_id,
            finishes.assign(&p.gpu_type, &p.user, v, cost, history),
        );
    }
    let rates: BTreeMap<&GpuType, f64> = input
        .queue
        .iter()
        .map(|p| (&p.gpu_type, aging_rate(input, &p.gpu_type)))
        .collect();
    let mut jobs: Vec<Job<'a, Id>> = input
        .queue
        .iter()
        .map(|pending| {
            let tag = pending
                .tag
                .or_else(|| assigned.get(&pending.reservation_id).copied())
                .unwrap_or(0.0);
            Job {
                pending,
                shape: shape_of(pending),
                gpus: i64::from(pending.gpu_count),
                tag,
                key: tag + rates[&pending.gpu_type] * pending.submitted_at as f64,
            }
        })
        .collect();
    jobs.sort_by(Job::order);
    jobs
}

/// Tag units (slot-seconds) one second of waiting is worth for a reservation of `gpu_type`.
fn aging_rate<Id>(input: &PassInput<'_, Id>, gpu_type: &GpuType) -> f64 {
    let slots: u64 = input
        .nodes
        .iter()
        .filter(|n| &n.gpu_type == gpu_type)
        .map(|n| u64::from(n.slots_total))
        .sum();
    input.policy.aging * slots as f64
}

/// The state of one pass while it places reservations.
struct Pass<'a, Id> {
    now: i64,
    horizon: i64,
    pools: BTreeMap<&'a GpuType, Pool<'a>>,
    quotas: BTreeMap<&'a Username, UserQuota>,
    outcome: PassOutcome<Id>,
    positions: HashMap<&'a GpuType, u32>,
    /// Per type, the largest key no later request can be ordered ahead of: `v + aging × now`.
    firm_line: BTreeMap<&'a GpuType, f64>,
    /// Per type, the smallest tag still waiting and the largest tag admitted in this pass.
    waiting_min: BTreeMap<&'a GpuType, f64>,
    admitted_max: BTreeMap<&'a GpuType, f64>,
}

impl<'a, Id: Clone + Ord> Pass<'a, Id> {
    /// The outcome, with the clocks the next pass starts from.
    fn finish(self, input: &PassInput<'_, Id>) -> PassOutcome<Id> {
        let mut outcome = self.outcome;
        outcome.clocks =
            fair_queue::advance_clocks(input.clocks, &self.waiting_min, &self.admitted_max);
        outcome
    }

    /// Places a reservation that has no promise to keep (or one whose promise was lost, with
    /// the reason): admitted if it can start now; promised if its start is within the horizon
    /// or no later request can be ordered ahead of it. A booking is placed at its booked start
    /// or as soon after as its capacity allows, and is always promised.
    fn place_new(&mut self, job: &Job<'a, Id>, moved: Option<String>) {
        let now = self.now;
        let Some(pool) = self.pools.get_mut(&job.pending.gpu_type) else {
            return;
        };
        let quota = self.quotas.get_mut(&job.pending.user);
        let booked = job.pending.start_at.map(|_| job.floor(now));
        let placed = match booked {
            Some(from) => place_from(job, pool, quota.as_deref(), from),
            None => place(job, pool, quota.as_deref(), now),
        };
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
                    .map(|limit| quota_reason(job, limit))
                    .or_else(|| {
                        capacity_start
                            .is_none()
                            .then(|| no_estimate_reason(job, pool))
                    })
            }
        };
        let blocked_reason = match (&placed, booked) {
            (Placement::Fits { start, .. }, Some(from)) if *start > from => {
                blocked_reason.or_else(|| Some(LATE_BOOKING.to_owned()))
            }
            _ => blocked_reason,
        };
        match placed {
            Placement::Fits { start, nodes, .. } => {
                pool.reserve(job.shape, &nodes, start);
                if let Some(q) = quota {
                    q.reserve(start, start.saturating_add(job.shape.duration), job.gpus);
                }
                let names = node_names(pool, &nodes);
                let firm = self
                    .firm_line
                    .get(&job.pending.gpu_type)
                    .is_some_and(|line| job.key <= *line);
                let promised =
                    firm || booked.is_some() || start <= now.saturating_add(self.horizon);
                self.settle_with(job, start, names, promised, blocked_reason, moved);
            }
            Placement::Never { .. } => self.wait(job, None, None, blocked_reason, moved),
        }
    }

    /// Puts a promise back on the timeline exactly as it was made: the same nodes from the same
    /// start (or from now, if that has passed). Fails with the reason when that no longer fits.
    fn keep(&mut self, job: &Job<'a, Id>) -> Result<Vec<usize>, String> {
        let Some(promise) = &job.pending.promise else {
            return Err("it had no promise".to_owned());
        };
        let start = promise.start.max(self.now);
        let end = start.saturating_add(job.shape.duration);
        let Some(pool) = self.pools.get_mut(&job.pending.gpu_type) else {
            return Err(format!("the cluster has no {} nodes", job.pending.gpu_type));
        };
        let mut nodes = Vec::with_capacity(promise.node_names.len());
        for name in &promise.node_names {
            match pool.index_of(name) {
                Some(i) if pool.nodes[i].schedulable => nodes.push(i),
                _ => return Err(format!("node {name} is no longer available")),
            }
        }
        if nodes.len() != usize::try_from(job.shape.nodes).unwrap_or(usize::MAX) {
            return Err("its request no longer matches its promised nodes".to_owned());
        }
        if !pool.fits(job.shape, &nodes, start) {
            return Err(
                "the capacity promised to it is not free: a reservation on its nodes is running \
                 past its expected end or was extended, or work outside gpudev took it"
                    .to_owned(),
            );
        }
        let quota = self.quotas.get_mut(&job.pending.user);
        if let Some(q) = &quota
            && let Some(limit) = q.blocking(start, end, job.gpus)
        {
            return Err(quota_reason(job, limit));
        }
        pool.reserve(job.shape, &nodes, start);
        if let Some(q) = quota {
            q.reserve(start, end, job.gpus);
        }
        Ok(nodes)
    }

    /// Moves a kept promise earlier when capacity allows it, without moving any other later,
    /// and never before a booking's booked start.
    fn compress(&mut self, job: &Job<'a, Id>, nodes: Vec<usize>) {
        let now = self.now;
        let floor = job.floor(now);
        let promised_start = job
            .pending
            .promise
            .as_ref()
            .map_or(now, |p| p.start.max(now));
        let Some(pool) = self.pools.get_mut(&job.pending.gpu_type) else {
            return;
        };
        let mut quota = self.quotas.get_mut(&job.pending.user);
        let end = promised_start.saturating_add(job.shape.duration);
        let (mut start, mut chosen) = (promised_start, nodes);
        if promised_start > floor {
            pool.release(job.shape, &chosen, promised_start);
            if let Some(q) = quota.as_deref_mut() {
                q.release(promised_start, end, job.gpus);
            }
            if let Placement::Fits {
                start: better,
                nodes: better_nodes,
                ..
            } = place_from(job, pool, quota.as_deref(), floor)
                && better < promised_start
            {
                start = better;
                chosen = better_nodes;
            }
            pool.reserve(job.shape, &chosen, start);
            if let Some(q) = quota {
                q.reserve(start, start.saturating_add(job.shape.duration), job.gpus);
            }
        }
        let names = node_names(pool, &chosen);
        self.settle(job, start, names, true);
    }

    /// Records a placed reservation: admitted when it starts now, waiting otherwise (promised
    /// when `promised`).
    fn settle(&mut self, job: &Job<'a, Id>, start: i64, nodes: Vec<String>, promised: bool) {
        self.settle_with(job, start, nodes, promised, None, None);
    }

    fn settle_with(
        &mut self,
        job: &Job<'a, Id>,
        start: i64,
        node_names: Vec<String>,
        promised: bool,
        blocked_reason: Option<String>,
        moved: Option<String>,
    ) {
        if start == self.now {
            let max = self
                .admitted_max
                .entry(&job.pending.gpu_type)
                .or_insert(job.tag);
            *max = max.max(job.tag);
            self.outcome.admissions.push(Admission {
                reservation_id: job.pending.reservation_id.clone(),
                tag: job.tag,
                node_names,
            });
            return;
        }
        let promise = promised.then_some(Promise { start, node_names });
        self.wait(job, Some(start), promise, blocked_reason, moved);
    }

    fn wait(
        &mut self,
        job: &Job<'a, Id>,
        estimated_start: Option<i64>,
        promise: Option<Promise>,
        blocked_reason: Option<String>,
        promise_moved: Option<String>,
    ) {
        // A booking waits for its time, not for its turn: it does not hold the virtual time
        // back, or every request submitted before it starts would be tagged as of its
        // submission.
        if job.pending.start_at.is_none() {
            let min = self
                .waiting_min
                .entry(&job.pending.gpu_type)
                .or_insert(job.tag);
            *min = min.min(job.tag);
        }
        let position = self.positions.entry(&job.pending.gpu_type).or_insert(0);
        *position += 1;
        self.outcome.positions.push(QueueInfo {
            reservation_id: job.pending.reservation_id.clone(),
            tag: job.tag,
            position: *position,
            estimated_start,
            blocked_reason,
            promise,
            promise_moved,
        });
    }
}

/// Why a booking waits past its booked start.
const LATE_BOOKING: &str = "its booked start cannot be honoured: the capacity it needs is \
                            taken then (a node it was to use is gone or work on it runs late)";

fn node_names(pool: &Pool<'_>, nodes: &[usize]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|&i| pool.nodes.get(i).map(|n| n.name.to_owned()))
        .collect()
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

/// The earliest start that both the nodes and the user's quota allow, searching from the
/// pool's lower bound for the shape and recording what the nodes alone allow.
fn place<Id>(
    job: &Job<'_, Id>,
    pool: &mut Pool<'_>,
    quota: Option<&UserQuota>,
    now: i64,
) -> Placement {
    let from = pool.lower_bound(job.shape, now);
    let found = pool.earliest(job.shape, from);
    if let Some((t, _)) = &found {
        pool.record_bound(job.shape, *t);
    }
    resolve(job, pool, quota, found)
}

/// The earliest start at or after `from`, without lower bounds (for a pool whose capacity was
/// given back during the pass).
fn place_from<Id>(
    job: &Job<'_, Id>,
    pool: &Pool<'_>,
    quota: Option<&UserQuota>,
    from: i64,
) -> Placement {
    let found = pool.earliest(job.shape, from);
    resolve(job, pool, quota, found)
}

/// Moves the nodes' earliest start `found` later until the user's quota also allows it.
fn resolve<Id>(
    job: &Job<'_, Id>,
    pool: &Pool<'_>,
    quota: Option<&UserQuota>,
    mut found: Option<(i64, Vec<usize>)>,
) -> Placement {
    let capacity_start = found.as_ref().map(|(t, _)| *t);
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
