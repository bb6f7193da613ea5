//! Bookings among queued and running work: fixed at their booked start, never overlapped by
//! what is placed after them, backfilled around, and honoured to the minute when running work
//! ends at its expiry.

use super::*;

/// A booking of `gpus` h100 GPUs on one node from `start` for `duration_secs`.
fn booking(id: u32, owner: &str, gpus: u32, start: i64, duration_secs: i64) -> Pending<u32> {
    Pending {
        start_at: Some(start),
        ..lasting(pending(id, owner, "h100", gpus), duration_secs)
    }
}

#[test]
fn a_booking_is_promised_its_booked_start_and_waits_for_it_on_a_free_node() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 8)],
        queue: vec![booking(1, "alice", 8, NOW + 2 * HOUR, 2 * HOUR)],
        horizon: 0,
        ..Scenario::default()
    };
    let out = s.run();
    assert!(out.admissions.is_empty(), "not before its time: {out:#?}");
    let info = out.info(1);
    assert_eq!(info.estimated_start, Some(NOW + 2 * HOUR));
    assert_eq!(
        info.promise,
        Some(Promise {
            start: NOW + 2 * HOUR,
            node_names: vec!["a".to_owned()],
        }),
        "promised even with no horizon"
    );
    assert_eq!(info.blocked_reason, None);
}

#[test]
fn queued_work_is_backfilled_before_a_booking_only_where_it_ends_in_time() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 8)],
        queue: vec![
            // Submitted before the booking, and first in fair order, but 3 hours long.
            lasting(pending(1, "bob", "h100", 8), 3 * HOUR),
            // Ends exactly when the booking starts.
            lasting(pending(2, "carol", "h100", 4), 2 * HOUR),
            booking(3, "alice", 8, NOW + 2 * HOUR, HOUR),
        ],
        horizon: 0,
        ..Scenario::default()
    };
    let out = s.run();
    assert_eq!(out.admitted(), vec![(2, vec!["a"])]);
    assert_eq!(out.info(3).estimated_start, Some(NOW + 2 * HOUR));
    assert_eq!(
        out.info(1).estimated_start,
        Some(NOW + 3 * HOUR),
        "the long request goes after the booking, not across it"
    );
}

#[test]
fn a_booking_leaves_the_rest_of_its_node_to_others() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 8)],
        queue: vec![
            booking(1, "alice", 4, NOW + HOUR, 4 * HOUR),
            lasting(pending(2, "bob", "h100", 4), 10 * HOUR),
        ],
        ..Scenario::default()
    };
    let out = s.run();
    assert_eq!(out.admitted(), vec![(2, vec!["a"])]);
    assert_eq!(out.info(1).estimated_start, Some(NOW + HOUR));
}

#[test]
fn a_gang_booking_takes_whole_nodes_at_its_start_and_single_nodes_fill_in_before() {
    let s = Scenario {
        nodes: vec![
            node("a", "h100", 8, 8),
            node("b", "h100", 8, 8),
            node("c", "h100", 8, 8),
        ],
        queue: vec![
            Pending {
                start_at: Some(NOW + 2 * HOUR),
                ..lasting(gang(1, "alice", "h100", 2, 8), 2 * HOUR)
            },
            lasting(pending(2, "bob", "h100", 8), 5 * HOUR),
            lasting(pending(3, "carol", "h100", 8), HOUR),
            lasting(pending(4, "dave", "h100", 8), HOUR),
        ],
        ..Scenario::default()
    };
    let out = s.run();
    let gang = out.info(1);
    assert_eq!(gang.estimated_start, Some(NOW + 2 * HOUR));
    let gang_nodes = gang.promise.as_ref().map(|p| p.node_names.clone()).unwrap();
    assert_eq!(gang_nodes, ["a", "b"]);
    // Bob's five hours only fit on the node the gang does not need; the short ones fill the
    // gang's nodes until it starts.
    let admitted = out.admitted();
    assert!(admitted.contains(&(2, vec!["c"])), "{admitted:?}");
    assert!(admitted.contains(&(3, vec!["a"])), "{admitted:?}");
    assert!(admitted.contains(&(4, vec!["b"])), "{admitted:?}");
}

#[test]
fn a_booking_whose_capacity_is_held_at_its_start_is_placed_as_soon_after_with_the_reason() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0)],
        running: vec![running("zed", 8, &["a"], NOW + 5 * HOUR)],
        queue: vec![booking(1, "alice", 8, NOW + 2 * HOUR, HOUR)],
        ..Scenario::default()
    };
    let out = s.run();
    let info = out.info(1);
    assert_eq!(info.estimated_start, Some(NOW + 5 * HOUR));
    assert!(info.promise.is_some());
    assert!(
        info.blocked_reason
            .as_deref()
            .is_some_and(|r| r.contains("booked start cannot be honoured")),
        "{info:?}"
    );
}

#[test]
fn the_prediction_for_a_booking_gives_the_earliest_start_that_would_be_honoured() {
    // Bob was promised the node from 1 h to 4 h before alice asks for 2 h.
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0)],
        running: vec![running("zed", 8, &["a"], NOW + HOUR)],
        queue: vec![lasting(pending(1, "bob", "h100", 8), 3 * HOUR)],
        horizon: 2 * HOUR,
        ..Scenario::default()
    };
    let input = s.input(NOW);
    let out = schedule(&input);
    assert!(out.info(1).promise.is_some());
    let state = QueueState::after(&input, &out, 0);
    let predict = |start: i64| {
        let mut b = booking(2, "alice", 8, start, HOUR);
        b.submitted_at = NOW + 10;
        state.predict(b, NOW + 10)
    };
    assert!(
        matches!(
            predict(NOW + 2 * HOUR),
            Prediction::Waits { estimated_start: Some(t), promised: true, .. }
                if t == NOW + 4 * HOUR
        ),
        "the promise is kept, and the earliest honourable start is when it ends"
    );
    // From the end of bob's promise on, the booking is honoured as asked.
    assert!(matches!(
        predict(NOW + 4 * HOUR),
        Prediction::Waits { estimated_start: Some(t), .. } if t == NOW + 4 * HOUR
    ));
}

#[test]
fn a_promise_never_moves_earlier_into_a_bookings_time_and_a_booking_never_before_it() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0), node("b", "h100", 8, 0)],
        running: vec![
            running("zed", 8, &["a"], NOW + HOUR),
            running("zed", 8, &["b"], NOW + 3 * HOUR),
        ],
        queue: vec![
            lasting(pending(1, "bob", "h100", 8), 2 * HOUR),
            booking(2, "alice", 8, NOW + 3 * HOUR, HOUR),
        ],
        horizon: 4 * HOUR,
        ..Scenario::default()
    };
    let first = s.run();
    assert_eq!(first.info(1).estimated_start, Some(NOW + HOUR));
    assert_eq!(first.info(2).estimated_start, Some(NOW + 3 * HOUR));
    // Both nodes free early: bob moves up and starts now; alice still waits for her time.
    let (mut next, later) = s.next_pass(&first, NOW + 600);
    next.running.clear();
    next.nodes.iter_mut().for_each(|n| n.slots_free = 8);
    let out = next.run_at(later);
    assert_eq!(out.admitted_ids(), vec![1]);
    assert_eq!(out.info(2).estimated_start, Some(NOW + 3 * HOUR));
}

#[test]
fn a_booking_is_admitted_at_its_start_when_the_work_before_it_ends_at_expiry() {
    // The only node is busy until exactly the booked start; a heavy queue waits as well.
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0)],
        running: vec![running("zed", 8, &["a"], NOW + 2 * HOUR)],
        queue: vec![
            lasting(pending(1, "bob", "h100", 8), HOUR),
            lasting(pending(2, "carol", "h100", 8), HOUR),
            booking(3, "alice", 8, NOW + 2 * HOUR, HOUR),
        ],
        horizon: 0,
        ..Scenario::default()
    };
    let first = s.run();
    assert_eq!(first.info(3).estimated_start, Some(NOW + 2 * HOUR));
    assert_eq!(first.info(1).estimated_start, Some(NOW + 3 * HOUR));
    // A pass a minute before: still nothing. At the booked start zed has ended: alice starts.
    let (next, _) = s.next_pass(&first, NOW + 2 * HOUR - 60);
    let before = next.run_at(NOW + 2 * HOUR - 60);
    assert!(before.admissions.is_empty(), "{before:#?}");
    let (mut at, _) = s.next_pass(&first, NOW + 2 * HOUR);
    at.running.clear();
    at.nodes[0].slots_free = 8;
    let out = at.run_at(NOW + 2 * HOUR);
    assert_eq!(out.admitted(), vec![(3, vec!["a"])]);
    assert_eq!(out.info(1).estimated_start, Some(NOW + 3 * HOUR));
}

#[test]
fn cancelling_a_booking_frees_its_slot_at_the_next_pass() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 8)],
        queue: vec![
            booking(1, "alice", 8, NOW + HOUR, HOUR),
            lasting(pending(2, "bob", "h100", 8), 3 * HOUR),
        ],
        ..Scenario::default()
    };
    let first = s.run();
    assert!(first.admissions.is_empty());
    let (mut next, later) = s.next_pass(&first, NOW + 60);
    next.queue.retain(|p| p.reservation_id != 1);
    assert_eq!(next.run_at(later).admitted_ids(), vec![2]);
}

#[test]
fn a_booking_counts_in_its_owners_fair_share_like_running_work() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0)],
        running: vec![running("zed", 8, &["a"], NOW + 10 * HOUR)],
        queue: vec![
            booking(1, "alice", 8, NOW + 20 * HOUR, 2 * HOUR),
            pending(2, "alice", "h100", 8),
            pending(3, "bob", "h100", 8),
        ],
        clocks: BTreeMap::from([(gpu("h100"), 1000.0)]),
        ..Scenario::default()
    };
    let out = s.run();
    let tags = tags(&out);
    assert_eq!(tags[&1], 1000.0);
    assert_eq!(
        tags[&2],
        1000.0 + 16.0 * 3600.0,
        "behind her 16 booked GPU-hours"
    );
    assert_eq!(tags[&3], 1000.0);
    assert_eq!(
        out.clocks[&gpu("h100")],
        1000.0,
        "the waiting booking does not hold the virtual time below what others wait with"
    );
}

/// Passes every minute over random bookings among random queued and running work, where
/// running work ends exactly at its expiry: every booking accepted at submit (its prediction
/// was its booked start) is admitted at that minute, and no node is ever overcommitted.
#[test]
fn random_bookings_are_honoured_to_the_minute_when_running_work_ends_at_expiry() {
    const MINUTE: i64 = 60;
    let mut all_honoured = 0;
    for seed in 0..12u64 {
        let mut rng = Rng(70_000 + seed);
        let nodes: Vec<NodeCapacity> = (0..1 + rng.below(4))
            .map(|i| node(&format!("n{i}"), "h100", 8, 8))
            .collect();
        let mut s = Scenario {
            nodes,
            horizon: 2 * HOUR,
            aging: 1.0,
            ..Scenario::default()
        };
        let mut next_id = 1u32;
        let mut booked: BTreeMap<u32, i64> = BTreeMap::new();
        let mut honoured = 0;
        let mut now = NOW;
        let end = NOW + 12 * HOUR;
        while now < end {
            // Work that reached its expiry ends now, exactly.
            let (ended, kept): (Vec<_>, Vec<_>) =
                s.running.drain(..).partition(|r| r.expires_at <= now);
            s.running = kept;
            for r in ended {
                for name in &r.node_names {
                    let n = s.nodes.iter_mut().find(|n| &n.name == name).unwrap();
                    n.slots_free += r.gpus_per_node.max(1);
                }
            }
            // New arrivals: plain requests, and bookings kept only when honourable.
            for _ in 0..rng.below(3) {
                let owner = format!("u{}", rng.below(4));
                let gpus = *rng.pick(&[1, 2, 4, 8]);
                let mut p = lasting(
                    pending(next_id, &owner, "h100", gpus),
                    MINUTE * (30 + rng.below(300) as i64),
                );
                p.submitted_at = now;
                if rng.below(3) == 0 {
                    let start = now + MINUTE * (10 + rng.below(480) as i64);
                    p.start_at = Some(start);
                    let input = s.input(now);
                    let state = QueueState::after(&input, &schedule(&input), 0);
                    let honourable = matches!(
                        state.predict(p.clone(), now),
                        Prediction::Waits { estimated_start: Some(t), .. } if t == start
                    );
                    if !honourable {
                        next_id += 1;
                        continue;
                    }
                    booked.insert(next_id, start);
                }
                s.queue.push(p);
                next_id += 1;
            }
            let out = s.run_at(now);
            for a in &out.admissions {
                if let Some(&start) = booked.get(&a.reservation_id) {
                    assert_eq!(now, start, "seed {seed}: booking {}", a.reservation_id);
                    honoured += 1;
                }
            }
            for q in &out.positions {
                if let Some(&start) = booked.get(&q.reservation_id) {
                    assert!(now < start, "seed {seed}: booking {q:?} is late");
                    assert_eq!(q.estimated_start, Some(start), "seed {seed}: {q:?}");
                }
            }
            // Carry the pass over: admissions run, the rest keep their tags and promises.
            let by_id: BTreeMap<u32, Pending<u32>> =
                s.queue.drain(..).map(|p| (p.reservation_id, p)).collect();
            for a in &out.admissions {
                let p = &by_id[&a.reservation_id];
                for name in &a.node_names {
                    let n = s.nodes.iter_mut().find(|n| &n.name == name).unwrap();
                    n.slots_free = n.slots_free.checked_sub(p.gpu_count).unwrap_or_else(|| {
                        panic!("seed {seed}: node {name} overcommitted at {now}")
                    });
                }
                s.running.push(Running {
                    user: p.user.clone(),
                    gpu_type: p.gpu_type.clone(),
                    tag: Some(a.tag),
                    booked_secs: p.duration_secs,
                    gpus_per_node: p.gpu_count,
                    node_names: a.node_names.clone(),
                    expires_at: now + p.duration_secs,
                });
            }
            for q in &out.positions {
                let mut p = by_id[&q.reservation_id].clone();
                p.tag = Some(q.tag);
                p.promise = q.promise.clone();
                s.queue.push(p);
            }
            s.clocks = out.clocks;
            now += MINUTE;
        }
        let due = booked.values().filter(|&&t| t < end).count();
        assert_eq!(honoured, due, "seed {seed}: every booking due was admitted");
        all_honoured += honoured;
    }
    eprintln!("{all_honoured} bookings honoured");
    assert!(
        all_honoured >= 50,
        "too few bookings to tell: {all_honoured}"
    );
}

#[test]
fn what_could_be_booked_at_a_time_is_what_a_booking_submitted_now_would_be_promised() {
    // Node a is busy until 3 h; node b has 4 GPUs free for good; c is whole but booked from
    // 1 h to 3 h by someone else.
    let mut c_booked = booking(1, "carol", 8, NOW + HOUR, 2 * HOUR);
    c_booked.promise = Some(Promise {
        start: NOW + HOUR,
        node_names: vec!["c".to_owned()],
    });
    c_booked.tag = Some(0.0);
    let s = Scenario {
        nodes: vec![
            node("a", "h100", 8, 0),
            node("b", "h100", 8, 4),
            node("c", "h100", 8, 8),
        ],
        running: vec![running("zed", 8, &["a"], NOW + 3 * HOUR)],
        queue: vec![c_booked],
        ..Scenario::default()
    };
    let input = s.input(NOW);
    let state = QueueState::after(&input, &schedule(&input), 0);
    let alice = user("alice");
    let at = |start: i64| state.bookable(&9999, &alice, &gpu("h100"), 8, 4, start, HOUR, NOW);

    assert_eq!(
        at(NOW + 2 * HOUR),
        Bookable {
            slots_on_one_node: 4,
            whole_nodes: 0
        },
        "only b's four free GPUs"
    );
    assert_eq!(
        at(NOW + 3 * HOUR),
        Bookable {
            slots_on_one_node: 8,
            whole_nodes: 2
        },
        "a and c are whole again"
    );
    assert_eq!(
        state
            .bookable(&9999, &alice, &gpu("h100"), 8, 1, NOW + 3 * HOUR, HOUR, NOW)
            .whole_nodes,
        0,
        "no gangs where a reservation may not span nodes"
    );
}

#[test]
fn a_booking_holds_its_nodes_for_the_release_delay_so_the_next_one_is_kept_once_it_runs() {
    const DELAY: i64 = 180;
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 8)],
        queue: vec![booking(1, "alice", 8, NOW + HOUR, HOUR)],
        release_delay: DELAY,
        ..Scenario::default()
    };
    let input = s.input(NOW);
    let state = QueueState::after(&input, &schedule(&input), DELAY);
    let mut next = booking(2, "bob", 8, NOW + 2 * HOUR, HOUR);
    next.submitted_at = NOW + 10;
    assert!(matches!(
        state.predict(next, NOW + 10),
        Prediction::Waits { estimated_start: Some(t), .. } if t == NOW + 2 * HOUR + DELAY
    ));
    // Alice's booking runs from its start and frees the node the delay after its end: bob's,
    // booked from then, keeps its promise.
    let mut bob = booking(2, "bob", 8, NOW + 2 * HOUR + DELAY, HOUR);
    bob.tag = Some(0.0);
    bob.promise = Some(Promise {
        start: NOW + 2 * HOUR + DELAY,
        node_names: vec!["a".to_owned()],
    });
    let running_now = Scenario {
        nodes: vec![node("a", "h100", 8, 0)],
        running: vec![running("alice", 8, &["a"], NOW + 2 * HOUR + DELAY)],
        queue: vec![bob],
        release_delay: DELAY,
        ..Scenario::default()
    };
    let out = running_now.run_at(NOW + HOUR + 60);
    let info = out.info(2);
    assert_eq!(info.estimated_start, Some(NOW + 2 * HOUR + DELAY));
    assert_eq!(info.promise_moved, None);
}

#[test]
fn an_extension_that_would_run_into_a_booking_is_found_and_one_beside_it_is_not() {
    let s = Scenario {
        nodes: vec![node("a", "h100", 8, 0), node("b", "h100", 8, 4)],
        running: vec![
            running("zed", 8, &["a"], NOW + 2 * HOUR),
            running("yan", 4, &["b"], NOW + 2 * HOUR),
        ],
        queue: vec![
            booking(1, "alice", 8, NOW + 2 * HOUR, HOUR),
            Pending {
                start_at: Some(NOW + 2 * HOUR),
                ..lasting(pending(2, "bob", "h100", 4), HOUR)
            },
        ],
        ..Scenario::default()
    };
    let input = s.input(NOW);
    let state = QueueState::after(&input, &schedule(&input), 0);
    assert_eq!(state.info_start(1), Some(NOW + 2 * HOUR));
    let extend = |user: &'static str, hours: i64| {
        state.bookings_delayed_by(
            |st| {
                let mut found = false;
                for r in st.running.iter_mut().filter(|r| r.user.as_str() == user) {
                    r.expires_at += hours * HOUR;
                    found = true;
                }
                found
            },
            NOW + 60,
        )
    };
    assert_eq!(extend("zed", 1), vec![(1, NOW + 2 * HOUR)]);
    assert_eq!(extend("yan", 1), vec![], "bob's four GPUs fit beside yan's");
    assert_eq!(extend("nobody", 1), vec![]);
}

impl QueueState<u32> {
    fn info_start(&self, id: u32) -> Option<i64> {
        self.queue
            .iter()
            .find(|p| p.reservation_id == id)
            .and_then(|p| p.promise.as_ref().map(|pr| pr.start))
    }
}
