//! Scheduling policy tests: hand-made scenarios, random-input properties and a timing harness.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::*;

mod bookings;

const NOW: i64 = 1_000_000;
const HOUR: i64 = 3600;

fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

fn gpu(name: &str) -> GpuType {
    GpuType::parse(name).unwrap()
}

fn node(name: &str, gpu_type: &str, total: u32, free: u32) -> NodeCapacity {
    NodeCapacity {
        name: name.to_owned(),
        gpu_type: gpu(gpu_type),
        slots_total: total,
        slots_free: free,
        schedulable: true,
    }
}

fn running(owner: &str, gpus_per_node: u32, nodes: &[&str], expires_at: i64) -> Running {
    Running {
        user: user(owner),
        gpu_type: gpu("h100"),
        tag: None,
        booked_secs: HOUR,
        gpus_per_node,
        node_names: nodes.iter().map(|n| (*n).to_owned()).collect(),
        expires_at,
    }
}

/// A one-hour, priority-0, single-node reservation submitted at `NOW - 1000 + id`.
fn pending(id: u32, owner: &str, gpu_type: &str, gpu_count: u32) -> Pending<u32> {
    Pending {
        reservation_id: id,
        user: user(owner),
        gpu_type: gpu(gpu_type),
        gpu_count,
        nodes: 1,
        priority: 0,
        submitted_at: NOW - 1000 + i64::from(id),
        duration_secs: HOUR,
        tag: None,
        promise: None,
        start_at: None,
    }
}

fn lasting(mut p: Pending<u32>, duration_secs: i64) -> Pending<u32> {
    p.duration_secs = duration_secs;
    p
}

fn gang(id: u32, owner: &str, gpu_type: &str, nodes: u32, gpus_per_node: u32) -> Pending<u32> {
    Pending {
        nodes,
        ..pending(id, owner, gpu_type, nodes * gpus_per_node)
    }
}

#[derive(Default)]
struct Scenario {
    nodes: Vec<NodeCapacity>,
    running: Vec<Running>,
    queue: Vec<Pending<u32>>,
    usage: BTreeMap<Username, f64>,
    quotas: Quotas,
    clocks: BTreeMap<GpuType, f64>,
    horizon: i64,
    aging: f64,
    release_delay: i64,
}

impl Scenario {
    fn run(&self) -> PassOutcome<u32> {
        schedule(&self.input(NOW))
    }

    fn input(&self, now: i64) -> PassInput<'_, u32> {
        PassInput {
            now,
            nodes: &self.nodes,
            running: &self.running,
            queue: &self.queue,
            usage: &self.usage,
            quotas: self.quotas,
            clocks: &self.clocks,
            policy: QueuePolicy {
                promise_horizon_secs: self.horizon,
                aging: self.aging,
                release_delay_secs: self.release_delay,
            },
        }
    }
}

impl PassOutcome<u32> {
    fn admitted(&self) -> Vec<(u32, Vec<&str>)> {
        self.admissions
            .iter()
            .map(|a| {
                (
                    a.reservation_id,
                    a.node_names.iter().map(String::as_str).collect(),
                )
            })
            .collect()
    }

    fn admitted_ids(&self) -> Vec<u32> {
        self.admissions.iter().map(|a| a.reservation_id).collect()
    }

    fn info(&self, id: u32) -> &QueueInfo<u32> {
        self.positions
            .iter()
            .find(|q| q.reservation_id == id)
            .unwrap_or_else(|| panic!("{id} is not waiting: {self:#?}"))
    }
}

// ---- fit ----------------------------------------------------------------------------------

#[test]
fn four_free_gpus_spread_over_two_nodes_do_not_admit_a_four_gpu_request() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 2), node("b", "h100", 8, 2)],
        queue: vec![pending(1, "alice", "h100", 4)],
        ..Scenario::default()
    };
    let out = s.run();
    assert!(out.admissions.is_empty(), "{out:#?}");
    assert_eq!(out.info(1).position, 1);
}

#[test]
fn a_request_that_fits_on_one_node_is_admitted_there() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 2), node("b", "h100", 8, 4)],
        queue: vec![pending(1, "alice", "h100", 4)],
        ..Scenario::default()
    };
    assert_eq!(s.run().admitted(), vec![(1, vec!["b"])]);
}

#[test]
fn best_fit_keeps_the_whole_node_free_for_a_large_request() {
    // First-fit by name would put the 2-GPU request on the empty node "a" and leave no node
    // with 8 free GPUs.
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 8), node("b", "h100", 8, 3)],
        queue: vec![pending(1, "alice", "h100", 2), pending(2, "bob", "h100", 8)],
        ..Scenario::default()
    };
    assert_eq!(s.run().admitted(), vec![(1, vec!["b"]), (2, vec!["a"])]);
}

#[test]
fn admissions_in_one_pass_never_overcommit_a_node() {
    let s = Scenario {
        nodes: vec![node("a", "t4", 4, 4)],
        queue: (1..=5).map(|id| pending(id, "alice", "t4", 1)).collect(),
        ..Scenario::default()
    };
    let out = s.run();
    assert_eq!(out.admitted_ids(), vec![1, 2, 3, 4]);
    assert_eq!(out.info(5).estimated_start, Some(NOW + HOUR));
}

#[test]
fn cpu_reservations_fit_by_reservation_slots() {
    let s = Scenario {
        nodes: vec![node("c", "cpu-x86", 2, 1)],
        running: vec![running("zed", 0, &["c"], NOW + 500)],
        queue: vec![
            pending(1, "alice", "cpu-x86", 0),
            pending(2, "bob", "cpu-x86", 0),
        ],
        ..Scenario::default()
    };
    let out = s.run();
    assert_eq!(out.admitted(), vec![(1, vec!["c"])]);
    assert_eq!(out.info(2).estimated_start, Some(NOW + 500));
}

// ---- order --------------------------------------------------------------------------------

#[test]
fn higher_priority_goes_first_even_when_submitted_later() {
    let mut urgent = pending(2, "bob", "h100", 8);
    urgent.priority = 10;
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 8)],
        queue: vec![pending(1, "alice", "h100", 8), urgent],
        ..Scenario::default()
    };
    let out = s.run();
    assert_eq!(out.admitted_ids(), vec![2]);
    assert_eq!(out.info(1).estimated_start, Some(NOW + HOUR));
}

#[test]
fn at_equal_priority_the_heavy_user_waits_behind_the_light_user() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 8)],
        // The heavy user submitted first.
        queue: vec![
            pending(1, "heavy", "h100", 8),
            pending(2, "light", "h100", 8),
        ],
        usage: BTreeMap::from([(user("heavy"), 500_000.0), (user("light"), 10.0)]),
        ..Scenario::default()
    };
    let out = s.run();
    assert_eq!(out.admitted_ids(), vec![2]);
    assert_eq!(out.info(1).position, 1);
}

#[test]
fn priority_outranks_fair_share() {
    let mut heavy = pending(1, "heavy", "h100", 8);
    heavy.priority = 1;
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 8)],
        queue: vec![pending(2, "light", "h100", 8), heavy],
        usage: BTreeMap::from([(user("heavy"), 500_000.0)]),
        ..Scenario::default()
    };
    assert_eq!(s.run().admitted_ids(), vec![1]);
}

#[test]
fn fifo_breaks_ties_and_the_id_breaks_equal_submission_times() {
    let mut later = pending(1, "alice", "h100", 8);
    later.submitted_at = NOW - 10;
    let mut earlier = pending(2, "bob", "h100", 8);
    earlier.submitted_at = NOW - 20;
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 8)],
        queue: vec![later.clone(), earlier],
        ..Scenario::default()
    };
    assert_eq!(s.run().admitted_ids(), vec![2]);

    let mut same_time = pending(3, "carol", "h100", 8);
    same_time.submitted_at = NOW - 10;
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 8)],
        queue: vec![same_time, later],
        ..Scenario::default()
    };
    let out = s.run();
    assert_eq!(out.admitted_ids(), vec![1]);
    assert_eq!(out.info(3).position, 1);
}

// ---- gangs --------------------------------------------------------------------------------

#[test]
fn a_gang_needing_two_whole_nodes_takes_none_when_only_one_is_whole() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 8), node("b", "h100", 8, 7)],
        running: vec![running("zed", 1, &["b"], NOW + 1000)],
        queue: vec![gang(1, "alice", "h100", 2, 8)],
        ..Scenario::default()
    };
    let out = s.run();
    assert!(out.admissions.is_empty(), "{out:#?}");
    assert_eq!(out.info(1).estimated_start, Some(NOW + 1000));
}

#[test]
fn a_gang_is_admitted_on_whole_nodes_only() {
    let s = Scenario {
        nodes: vec![
            node("a", "h100", 8, 8),
            node("b", "h100", 8, 7),
            node("c", "h100", 8, 8),
        ],
        queue: vec![gang(1, "alice", "h100", 2, 8)],
        ..Scenario::default()
    };
    assert_eq!(s.run().admitted(), vec![(1, vec!["a", "c"])]);
}

#[test]
fn a_gang_takes_the_first_whole_nodes_by_name() {
    let s = Scenario {
        nodes: vec![
            node("d", "h100", 8, 8),
            node("c", "h100", 8, 8),
            node("b", "h100", 8, 8),
            node("a", "h100", 8, 8),
        ],
        queue: vec![gang(1, "alice", "h100", 3, 8)],
        ..Scenario::default()
    };
    assert_eq!(s.run().admitted(), vec![(1, vec!["a", "b", "c"])]);
}

#[test]
fn the_nodes_a_waiting_gang_needs_are_not_given_away_for_longer_than_it_waits() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 8), node("b", "h100", 8, 7)],
        running: vec![running("zed", 1, &["b"], NOW + 1000)],
        queue: vec![
            gang(1, "alice", "h100", 2, 8),
            // Would hold node a past NOW + 1000.
            pending(2, "bob", "h100", 8),
            // Ends before the gang starts: backfilled.
            lasting(pending(3, "carol", "h100", 4), 900),
        ],
        ..Scenario::default()
    };
    let out = s.run();
    assert_eq!(out.admitted(), vec![(3, vec!["b"])]);
    assert_eq!(out.info(1).estimated_start, Some(NOW + 1000));
    assert_eq!(out.info(2).estimated_start, Some(NOW + 1000 + HOUR));
}

// ---- backfill -----------------------------------------------------------------------------

/// One 8-GPU node with 4 GPUs held for an hour; the head wants all 8.
fn head_waits_for_half_a_node(backfill: Pending<u32>) -> PassOutcome<u32> {
    Scenario {
        nodes: vec![node("a", "h100", 8, 4)],
        running: vec![running("zed", 4, &["a"], NOW + HOUR)],
        queue: vec![pending(1, "alice", "h100", 8), backfill],
        ..Scenario::default()
    }
    .run()
}

#[test]
fn backfill_admits_a_short_small_job_that_ends_before_the_heads_start() {
    let out = head_waits_for_half_a_node(lasting(pending(2, "bob", "h100", 4), HOUR / 2));
    assert_eq!(out.admitted_ids(), vec![2]);
    assert_eq!(out.info(1).estimated_start, Some(NOW + HOUR));
}

#[test]
fn backfill_admits_a_job_that_ends_exactly_when_the_head_starts() {
    let out = head_waits_for_half_a_node(lasting(pending(2, "bob", "h100", 4), HOUR));
    assert_eq!(out.admitted_ids(), vec![2]);
    assert_eq!(out.info(1).estimated_start, Some(NOW + HOUR));
}

#[test]
fn backfill_never_admits_a_long_small_job_that_would_delay_the_head() {
    let out = head_waits_for_half_a_node(lasting(pending(2, "bob", "h100", 4), HOUR + 1));
    assert!(out.admissions.is_empty(), "{out:#?}");
    assert_eq!(out.info(1).estimated_start, Some(NOW + HOUR));
    assert_eq!(out.info(2).estimated_start, Some(NOW + 2 * HOUR));
    assert_eq!(out.info(2).position, 2);
}

#[test]
fn backfill_uses_nodes_the_waiting_head_cannot_use_even_for_long_jobs() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 4), node("small", "h100", 4, 4)],
        running: vec![running("zed", 4, &["a"], NOW + HOUR)],
        queue: vec![
            pending(1, "alice", "h100", 8),
            lasting(pending(2, "bob", "h100", 4), 10 * HOUR),
        ],
        ..Scenario::default()
    };
    let out = s.run();
    assert_eq!(out.admitted(), vec![(2, vec!["small"])]);
    assert_eq!(out.info(1).estimated_start, Some(NOW + HOUR));
}

#[test]
fn every_waiting_reservation_is_protected_not_only_the_head() {
    // Conservative backfill: the second waiting reservation's start is protected too.
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0), node("b", "h100", 8, 2)],
        running: vec![
            running("zed", 8, &["a"], NOW + HOUR),
            running("zed", 6, &["b"], NOW + 2 * HOUR),
        ],
        queue: vec![
            lasting(pending(1, "alice", "h100", 8), 10 * HOUR),
            pending(2, "bob", "h100", 8),
            // Fits on b now, but would run past b's release at NOW + 2h.
            lasting(pending(3, "carol", "h100", 2), 3 * HOUR),
            // Ends in time.
            lasting(pending(4, "dave", "h100", 2), 2 * HOUR),
        ],
        ..Scenario::default()
    };
    let out = s.run();
    assert_eq!(out.admitted(), vec![(4, vec!["b"])]);
    assert_eq!(out.info(1).estimated_start, Some(NOW + HOUR));
    assert_eq!(out.info(2).estimated_start, Some(NOW + 2 * HOUR));
    assert_eq!(out.info(3).estimated_start, Some(NOW + 3 * HOUR));
}

// ---- estimates ----------------------------------------------------------------------------

#[test]
fn the_estimated_start_is_the_earliest_time_enough_gpus_are_released_on_one_node() {
    let cluster = |queue| Scenario {
        nodes: vec![node("a", "h100", 8, 0), node("b", "h100", 8, 0)],
        running: vec![
            running("x", 4, &["a"], NOW + 100),
            running("y", 4, &["a"], NOW + 200),
            running("z", 8, &["b"], NOW + 300),
        ],
        queue,
        ..Scenario::default()
    };
    let four = cluster(vec![pending(1, "alice", "h100", 4)]).run();
    assert_eq!(four.info(1).estimated_start, Some(NOW + 100));
    let six = cluster(vec![pending(1, "alice", "h100", 6)]).run();
    assert_eq!(six.info(1).estimated_start, Some(NOW + 200));
    // Two 6-GPU requests cannot share node a: the second waits for node b.
    let two = cluster(vec![
        pending(1, "alice", "h100", 6),
        pending(2, "bob", "h100", 6),
    ])
    .run();
    assert_eq!(two.info(1).estimated_start, Some(NOW + 200));
    assert_eq!(two.info(2).estimated_start, Some(NOW + 300));
}

#[test]
fn an_overdue_reservation_still_holds_its_gpus_now_and_frees_them_next() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0)],
        running: vec![running("zed", 8, &["a"], NOW - 50)],
        queue: vec![pending(1, "alice", "h100", 8)],
        ..Scenario::default()
    };
    let out = s.run();
    assert!(out.admissions.is_empty());
    assert_eq!(out.info(1).estimated_start, Some(NOW + 1));
}

#[test]
fn capacity_held_by_work_with_no_known_end_gives_no_estimate() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 2)],
        queue: vec![pending(1, "alice", "h100", 4), pending(2, "bob", "h100", 2)],
        ..Scenario::default()
    };
    let out = s.run();
    let info = out.info(1);
    assert_eq!(info.estimated_start, None);
    assert!(
        info.blocked_reason
            .as_deref()
            .is_some_and(|r| r.contains("no known end")),
        "{info:?}"
    );
    // Nothing is held for a reservation without an estimate.
    assert_eq!(out.admitted_ids(), vec![2]);
}

#[test]
fn cordoned_nodes_are_never_planned_on_and_the_reason_says_so() {
    let mut cordoned = node("a", "h100", 8, 8);
    cordoned.schedulable = false;
    let s = Scenario {
        nodes: vec![cordoned],
        queue: vec![pending(1, "alice", "h100", 8)],
        ..Scenario::default()
    };
    let out = s.run();
    assert!(out.admissions.is_empty() && out.impossible.is_empty());
    let info = out.info(1);
    assert_eq!(info.estimated_start, None);
    assert_eq!(
        info.blocked_reason.as_deref(),
        Some(
            "waiting for h100 nodes: only 0 of the 1 that could hold it are ready and schedulable"
        )
    );
}

// ---- positions ----------------------------------------------------------------------------

#[test]
fn positions_are_one_based_per_gpu_type_in_scheduling_order() {
    let mut urgent = pending(5, "erin", "h100", 8);
    urgent.priority = 5;
    let s = Scenario {
        nodes: vec![node("h", "h100", 8, 0), node("t", "t4", 4, 0)],
        running: vec![
            running("zed", 8, &["h"], NOW + HOUR),
            running("zed", 4, &["t"], NOW + HOUR),
        ],
        queue: vec![
            pending(1, "alice", "h100", 8),
            pending(2, "bob", "t4", 4),
            pending(3, "carol", "h100", 8),
            pending(4, "dave", "t4", 4),
            urgent,
        ],
        ..Scenario::default()
    };
    let out = s.run();
    let positions: Vec<(u32, u32)> = out
        .positions
        .iter()
        .map(|q| (q.reservation_id, q.position))
        .collect();
    assert_eq!(positions, vec![(5, 1), (1, 2), (2, 1), (3, 3), (4, 2)]);
    assert_eq!(out.info(5).estimated_start, Some(NOW + HOUR));
    assert_eq!(out.info(1).estimated_start, Some(NOW + 2 * HOUR));
    assert_eq!(out.info(3).estimated_start, Some(NOW + 3 * HOUR));
}

#[test]
fn admitted_reservations_take_no_position() {
    let s = Scenario {
        nodes: vec![node("a", "t4", 4, 4)],
        queue: vec![pending(1, "alice", "t4", 4), pending(2, "bob", "t4", 4)],
        ..Scenario::default()
    };
    let out = s.run();
    assert_eq!(out.admitted_ids(), vec![1]);
    assert_eq!(out.info(2).position, 1);
    assert_eq!(out.positions.len(), 1);
}

// ---- quotas -------------------------------------------------------------------------------

#[test]
fn a_user_at_the_reservation_limit_waits_with_a_reason_and_others_go_ahead() {
    let s = Scenario {
        nodes: vec![node("a", "t4", 4, 3), node("b", "t4", 4, 4)],
        running: vec![running("alice", 1, &["a"], NOW + 2 * HOUR)],
        queue: vec![pending(1, "alice", "t4", 4), pending(2, "bob", "t4", 4)],
        quotas: Quotas {
            max_active_reservations_per_user: Some(1),
            max_gpus_per_user: None,
        },
        ..Scenario::default()
    };
    let out = s.run();
    assert_eq!(out.admitted(), vec![(2, vec!["b"])]);
    let info = out.info(1);
    assert_eq!(
        info.blocked_reason.as_deref(),
        Some("waiting for quota: alice may hold at most 1 reservations at once")
    );
    assert_eq!(info.estimated_start, Some(NOW + 2 * HOUR));
}

#[test]
fn a_user_at_the_reservation_limit_moves_behind_users_within_quota() {
    let s = Scenario {
        nodes: vec![node("a", "t4", 4, 0)],
        running: vec![
            running("zed", 4, &["a"], NOW + HOUR),
            // On a node of another pool; it still counts against alice's limit.
            running("alice", 1, &["elsewhere"], NOW + HOUR),
        ],
        // Alice submitted first.
        queue: vec![pending(1, "alice", "t4", 4), pending(2, "bob", "t4", 4)],
        quotas: Quotas {
            max_active_reservations_per_user: Some(1),
            max_gpus_per_user: None,
        },
        ..Scenario::default()
    };
    let out = s.run();
    assert_eq!(out.info(2).position, 1);
    assert_eq!(out.info(2).estimated_start, Some(NOW + HOUR));
    assert_eq!(out.info(1).position, 2);
    assert_eq!(out.info(1).estimated_start, Some(NOW + 2 * HOUR));
}

#[test]
fn a_reservation_over_the_gpu_limit_moves_behind_those_within_quota() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0)],
        running: vec![
            running("alice", 4, &["a"], NOW + HOUR),
            running("zed", 4, &["a"], NOW + HOUR),
        ],
        queue: vec![
            // Submitted first, but alice already holds 4 of her 8 GPUs.
            pending(1, "alice", "h100", 8),
            pending(2, "bob", "h100", 8),
        ],
        quotas: Quotas {
            max_active_reservations_per_user: None,
            max_gpus_per_user: Some(8),
        },
        ..Scenario::default()
    };
    let out = s.run();
    assert_eq!(out.info(2).position, 1);
    assert_eq!(out.info(2).estimated_start, Some(NOW + HOUR));
    let alice = out.info(1);
    assert_eq!(alice.position, 2);
    assert_eq!(alice.estimated_start, Some(NOW + 2 * HOUR));
    // Her quota is free at NOW + HOUR, but by then bob holds the node: capacity, not quota, is
    // what she waits for there.
    assert_eq!(alice.blocked_reason, None);
}

#[test]
fn a_users_queued_reservations_count_toward_the_limit_in_queue_order() {
    let s = Scenario {
        nodes: vec![
            node("a", "t4", 4, 4),
            node("b", "t4", 4, 4),
            node("c", "t4", 4, 4),
        ],
        queue: vec![
            pending(1, "alice", "t4", 2),
            pending(2, "alice", "t4", 2),
            pending(3, "alice", "t4", 2),
            pending(4, "bob", "t4", 4),
        ],
        quotas: Quotas {
            max_active_reservations_per_user: Some(2),
            max_gpus_per_user: None,
        },
        ..Scenario::default()
    };
    let out = s.run();
    let mut admitted = out.admitted_ids();
    admitted.sort_unstable();
    assert_eq!(admitted, vec![1, 2, 4]);
    let third = out.info(3);
    assert!(
        third
            .blocked_reason
            .as_deref()
            .is_some_and(|r| r.contains("at most 2 reservations")),
        "{third:?}"
    );
    assert_eq!(third.estimated_start, Some(NOW + HOUR));
}

#[test]
fn cpu_reservations_are_not_held_back_by_the_gpu_limit() {
    let s = Scenario {
        nodes: vec![node("c", "cpu-arm", 4, 4)],
        running: vec![running("alice", 8, &["gone"], NOW + HOUR)],
        queue: vec![pending(1, "alice", "cpu-arm", 0)],
        quotas: Quotas {
            max_active_reservations_per_user: None,
            max_gpus_per_user: Some(8),
        },
        ..Scenario::default()
    };
    assert_eq!(s.run().admitted_ids(), vec![1]);
}

// ---- impossible requests ------------------------------------------------------------------

#[test]
fn requests_that_can_never_fit_are_reported_with_a_reason() {
    let mut cordoned = node("h3", "h100", 8, 8);
    cordoned.schedulable = false;
    let s = Scenario {
        nodes: vec![
            node("t", "t4", 4, 4),
            node("h1", "h100", 8, 8),
            node("h2", "h100", 8, 8),
            cordoned,
            node("c", "cpu-x86", 0, 0),
        ],
        queue: vec![
            pending(1, "alice", "b200", 8),
            pending(2, "alice", "t4", 8),
            gang(3, "alice", "h100", 4, 8),
            gang(4, "alice", "h100", 3, 8),
            pending(5, "alice", "cpu-x86", 0),
            gang(6, "alice", "h100", 2, 8),
        ],
        quotas: Quotas {
            max_active_reservations_per_user: None,
            max_gpus_per_user: Some(16),
        },
        ..Scenario::default()
    };
    let out = s.run();
    let mut reasons: Vec<(u32, &str)> = out
        .impossible
        .iter()
        .map(|i| (i.reservation_id, i.reason.as_str()))
        .collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        vec![
            (1, "the cluster has no b200 nodes"),
            (2, "needs 8 GPUs on one node, but the largest t4 node has 4"),
            (
                3,
                "needs 4 whole h100 nodes with 8 GPUs each, but the cluster has 3"
            ),
            (4, "needs 24 GPUs, more than the per-user limit of 16"),
            (
                5,
                "needs a reservation slot on one node, but the largest cpu-x86 node has 0"
            ),
        ]
    );
    // A gang of 2 fits on the schedulable nodes; 3 would have to wait for the cordoned one.
    assert_eq!(out.admitted(), vec![(6, vec!["h1", "h2"])]);
}

// ---- fair tags, promises and aging ---------------------------------------------------------

impl Scenario {
    /// The scenario of the next pass at `later`: what this pass kept for each reservation still
    /// waiting (tag, promise) and the clocks carried over, admitted ones running.
    fn next_pass(&self, out: &PassOutcome<u32>, later: i64) -> (Scenario, i64) {
        // Every caller's first pass ran at NOW.
        let ran_at = NOW;
        let mut nodes = self.nodes.clone();
        let mut running = self.running.clone();
        for a in &out.admissions {
            let p = self
                .queue
                .iter()
                .find(|p| p.reservation_id == a.reservation_id)
                .unwrap();
            let per_node = (p.gpu_count / p.nodes.max(1)).max(1);
            for name in &a.node_names {
                let n = nodes.iter_mut().find(|n| &n.name == name).unwrap();
                n.slots_free -= per_node;
            }
            running.push(Running {
                user: p.user.clone(),
                gpu_type: p.gpu_type.clone(),
                tag: Some(a.tag),
                booked_secs: p.duration_secs,
                gpus_per_node: p.gpu_count / p.nodes.max(1),
                node_names: a.node_names.clone(),
                expires_at: ran_at + p.duration_secs,
            });
        }
        let mut next = Scenario {
            nodes,
            running,
            usage: self.usage.clone(),
            quotas: self.quotas,
            clocks: out.clocks.clone(),
            horizon: self.horizon,
            aging: self.aging,
            release_delay: self.release_delay,
            queue: Vec::new(),
        };
        for q in &out.positions {
            let mut p = self
                .queue
                .iter()
                .find(|p| p.reservation_id == q.reservation_id)
                .cloned()
                .unwrap();
            p.tag = Some(q.tag);
            p.promise = q.promise.clone();
            next.queue.push(p);
        }
        (next, later)
    }

    fn run_at(&self, now: i64) -> PassOutcome<u32> {
        schedule(&self.input(now))
    }
}

fn tags(out: &PassOutcome<u32>) -> BTreeMap<u32, f64> {
    out.positions
        .iter()
        .map(|q| (q.reservation_id, q.tag))
        .chain(out.admissions.iter().map(|a| (a.reservation_id, a.tag)))
        .collect()
}

#[test]
fn a_users_requests_queue_behind_their_earlier_ones_by_booked_time_and_others_start_level() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0)],
        running: vec![running("zed", 8, &["a"], NOW + 10 * HOUR)],
        queue: vec![
            pending(1, "alice", "h100", 8),
            pending(2, "alice", "h100", 2),
            pending(3, "bob", "h100", 4),
        ],
        clocks: BTreeMap::from([(gpu("h100"), 1000.0)]),
        ..Scenario::default()
    };
    let tags = tags(&s.run());
    assert_eq!(tags[&1], 1000.0);
    assert_eq!(
        tags[&2],
        1000.0 + 8.0 * 3600.0,
        "behind alice's 8 GPU-hours"
    );
    assert_eq!(tags[&3], 1000.0, "bob starts level with alice");
}

#[test]
fn a_promise_within_the_horizon_holds_when_a_lighter_user_submits_later() {
    // The node frees in an hour; alice (heavy) is promised that hour.
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0)],
        running: vec![running("zed", 8, &["a"], NOW + HOUR)],
        queue: vec![lasting(pending(1, "alice", "h100", 8), 3 * HOUR)],
        usage: BTreeMap::from([(user("alice"), 1e9)]),
        horizon: 2 * HOUR,
        ..Scenario::default()
    };
    let first = s.run();
    let promise = first.info(1).promise.clone().expect("promised");
    assert_eq!(promise.start, NOW + HOUR);
    // Ten minutes later bob, who never used anything, asks for the same node.
    let (mut next, later) = s.next_pass(&first, NOW + 600);
    next.queue.push(pending(2, "bob", "h100", 8));
    let out = next.run_at(later);
    assert_eq!(out.info(1).estimated_start, Some(NOW + HOUR));
    assert_eq!(out.info(1).promise, Some(promise));
    assert_eq!(out.info(2).estimated_start, Some(NOW + 4 * HOUR));
}

#[test]
fn an_estimate_that_is_not_promised_yields_to_a_lighter_users_later_request() {
    // Alice already has 10 h of booked work waiting, so her second request is far ahead in
    // tags and its start (beyond the horizon) is only an estimate.
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0)],
        running: vec![running("zed", 8, &["a"], NOW + 3 * HOUR)],
        queue: vec![
            lasting(pending(1, "alice", "h100", 8), 10 * HOUR),
            pending(2, "alice", "h100", 8),
        ],
        horizon: 2 * HOUR,
        ..Scenario::default()
    };
    let first = s.run();
    assert!(
        first.info(1).promise.is_some(),
        "the head is firm: {first:#?}"
    );
    assert!(first.info(2).promise.is_none());
    assert_eq!(first.info(2).estimated_start, Some(NOW + 13 * HOUR));
    let (mut next, later) = s.next_pass(&first, NOW + 600);
    next.queue.push(pending(3, "bob", "h100", 8));
    let out = next.run_at(later);
    assert_eq!(out.info(3).estimated_start, Some(NOW + 13 * HOUR));
    assert_eq!(out.info(2).estimated_start, Some(NOW + 14 * HOUR));
}

#[test]
fn the_head_of_the_fair_order_is_promised_even_beyond_the_horizon() {
    // Nothing can ever be ordered ahead of a request whose tag is the type's virtual time.
    // Later requests tie with alice's tag at best, and ties go to the earlier submission.
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0)],
        running: vec![running("zed", 8, &["a"], NOW + 20 * HOUR)],
        queue: vec![pending(1, "alice", "h100", 8), pending(2, "bob", "h100", 8)],
        usage: BTreeMap::from([(user("bob"), 3600.0)]),
        clocks: BTreeMap::from([(gpu("h100"), 500.0)]),
        horizon: 2 * HOUR,
        ..Scenario::default()
    };
    let out = s.run();
    let promise = out.info(1).promise.clone().expect("the head is firm");
    assert_eq!(promise.start, NOW + 20 * HOUR);
    assert_eq!(
        out.info(2).tag,
        500.0 + 3600.0,
        "bob's recent use puts him behind"
    );
    assert!(
        out.info(2).promise.is_none(),
        "a fresh user could still come before bob"
    );
}

#[test]
fn a_promise_moves_earlier_when_capacity_frees_early_and_never_later() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0), node("b", "h100", 8, 0)],
        running: vec![
            running("zed", 8, &["a"], NOW + HOUR),
            running("zed", 8, &["b"], NOW + 2 * HOUR),
        ],
        queue: vec![pending(1, "alice", "h100", 8), pending(2, "bob", "h100", 8)],
        horizon: 3 * HOUR,
        ..Scenario::default()
    };
    let first = s.run();
    let (a, b) = (first.info(1).clone(), first.info(2).clone());
    assert_eq!(a.estimated_start, Some(NOW + HOUR));
    assert_eq!(b.estimated_start, Some(NOW + 2 * HOUR));
    // Node b's reservation ends early: alice (first in promise order) starts there now, and
    // bob moves up to node a, which alice no longer needs, as soon as it frees.
    let (mut next, later) = s.next_pass(&first, NOW + 600);
    next.running.pop();
    next.nodes[1].slots_free = 8;
    let out = next.run_at(later);
    assert_eq!(out.admitted(), vec![(1, vec!["b"])]);
    let bob = out.info(2);
    assert_eq!(bob.estimated_start, Some(NOW + HOUR));
    assert_eq!(
        bob.promise.as_ref().map(|p| p.node_names.clone()),
        Some(vec!["a".to_owned()])
    );
    assert!(bob.promise_moved.is_none());
}

#[test]
fn a_promise_on_a_node_that_is_gone_is_moved_with_the_reason() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0), node("b", "h100", 8, 0)],
        running: vec![
            running("zed", 8, &["a"], NOW + HOUR),
            running("zed", 8, &["b"], NOW + 2 * HOUR),
        ],
        queue: vec![pending(1, "alice", "h100", 8)],
        horizon: 3 * HOUR,
        ..Scenario::default()
    };
    let first = s.run();
    assert_eq!(
        first.info(1).promise.as_ref().map(|p| p.node_names.clone()),
        Some(vec!["a".to_owned()])
    );
    let (mut next, later) = s.next_pass(&first, NOW + 600);
    next.nodes[0].schedulable = false;
    let out = next.run_at(later);
    let info = out.info(1);
    assert_eq!(info.estimated_start, Some(NOW + 2 * HOUR));
    assert!(
        info.promise_moved
            .as_deref()
            .is_some_and(|r| r.contains("node a")),
        "{info:?}"
    );
    assert_eq!(
        info.promise.as_ref().map(|p| p.node_names.clone()),
        Some(vec!["b".to_owned()]),
        "promised again on the node that remains"
    );
}

#[test]
fn an_admins_priority_request_goes_before_every_unpromised_one_but_after_promises() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0)],
        running: vec![running("zed", 8, &["a"], NOW + HOUR)],
        queue: vec![
            pending(1, "alice", "h100", 8),
            lasting(pending(2, "bob", "h100", 8), 20 * HOUR),
        ],
        usage: BTreeMap::from([(user("bob"), 1e9)]),
        horizon: HOUR,
        ..Scenario::default()
    };
    let first = s.run();
    assert!(first.info(1).promise.is_some());
    assert!(first.info(2).promise.is_none());
    let (mut next, later) = s.next_pass(&first, NOW + 600);
    let mut urgent = pending(3, "root", "h100", 8);
    urgent.priority = 50;
    next.queue.push(urgent);
    let out = next.run_at(later);
    assert_eq!(out.info(1).estimated_start, Some(NOW + HOUR));
    assert!(out.info(1).promise_moved.is_none());
    assert_eq!(out.info(3).estimated_start, Some(NOW + 2 * HOUR));
    assert_eq!(out.info(2).estimated_start, Some(NOW + 3 * HOUR));
}

#[test]
fn aging_lets_an_old_request_of_a_heavy_user_go_before_newer_light_ones() {
    let mut heavy = lasting(pending(1, "alice", "h100", 8), HOUR);
    heavy.tag = Some(8.0 * 3600.0 * 5.0);
    heavy.submitted_at = NOW - 10 * HOUR;
    let mut light = pending(2, "bob", "h100", 8);
    light.tag = Some(0.0);
    light.submitted_at = NOW - 60;
    let mut s = Scenario {
        nodes: vec![node("a", "h100", 8, 8)],
        queue: vec![heavy, light],
        ..Scenario::default()
    };
    assert_eq!(
        s.run().admitted_ids(),
        vec![2],
        "pure fair share: bob first"
    );
    // With aging 1.0 on an 8-GPU pool, alice's lead of 5 node-hours is worth 5 hours of
    // waiting, and she has waited 10 hours longer than bob.
    s.aging = 1.0;
    assert_eq!(s.run().admitted_ids(), vec![1]);
    s.queue[0].submitted_at = NOW - 4 * HOUR;
    let out = s.run();
    assert_eq!(
        out.admitted_ids(),
        vec![2],
        "4 hours of waiting do not cover 5"
    );
}

#[test]
fn the_prediction_for_a_new_request_is_what_the_next_pass_does_with_it() {
    for seed in 0..150 {
        let mut rng = Rng(20_000 + seed);
        let size = Size {
            nodes: 1 + rng.below(10) as usize,
            queue: rng.below(30) as usize,
            users: 1 + rng.below(5) as usize,
        };
        let quotas = if seed % 2 == 0 {
            quotas_on()
        } else {
            Quotas::default()
        };
        let mut s = random_scenario(&mut rng, &size, quotas);
        s.horizon = 2 * HOUR;
        s.aging = if seed % 3 == 0 { 0.0 } else { 1.0 };
        let input = s.input(NOW);
        let out = schedule(&input);
        let state = QueueState::after(&input, &out, 0);

        let gpu_type = *rng.pick(&["h100", "t4", "cpu-x86", "b200"]);
        let owner = format!("u{}", rng.below(size.users as u64 + 1));
        let mut new = match gpu_type {
            "h100" if rng.below(5) == 0 => gang(9999, &owner, "h100", 2, 8),
            "cpu-x86" => pending(9999, &owner, gpu_type, 0),
            _ => pending(9999, &owner, gpu_type, *rng.pick(&[1, 2, 4])),
        };
        new.submitted_at = NOW + 30;
        new.duration_secs = 600 + rng.below(10 * HOUR as u64) as i64;
        if seed % 4 == 1 {
            new.start_at = Some(NOW + 60 + rng.below(20 * HOUR as u64) as i64);
        }
        let predicted = state.predict(new.clone(), NOW + 60);

        let (mut next, later) = s.next_pass(&out, NOW + 60);
        next.queue.push(new);
        let full = next.run_at(later);
        let expected = if full.admitted_ids().contains(&9999) {
            Prediction::StartsNow
        } else if let Some(i) = full.impossible.iter().find(|i| i.reservation_id == 9999) {
            Prediction::Impossible(i.reason.clone())
        } else {
            let q = full.info(9999);
            Prediction::Waits {
                position: q.position,
                estimated_start: q.estimated_start,
                promised: q.promise.is_some(),
            }
        };
        assert_eq!(predicted, expected, "seed {seed}");
    }
}

// ---- determinism and properties -----------------------------------------------------------

/// SplitMix64: a tiny deterministic generator, enough for test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

struct Size {
    nodes: usize,
    queue: usize,
    users: usize,
}

/// A random cluster: nodes of three types (one with odd sizes), partly filled by running
/// reservations, and a random queue of single-node and gang reservations.
fn random_scenario(rng: &mut Rng, size: &Size, quotas: Quotas) -> Scenario {
    let types = ["h100", "t4", "cpu-x86"];
    let mut s = Scenario {
        quotas,
        ..Scenario::default()
    };
    for i in 0..size.nodes {
        let gpu_type = *rng.pick(&types);
        let total: u32 = match gpu_type {
            "h100" => *rng.pick(&[8, 8, 8, 7]),
            "t4" => 4,
            _ => 2,
        };
        let name = format!("n{i:05}");
        let mut free = total;
        while free > 0 && rng.below(3) > 0 {
            let take = if gpu_type == "cpu-x86" {
                1
            } else {
                1 + rng.below(u64::from(free)) as u32
            };
            free -= take;
            let owner = format!("u{}", rng.below(size.users as u64));
            let gpus = if gpu_type == "cpu-x86" { 0 } else { take };
            s.running.push(running(
                &owner,
                gpus,
                &[&name],
                NOW - 600 + rng.below(24 * HOUR as u64) as i64,
            ));
        }
        // Some capacity is held by pods outside gpudev, with no known end.
        if free > 0 && rng.below(10) == 0 {
            free -= 1;
        }
        let mut n = node(&name, gpu_type, total, free);
        n.schedulable = rng.below(20) > 0;
        s.nodes.push(n);
    }
    for id in 0..size.queue {
        let gpu_type = *rng.pick(&types);
        let owner = format!("u{}", rng.below(size.users as u64));
        let mut p = match gpu_type {
            "h100" if rng.below(10) == 0 => {
                gang(id as u32, &owner, "h100", 2 + rng.below(3) as u32, 8)
            }
            "h100" => pending(id as u32, &owner, "h100", *rng.pick(&[1, 2, 4, 8])),
            "t4" => pending(id as u32, &owner, "t4", *rng.pick(&[1, 2, 4])),
            _ => pending(id as u32, &owner, "cpu-x86", 0),
        };
        p.priority = *rng.pick(&[-10, 0, 0, 0, 10]);
        p.submitted_at = NOW - rng.below(7 * 24 * HOUR as u64) as i64;
        p.duration_secs = 300 + rng.below(24 * HOUR as u64) as i64;
        // Half the queue was tagged by earlier passes (ties included); the rest is new.
        if rng.below(2) == 0 {
            p.tag = Some(rng.below(50) as f64 * 3600.0);
        }
        s.queue.push(p);
    }
    for u in 0..size.users {
        if rng.below(2) == 0 {
            s.usage
                .insert(user(&format!("u{u}")), rng.below(1_000_000) as f64);
        }
    }
    s
}

/// Gives every queued reservation a tag, as if an earlier pass had seen them all, so the order
/// does not depend on which of them are in the queue.
fn tag_all(s: &mut Scenario, rng: &mut Rng) {
    for p in &mut s.queue {
        if p.tag.is_none() {
            p.tag = Some(rng.below(50) as f64 * 3600.0);
        }
    }
}

/// Checks what must hold for every pass.
fn check_invariants(s: &Scenario, out: &PassOutcome<u32>) {
    let queued: BTreeSet<u32> = s.queue.iter().map(|p| p.reservation_id).collect();
    let mut seen: Vec<u32> = out.admitted_ids();
    seen.extend(out.positions.iter().map(|q| q.reservation_id));
    seen.extend(out.impossible.iter().map(|i| i.reservation_id));
    seen.sort_unstable();
    assert_eq!(
        seen,
        queued.into_iter().collect::<Vec<_>>(),
        "each reservation once"
    );

    let by_id: HashMap<u32, &Pending<u32>> =
        s.queue.iter().map(|p| (p.reservation_id, p)).collect();
    let nodes: HashMap<&str, &NodeCapacity> =
        s.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut taken: HashMap<&str, u32> = HashMap::new();
    let mut whole: BTreeSet<&str> = BTreeSet::new();
    for a in &out.admissions {
        let p = by_id[&a.reservation_id];
        assert_eq!(
            a.node_names.len(),
            p.nodes as usize,
            "gangs get all their nodes"
        );
        let distinct: BTreeSet<&String> = a.node_names.iter().collect();
        assert_eq!(distinct.len(), a.node_names.len());
        for name in &a.node_names {
            let n = nodes[name.as_str()];
            assert!(n.schedulable);
            assert_eq!(n.gpu_type, p.gpu_type);
            if p.nodes > 1 {
                assert_eq!(n.slots_free, n.slots_total, "a gang takes whole free nodes");
                assert!(whole.insert(name.as_str()));
            }
            *taken.entry(name.as_str()).or_default() += (p.gpu_count / p.nodes).max(1);
        }
    }
    for (name, used) in taken {
        let n = nodes[name];
        assert!(
            used <= n.slots_free,
            "{name} overcommitted: {used} > {}",
            n.slots_free
        );
        assert!(!whole.contains(name) || used == n.slots_total);
    }

    let mut last_position: HashMap<&GpuType, u32> = HashMap::new();
    for q in &out.positions {
        let p = by_id[&q.reservation_id];
        let last = last_position.entry(&p.gpu_type).or_insert(0);
        assert_eq!(q.position, *last + 1, "positions count up per type");
        *last = q.position;
        if let Some(t) = q.estimated_start {
            assert!(t > NOW, "a waiting reservation starts later than now");
        }
    }

    if let Some(max) = s.quotas.max_active_reservations_per_user {
        let mut count: HashMap<&Username, u32> = HashMap::new();
        for r in &s.running {
            *count.entry(&r.user).or_default() += 1;
        }
        let mut added: HashMap<&Username, u32> = HashMap::new();
        for a in &out.admissions {
            *added.entry(&by_id[&a.reservation_id].user).or_default() += 1;
        }
        for (u, n) in added {
            assert!(
                count.get(u).copied().unwrap_or(0) + n <= max,
                "{u} over quota"
            );
        }
    }
}

fn quotas_on() -> Quotas {
    Quotas {
        max_active_reservations_per_user: Some(3),
        max_gpus_per_user: Some(24),
    }
}

#[test]
fn random_passes_never_overcommit_and_every_admission_fits() {
    for seed in 0..300 {
        let mut rng = Rng(seed);
        let quotas = if seed % 2 == 0 {
            quotas_on()
        } else {
            Quotas::default()
        };
        let size = Size {
            nodes: 1 + rng.below(12) as usize,
            queue: rng.below(30) as usize,
            users: 1 + rng.below(6) as usize,
        };
        let s = random_scenario(&mut rng, &size, quotas);
        check_invariants(&s, &s.run());
    }
}

#[test]
fn the_same_input_in_any_order_gives_the_same_outcome() {
    for seed in 0..50 {
        let mut rng = Rng(1000 + seed);
        let size = Size {
            nodes: 10,
            queue: 40,
            users: 5,
        };
        let mut s = random_scenario(&mut rng, &size, quotas_on());
        let first = s.run();
        assert_eq!(s.run(), first);
        rng.shuffle(&mut s.nodes);
        rng.shuffle(&mut s.running);
        rng.shuffle(&mut s.queue);
        assert_eq!(s.run(), first, "seed {seed}");
    }
}

/// What a reservation gets from a pass: admitted now, or an estimate.
fn fate(out: &PassOutcome<u32>, id: u32) -> Option<Option<i64>> {
    if out.admitted_ids().contains(&id) {
        return Some(Some(NOW));
    }
    out.positions
        .iter()
        .find(|q| q.reservation_id == id)
        .map(|q| q.estimated_start)
}

#[test]
fn reservations_later_in_the_order_never_change_the_fate_of_earlier_ones() {
    // Without quotas the scheduling order is (priority, tag, submission, id). Dropping the
    // tail of the queue must leave every remaining reservation's admission and estimate as
    // they were: backfilled reservations never delay anyone ahead of them.
    for seed in 0..100 {
        let mut rng = Rng(5000 + seed);
        let size = Size {
            nodes: 2 + rng.below(8) as usize,
            queue: 5 + rng.below(30) as usize,
            users: 4,
        };
        let mut s = random_scenario(&mut rng, &size, Quotas::default());
        tag_all(&mut s, &mut rng);
        let key = |p: &Pending<u32>| {
            let tag = p.tag.unwrap_or(0.0);
            (-p.priority, tag as u64, p.submitted_at, p.reservation_id)
        };
        s.queue.sort_by_key(key);
        let full = s.run();
        let keep = rng.below(s.queue.len() as u64) as usize;
        s.queue.truncate(keep);
        let head = s.run();
        for p in &s.queue {
            assert_eq!(
                fate(&head, p.reservation_id),
                fate(&full, p.reservation_id),
                "seed {seed}: reservation {}",
                p.reservation_id
            );
        }
    }
}

/// A slow, obviously correct model of a pass without quotas: free slots are recomputed from
/// scratch at every candidate instant, and every candidate start is tried in time order.
fn reference_fates(
    s: &Scenario,
    skip: &BTreeSet<u32>,
) -> BTreeMap<u32, (Option<i64>, Vec<String>)> {
    struct RefNode<'a> {
        name: &'a str,
        cap: i64,
        free_now: i64,
        schedulable: bool,
        releases: Vec<(i64, i64)>,
        holds: Vec<(i64, i64, i64)>,
    }
    impl RefNode<'_> {
        fn free(&self, t: i64) -> i64 {
            let released: i64 = self.releases.iter().filter(|r| r.0 <= t).map(|r| r.1).sum();
            let held: i64 = self
                .holds
                .iter()
                .filter(|h| h.0 <= t && t < h.1)
                .map(|h| h.2)
                .sum();
            (self.free_now + released).min(self.cap) - held
        }
        fn fits(&self, t: i64, d: i64, need: i64) -> bool {
            let end = t + d;
            let inside = self
                .releases
                .iter()
                .map(|r| r.0)
                .chain(self.holds.iter().flat_map(|h| [h.0, h.1]))
                .filter(|&p| t < p && p < end);
            std::iter::once(t)
                .chain(inside)
                .all(|p| self.free(p) >= need)
        }
    }
    let mut sorted: Vec<&NodeCapacity> = s.nodes.iter().collect();
    sorted.sort_by(|a, b| (&a.gpu_type, &a.name).cmp(&(&b.gpu_type, &b.name)));
    let mut nodes: Vec<RefNode<'_>> = sorted
        .iter()
        .map(|n| RefNode {
            name: &n.name,
            cap: i64::from(n.slots_total),
            free_now: i64::from(n.slots_free),
            schedulable: n.schedulable,
            releases: s
                .running
                .iter()
                .filter(|r| r.node_names.contains(&n.name))
                .map(|r| (r.expires_at.max(NOW + 1), i64::from(r.gpus_per_node.max(1))))
                .collect(),
            holds: Vec::new(),
        })
        .collect();
    let mut queue: Vec<&Pending<u32>> = s.queue.iter().collect();
    queue.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.tag.unwrap_or(0.0).total_cmp(&b.tag.unwrap_or(0.0)))
            .then(a.submitted_at.cmp(&b.submitted_at))
            .then(a.reservation_id.cmp(&b.reservation_id))
    });
    let mut fates = BTreeMap::new();
    for p in queue {
        if skip.contains(&p.reservation_id) {
            continue;
        }
        let k = p.nodes.max(1) as usize;
        let need = i64::from(p.gpu_count.div_ceil(p.nodes.max(1)).max(1));
        let d = p.duration_secs;
        let mut candidates: Vec<i64> = nodes
            .iter()
            .flat_map(|n| {
                n.releases
                    .iter()
                    .map(|r| r.0)
                    .chain(n.holds.iter().map(|h| h.1))
            })
            .chain([NOW])
            .filter(|&t| t >= NOW)
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let eligible: Vec<usize> = (0..nodes.len())
            .filter(|&i| {
                let n = &nodes[i];
                n.schedulable && n.cap >= need && n.cap > 0 && sorted[i].gpu_type == p.gpu_type
            })
            .collect();
        let mut placed = None;
        for &t in &candidates {
            if k == 1 {
                let best = eligible
                    .iter()
                    .filter(|&&i| nodes[i].fits(t, d, need))
                    .min_by_key(|&&i| (nodes[i].free(t), i));
                if let Some(&i) = best {
                    placed = Some((t, vec![i]));
                    break;
                }
            } else {
                let whole: Vec<usize> = eligible
                    .iter()
                    .copied()
                    .filter(|&i| nodes[i].fits(t, d, nodes[i].cap))
                    .take(k)
                    .collect();
                if whole.len() == k {
                    placed = Some((t, whole));
                    break;
                }
            }
        }
        let fate = match placed {
            Some((t, chosen)) => {
                for &i in &chosen {
                    let amount = if k == 1 { need } else { nodes[i].cap };
                    nodes[i].holds.push((t, t + d, amount));
                }
                let names = if t == NOW {
                    chosen.iter().map(|&i| nodes[i].name.to_owned()).collect()
                } else {
                    Vec::new()
                };
                (Some(t), names)
            }
            None => (None, Vec::new()),
        };
        fates.insert(p.reservation_id, fate);
    }
    fates
}

#[test]
fn the_pass_matches_a_brute_force_model_of_conservative_backfill() {
    for seed in 0..300 {
        let mut rng = Rng(9000 + seed);
        let size = Size {
            nodes: 1 + rng.below(10) as usize,
            queue: rng.below(40) as usize,
            users: 1 + rng.below(5) as usize,
        };
        let mut s = random_scenario(&mut rng, &size, Quotas::default());
        tag_all(&mut s, &mut rng);
        let out = s.run();
        let skip: BTreeSet<u32> = out.impossible.iter().map(|i| i.reservation_id).collect();
        let mut actual = BTreeMap::new();
        for a in &out.admissions {
            actual.insert(a.reservation_id, (Some(NOW), a.node_names.clone()));
        }
        for q in &out.positions {
            actual.insert(q.reservation_id, (q.estimated_start, Vec::new()));
        }
        assert_eq!(actual, reference_fates(&s, &skip), "seed {seed}");
    }
}

// ---- speed --------------------------------------------------------------------------------

/// The benchmark from the processor issue: 1,000 nodes × 8 GPUs, mostly busy, 10,000 queued.
/// Run with
/// `cargo test -p gpudev-domain --release -- --ignored --nocapture one_pass_over`.
#[test]
#[ignore = "timing harness; run in release mode"]
fn one_pass_over_1000_nodes_and_10000_queued_reservations_is_fast() {
    let mut rng = Rng(42);
    let mut s = Scenario {
        quotas: Quotas {
            max_active_reservations_per_user: Some(20),
            max_gpus_per_user: Some(64),
        },
        horizon: 2 * HOUR,
        ..Scenario::default()
    };
    for i in 0..1000 {
        let name = format!("gpu-node-{i:04}");
        // Busy: most nodes full, the rest partly used.
        let mut free = 8u32;
        while free > 0 && rng.below(12) > 0 {
            let take = (*rng.pick(&[1u32, 2, 4, 8])).min(free);
            free -= take;
            let owner = format!("user{}", rng.below(300));
            s.running.push(running(
                &owner,
                take,
                &[&name],
                // Not overdue: an overdue release would honestly move promises made on it.
                NOW + 120 + rng.below(24 * HOUR as u64) as i64,
            ));
        }
        s.nodes.push(node(&name, "h100", 8, free));
    }
    for id in 0..10_000u32 {
        let owner = format!("user{}", rng.below(300));
        let mut p = if rng.below(20) == 0 {
            gang(id, &owner, "h100", 2 + rng.below(3) as u32, 8)
        } else {
            pending(id, &owner, "h100", *rng.pick(&[1, 1, 2, 4, 8]))
        };
        p.priority = *rng.pick(&[-10, 0, 0, 0, 10]);
        p.submitted_at = NOW - rng.below(7 * 24 * HOUR as u64) as i64;
        p.duration_secs = 300 + rng.below(24 * HOUR as u64) as i64;
        // Half the queue was tagged by earlier passes (ties included); the rest is new.
        if rng.below(2) == 0 {
            p.tag = Some(rng.below(50) as f64 * 3600.0);
        }
        s.queue.push(p);
    }
    for u in 0..300 {
        s.usage
            .insert(user(&format!("user{u}")), rng.below(1_000_000) as f64);
    }

    let mut times = Vec::new();
    let mut out = None;
    for _ in 0..5 {
        let started = std::time::Instant::now();
        out = Some(s.run());
        times.push(started.elapsed());
    }
    times.sort();
    let out = out.unwrap();
    let free: u32 = s.nodes.iter().map(|n| n.slots_free).sum();
    let estimated = out
        .positions
        .iter()
        .filter(|q| q.estimated_start.is_some())
        .count();
    println!(
        "scheduler pass: {} nodes ({} GPUs free), {} running, {} queued -> {} admitted, {} \
         waiting ({} with an estimate), {} impossible; median {:?}, min {:?}, max {:?}",
        s.nodes.len(),
        free,
        s.running.len(),
        s.queue.len(),
        out.admissions.len(),
        out.positions.len(),
        estimated,
        out.impossible.len(),
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
    );
    check_invariants(&s, &out);

    // The next pass keeps, and tries to move up, every promise the first one made.
    let (next, later) = s.next_pass(&out, NOW + 60);
    let mut second = Vec::new();
    let mut next_out = None;
    for _ in 0..5 {
        let started = std::time::Instant::now();
        next_out = Some(next.run_at(later));
        second.push(started.elapsed());
    }
    second.sort();
    let next_out = next_out.unwrap();
    let promised = next.queue.iter().filter(|p| p.promise.is_some()).count();
    let moved = next_out
        .positions
        .iter()
        .filter(|q| q.promise_moved.is_some())
        .count();
    println!(
        "next pass with {promised} promises to keep: median {:?}, max {:?}; {moved} moved",
        second[second.len() / 2],
        second[second.len() - 1],
    );
    let reasons: BTreeSet<&str> = next_out
        .positions
        .iter()
        .filter_map(|q| q.promise_moved.as_deref())
        .collect();
    assert_eq!(
        moved, 0,
        "nothing changed, so every promise holds: {reasons:?}"
    );
}
