//! `/v1/keys`: rotate, list and revoke one's own keys.

use gpudev_store::users::Role;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, status_json};

/// The status `/v1/me` answers for `key` right now. Revocation through this replica takes
/// effect at once (its own cache is cleared in the request); other replicas learn of it through
/// LISTEN/NOTIFY, which `auth_middleware` tests.
async fn me_status(app: &TestApp, key: &str) -> u16 {
    app.get("/v1/me", key).await.status().as_u16()
}

#[tokio::test]
async fn rotating_issues_a_second_working_key_and_keeps_the_first() {
    let app = spawn_app().await;
    let (user, old) = app.user_with_key("alice", Role::User).await;

    // The original client's bodyless POST: JSON content type, empty body.
    let resp = app
        .http
        .post(format!("{}/v1/keys/rotate", app.base))
        .bearer_auth(&old)
        .header("content-type", "application/json")
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (status, body) = status_json(resp).await;

    assert_eq!(status, 200, "{body}");
    let new = body["api_key"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(body["key_prefix"], new[..8]);
    assert_eq!(body["user_id"], user.user_id);
    assert_eq!(body["username"], "alice");
    assert_eq!(body["revoked_key_id"], json!(null));
    assert!(body["expires_at"].as_str().is_some());
    for key in [old.as_str(), new] {
        assert_eq!(app.get("/v1/me", key).await.status(), 200);
    }
    let (status, body) = status_json(
        app.call(Method::POST, "/v1/keys/rotate", Some(new), Some(json!({})))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = status_json(
        app.call(
            Method::POST,
            "/v1/keys/rotate",
            Some(new),
            Some(json!({"revoke_current": "yes"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn rotating_with_revoke_current_revokes_the_old_key() {
    let app = spawn_app().await;
    let (_, old) = app.user_with_key("bob", Role::User).await;
    assert_eq!(app.get("/v1/me", &old).await.status(), 200);

    let (status, body) = status_json(
        app.post("/v1/keys/rotate", &old, json!({"revoke_current": true}))
            .await,
    )
    .await;

    assert_eq!(status, 200, "{body}");
    assert!(body["revoked_key_id"].as_i64().is_some());
    let new = body["api_key"].as_str().unwrap();
    assert_eq!(me_status(&app, &old).await, 403);
    let (_, err) = status_json(app.get("/v1/me", &old).await).await;
    assert_eq!(err["detail"], "API key has been revoked");
    assert_eq!(app.get("/v1/me", new).await.status(), 200);
    let client = app.db.connect().await;
    let audited: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'key.rotate' AND actor = 'bob'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn listing_shows_only_ones_own_keys_and_no_secrets() {
    let app = spawn_app().await;
    let (_, first) = app.user_with_key("carol", Role::User).await;
    let (_, second) = app.user_with_key("carol", Role::User).await;
    let (_, _other) = app.user_with_key("dave", Role::User).await;

    let resp = app.get("/v1/keys", &second).await;
    let text = resp.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();

    assert_eq!(body["total"], 2, "{body}");
    let keys = body["keys"].as_array().unwrap();
    assert!(keys.iter().all(|k| k["status"] == "active"));
    assert_eq!(keys.iter().filter(|k| k["current"] == true).count(), 1);
    let current = keys.iter().find(|k| k["current"] == true).unwrap();
    assert_eq!(current["key_prefix"], second[..8]);
    assert!(!text.contains(&first) && !text.contains(&second));
    assert!(!text.contains("hash"), "{text}");
}

#[tokio::test]
async fn deleting_revokes_ones_own_key_and_another_users_key_is_404() {
    let app = spawn_app().await;
    let (_, erin) = app.user_with_key("erin", Role::User).await;
    let (_, erin_spare) = app.user_with_key("erin", Role::User).await;
    let (_, frank) = app.user_with_key("frank", Role::User).await;
    let (_, keys) = status_json(app.get("/v1/keys", &erin).await).await;
    let spare_id = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == false)
        .unwrap()["key_id"]
        .as_i64()
        .unwrap();

    let (status, body) = status_json(
        app.call(
            Method::DELETE,
            &format!("/v1/keys/{spare_id}"),
            Some(&frank),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("not found"));
    let (status, body) = status_json(
        app.call(Method::DELETE, "/v1/keys/999999", Some(&erin), None)
            .await,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(app.get("/v1/me", &erin_spare).await.status(), 200);

    let (status, body) = status_json(
        app.call(
            Method::DELETE,
            &format!("/v1/keys/{spare_id}"),
            Some(&erin),
            None,
        )
        .await,
    )
    .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "revoked");
    assert_eq!(body["key_id"], spare_id);
    assert_eq!(me_status(&app, &erin_spare).await, 403);
    assert_eq!(app.get("/v1/me", &erin).await.status(), 200);
}
