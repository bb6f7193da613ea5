//! Bearer authentication on every `/v1` route except the logins.

use std::time::{Duration, Instant};

use gpudev_store::users::Role;
use reqwest::Method;

use crate::helpers::{spawn_app, spawn_app_on, spawn_app_with, status_json};

// `GET /v1/keys` is the probe: any authenticated route would do.
const PROBE: &str = "/v1/__auth_probe";

#[tokio::test]
async fn a_missing_or_malformed_header_is_401_with_www_authenticate() {
    let app = spawn_app().await;

    let missing = app.call(Method::GET, PROBE, None, None).await;
    let basic = app
        .http
        .get(format!("{}{PROBE}", app.base))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    let short = app.call(Method::GET, PROBE, Some("short"), None).await;
    let unknown = app
        .call(Method::GET, PROBE, Some(&"x".repeat(86)), None)
        .await;

    for (resp, code) in [
        (missing, "not_authenticated"),
        (basic, "invalid_authorization"),
        (short, "invalid_api_key"),
        (unknown, "invalid_api_key"),
    ] {
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["code"], code);
    }
}

#[tokio::test]
async fn revoked_expired_and_disabled_are_403_with_distinct_details() {
    let app = spawn_app().await;
    let client = app.db.connect().await;
    let (_, revoked) = app.user_with_key("rev", Role::User).await;
    client.execute("UPDATE api_keys SET revoked_at = now() WHERE user_id = (SELECT user_id FROM users WHERE username = 'rev')", &[]).await.unwrap();
    let (_, expired) = app.user_with_key("exp", Role::User).await;
    client.execute("UPDATE api_keys SET created_at = now() - interval '3 hours', expires_at = now() - interval '1 minute' WHERE user_id = (SELECT user_id FROM users WHERE username = 'exp')", &[]).await.unwrap();
    let (_, disabled) = app.user_with_key("dis", Role::User).await;
    client
        .execute(
            "UPDATE users SET is_active = false WHERE username = 'dis'",
            &[],
        )
        .await
        .unwrap();

    for (key, detail) in [
        (revoked, "API key has been revoked"),
        (expired, "API key has expired"),
        (disabled, "User account is disabled"),
    ] {
        let (status, body) =
            status_json(app.call(Method::GET, PROBE, Some(&key), None).await).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["detail"], detail);
    }
}

#[tokio::test]
async fn authentication_is_checked_before_the_body_and_an_authenticated_unknown_route_is_404() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;

    let bad_key_bad_body = app
        .http
        .post(format!("{}/v1/jobs/submit", app.base))
        .bearer_auth("y".repeat(40))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, _) = status_json(bad_key_bad_body).await;
    let (ok_status, _) = status_json(app.get(PROBE, &key).await).await;

    assert_eq!(status, 401);
    assert_eq!(ok_status, 404, "a valid key reaches routing");
}

#[tokio::test]
async fn revoking_a_key_is_seen_by_a_second_replica_within_a_second() {
    let first = spawn_app().await;
    let (_, key) = first.user_with_key("alice", Role::User).await;
    let second = spawn_app_on(gpudev_testkit::TestDb::clone(&first.db), &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Warm both caches.
    for app in [&first, &second] {
        for _ in 0..3 {
            assert_eq!(app.get(PROBE, &key).await.status().as_u16(), 404);
        }
    }

    first
        .db
        .connect()
        .await
        .execute("UPDATE api_keys SET revoked_at = now()", &[])
        .await
        .unwrap();
    let started = Instant::now();
    let mut refused = false;
    while started.elapsed() < Duration::from_secs(1) {
        if second.get(PROBE, &key).await.status().as_u16() == 403 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert!(
        refused,
        "revocation must reach the second replica within 1 s"
    );
}

#[tokio::test]
async fn too_many_requests_is_429_with_retry_after_and_ratelimit_headers() {
    let app = spawn_app_with(&[("RATE_LIMIT_PER_MINUTE", "3"), ("RATE_LIMIT_BURST", "0")]).await;
    let (_, key) = app.user_with_key("alice", Role::User).await;

    for _ in 0..3 {
        assert_eq!(app.get(PROBE, &key).await.status().as_u16(), 404);
    }
    let limited = app.get(PROBE, &key).await;

    assert_eq!(limited.status().as_u16(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(limited.headers()["ratelimit-limit"], "3");
    let (_, body) = status_json(limited).await;
    assert_eq!(body["code"], "rate_limited");
}

#[tokio::test]
async fn key_use_is_recorded_in_batches_not_per_request() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;

    for _ in 0..5 {
        app.get(PROBE, &key).await;
    }
    let client = app.db.connect().await;
    let immediately: Option<chrono::DateTime<chrono::Utc>> = client
        .query_one("SELECT last_used_at FROM api_keys", &[])
        .await
        .unwrap()
        .get(0);

    assert!(immediately.is_none(), "no write per request");
    // The batch is written on shutdown at the latest.
    app.shutdown.shutdown().await;
    let mut recorded = None;
    for _ in 0..50 {
        recorded = client
            .query_one("SELECT last_used_at FROM api_keys", &[])
            .await
            .unwrap()
            .get::<_, Option<chrono::DateTime<chrono::Utc>>>(0);
        if recorded.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recorded.is_some());
}

#[tokio::test]
async fn verified_keys_are_cached_so_revocation_relies_on_the_change_notification() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    // Give the change listener time to connect; until then nothing is cached.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.get(PROBE, &key).await.status().as_u16(), 404);

    // Revoke with triggers off (replica mode), so no notification is sent.
    let client = app.db.connect().await;
    client
        .batch_execute(
            "SET session_replication_role = replica; UPDATE api_keys SET revoked_at = now();",
        )
        .await
        .unwrap();

    assert_eq!(
        app.get(PROBE, &key).await.status().as_u16(),
        404,
        "the cached key is still trusted: the cache is really in use"
    );
}
