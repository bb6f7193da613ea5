//! Rate limits hold across replicas: two API processes over one database admit together what one
//! would (ADR 13), where each used to admit its own full allowance.

use gpudev_domain::ApiKey;
use gpudev_store::users::Role;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app_on, spawn_app_with, status_json};

const PROBE: &str = "/v1/__auth_probe";

/// Two replicas with the same settings over one database.
async fn two_replicas(settings: &[(&str, &str)]) -> (TestApp, TestApp) {
    let first = spawn_app_with(settings).await;
    let second = spawn_app_on(gpudev_testkit::TestDb::clone(&first.db), settings).await;
    (first, second)
}

/// Statuses of `n` requests, alternating between the replicas.
async fn alternating(replicas: [&TestApp; 2], n: usize, key: &str) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..n {
        statuses.push(replicas[i % 2].get(PROBE, key).await.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn a_keys_limit_holds_across_two_replicas() {
    // Six a minute, no burst: the next token is ten seconds away, longer than the test.
    let (a, b) = two_replicas(&[("RATE_LIMIT_PER_MINUTE", "6"), ("RATE_LIMIT_BURST", "0")]).await;
    let (_, key) = a.user_with_key("alice", Role::User).await;

    let statuses = alternating([&a, &b], 16, &key).await;

    let admitted = statuses.iter().filter(|s| **s == 404).count();
    assert_eq!(admitted, 6, "one allowance for both replicas: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 404 || *s == 429),
        "{statuses:?}"
    );
    assert_eq!(
        &statuses[..6],
        &[404; 6],
        "each replica used its share in turn"
    );
    let limited = b.get(PROBE, &key).await;
    assert_eq!(limited.headers()["ratelimit-limit"], "6");
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
}

#[tokio::test]
async fn tokens_a_replica_leased_and_did_not_use_go_back_to_the_others() {
    // 160 in a burst and one a minute after it: nothing refills while the test runs.
    let (a, b) = two_replicas(&[("RATE_LIMIT_PER_MINUTE", "1"), ("RATE_LIMIT_BURST", "159")]).await;
    let (_, key) = a.user_with_key("alice", Role::User).await;

    // A busy client makes the first replica lease several tokens at a time.
    for _ in 0..50 {
        assert_eq!(a.get(PROBE, &key).await.status().as_u16(), 404);
    }
    let leased: f64 =
        a.db.connect()
            .await
            .query_one(
                "SELECT tokens FROM rate_limit_buckets WHERE scope = 'api_key'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
    assert!(
        leased < 110.0,
        "the first replica holds tokens it has not used: {leased} left"
    );
    tokio::time::sleep(gpudev_api::limits::RETURN_AFTER * 5 / 2).await;

    let mut on_second = 0;
    while b.get(PROBE, &key).await.status().as_u16() == 404 {
        on_second += 1;
        assert!(on_second <= 200, "never limited");
    }
    assert!(
        (110..=111).contains(&on_second),
        "the second replica got the 110 left, the first's unused lease included: {on_second}"
    );
    assert_eq!(a.get(PROBE, &key).await.status().as_u16(), 429);
}

/// A login attempt that is counted and then refused for its fields (422), or refused by a limit
/// (429), with `identity` as its access key id.
async fn login_attempt(app: &TestApp, identity: &str) -> u16 {
    let resp = app
        .call(
            Method::POST,
            "/v1/auth/aws-login",
            None,
            Some(json!({"aws_access_key_id": identity, "aws_secret_access_key": "short"})),
        )
        .await;
    resp.status().as_u16()
}

#[tokio::test]
async fn login_limits_per_identity_and_per_address_hold_across_two_replicas() {
    let (a, b) = two_replicas(&[
        ("LOGIN_RATE_LIMIT_PER_MINUTE", "3"),
        ("LOGIN_ADDRESS_RATE_LIMIT_PER_MINUTE", "5"),
    ])
    .await;
    let replicas = [&a, &b];
    let mut mallory = Vec::new();
    for i in 0..6 {
        mallory.push(login_attempt(replicas[i % 2], "AKIAMALLORYMALLORY00").await);
    }
    assert_eq!(mallory, [422, 422, 422, 429, 429, 429], "per identity");
    // Two more identities fit in the address's five; then the address is spent everywhere.
    let mut others = Vec::new();
    for (i, who) in [
        "AKIAALICEALICEALIC00",
        "AKIABOBBOBBOBBOBBO00",
        "AKIACAROLCAROLCA00",
    ]
    .iter()
    .enumerate()
    {
        others.push(login_attempt(replicas[i % 2], who).await);
    }
    assert_eq!(others, [422, 422, 429], "per address");
    assert_eq!(login_attempt(&a, "AKIADAVEDAVEDAVEDA00").await, 429);
    assert_eq!(login_attempt(&b, "AKIAERINERINERINER00").await, 429);
}

#[tokio::test]
async fn failed_authentications_are_throttled_across_two_replicas() {
    let (a, b) = two_replicas(&[("AUTH_FAILURE_LIMIT", "4")]).await;
    let random_key = || ApiKey::generate().unwrap().expose_secret().to_owned();
    let mut statuses = Vec::new();
    for i in 0..12 {
        let replica = if i % 2 == 0 { &a } else { &b };
        statuses.push(
            status_json(replica.get("/v1/me", &random_key()).await)
                .await
                .0,
        );
    }
    let looked_up = statuses.iter().filter(|s| **s == 401).count();
    // Each replica learns the address is spent when it charges a failure, so another replica
    // may look up one more key than the limit: at most the limit plus one per other replica.
    assert!(
        (4..=5).contains(&looked_up),
        "per replica it would be 8: {statuses:?}"
    );
    assert!(statuses[6..].iter().all(|s| *s == 429), "{statuses:?}");
    // A replica that has not seen this address fail yet is refused after its first lookup too.
    let c = spawn_app_on(
        gpudev_testkit::TestDb::clone(&a.db),
        &[("AUTH_FAILURE_LIMIT", "4")],
    )
    .await;
    let first = status_json(c.get("/v1/me", &random_key()).await).await.0;
    let second = status_json(c.get("/v1/me", &random_key()).await).await.0;
    assert_eq!((first, second), (401, 429));
}

#[tokio::test]
async fn when_the_buckets_cannot_be_reached_requests_pass_unchecked_and_are_counted() {
    let app = spawn_app_with(&[("RATE_LIMIT_PER_MINUTE", "2"), ("RATE_LIMIT_BURST", "0")]).await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    // Every take of a token now waits for this lock, longer than the limiter's bound.
    let mut locker = app.db.connect().await;
    let tx = locker.transaction().await.unwrap();
    tx.execute(
        "LOCK TABLE rate_limit_buckets IN ACCESS EXCLUSIVE MODE",
        &[],
    )
    .await
    .unwrap();

    let started = std::time::Instant::now();
    let statuses = alternating([&app, &app], 4, &key).await;
    let took = started.elapsed();
    tx.rollback().await.unwrap();

    assert_eq!(statuses, [404; 4], "over the limit of 2, but unchecked");
    assert!(
        took < gpudev_api::limits::DB_BOUND + gpudev_api::limits::UNCHECKED_FOR * 2,
        "one bounded wait, then no more asking for a while: {took:?}"
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("gpudev_api_rate_limit_unchecked_total{limit=\"api_key\"} 4"),
        "{metrics}"
    );
}
