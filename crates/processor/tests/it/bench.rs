//! The processor's benchmarks (not timed tests; run them in release mode, on demand).
//! `scripts/bench-processor` runs them several times and rewrites the processor section of
//! `docs/BENCHMARKS.md` with the medians; by hand:
//!
//! ```text
//! cargo nextest run --release -p gpudev-processor --run-ignored only -E 'test(bench)' --test-threads 1 --no-capture
//! ```
//!
//! 1,000 nodes × 8 GPUs, 10,000 queued reservations from 100 users (1–8 GPUs, 1–8 hours), no
//! quotas. The first benchmark runs passes in process: the first pass admits what fits and drives
//! every admission through the fake API server; the later ones are the steady-state periodic
//! pass. The second runs the real binary against the fake cluster served over HTTP and reports
//! its own peak memory, then runs the availability and expiry CronJob binaries once against the
//! state it left, when they are built next to it (`cargo build --release --bin …`).
//!
//! Each prints readable lines to stderr and, when `GPUDEV_BENCH_OUT` names a file, appends its
//! figures to it as one JSON object per line.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use gpudev_domain::Quotas;
use gpudev_processor::PassReport;
use serde_json::{Value, json};

use crate::common::{Env, KEY, fake_env};

/// Nodes in the fake cluster, and GPUs on each.
const NODES: usize = 1000;
const GPUS_PER_NODE: u32 = 8;
/// Queued reservations before the first pass.
const QUEUED: usize = 10_000;

/// Appends `figures` (a JSON object) as one line to the file named by `GPUDEV_BENCH_OUT`.
fn record(figures: &Value) {
    let Some(path) = std::env::var_os("GPUDEV_BENCH_OUT") else {
        return;
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(file, "{figures}").unwrap();
}

/// A line of `/proc/<pid>/status` (`VmHWM:`, `VmRSS:`), in MiB.
fn status_mib(pid: &str, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The cluster and the queue of every benchmark.
async fn seed(env: &Env) {
    env.cluster.seed_nodes("h100", NODES, GPUS_PER_NODE).await;
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
             now() - make_interval(secs => {QUEUED} * 2 - g)
           FROM generate_series(1, {QUEUED}) g;"
    ))
    .await
    .unwrap();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pass_figures(r: &PassReport) -> Value {
    json!({
        "fetch_ms": ms(r.fetch_time),
        "decide_ms": ms(r.decide_time),
        "write_ms": ms(r.write_time),
        "drive_ms": ms(r.drive_time),
        "total_ms": ms(r.total_time),
        "admitted": r.admitted.len(),
        "waiting": r.waiting,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release mode on demand"]
async fn bench_scheduler_pass_over_1000_nodes_and_10000_queued_reservations() {
    let Some(env) = fake_env("a benchmark of the fake-backed processor").await else {
        return;
    };
    let seeded = Instant::now();
    seed(&env).await;
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
        tokio::time::sleep(Duration::from_millis(10)).await;
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
    let per_sec = |n: usize, d: Duration| n as f64 / d.as_secs_f64();

    eprintln!("| pass | fetch | decide | write | drive | total | admitted | waiting |");
    eprintln!("|---|---|---|---|---|---|---|---|");
    for (name, r) in [
        ("first (admits and drives)", &first),
        ("steady state, watch cache", &second),
        ("steady state, listing the cluster", &listed),
    ] {
        eprintln!(
            "| {name} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {} | {} |",
            ms(r.fetch_time),
            ms(r.decide_time),
            ms(r.write_time),
            ms(r.drive_time),
            ms(r.total_time),
            r.admitted.len(),
            r.waiting,
        );
    }
    let written = per_sec(admitted, first.write_time);
    let driven = per_sec(admitted, first.drive_time);
    let peak = status_mib("self", "VmHWM:");
    eprintln!(
        "admissions written: {written:.0}/s (one transaction); driven through the fake API server: {driven:.0}/s"
    );
    eprintln!("peak RSS of the test process (processor + fake cluster): {peak:.0} MiB");
    record(&json!({
        "bench": "passes",
        "nodes": NODES,
        "gpus_per_node": GPUS_PER_NODE,
        "queued": QUEUED,
        "first": pass_figures(&first),
        "watch": pass_figures(&second),
        "listing": pass_figures(&listed),
        "admissions_written_per_s": written,
        "admissions_driven_per_s": driven,
        "test_process_peak_rss_mib": peak,
    }));

    assert!(admitted > 1000, "{admitted}");
    assert_eq!(first.waiting + admitted, QUEUED);
    assert_eq!(env.objects("pods").await.len(), admitted);
}

/// Runs a CronJob binary once to completion and returns (its peak RSS in MiB, seconds taken).
/// The peak is the kernel's account of the reaped child (`getrusage`, through Python's
/// `resource` module): `/proc/<pid>/status` is gone by the time a short run exits.
fn run_once_for_memory(binary: &Path, env: &[(&str, &str)]) -> (f64, f64) {
    let started = Instant::now();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import resource, subprocess, sys\n\
             code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n\
             print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
        ])
        .arg(binary)
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        fields.first(),
        Some(&"0"),
        "{} failed: {text}",
        binary.display()
    );
    let kib: f64 = fields[1].parse().unwrap();
    (kib / 1024.0, seconds)
}

/// `reconcile_ms` of the binary's `periodic work done` log lines (JSON logs at debug) but the
/// first: that tick runs as soon as the binary leads, before anything is admitted.
fn reconcile_times_after_admission(log: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(log).unwrap();
    let times: Vec<f64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "periodic work done")
        .filter_map(|v| v["reconcile_ms"].as_f64())
        .collect();
    times.get(1..).unwrap_or_default().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release mode on demand"]
async fn bench_the_processor_binary_at_scale_for_its_memory() {
    let Some(env) = fake_env("a benchmark of the fake-backed processor").await else {
        return;
    };
    seed(&env).await;
    let db = env.db.connect().await;
    let served = env
        .fake()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::env::temp_dir().join(format!(
        "gpudev-processor-bench-{}.log",
        uuid::Uuid::new_v4().simple()
    ));
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
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn,gpudev_processor=debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
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
    while admitted < 2000 || env.objects("pods").await.len() < usize::try_from(admitted).unwrap() {
        assert!(
            started.elapsed().as_secs() < 180,
            "only {admitted} admitted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        admitted = preparing().await;
    }
    let all_driven = started.elapsed();
    // A few steady-state passes.
    tokio::time::sleep(Duration::from_secs(7)).await;
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
    let pid = child.id().to_string();
    let (peak, now) = (status_mib(&pid, "VmHWM:"), status_mib(&pid, "VmRSS:"));
    eprintln!("binary: {admitted} admitted and driven in {all_driven:?}");
    eprintln!(
        "binary: {passes} passes, mean {:.0} ms (the first includes driving)",
        pass_sum / passes * 1000.0
    );
    eprintln!("binary: peak RSS {peak:.0} MiB (now {now:.0} MiB)");
    let stopping = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let exit = child.wait().unwrap();
    let stop = stopping.elapsed();
    eprintln!("binary: stopped {stop:?} after SIGTERM with {exit}");
    assert!(exit.success());
    let reconciles = reconcile_times_after_admission(&log);
    eprintln!("binary: reconciliations after the admissions {reconciles:?} ms");
    assert!(
        !reconciles.is_empty(),
        "no reconciliation logged in {log:?}"
    );
    let _ = std::fs::remove_file(&log);

    // The CronJobs, once each, against what the processor left: 10,000 reservations, about 2,000
    // of them preparing with their Pods, Services and Secrets.
    let dir = Path::new(env!("CARGO_BIN_EXE_gpudev-processor"))
        .parent()
        .unwrap();
    let url = env.db.url();
    let job_env = [
        ("DATABASE_URL", url.as_str()),
        ("KUBECONFIG", served.kubeconfig_path().to_str().unwrap()),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "warn"),
    ];
    let mut cronjobs = serde_json::Map::new();
    for name in ["gpudev-availability", "gpudev-expiry"] {
        let binary = dir.join(name);
        if !binary.exists() {
            eprintln!("{name}: not built next to the processor; not measured");
            continue;
        }
        let (peak, seconds) = run_once_for_memory(&binary, &job_env);
        eprintln!("{name}: one run in {seconds:.2} s, peak RSS {peak:.0} MiB");
        cronjobs.insert(
            name.to_owned(),
            json!({ "peak_rss_mib": peak, "run_s": seconds }),
        );
    }

    record(&json!({
        "bench": "binary",
        "admitted": admitted,
        "all_driven_s": all_driven.as_secs_f64(),
        "passes": passes,
        "mean_pass_ms": pass_sum / passes * 1000.0,
        "peak_rss_mib": peak,
        "reconcile_ms": reconciles,
        "stop_s": stop.as_secs_f64(),
        "cronjobs": cronjobs,
    }));
}
