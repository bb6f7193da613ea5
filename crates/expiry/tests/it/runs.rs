//! Runs as a whole: the record, failures, the binary.

use std::process::Command;

use gpudev_domain::ReservationStatus;
use gpudev_store::cronjob_runs;
use gpudev_testkit::kube::{Fault, FaultKind, Verb};

use crate::common::{env, fake_env};

#[tokio::test]
async fn a_run_is_recorded_with_its_counts_and_outcome() {
    let env = env().await;
    let made = env.active_ending_in("alice", -5.0).await;
    env.devbox(&made).await;

    let report = env.run().await;

    assert!(report.succeeded());
    let run = cronjob_runs::last_success(&env.client, "expiry")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.run_id, report.run_id);
    assert!(run.finished_at.is_some());
    assert_eq!(run.summary["expired"], 1);
    assert_eq!(run.summary["warnings"], 0);
    assert!(run.summary["elapsed_ms"].is_u64());
    let line = report.summary.line();
    assert!(
        line.contains("expired=1") && line.contains("errors=0"),
        "{line}"
    );
}

#[tokio::test]
async fn a_failing_step_is_recorded_as_a_failed_run_and_the_other_steps_still_run() {
    let Some(env) = fake_env("injects Kubernetes faults").await else {
        return;
    };
    let made = env.active_ending_in("bob", -5.0).await;
    env.devbox(&made).await;
    env.fake().inject(
        Fault::new(FaultKind::Status500)
            .verb(Verb::List)
            .resource("services"),
    );

    let report = env.run().await;

    assert!(!report.succeeded());
    assert_eq!(
        report.summary.expired, 1,
        "expiry ran before the failing step"
    );
    assert!(
        report
            .summary
            .errors
            .iter()
            .any(|e| e.starts_with("orphans")),
        "{:?}",
        report.summary.errors
    );
    let row = env
        .client
        .query_one(
            "SELECT outcome, error FROM cronjob_runs WHERE run_id = $1",
            &[&report.run_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failure");
    assert!(row.get::<_, Option<String>>(1).unwrap().contains("orphans"));
}

#[tokio::test]
async fn the_binary_runs_once_against_a_served_cluster_and_exits_zero() {
    let env = env().await;
    let made = env.reservation("carol", ReservationStatus::Queued).await;
    env.sql(&format!(
        "UPDATE reservations SET created_at = now() - interval '50 hours' WHERE reservation_id = '{}'",
        made.id
    ))
    .await;
    let served = env.cluster.kubeconfig().await;
    let url = env.db.url();
    let kubeconfig = served.path().to_owned();
    let namespace = env.ns().to_owned();

    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_gpudev-expiry"))
            .env_clear()
            .env("DATABASE_URL", url)
            .env("KUBECONFIG", kubeconfig)
            .env("GPU_DEV_NAMESPACE", namespace)
            .output()
            .unwrap()
    })
    .await
    .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("\"expiry run finished\""),
        "JSON summary line: {stderr}"
    );
    assert!(stderr.contains("queued_cancelled=1"), "{stderr}");
    assert_eq!(env.status(&made).await, "cancelled");
}

#[test]
fn the_binary_names_a_bad_variable_and_exits_two() {
    let output = Command::new(env!("CARGO_BIN_EXE_gpudev-expiry"))
        .env_clear()
        .env("DATABASE_URL", "postgres://u@127.0.0.1:1/db")
        .env("WARNING_MINUTES", "30,soon")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("WARNING_MINUTES"), "{stderr}");
}
