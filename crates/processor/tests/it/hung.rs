//! A database that stops answering under a running processor: PostgreSQL frozen with SIGSTOP
//! (a cluster the test owns, never the shared one), and the processor's connections cut by a
//! loopback proxy that turns into a black hole. Every loop gives up its step within the
//! statement bound and tries again later; nothing is lost or done twice; once the database
//! answers again the processor leads and works within seconds.
//!
//! Leadership under a hung database: the leader lock is a session's advisory lock, so it is
//! held exactly as long as the server keeps that session. A frozen server keeps it (nobody can
//! take anything from a frozen server); the leader gives itself up when its heartbeat goes
//! unanswered, and once the server resumes, the old session sees its socket closed and ends.
//! When only the leader's path to the server is cut, the server ends the silent session after
//! the lease (`idle_session_timeout`, and `idle_in_transaction_session_timeout` too when it was
//! cut inside a transaction) and a standby takes over.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gpudev_domain::ReservationStatus;
use gpudev_processor::Processor;
use gpudev_processor::leader::{LeaderSession, current_leader_pid};
use gpudev_store::DbConfig;
use gpudev_testkit::kube::Verb;
use uuid::Uuid;

use crate::common::{Ask, Env, fake_env_with, private_env, run, wait_status};

/// The processor's settings here: a 1 s statement bound (the client gives up 2 s later), a
/// short lease, and hidden messages back after 2 s.
const VARS: [(&str, &str); 4] = [
    ("DB_STATEMENT_TIMEOUT_SECONDS", "1"),
    ("DB_CONNECT_TIMEOUT_SECONDS", "2"),
    ("LEADER_LEASE_SECONDS", "4"),
    ("VISIBILITY_TIMEOUT_SECONDS", "2"),
];
const LEASE: Duration = Duration::from_secs(4);
/// How long the database stays frozen: more than three times the bound.
const FREEZE: Duration = Duration::from_secs(10);
/// What the contract allows beyond the bound: the pause between failed steps and a loaded
/// machine.
const MARGIN: Duration = Duration::from_secs(5);

/// How long a statement may go unanswered before the processor gives up on it.
fn bound() -> Duration {
    Duration::from_secs(1) + gpudev_store::connect::ANSWER_GRACE
}

/// Records when a processor's count of failed steps goes up.
struct Failures {
    seen: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Failures {
    fn watch(p: &Processor) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let metrics = p.metrics().clone();
        let task = tokio::spawn({
            let seen = Arc::clone(&seen);
            async move {
                let mut last = metrics.step_failures_total();
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let now = metrics.step_failures_total();
                    if now > last {
                        let at = Instant::now();
                        seen.lock().unwrap().extend((last..now).map(|_| at));
                        last = now;
                    }
                }
            }
        });
        Self { seen, task }
    }

    /// When each failure after `start` was seen, as offsets from `start`.
    fn since(&self, start: Instant) -> Vec<Duration> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|t| **t >= start)
            .map(|t| *t - start)
            .collect()
    }
}

impl Drop for Failures {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks that the steps failing during an outage of `length` kept giving up within the bound:
/// the first within bound + margin of its start, none after a longer silence, the last within
/// bound + margin of its end, and not in a tight loop. Returns the longest wait.
fn gave_up_within_the_bound(failed: &[Duration], length: Duration) -> Duration {
    let limit = bound() + MARGIN;
    assert!(!failed.is_empty(), "no step failed during the outage");
    let mut longest = failed[0];
    for pair in failed.windows(2) {
        longest = longest.max(pair[1] - pair[0]);
    }
    longest = longest.max(length.saturating_sub(failed[failed.len() - 1]));
    assert!(
        longest < limit,
        "a step ran {longest:?} without giving up (bound {:?}): failures at {failed:?}",
        bound()
    );
    assert!(
        failed.len() as u64 <= length.as_secs() * 4,
        "{} failed steps in {length:?}: a tight loop",
        failed.len()
    );
    longest
}

/// Polls `check` every 100 ms until it holds; panics with `what` after `within`. Returns how
/// long it took.
async fn within<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what} not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// Pods of `id` in the dev box namespace.
async fn pods_of(env: &Env, id: Uuid) -> usize {
    let label = id.hyphenated().to_string();
    env.objects("pods")
        .await
        .iter()
        .filter(|o| o["metadata"]["labels"]["gpudev.io/reservation-id"] == label.as_str())
        .count()
}

/// Nothing lost, nothing done twice: one successful Pod create per reservation that ran, one
/// Pod for each live one, the queue drained and nothing dead-lettered.
async fn no_work_lost_or_repeated(env: &Env, started: usize, live: &[Uuid]) {
    assert_eq!(
        env.fake().count_ok(Verb::Create, "pods"),
        started,
        "one Pod created per reservation, none twice"
    );
    for id in live {
        assert_eq!(pods_of(env, *id).await, 1, "{id}");
    }
    within(Duration::from_secs(15), "the queue drained", || async {
        env.queued_messages().await == 0
    })
    .await;
    assert_eq!(env.dead_letters().await, Vec::<serde_json::Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_frozen_database_makes_the_processor_give_up_each_step_within_the_bound_and_lose_no_work()
 {
    let pg = gpudev_testkit::private_cluster().await;
    let Some(env) = private_env(&pg, &VARS, "counts Pod creates on the fake").await else {
        return;
    };
    env.cluster.seed_nodes("t4", 2, 4).await;
    let _simulation = env.cluster.start_background(Duration::from_millis(50));
    let alice = env.user("alice").await;
    let p = env.processor().await;
    let running = run(&p);
    let first = env.submit(&alice, Ask::gpus("t4", 4)).await;
    wait_status(
        &env,
        first,
        ReservationStatus::Active,
        Duration::from_secs(15),
    )
    .await;

    // In flight as the database freezes: one that fits on the other node, one waiting behind it.
    let second = env.submit(&alice, Ask::gpus("t4", 4)).await;
    let third = env.submit(&alice, Ask::gpus("t4", 4)).await;
    let failures = Failures::watch(&p);
    let frozen = pg.freeze();
    let frozen_at = Instant::now();
    tokio::time::sleep(FREEZE).await;
    let failed = failures.since(frozen_at);
    assert!(
        !p.is_leader(),
        "the leader gave itself up when its heartbeat went unanswered"
    );
    drop(frozen);
    let resumed = Instant::now();
    let longest = gave_up_within_the_bound(&failed, FREEZE);

    // Back: the processor leads again, finishes what was in flight and takes new work.
    let db = env.db.connect().await;
    within(Duration::from_secs(15), "leading again", || async {
        p.is_leader()
            && current_leader_pid(&db, env.queue().name()).await.unwrap() == p.leader_backend_pid()
    })
    .await;
    let leads_again = resumed.elapsed();
    wait_status(
        &env,
        second,
        ReservationStatus::Active,
        Duration::from_secs(20),
    )
    .await;
    let second_active = resumed.elapsed();
    assert_eq!(env.status(third).await, ReservationStatus::Queued);
    let cancelled = Instant::now();
    env.cancel(first).await;
    wait_status(
        &env,
        third,
        ReservationStatus::Active,
        Duration::from_secs(20),
    )
    .await;
    let third_active = cancelled.elapsed();
    env.assert_gone(first).await;
    no_work_lost_or_repeated(&env, 3, &[second, third]).await;
    running.stop().await;

    eprintln!(
        "frozen {FREEZE:?} (bound {:?}): {} steps given up, first after {:?}, longest wait {longest:?}; \
         after the resume: leading again in {leads_again:?}, the reservation in flight active in \
         {second_active:?}, a cancel sent after the resume freed the node for the waiting one in {third_active:?}",
        bound(),
        failed.len(),
        failed[0],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_leader_cut_off_by_a_black_hole_gives_up_its_steps_a_standby_takes_over_and_it_recovers()
 {
    let Some(env) = fake_env_with(&VARS, "counts Pod creates on the fake").await else {
        return;
    };
    // The server keeps running (the shared cluster is fine): only the leader's path is cut.
    let proxy = gpudev_testkit::tcp_proxy(([127, 0, 0, 1], env.db.port()).into()).await;
    let mut cut_config = env.config.clone();
    cut_config.db = gpudev_processor::ProcessorConfig::for_database_with(
        &format!(
            "postgres://{}@127.0.0.1:{}/{}",
            env.db.user(),
            proxy.addr().port(),
            env.db.name()
        ),
        &VARS,
    )
    .unwrap()
    .db;
    env.cluster.seed_nodes("t4", 3, 4).await;
    let _simulation = env.cluster.start_background(Duration::from_millis(50));
    let alice = env.user("alice").await;
    let cut = env.processor_with(cut_config).await;
    let cut_running = run(&cut);
    within(
        Duration::from_secs(5),
        "the first processor leading",
        || async { cut.is_leader() },
    )
    .await;
    let standby = env.processor().await;
    let standby_running = run(&standby);
    let first = env.submit(&alice, Ask::gpus("t4", 4)).await;
    wait_status(
        &env,
        first,
        ReservationStatus::Active,
        Duration::from_secs(15),
    )
    .await;

    let failures = Failures::watch(&cut);
    proxy.black_hole();
    let cut_at = Instant::now();
    let second = env.submit(&alice, Ask::gpus("t4", 4)).await;
    let db = env.db.connect().await;
    let taken_over = within(
        LEASE + bound() + MARGIN,
        "the standby holding the lock",
        || async {
            standby.is_leader()
                && current_leader_pid(&db, env.queue().name()).await.unwrap()
                    == standby.leader_backend_pid()
        },
    )
    .await;
    wait_status(
        &env,
        second,
        ReservationStatus::Active,
        Duration::from_secs(15),
    )
    .await;
    let second_active = cut_at.elapsed();
    let outage = Duration::from_secs(8).max(cut_at.elapsed());
    tokio::time::sleep(outage.saturating_sub(cut_at.elapsed())).await;
    let failed = failures.since(cut_at);
    assert!(!cut.is_leader(), "the cut-off processor gave itself up");
    let longest = gave_up_within_the_bound(&failed, outage);

    // The path is back: the cut-off processor stands by, and leads once the other stops.
    proxy.resume();
    let resumed = Instant::now();
    tokio::time::sleep(bound() + Duration::from_secs(1)).await;
    let settled = cut.metrics().step_failures_total();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        cut.metrics().step_failures_total(),
        settled,
        "the standby's bids reach the database again"
    );
    assert!(!cut.is_leader(), "never two leaders");
    standby_running.stop().await;
    let stopped = Instant::now();
    let third = env.submit(&alice, Ask::gpus("t4", 4)).await;
    wait_status(
        &env,
        third,
        ReservationStatus::Active,
        Duration::from_secs(15),
    )
    .await;
    assert!(cut.is_leader());
    let third_active = stopped.elapsed();
    no_work_lost_or_repeated(&env, 3, &[first, second, third]).await;
    cut_running.stop().await;

    eprintln!(
        "black hole for {outage:?} (bound {:?}, lease {LEASE:?}): the cut-off leader gave up {} steps, \
         first after {:?}, longest wait {longest:?}; the standby held the lock {taken_over:?} after \
         the cut, the reservation submitted then was active after {second_active:?}; with the path \
         back, the standby stopped {:?} after the resume and a new reservation was active \
         {third_active:?} after that",
        bound(),
        failed.len(),
        failed[0],
        stopped - resumed,
    );
}

#[tokio::test]
async fn fault_a_leader_session_cut_off_inside_a_transaction_frees_the_lock_after_the_lease() {
    let db = gpudev_testkit::test_db().await;
    let proxy = gpudev_testkit::tcp_proxy(([127, 0, 0, 1], db.port()).into()).await;
    let config = |port: u16| {
        let url = format!("postgres://{}@127.0.0.1:{port}/{}", db.user(), db.name());
        let vars = [
            ("DATABASE_URL", url),
            ("DB_STATEMENT_TIMEOUT_SECONDS", "1".to_owned()),
        ];
        DbConfig::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            .unwrap()
    };
    let lease = Duration::from_secs(2);
    let queue = gpudev_store::DEFAULT_QUEUE;
    let leader = LeaderSession::try_acquire(&config(proxy.addr().port()), queue, lease)
        .await
        .unwrap()
        .unwrap();
    let mut client = leader.lock().await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.execute("SELECT 1", &[]).await.unwrap();

    // Cut inside the transaction: the server sees a session idle in a transaction, which
    // `idle_session_timeout` does not end.
    proxy.black_hole();
    let cut_at = Instant::now();
    let direct = config(db.port());
    let taken = loop {
        if let Some(s) = LeaderSession::try_acquire(&direct, queue, lease)
            .await
            .unwrap()
        {
            break s;
        }
        assert!(
            cut_at.elapsed() < lease + Duration::from_secs(8),
            "the lock stayed with the cut-off session"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = cut_at.elapsed();
    assert!(
        took >= lease - Duration::from_millis(500),
        "taken after {took:?}, before the lease ran out"
    );
    // The cut-off leader cannot write: its transaction fails within the bound.
    let refused = tx.execute("SELECT 1", &[]).await.unwrap_err();
    assert!(refused.is_closed(), "{refused}");
    drop(tx);
    drop(client);
    assert!(leader.is_lost());
    eprintln!("lock free {took:?} after the cut (lease {lease:?})");
    drop(taken);
}
