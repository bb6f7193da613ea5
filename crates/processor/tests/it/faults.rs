//! Faults under load: the Kubernetes API failing in the ways real clusters fail, and the real
//! processor binary SIGKILLed in the middle of a burst.
//!
//! What is real here: PostgreSQL + PGMQ, the processor (in process, or its binary), and the
//! kube-rs client. What is simulated: the Kubernetes API server is the testkit's fake (over a
//! tower service, or over HTTP on loopback for the binary), with its pretend scheduler and
//! kubelet; its faults are injected per verb and resource.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gpudev_domain::Quotas;
use gpudev_processor::{Backoff, Processor};
use gpudev_testkit::kube::{Fault, FaultKind, Verb};
use uuid::Uuid;

use crate::common::{Ask, Env, fake_env};

/// Counts of reservations by status.
async fn by_status(env: &Env) -> std::collections::BTreeMap<String, i64> {
    let db = env.db.connect().await;
    db.query(
        "SELECT status::text, count(*) FROM reservations GROUP BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
    .collect()
}

/// Polls `check` every 100 ms until it is true, failing with `what` and the last state after
/// `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(()) => return,
            Err(state) => assert!(
                Instant::now() < deadline,
                "{what} not reached within {within:?}: {state}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a processor's long-running loop in this process until the returned sender is dropped.
fn run_in_process(p: Processor) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        p.run_until_stopped(async move {
            let _ = stopped.await;
        })
        .await
    });
    stop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_500s_timeouts_and_conflicts_from_kubernetes_are_retried_until_nothing_is_stuck() {
    let Some(mut env) = fake_env("injects Kubernetes faults").await else {
        return;
    };
    env.config.visibility_timeout = Duration::from_secs(1);
    env.config.quotas = Quotas::default();
    env.cluster.seed_nodes("t4", 3, 4).await;
    let _simulation = env.cluster.start_background(Duration::from_millis(50));
    // Every object kind the driver creates fails at first, in a different way, and so do the
    // reads the scheduler pass and the reconciliation start from.
    for fault in [
        Fault::new(FaultKind::Status500)
            .verb(Verb::Create)
            .resource("pods")
            .times(4),
        Fault::new(FaultKind::Timeout(Duration::from_millis(300)))
            .verb(Verb::Create)
            .resource("services")
            .times(3),
        Fault::new(FaultKind::Conflict409)
            .verb(Verb::Create)
            .resource("secrets")
            .times(3),
        Fault::new(FaultKind::Status {
            code: 429,
            reason: "TooManyRequests",
        })
        .verb(Verb::List)
        .resource("nodes")
        .times(2),
        Fault::new(FaultKind::Status500)
            .verb(Verb::List)
            .resource("pods")
            .times(2),
    ] {
        env.fake().inject(fault);
    }
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let mut ids = Vec::new();
    for user in [&alice, &bob, &alice, &bob, &alice, &bob] {
        ids.push(env.submit(user, Ask::gpus("t4", 2)).await);
    }

    let p = env.processor_with(env.config.clone()).await;
    let _stop = run_in_process(p);
    eventually(
        Duration::from_secs(40),
        "every reservation active",
        || async {
            let counts = by_status(&env).await;
            if counts.get("active") == Some(&6) {
                Ok(())
            } else {
                Err(format!("{counts:?}"))
            }
        },
    )
    .await;

    // The faults were really hit, and retried rather than papered over.
    assert!(
        env.fake().count(Verb::Create, "pods") > env.creates("pods"),
        "no pod create ever failed"
    );
    assert!(env.fake().count(Verb::Create, "secrets") > env.creates("secrets"));
    assert!(env.fake().count(Verb::Create, "services") > env.creates("services"));
    // Once they stop, nothing is left behind: one of each object per reservation, none stuck
    // in preparing, nothing failed or dead-lettered.
    assert_eq!(env.creates("pods"), 6, "no pod was created twice");
    for id in &ids {
        assert_eq!(env.objects_of(*id).await, 3, "{id}");
    }
    assert_eq!(by_status(&env).await.get("preparing"), None);
    assert!(env.dead_letters().await.is_empty());
    eventually(Duration::from_secs(10), "the queue drained", || async {
        match env.queued_messages().await {
            0 => Ok(()),
            n => Err(format!("{n} messages")),
        }
    })
    .await;
}

/// The real processor binary over the fake cluster served on loopback.
fn spawn_binary(env: &Env, kubeconfig: &std::path::Path, log: &str) -> Child {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Command::new(env!("CARGO_BIN_EXE_gpudev-processor"))
        .env("DATABASE_URL", env.db.url())
        .env("KUBECONFIG", kubeconfig)
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("GITHUB_KEYS_URL", "")
        .env("MAX_ACTIVE_RESERVATIONS_PER_USER", "0")
        .env("MAX_GPUS_PER_USER", "0")
        .env("SCHEDULER_INTERVAL_SECONDS", "1")
        .env("POLL_SECONDS", "1")
        .env("VISIBILITY_TIMEOUT_SECONDS", "3")
        .env("LEADER_LEASE_SECONDS", "2")
        .env("LEADER_RETRY_SECONDS", "1")
        .env("LOG_FORMAT", "pretty")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(std::env::temp_dir().join(log)).unwrap())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_processor_sigkilled_during_a_burst_of_500_loses_nothing_and_duplicates_nothing() {
    let Some(env) = fake_env("injects Kubernetes faults").await else {
        return;
    };
    // 20 nodes × 8 GPUs and every reservation asks for 2: exactly 80 fit.
    env.cluster.seed_nodes("h100", 20, 8).await;
    let _simulation = env.cluster.start_background(Duration::from_millis(100));
    let served = env
        .fake()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut users = Vec::new();
    for i in 0..10 {
        users.push(env.user(&format!("user{i}")).await);
    }
    let tag = Uuid::new_v4().simple().to_string();
    let mut first = None;
    let start_first = || {
        spawn_binary(
            &env,
            served.kubeconfig_path(),
            &format!("gpudev-sigkill-{tag}-1.log"),
        )
    };

    // Every pod create takes a little while, as on a real API server, so the kill lands while
    // the processor is in the middle of driving admissions.
    env.fake().inject(
        Fault::new(FaultKind::Delay(Duration::from_millis(150)))
            .verb(Verb::Create)
            .resource("pods")
            .times(10_000),
    );
    // The burst: 500 submissions, each its row and its hint in one transaction. The processor
    // starts after the first 125 (a backlog), sees the next 125 arrive, and is SIGKILLed once it
    // has created some pods; the second half arrives while no processor runs.
    let mut ids = Vec::new();
    let mut burst = env.db.connect().await;
    let started = Instant::now();
    for i in 0..250 {
        if i == 125 {
            first = Some(start_first());
        }
        ids.push(
            env.submit_on(&mut burst, &users[i % users.len()], Ask::gpus("h100", 2))
                .await,
        );
    }
    eventually(Duration::from_secs(30), "the first pods", || async {
        match env.creates("pods") {
            n if n >= 10 => Ok(()),
            n => Err(format!("{n} pods")),
        }
    })
    .await;
    let mut first = first.unwrap();
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let pods_then = env.creates("pods");
    for i in 250..500 {
        ids.push(
            env.submit_on(&mut burst, &users[i % users.len()], Ask::gpus("h100", 2))
                .await,
        );
    }
    assert!(
        pods_then < 80,
        "killed too late to test anything: {pods_then} pods"
    );
    eprintln!(
        "SIGKILL after 250 submissions with {pods_then} pods created; burst took {:?}",
        started.elapsed()
    );

    let mut second = spawn_binary(
        &env,
        served.kubeconfig_path(),
        &format!("gpudev-sigkill-{tag}-2.log"),
    );
    let ok = async {
        eventually(
            Duration::from_secs(45),
            "80 active and 420 queued",
            || async {
                let counts = by_status(&env).await;
                let pods = env.objects("pods").await.len();
                if counts.get("active") == Some(&80)
                    && counts.get("queued") == Some(&420)
                    && pods == 80
                {
                    Ok(())
                } else {
                    Err(format!("{counts:?}, {pods} pods"))
                }
            },
        )
        .await;
        eventually(Duration::from_secs(20), "the queue drained", || async {
            match env.queued_messages().await {
                0 => Ok(()),
                n => Err(format!("{n} messages")),
            }
        })
        .await;
    };
    ok.await;
    second.kill().unwrap();
    second.wait().unwrap();

    // Every submission is accounted for, in the state capacity allows.
    let db = env.db.connect().await;
    let rows = db
        .query(
            "SELECT reservation_id, status::text, queue_position FROM reservations",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 500);
    let stored: HashSet<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(stored, ids.iter().copied().collect::<HashSet<_>>());
    let mut positions = Vec::new();
    for r in &rows {
        let status: String = r.get(1);
        let position: Option<i32> = r.get(2);
        match status.as_str() {
            "active" => assert_eq!(env.objects_of(r.get(0)).await, 3),
            "queued" => positions.push(position.expect("a queued reservation has a position")),
            other => panic!("unexpected status {other}"),
        }
    }
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(positions.len(), 420, "queue positions are distinct");
    // No pod was created twice, across the kill: one successful create per admitted reservation
    // (a create the killed processor had in flight either landed or did not; its successor
    // found it by name and did not make another).
    assert_eq!(env.creates("pods"), 80);
    assert_eq!(env.creates("services"), 80);
    assert_eq!(env.creates("secrets"), 80);
    let pod_owners: HashSet<String> = env
        .objects("pods")
        .await
        .iter()
        .map(|p| {
            p["metadata"]["labels"]["gpudev.io/reservation-id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(pod_owners.len(), 80);
    assert!(
        env.dead_letters().await.is_empty(),
        "no message was given up on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_kubernetes_outage_is_retried_at_a_bounded_pace_and_everything_recovers() {
    let Some(mut env) = fake_env("injects Kubernetes faults").await else {
        return;
    };
    env.config.visibility_timeout = Duration::from_secs(1);
    // Failed messages come back after 0.5 s, then 1 s, 2 s, 4 s at most (with jitter).
    env.config.retry_backoff = Backoff {
        base: Duration::from_millis(500),
        max: Duration::from_secs(4),
    };
    // Enough deliveries that the outage alone does not dead-letter anything.
    env.config.max_reads = 20;
    env.cluster.seed_nodes("t4", 1, 4).await;
    let _simulation = env.cluster.start_background(Duration::from_millis(50));
    // Every create fails for a while, as when the API server is overloaded.
    env.fake().inject(
        Fault::new(FaultKind::Status500)
            .verb(Verb::Create)
            .times(100_000),
    );
    let alice = env.user("alice").await;
    let ids = [
        env.submit(&alice, Ask::gpus("t4", 1)).await,
        env.submit(&alice, Ask::gpus("t4", 1)).await,
        env.submit(&alice, Ask::gpus("t4", 2)).await,
    ];
    let p = env.processor_with(env.config.clone()).await;
    let _stop = run_in_process(p);
    let outage = Duration::from_secs(4);
    tokio::time::sleep(outage).await;
    let attempts: usize = ["pods", "services", "secrets"]
        .iter()
        .map(|k| env.fake().count(Verb::Create, k))
        .sum();
    env.fake().clear_faults();
    eprintln!("{attempts} failed creates during a {outage:?} outage");

    // Retried, but paced by the messages' backoff and the reconciliation interval (at most about
    // one attempt per reservation per second each), not in a tight loop.
    assert!(attempts >= 3, "no retry during the outage: {attempts}");
    assert!(
        attempts <= 3 * 4 * 4,
        "{attempts} creates in {outage:?} for 3 reservations: retrying without a pause"
    );
    for id in &ids {
        assert_eq!(env.status(*id).await.to_string(), "preparing");
    }
    eventually(
        Duration::from_secs(20),
        "every reservation active",
        || async {
            let counts = by_status(&env).await;
            if counts.get("active") == Some(&3) {
                Ok(())
            } else {
                Err(format!("{counts:?}"))
            }
        },
    )
    .await;
    for id in &ids {
        assert_eq!(env.objects_of(*id).await, 3, "{id}");
    }
    assert_eq!(env.creates("pods"), 3, "no pod was created twice");
    assert!(env.dead_letters().await.is_empty());
}
