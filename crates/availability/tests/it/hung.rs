//! A database that stops answering (PostgreSQL frozen with SIGSTOP, a cluster the test owns):
//! a run fails within its bound with the database named as the cause, writes nothing, and the
//! next run after the database resumes writes the figures.

use std::process::Command;
use std::time::{Duration, Instant};

use gpudev_availability::RunError;
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
async fn fault_a_run_that_meets_a_frozen_database_fails_within_two_bounds_writes_nothing_and_the_next_run_writes()
 {
    let pg = gpudev_testkit::private_cluster().await;
    let Some(env) = private_env(&pg, &VARS, "delays Kubernetes calls on the fake").await else {
        return;
    };
    env.cluster.seed_nodes("h100", 2, 8).await;
    // The run reads the database at once and the Nodes slowly: the database freezes between
    // those reads and the write.
    let delay = Duration::from_secs(1);
    env.fake().inject(
        Fault::new(FaultKind::Delay(delay))
            .verb(Verb::List)
            .resource("nodes")
            .times(1),
    );
    let client = env.cluster.client();
    let run = async {
        let result = gpudev_availability::run_once(&env.pool, &client, &env.config).await;
        (result, Instant::now())
    };
    let freeze = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        (pg.freeze(), Instant::now())
    };
    let ((result, ended), (frozen, frozen_at)) = tokio::join!(run, freeze);
    let took = ended - frozen_at;
    drop(frozen);

    let err = result.expect_err("a run cannot write while the database is frozen");
    assert!(
        matches!(&err, RunError::Db(e) if e.is_unavailable()),
        "the database named as the cause: {err}"
    );
    let limit = delay + bound() * 2 + MARGIN;
    assert!(
        took < limit,
        "the run ended {took:?} after the freeze; the contract is {limit:?}"
    );
    assert!(
        env.row("h100").await.last_availability_update.is_none(),
        "nothing written"
    );

    let resumed = Instant::now();
    let report = env.run().await;
    assert_eq!(report.types["h100"].total_gpus, 16);
    let h100 = env.row("h100").await;
    assert_eq!(h100.total_gpus, 16);
    assert!(h100.last_availability_update.is_some());
    eprintln!(
        "frozen before the write: the run failed {took:?} after the freeze (Kubernetes delay \
         {delay:?}, bound {:?}) with \"{err}\"; the next run wrote the figures in {:?}",
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
    env.cluster.seed_nodes("t4", 2, 4).await;
    let served = env.cluster.kubeconfig().await;
    let binary = {
        let url = env.db.url();
        let kubeconfig = served.path().to_owned();
        let label = env.cluster.gpu_type_label().to_owned();
        move || {
            let started = Instant::now();
            let output = Command::new(env!("CARGO_BIN_EXE_gpudev-availability"))
                .env_clear()
                .env("DATABASE_URL", &url)
                .env("KUBECONFIG", &kubeconfig)
                .env("GPU_TYPE_LABEL", &label)
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
    assert_eq!(env.row("t4").await.total_gpus, 8);
    eprintln!("the binary on a frozen database exited 1 after {took:?}");
}
