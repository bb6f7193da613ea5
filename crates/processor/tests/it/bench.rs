//! The benchmark of issue 4 (not a timed test; run it in release mode):
//!
//! ```text
//! cargo nextest run --release -p gpudev-processor --run-ignored only -E 'test(bench)' --no-capture
//! ```
//!
//! 1,000 nodes × 8 GPUs, 10,000 queued reservations from 100 users (1–8 GPUs, 1–8 hours), no
//! quotas. The first pass admits what fits and drives every admission through the fake API
//! server; the second is the steady-state periodic pass. Prints a table for
//! `docs/BENCHMARKS.md`. A second benchmark runs the real binary against the fake cluster
//! served over HTTP and reports the processor's own peak memory.

use std::time::Instant;

use gpudev_domain::Quotas;

use crate::common::{KEY, env};

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release mode on demand"]
async fn bench_scheduler_pass_over_1000_nodes_and_10000_queued_reservations() {
    let env = env().await;
    let seeded = Instant::now();
    env.fake.seed_nodes("h100", 1000, 8);
    let db = env.db.connect().await;
    db.batch_execute(&format!(
        "INSERT INTO users (username) SELECT 'user' || g FROM generate_series(1, 100) g;
         INSERT INTO user_ssh_keys (user_id, public_key, fingerprint)
           SELECT user_id, '{KEY}', 'SHA256:test' FROM users;
         INSERT INTO reservations (reservation_id, user_id, gpu_type, gpu_count, node_count,
             duration_hours, image, created_at)
           SELECT gen_random_uuid(), (SELECT min(user_id) FROM users) + (g % 100), 'h100',
             (ARRAY[1, 2, 4, 8])[1 + (g % 4)], 1, 1 + (g % 8),
             'pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel',
             now() - make_interval(secs => 20000 - g)
           FROM generate_series(1, 10000) g;"
    ))
    .await
    .unwrap();
    eprintln!("seeded in {:?}", seeded.elapsed());

    let mut config = env.config.clone();
    config.quotas = Quotas::default();
    let p = env.processor_with(config).await;
    assert!(p.try_become_leader().await.unwrap());

    let view = p.start_cluster_view();
    view.wait_until_ready().await;

    let first = p.scheduler_pass().await.unwrap();
    let admitted = first.admitted.len();
    // The next pass reads the watch cache; let it see every new pod first.
    let caught_up = Instant::now();
    while view.snapshot().1.len() < admitted {
        assert!(
            caught_up.elapsed().as_secs() < 60,
            "the pod watch never caught up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    eprintln!(
        "watch cache caught up with {admitted} new pods in {:?}",
        caught_up.elapsed()
    );
    let second = p.scheduler_pass().await.unwrap();
    let listed = {
        p.stop_cluster_view();
        p.scheduler_pass().await.unwrap()
    };
    let per_sec = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64();

    eprintln!("| pass | fetch | decide | write | drive | total | admitted | waiting |");
    eprintln!("|---|---|---|---|---|---|---|---|");
    for (name, r) in [
        ("first (admits and drives)", &first),
        ("steady state, watch cache", &second),
        ("steady state, listing the cluster", &listed),
    ] {
        eprintln!(
            "| {name} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {} | {} |",
            r.fetch_time.as_secs_f64() * 1000.0,
            r.decide_time.as_secs_f64() * 1000.0,
            r.write_time.as_secs_f64() * 1000.0,
            r.drive_time.as_secs_f64() * 1000.0,
            r.total_time.as_secs_f64() * 1000.0,
            r.admitted.len(),
            r.waiting,
        );
    }
    eprintln!(
        "admissions written: {:.0}/s (one transaction); driven through the fake API server: {:.0}/s",
        per_sec(admitted, first.write_time),
        per_sec(admitted, first.drive_time)
    );
    eprintln!(
        "peak RSS of the test process (processor + fake cluster): {:.0} MiB",
        peak_rss_mib()
    );

    assert!(admitted > 1000, "{admitted}");
    assert_eq!(first.waiting + admitted, 10_000);
    assert_eq!(env.objects("pods").len(), admitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release mode on demand"]
async fn bench_the_processor_binary_at_scale_for_its_memory() {
    let env = env().await;
    env.fake.seed_nodes("h100", 1000, 8);
    let db = env.db.connect().await;
    db.batch_execute(&format!(
        "INSERT INTO users (username) SELECT 'user' || g FROM generate_series(1, 100) g;
         INSERT INTO user_ssh_keys (user_id, public_key, fingerprint)
           SELECT user_id, '{KEY}', 'SHA256:test' FROM users;
         INSERT INTO reservations (reservation_id, user_id, gpu_type, gpu_count, node_count,
             duration_hours, image, created_at)
           SELECT gen_random_uuid(), (SELECT min(user_id) FROM users) + (g % 100), 'h100',
             (ARRAY[1, 2, 4, 8])[1 + (g % 4)], 1, 1 + (g % 8),
             'pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel',
             now() - make_interval(secs => 20000 - g)
           FROM generate_series(1, 10000) g;"
    ))
    .await
    .unwrap();
    let served = env
        .fake
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gpudev-processor"))
        .env("DATABASE_URL", env.db.url())
        .env("KUBECONFIG", served.kubeconfig_path())
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("GITHUB_KEYS_URL", "")
        .env("MAX_ACTIVE_RESERVATIONS_PER_USER", "0")
        .env("MAX_GPUS_PER_USER", "0")
        .env("SCHEDULER_INTERVAL_SECONDS", "2")
        .env("POLL_SECONDS", "1")
        .env("RUST_LOG", "warn,gpudev_processor=debug")
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::File::create(std::env::temp_dir().join("gpudev-processor-bench.log")).unwrap(),
        )
        .spawn()
        .unwrap();
    let preparing = || async {
        let n: i64 = db
            .query_one(
                "SELECT count(*) FROM reservations WHERE status = 'preparing'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        n
    };
    let mut admitted = 0;
    while admitted < 2000 || env.objects("pods").len() < usize::try_from(admitted).unwrap() {
        assert!(
            started.elapsed().as_secs() < 180,
            "only {admitted} admitted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        admitted = preparing().await;
    }
    let all_driven = started.elapsed();
    // A few steady-state passes.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let passes = value("gpudev_processor_scheduler_pass_duration_seconds_count");
    let pass_sum = value("gpudev_processor_scheduler_pass_duration_seconds_sum");
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let field = |key: &str| -> String {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .map(|l| l.trim_start_matches(key).trim().to_owned())
            .unwrap_or_default()
    };
    eprintln!("binary: {admitted} admitted and driven in {all_driven:?}");
    eprintln!(
        "binary: {passes} passes, mean {:.0} ms (the first includes driving)",
        pass_sum / passes * 1000.0
    );
    eprintln!(
        "binary: peak RSS {} (now {})",
        field("VmHWM:"),
        field("VmRSS:")
    );
    let stopping = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let exit = child.wait().unwrap();
    eprintln!(
        "binary: stopped {:?} after SIGTERM with {exit}",
        stopping.elapsed()
    );
    assert!(exit.success());
}
