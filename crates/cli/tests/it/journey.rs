//! Waiting for a reservation: the spinner's plain-text lines, the SSH command at the end, Ctrl-C,
//! and a reservation that fails while waited for. The processor is simulated here with the
//! store's own guarded transitions (queued → preparing → active, then the SSH address), so these
//! tests pin down the CLI alone; `processor.rs` runs the real one.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::helpers::World;

/// A waiting `gpu-dev reserve` that has reported its job queued.
struct Waiting {
    child: tokio::process::Child,
    /// The job's short id.
    short: String,
    /// The rest of standard error, read in the background so the child never blocks on it.
    rest: tokio::task::JoinHandle<Vec<String>>,
}

/// Starts `gpu-dev reserve` (waiting, no processor) and returns once it reports the job queued.
async fn reserve_until_queued(w: &World) -> Waiting {
    let mut child = w
        .command(
            &["reserve", "-t", "t4", "--github-user", "octocat"],
            &[],
            &[],
        )
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let short = tokio::time::timeout(Duration::from_secs(30), async {
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((short, rest)) = line.split_once(": ")
                && rest.starts_with("queued")
            {
                return short.to_owned();
            }
            seen.push(line);
        }
        panic!("the job was never reported queued: {seen:?}");
    })
    .await
    .unwrap();
    let rest = tokio::spawn(async move {
        let mut rest = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        rest
    });
    Waiting { child, short, rest }
}

async fn full_id(w: &World, short: &str) -> String {
    w.sql()
        .await
        .query_one(
            "SELECT reservation_id::text FROM reservations WHERE reservation_id::text LIKE $1 || '%'",
            &[&short],
        )
        .await
        .unwrap()
        .get(0)
}

async fn job_status(w: &World, short: &str) -> String {
    w.sql()
        .await
        .query_one(
            "SELECT status::text FROM reservations WHERE reservation_id::text LIKE $1 || '%'",
            &[&short],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn ctrl_c_stops_waiting_but_not_the_reservation_and_says_how_to_cancel() {
    let w = World::new().await;
    w.login().await;
    let mut waiting = reserve_until_queued(&w).await;
    let pid = waiting.child.id().unwrap().to_string();

    let killed = std::process::Command::new("kill")
        .args(["-s", "INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), waiting.child.wait())
        .await
        .expect("gpu-dev stops waiting on Ctrl-C")
        .unwrap();

    assert_eq!(status.code(), Some(130));
    let rest = waiting.rest.await.unwrap().join("\n");
    let short = &waiting.short;
    assert!(
        rest.contains(&format!(
            "Stopped waiting. Reservation {short} is still queued"
        )),
        "{rest}"
    );
    assert!(rest.contains(&format!("gpu-dev cancel {short}")), "{rest}");
    assert!(rest.contains(&format!("gpu-dev show {short}")), "{rest}");
    assert!(!rest.contains("error:"), "{rest}");
    assert_eq!(
        job_status(&w, short).await,
        "queued",
        "the reservation goes on"
    );
}

#[tokio::test]
async fn a_reservation_that_fails_while_waited_for_exits_1_with_its_reason() {
    use gpudev_domain::ReservationStatus;
    use gpudev_store::reservations::{self, Transition};

    let w = World::new().await;
    w.login().await;
    let mut waiting = reserve_until_queued(&w).await;
    // What the processor does when a request can never be met.
    let db = w.sql().await;
    let id: uuid::Uuid = db
        .query_one(
            "SELECT reservation_id FROM reservations WHERE reservation_id::text LIKE $1 || '%'",
            &[&waiting.short],
        )
        .await
        .unwrap()
        .get(0);
    reservations::transition(
        &db,
        id,
        Transition {
            to: ReservationStatus::Failed,
            reason: Some("image pull failed: no such image"),
            actor: "processor",
        },
    )
    .await
    .unwrap();

    let status = tokio::time::timeout(Duration::from_secs(10), waiting.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let rest = waiting.rest.await.unwrap();
    assert_eq!(
        rest.last().map(String::as_str),
        Some(
            format!(
                "error: reservation {} is failed: image pull failed: no such image",
                waiting.short
            )
            .as_str()
        ),
        "{rest:?}"
    );
}

#[tokio::test]
async fn reserve_waits_with_progress_lines_until_active_then_prints_the_ssh_command() {
    let w = World::new().await;
    w.login().await;
    let mut waiting = reserve_until_queued(&w).await;
    // Let it poll a few times while queued, then do what the processor does.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = full_id(&w, &waiting.short).await;
    w.activate(&id).await;

    let status = tokio::time::timeout(Duration::from_secs(10), waiting.child.wait())
        .await
        .expect("reserve returns once the job is active")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let mut stdout = String::new();
    tokio::io::AsyncReadExt::read_to_string(waiting.child.stdout.as_mut().unwrap(), &mut stdout)
        .await
        .unwrap();
    let rest = waiting.rest.await.unwrap();
    let short = &waiting.short;
    assert_eq!(
        rest.iter()
            .filter(|l| l.starts_with(&format!("{short}: queued")))
            .count(),
        0,
        "an unchanged status is not repeated: {rest:?}"
    );
    assert!(
        rest.iter()
            .any(|l| l.starts_with(&format!("{short}: active"))),
        "{rest:?}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("Reservation {short} is active: 1 × t4 until ")),
        "{stdout}"
    );
    assert_eq!(lines[1], "Connect:  ssh -p 30022 dev@10.0.0.7");
    assert_eq!(lines[2], format!("      or  gpu-dev connect {short}"));
}
