//! Extending as the original client does it (POST, then polls for `expires_at` to change), and
//! the `Idempotency-Key` that makes a repeated extend extend once (ADR 15).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gpudev_store::reservations;
use gpudev_store::users::Role;
use reqwest::Response;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, count, spawn_app, spawn_app_with, status_json};
use crate::jobs_common::{activate, hints_for, submit_ok, t4};

/// The original client's User-Agent (Python `requests`).
const ORIGINAL: &str = "python-requests/2.32.3";

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

async fn extend(
    app: &TestApp,
    id: Uuid,
    key: &str,
    agent: Option<&str>,
    idempotency: Option<&str>,
    hours: f64,
) -> Response {
    let mut req = app
        .http
        .post(format!("{}/v1/jobs/{id}/extend", app.base))
        .bearer_auth(key)
        .json(&json!({ "extension_hours": hours }));
    if let Some(agent) = agent {
        req = req.header("User-Agent", agent);
    }
    if let Some(k) = idempotency {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.unwrap()
}

async fn poll(app: &TestApp, id: Uuid, key: &str) -> Value {
    let resp = app
        .http
        .get(format!("{}/v1/jobs/{id}", app.base))
        .bearer_auth(key)
        .header("User-Agent", ORIGINAL)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn the_original_clients_extend_then_poll_sees_expires_at_change_after_its_first_poll() {
    let app = spawn_app_with(&[("EXTEND_DEFER_SECONDS", "1")]).await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let id = submit_ok(&app, &key, t4(2.0)).await;
    activate(&app, id).await;
    let before = at(&poll(&app, id, &key).await["expires_at"]);

    // 1. POST extend, as the original client sends it (whole hours, no key, its own agent).
    let posted = Instant::now();
    let (status, answer) =
        status_json(extend(&app, id, &key, Some(ORIGINAL), None, 2.0).await).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["applies"], "shortly", "{answer}");
    assert_eq!(
        at(&answer["expires_at"]) - before,
        chrono::Duration::hours(2)
    );

    // 2. Its first poll: the end it will compare later ones with. The hours are booked already.
    let first = poll(&app, id, &key).await;
    assert_eq!(
        at(&first["expires_at"]),
        before,
        "the end has not moved yet"
    );
    assert_eq!(first["extended_hours"], 2.0);

    // 3. It polls on while the processor ticks (here: the tick's own statement, as the
    // processor's leader runs it) until the end changes, as it would within its 3 minutes.
    let client = app.db.connect().await;
    let changed = loop {
        assert!(
            posted.elapsed() < Duration::from_secs(15),
            "expires_at never changed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        reservations::apply_due_extensions(&client).await.unwrap();
        let now = poll(&app, id, &key).await;
        if at(&now["expires_at"]) != before {
            break now;
        }
    };
    let waited = posted.elapsed();

    assert_eq!(
        at(&changed["expires_at"]) - before,
        chrono::Duration::hours(2),
        "what the client sees as success is the extension it asked for"
    );
    assert!(
        waited >= Duration::from_secs(1),
        "not before the delay: {waited:?}"
    );
    reservations::apply_due_extensions(&client).await.unwrap();
    let later = poll(&app, id, &key).await;
    assert_eq!(later["expires_at"], changed["expires_at"], "applied once");
    assert_eq!(later["extended_hours"], 2.0);
    let events = later["events"].as_array().unwrap();
    let extends = events.iter().filter(|e| e["kind"] == "extend").count();
    assert_eq!(extends, 1, "{events:?}");
}

#[tokio::test]
async fn gpudevs_own_cli_and_a_job_near_its_end_are_extended_at_once() {
    let app = spawn_app_with(&[("EXTEND_DEFER_SECONDS", "60")]).await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let id = submit_ok(&app, &key, t4(2.0)).await;
    activate(&app, id).await;
    let ending = submit_ok(&app, &key, t4(1.0)).await;
    activate(&app, ending).await;
    let client = app.db.connect().await;
    client
        .execute(
            "UPDATE reservations SET expires_at = now() + interval '90 seconds' \
             WHERE reservation_id = $1",
            &[&ending],
        )
        .await
        .unwrap();
    let before = at(&poll(&app, id, &key).await["expires_at"]);

    let (s1, cli) =
        status_json(extend(&app, id, &key, Some("gpu-dev/0.1.0"), None, 1.0).await).await;
    let (s2, near) = status_json(extend(&app, ending, &key, Some(ORIGINAL), None, 1.0).await).await;

    assert_eq!((s1, s2), (200, 200), "{cli} {near}");
    assert_eq!(cli["applies"], "now");
    assert_eq!(
        at(&poll(&app, id, &key).await["expires_at"]) - before,
        chrono::Duration::hours(1)
    );
    assert_eq!(
        near["applies"], "now",
        "a delay could let it expire first: {near}"
    );
}

#[tokio::test]
async fn a_repeated_extend_with_the_same_key_extends_once_and_answers_the_same() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let id = submit_ok(&app, &key, t4(2.0)).await;
    activate(&app, id).await;
    let other = submit_ok(&app, &key, t4(2.0)).await;
    activate(&app, other).await;

    let (s1, first) = status_json(extend(&app, id, &key, None, Some("k-1"), 1.5).await).await;
    let (s2, again) = status_json(extend(&app, id, &key, None, Some("k-1"), 1.5).await).await;
    let (s3, changed) = status_json(extend(&app, id, &key, None, Some("k-1"), 2.0).await).await;
    let (s4, elsewhere) =
        status_json(extend(&app, other, &key, None, Some("k-1"), 1.5).await).await;

    assert_eq!((s1, s2, s4), (200, 200, 200), "{first} {again} {elsewhere}");
    assert_eq!(again["expires_at"], first["expires_at"]);
    assert_eq!(again["applies"], first["applies"]);
    assert!(
        again["message"].as_str().unwrap().contains("nothing added"),
        "{again}"
    );
    assert_eq!(s3, 409, "{changed}");
    assert_eq!(changed["code"], "idempotency_key_reused");
    let job = poll(&app, id, &key).await;
    assert_eq!(job["extended_hours"], 1.5, "extended once");
    assert_eq!(job["expires_at"], first["expires_at"]);
    let extends: Vec<_> = hints_for(&app, id)
        .await
        .into_iter()
        .filter(|h| h["action"] == "extend")
        .collect();
    assert_eq!(extends.len(), 1, "one message: {extends:?}");
    assert_eq!(
        poll(&app, other, &key).await["extended_hours"],
        1.5,
        "a key counts per job"
    );
}

#[tokio::test]
async fn concurrent_repeats_of_one_key_extend_once() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let id = submit_ok(&app, &key, t4(2.0)).await;
    activate(&app, id).await;

    let answers =
        futures::future::join_all((0..6).map(|_| extend(&app, id, &key, None, Some("same"), 1.0)))
            .await;
    let mut ends = Vec::new();
    for resp in answers {
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 200, "{body}");
        ends.push(body["expires_at"].clone());
    }

    ends.dedup();
    assert_eq!(ends.len(), 1, "every repeat answers the same end: {ends:?}");
    assert_eq!(poll(&app, id, &key).await["extended_hours"], 1.0);
    assert_eq!(count(&app, "SELECT count(*) FROM extend_requests").await, 1);
}

#[tokio::test]
async fn a_key_older_than_24_hours_extends_again_and_a_bad_key_is_422() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let id = submit_ok(&app, &key, t4(2.0)).await;
    activate(&app, id).await;
    let (s1, _) = status_json(extend(&app, id, &key, None, Some("old"), 1.0).await).await;
    let client = app.db.connect().await;
    client
        .execute(
            "UPDATE extend_requests SET requested_at = now() - interval '25 hours'",
            &[],
        )
        .await
        .unwrap();

    let (s2, again) = status_json(extend(&app, id, &key, None, Some("old"), 1.0).await).await;
    let (s3, bad) = status_json(extend(&app, id, &key, None, Some("é"), 1.0).await).await;

    assert_eq!((s1, s2), (200, 200), "{again}");
    assert!(!again["message"].as_str().unwrap().contains("nothing added"));
    assert_eq!(poll(&app, id, &key).await["extended_hours"], 2.0);
    assert_eq!(s3, 422, "{bad}");
    assert!(
        bad["detail"].as_str().unwrap().contains("Idempotency-Key"),
        "{bad}"
    );
}
