//! `POST /v1/jobs/submit`: the row and its message in one transaction, the original client's
//! body, idempotency, quotas and validation.

use gpudev_domain::ReservationStatus;
use gpudev_store::SealingKeys;
use gpudev_store::reservations::{self, StoredSecrets};
use gpudev_store::users::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TEST_SECRETS_KEYS, TestApp, count, spawn_app, spawn_app_with, status_json};
use crate::jobs_common::{audit_rows, hints_for, publish_state, queued_messages, submit_ok, t4};

#[tokio::test]
async fn a_submit_answers_200_with_location_and_the_job_is_readable_and_queued_at_once() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;

    let resp = app.post("/v1/jobs/submit", &key, t4(1.5)).await;
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let (status, body) = status_json(resp).await;

    assert_eq!(status, 200, "{body}");
    let id: Uuid = body["job_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(location, format!("/v1/jobs/{id}"));
    assert_eq!(body["status"], "queued");
    assert!(
        body["message"].as_str().unwrap().contains("message ID"),
        "{body}"
    );
    // Before the scheduler's first pass there is no state to predict from: its place by
    // arrival, and no estimate.
    assert_eq!(body["queue_position"], 1, "{body}");
    assert!(body.get("estimated_start_time").unwrap().is_null());
    let (s, job) = status_json(app.get(&location, &key).await).await;
    assert_eq!(s, 200, "{job}");
    assert_eq!(job["status"], "queued");
    assert_eq!(job["duration_hours"], 1.5);
    let hints = hints_for(&app, id).await;
    assert_eq!(hints.len(), 1, "exactly one message");
    assert_eq!(hints[0]["action"], "create");
    assert_eq!(hints[0]["username"], "alice");
    assert_eq!(
        audit_rows(&app, "reservation.submit").await,
        vec![(
            "alice".to_owned(),
            Some(id.to_string()),
            "success".to_owned()
        )]
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(r#"reservations_submitted_total{gpu_type="t4"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_original_clients_body_is_understood_and_its_control_variables_stay_out_of_the_pod() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let proposed = Uuid::new_v4();
    let body = json!({
        "image": "pytorch/pytorch:2.1.0-cuda12.1-cudnn8-runtime",
        "instance_type": "p5.48xlarge",
        "duration_hours": 0.5,
        "disk_name": "home",
        "disk_size_gb": 200,
        "env_vars": {
            "GPU_TYPE": "A100", "GPU_COUNT": "2", "GITHUB_USER": "octocat",
            "JUPYTER_ENABLED": "true", "RESERVATION_ID": proposed.to_string(),
            "USER_ID": "alice", "DOCKER_ENABLED": "false",
            "WANDB_API_KEY": "s3cr3t-wandb-value"
        },
        "command": "python train.py"
    });

    let (status, resp) = status_json(app.post("/v1/jobs/submit", &key, body).await).await;

    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp["job_id"],
        proposed.to_string(),
        "the proposed id is the job id"
    );
    let (_, job) = status_json(app.get(&format!("/v1/jobs/{proposed}"), &key).await).await;
    assert_eq!(job["gpu_type"], "a100", "GPU_TYPE wins over instance_type");
    assert_eq!(job["gpu_count"], 2);
    assert_eq!(job["github_user"], "octocat");
    assert_eq!(job["jupyter_enabled"], true);
    assert_eq!(job["duration_hours"], 0.5);
    assert_eq!(job["disk_name"], "home");
    assert_eq!(
        job["image"],
        "pytorch/pytorch:2.1.0-cuda12.1-cudnn8-runtime"
    );
    assert_eq!(job["env_names"], json!(["WANDB_API_KEY"]));
    let client = app.db.connect().await;
    let Some(StoredSecrets::Sealed(sealed)) = reservations::stored_secrets(&client, proposed)
        .await
        .unwrap()
    else {
        panic!("the env values and command are stored sealed");
    };
    let keys = SealingKeys::parse(TEST_SECRETS_KEYS).unwrap();
    let opened = keys.open(proposed, &sealed).unwrap();
    assert_eq!(opened.env.keys().collect::<Vec<_>>(), ["WANDB_API_KEY"]);
    assert_eq!(opened.command.as_deref(), Some("python train.py"));
    let stored = reservations::get(&client, proposed).await.unwrap();
    assert_eq!(stored.disk_size_gb, Some(200));
    assert_eq!(stored.command, None, "no plain command in the row");
    let (_, list) = status_json(app.get("/v1/jobs", &key).await).await;
    for text in [
        resp.to_string(),
        job.to_string(),
        list.to_string(),
        serde_json::to_string(&queued_messages(&app).await).unwrap(),
    ] {
        assert!(
            !text.contains("s3cr3t-wandb-value"),
            "env value leaked: {text}"
        );
    }
}

#[tokio::test]
async fn instance_type_alone_names_the_gpu_type() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;

    let id = submit_ok(
        &app,
        &key,
        json!({"instance_type": "p5.48xlarge", "duration_hours": 2}),
    )
    .await;

    let (_, job) = status_json(app.get(&format!("/v1/jobs/{id}"), &key).await).await;
    assert_eq!(job["gpu_type"], "h100");
    assert_eq!(job["gpu_count"], 1);
    assert_eq!(job["instance_type"], "p5.48xlarge");
}

#[tokio::test]
async fn invalid_requests_are_422_naming_the_field_and_write_nothing() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"gpu_type": "v100", "gpu_count": 1}), "gpu_type"),
        (json!({"gpu_type": "t4", "gpu_count": 8}), "gpu_count"),
        (json!({"gpu_type": "h100", "gpu_count": 64}), "gpu_count"),
        (
            json!({"gpu_type": "t4", "duration_hours": 0.01}),
            "duration_hours",
        ),
        (
            json!({"gpu_type": "t4", "duration_hours": 100}),
            "duration_hours",
        ),
        (json!({"gpu_type": "t4", "disk_size_gb": 5}), "disk_size_gb"),
        (
            json!({"gpu_type": "t4", "disk_size_gb": 10001}),
            "disk_size_gb",
        ),
        (
            json!({"gpu_type": "t4", "disk_name": "my disk"}),
            "disk_name",
        ),
        (json!({"gpu_type": "t4", "image": "Not An Image"}), "image"),
        (
            json!({"gpu_type": "t4", "github_user": "-bad-"}),
            "github_user",
        ),
        (
            json!({"gpu_type": "t4", "env_vars": {"1BAD": "x"}}),
            "env_vars",
        ),
        (
            json!({"gpu_type": "t4", "env_vars": {"NVIDIA_VISIBLE_DEVICES": "all"}}),
            "env_vars",
        ),
        (
            json!({"gpu_type": "t4", "env_vars": {"RESERVATION_ID": "not-a-uuid"}}),
            "env_vars.RESERVATION_ID",
        ),
        (
            json!({"gpu_type": "t4", "env_vars": {"GPU_COUNT": "two"}}),
            "env_vars.GPU_COUNT",
        ),
        (json!({"instance_type": "m5.large"}), "instance_type"),
        (json!({"duration_hours": 1}), "gpu_type"),
        (json!({"gpu_type": "t4", "gpu_count": 1.5}), "body"),
        (json!(["not", "an", "object"]), "body"),
    ];

    // The error body names the problem in `detail`; the field is listed here for the reader.
    for (body, _field) in cases {
        let (status, resp) =
            status_json(app.post("/v1/jobs/submit", &key, body.clone()).await).await;
        assert_eq!(status, 422, "{body} -> {resp}");
        assert_eq!(resp["code"], "validation_error", "{body}");
        assert!(!resp["detail"].as_str().unwrap().is_empty());
    }
    let (_, unknown) = status_json(
        app.post("/v1/jobs/submit", &key, json!({"gpu_type": "v100"}))
            .await,
    )
    .await;
    let detail = unknown["detail"].as_str().unwrap();
    assert!(
        detail.contains("h100") && detail.contains("t4"),
        "lists the valid types: {detail}"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM reservations").await, 0);
    assert!(queued_messages(&app).await.is_empty());
}

#[tokio::test]
async fn malformed_json_is_400_and_a_non_json_body_is_415() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let url = format!("{}/v1/jobs/submit", app.base);

    let malformed = app
        .http
        .post(&url)
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{\"gpu_type\": ")
        .send()
        .await
        .unwrap();
    let text = app
        .http
        .post(&url)
        .bearer_auth(&key)
        .header("content-type", "text/plain")
        .body("gpu_type=t4")
        .send()
        .await
        .unwrap();

    let (s, body) = status_json(malformed).await;
    assert_eq!((s, body["code"].as_str()), (400, Some("bad_request")));
    let (s, body) = status_json(text).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
}

/// A typed body as the JSON the idempotency check hashes.
fn json_of(body: impl serde::Serialize) -> Value {
    serde_json::to_value(body).unwrap()
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_return_the_first_job_and_a_different_body_is_409() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let send = |key: &str, body: Value| {
        app.http
            .post(format!("{}/v1/jobs/submit", app.base))
            .bearer_auth(key.to_owned())
            .header("Idempotency-Key", "retry-7")
            .json(&body)
            .send()
    };

    let (s1, first) = status_json(send(&alice, json_of(t4(1.0))).await.unwrap()).await;
    // Same body, other key order and spacing.
    let reordered: Value =
        serde_json::from_str(r#"{ "duration_hours": 1.0, "gpu_count": 1, "gpu_type": "t4" }"#)
            .unwrap();
    let (s2, again) = status_json(send(&alice, reordered).await.unwrap()).await;
    let (s3, other) = status_json(send(&alice, json_of(t4(2.0))).await.unwrap()).await;
    let (s4, bobs) = status_json(send(&bob, json_of(t4(1.0))).await.unwrap()).await;

    assert_eq!((s1, s2), (200, 200), "{first} {again}");
    assert_eq!(again["job_id"], first["job_id"]);
    assert_eq!(again["status"], "queued");
    assert_eq!(s3, 409, "{other}");
    assert_eq!(other["code"], "idempotency_key_reused");
    assert_eq!(s4, 200, "keys are per user");
    assert_ne!(bobs["job_id"], first["job_id"]);
    assert_eq!(count(&app, "SELECT count(*) FROM reservations").await, 2);
    assert_eq!(
        queued_messages(&app).await.len(),
        2,
        "no message for a replay"
    );

    let bad = app
        .http
        .post(format!("{}/v1/jobs/submit", app.base))
        .bearer_auth(&alice)
        .header("Idempotency-Key", "x".repeat(256))
        .json(&t4(1.0))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
}

#[tokio::test]
async fn a_proposed_reservation_id_is_honoured_once_and_any_other_reuse_is_409() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let id = Uuid::new_v4();
    let body = |hours: f64| {
        json!({"gpu_type": "t4", "duration_hours": hours,
               "env_vars": {"RESERVATION_ID": id.to_string()}})
    };

    let (s1, first) = status_json(app.post("/v1/jobs/submit", &alice, body(1.0)).await).await;
    let (s2, again) = status_json(app.post("/v1/jobs/submit", &alice, body(1.0)).await).await;
    let (s3, changed) = status_json(app.post("/v1/jobs/submit", &alice, body(2.0)).await).await;
    let (s4, bobs) = status_json(app.post("/v1/jobs/submit", &bob, body(1.0)).await).await;

    assert_eq!((s1, s2), (200, 200), "{first} {again}");
    assert_eq!(first["job_id"], id.to_string());
    assert_eq!(again["job_id"], id.to_string());
    assert_eq!((s3, changed["code"].as_str()), (409, Some("job_id_taken")));
    assert_eq!((s4, bobs["code"].as_str()), (409, Some("job_id_taken")));
    assert_eq!(count(&app, "SELECT count(*) FROM reservations").await, 1);
    assert_eq!(hints_for(&app, id).await.len(), 1);
    let (s, _) = status_json(app.get(&format!("/v1/jobs/{id}"), &bob).await).await;
    assert_eq!(s, 404, "bob learns nothing about alice's job");
}

#[tokio::test]
async fn beyond_the_running_quota_a_request_queues_and_only_the_queued_cap_refuses() {
    let app = spawn_app_with(&[
        ("MAX_ACTIVE_RESERVATIONS_PER_USER", "1"),
        ("MAX_GPUS_PER_USER", "5"),
        ("MAX_QUEUED_RESERVATIONS_PER_USER", "3"),
    ])
    .await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;

    // One running (preparing) reservation is the running quota: more are queued, not refused.
    let first = submit_ok(&app, &key, json!({"gpu_type": "t4", "gpu_count": 4})).await;
    crate::jobs_common::move_to(&app, first, &[ReservationStatus::Preparing]).await;
    let queued: Vec<Uuid> = futures::future::join_all(
        (0..3).map(|_| submit_ok(&app, &key, json!({"gpu_type": "t4", "gpu_count": 4}))),
    )
    .await;
    let (s, too_many_queued) = status_json(app.post("/v1/jobs/submit", &key, t4(1.0)).await).await;
    // More GPUs than one user may ever hold could never start.
    let (s2, never) = status_json(
        app.post(
            "/v1/jobs/submit",
            &bob,
            json!({"gpu_type": "h100", "gpu_count": 8}),
        )
        .await,
    )
    .await;

    assert_eq!(queued.len(), 3);
    assert_eq!(
        (s, too_many_queued["code"].as_str()),
        (409, Some("quota_exceeded"))
    );
    assert!(
        too_many_queued["detail"]
            .as_str()
            .unwrap()
            .contains("3 reservations waiting in the queue (the limit is 3)"),
        "{too_many_queued}"
    );
    assert_eq!((s2, never["code"].as_str()), (409, Some("quota_exceeded")));
    // A queued one that ends makes room.
    let (s, _) = status_json(
        app.call(
            Method::POST,
            &format!("/v1/jobs/{}/cancel", queued[0]),
            Some(&key),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(s, 200);
    submit_ok(&app, &key, t4(1.0)).await;
    let denied: Vec<_> = audit_rows(&app, "reservation.submit")
        .await
        .into_iter()
        .filter(|r| r.2 == "denied")
        .collect();
    assert_eq!(
        denied.len(),
        1,
        "the refusal at the queued cap is audited: {denied:?}"
    );
}

#[tokio::test]
async fn sixty_four_concurrent_submits_of_one_key_at_the_limit_pass_exactly_the_limit() {
    const LIMIT: usize = 10;
    let app = spawn_app_with(&[("MAX_QUEUED_RESERVATIONS_PER_USER", "10")]).await;
    let (alice, key) = app.user_with_key("alice", Role::User).await;

    let attempts =
        futures::future::join_all((0..64).map(|_| async {
            status_json(app.post("/v1/jobs/submit", &key, t4(1.0)).await).await
        }))
        .await;

    let accepted: Vec<&Value> = attempts
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(accepted.len(), LIMIT, "{attempts:?}");
    assert!(
        attempts
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(s, b)| *s == 409
                && b["code"] == "quota_exceeded"
                && b["detail"].as_str().unwrap().contains("the limit is 10")),
        "{attempts:?}"
    );
    // Exactly the accepted ones exist, each with its event and its message, and every submit,
    // accepted or refused, has its audit record.
    let stored: Vec<Uuid> = app
        .db
        .connect()
        .await
        .query(
            "SELECT reservation_id FROM reservations WHERE user_id = $1 AND status = 'queued' \
             ORDER BY reservation_id",
            &[&alice.user_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut answered: Vec<Uuid> = accepted
        .iter()
        .map(|b| b["job_id"].as_str().unwrap().parse().unwrap())
        .collect();
    answered.sort();
    assert_eq!(stored, answered);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM reservation_events WHERE reason = 'submitted'"
        )
        .await,
        LIMIT as i64
    );
    assert_eq!(queued_messages(&app).await.len(), LIMIT);
    let audits = audit_rows(&app, "reservation.submit").await;
    assert_eq!(audits.iter().filter(|r| r.2 == "success").count(), LIMIT);
    assert_eq!(
        audits.iter().filter(|r| r.2 == "denied").count(),
        64 - LIMIT
    );
    // They were written several to a transaction.
    let metrics = app.metrics_text().await;
    let batches = metric(&metrics, "gpudev_api_submit_batch_size_count");
    assert!(
        (1.0..64.0).contains(&batches),
        "64 submits in {batches} transactions"
    );
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
}

#[tokio::test]
async fn concurrent_submits_of_many_users_each_get_their_own_answer() {
    let app = spawn_app_with(&[("MAX_QUEUED_RESERVATIONS_PER_USER", "1")]).await;
    let mut keys = Vec::new();
    for i in 0..8 {
        keys.push(app.user_with_key(&format!("user{i}"), Role::User).await);
    }
    // Each user submits twice at once: one of the two passes the cap of one, whichever
    // transaction the two end up in.
    let app = &app;
    let attempts = futures::future::join_all(keys.iter().flat_map(|(user, key)| {
        (0..2).map(move |_| async move {
            (
                user.user_id,
                status_json(app.post("/v1/jobs/submit", key, t4(1.0)).await).await,
            )
        })
    }))
    .await;
    for (user, _) in &keys {
        let mine: Vec<u16> = attempts
            .iter()
            .filter(|(u, _)| *u == user.user_id)
            .map(|(_, (s, _))| *s)
            .collect();
        assert_eq!(
            mine.iter().filter(|s| **s == 200).count(),
            1,
            "{attempts:?}"
        );
        assert_eq!(
            mine.iter().filter(|s| **s == 409).count(),
            1,
            "{attempts:?}"
        );
    }
    assert_eq!(count(app, "SELECT count(*) FROM reservations").await, 8);
    assert_eq!(queued_messages(app).await.len(), 8);
}

#[tokio::test]
async fn only_admins_may_raise_priority_and_anyone_may_lower_their_own() {
    let app = spawn_app().await;
    let (_, user) = app.user_with_key("alice", Role::User).await;
    let (_, admin) = app.user_with_key("root", Role::Admin).await;
    let with_priority = |p: i32| json!({"gpu_type": "t4", "priority": p});

    let (s, raised) = status_json(app.post("/v1/jobs/submit", &user, with_priority(5)).await).await;
    let lowered = submit_ok(&app, &user, with_priority(-5)).await;
    let boosted = submit_ok(&app, &admin, with_priority(50)).await;
    let (s2, out_of_range) = status_json(
        app.post("/v1/jobs/submit", &admin, with_priority(101))
            .await,
    )
    .await;

    assert_eq!(
        (s, raised["code"].as_str()),
        (403, Some("priority_requires_admin"))
    );
    assert_eq!(s2, 422, "{out_of_range}");
    let (_, l) = status_json(app.get(&format!("/v1/jobs/{lowered}"), &user).await).await;
    let (_, b) = status_json(app.get(&format!("/v1/jobs/{boosted}"), &admin).await).await;
    assert_eq!(
        (l["priority"].as_i64(), b["priority"].as_i64()),
        (Some(-5), Some(50))
    );
}

#[tokio::test]
async fn the_answer_is_the_schedulers_own_prediction_over_its_published_state() {
    let app = spawn_app().await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let now = publish_state(&app, 1800, 3, true).await;

    let (status, body) = status_json(app.post("/v1/jobs/submit", &bob, t4(1.0)).await).await;

    assert_eq!(status, 200, "{body}");
    // The node frees in half an hour. Someone else queued three one-GPU requests ten minutes
    // ago; bob starts level with the first of them (the later ones queue behind their owner's
    // booked hours), so he is second, and the freed node takes both at once.
    assert_eq!(body["queue_position"], 2, "{body}");
    let eta = chrono::DateTime::parse_from_rfc3339(body["estimated_start_time"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(eta, now + 1800, "{body}");
}

#[tokio::test]
async fn behind_a_long_queue_the_answer_still_has_a_position_and_an_estimate() {
    let app = spawn_app().await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let now = publish_state(&app, 600, 500, false).await;

    let (status, body) = status_json(app.post("/v1/jobs/submit", &bob, t4(1.0)).await).await;
    let (_, other_type) = status_json(
        app.post("/v1/jobs/submit", &bob, json!({"gpu_type": "a100"}))
            .await,
    )
    .await;

    // 500 users, each level with bob and each earlier: he is last, and four one-hour requests
    // run at a time on the node from when it frees.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["queue_position"], 501, "{body}");
    let eta = chrono::DateTime::parse_from_rfc3339(body["estimated_start_time"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(eta, now + 600 + 125 * 3600, "{body}");
    // No a100 nodes in the state: no prediction (the next pass fails it with the reason), so
    // only its place by arrival among the a100 queue, and no estimate.
    assert_eq!(other_type["queue_position"], 1, "{other_type}");
    assert!(other_type["estimated_start_time"].is_null(), "{other_type}");
}

#[tokio::test]
async fn without_a_key_env_values_and_commands_are_refused_and_nothing_is_stored() {
    let app = spawn_app_with(&[("SECRETS_ENCRYPTION_KEYS", "")]).await;
    let (_, key) = app.user_with_key("alice", Role::User).await;

    for body in [
        json!({"gpu_type": "t4", "env_vars": {"HF_TOKEN": "hf_never-stored"}}),
        json!({"gpu_type": "t4", "command": "echo never-stored"}),
    ] {
        let (status, resp) = status_json(app.post("/v1/jobs/submit", &key, body).await).await;
        assert_eq!(status, 503, "{resp}");
        assert!(
            resp["detail"]
                .as_str()
                .unwrap()
                .contains("SECRETS_ENCRYPTION_KEYS"),
            "{resp}"
        );
    }
    let client = app.db.connect().await;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM reservations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    // Without secrets, a submit needs no key.
    let (status, resp) = status_json(
        app.post("/v1/jobs/submit", &key, json!({"gpu_type": "t4"}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{resp}");
}

/// Submits `body` and reads the job at once; returns the submit answer and the job.
async fn submit_then_poll(app: &TestApp, key: &str, body: Value) -> (Value, Value) {
    let (status, answer) = status_json(app.post("/v1/jobs/submit", key, body).await).await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["job_id"].as_str().unwrap();
    let (status, job) = status_json(app.get(&format!("/v1/jobs/{id}"), key).await).await;
    assert_eq!(status, 200, "{job}");
    (answer, job)
}

#[tokio::test]
async fn before_the_schedulers_first_pass_a_poll_shows_the_place_by_arrival_in_its_type() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;

    let (a1, j1) = submit_then_poll(&app, &alice, json!({"gpu_type": "t4"})).await;
    let (b1, k1) = submit_then_poll(&app, &bob, json!({"gpu_type": "t4"})).await;
    let (b2, k2) = submit_then_poll(&app, &bob, json!({"gpu_type": "h100", "gpu_count": 8})).await;

    for (answer, job, position) in [(&a1, &j1, 1), (&b1, &k1, 2), (&b2, &k2, 1)] {
        assert_eq!(answer["queue_position"], position, "{answer}");
        assert_eq!(job["queue_position"], position, "{job}");
        assert!(job["estimated_start_time"].is_null(), "{job}");
    }
    let (_, page) = status_json(app.get("/v1/jobs", &bob).await).await;
    let positions: Vec<(String, i64)> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["gpu_type"].as_str().unwrap().to_owned(),
                j["queue_position"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(positions, [("h100".to_owned(), 1), ("t4".to_owned(), 2)]);
}

#[tokio::test]
async fn after_a_pass_the_poll_shows_the_position_and_estimate_the_submit_answered() {
    let app = spawn_app().await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let now = publish_state(&app, 1800, 3, true).await;

    let (answer, job) = submit_then_poll(&app, &bob, serde_json::to_value(t4(1.0)).unwrap()).await;

    assert_eq!(answer["queue_position"], 2, "{answer}");
    assert_eq!(job["queue_position"], 2, "{job}");
    assert_eq!(job["estimated_start_time"], answer["estimated_start_time"]);
    let eta = chrono::DateTime::parse_from_rfc3339(job["estimated_start_time"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(eta, now + 1800, "{job}");
    assert!(job["estimated_wait_minutes"].as_i64().unwrap() > 0, "{job}");
}

#[tokio::test]
async fn in_a_burst_of_submits_every_poll_right_after_its_answer_shows_a_position() {
    let app = spawn_app().await;
    // A long queue, so each prediction takes a while and the burst's submits compete for it.
    publish_state(&app, 600, 2000, false).await;
    let mut keys = Vec::new();
    for i in 0..12 {
        keys.push(app.user_with_key(&format!("burst{i}"), Role::User).await.1);
    }

    let polls = futures::future::join_all(keys.iter().map(|key| {
        let app = &app;
        async move { submit_then_poll(app, key, serde_json::to_value(t4(1.0)).unwrap()).await }
    }))
    .await;

    for (answer, job) in &polls {
        let position = job["queue_position"].as_i64();
        assert!(position.is_some_and(|p| p >= 1), "{job}");
        assert_eq!(
            job["queue_position"], answer["queue_position"],
            "{answer} {job}"
        );
    }
}

#[tokio::test]
async fn the_original_systems_gpu_types_are_served_and_an_unknown_one_names_the_nearest() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;

    // `t4-small` is a type of its own; `cpu-small` and `cpu-large` ask for `cpu-x86`, also
    // through the original client's control variable.
    let small = submit_ok(&app, &key, json!({"gpu_type": "t4-small"})).await;
    let large = submit_ok(&app, &key, json!({"gpu_type": "cpu-large"})).await;
    let via_env = submit_ok(&app, &key, json!({"env_vars": {"GPU_TYPE": "CPU-SMALL"}})).await;

    let read = |id: Uuid| {
        let app = &app;
        let key = &key;
        async move {
            status_json(app.get(&format!("/v1/jobs/{id}"), key).await)
                .await
                .1
        }
    };
    let small = read(small).await;
    assert_eq!(
        (
            &small["gpu_type"],
            &small["gpu_count"],
            &small["instance_type"]
        ),
        (&json!("t4-small"), &json!(1), &json!("g4dn.2xlarge"))
    );
    for job in [read(large).await, read(via_env).await] {
        assert_eq!(
            (&job["gpu_type"], &job["gpu_count"]),
            (&json!("cpu-x86"), &json!(0)),
            "{job}"
        );
    }
    let (status, two) = status_json(
        app.post(
            "/v1/jobs/submit",
            &key,
            json!({"gpu_type": "t4-small", "gpu_count": 2}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422, "one T4 per t4-small node: {two}");

    let (status, unknown) = status_json(
        app.post("/v1/jobs/submit", &key, json!({"gpu_type": "h10"}))
            .await,
    )
    .await;
    assert_eq!(status, 422, "{unknown}");
    assert_eq!(unknown["code"], "validation_error");
    let detail = unknown["detail"].as_str().unwrap();
    assert!(
        detail.contains("\"h10\": the nearest valid name is h100 (known types: t4, t4-small,"),
        "{detail}"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM reservations").await, 3);
}

#[tokio::test]
async fn the_original_clients_docker_entrypoint_and_env_options_are_refused_naming_why() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;

    let cases = [
        (
            json!({"gpu_type": "t4", "env_vars": {"DOCKER_ENABLED": "true"}}),
            "--docker (DOCKER_ENABLED=true) is not supported: ",
            "privileged",
        ),
        (
            json!({"gpu_type": "t4", "docker_enabled": true}),
            "--docker (docker_enabled: true) is not supported: ",
            "ADR 14",
        ),
        (
            json!({"gpu_type": "t4", "env_vars": {"PRESERVE_ENTRYPOINT": "True"}}),
            "--preserve-entrypoint (PRESERVE_ENTRYPOINT=true) is not supported: ",
            "`command`",
        ),
        (
            json!({"gpu_type": "t4", "recreate_env": true}),
            "--recreate-env (recreate_env: true) is not supported: ",
            "never overwrites",
        ),
        (
            json!({"gpu_type": "t4", "env_vars": {"RECREATE_ENV": "sometimes"}}),
            "RECREATE_ENV must be true or false",
            "",
        ),
    ];
    for (body, starts, mentions) in cases {
        let (status, resp) =
            status_json(app.post("/v1/jobs/submit", &key, body.clone()).await).await;
        assert_eq!(status, 422, "{body} -> {resp}");
        assert_eq!(resp["code"], "validation_error");
        let detail = resp["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(starts) && detail.contains(mentions),
            "{body} -> {detail}"
        );
    }
    assert_eq!(count(&app, "SELECT count(*) FROM reservations").await, 0);
    assert!(queued_messages(&app).await.is_empty());

    // Off, as the original client sends them by default, is what a dev box does.
    let id = submit_ok(
        &app,
        &key,
        json!({"gpu_type": "t4", "docker_enabled": false,
               "env_vars": {"DOCKER_ENABLED": "false", "PRESERVE_ENTRYPOINT": "false",
                            "RECREATE_ENV": "false"}}),
    )
    .await;
    let (_, job) = status_json(app.get(&format!("/v1/jobs/{id}"), &key).await).await;
    assert_eq!(job["env_names"], json!([]), "{job}");
}
