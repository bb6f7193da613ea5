//! The whole journey with the real processor over the fake Kubernetes API server: log in, add an
//! SSH key, reserve and wait until active, connect, extend, cancel.

use std::time::Duration;

use gpudev_processor::{Processor, ProcessorConfig};
use gpudev_testkit::FakeCluster;

use crate::helpers::{SSH_KEY, World, write};

/// The processor running against the world's database and a fake cluster with one 4-GPU t4
/// node whose kubelet is simulated. Stopped on drop.
struct Running {
    fake: FakeCluster,
    _simulation: gpudev_testkit::kube::Simulation,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn processor(w: &World) -> Running {
    let fake = FakeCluster::new();
    fake.seed_nodes("t4", 1, 4);
    let simulation = fake.start_simulation(Duration::from_millis(50));
    let mut config = ProcessorConfig::for_database(&w.db.url()).unwrap();
    config.secret_keys =
        Some(gpudev_store::SealingKeys::parse(crate::helpers::TEST_SECRETS_KEYS).unwrap());
    let p = Processor::build(config, fake.client()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        p.run_until_stopped(async move {
            let _ = stopped.await;
        })
        .await
    });
    Running {
        fake,
        _simulation: simulation,
        stop: Some(stop),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_reserve_wait_connect_extend_cancel() {
    let w = World::new().await;
    write(&w.home().join(".ssh").join("id_ed25519.pub"), SSH_KEY);
    let running = processor(&w).await;

    w.login().await;
    w.run(&["ssh-keys", "add"]).await.ok();

    let run = w
        .run(&[
            "reserve", "-t", "t4", "-g", "2", "-H", "2", "--name", "journey",
        ])
        .await
        .ok();
    assert!(
        run.stderr
            .contains("submitted; waiting for it to start (Ctrl-C stops waiting"),
        "{run:#?}"
    );
    // Not a terminal: progress comes as plain lines, no spinner escapes.
    assert!(
        run.stderr.contains(": queued") || run.stderr.contains(": preparing"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains('\x1b'), "{run:#?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].contains(" is active: 2 × t4 until "), "{run:#?}");
    let ssh = lines[1].strip_prefix("Connect:  ").unwrap();
    assert!(
        ssh.starts_with("ssh -p ") && ssh.contains(" dev@10.0."),
        "{ssh}"
    );

    let jobs = w.run(&["list", "-o", "json"]).await.ok().json();
    let job = &jobs["jobs"][0];
    assert_eq!(job["status"], "active");
    assert_eq!(job["ssh_command"], ssh);
    let id = job["job_id"].as_str().unwrap().to_owned();
    let pods = running.fake.objects("pods", Some("gpu-dev"));
    assert_eq!(pods.len(), 1, "the processor made the pod");

    let argv_file = w.home().join("argv");
    let fake_ssh = w.home().join("fake-ssh");
    write(
        &fake_ssh,
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\n",
            argv_file.display()
        ),
    );
    std::fs::set_permissions(
        &fake_ssh,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    w.run_env(
        &["connect", &id[..8]],
        &[("GPU_DEV_SSH", fake_ssh.to_str().unwrap())],
        &[],
    )
    .await
    .ok();
    let argv = std::fs::read_to_string(&argv_file).unwrap();
    let port = ssh.split_whitespace().nth(2).unwrap();
    let target = ssh.split_whitespace().nth(3).unwrap();
    let argv: Vec<&str> = argv.lines().collect();
    assert_eq!((argv[0], argv[1]), ("-p", port));
    assert_eq!(argv.last().copied(), Some(target));

    let out = w
        .run(&["extend", &id, "-H", "1", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(out["status"], "extended");

    w.run(&["cancel", &id, "--yes"]).await.ok();
    let shown = w.run(&["show", &id, "-o", "json"]).await.ok().json();
    assert_eq!(shown["status"], "cancelled");
    let transitions: Vec<String> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["to_status"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(transitions, ["queued", "preparing", "active", "cancelled"]);
    // The processor removes the dev box.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !running.fake.objects("pods", Some("gpu-dev")).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the pod was never removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_with_json_output_waits_and_prints_the_active_job() {
    let w = World::new().await;
    write(&w.home().join(".ssh").join("id_ed25519.pub"), SSH_KEY);
    let _running = processor(&w).await;
    w.login().await;
    w.run(&["ssh-keys", "add"]).await.ok();

    let run = w.run(&["reserve", "-t", "t4", "-o", "json"]).await.ok();
    let job = run.json();
    assert_eq!(job["status"], "active");
    assert!(job["ssh_command"].as_str().unwrap().starts_with("ssh -p "));
    assert!(job["expires_at"].as_str().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_submit_answer_is_what_the_next_pass_decides_when_nothing_else_changes() {
    let w = World::new().await;
    write(&w.home().join(".ssh").join("id_ed25519.pub"), SSH_KEY);
    let _running = processor(&w).await;
    w.login().await;
    w.run(&["ssh-keys", "add"]).await.ok();
    // The whole node, for two hours.
    w.run(&["reserve", "-t", "t4", "-g", "4", "-H", "2"])
        .await
        .ok();
    // Let a pass publish the state with the running reservation as it now stands, and the API
    // pick it up.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let answer = w
        .run(&[
            "reserve",
            "-t",
            "t4",
            "-g",
            "2",
            "-H",
            "1",
            "--no-wait",
            "-o",
            "json",
        ])
        .await
        .ok()
        .json();
    let id = answer["job_id"].as_str().unwrap().to_owned();
    assert_eq!(answer["queue_position"], 1, "{answer}");
    let promised = answer["estimated_start_time"].as_str().unwrap().to_owned();

    // The next pass writes its own standing; it agrees with the answer.
    let mut job = serde_json::Value::Null;
    for _ in 0..100 {
        job = w.run(&["show", &id, "-o", "json"]).await.ok().json();
        if !job["estimated_start_time"].is_null() && job["queue_position"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp();
    assert_eq!(
        at(job["estimated_start_time"].as_str().unwrap()),
        at(&promised),
        "answer {answer}\nafter the pass {job}"
    );
}

/// A time as `gpu-dev` shows it (and reads it) in the zone the runs below use: UTC+3.
fn local(t: chrono::DateTime<chrono::Utc>, format: &str) -> String {
    t.with_timezone(&chrono::FixedOffset::east_opt(3 * 3600).unwrap())
        .format(format)
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_in_local_time_is_offered_when_taken_and_starts_at_its_time() {
    // POSIX for UTC+3, whatever the season.
    let tz = [("TZ", "UTC-3")];
    let w = World::new().await;
    write(&w.home().join(".ssh").join("id_ed25519.pub"), SSH_KEY);
    let _running = processor(&w).await;
    w.login().await;
    w.run(&["ssh-keys", "add"]).await.ok();
    let now = chrono::Utc::now();
    let start = chrono::DateTime::from_timestamp(now.timestamp() + 25, 0).unwrap();
    let at = local(start, "%Y-%m-%d %H:%M:%S");

    // What could be booked then, once the scheduler has made its first pass: the whole node.
    let mut avail = None;
    for _ in 0..100 {
        let run = w
            .run_env(&["avail", "--at", &at, "-o", "json"], &tz, &[])
            .await;
        if run.code == 0 {
            avail = Some(run.json());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let avail = avail.expect("the scheduler published its state");
    assert_eq!(
        avail["availability"]["t4"]["bookable"]["max_on_one_node"], 4,
        "{avail}"
    );
    assert_eq!(
        avail["at"]
            .as_str()
            .map(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap()),
        Some(start.fixed_offset())
    );

    let booked = w
        .run_env(
            &[
                "reserve",
                "-t",
                "t4",
                "-g",
                "4",
                "-H",
                "1",
                "--start-at",
                &at,
                "-o",
                "json",
            ],
            &tz,
            &[],
        )
        .await
        .ok()
        .json();
    let id = booked["job_id"].as_str().unwrap().to_owned();
    let eta =
        chrono::DateTime::parse_from_rfc3339(booked["estimated_start_time"].as_str().unwrap())
            .unwrap();
    assert_eq!(eta.timestamp(), start.timestamp(), "{booked}");

    // The same GPUs then are taken: refused, with the earliest start offered in local time
    // (its hour, then the release delay after it).
    let refused = w
        .run_env(
            &[
                "reserve",
                "-t",
                "t4",
                "-g",
                "2",
                "-H",
                "1",
                "--start-at",
                &at,
            ],
            &tz,
            &[],
        )
        .await;
    assert_eq!(refused.code, 1, "{refused:#?}");
    let offered = local(
        start + chrono::Duration::seconds(3600 + 180),
        "%Y-%m-%d %H:%M",
    );
    assert!(
        refused.stderr.contains("earliest start you can book is")
            && refused
                .stderr
                .contains(&format!("--start-at \"{offered}\"")),
        "{refused:#?}"
    );

    let shown = w.run_env(&["show", &id], &tz, &[]).await.ok();
    let when = local(start, "%Y-%m-%d %H:%M");
    assert!(
        shown
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("Booked for") && l.contains(&when)),
        "{shown:#?}"
    );

    // It waits for its time, then starts within a scheduler interval of it.
    let mut status = String::new();
    for _ in 0..300 {
        let job = w.run(&["show", &id, "-o", "json"]).await.ok().json();
        status = job["status"].as_str().unwrap().to_owned();
        if status != "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_ne!(status, "queued", "never started");
    let row = w
        .sql()
        .await
        .query_one(
            "SELECT extract(epoch FROM admitted_at - start_at)::float8 FROM reservations \
             WHERE reservation_id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    let late = row.get::<_, f64>(0);
    assert!(
        (0.0..15.0).contains(&late),
        "admitted {late} s after its booked start"
    );
}
