//! The scheduling pass end to end: per-node fit, positions and estimates written for the API,
//! impossible requests failed at once.

use gpudev_domain::ReservationStatus;

use crate::common::{Ask, env, until_status};

#[tokio::test]
async fn two_nodes_with_two_free_gpus_each_do_not_take_a_four_gpu_reservation() {
    let env = env().await;
    let nodes = env.cluster.seed_nodes("h100", 2, 8).await;
    for node in &nodes {
        env.occupy(node, 6).await;
    }
    let alice = env.user("alice").await;
    let four = env.submit(&alice, Ask::gpus("h100", 4)).await;
    let p = env.leader().await;
    let report = p.scheduler_pass().await.unwrap();
    assert!(report.admitted.is_empty(), "{report:?}");
    let r = env.get(four).await;
    assert_eq!(r.status, ReservationStatus::Queued);
    assert_eq!(r.queue_position, Some(1));
    assert_eq!(
        r.estimated_start_at, None,
        "the other jobs have no known end"
    );
    assert!(
        r.detailed_status
            .as_deref()
            .unwrap()
            .contains("no start can be predicted"),
        "{:?}",
        r.detailed_status
    );
    // A 2-GPU reservation fits where the 4-GPU one does not (it cannot delay it: no estimate).
    let two = env.submit(&alice, Ask::gpus("h100", 2)).await;
    let report = p.scheduler_pass().await.unwrap();
    assert_eq!(report.admitted, vec![two]);
    assert_eq!(env.status(four).await, ReservationStatus::Queued);
}

#[tokio::test]
async fn a_full_cluster_gives_queued_reservations_positions_and_estimates_from_running_ends() {
    let env = env().await;
    env.cluster.seed_nodes("a100", 1, 8).await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let running = env
        .submit(
            &alice,
            Ask {
                hours: 3.0,
                ..Ask::gpus("a100", 8)
            },
        )
        .await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    until_status(&env, &p, running, ReservationStatus::Active).await;
    let expires = env.get(running).await.expires_at.unwrap();

    let first = env
        .submit(
            &bob,
            Ask {
                hours: 1.0,
                ..Ask::gpus("a100", 8)
            },
        )
        .await;
    let second = env
        .submit(
            &bob,
            Ask {
                hours: 1.0,
                ..Ask::gpus("a100", 4)
            },
        )
        .await;
    p.scheduler_pass().await.unwrap();
    let (a, b) = (env.get(first).await, env.get(second).await);
    assert_eq!((a.queue_position, b.queue_position), (Some(1), Some(2)));
    // The GPUs are free once the expiry job has ended the running reservation.
    let released = expires + chrono::Duration::from_std(p.config().release_delay).unwrap();
    let eta_a = a.estimated_start_at.unwrap();
    assert!(
        (eta_a - released).num_seconds().abs() <= 1,
        "{eta_a} vs {released}"
    );
    // The second starts once the first has run its hour and its GPUs are released too.
    let delay = chrono::Duration::from_std(p.config().release_delay).unwrap();
    let eta_b = b.estimated_start_at.unwrap();
    assert!(
        (eta_b - (released + chrono::Duration::hours(1) + delay))
            .num_seconds()
            .abs()
            <= 1
    );
    // Ready when started plus the type's median start-up time: here the one box that started.
    let r = env.get(running).await;
    let startup = (r.launched_at.unwrap() - r.admitted_at.unwrap()).num_milliseconds();
    let ready = a.estimated_ready_at.expect("a box of the type has started");
    assert_eq!(
        (ready - eta_a).num_seconds(),
        (startup as f64 / 1000.0).round() as i64
    );
    // Nothing can be ordered before bob's first request (he starts level, and ties go to the
    // earlier submission), so its start is promised; his second one queues behind it.
    assert_eq!(
        a.detailed_status.as_deref(),
        Some("waiting in queue: position 1 for a100; start promised")
    );
    assert_eq!(
        b.detailed_status.as_deref(),
        Some("waiting in queue: position 2 for a100")
    );
}

#[tokio::test]
async fn a_request_that_can_never_fit_fails_at_once_with_a_clear_reason() {
    let env = env().await;
    env.cluster.seed_nodes("t4", 2, 4).await;
    let alice = env.user("alice").await;
    let no_nodes = env.submit(&alice, Ask::gpus("b200", 1)).await;
    let too_big = env.submit(&alice, Ask::gpus("t4", 8)).await;
    let fits = env.submit(&alice, Ask::gpus("t4", 4)).await;
    let p = env.leader().await;
    let outcome = p.process_once().await.unwrap();
    let pass = outcome.pass.unwrap();
    assert_eq!(pass.admitted, vec![fits]);
    assert_eq!(pass.failed.len(), 2);
    let r = env.get(no_nodes).await;
    assert_eq!(r.status, ReservationStatus::Failed);
    assert_eq!(
        r.failure_reason.as_deref(),
        Some("cannot be scheduled: the cluster has no b200 nodes")
    );
    let r = env.get(too_big).await;
    assert_eq!(r.status, ReservationStatus::Failed);
    let reason = r.failure_reason.unwrap();
    assert!(reason.contains("largest t4 node has 4"), "{reason}");
    assert!(r.ended_at.is_some());
    env.assert_gone(no_nodes).await;
    env.assert_gone(too_big).await;
}

#[tokio::test]
async fn higher_priority_goes_first_and_cpu_nodes_take_four_dev_boxes() {
    let env = env().await;
    env.cluster.seed_nodes("cpu-x86", 1, 0).await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(env.submit(&alice, Ask::gpus("cpu-x86", 0)).await);
    }
    let urgent = env
        .submit(
            &bob,
            Ask {
                priority: 50,
                ..Ask::gpus("cpu-x86", 0)
            },
        )
        .await;
    let mut config = env.config.clone();
    config.quotas = gpudev_domain::Quotas::default();
    let p = env.processor_with(config).await;
    assert!(p.try_become_leader().await.unwrap());
    let report = p.scheduler_pass().await.unwrap();
    assert_eq!(report.admitted.len(), 4, "{report:?}");
    assert_eq!(report.admitted[0], urgent);
    assert_eq!(report.waiting, 2);
}

#[tokio::test]
async fn a_promise_is_stored_kept_when_a_lighter_user_submits_later_and_recorded_in_the_history() {
    let env = env().await;
    env.cluster.seed_nodes("a100", 1, 8).await;
    let (alice, bob, carol) = (
        env.user("alice").await,
        env.user("bob").await,
        env.user("carol").await,
    );
    let running = env
        .submit(
            &alice,
            Ask {
                hours: 1.0,
                ..Ask::gpus("a100", 8)
            },
        )
        .await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    until_status(&env, &p, running, ReservationStatus::Active).await;

    let bobs = env.submit(&bob, Ask::gpus("a100", 8)).await;
    p.scheduler_pass().await.unwrap();
    let b = env.get(bobs).await;
    let promised = b.promised_start_at.expect("within the horizon: promised");
    assert_eq!(b.estimated_start_at, Some(promised));
    assert_eq!(b.first_estimated_start_at, Some(promised));

    // Carol has used nothing either, but asks later: she goes after bob's promise.
    let carols = env.submit(&carol, Ask::gpus("a100", 8)).await;
    p.scheduler_pass().await.unwrap();
    p.scheduler_pass().await.unwrap();
    let (b, c) = (env.get(bobs).await, env.get(carols).await);
    assert_eq!(b.promised_start_at, Some(promised));
    assert_eq!((b.queue_position, c.queue_position), (Some(1), Some(2)));
    let delay = chrono::Duration::from_std(p.config().release_delay).unwrap();
    assert_eq!(
        c.estimated_start_at,
        Some(promised + chrono::Duration::hours(2) + delay),
        "after bob's two hours and the release of his GPUs"
    );

    let db = env.db.connect().await;
    let events = db
        .query(
            "SELECT reason, details->>'promised_start' FROM reservation_events \
             WHERE reservation_id = $1 AND kind = 'estimate'",
            &[&bobs],
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "one promise, recorded once");
    let reason: String = events[0].get(0);
    assert!(reason.starts_with("promised to start by"), "{reason}");
    let tags = db
        .query(
            "SELECT queue_tag FROM reservations WHERE reservation_id = ANY($1) ORDER BY created_at",
            &[&vec![running, bobs, carols]],
        )
        .await
        .unwrap();
    assert!(
        tags.iter().all(|r| r.get::<_, Option<f64>>(0).is_some()),
        "every reservation a pass has seen keeps its tag, running ones too"
    );
    // The type's virtual time is the smallest tag still waiting: bob's, who leads the queue.
    let clock: f64 = db
        .query_one(
            "SELECT virtual_time FROM scheduler_clocks WHERE gpu_type = 'a100'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let bobs_tag: f64 = db
        .query_one(
            "SELECT queue_tag FROM reservations WHERE reservation_id = $1",
            &[&bobs],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(clock, bobs_tag);

    // The state the API answers from is written again only when something in it changed (the
    // passing time and alice's growing use do not count).
    let generation = || async {
        db.query_one("SELECT generation FROM scheduler_state", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let before = generation().await;
    // A second later alice has used more (the policy counts whole seconds).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    p.scheduler_pass().await.unwrap();
    assert_eq!(generation().await, before);
    env.cancel(carols).await;
    p.scheduler_pass().await.unwrap();
    assert_eq!(
        generation().await,
        before + 1,
        "carol's request left the queue"
    );
}

#[tokio::test]
async fn a_promise_on_a_node_that_is_cordoned_moves_to_another_and_the_history_says_why() {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, Patch, PatchParams};

    let env = env().await;
    let nodes = env.cluster.seed_nodes("a100", 2, 8).await;
    let (alice, bob) = (env.user("alice").await, env.user("bob").await);
    // Both nodes busy: one for an hour, the other for two.
    let short = env
        .submit(
            &alice,
            Ask {
                hours: 1.0,
                ..Ask::gpus("a100", 8)
            },
        )
        .await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    let long = env
        .submit(
            &alice,
            Ask {
                hours: 2.0,
                ..Ask::gpus("a100", 8)
            },
        )
        .await;
    p.scheduler_pass().await.unwrap();
    until_status(&env, &p, short, ReservationStatus::Active).await;
    until_status(&env, &p, long, ReservationStatus::Active).await;
    let short_node = env.get(short).await.node_names[0].clone();
    let long_node = env.get(long).await.node_names[0].clone();
    assert_eq!(
        {
            let mut both = vec![short_node.clone(), long_node.clone()];
            both.sort();
            both
        },
        {
            let mut seeded = nodes.clone();
            seeded.sort();
            seeded
        }
    );

    // Bob is promised the node that frees first.
    let bobs = env.submit(&bob, Ask::gpus("a100", 8)).await;
    p.scheduler_pass().await.unwrap();
    let first = env.get(bobs).await;
    let promised = first
        .promised_start_at
        .expect("promised within the horizon");

    // That node is cordoned: the promise cannot hold; bob is promised the other one, later,
    // and his history says why.
    Api::<Node>::all(env.cluster.client())
        .patch(
            &short_node,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    let mut moved = first.clone();
    for _ in 0..50 {
        p.scheduler_pass().await.unwrap();
        moved = env.get(bobs).await;
        if moved.promised_start_at != Some(promised) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let later = moved.promised_start_at.expect("promised again");
    assert!(later > promised, "{later} after {promised}");
    let db = env.db.connect().await;
    let reasons: Vec<String> = db
        .query(
            "SELECT reason FROM reservation_events WHERE reservation_id = $1 AND kind = 'estimate' \
             ORDER BY event_id",
            &[&bobs],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].starts_with("promised to start by"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("promise moved to")
            && reasons[1].contains(&format!("node {short_node} is no longer available")),
        "{reasons:?}"
    );
}
