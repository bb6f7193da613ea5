//! `GET /v1/jobs/{id}` and `GET /v1/jobs`: every field, prefixes, owners only, filters and pages.

use chrono::DateTime;
use gpudev_domain::ReservationStatus;
use gpudev_store::reservations;
use gpudev_store::users::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app, status_json};
use crate::jobs_common::{activate, move_to, submit_ok, t4};

/// Every field of the original JobDetail, then the ones added here.
const FIELDS: [&str; 19] = [
    "job_id",
    "reservation_id",
    "user_id",
    "status",
    "gpu_type",
    "gpu_count",
    "instance_type",
    "duration_hours",
    "created_at",
    "expires_at",
    "name",
    "pod_name",
    "node_ip",
    "node_port",
    "ssh_command",
    "jupyter_enabled",
    "jupyter_url",
    "jupyter_token",
    "github_user",
];
const ADDED: [&str; 10] = [
    "failure_reason",
    "detailed_status",
    "queue_position",
    "estimated_start_time",
    "launched_at",
    "disk_name",
    "secondary_users",
    "warnings",
    "events",
    "warning",
];

fn assert_utc_rfc3339(v: &Value, field: &str) {
    let text = v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string: {v}"));
    let t = DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{field}={text}: {e}"));
    assert_eq!(t.offset().local_minus_utc(), 0, "{field}={text} is UTC");
}

#[tokio::test]
async fn a_queued_job_shows_every_field_with_nulls_for_the_unknown() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let id = submit_ok(
        &app,
        &key,
        json!({"gpu_type": "t4", "gpu_count": 2, "duration_hours": 1.25, "name": "exp 1",
               "github_user": "octocat", "disk_name": "home"}),
    )
    .await;

    let (status, job) = status_json(app.get(&format!("/v1/jobs/{id}"), &key).await).await;

    assert_eq!(status, 200, "{job}");
    for field in FIELDS.iter().chain(ADDED.iter()) {
        assert!(job.get(*field).is_some(), "{field} missing from {job}");
    }
    assert_eq!(job["job_id"], id.to_string());
    assert_eq!(job["reservation_id"], id.to_string());
    assert_eq!(job["user_id"], "alice");
    assert_eq!(job["status"], "queued");
    assert_eq!(job["gpu_type"], "t4");
    assert_eq!(job["gpu_count"], 2);
    assert_eq!(job["instance_type"], "g4dn.12xlarge");
    assert_eq!(job["duration_hours"], 1.25);
    assert_eq!(job["name"], "exp 1");
    assert_eq!(job["github_user"], "octocat");
    assert_eq!(job["disk_name"], "home");
    assert_eq!(job["jupyter_enabled"], false);
    assert_eq!(job["secondary_users"], json!([]));
    assert_eq!(job["warnings"], json!([]));
    for null in [
        "expires_at",
        "pod_name",
        "node_ip",
        "node_port",
        "ssh_command",
        "jupyter_url",
        "jupyter_token",
        "launched_at",
        "failure_reason",
        "warning",
    ] {
        assert!(job[null].is_null(), "{null} should be null: {job}");
    }
    assert_utc_rfc3339(&job, "created_at");
    let events = job["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["to_status"], "queued");
    assert_utc_rfc3339(&events[0], "created_at");
}

#[tokio::test]
async fn an_active_job_shows_its_connection_warnings_and_history() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let (_, admin) = app.user_with_key("root", Role::Admin).await;
    let id = submit_ok(&app, &key, t4(2.0)).await;
    activate(&app, id).await;
    let client = app.db.connect().await;
    reservations::record_event(
        &client,
        id,
        "warning",
        "expires in 30 minutes",
        "expiry",
        json!({"level": "30m"}),
    )
    .await
    .unwrap();

    let (_, job) = status_json(app.get(&format!("/v1/jobs/{id}"), &key).await).await;
    let (_, seen_by_admin) = status_json(app.get(&format!("/v1/jobs/{id}"), &admin).await).await;

    assert_eq!(job["status"], "active");
    assert_eq!(job["ssh_command"], "ssh -p 30022 dev@10.0.0.7");
    assert_eq!(job["node_ip"], "10.0.0.7");
    assert_eq!(job["node_port"], 30022);
    assert_eq!(job["jupyter_token"], "tok-123");
    assert_utc_rfc3339(&job, "expires_at");
    assert_utc_rfc3339(&job, "launched_at");
    assert!(job["queue_position"].is_null());
    assert_eq!(job["warning"], "expires in 30 minutes");
    assert_eq!(job["warnings"][0]["message"], "expires in 30 minutes");
    assert_utc_rfc3339(&job["warnings"][0], "created_at");
    let kinds: Vec<&str> = job["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["to_status"]
                .as_str()
                .unwrap_or(e["kind"].as_str().unwrap())
        })
        .collect();
    assert_eq!(kinds, ["queued", "preparing", "active", "warning"]);
    assert_eq!(seen_by_admin["status"], "active", "admins read every job");
    assert!(
        seen_by_admin["jupyter_token"].is_null(),
        "the token is for the owner only"
    );
}

#[tokio::test]
async fn the_ssh_command_is_shown_only_while_active() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let id = submit_ok(&app, &key, t4(1.0)).await;
    activate(&app, id).await;
    move_to(&app, id, &[ReservationStatus::Expired]).await;

    let (_, job) = status_json(app.get(&format!("/v1/jobs/{id}"), &key).await).await;

    assert_eq!(job["status"], "expired");
    assert!(job["ssh_command"].is_null());
    assert_utc_rfc3339(&job, "ended_at");
}

#[tokio::test]
async fn a_unique_prefix_of_eight_characters_finds_a_job_and_an_ambiguous_one_is_409() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let first: Uuid = "aaaaaaaa-1111-4000-8000-000000000001".parse().unwrap();
    let second: Uuid = "aaaaaaaa-2222-4000-8000-000000000002".parse().unwrap();
    for id in [first, second] {
        submit_ok(
            &app,
            &key,
            json!({"gpu_type": "t4", "env_vars": {"RESERVATION_ID": id.to_string()}}),
        )
        .await;
    }

    let get = |path: String| {
        let app = &app;
        let key = key.clone();
        async move { status_json(app.get(&path, &key).await).await }
    };
    let (s_full, full) = get(format!("/v1/jobs/{first}")).await;
    let (s_upper, upper) = get(format!("/v1/jobs/{}", first.to_string().to_uppercase())).await;
    let (s_prefix, by_prefix) = get("/v1/jobs/aaaaaaaa-1".into()).await;
    let (s_amb, ambiguous) = get("/v1/jobs/aaaaaaaa".into()).await;
    let (s_short, short) = get("/v1/jobs/aaaa".into()).await;
    let (s_none, none) = get("/v1/jobs/bbbbbbbb".into()).await;

    assert_eq!((s_full, s_upper, s_prefix), (200, 200, 200));
    assert_eq!(full["job_id"], first.to_string());
    assert_eq!(upper["job_id"], first.to_string());
    assert_eq!(by_prefix["job_id"], first.to_string());
    assert_eq!(
        (s_amb, ambiguous["code"].as_str()),
        (409, Some("ambiguous_job_id"))
    );
    assert_eq!(s_short, 404);
    assert!(short["detail"].as_str().unwrap().contains("not found"));
    assert_eq!(s_none, 404);
    assert_eq!(none["detail"], "Job bbbbbbbb not found");
}

#[tokio::test]
async fn another_users_job_is_404_never_403_or_500() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let id = submit_ok(&app, &alice, t4(1.0)).await;
    let prefix = &id.to_string()[..8];

    for path in [format!("/v1/jobs/{id}"), format!("/v1/jobs/{prefix}")] {
        let (status, body) = status_json(app.get(&path, &bob).await).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("not found"),
            "{body}"
        );
    }
    let unknown = Uuid::new_v4();
    let (status, body) = status_json(app.get(&format!("/v1/jobs/{unknown}"), &bob).await).await;
    assert_eq!(status, 404);
    assert_eq!(body["detail"], format!("Job {unknown} not found"));
    let (_, bobs) = status_json(app.get("/v1/jobs", &bob).await).await;
    assert_eq!(bobs["total"], 0);
}

#[tokio::test]
async fn listing_shows_own_jobs_newest_first_filtered_and_paged() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(submit_ok(&app, &alice, t4(1.0)).await);
    }
    submit_ok(&app, &bob, t4(1.0)).await;
    activate(&app, ids[0]).await;

    let (s, all) = status_json(app.get("/v1/jobs", &alice).await).await;
    let (_, active) = status_json(app.get("/v1/jobs?status=active", &alice).await).await;
    let (_, both) = status_json(app.get("/v1/jobs?status=queued,active", &alice).await).await;
    let (_, legacy) = status_json(app.get("/v1/jobs?status=pending", &alice).await).await;
    let (_, page) = status_json(app.get("/v1/jobs?limit=1&offset=1", &alice).await).await;
    let (_, past_end) = status_json(app.get("/v1/jobs?limit=5&offset=10", &alice).await).await;

    assert_eq!(s, 200);
    assert_eq!(
        (
            all["total"].as_i64(),
            all["limit"].as_i64(),
            all["offset"].as_i64()
        ),
        (Some(3), Some(50), Some(0))
    );
    let listed: Vec<String> = all["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap().to_owned())
        .collect();
    let newest_first: Vec<String> = ids.iter().rev().map(Uuid::to_string).collect();
    assert_eq!(listed, newest_first);
    for job in all["jobs"].as_array().unwrap() {
        for field in FIELDS.iter().chain(ADDED.iter()) {
            assert!(job.get(*field).is_some(), "{field} missing");
        }
        assert!(
            !job["events"].as_array().unwrap().is_empty(),
            "history included"
        );
    }
    assert_eq!(active["total"], 1);
    assert_eq!(active["jobs"][0]["job_id"], ids[0].to_string());
    assert_eq!(
        active["jobs"][0]["ssh_command"],
        "ssh -p 30022 dev@10.0.0.7"
    );
    assert_eq!(both["total"], 3);
    assert_eq!(legacy["total"], 2, "the original's pending means queued");
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(page["jobs"][0]["job_id"], ids[1].to_string());
    assert_eq!(page["total"], 3);
    assert_eq!(past_end["jobs"], json!([]));
    assert_eq!(past_end["total"], 3);
}

#[tokio::test]
async fn bad_list_parameters_are_422() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;

    for query in [
        "status=running",
        "status=active,bogus",
        "limit=0",
        "limit=501",
        "limit=ten",
        "offset=-1",
    ] {
        let (status, body) = status_json(app.get(&format!("/v1/jobs?{query}"), &key).await).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["code"], "validation_error");
    }
    let (status, _) = status_json(app.get("/v1/jobs?limit=500", &key).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_queued_job_says_whether_its_start_is_promised_and_what_it_was_first_told() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let id = submit_ok(&app, &key, t4(2.0)).await;
    let client = app.db.connect().await;
    // As a pass writes them: first an estimate, then the same start promised.
    client
        .execute(
            "UPDATE reservations SET queue_position = 1, \
               estimated_start_at = now() + interval '3 hours', \
               first_estimated_start_at = now() + interval '2 hours' \
             WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let (_, job) = status_json(app.get(&format!("/v1/jobs/{id}"), &key).await).await;
    assert_eq!(job["start_promised"], false, "{job}");
    assert!(
        job["estimate_note"]
            .as_str()
            .is_some_and(|n| n.starts_with("estimate, not yet a promise")),
        "{job}"
    );
    assert_utc_rfc3339(&job, "first_estimated_start_time");

    client
        .execute(
            "UPDATE reservations SET promised_start_at = estimated_start_at, \
               promised_nodes = '{node-a}' WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let job = read_until(&app, id, &key, |j| j["start_promised"] == true).await;
    assert!(
        job["estimate_note"]
            .as_str()
            .is_some_and(|n| n.starts_with("promised:")),
        "{job}"
    );

    // Once it runs, the queue fields go but the first estimate stays for the record.
    activate(&app, id).await;
    let job = read_until(&app, id, &key, |j| j["status"] == "active").await;
    assert_eq!(job["start_promised"], false);
    assert!(job["estimate_note"].is_null(), "{job}");
    assert_utc_rfc3339(&job, "first_estimated_start_time");
}

/// Reads a job until `done` holds: a change made by another program reaches the API's cache
/// within a second.
async fn read_until(app: &TestApp, id: Uuid, key: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut job = Value::Null;
    for _ in 0..100 {
        job = status_json(app.get(&format!("/v1/jobs/{id}"), key).await)
            .await
            .1;
        if done(&job) {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("never changed: {job}");
}
