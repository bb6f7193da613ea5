//! The queue as a pass leaves it, and what the next pass would do with one more request: the
//! submit answer comes from the scheduler's own code over this state, not from a second model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    NodeCapacity, PassInput, PassOutcome, Pending, QueuePolicy, Quotas, Running, run_pass, slots,
};
use crate::gpu::GpuType;
use crate::username::Username;

/// A reservation's identity in the queue: the id breaks the last tie of the order, so putting
/// the submission time in microseconds first keeps first come, first served exact among
/// reservations submitted within the same second (the policy itself counts seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReservationKey {
    /// Submission time, unix microseconds.
    pub submitted_micros: i64,
    /// The reservation id.
    pub id: Uuid,
}

/// Everything the next pass starts from, as of the pass at `taken_at`: the nodes and running
/// reservations with this pass's admissions in place, the waiting reservations with their tags
/// and promises, and the clocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueState<Id> {
    /// When the pass ran (unix seconds).
    pub taken_at: i64,
    /// Every node with a GPU type label.
    pub nodes: Vec<NodeCapacity>,
    /// Active and preparing reservations.
    pub running: Vec<Running>,
    /// Reservations still waiting.
    pub queue: Vec<Pending<Id>>,
    /// Each user's decayed GPU usage.
    pub usage: BTreeMap<Username, f64>,
    /// Per-user limits.
    pub quotas: Quotas,
    /// Each GPU type's virtual time.
    pub clocks: BTreeMap<GpuType, f64>,
    /// Horizon and aging.
    pub policy: QueuePolicy,
}

/// What could be booked on one GPU type from a given start (see [`QueueState::bookable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bookable {
    /// The most slots (GPUs, or reservation slots on a CPU-only type) one single-node booking
    /// could have; 0 when none could be honoured.
    pub slots_on_one_node: u32,
    /// The most whole nodes one multi-node booking could take together (0 when not even two
    /// could, or the type is not multi-node).
    pub whole_nodes: u32,
}

/// What the next pass would do with a new request, nothing else changing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prediction {
    /// It starts at the next pass.
    StartsNow,
    /// It waits: its 1-based place among the waiting reservations of its type, its estimated
    /// start (none when no start can be predicted) and whether that start is promised.
    Waits {
        /// 1-based place among the waiting reservations of its type.
        position: u32,
        /// Estimated start, unix seconds.
        estimated_start: Option<i64>,
        /// Whether the estimate is a promise.
        promised: bool,
    },
    /// It can never run as asked, for this reason.
    Impossible(String),
}

impl<Id: Clone + Ord> QueueState<Id> {
    /// The state a pass over `input` that decided `outcome` leaves. Admitted reservations hold
    /// their nodes from the pass for their duration plus `release_delay_secs`, as the next pass
    /// will count them.
    pub fn after(
        input: &PassInput<'_, Id>,
        outcome: &PassOutcome<Id>,
        release_delay_secs: i64,
    ) -> Self {
        let by_id: BTreeMap<&Id, &Pending<Id>> =
            input.queue.iter().map(|p| (&p.reservation_id, p)).collect();
        let mut nodes = input.nodes.to_vec();
        let mut running = input.running.to_vec();
        for a in &outcome.admissions {
            let Some(p) = by_id.get(&a.reservation_id) else {
                continue;
            };
            let per_node = p.gpu_count / p.nodes.max(1);
            for name in &a.node_names {
                if let Some(n) = nodes.iter_mut().find(|n| &n.name == name) {
                    n.slots_free = n
                        .slots_free
                        .saturating_sub(u32::try_from(slots(per_node)).unwrap_or(u32::MAX));
                }
            }
            running.push(Running {
                user: p.user.clone(),
                gpu_type: p.gpu_type.clone(),
                tag: Some(a.tag),
                booked_secs: p.duration_secs,
                gpus_per_node: per_node,
                node_names: a.node_names.clone(),
                expires_at: input
                    .now
                    .saturating_add(p.duration_secs)
                    .saturating_add(release_delay_secs),
            });
        }
        let queue = outcome
            .positions
            .iter()
            .filter_map(|q| {
                let mut p = (*by_id.get(&q.reservation_id)?).clone();
                p.tag = Some(q.tag);
                p.promise = q.promise.clone();
                Some(p)
            })
            .collect();
        Self {
            taken_at: input.now,
            nodes,
            running,
            queue,
            usage: input.usage.clone(),
            quotas: input.quotas,
            clocks: outcome.clocks.clone(),
            policy: input.policy,
        }
    }

    /// What `user` could book on `gpu_type` from `start` for `duration_secs`, by the same pass
    /// that decides a booking's submit: the largest single-node booking (searched up to
    /// `slots_per_node`, whose nodes hold `slots_per_node` GPUs, or one slot for a CPU-only type
    /// with `slots_per_node` 0) and the most whole nodes together (up to `max_nodes`; none when
    /// `max_nodes` < 2) whose start would be promised exactly then. `probe` identifies the
    /// hypothetical booking; it should order after every booking already submitted.
    #[expect(
        clippy::too_many_arguments,
        reason = "each says one thing of the booking asked about"
    )]
    pub fn bookable(
        &self,
        probe: &Id,
        user: &Username,
        gpu_type: &GpuType,
        slots_per_node: u32,
        max_nodes: u32,
        start: i64,
        duration_secs: i64,
        now: i64,
    ) -> Bookable {
        let honoured = |gpu_count: u32, nodes: u32| {
            let booking = Pending {
                reservation_id: probe.clone(),
                user: user.clone(),
                gpu_type: gpu_type.clone(),
                gpu_count,
                nodes,
                priority: 0,
                submitted_at: now,
                duration_secs,
                tag: None,
                promise: None,
                start_at: Some(start),
            };
            match self.predict(booking, now) {
                Prediction::StartsNow => true,
                Prediction::Waits {
                    estimated_start: Some(t),
                    ..
                } => t <= start,
                _ => false,
            }
        };
        // Fewer slots, or fewer nodes, are honoured whenever more are: search for the largest.
        let largest = |top: u32, fits: &dyn Fn(u32) -> bool| {
            let (mut lo, mut hi) = (0, top);
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                if fits(mid) { lo = mid } else { hi = mid - 1 }
            }
            lo
        };
        let slots_on_one_node = if slots_per_node == 0 {
            u32::from(honoured(0, 1))
        } else {
            largest(slots_per_node, &|g| honoured(g, 1))
        };
        let whole_nodes = if slots_per_node == 0 || max_nodes < 2 {
            0
        } else {
            match largest(max_nodes, &|k| {
                k < 2 || honoured(k.saturating_mul(slots_per_node), k)
            }) {
                k if k >= 2 => k,
                _ => 0,
            }
        };
        Bookable {
            slots_on_one_node,
            whole_nodes,
        }
    }

    /// The bookings a change of this state would make start later than they would now: each
    /// with the start it has now. `change` edits a copy (an extension: a running reservation's
    /// `expires_at`, or a queued one's duration) and says whether it found what it changes;
    /// when it did not, nothing is delayed.
    pub fn bookings_delayed_by(
        &self,
        change: impl FnOnce(&mut Self) -> bool,
        now: i64,
    ) -> Vec<(Id, i64)> {
        let mut changed = self.clone();
        if !change(&mut changed) {
            return Vec::new();
        }
        let starts = |state: &Self| -> BTreeMap<Id, i64> {
            let now = now.max(state.taken_at);
            let outcome = run_pass(&state.input(now), None);
            let booked: BTreeMap<&Id, ()> = state
                .queue
                .iter()
                .filter(|p| p.start_at.is_some())
                .map(|p| (&p.reservation_id, ()))
                .collect();
            outcome
                .admissions
                .iter()
                .map(|a| (a.reservation_id.clone(), now))
                .chain(outcome.positions.iter().map(|q| {
                    (
                        q.reservation_id.clone(),
                        q.estimated_start.unwrap_or(i64::MAX),
                    )
                }))
                .filter(|(id, _)| booked.contains_key(id))
                .collect()
        };
        let (before, after) = (starts(self), starts(&changed));
        before
            .into_iter()
            .filter(|(id, start)| after.get(id).is_none_or(|later| later > start))
            .collect()
    }

    fn input(&self, now: i64) -> PassInput<'_, Id> {
        PassInput {
            now,
            nodes: &self.nodes,
            running: &self.running,
            queue: &self.queue,
            usage: &self.usage,
            quotas: self.quotas,
            clocks: &self.clocks,
            policy: self.policy,
        }
    }

    /// What the next pass, at `now`, would do with `new` (its tag unset), if nothing else
    /// changed: the scheduler's own pass over this state, stopped once `new` is placed.
    pub fn predict(&self, new: Pending<Id>, now: i64) -> Prediction {
        let id = new.reservation_id.clone();
        let mut queue = self.queue.clone();
        queue.push(new);
        let outcome = run_pass(
            &PassInput {
                queue: &queue,
                ..self.input(now.max(self.taken_at))
            },
            Some(&id),
        );
        if outcome.admissions.iter().any(|a| a.reservation_id == id) {
            return Prediction::StartsNow;
        }
        if let Some(i) = outcome.impossible.iter().find(|i| i.reservation_id == id) {
            return Prediction::Impossible(i.reason.clone());
        }
        match outcome.positions.iter().find(|q| q.reservation_id == id) {
            Some(q) => Prediction::Waits {
                position: q.position,
                estimated_start: q.estimated_start,
                promised: q.promise.is_some(),
            },
            None => Prediction::Impossible("no nodes of its GPU type are known".to_owned()),
        }
    }
}
