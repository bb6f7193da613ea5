//! A database that stops answering (PostgreSQL frozen with SIGSTOP, a cluster the test owns):
//! a run gives up within its bound with an error instead of waiting, and the next run after the
//! database resumes does the work.

use std::process::Command;
use std::time::{Duration, Instant};

use gpudev_testkit::kube::{Fault, FaultKind, Verb};

use crate::common::private_env;

/// The job's settings here: a 1 s statement bound (the client gives up 2 s later).
const VARS: [(&str, &str); 2] = [
    ("DB_STATEMENT_TIMEOUT_SECONDS", "1"),
    ("DB_CONNECT_TIMEOUT_SECONDS", "2"),
];
/// What the contract allows beyond its bounds on a loaded machine.
const MARGIN: Duration = Duration::from_secs(3);

/// How long a statement may go unanswered before the job gives up on it.
fn bound() -> Duration {
    Duration::from_secs(1) + gpudev_store::connect::ANSWER_GRACE
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_run_that_meets_a_frozen_database_stops_within_two_bounds_and_the_next_run_does_the_work()
 {
    let pg = gpudev_testkit::private_cluster().await;
    let Some(env) = private_env(&pg, &VARS, "delays Kubernetes calls on the fake").await else {
        return;
    };
    let mut due = Vec::new();
    for user in ["alice", "bob", "carol"] {
        let made = env.active_ending_in(user, -5.0).await;
        let pod = env.devbox(&made).await;
        due.push((made, pod));
    }
    // Each expiry deletes its Pod inside its transaction; the deletes are slow, so the run holds
    // three transactions (and their locks) while the database freezes.
    let delay = Duration::from_secs(1);
    env.fake().inject(
        Fault::new(FaultKind::Delay(delay))
            .verb(Verb::Delete)
            .resource("pods")
            .times(3),
    );
    let job = env.job();
    let run = async {
        let result = job.run_once().await;
        (result, Instant::now())
    };
    let freeze = async {
        let started = Instant::now();
        while env
            .count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
            .await
            < 3
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the run never held its three locks"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (pg.freeze(), Instant::now())
    };
    let ((result, ended), (frozen, frozen_at)) = tokio::join!(run, freeze);
    let took = ended - frozen_at;
    drop(frozen);
    let resumed = Instant::now();

    let err = result.expect_err("a run cannot be recorded while the database is frozen");
    assert!(err.is_unavailable(), "{err}");
    let limit = delay + bound() * 2 + MARGIN;
    assert!(
        took < limit,
        "the run ended {took:?} after the freeze; the contract is {limit:?}"
    );

    // The next run, once the database answers, expires all three (a run racing the rollback
    // of the frozen one's transactions may find some still locked, and leave them to the next).
    let mut runs = 0;
    loop {
        let report = env.run().await;
        runs += 1;
        assert!(report.succeeded(), "{:?}", report.summary.errors);
        let mut left = 0;
        for (made, _) in &due {
            left += usize::from(env.status(made).await != "expired");
        }
        if left == 0 {
            break;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(10),
            "{left} not expired 10 s after the resume"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (made, pod) in &due {
        assert!(!env.exists("pods", pod).await, "{pod}");
        let expired = env
            .events(made)
            .await
            .iter()
            .filter(|e| e.to_status.as_deref() == Some("expired"))
            .count();
        assert_eq!(expired, 1, "expired once: {}", made.id);
    }
    eprintln!(
        "frozen while expiring: the run gave up {took:?} after the freeze (Kubernetes delay \
         {delay:?}, bound {:?}) with \"{err}\"; {runs} run(s) after the resume expired all three, \
         within {:?}",
        bound(),
        resumed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_the_binary_exits_one_within_the_bound_on_a_frozen_database_and_zero_once_it_resumes()
{
    let pg = gpudev_testkit::private_cluster().await;
    let Some(env) = private_env(&pg, &VARS, "serves the fake cluster").await else {
        return;
    };
    let served = env.cluster.kubeconfig().await;
    let binary = {
        let url = env.db.url();
        let kubeconfig = served.path().to_owned();
        let namespace = env.ns().to_owned();
        move || {
            let started = Instant::now();
            let output = Command::new(env!("CARGO_BIN_EXE_gpudev-expiry"))
                .env_clear()
                .env("DATABASE_URL", &url)
                .env("KUBECONFIG", &kubeconfig)
                .env("GPU_DEV_NAMESPACE", &namespace)
                .envs(VARS)
                .output()
                .unwrap();
            (output, started.elapsed())
        }
    };

    let frozen = pg.freeze();
    let (output, took) = tokio::task::spawn_blocking(binary.clone()).await.unwrap();
    drop(frozen);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot reach the database"), "{stderr}");
    assert!(
        took < bound() + MARGIN,
        "exited after {took:?}; the bound is {:?}",
        bound()
    );

    let (output, _) = tokio::task::spawn_blocking(binary).await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    eprintln!("the binary on a frozen database exited 1 after {took:?}");
}
