//! A submit whose dev box could get no SSH key is refused at once with how to fix it, while
//! anyone who has a key (stored, or a GitHub user named by the request or the account) is
//! accepted as before.

use gpudev_store::ssh_keys;
use gpudev_store::users::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TEST_SSH_KEY, TestApp, count, spawn_app, status_json};
use crate::jobs_common::{audit_rows, queued_messages, submit_ok};

/// A user who has an API key but no SSH key registered.
async fn keyless(app: &TestApp, name: &str) -> (i64, String) {
    let (user, key) = app.user_with_key(name, Role::User).await;
    let mut client = app.db.connect().await;
    ssh_keys::replace(&mut client, user.user_id, &[])
        .await
        .unwrap();
    (user.user_id, key)
}

async fn submit(app: &TestApp, key: &str, body: Value) -> (u16, Value) {
    status_json(app.post("/v1/jobs/submit", key, body).await).await
}

#[tokio::test]
async fn a_submit_no_ssh_key_could_reach_is_refused_with_how_to_fix_it_and_nothing_stored() {
    let app = spawn_app().await;
    let (_, key) = keyless(&app, "alice").await;

    let (status, body) = submit(&app, &key, json!({"gpu_type": "t4"})).await;

    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "validation_error");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("gpu-dev ssh-keys add"), "{detail}");
    assert!(detail.contains("GitHub user"), "{detail}");
    assert_eq!(count(&app, "SELECT count(*) FROM reservations").await, 0);
    assert!(queued_messages(&app).await.is_empty(), "no message sent");
    let audited = audit_rows(&app, "reservation.submit").await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0].2, "denied");
}

#[tokio::test]
async fn the_original_clients_empty_github_user_counts_as_none_and_a_named_one_is_accepted() {
    let app = spawn_app().await;
    let (_, key) = keyless(&app, "alice").await;
    // What the original client sends: the control variables inside env_vars.
    let original = |github: &str| {
        json!({"image": "pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel",
               "instance_type": "g4dn.12xlarge", "duration_hours": 1,
               "env_vars": {"GPU_TYPE": "t4", "GPU_COUNT": "1", "GITHUB_USER": github}})
    };

    let (empty, refused) = submit(&app, &key, original("")).await;
    let (named, accepted) = submit(&app, &key, original("octocat")).await;
    let (field, by_field) = submit(
        &app,
        &key,
        json!({"gpu_type": "t4", "github_user": "octocat"}),
    )
    .await;

    assert_eq!(empty, 422, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("gpu-dev ssh-keys add"),
        "{refused}"
    );
    assert_eq!(named, 200, "{accepted}");
    assert_eq!(field, 200, "{by_field}");
    let (_, job) = status_json(
        app.get(
            &format!("/v1/jobs/{}", accepted["job_id"].as_str().unwrap()),
            &key,
        )
        .await,
    )
    .await;
    assert_eq!(job["github_user"], "octocat");
    assert_eq!(count(&app, "SELECT count(*) FROM reservations").await, 2);
}

#[tokio::test]
async fn a_stored_key_or_a_github_login_on_the_account_is_enough() {
    let app = spawn_app().await;
    let (_, with_keys) = app.user_with_key("alice", Role::User).await;
    let (bob, bobs) = keyless(&app, "bob").await;
    let (_, carols) = keyless(&app, "carol").await;
    let client = app.db.connect().await;
    client
        .execute(
            "UPDATE users SET github_username = 'bob-gh' WHERE user_id = $1",
            &[&bob],
        )
        .await
        .unwrap();

    submit_ok(&app, &with_keys, json!({"gpu_type": "t4"})).await;
    submit_ok(&app, &bobs, json!({"gpu_type": "t4"})).await;
    let (refused, _) = submit(&app, &carols, json!({"gpu_type": "t4"})).await;
    let (status, body) = status_json(
        app.call(
            Method::PUT,
            "/v1/me/ssh-keys",
            Some(&carols),
            Some(json!({ "keys": [TEST_SSH_KEY] })),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (after, answer) = submit(&app, &carols, json!({"gpu_type": "t4"})).await;

    assert_eq!(refused, 422);
    assert_eq!(
        after, 200,
        "a registered key lets the same submit through: {answer}"
    );
}

#[tokio::test]
async fn a_retry_of_a_stored_submit_is_answered_even_after_the_keys_are_gone() {
    let app = spawn_app().await;
    let (user, key) = app.user_with_key("alice", Role::User).await;
    let body = json!({"gpu_type": "t4"});
    let first = app
        .http
        .post(format!("{}/v1/jobs/submit", app.base))
        .bearer_auth(&key)
        .header("Idempotency-Key", "retry-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (s1, one) = status_json(first).await;
    let mut client = app.db.connect().await;
    ssh_keys::replace(&mut client, user.user_id, &[])
        .await
        .unwrap();

    let again = app
        .http
        .post(format!("{}/v1/jobs/submit", app.base))
        .bearer_auth(&key)
        .header("Idempotency-Key", "retry-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (s2, two) = status_json(again).await;

    assert_eq!((s1, s2), (200, 200), "{one} {two}");
    assert_eq!(one["job_id"], two["job_id"], "the retry gets the first job");
}
