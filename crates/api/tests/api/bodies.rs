//! Request bodies: repeated JSON keys are refused on every route, and a body that trickles in is
//! cut off after `BODY_READ_TIMEOUT_SECONDS`.

use std::time::{Duration, Instant};

use gpudev_store::users::Role;
use reqwest::Method;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{TestApp, count, spawn_app, spawn_app_with, status_json};

/// POSTs `body` as it is written (serde_json would collapse a repeated key).
async fn post_raw(app: &TestApp, path: &str, key: Option<&str>, body: &str) -> reqwest::Response {
    let mut req = app
        .http
        .request(Method::POST, format!("{}{path}", app.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_repeated_json_key_is_422_naming_it_on_every_route_and_nothing_is_written() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;

    let cases = [
        (
            "/v1/disks",
            r#"{"disk_name": "a", "disk_name": "b"}"#,
            "disk_name",
        ),
        (
            "/v1/jobs/submit",
            r#"{"gpu_type": "t4", "env_vars": {"X": "1", "X": "2"}}"#,
            "env_vars.X",
        ),
        (
            "/v1/keys/rotate",
            r#"{"revoke_current": false, "revoke_current": true}"#,
            "revoke_current",
        ),
    ];
    for (path, body, named) in cases {
        let (status, answer) = status_json(post_raw(&app, path, Some(&key), body).await).await;
        assert_eq!(status, 422, "{path}: {answer}");
        assert_eq!(answer["code"], "validation_error");
        assert!(
            answer["detail"].as_str().unwrap().starts_with(named),
            "{path}: {answer}"
        );
    }
    // The logins, which need no key, are covered too.
    let (status, answer) = status_json(
        post_raw(
            &app,
            "/v1/auth/oidc-login",
            None,
            r#"{"id_token": "a.b.c", "id_token": "d.e.f"}"#,
        )
        .await,
    )
    .await;
    assert_eq!(
        (
            status,
            answer["detail"].as_str().map(|d| d.starts_with("id_token"))
        ),
        (422, Some(true)),
        "{answer}"
    );

    assert_eq!(count(&app, "SELECT count(*) FROM disks").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM reservations").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM api_keys").await, 1);
    // Without a key the body is not read: 401, not 422.
    let (status, _) = status_json(
        post_raw(
            &app,
            "/v1/disks",
            None,
            r#"{"disk_name": "a", "disk_name": "b"}"#,
        )
        .await,
    )
    .await;
    assert_eq!(status, 401);
    // The same keys in different objects are fine.
    let (status, answer) = status_json(
        post_raw(
            &app,
            "/v1/disks",
            Some(&key),
            r#"{"disk_name": "a", "size_gb": 20}"#,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

/// Sends the head of a POST announcing a 100-byte body, then 10 bytes of it, and nothing more;
/// the server's answer and how long it took.
async fn trickle(app: &TestApp, key: &str) -> (String, Duration) {
    let addr = app.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/disks HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"disk_nam"
    );
    let started = Instant::now();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf).await.unwrap_or(0);
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 10 s");
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn bodies_that_trickle_in_are_cut_off_after_the_body_read_timeout() {
    let app = spawn_app_with(&[("BODY_READ_TIMEOUT_SECONDS", "1"), ("DB_POOL_SIZE", "2")]).await;
    let (_, key) = app.user_with_key("alice", Role::User).await;

    let slow = (0..50).map(|_| trickle(&app, &key));
    let answers = futures::future::join_all(slow).await;

    let slowest = answers.iter().map(|(_, t)| *t).max().unwrap();
    for (answer, _) in &answers {
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("did not arrive within 1 s"), "{answer}");
    }
    assert!(
        slowest < Duration::from_secs(4),
        "50 slow bodies all answered in {slowest:?}"
    );
    println!("50 trickled bodies answered 400 within {slowest:?} (BODY_READ_TIMEOUT_SECONDS=1)");
    // The server still answers others at once.
    let (status, _) = status_json(app.get("/v1/disks", &key).await).await;
    assert_eq!(status, 200);
}
