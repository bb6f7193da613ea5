//! Runs as a whole: idempotence, failure, the run record and the binary.

use std::process::Command;

use gpudev_store::cronjob_runs;
use gpudev_testkit::kube::{Fault, FaultKind, Verb};

use crate::common::{env, fake_env};

#[tokio::test]
async fn a_second_run_over_the_same_cluster_writes_the_same_figures() {
    let env = env().await;
    for node in env.cluster.seed_nodes("h100", 2, 8).await {
        env.pod_on("gpu-dev", &node, 2, true).await;
    }

    let first = env.run().await;
    let row_after_first = env.row("h100").await;
    let second = env.run().await;
    let row_after_second = env.row("h100").await;

    assert_eq!(first.types, second.types);
    assert_eq!(
        row_after_first.available_gpus,
        row_after_second.available_gpus
    );
    assert_eq!(
        row_after_first.max_reservable,
        row_after_second.max_reservable
    );
    assert!(row_after_second.last_availability_update >= row_after_first.last_availability_update);
    let db = env.db.connect().await;
    let successes: i64 = db
        .query_one(
            "SELECT count(*) FROM cronjob_runs WHERE job = 'availability' AND outcome = 'success'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(successes, 2);
}

#[tokio::test]
async fn types_that_lost_their_nodes_are_written_back_to_zero() {
    let env = env().await;
    let db = env.db.connect().await;
    db.execute(
        "UPDATE gpu_types SET total_gpus = 16, available_gpus = 16, max_reservable = 16, running_nodes = 2 \
         WHERE gpu_type = 'h200'",
        &[],
    )
    .await
    .unwrap();

    env.run().await;

    let h200 = env.row("h200").await;
    assert_eq!(
        (
            h200.total_gpus,
            h200.available_gpus,
            h200.max_reservable,
            h200.running_nodes
        ),
        (0, 0, 0, 0)
    );
}

#[tokio::test]
async fn a_failing_api_server_fails_the_run_records_it_and_writes_nothing() {
    let Some(env) = fake_env("injects Kubernetes faults").await else {
        return;
    };
    env.cluster.seed_nodes("h100", 2, 8).await;
    env.fake().inject(
        Fault::new(FaultKind::Status500)
            .verb(Verb::List)
            .resource("nodes"),
    );

    let err = gpudev_availability::run_once(&env.pool, &env.cluster.client(), &env.config)
        .await
        .unwrap_err();

    assert!(err.to_string().contains("kubernetes"), "{err}");
    let h100 = env.row("h100").await;
    assert!(h100.last_availability_update.is_none(), "nothing written");
    let db = env.db.connect().await;
    let row = db
        .query_one(
            "SELECT outcome, error, finished_at IS NOT NULL FROM cronjob_runs WHERE job = 'availability'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failure");
    assert!(row.get::<_, Option<String>>(1).unwrap().contains("Node"));
    assert!(row.get::<_, bool>(2));
    assert!(
        cronjob_runs::last_success(&db, "availability")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_binary_exits_zero_after_a_run_against_a_served_cluster() {
    let env = env().await;
    env.cluster.seed_nodes("t4", 2, 4).await;
    let served = env.cluster.kubeconfig().await;
    let url = env.db.url();
    let kubeconfig = served.path().to_owned();
    let label = env.cluster.gpu_type_label().to_owned();

    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_gpudev-availability"))
            .env_clear()
            .env("DATABASE_URL", url)
            .env("KUBECONFIG", kubeconfig)
            .env("HOSTNAME", "binary-test")
            .env("GPU_TYPE_LABEL", label)
            .output()
            .unwrap()
    })
    .await
    .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("\"availability written\""),
        "JSON log line: {stderr}"
    );
    let t4 = env.row("t4").await;
    assert_eq!(t4.total_gpus, 8);
    assert_eq!(
        t4.last_availability_updated_by.as_deref(),
        Some("binary-test")
    );
}

#[test]
fn the_binary_names_the_missing_variable_and_exits_non_zero() {
    let output = Command::new(env!("CARGO_BIN_EXE_gpudev-availability"))
        .env_clear()
        .env("MAX_NODES", "0")
        .env("DATABASE_URL", "postgres://u@127.0.0.1:1/db")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("MAX_NODES"), "{stderr}");
}

#[test]
fn the_binary_exits_non_zero_with_a_clear_message_when_the_database_is_down() {
    let output = Command::new(env!("CARGO_BIN_EXE_gpudev-availability"))
        .env_clear()
        .env("DATABASE_URL", "postgres://u@127.0.0.1:1/db")
        .env("DB_CONNECT_TIMEOUT_SECONDS", "1")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach the database"), "{stderr}");
}
