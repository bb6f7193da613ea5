//! Leadership: one leader at a time, a standby takes over when the leader's lock session dies,
//! and the deposed leader's writes are refused.

use std::time::{Duration, Instant};

use gpudev_domain::ReservationStatus;
use gpudev_processor::ProcessorError;
use gpudev_processor::leader::{LeaderSession, current_leader_pid};

use crate::common::{Ask, env, wait_status};

#[tokio::test]
async fn only_one_processor_leads_and_a_follower_refuses_to_work() {
    let env = env().await;
    let first = env.processor().await;
    let second = env.processor().await;
    assert!(first.try_become_leader().await.unwrap());
    assert!(!second.try_become_leader().await.unwrap());
    assert!(matches!(
        second.process_once().await,
        Err(ProcessorError::NotLeader)
    ));
    assert!(matches!(
        second.scheduler_pass().await,
        Err(ProcessorError::NotLeader)
    ));
    assert!(matches!(
        second.reconcile().await,
        Err(ProcessorError::NotLeader)
    ));
    let db = env.db.connect().await;
    assert_eq!(
        current_leader_pid(&db, env.queue().name()).await.unwrap(),
        first.leader_backend_pid()
    );
    first.step_down();
    assert!(second.try_become_leader().await.unwrap());
}

#[tokio::test]
async fn a_standby_takes_over_when_the_leaders_session_dies_and_the_deposed_leader_cannot_write() {
    let env = env().await;
    env.cluster.seed_nodes("h100", 1, 8).await;
    let alice = env.user("alice").await;
    let old = env.leader().await;
    let standby = env.processor().await;
    assert!(!standby.try_become_leader().await.unwrap());

    // The leader's lock connection dies (network cut, backend killed, …).
    let db = env.db.connect().await;
    let pid = old.leader_backend_pid().unwrap();
    db.execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let started = Instant::now();
    while !standby.try_become_leader().await.unwrap() {
        assert!(started.elapsed() < Duration::from_secs(5), "no takeover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let id = env.submit(&alice, Ask::gpus("h100", 8)).await;
    // The deposed leader still believes it leads until it tries to write: its pass is refused
    // and changes nothing.
    let refused = old.scheduler_pass().await;
    assert!(
        matches!(refused, Err(ProcessorError::LostLeadership(_))),
        "{refused:?}"
    );
    assert!(!old.is_leader());
    assert_eq!(env.status(id).await, ReservationStatus::Queued);
    env.assert_gone(id).await;

    let outcome = standby.process_once().await.unwrap();
    assert_eq!(outcome.pass.unwrap().admitted, vec![id]);
}

#[tokio::test]
async fn a_hung_leader_loses_its_lock_after_the_lease() {
    let env = env().await;
    let pg = env.config.db.clone();
    let lease = Duration::from_secs(2);
    let hung = LeaderSession::try_acquire(&pg, "gpu_reservations", lease)
        .await
        .unwrap()
        .unwrap();
    assert!(
        LeaderSession::try_acquire(&pg, "gpu_reservations", lease)
            .await
            .unwrap()
            .is_none()
    );
    // Hold the session without using it: the heartbeat cannot run, as in a frozen process.
    let guard = hung.lock().await.unwrap();
    let started = Instant::now();
    let taken = loop {
        if let Some(s) = LeaderSession::try_acquire(&pg, "gpu_reservations", lease)
            .await
            .unwrap()
        {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "lock never released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    drop(guard);
    // The hung session is dead: its writes fail.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = hung.lock().await;
    let dead = match client {
        Err(_) => true,
        Ok(c) => c.simple_query("SELECT 1").await.is_err(),
    };
    assert!(dead);
    drop(taken);
}

#[tokio::test]
async fn running_processors_fail_over_within_seconds() {
    let mut env = env().await;
    env.config.leader_retry = Duration::from_millis(200);
    env.cluster.seed_nodes("t4", 2, 4).await;
    let _sim = env.cluster.start_background(Duration::from_millis(50));
    let alice = env.user("alice").await;
    let a = env.processor().await;
    let b = env.processor().await;
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for p in [&a, &b] {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(tx);
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            p.run_until_stopped(async move {
                let _ = rx.await;
            })
            .await
        }));
    }
    let first = env.submit(&alice, Ask::gpus("t4", 1)).await;
    wait_status(
        &env,
        first,
        ReservationStatus::Active,
        Duration::from_secs(10),
    )
    .await;
    let (leader, other) = if a.is_leader() { (&a, &b) } else { (&b, &a) };
    assert!(!other.is_leader());

    let db = env.db.connect().await;
    let pid = leader.leader_backend_pid().unwrap();
    let killed = Instant::now();
    db.execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let second = env.submit(&alice, Ask::gpus("t4", 1)).await;
    wait_status(
        &env,
        second,
        ReservationStatus::Active,
        Duration::from_secs(15),
    )
    .await;
    let took = killed.elapsed();
    eprintln!("failover: second reservation active {took:?} after the leader's session died");
    assert!(!(a.is_leader() && b.is_leader()), "never two leaders");
    for stop in stops {
        let _ = stop.send(());
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
