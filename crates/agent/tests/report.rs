//! The agent binary against the real API and PostgreSQL, with a fake `nvidia-smi` (a script)
//! and a fake `/proc` (files): what it reads arrives as the reservation's report, and a report
//! with a wrong token is refused. The GPU tool and the kernel's tables are faked because this
//! machine has no GPU and its own connections would make the session count unpredictable.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail by panicking with the error"
)]

use std::path::Path;
use std::process::Command;

use gpudev_api::{ApiConfig, Application};
use gpudev_domain::{AgentToken, GpuType, ImageRef, ReservationStatus, Username};
use gpudev_store::reservations::{self, NewReservation, Transition};
use gpudev_store::{Queue, activity, users};
use uuid::Uuid;

const TCP_HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

/// An active reservation with an agent token; returns its id and the token.
async fn active_reservation(db: &gpudev_testkit::TestDb) -> (Uuid, AgentToken) {
    let mut client = db.connect().await;
    let name = Username::parse("alice").unwrap();
    let owner = users::create(&client, &name, users::Role::User)
        .await
        .unwrap();
    let new = NewReservation {
        reservation_id: Uuid::new_v4(),
        user_id: owner.user_id,
        username: name,
        name: None,
        gpu_type: GpuType::parse("t4").unwrap(),
        gpu_count: 1,
        node_count: 1,
        duration_hours: 2.0,
        image: ImageRef::parse("ubuntu").unwrap(),
        env_names: Vec::new(),
        disk_name: None,
        jupyter_enabled: false,
        github_user: None,
        priority: 0,
        idempotency_key: None,
        cli_version: None,
        request_hash: None,
        secrets: None,
        disk_size_gb: None,
        queue_position: None,
        estimated_start_at: None,
        start_at: None,
    };
    let queue = Queue::new(gpudev_store::DEFAULT_QUEUE).unwrap();
    reservations::submit(&mut client, &queue, &new)
        .await
        .unwrap();
    for to in [ReservationStatus::Preparing, ReservationStatus::Active] {
        let t = Transition {
            to,
            reason: None,
            actor: "test",
        };
        reservations::transition(&client, new.reservation_id, t)
            .await
            .unwrap();
    }
    let token = AgentToken::generate().unwrap();
    activity::set_agent_token(&client, new.reservation_id, &token.hash())
        .await
        .unwrap();
    (new.reservation_id, token)
}

/// A fake `/proc` with `sessions` established connections to port 22, and a fake
/// `nvidia-smi` printing `smi_output` (exiting 9 when it is `None`).
fn fake_box(dir: &Path, sessions: usize, smi_output: Option<&str>) {
    std::fs::create_dir_all(dir.join("proc/net")).unwrap();
    let mut tcp = TCP_HEADER.to_owned();
    tcp.push_str("   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n");
    for i in 0..sessions {
        tcp.push_str(&format!(
            "   {}: 0A00000B:0016 0A000001:{:04X} 01 00000000:00000000 00:00000000 00000000     0        0 9\n",
            i + 1,
            50_000 + i
        ));
    }
    std::fs::write(dir.join("proc/net/tcp"), tcp).unwrap();
    std::fs::write(dir.join("proc/uptime"), "4242.5 100.0\n").unwrap();
    let script = match smi_output {
        Some(out) => format!("#!/bin/sh\nprintf '{out}'\n"),
        None => "#!/bin/sh\nexit 9\n".to_owned(),
    };
    let smi = dir.join("nvidia-smi");
    std::fs::write(&smi, script).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `gpudev-agent --once` as the box in `dir` with `token`.
async fn agent(dir: &Path, api: &str, token: &str) -> std::process::Output {
    std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_gpudev-agent"))
        .arg("--once")
        .env_clear()
        .env("GPUDEV_AGENT_URL", api)
        .env("GPUDEV_AGENT_TOKEN_FILE", dir.join("token"))
        .env("GPUDEV_AGENT_NVIDIA_SMI", dir.join("nvidia-smi"))
        .env("GPUDEV_AGENT_PROC", dir.join("proc"))
        .output()
        .await
        .unwrap()
}

/// The latest report stored for reservation `id`.
async fn stored_report(db: &gpudev_testkit::TestDb, id: Uuid) -> serde_json::Value {
    db.connect()
        .await
        .query_one(
            "SELECT report FROM reservation_activity WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn the_agent_reports_what_it_reads_and_a_wrong_token_is_refused() {
    let db = gpudev_testkit::test_db().await;
    let vars = [
        ("DATABASE_URL", db.url()),
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ("SHUTDOWN_DRAIN_SECONDS", "0".to_owned()),
        ("LOG_FORMAT", "pretty".to_owned()),
        ("DB_POOL_SIZE", "2".to_owned()),
    ];
    let config = ApiConfig::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let app = Application::build(config).await.unwrap();
    let api = format!("http://{}", app.api_addr());
    tokio::spawn(app.run_until_stopped());
    let (id, token) = active_reservation(&db).await;
    let dir = tempfile::tempdir().unwrap();

    // Two SSH sessions and a busy GPU.
    fake_box(
        dir.path(),
        2,
        Some("0, 87, 40000, 81559\\n1, 0, 3, 81559\\n"),
    );
    let busy = agent(dir.path(), &api, token.expose()).await;
    assert!(
        busy.status.success(),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&busy.stdout).unwrap();
    assert_eq!(answer["active"], true);
    let client = db.connect().await;
    let stored = stored_report(&db, id).await;
    assert_eq!(stored["ssh_sessions"], 2);
    assert_eq!(stored["uptime_seconds"], 4242);
    assert_eq!(stored["gpus"][0]["utilization_percent"], 87);
    assert_eq!(stored["gpus"][1]["memory_total_mib"], 81559);

    // No session, nvidia-smi failing: GPUs unknown, and the box is idle.
    fake_box(dir.path(), 0, None);
    let idle = agent(dir.path(), &api, token.expose()).await;
    assert!(
        idle.status.success(),
        "{}",
        String::from_utf8_lossy(&idle.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&idle.stdout).unwrap();
    assert_eq!(answer["active"], false);
    assert!(answer["idle_since"].is_string());
    let stored = stored_report(&db, id).await;
    assert_eq!(stored["ssh_sessions"], 0);
    assert!(stored["gpus"].is_null(), "unknown, not idle GPUs: {stored}");

    // Another token: refused, and the agent says why.
    let wrong = agent(dir.path(), &api, AgentToken::generate().unwrap().expose()).await;
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    let reports: i64 = client
        .query_one("SELECT count(*) FROM activity_reports", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reports, 2);
}

#[test]
fn install_copies_the_binary_as_an_executable() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("gpudev-agent");
    let status = Command::new(env!("CARGO_BIN_EXE_gpudev-agent"))
        .args(["install", dest.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = Command::new(&dest).arg("--bogus").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "the copy runs and knows its usage"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: gpudev-agent"));
}
