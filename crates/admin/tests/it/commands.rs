use gpudev_domain::PresentedKey;
use gpudev_store::api_keys::{self, KeyRejection};
use serde_json::Value;

use crate::{admin, stderr, stdout};

#[tokio::test]
async fn a_created_key_is_printed_once_authenticates_and_can_be_revoked() {
    let db = gpudev_testkit::test_db().await;
    let url = db.url();
    assert!(
        admin(&url, &["users", "create", "ci-bot"])
            .await
            .status
            .success()
    );

    let created = admin(
        &url,
        &["keys", "create", "--user", "ci-bot", "--ttl-hours", "3"],
    )
    .await;

    assert!(created.status.success(), "{created:?}");
    let secret = stdout(&created).trim().to_owned();
    assert_eq!(secret.len(), 86);
    let client = db.connect().await;
    let hash = PresentedKey::parse(&secret).unwrap().hash();
    let auth = api_keys::authenticate(&client, &hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(auth.username.as_str(), "ci-bot");
    let ttl = auth.expires_at - chrono::Utc::now();
    assert!((170..=180).contains(&ttl.num_minutes()), "{ttl}");

    let listed = admin(&url, &["keys", "list", "--user", "ci-bot", "-o", "json"]).await;
    let keys: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(keys[0]["key_prefix"], &secret[..8]);
    assert!(
        !stdout(&listed).contains(&secret),
        "listings never show the secret"
    );
    let table = admin(&url, &["keys", "list"]).await;
    assert!(!stdout(&table).contains(&secret));
    assert!(stdout(&table).contains(&secret[..8]));

    let id = keys[0]["key_id"].as_i64().unwrap().to_string();
    let revoked = admin(&url, &["keys", "revoke", &id]).await;
    assert!(revoked.status.success(), "{revoked:?}");
    assert_eq!(
        api_keys::authenticate(&client, &hash).await.unwrap(),
        Err(KeyRejection::Revoked)
    );
}

#[tokio::test]
async fn users_can_be_disabled_enabled_and_promoted() {
    let db = gpudev_testkit::test_db().await;
    let url = db.url();
    admin(&url, &["users", "create", "alice"]).await;

    let disabled = admin(&url, &["users", "disable", "alice"]).await;
    let refused = admin(&url, &["keys", "create", "--user", "alice"]).await;
    let enabled = admin(&url, &["users", "enable", "alice"]).await;
    let promoted = admin(&url, &["users", "grant-admin", "alice"]).await;
    let listed = admin(&url, &["users", "list", "-o", "json"]).await;

    assert!(disabled.status.success());
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("disabled"),
        "{}",
        stderr(&refused)
    );
    assert!(enabled.status.success());
    assert!(promoted.status.success());
    let users: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(users[0]["username"], "alice");
    assert_eq!(users[0]["role"], "admin");
    assert_eq!(users[0]["is_active"], true);
}

#[tokio::test]
async fn queue_stats_report_depth_and_dead_letters_are_listed() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let q = gpudev_store::Queue::new("gpu_reservations").unwrap();
    for i in 0..3 {
        q.send(&client, &serde_json::json!({"action": "create", "n": i}))
            .await
            .unwrap();
    }
    let msg = q.read(&client, 30, 1).await.unwrap().remove(0);
    let tx = client.transaction().await.unwrap();
    q.dead_letter(&tx, &msg, "gave up after 5 reads")
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let stats = admin(&db.url(), &["queue", "stats", "-o", "json"]).await;
    let letters = admin(&db.url(), &["queue", "dead-letters"]).await;

    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats[0]["queue_name"], "gpu_reservations");
    assert_eq!(stats[0]["queue_length"], 2);
    assert!(stats[0]["oldest_msg_age_sec"].is_number());
    assert_eq!(stats[1]["queue_name"], "gpu_reservations_dlq");
    assert_eq!(stats[1]["queue_length"], 1);
    assert!(
        stdout(&letters).contains("gave up after 5 reads"),
        "{}",
        stdout(&letters)
    );
}

#[tokio::test]
async fn an_oidc_identity_can_be_linked_to_an_existing_user_and_unlinked() {
    use gpudev_domain::Username;
    use gpudev_store::users;

    let db = gpudev_testkit::test_db().await;
    let url = db.url();
    let client = db.connect().await;
    let alice = Username::parse("alice").unwrap();
    let arn = "arn:aws:sts::123456789012:assumed-role/SSOCloudDevGpuReservation/alice";
    let aws_user = users::upsert_aws_login(&client, &alice, arn, false)
        .await
        .unwrap();
    admin(&url, &["users", "create", "bob"]).await;
    let issuer = "https://login.example.com";

    let linked = admin(
        &url,
        &[
            "users",
            "link-oidc",
            "alice",
            "--issuer",
            issuer,
            "--subject",
            "sub-1",
        ],
    )
    .await;
    let taken = admin(
        &url,
        &[
            "users",
            "link-oidc",
            "bob",
            "--issuer",
            issuer,
            "--subject",
            "sub-1",
        ],
    )
    .await;
    let ghost = admin(
        &url,
        &[
            "users",
            "link-oidc",
            "ghost",
            "--issuer",
            issuer,
            "--subject",
            "sub-2",
        ],
    )
    .await;

    assert!(linked.status.success(), "{linked:?}");
    // The identity signs in as alice, under her name, and her AWS logins keep working.
    let by_oidc = users::upsert_oidc_login(
        &client,
        issuer,
        "sub-1",
        &Username::parse("alice.smith").unwrap(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(by_oidc.user_id, aws_user.user_id);
    assert_eq!(by_oidc.username.as_str(), "alice");
    let by_aws = users::upsert_aws_login(&client, &alice, arn, false)
        .await
        .unwrap();
    assert_eq!(by_aws.user_id, aws_user.user_id);
    // Another ARN with the same name is still another person.
    let other_arn = "arn:aws:sts::999999999999:assumed-role/SSOCloudDevGpuReservation/alice";
    assert!(
        users::upsert_aws_login(&client, &alice, other_arn, false)
            .await
            .is_err()
    );
    for (out, needle) in [
        (&taken, "already belongs to another user"),
        (&ghost, "user \"ghost\" not found"),
    ] {
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(stderr(out).contains(needle), "{}", stderr(out));
        assert_eq!(stderr(out).trim().lines().count(), 1, "{}", stderr(out));
    }

    let unlinked = admin(&url, &["users", "unlink-oidc", "alice"]).await;
    assert!(unlinked.status.success(), "{unlinked:?}");
    let after = users::upsert_oidc_login(
        &client,
        issuer,
        "sub-1",
        &Username::parse("alice").unwrap(),
        false,
    )
    .await;
    assert!(after.is_err(), "the name is taken by the unlinked user");
}
