//! Actions on jobs: cancel, extend, Jupyter, extra users — owners only, guarded by status.

use chrono::DateTime;
use gpudev_api_types::jobs::{AddUserRequest, ExtendRequest};
use gpudev_domain::ReservationStatus::{Expired, Failed, Preparing};
use gpudev_store::reservations;
use gpudev_store::users::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app, spawn_app_with, status_json};
use crate::jobs_common::{actions, activate, audit_rows, hints_for, move_to, submit_ok, t4};

async fn post_empty(app: &TestApp, path: &str, key: &str) -> (u16, Value) {
    status_json(app.call(Method::POST, path, Some(key), None).await).await
}

async fn job(app: &TestApp, id: Uuid, key: &str) -> Value {
    status_json(app.get(&format!("/v1/jobs/{id}"), key).await)
        .await
        .1
}

#[tokio::test]
async fn cancelling_a_queued_job_cancels_it_at_once_and_tells_the_processor() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let id = submit_ok(
        &app,
        &key,
        json!({"gpu_type": "t4", "env_vars": {"HF_TOKEN": "hf_secret"}}),
    )
    .await;

    let (status, body) = post_empty(&app, &format!("/v1/jobs/{id}/cancel"), &key).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["job_id"], id.to_string());
    assert_eq!(body["action"], "cancel");
    assert_eq!(body["status"], "cancelled");
    let now = job(&app, id, &key).await;
    assert_eq!(now["status"], "cancelled");
    assert!(now["ended_at"].is_string());
    let hints = hints_for(&app, id).await;
    assert_eq!(actions(&hints), ["create", "cancel"]);
    assert_eq!(hints[1]["details"]["previous_status"], "queued");
    let client = app.db.connect().await;
    assert!(
        reservations::stored_secrets(&client, id)
            .await
            .unwrap()
            .is_none(),
        "env values are forgotten once cancelled"
    );
    assert_eq!(
        audit_rows(&app, "reservation.cancel").await,
        vec![(
            "alice".to_owned(),
            Some(id.to_string()),
            "success".to_owned()
        )]
    );
}

#[tokio::test]
async fn preparing_and_active_jobs_are_cancelled_in_the_database_too() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let preparing = submit_ok(&app, &key, t4(1.0)).await;
    move_to(&app, preparing, &[Preparing]).await;
    let active = submit_ok(&app, &key, t4(1.0)).await;
    activate(&app, active).await;

    for id in [preparing, active] {
        let (status, body) = post_empty(&app, &format!("/v1/jobs/{id}/cancel"), &key).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(job(&app, id, &key).await["status"], "cancelled");
        assert_eq!(actions(&hints_for(&app, id).await), ["create", "cancel"]);
    }
}

#[tokio::test]
async fn cancelling_twice_is_a_no_op_and_ended_jobs_cannot_be_cancelled() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let id = submit_ok(&app, &key, t4(1.0)).await;
    let expired = submit_ok(&app, &key, t4(1.0)).await;
    activate(&app, expired).await;
    move_to(&app, expired, &[Expired]).await;
    let failed = submit_ok(&app, &key, t4(1.0)).await;
    move_to(&app, failed, &[Failed]).await;

    let (s1, _) = post_empty(&app, &format!("/v1/jobs/{id}/cancel"), &key).await;
    let (s2, again) = post_empty(&app, &format!("/v1/jobs/{id}/cancel"), &key).await;
    let (s3, e) = post_empty(&app, &format!("/v1/jobs/{expired}/cancel"), &key).await;
    let (s4, f) = post_empty(&app, &format!("/v1/jobs/{failed}/cancel"), &key).await;

    assert_eq!((s1, s2), (200, 200));
    assert_eq!(again["status"], "cancelled");
    assert!(again["message"].as_str().unwrap().contains("already"));
    assert_eq!(
        actions(&hints_for(&app, id).await),
        ["create", "cancel"],
        "one hint"
    );
    assert_eq!((s3, e["code"].as_str()), (409, Some("invalid_state")));
    assert_eq!((s4, f["code"].as_str()), (409, Some("invalid_state")));
    assert_eq!(job(&app, expired, &key).await["status"], "expired");
}

#[tokio::test]
async fn a_bodyless_cancel_is_accepted_with_or_without_json_headers() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let a = submit_ok(&app, &key, t4(1.0)).await;
    let b = submit_ok(&app, &key, t4(1.0)).await;
    let url = |id: Uuid| format!("{}/v1/jobs/{id}/cancel", app.base);

    let with_json_headers = app
        .http
        .post(url(a))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("content-length", "0")
        .body("")
        .send()
        .await
        .unwrap();
    let bare = app
        .http
        .post(url(b))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();

    let (s1, body) = status_json(with_json_headers).await;
    assert_eq!(s1, 200, "{body}");
    let (s2, body) = status_json(bare).await;
    assert_eq!(s2, 200, "{body}");
}

#[tokio::test]
async fn another_users_job_is_404_for_every_action_and_stays_untouched() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let (_, admin) = app.user_with_key("root", Role::Admin).await;
    let id = submit_ok(&app, &alice, t4(1.0)).await;
    activate(&app, id).await;
    let before = job(&app, id, &alice).await;

    for intruder in [&bob, &admin] {
        for (path, body) in [
            (format!("/v1/jobs/{id}/cancel"), None),
            (
                format!("/v1/jobs/{id}/extend"),
                Some(json!({"extension_hours": 1})),
            ),
            (format!("/v1/jobs/{id}/jupyter/enable"), None),
            (format!("/v1/jobs/{id}/jupyter/disable"), None),
            (
                format!("/v1/jobs/{id}/users"),
                Some(json!({"github_username": "mallory"})),
            ),
            (format!("/v1/jobs/{}/cancel", &id.to_string()[..8]), None),
        ] {
            let (status, resp) =
                status_json(app.call(Method::POST, &path, Some(intruder), body).await).await;
            assert_eq!(status, 404, "{path}: {resp}");
            assert!(resp["detail"].as_str().unwrap().contains("not found"));
        }
    }
    for path in ["cancel", "jupyter/enable"] {
        let (status, _) =
            post_empty(&app, &format!("/v1/jobs/{}/{path}", Uuid::new_v4()), &bob).await;
        assert_eq!(status, 404, "unknown jobs are 404, not 500");
    }
    let after = job(&app, id, &alice).await;
    assert_eq!(after["status"], "active");
    assert_eq!(after["expires_at"], before["expires_at"]);
    assert_eq!(after["secondary_users"], json!([]));
    assert_eq!(after["jupyter_enabled"], false);
    assert_eq!(actions(&hints_for(&app, id).await), ["create"]);
}

#[tokio::test]
async fn extending_an_active_job_moves_its_end_resets_warnings_and_records_it() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let id = submit_ok(&app, &key, t4(2.0)).await;
    activate(&app, id).await;
    let client = app.db.connect().await;
    client
        .execute(
            "UPDATE reservations SET warnings_sent = '{30m}' WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let before = job(&app, id, &key).await;

    let (status, body) = status_json(
        app.post(
            &format!("/v1/jobs/{id}/extend"),
            &key,
            ExtendRequest {
                extension_hours: 1.5,
            },
        )
        .await,
    )
    .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["action"], "extend");
    assert_eq!(body["status"], "extended");
    let old = DateTime::parse_from_rfc3339(before["expires_at"].as_str().unwrap()).unwrap();
    let new = DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((new - old).num_seconds(), 5400);
    let after = job(&app, id, &key).await;
    assert_eq!(after["expires_at"], body["expires_at"]);
    assert_eq!(after["extended_hours"], 1.5);
    let stored = reservations::get(&client, id).await.unwrap();
    assert!(stored.warnings_sent.is_empty(), "warnings are sent again");
    let last = after["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "extend");
    let hints = hints_for(&app, id).await;
    assert_eq!(actions(&hints), ["create", "extend"]);
    assert_eq!(hints[1]["details"]["extension_hours"], 1.5);
    assert_eq!(audit_rows(&app, "reservation.extend").await.len(), 1);
}

#[tokio::test]
async fn extensions_are_refused_for_ended_jobs_past_the_lifetime_cap_and_out_of_range() {
    let app = spawn_app_with(&[("MAX_LIFETIME_HOURS", "30")]).await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let ended = submit_ok(&app, &key, t4(1.0)).await;
    post_empty(&app, &format!("/v1/jobs/{ended}/cancel"), &key).await;
    let id = submit_ok(&app, &key, t4(20.0)).await;
    activate(&app, id).await;
    let extend = |id: Uuid, body: Value| {
        let app = &app;
        let key = key.clone();
        async move { status_json(app.post(&format!("/v1/jobs/{id}/extend"), &key, body).await).await }
    };

    let (s1, not_live) = extend(ended, json!({"extension_hours": 1})).await;
    let (s2, ok) = extend(id, json!({"extension_hours": 10})).await;
    let (s3, capped) = extend(id, json!({"extension_hours": 0.5})).await;
    let (s4, tiny) = extend(id, json!({"extension_hours": 0.01})).await;
    let (s5, huge) = extend(id, json!({"extension_hours": 48})).await;
    let (s6, missing) = extend(id, json!({})).await;

    assert_eq!(
        (s1, not_live["code"].as_str()),
        (409, Some("invalid_state"))
    );
    assert!(
        not_live["detail"].as_str().unwrap().contains("cancelled"),
        "{not_live}"
    );
    assert_eq!(s2, 200, "20 h + 10 h reaches the 30 h cap exactly: {ok}");
    assert_eq!(ok["applies"], "now");
    assert_eq!(
        (s3, capped["code"].as_str()),
        (409, Some("lifetime_exceeded"))
    );
    assert!(
        capped["detail"].as_str().unwrap().contains("30"),
        "{capped}"
    );
    assert_eq!(s4, 422, "{tiny}");
    assert_eq!(s5, 422, "{huge}");
    assert_eq!(s6, 422, "{missing}");
    assert_eq!(job(&app, id, &key).await["extended_hours"], 10.0);
}

#[tokio::test]
async fn jupyter_is_switched_by_the_processor_when_preparing_or_active_and_at_start_when_queued() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let active = submit_ok(&app, &key, t4(1.0)).await;
    activate(&app, active).await;
    let queued = submit_ok(&app, &key, t4(1.0)).await;
    let preparing = submit_ok(&app, &key, t4(1.0)).await;
    move_to(&app, preparing, &[Preparing]).await;

    let (s1, on) = post_empty(&app, &format!("/v1/jobs/{active}/jupyter/enable"), &key).await;
    let (s2, off) = post_empty(&app, &format!("/v1/jobs/{active}/jupyter/disable"), &key).await;
    let (s3, later) = post_empty(&app, &format!("/v1/jobs/{queued}/jupyter/enable"), &key).await;
    let (s4, starting) =
        post_empty(&app, &format!("/v1/jobs/{preparing}/jupyter/enable"), &key).await;

    assert_eq!(
        (s1, s2, s3, s4),
        (200, 200, 200, 200),
        "{on} {off} {later} {starting}"
    );
    assert_eq!(
        (&on["applies"], &later["applies"], &starting["applies"]),
        (&json!("shortly"), &json!("at_start"), &json!("shortly"))
    );
    assert_eq!(on["action"], "enable_jupyter");
    assert_eq!(on["status"], "requested");
    assert_eq!(off["action"], "disable_jupyter");
    let hints = hints_for(&app, active).await;
    assert_eq!(
        actions(&hints),
        ["create", "enable_jupyter", "disable_jupyter"]
    );
    assert_eq!(job(&app, active, &key).await["jupyter_enabled"], false);
    assert_eq!(job(&app, queued, &key).await["jupyter_enabled"], true);
    assert_eq!(
        actions(&hints_for(&app, queued).await),
        ["create"],
        "applied at start"
    );
    assert!(
        later["message"]
            .as_str()
            .unwrap()
            .contains("when it starts")
    );
    assert_eq!(
        actions(&hints_for(&app, preparing).await),
        ["create", "enable_jupyter"],
        "the processor switches a preparing box too"
    );
    assert_eq!(job(&app, preparing, &key).await["jupyter_enabled"], true);
    post_empty(&app, &format!("/v1/jobs/{queued}/cancel"), &key).await;
    let (s5, ended) = post_empty(&app, &format!("/v1/jobs/{queued}/jupyter/disable"), &key).await;
    assert_eq!((s5, ended["code"].as_str()), (409, Some("invalid_state")));
    assert_eq!(
        audit_rows(&app, "reservation.jupyter_enable").await.len(),
        3
    );
}

#[tokio::test]
async fn adding_a_user_records_the_login_and_tells_the_processor() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let id = submit_ok(&app, &key, t4(1.0)).await;
    activate(&app, id).await;
    let ended = submit_ok(&app, &key, t4(1.0)).await;
    post_empty(&app, &format!("/v1/jobs/{ended}/cancel"), &key).await;
    let users = |id: Uuid| format!("/v1/jobs/{id}/users");

    let (s1, added) = status_json(
        app.post(
            &users(id),
            &key,
            AddUserRequest {
                github_username: "octocat".into(),
            },
        )
        .await,
    )
    .await;
    let (s2, bad) = status_json(
        app.post(&users(id), &key, json!({"github_username": "not a login"}))
            .await,
    )
    .await;
    let (s3, gone) = status_json(
        app.post(
            &users(ended),
            &key,
            AddUserRequest {
                github_username: "octocat".into(),
            },
        )
        .await,
    )
    .await;

    assert_eq!(s1, 200, "{added}");
    assert_eq!(added["action"], "add_user");
    assert_eq!(added["status"], "requested");
    assert_eq!(
        job(&app, id, &key).await["secondary_users"],
        json!(["octocat"])
    );
    let hints = hints_for(&app, id).await;
    assert_eq!(actions(&hints), ["create", "add_user"]);
    assert_eq!(hints[1]["details"]["github_username"], "octocat");
    assert_eq!((s2, bad["code"].as_str()), (422, Some("validation_error")));
    assert_eq!((s3, gone["code"].as_str()), (409, Some("invalid_state")));
    assert_eq!(audit_rows(&app, "reservation.add_user").await.len(), 1);
}

#[tokio::test]
async fn queued_and_preparing_jobs_take_every_action_and_the_answer_says_when() {
    let app = spawn_app_with(&[("MAX_LIFETIME_HOURS", "10"), ("MAX_RESERVATION_HOURS", "8")]).await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let queued = submit_ok(&app, &key, t4(2.0)).await;
    let preparing = submit_ok(&app, &key, t4(2.0)).await;
    move_to(&app, preparing, &[Preparing]).await;
    let extend = |id: Uuid, hours: f64| {
        let app = &app;
        let key = key.clone();
        async move {
            status_json(
                app.post(
                    &format!("/v1/jobs/{id}/extend"),
                    &key,
                    json!({"extension_hours": hours}),
                )
                .await,
            )
            .await
        }
    };

    let (s1, q) = extend(queued, 3.0).await;
    let (s2, p) = extend(preparing, 1.5).await;
    let (s3, over) = extend(queued, 6.0).await;
    let (s4, user) = status_json(
        app.post(
            &format!("/v1/jobs/{preparing}/users"),
            &key,
            json!({"github_username": "octocat"}),
        )
        .await,
    )
    .await;

    assert_eq!((s1, s2), (200, 200), "{q} {p}");
    assert_eq!(
        (&q["applies"], &p["applies"]),
        (&json!("at_start"), &json!("at_start"))
    );
    assert_eq!(q["expires_at"], Value::Null, "no end until it starts");
    assert!(
        q["message"]
            .as_str()
            .unwrap()
            .contains("will run for 5 h once it starts"),
        "{q}"
    );
    let stored = job(&app, queued, &key).await;
    assert_eq!(stored["extended_hours"], 3.0);
    assert_eq!(
        stored["events"].as_array().unwrap().last().unwrap()["kind"],
        "extend"
    );
    assert_eq!(
        (s3, over["code"].as_str()),
        (409, Some("lifetime_exceeded")),
        "2 + 3 + 6 h is over the 10 h cap"
    );
    assert_eq!(
        job(&app, queued, &key).await["extended_hours"],
        3.0,
        "nothing written"
    );
    assert_eq!(s4, 200, "{user}");
    assert_eq!(user["applies"], "shortly");
    assert_eq!(
        actions(&hints_for(&app, preparing).await),
        ["create", "extend", "add_user"]
    );
    // The preparing job's end counts its extension from when it becomes active.
    move_to(&app, preparing, &[gpudev_domain::ReservationStatus::Active]).await;
    let active = job(&app, preparing, &key).await;
    let launched = DateTime::parse_from_rfc3339(active["launched_at"].as_str().unwrap()).unwrap();
    let ends = DateTime::parse_from_rfc3339(active["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((ends - launched).num_seconds(), 3 * 3600 + 1800);
}
