//! A dev box nobody could log in to is not started: GitHub lookups that fail show in the
//! reservation's detailed status and events at once, and the reservation fails with the reason
//! within the stated time; one that cannot ever get a key fails at once with how to fix it.

use std::time::{Duration, Instant};

use gpudev_domain::ReservationStatus;
use gpudev_store::reservations;

use crate::common::{Ask, Env, User, env};

/// A stand-in for GitHub that answers every request with `status` and no body.
async fn github_answering(status: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let response =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    format!("http://{addr}")
}

/// A user with no registered SSH key whose account names GitHub login `octocat`.
async fn github_only_user(env: &Env, name: &str) -> User {
    let user = env.user(name).await;
    let mut db = env.db.connect().await;
    gpudev_store::ssh_keys::replace(&mut db, user.id, &[])
        .await
        .unwrap();
    db.execute(
        "UPDATE users SET github_username = 'octocat' WHERE user_id = $1",
        &[&user.id],
    )
    .await
    .unwrap();
    user
}

async fn attempt_notes(env: &Env, id: uuid::Uuid) -> Vec<reservations::Event> {
    let db = env.db.connect().await;
    reservations::events(&db, id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.details.get("ssh_key_attempt").is_some())
        .collect()
}

#[tokio::test]
async fn an_unreachable_github_shows_at_once_and_fails_the_reservation_at_the_deadline() {
    let mut env = env().await;
    env.config.github_keys_url = Some(github_answering("503 Service Unavailable").await);
    env.config.github_keys_deadline = Duration::from_secs(3);
    env.cluster.seed_nodes("t4", 1, 4).await;
    let alice = github_only_user(&env, "slow-alice").await;
    let id = env.submit(&alice, Ask::gpus("t4", 1)).await;
    let p = env.leader().await;

    let started = Instant::now();
    p.process_once().await.unwrap();

    let r = env.get(id).await;
    assert_eq!(r.status, ReservationStatus::Preparing);
    let detail = r.detailed_status.unwrap_or_default();
    // The pass that admits it tries once, and the message that announced it once more.
    assert!(detail.contains("attempt "), "{detail}");
    assert!(detail.contains("octocat"), "{detail}");
    assert!(detail.contains("503"), "the reason: {detail}");
    assert!(detail.contains("GITHUB_KEYS_DEADLINE_SECONDS"), "{detail}");
    let notes = attempt_notes(&env, id).await;
    assert!(!notes.is_empty(), "an event for each attempt: {notes:?}");
    let first_notes = notes.len();
    assert_eq!(env.objects_of(id).await, 0, "no dev box without a key");

    // The reconciliation tries again within the time left, then gives up.
    while env.status(id).await == ReservationStatus::Preparing {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still preparing: {:?}",
            env.get(id).await
        );
        p.reconcile().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();

    let r = env.get(id).await;
    assert_eq!(r.status, ReservationStatus::Failed);
    let reason = r.failure_reason.unwrap_or_default();
    assert!(reason.contains("503"), "{reason}");
    assert!(reason.contains("within 3 s"), "{reason}");
    assert!(reason.contains("gpu-dev ssh-keys add"), "{reason}");
    assert!(
        took >= Duration::from_secs(3),
        "not before the deadline: {took:?}"
    );
    assert!(
        attempt_notes(&env, id).await.len() > first_notes,
        "each attempt is recorded"
    );
    eprintln!("failed {took:?} after admission with a 3 s deadline");
}

#[tokio::test]
async fn an_unknown_github_user_and_no_key_fail_at_the_first_attempt() {
    let mut env = env().await;
    env.config.github_keys_url = Some(github_answering("404 Not Found").await);
    env.cluster.seed_nodes("t4", 1, 4).await;
    let alice = github_only_user(&env, "alice").await;
    let id = env.submit(&alice, Ask::gpus("t4", 1)).await;
    let p = env.leader().await;

    p.process_once().await.unwrap();

    let r = env.get(id).await;
    assert_eq!(r.status, ReservationStatus::Failed, "{r:?}");
    let reason = r.failure_reason.unwrap_or_default();
    assert!(
        reason.contains("octocat: GitHub has no such user"),
        "{reason}"
    );
    assert!(reason.contains("gpu-dev ssh-keys add"), "{reason}");
    assert_eq!(env.objects_of(id).await, 0);
}

#[tokio::test]
async fn a_registered_key_is_enough_while_github_is_down() {
    let mut env = env().await;
    env.config.github_keys_url = Some(github_answering("503 Service Unavailable").await);
    env.cluster.seed_nodes("t4", 1, 4).await;
    let alice = env.user("slow-alice").await;
    let id = env.submit(&alice, Ask::gpus("t4", 1)).await;
    let db = env.db.connect().await;
    db.execute(
        "UPDATE reservations SET github_user = 'octocat' WHERE reservation_id = $1",
        &[&id],
    )
    .await
    .unwrap();
    let p = env.leader().await;

    p.process_once().await.unwrap();

    assert_eq!(env.status(id).await, ReservationStatus::Preparing);
    assert_eq!(
        env.objects_of(id).await,
        3,
        "started with the registered key"
    );
}
