//! The simulated cluster, users and queue, and the loop that runs the policy over them.

use std::collections::BTreeMap;
use std::time::Instant;

use gpudev_domain::{
    GpuType, NodeCapacity, PassInput, Pending, Prediction, Promise, QueuePolicy, QueueState,
    Quotas, Running, UsageRecord, Username, decayed_usage, schedule,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::metrics::{Recorder, Report};
use crate::trace::WaitTrace;

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

/// One simulated workload and the policy's settings.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// A short name for the report.
    pub name: String,
    /// Simulated days.
    pub days: i64,
    /// Offered load: booked GPU-seconds arriving per second of GPU capacity (1.0 = exactly the
    /// cluster's capacity, counting what users actually use when some end early).
    pub load: f64,
    /// Share of reservations their user cancels early, at a uniformly random point.
    pub early_end_fraction: f64,
    /// Users; user `i` submits in proportion to `1 / (i + 1)`, so user 0 is the heaviest.
    pub users: usize,
    /// GPU types (each gets `nodes_per_type` nodes of `gpus_per_node` GPUs).
    pub gpu_types: Vec<String>,
    /// Nodes of each type.
    pub nodes_per_type: usize,
    /// GPUs per node.
    pub gpus_per_node: u32,
    /// Share of requests that are gangs of 2 to 4 whole nodes.
    pub gang_fraction: f64,
    /// Longest request, in hours (durations are whole hours from 1 up to this).
    pub max_hours: i64,
    /// Seconds between passes.
    pub pass_every: i64,
    /// A request still queued after this many seconds is cancelled.
    pub queued_timeout: i64,
    /// Fair-share half-life in seconds.
    pub half_life: i64,
    /// The policy's promise horizon in seconds.
    pub promise_horizon: i64,
    /// The policy's aging (see [`PassInput::aging`]).
    pub aging: f64,
    /// The random seed.
    pub seed: u64,
    /// When set, requests that waited at least this many seconds are printed to stderr with
    /// what held them back (see `trace.rs`).
    pub trace_waits: Option<i64>,
    /// Share of requests that are bookings: submitted for a start on a whole minute up to
    /// `booking_lead_hours` ahead, accepted as asked when the policy would promise that start,
    /// at the earliest start it offers otherwise (as a client offered it would), or dropped
    /// when it offers none.
    pub booking_fraction: f64,
    /// How far ahead bookings are made, at most, in hours (uniformly from one minute).
    pub booking_lead_hours: i64,
}

impl Scenario {
    /// The default workload: 50 nodes × 8 GPUs of two types, 12 users, 1–24 h requests, 5 %
    /// gangs, a week, at `load`, reservations ending at their expiry.
    pub fn standard(load: f64) -> Self {
        Self {
            name: format!("load {load:.2}, exact ends"),
            days: 7,
            load,
            early_end_fraction: 0.0,
            users: 12,
            gpu_types: vec!["h100".to_owned(), "a100".to_owned()],
            nodes_per_type: 25,
            gpus_per_node: 8,
            gang_fraction: 0.05,
            max_hours: 24,
            pass_every: 60,
            queued_timeout: 48 * HOUR,
            half_life: 168 * HOUR,
            promise_horizon: 2 * HOUR,
            aging: 1.0,
            seed: 1,
            trace_waits: None,
            booking_fraction: 0.0,
            booking_lead_hours: 72,
        }
    }
}

/// A request of the workload, known in advance.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) id: u32,
    pub(crate) user: usize,
    pub(crate) gpu_type: usize,
    pub(crate) gpus: u32,
    pub(crate) nodes: u32,
    pub(crate) booked: i64,
    /// How long it really runs (its booked time unless cancelled early).
    pub(crate) held: i64,
    pub(crate) submitted_at: i64,
    /// For a booking, the start asked for (then the one accepted).
    pub(crate) start_at: Option<i64>,
}

impl Request {
    pub(crate) fn gpu_seconds(&self, seconds: i64) -> f64 {
        f64::from(self.gpus) * seconds as f64
    }
}

/// The workload of a scenario: arrivals in time order.
pub(crate) fn workload(s: &Scenario) -> Vec<Request> {
    let mut rng = StdRng::seed_from_u64(s.seed);
    let mut booking_rng = StdRng::seed_from_u64(s.seed ^ 0xB00C_1265);
    let weights: Vec<f64> = (0..s.users).map(|i| 1.0 / (i as f64 + 1.0)).collect();
    let total_weight: f64 = weights.iter().sum();
    let single = [(1u32, 0.3), (2, 0.25), (4, 0.25), (8, 0.2)];
    let mean_single: f64 = single.iter().map(|(g, p)| f64::from(*g) * p).sum();
    let gpn = f64::from(s.gpus_per_node);
    // Gangs are 2..=4 whole nodes, uniformly.
    let mean_gpus = (1.0 - s.gang_fraction) * mean_single * gpn / 8.0 + s.gang_fraction * 3.0 * gpn;
    let mean_booked = (1 + s.max_hours) as f64 / 2.0 * HOUR as f64;
    // Early cancellations use half their booking on average.
    let mean_held = mean_booked * (1.0 - s.early_end_fraction / 2.0);
    let capacity = s.nodes_per_type as f64 * gpn;
    let rate = s.load * capacity / (mean_gpus * mean_held);
    let end = s.days * DAY;
    let mut out = Vec::new();
    let mut id = 0u32;
    for gpu_type in 0..s.gpu_types.len() {
        let mut t = 0.0f64;
        loop {
            t += -(1.0 - rng.random::<f64>()).ln() / rate;
            let at = t as i64;
            if at >= end {
                break;
            }
            let mut pick = rng.random::<f64>() * total_weight;
            let mut user = s.users - 1;
            for (i, w) in weights.iter().enumerate() {
                if pick < *w {
                    user = i;
                    break;
                }
                pick -= w;
            }
            let (gpus, nodes) = if rng.random::<f64>() < s.gang_fraction {
                let nodes = rng.random_range(2..=4u32);
                (nodes * s.gpus_per_node, nodes)
            } else {
                let mut p = rng.random::<f64>();
                let mut gpus = 8;
                for (g, share) in single {
                    if p < share {
                        gpus = g;
                        break;
                    }
                    p -= share;
                }
                ((gpus * s.gpus_per_node / 8).max(1), 1)
            };
            let booked = rng.random_range(1..=s.max_hours) * HOUR;
            let held = if rng.random::<f64>() < s.early_end_fraction {
                ((booked as f64 * rng.random::<f64>()) as i64).max(60)
            } else {
                booked
            };
            // From a generator of their own, so the same seed gives the same requests with or
            // without bookings: some of them are simply booked ahead.
            let start_at = (s.booking_fraction > 0.0
                && booking_rng.random::<f64>() < s.booking_fraction)
                .then(|| {
                    let lead = booking_rng.random_range(1..=s.booking_lead_hours.max(1) * 60) * 60;
                    (at + lead) / 60 * 60
                });
            out.push(Request {
                id,
                user,
                gpu_type,
                gpus,
                nodes,
                booked,
                held,
                submitted_at: at,
                start_at,
            });
            id += 1;
        }
    }
    out.sort_by_key(|r| (r.submitted_at, r.id));
    out
}

/// A request while it waits, with what the policy keeps for it.
pub(crate) struct Waiting {
    pub(crate) request: Request,
    tag: Option<f64>,
    promise: Option<Promise>,
}

/// A reservation holding nodes.
pub(crate) struct Held {
    pub(crate) request: Request,
    nodes: Vec<usize>,
    pub(crate) started_at: i64,
    tag: Option<f64>,
}

struct Node {
    name: String,
    gpu_type: usize,
    used: u32,
}

/// Runs a scenario and reports on it.
pub fn run(s: &Scenario) -> Report {
    let arrivals = workload(s);
    let types: Vec<GpuType> = s
        .gpu_types
        .iter()
        .filter_map(|t| GpuType::parse(t).ok())
        .collect();
    let users: Vec<Username> = (0..s.users)
        .filter_map(|i| Username::parse(&format!("user{i}")).ok())
        .collect();
    let mut nodes: Vec<Node> = (0..types.len())
        .flat_map(|t| {
            (0..s.nodes_per_type).map(move |i| Node {
                name: format!("t{t}-n{i:04}"),
                gpu_type: t,
                used: 0,
            })
        })
        .collect();
    let node_index: BTreeMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    let mut recorder = Recorder::new(s, &arrivals);
    let mut next_arrival = 0;
    let mut queue: Vec<Waiting> = Vec::new();
    let mut held: Vec<Held> = Vec::new();
    let mut history: Vec<UsageRecord> = Vec::new();
    let mut clocks: BTreeMap<GpuType, f64> = BTreeMap::new();
    let per_node = s.gpus_per_node;
    let mut trace = s.trace_waits.map(WaitTrace::new);

    let end = s.days * DAY;
    let mut now = 0;
    while now < end {
        // Ends: at expiry or when cancelled early.
        held.retain(|h| {
            let ends = h.started_at + h.request.held;
            if ends > now {
                return true;
            }
            for &n in &h.nodes {
                nodes[n].used -= h.request.gpus / h.request.nodes;
            }
            history.push(UsageRecord {
                user: users[h.request.user].clone(),
                gpus: h.request.gpus,
                started_at: h.started_at,
                ended_at: ends,
            });
            false
        });
        let mut bookings = Vec::new();
        while let Some(r) = arrivals.get(next_arrival)
            && r.submitted_at <= now
        {
            if r.start_at.is_some() {
                bookings.push(r.clone());
            } else {
                queue.push(Waiting {
                    request: r.clone(),
                    tag: None,
                    promise: None,
                });
            }
            next_arrival += 1;
        }
        // A promised request is not cancelled: its start is known.
        queue.retain(|w| {
            let timed_out = w.promise.is_none() && now - w.request.submitted_at >= s.queued_timeout;
            if timed_out {
                recorder.timed_out(&w.request, now);
            }
            !timed_out
        });

        let capacities: Vec<NodeCapacity> = nodes
            .iter()
            .map(|n| NodeCapacity {
                name: n.name.clone(),
                gpu_type: types[n.gpu_type].clone(),
                slots_total: per_node,
                slots_free: per_node - n.used,
                schedulable: true,
            })
            .collect();
        let running: Vec<Running> = held
            .iter()
            .map(|h| Running {
                user: users[h.request.user].clone(),
                gpu_type: types[h.request.gpu_type].clone(),
                tag: h.tag,
                booked_secs: h.request.booked,
                gpus_per_node: h.request.gpus / h.request.nodes,
                node_names: h.nodes.iter().map(|&n| nodes[n].name.clone()).collect(),
                expires_at: h.started_at + h.request.booked,
            })
            .collect();
        let mut pending: Vec<Pending<u32>> = queue
            .iter()
            .map(|w| Pending {
                reservation_id: w.request.id,
                user: users[w.request.user].clone(),
                gpu_type: types[w.request.gpu_type].clone(),
                gpu_count: w.request.gpus,
                nodes: w.request.nodes,
                priority: 0,
                submitted_at: w.request.submitted_at,
                duration_secs: w.request.booked,
                tag: w.tag,
                promise: w.promise.clone(),
                start_at: w.request.start_at,
            })
            .collect();
        let mut records = history.clone();
        records.extend(held.iter().map(|h| UsageRecord {
            user: users[h.request.user].clone(),
            gpus: h.request.gpus,
            started_at: h.started_at,
            ended_at: now,
        }));
        let usage = decayed_usage(&records, now, s.half_life);
        let policy = QueuePolicy {
            promise_horizon_secs: s.promise_horizon,
            aging: s.aging,
            // Work ends exactly at its expiry here.
            release_delay_secs: 0,
        };
        // Bookings are checked as the submit checks them: the policy's own pass over the state
        // as it stands, with the booking added.
        for mut r in bookings {
            let asked = r.start_at.unwrap_or(now);
            let booking = Pending {
                reservation_id: r.id,
                user: users[r.user].clone(),
                gpu_type: types[r.gpu_type].clone(),
                gpu_count: r.gpus,
                nodes: r.nodes,
                priority: 0,
                submitted_at: r.submitted_at,
                duration_secs: r.booked,
                tag: None,
                promise: None,
                start_at: Some(asked),
            };
            let state = QueueState {
                taken_at: now,
                nodes: capacities.clone(),
                running: running.clone(),
                queue: pending.clone(),
                usage: usage.clone(),
                quotas: Quotas::default(),
                clocks: clocks.clone(),
                policy,
            };
            let offered = match state.predict(booking.clone(), now) {
                Prediction::Waits {
                    estimated_start: Some(t),
                    ..
                } => Some(t.max(asked)),
                Prediction::StartsNow => Some(asked),
                _ => None,
            };
            recorder.booking_asked(&r, offered);
            let Some(start) = offered else { continue };
            r.start_at = Some(start);
            pending.push(Pending {
                start_at: Some(start),
                ..booking
            });
            queue.push(Waiting {
                request: r,
                tag: None,
                promise: None,
            });
        }
        let started = Instant::now();
        let outcome = schedule(&PassInput {
            now,
            nodes: &capacities,
            running: &running,
            queue: &pending,
            usage: &usage,
            quotas: Quotas::default(),
            clocks: &clocks,
            policy,
        });
        recorder.pass_took(started.elapsed());
        clocks = outcome.clocks;

        let mut by_id: BTreeMap<u32, Waiting> =
            queue.drain(..).map(|w| (w.request.id, w)).collect();
        for a in outcome.admissions {
            let Some(w) = by_id.remove(&a.reservation_id) else {
                continue;
            };
            let chosen: Vec<usize> = a
                .node_names
                .iter()
                .filter_map(|n| node_index.get(n).copied())
                .collect();
            for &n in &chosen {
                nodes[n].used += w.request.gpus / w.request.nodes;
            }
            recorder.started(&w.request, now);
            if let Some(trace) = &mut trace {
                trace.started(&w.request, now);
            }
            held.push(Held {
                request: w.request,
                nodes: chosen,
                started_at: now,
                tag: Some(a.tag),
            });
        }
        for q in outcome.positions {
            if let Some(w) = by_id.get_mut(&q.reservation_id) {
                recorder.estimated(
                    &w.request,
                    now,
                    q.estimated_start,
                    q.promise.is_some(),
                    q.promise_moved.is_some(),
                );
                if let Some(trace) = &mut trace {
                    let v = clocks
                        .get(&types[w.request.gpu_type])
                        .copied()
                        .unwrap_or(0.0);
                    let promise = q.promise.as_ref().map(|p| p.start);
                    trace.waiting(&w.request, q.tag, v, now, promise);
                }
                w.tag = Some(q.tag);
                w.promise = q.promise;
            }
        }
        for i in outcome.impossible {
            by_id.remove(&i.reservation_id);
        }
        queue.extend(by_id.into_values());
        recorder.sample(now, s.pass_every, &queue, &held);
        now += s.pass_every;
    }
    if let Some(trace) = &trace {
        trace.print(s, &arrivals);
    }
    recorder.finish(&queue)
}
