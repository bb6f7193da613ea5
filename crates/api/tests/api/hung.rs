//! A hung database (PostgreSQL frozen with SIGSTOP, the stand-in for a network partition): an
//! authenticated request is answered 503 with `Retry-After` and our error body within a few
//! seconds of the statement bound, instead of waiting for the database; once it is resumed the
//! same API (and pool) answers again.

use std::time::{Duration, Instant};

use gpudev_store::users::Role;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_on};

/// `DB_STATEMENT_TIMEOUT_SECONDS` here; the API gives up on the database 2 s after it.
const STATEMENT_SECS: u64 = 1;

/// Sends `req` and returns its status, `Retry-After`, body and how long it took.
async fn timed(req: reqwest::RequestBuilder) -> (u16, Option<String>, Value, Duration) {
    let started = Instant::now();
    let resp = req
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the API answers");
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, retry, body, started.elapsed())
}

fn me(app: &TestApp, key: &str) -> reqwest::RequestBuilder {
    app.http.get(format!("{}/v1/me", app.base)).bearer_auth(key)
}

fn submit(app: &TestApp, key: &str) -> reqwest::RequestBuilder {
    app.http
        .post(format!("{}/v1/jobs/submit", app.base))
        .bearer_auth(key)
        .json(&json!({"gpu_type": "t4", "gpu_count": 1, "duration_hours": 1.0}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_frozen_database_is_answered_503_with_retry_after_within_the_bound_and_recovers() {
    let cluster = gpudev_testkit::private_cluster().await;
    let db = cluster.test_db().await;
    let app = spawn_app_on(
        db,
        &[
            ("DB_STATEMENT_TIMEOUT_SECONDS", &STATEMENT_SECS.to_string()),
            ("DB_CONNECT_TIMEOUT_SECONDS", "2"),
            // Every request reads the key from the database.
            ("KEY_CACHE_SECONDS", "0"),
        ],
    )
    .await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let (status, _, body, _) = timed(me(&app, &key)).await;
    assert_eq!(status, 200, "{body}");

    let bound = Duration::from_secs(STATEMENT_SECS) + gpudev_store::connect::ANSWER_GRACE;
    let frozen = cluster.freeze();
    let mut took = Vec::new();
    for req in [me(&app, &key), submit(&app, &key), me(&app, &key)] {
        let (status, retry, body, elapsed) = timed(req).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["code"], "service_unavailable", "{body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
        let retry: u64 = retry.expect("a Retry-After header").parse().unwrap();
        assert!(retry > 0);
        assert!(
            elapsed < bound + Duration::from_secs(3),
            "answered after {elapsed:?}; the bound is {bound:?}"
        );
        took.push(elapsed);
    }
    eprintln!("time to 503 with the database frozen (bound {bound:?}): {took:?}");
    drop(frozen);

    let resumed = Instant::now();
    loop {
        let (status, _, body, _) = timed(me(&app, &key)).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            resumed.elapsed() < Duration::from_secs(10),
            "the API did not recover within 10 s of the database"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "recovered {:?} after the database resumed",
        resumed.elapsed()
    );
    let (status, _, body, _) = timed(submit(&app, &key)).await;
    assert!((200..300).contains(&status), "{status}: {body}");
}
