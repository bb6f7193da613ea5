//! `/v1/me` and `/v1/me/ssh-keys`.

use gpudev_store::users::Role;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_app_with, status_json};

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETUbNlJBfWzOjE2V2VI7uME1ZcLQOGKhOdceh1N5BOe test@gpudev";
const ED25519_FINGERPRINT: &str = "SHA256:e9NHLWGRrb2UbsEWaYl1bVaYfM+/+Wwvn3E/dbo+6TA";
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCycjuIafXfKHrUAzZGH9tcU7y5ocMWGiJUqbxAp4w3emwlh91T4rCtuC6F4a7y0MRa3lmxTmxUqpiXECJbECXV83iGdlJNnzqHoD16BK2iAs8WvPSqbLz1Qs0epGOKc1y3eskbLd44Y8fIvpz/NNFNFQiLfrytHEwh4jBZcMvl8sIU8FC2zMg9MP5QVowrerTBC2+lAiJ+vrMlpNJycfqXvcJc576fd0jTVxKh4Qc2mh5LZMy03gE/+a3+OmLJtCNrW20b/nGSgCntHl/aqkNAsu2pDXEqzB6Do48dONR9A7eW7/nd3ZaSmCcuSe8I+AeWfev7KftPaW3Mivgt35ibTrDJsmlZUHdP3uTftJAgwe6iITqbaXepxXWqdHfv0DO6ctU1jgAO1LsWovSvrFMYCQSGGo9QuYko7yOD+4kgrDR/KIyocgJQeJVXm3l/lh6KTgHuEBr//oYfx9Tbkq6mOzDiZRSaeeDh85dPVLeSlJTtppHmBsAT88qthRtUrJc= rsa@gpudev";

#[tokio::test]
async fn me_shows_identity_role_current_key_quotas_and_live_usage() {
    let app = spawn_app_with(&[
        ("MAX_GPUS_PER_USER", "16"),
        ("MAX_ACTIVE_RESERVATIONS_PER_USER", "3"),
    ])
    .await;
    let (alice, key) = app.user_with_key("alice", Role::Admin).await;
    let (bob, _) = app.user_with_key("bob", Role::User).await;
    let client = app.db.connect().await;
    for (user_id, status, gpus) in [
        (alice.user_id, "queued", 2),
        (alice.user_id, "active", 4),
        (alice.user_id, "cancelled", 8),
        (alice.user_id, "expired", 8),
        (bob.user_id, "active", 8),
    ] {
        client
            .execute(
                "INSERT INTO reservations (reservation_id, user_id, status, gpu_type, gpu_count, \
                   duration_hours, image) VALUES ($1, $2, $3, 'h100', $4, 1, 'img')",
                &[&uuid::Uuid::new_v4(), &user_id, &status, &gpus],
            )
            .await
            .unwrap();
    }

    let (status, me) = status_json(app.get("/v1/me", &key).await).await;

    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user_id"], alice.user_id);
    assert_eq!(me["username"], "alice");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["aws_arn"], json!(null));
    assert_eq!(me["github_username"], json!(null));
    assert_eq!(me["current_key"]["auth_method"], "admin");
    assert!(me["current_key"]["expires_at"].as_str().is_some());
    assert_eq!(me["quotas"]["max_gpus_per_user"], 16);
    assert_eq!(me["quotas"]["max_active_reservations_per_user"], 3);
    assert_eq!(me["usage"]["active_reservations"], 2);
    assert_eq!(me["usage"]["gpus"], 6);
}

#[tokio::test]
async fn ssh_keys_are_replaced_listed_and_each_one_validated() {
    let app = spawn_app_with(&[]).await;
    let (_, key) = app.user_with_key("carol", Role::User).await;
    let (_, other) = app.user_with_key("dave", Role::User).await;

    let (status, body) = status_json(
        app.call(
            Method::PUT,
            "/v1/me/ssh-keys",
            Some(&key),
            Some(json!({"keys": [ED25519, RSA, ED25519]})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 2, "duplicates collapse: {body}");
    assert_eq!(body["keys"][0]["fingerprint"], ED25519_FINGERPRINT);
    assert_eq!(body["keys"][0]["key_type"], "ssh-ed25519");
    assert_eq!(body["keys"][0]["comment"], "test@gpudev");
    assert_eq!(body["keys"][1]["key_type"], "ssh-rsa");

    let (status, body) = status_json(
        app.call(
            Method::PUT,
            "/v1/me/ssh-keys",
            Some(&key),
            Some(json!({"keys": [ED25519, "ssh-dss AAAAB3NzaC1kc3M= old"]})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().starts_with("keys[1]:"),
        "{body}"
    );

    let (status, listed) = status_json(app.get("/v1/me/ssh-keys", &key).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        listed["total"], 2,
        "a refused PUT changes nothing: {listed}"
    );
    let (_, theirs) = status_json(app.get("/v1/me/ssh-keys", &other).await).await;
    assert_eq!(theirs["total"], 1, "dave keeps his own key only: {theirs}");
    assert_ne!(theirs["keys"][0]["fingerprint"], ED25519_FINGERPRINT);

    let (status, body) = status_json(
        app.call(
            Method::PUT,
            "/v1/me/ssh-keys",
            Some(&key),
            Some(json!({"keys": []})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 0);
    let client = app.db.connect().await;
    let audited: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'ssh_keys.replace'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 2);
}
