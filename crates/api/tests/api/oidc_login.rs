//! `POST /v1/auth/oidc-login` and `GET /v1/auth/oidc` against the test kit's OIDC issuer: real
//! keys, real JWKS and discovery documents, real signed tokens, on loopback.

use gpudev_store::users::{self};
use gpudev_testkit::oidc::{OidcIssuer, oidc_issuer, tamper};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with, status_json};

/// The issuer list for `issuer`, with extra fields merged into its object.
fn issuers_json(issuers: &[(&OidcIssuer, Value)]) -> String {
    let list: Vec<Value> = issuers
        .iter()
        .map(|(issuer, extra)| {
            let mut obj = json!({"issuer": issuer.url(), "client_id": issuer.client_id()});
            if let (Some(o), Some(e)) = (obj.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            obj
        })
        .collect();
    Value::Array(list).to_string()
}

async fn app_for(issuer: &OidcIssuer, extra: Value, vars: &[(&str, &str)]) -> TestApp {
    let json = issuers_json(&[(issuer, extra)]);
    let mut all = vec![
        ("OIDC_ISSUERS_JSON", json.as_str()),
        ("OIDC_TIMEOUT_SECONDS", "2"),
        ("OIDC_JWKS_MIN_REFRESH_SECONDS", "0"),
        ("LOGIN_RATE_LIMIT_PER_MINUTE", "1000"),
    ];
    all.extend_from_slice(vars);
    spawn_app_with(&all).await
}

async fn login(app: &TestApp, token: &str) -> (u16, Value) {
    status_json(
        app.call(
            Method::POST,
            "/v1/auth/oidc-login",
            None,
            Some(json!({ "id_token": token })),
        )
        .await,
    )
    .await
}

#[track_caller]
fn assert_refused(got: (u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert!(got.1["detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(got.1.get("api_key").is_none());
}

async fn user_count(app: &TestApp) -> i64 {
    let db = app.db.connect().await;
    db.query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_valid_token_gives_a_key_that_works_on_me() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, json!({}), &[]).await;
    let (status, body) = login(
        &app,
        &issuer.token().subject("s-42").username("alice").sign(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "alice");
    assert_eq!(body["auth_method"], "oidc");
    assert_eq!(body["oidc_issuer"], issuer.url());
    assert_eq!(body["oidc_subject"], "s-42");
    assert_eq!(body["aws_arn"], Value::Null);
    assert_eq!(body["role"], "user");
    let key = body["api_key"].as_str().unwrap();
    let (status, me) = status_json(app.get("/v1/me", key).await).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "alice");
    assert_eq!(me["current_key"]["auth_method"], "oidc");
    assert_eq!(me["current_key"]["auth_issuer"], issuer.url());
    let db = app.db.connect().await;
    let user = users::get_by_name(&db, "alice").await.unwrap();
    assert_eq!(user.oidc_issuer.as_deref(), Some(issuer.url()));
    assert_eq!(user.oidc_subject.as_deref(), Some("s-42"));
    let row = db
        .query_one(
            "SELECT auth_method, auth_issuer FROM api_keys WHERE user_id = $1",
            &[&user.user_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "oidc");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some(issuer.url())
    );
}

#[tokio::test]
async fn es256_tokens_are_accepted_too() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, json!({}), &[]).await;
    let (status, body) = login(&app, &issuer.token().es256().sign()).await;
    assert_eq!(status, 200, "{body}");
    // …unless the operator allows only RS256.
    let strict = app_for(&issuer, json!({"algorithms": ["RS256"]}), &[]).await;
    assert_refused(
        login(&strict, &issuer.token().es256().sign()).await,
        401,
        "invalid_token",
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401_and_nothing_is_written() {
    let issuer = oidc_issuer().await;
    let other = oidc_issuer().await;
    let app = app_for(&issuer, json!({}), &[]).await;
    let cases = [
        (
            issuer.token().audience("someone-else").sign(),
            "invalid_audience",
        ),
        (issuer.token().expires_in(-120).sign(), "token_expired"),
        (
            issuer.token().not_before_in(600).sign(),
            "token_not_yet_valid",
        ),
        (
            issuer.token().claim("iss", other.url()).sign(),
            "oidc_issuer_untrusted",
        ),
        (issuer.token().kid("no-such-key").sign(), "oidc_unknown_key"),
        (issuer.token().unsigned(), "invalid_token"),
        (issuer.token().hs256_with_public_key(), "invalid_token"),
        (tamper(&issuer.token().sign()), "invalid_token"),
        // Signed by another issuer's key under this issuer's name and key id.
        (
            other
                .token()
                .claim("iss", issuer.url())
                .kid(&issuer.rsa_kid())
                .es256()
                .sign(),
            "invalid_token",
        ),
        (issuer.token().without("exp").sign(), "invalid_token"),
        (issuer.token().without("sub").sign(), "invalid_token"),
        ("not.a.jwt".to_owned(), "invalid_token"),
    ];
    for (token, code) in cases {
        assert_refused(login(&app, &token).await, 401, code);
    }
    assert_eq!(user_count(&app).await, 0);
    let db = app.db.connect().await;
    let keys: i64 = db
        .query_one("SELECT count(*) FROM api_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, 0);
    // The refusals are audited as OIDC logins.
    let denied: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'login' AND outcome = 'denied' AND auth_method = 'oidc'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(denied >= 12, "{denied}");
    // With the issuer the token claimed, when that one is trusted.
    let expired_rows: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_log WHERE outcome = 'denied' AND auth_issuer = $1 \
             AND details->>'reason' = 'token_expired'",
            &[&issuer.url()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(expired_rows, 1);
}

#[tokio::test]
async fn a_token_for_a_second_audience_is_accepted_when_configured() {
    let issuer = oidc_issuer().await;
    let app = app_for(
        &issuer,
        json!({"audiences": ["gpudev-cli", "gpudev-web"]}),
        &[],
    )
    .await;
    let (status, body) = login(&app, &issuer.token().audience("gpudev-web").sign()).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = login(
        &app,
        &issuer
            .token()
            .claim("aud", json!(["x", "gpudev-web"]))
            .sign(),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_malformed_body_is_422() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, json!({}), &[]).await;
    for body in [
        json!({}),
        json!({"id_token": ""}),
        json!({"id_token": 7}),
        json!({"id_token": "a b"}),
        json!({"id_token": "x".repeat(20_000)}),
    ] {
        let (status, err) = status_json(
            app.call(Method::POST, "/v1/auth/oidc-login", None, Some(body))
                .await,
        )
        .await;
        assert_eq!(status, 422, "{err}");
        assert!(err["detail"].is_string());
    }
}

#[tokio::test]
async fn missing_required_groups_or_claims_are_403_and_admin_groups_make_admins() {
    let issuer = oidc_issuer().await;
    let app = app_for(
        &issuer,
        json!({"required_groups": ["gpu-users"], "admin_groups": ["gpu-admins"], "required_claims": {"org": "acme"}}),
        &[],
    )
    .await;
    assert_refused(
        login(
            &app,
            &issuer
                .token()
                .claim("org", "acme")
                .groups(&["other"])
                .sign(),
        )
        .await,
        403,
        "oidc_group_missing",
    );
    assert_refused(
        login(&app, &issuer.token().groups(&["gpu-users"]).sign()).await,
        403,
        "oidc_claim_missing",
    );
    assert_eq!(user_count(&app).await, 0);
    let (status, body) = login(
        &app,
        &issuer
            .token()
            .claim("org", "acme")
            .groups(&["gpu-users"])
            .sign(),
    )
    .await;
    assert_eq!(
        (status, body["role"].as_str()),
        (200, Some("user")),
        "{body}"
    );
    let (status, body) = login(
        &app,
        &issuer
            .token()
            .subject("ops-1")
            .username("olga")
            .claim("org", "acme")
            .groups(&["gpu-admins"])
            .sign(),
    )
    .await;
    assert_eq!(
        (status, body["role"].as_str()),
        (200, Some("admin")),
        "{body}"
    );
}

#[tokio::test]
async fn a_disabled_user_gets_403_and_stays_disabled() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, json!({}), &[]).await;
    let (status, _) = login(&app, &issuer.token().sign()).await;
    assert_eq!(status, 200);
    let db = app.db.connect().await;
    users::set_active(&db, "alice", false).await.unwrap();
    assert_refused(
        login(&app, &issuer.token().sign()).await,
        403,
        "user_disabled",
    );
    let user = users::get_by_name(&db, "alice").await.unwrap();
    assert!(!user.is_active);
    let live: i64 = db
        .query_one(
            "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0);
}

#[tokio::test]
async fn an_unreachable_issuer_is_503() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, json!({}), &[]).await;
    issuer.set_down(true);
    assert_refused(
        login(&app, &issuer.token().sign()).await,
        503,
        "service_unavailable",
    );
    issuer.set_down(false);
    let (status, _) = login(&app, &issuer.token().sign()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_and_the_old_one_stops_working() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, json!({}), &[]).await;
    let old = issuer.token().sign();
    assert_eq!(login(&app, &old).await.0, 200);
    let fetches = issuer.jwks_fetches();
    let new_kid = issuer.rotate(false);
    assert_ne!(new_kid, "rsa-1");
    let (status, body) = login(&app, &issuer.token().sign()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        issuer.jwks_fetches(),
        fetches + 1,
        "the new kid made one refresh"
    );
    assert_refused(login(&app, &old).await, 401, "oidc_unknown_key");
}

#[tokio::test]
async fn unknown_key_ids_cannot_hammer_the_issuer() {
    let issuer = oidc_issuer().await;
    let app = app_for(
        &issuer,
        json!({}),
        &[("OIDC_JWKS_MIN_REFRESH_SECONDS", "60")],
    )
    .await;
    assert_eq!(login(&app, &issuer.token().sign()).await.0, 200);
    let fetches = issuer.jwks_fetches();
    for n in 0..20 {
        let token = issuer.token().kid(&format!("bogus-{n}")).sign();
        assert_refused(login(&app, &token).await, 401, "oidc_unknown_key");
    }
    assert!(
        issuer.jwks_fetches() <= fetches + 1,
        "{} fetches",
        issuer.jwks_fetches() - fetches
    );
    // Known keys keep working from the cache meanwhile.
    assert_eq!(login(&app, &issuer.token().sign()).await.0, 200);
}

#[tokio::test]
async fn the_same_subject_is_the_same_user_even_when_its_name_changes() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, json!({}), &[]).await;
    let (_, first) = login(
        &app,
        &issuer.token().subject("s-1").username("alice").sign(),
    )
    .await;
    let (_, second) = login(
        &app,
        &issuer.token().subject("s-1").username("alice").sign(),
    )
    .await;
    let (_, renamed) = login(
        &app,
        &issuer.token().subject("s-1").username("alice2").sign(),
    )
    .await;
    assert_eq!(first["user_id"], second["user_id"]);
    assert_eq!(first["user_id"], renamed["user_id"]);
    assert_eq!(renamed["username"], "alice");
    assert_ne!(first["api_key"], second["api_key"]);
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn a_colliding_username_from_another_identity_is_409_and_never_merged() {
    let a = oidc_issuer().await;
    let b = oidc_issuer().await;
    let json = issuers_json(&[(&a, json!({})), (&b, json!({}))]);
    let app = spawn_app_with(&[
        ("OIDC_ISSUERS_JSON", json.as_str()),
        ("OIDC_JWKS_MIN_REFRESH_SECONDS", "0"),
    ])
    .await;
    let (status, first) = login(&app, &a.token().subject("1").username("alice").sign()).await;
    assert_eq!(status, 200, "{first}");
    // Same name, same subject string, another issuer: another person.
    assert_refused(
        login(&app, &b.token().subject("1").username("alice").sign()).await,
        409,
        "username_taken",
    );
    // Same name at the same issuer with another subject: another person too.
    assert_refused(
        login(&app, &a.token().subject("2").username("alice").sign()).await,
        409,
        "username_taken",
    );
    // A user created for an AWS login is not taken over either.
    app.user_with_key("bob", gpudev_store::users::Role::User)
        .await;
    assert_refused(
        login(&app, &a.token().subject("3").username("bob").sign()).await,
        409,
        "username_taken",
    );
    assert_eq!(user_count(&app).await, 2);
    let db = app.db.connect().await;
    let alice = users::get_by_name(&db, "alice").await.unwrap();
    assert_eq!(alice.oidc_issuer.as_deref(), Some(a.url()));
    assert_eq!(alice.oidc_subject.as_deref(), Some("1"));
}

#[tokio::test]
async fn every_request_of_an_oidc_session_is_audited_with_method_and_issuer() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, json!({}), &[]).await;
    let (_, body) = login(&app, &issuer.token().sign()).await;
    let key = body["api_key"].as_str().unwrap();
    let (status, _) = status_json(app.post("/v1/keys/rotate", key, json!({})).await).await;
    assert_eq!(status, 200);
    let db = app.db.connect().await;
    let rows = db
        .query(
            "SELECT action, auth_method, auth_issuer FROM audit_log WHERE outcome = 'success' ORDER BY audit_id",
            &[],
        )
        .await
        .unwrap();
    let seen: Vec<(String, Option<String>, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "login".into(),
                Some("oidc".into()),
                Some(issuer.url().to_owned())
            ),
            (
                "key.rotate".into(),
                Some("oidc".into()),
                Some(issuer.url().to_owned())
            ),
        ]
    );
    // The rotated key keeps the session's method and issuer.
    let row = db
        .query_one(
            "SELECT auth_method, auth_issuer FROM api_keys ORDER BY key_id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "oidc");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some(issuer.url())
    );
}

#[tokio::test]
async fn the_trusted_issuers_are_listed_publicly_and_logins_are_off_without_any() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, json!({}), &[]).await;
    let (status, body) =
        status_json(app.call(Method::GET, "/v1/auth/oidc", None, None).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"issuers": [{"issuer": issuer.url(), "client_id": "gpudev-cli"}]})
    );

    let off = spawn_app_with(&[]).await;
    let (_, body) = status_json(off.call(Method::GET, "/v1/auth/oidc", None, None).await).await;
    assert_eq!(body, json!({"issuers": []}));
    assert_refused(login(&off, &issuer.token().sign()).await, 404, "not_found");
}

#[tokio::test]
async fn oidc_logins_share_the_per_address_login_limit() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, json!({}), &[("LOGIN_RATE_LIMIT_PER_MINUTE", "2")]).await;
    let token = issuer.token().sign();
    assert_eq!(login(&app, &token).await.0, 200);
    assert_eq!(login(&app, &token).await.0, 200);
    assert_refused(login(&app, &token).await, 429, "rate_limited");
}
