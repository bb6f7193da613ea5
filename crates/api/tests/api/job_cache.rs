//! The replica's cache of job pages and job details: answers are reused until the jobs change,
//! changes made anywhere reach every replica within a second, a caller reads its own writes at
//! once, and nothing is reused while the change listener is away.

use std::time::{Duration, Instant};

use gpudev_store::users::Role;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app, spawn_app_on, spawn_app_with, status_json};
use crate::jobs_common::{submit_ok, t4};

const PAGE: &str = "/v1/jobs?limit=10";

async fn read(app: &TestApp, path: &str, key: &str) -> Value {
    let (status, body) = status_json(app.get(path, key).await).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Gives the change listener time to connect; until then nothing is cached.
async fn listener_connected() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Alice's key, one job of hers and its path, once the replica has read the submit's own change
/// record (every `JOB_CACHE_POLL_MS`, 100 ms): a read that races that record is, rightly, not
/// kept, and would make a test of reuse pass or fail by chance.
async fn alice_with_a_job(app: &TestApp) -> (String, Uuid, String) {
    let (_, key) = app.user_with_key("alice", Role::User).await;
    listener_connected().await;
    let id = submit_ok(app, &key, t4(1.0)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    (key, id, format!("/v1/jobs/{id}"))
}

/// Changes a job's name in the database without firing triggers (as if its change record were
/// lost), so only an answer from the database can show it.
async fn rename_silently(app: &TestApp, id: Uuid, name: &str) {
    app.db
        .connect()
        .await
        .batch_execute(&format!(
            "SET session_replication_role = replica; \
             UPDATE reservations SET name = '{name}' WHERE reservation_id = '{id}';"
        ))
        .await
        .unwrap();
}

/// Polls `path` until `pick` of the answer equals `want`; fails the test after 1 s.
async fn seen_within_a_second(
    app: &TestApp,
    path: &str,
    key: &str,
    pick: impl Fn(&Value) -> Value,
    want: impl Into<Value>,
) {
    let want = want.into();
    let started = Instant::now();
    let mut last = Value::Null;
    while started.elapsed() < Duration::from_secs(1) {
        last = pick(&read(app, path, key).await);
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{path}: still {last} after 1 s, want {want}");
}

async fn cache_reads(app: &TestApp, outcome: &str) -> u64 {
    let text = app.metrics_text().await;
    let line = format!("gpudev_api_job_cache_reads_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn repeated_reads_are_answered_from_memory_until_the_jobs_change() {
    let app = spawn_app().await;
    let (key, id, job) = alice_with_a_job(&app).await;
    let first_page = read(&app, PAGE, &key).await;
    let first_job = read(&app, &job, &key).await;

    // A change that skips the triggers is not seen: the answers really are reused.
    rename_silently(&app, id, "silent").await;
    assert_eq!(read(&app, PAGE, &key).await, first_page);
    assert_eq!(read(&app, &job, &key).await, first_job);
    assert!(cache_reads(&app, "hit").await >= 2);

    // An ordinary change (the triggers record it) is.
    app.db
        .connect()
        .await
        .execute(
            "UPDATE reservations SET name = 'loud' WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let name = |v: &Value| v["name"].clone();
    let page_name = |v: &Value| v["jobs"][0]["name"].clone();
    seen_within_a_second(&app, &job, &key, name, "loud").await;
    seen_within_a_second(&app, PAGE, &key, page_name, "loud").await;
}

#[tokio::test]
async fn a_new_event_alone_invalidates_its_owners_answers() {
    let app = spawn_app().await;
    let (key, id, job) = alice_with_a_job(&app).await;
    let before = read(&app, &job, &key).await["events"]
        .as_array()
        .unwrap()
        .len();

    app.db
        .connect()
        .await
        .execute(
            "INSERT INTO reservation_events (reservation_id, kind, reason, actor) \
             VALUES ($1, 'note', 'hello', 'processor')",
            &[&id],
        )
        .await
        .unwrap();

    let count = |v: &Value| v["events"].as_array().unwrap().len().into();
    seen_within_a_second(&app, &job, &key, count, before + 1).await;
}

#[tokio::test]
async fn a_callers_own_changes_are_read_at_once_on_the_same_replica() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    listener_connected().await;
    let first = submit_ok(&app, &key, t4(1.0)).await;
    let job = format!("/v1/jobs/{first}");
    assert_eq!(read(&app, PAGE, &key).await["total"], 1);
    assert_eq!(read(&app, &job, &key).await["status"], "queued");

    // No waiting between the write and the read.
    submit_ok(&app, &key, t4(2.0)).await;
    assert_eq!(read(&app, PAGE, &key).await["total"], 2);
    let (status, _) = status_json(
        app.post(&format!("/v1/jobs/{first}/cancel"), &key, Value::Null)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(read(&app, &job, &key).await["status"], "cancelled");
}

#[tokio::test]
async fn a_change_through_one_replica_reaches_another_within_a_second() {
    let first = spawn_app().await;
    let (_, key) = first.user_with_key("alice", Role::User).await;
    let second = spawn_app_on(gpudev_testkit::TestDb::clone(&first.db), &[]).await;
    listener_connected().await;
    let id = submit_ok(&first, &key, t4(1.0)).await;
    let job = format!("/v1/jobs/{id}");
    for _ in 0..3 {
        assert_eq!(read(&second, &job, &key).await["status"], "queued");
    }

    let (status, _) = status_json(
        first
            .post(&format!("{job}/cancel"), &key, Value::Null)
            .await,
    )
    .await;
    assert_eq!(status, 200);

    let status_of = |v: &Value| v["status"].clone();
    seen_within_a_second(&second, &job, &key, status_of, "cancelled").await;
}

#[tokio::test]
async fn one_statement_over_many_users_jobs_reaches_each_of_them() {
    let app = spawn_app().await;
    let mut users = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let (_, key) = app.user_with_key(name, Role::User).await;
        users.push(key);
    }
    listener_connected().await;
    let mut jobs = Vec::new();
    for key in &users {
        let id = submit_ok(&app, key, t4(1.0)).await;
        jobs.push(format!("/v1/jobs/{id}"));
    }
    for (key, job) in users.iter().zip(&jobs) {
        read(&app, job, key).await;
    }

    // As the scheduler's pass writes every queued job's standing in one statement.
    app.db
        .connect()
        .await
        .execute(
            "UPDATE reservations SET queue_position = 7 WHERE status = 'queued'",
            &[],
        )
        .await
        .unwrap();

    let position = |v: &Value| v["queue_position"].clone();
    for (key, job) in users.iter().zip(&jobs) {
        seen_within_a_second(&app, job, key, position, 7).await;
    }
}

#[tokio::test]
async fn nothing_is_reused_while_the_change_listener_is_away() {
    let app = spawn_app().await;
    let (key, id, job) = alice_with_a_job(&app).await;
    read(&app, &job, &key).await;
    read(&app, &job, &key).await;
    assert!(cache_reads(&app, "hit").await >= 1, "the answer was kept");

    // Cut the listener's connection, then change the job without a change record.
    app.db
        .connect()
        .await
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() \
               AND application_name = 'gpudev-api-changes'",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    rename_silently(&app, id, "while-away").await;

    assert_eq!(read(&app, &job, &key).await["name"], "while-away");
}

#[tokio::test]
async fn a_zero_ttl_turns_the_cache_off() {
    let app = spawn_app_with(&[("JOB_CACHE_SECONDS", "0")]).await;
    let (key, id, job) = alice_with_a_job(&app).await;
    read(&app, &job, &key).await;

    rename_silently(&app, id, "uncached").await;

    assert_eq!(read(&app, &job, &key).await["name"], "uncached");
    assert_eq!(cache_reads(&app, "hit").await, 0);
}

#[tokio::test]
async fn an_admin_reading_another_users_job_never_sees_a_stale_copy() {
    let app = spawn_app().await;
    let (_, admin) = app.user_with_key("root", Role::Admin).await;
    let (_, id, job) = alice_with_a_job(&app).await;
    assert_eq!(read(&app, &job, &admin).await["user_id"], "alice");

    rename_silently(&app, id, "for-admin").await;

    assert_eq!(read(&app, &job, &admin).await["name"], "for-admin");
}
