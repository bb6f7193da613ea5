//! `gpu-dev login --oidc` (the device authorization flow) and `--id-token-file`, against the
//! test kit's OIDC issuer and the real API.

use std::time::Duration;

use gpudev_testkit::oidc::{OidcIssuer, oidc_issuer};
use serde_json::json;

use crate::helpers::{Options, World, write};

async fn world_for(issuer: &OidcIssuer) -> World {
    let issuers = json!([{"issuer": issuer.url(), "client_id": issuer.client_id()}]).to_string();
    World::with(Options {
        record: true,
        api_vars: vec![
            ("OIDC_ISSUERS_JSON", issuers),
            ("OIDC_JWKS_MIN_REFRESH_SECONDS", "0".into()),
        ],
        ..Options::default()
    })
    .await
}

async fn expire_stored_key(w: &World) {
    let key_id = w.credentials()["key_id"].as_i64().unwrap();
    w.sql()
        .await
        .execute(
            "UPDATE api_keys SET created_at = now() - interval '3 hours', \
             expires_at = now() - interval '1 minute' WHERE key_id = $1",
            &[&key_id],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_device_flow_logs_in_with_the_issuer_the_api_lists() {
    let issuer = oidc_issuer().await;
    let w = world_for(&issuer).await;
    issuer.approve_next_device_login(json!({"sub": "dev-1", "preferred_username": "dana"}));

    let run = w.run(&["login", "--oidc", "-o", "json"]).await.ok();

    let out = run.json();
    assert_eq!(out["username"], "dana");
    assert_eq!(out["method"], "oidc");
    assert_eq!(out["oidc_issuer"], issuer.url());
    assert!(out.get("api_key").is_none(), "the key is never printed");
    assert!(run.stderr.contains("WDJB-0001"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("{}/activate", issuer.url())),
        "{}",
        run.stderr
    );
    let stored = w.credentials();
    assert_eq!(stored["method"], "oidc");
    assert_eq!(stored["username"], "dana");
    // The first poll waited the issuer's interval and met `authorization_pending`; the next,
    // one interval later, got the token.
    let polls = issuer.token_polls();
    let answers: Vec<&str> = polls.iter().map(|p| p.answer.as_str()).collect();
    assert_eq!(answers, ["authorization_pending", "id_token"]);
    assert!(polls[1].at.duration_since(polls[0].at) >= Duration::from_millis(950));
    // The API got the ID token, never the device code (that stays between CLI and issuer).
    let recorder = w.recorder.as_ref().unwrap();
    assert_eq!(recorder.count("POST /v1/auth/oidc-login"), 1);
    assert!(!recorder.text().contains("device-1-"));
    // The stored key works.
    recorder.clear();
    let run = w.run(&["list", "-o", "json"]).await.ok();
    assert_eq!(run.json()["jobs"], json!([]));
    assert_eq!(recorder.count("POST /v1/auth/"), 0);
}

#[tokio::test]
async fn the_configured_issuer_and_client_id_are_used_without_asking_the_api() {
    let issuer = oidc_issuer().await;
    let w = world_for(&issuer).await;
    w.run(&["config", "set", "oidc_issuer", issuer.url()])
        .await
        .ok();
    w.run(&["config", "set", "oidc_client_id", issuer.client_id()])
        .await
        .ok();
    issuer.approve_next_device_login(json!({"sub": "dev-2", "preferred_username": "erin"}));
    let recorder = w.recorder.as_ref().unwrap();
    recorder.clear();

    let run = w.run(&["login", "--oidc"]).await.ok();

    assert!(run.stdout.contains("erin"), "{run:#?}");
    assert_eq!(recorder.count("GET /v1/auth/oidc "), 0);
    assert_eq!(recorder.count("POST /v1/auth/oidc-login"), 1);
    // A bad issuer setting is refused when it is set.
    let bad = w
        .run(&["config", "set", "oidc_issuer", "http://idp.example.com"])
        .await;
    assert_eq!(bad.code, 2, "{bad:#?}");
}

#[tokio::test]
async fn slow_down_adds_five_seconds_to_the_interval() {
    let issuer = oidc_issuer().await;
    let w = world_for(&issuer).await;
    issuer.slow_down_next_polls(1);
    issuer.approve_next_device_login(json!({"sub": "dev-3", "preferred_username": "finn"}));

    w.run(&["login", "--oidc"]).await.ok();

    let polls = issuer.token_polls();
    assert_eq!(polls[0].answer, "slow_down");
    assert!(
        polls[1].at.duration_since(polls[0].at) >= Duration::from_millis(5950),
        "polled again after {:?}",
        polls[1].at.duration_since(polls[0].at)
    );
    assert_eq!(polls.last().unwrap().answer, "id_token");
}

#[tokio::test]
async fn a_denied_login_exits_3_and_stores_nothing() {
    let issuer = oidc_issuer().await;
    let w = world_for(&issuer).await;
    issuer.deny_next_device_login();

    let run = w.run(&["login", "--oidc"]).await;

    assert_eq!(run.code, 3, "{run:#?}");
    assert!(run.stderr.contains("denied"), "{}", run.stderr);
    assert!(!w.credentials_path().exists());
    assert_eq!(issuer.token_polls().last().unwrap().answer, "access_denied");
}

#[tokio::test]
async fn an_expired_device_code_exits_3() {
    let issuer = oidc_issuer().await;
    let w = world_for(&issuer).await;
    issuer.device_settings(Duration::from_secs(1), Duration::from_secs(3));

    let run = w.run(&["login", "--oidc"]).await;

    assert_eq!(run.code, 3, "{run:#?}");
    assert!(run.stderr.contains("expired"), "{}", run.stderr);
    assert!(!w.credentials_path().exists());
}

#[tokio::test]
async fn an_id_token_file_logs_in_and_renews_an_expired_key() {
    let issuer = oidc_issuer().await;
    let w = world_for(&issuer).await;
    let file = w.home().join("id-token");
    write(
        &file,
        &format!(
            "{}\n",
            issuer.token().subject("ci-1").username("ci-bot").sign()
        ),
    );
    let path = file.display().to_string();

    let run = w
        .run(&["login", "--id-token-file", &path, "-o", "json"])
        .await
        .ok();
    assert_eq!(run.json()["username"], "ci-bot");
    let first_key = w.credentials()["api_key"].as_str().unwrap().to_owned();
    assert_eq!(w.credentials()["id_token_file"], path);

    // Automation refreshes the file; an expired key is renewed from it by itself.
    write(
        &file,
        &issuer.token().subject("ci-1").username("ci-bot").sign(),
    );
    expire_stored_key(&w).await;
    let run = w.run(&["list", "-o", "json"]).await.ok();
    assert_eq!(run.json()["jobs"], json!([]));
    assert!(
        run.stderr.starts_with(
            "Your API key has expired; logged in again as ci-bot with your OIDC identity"
        ),
        "{}",
        run.stderr
    );
    assert_ne!(w.credentials()["api_key"].as_str().unwrap(), first_key);

    // A token the API refuses is an authentication error (exit 3).
    write(&file, &issuer.token().expires_in(-300).sign());
    let run = w.run(&["login", "--id-token-file", &path]).await;
    assert_eq!(run.code, 3, "{run:#?}");
    assert!(run.stderr.contains("expired"), "{}", run.stderr);
    let missing = w
        .run(&["login", "--id-token-file", "/nonexistent/token"])
        .await;
    assert_eq!(missing.code, 2, "{missing:#?}");
}

#[tokio::test]
async fn an_expired_device_flow_key_without_a_terminal_asks_to_log_in_again() {
    let issuer = oidc_issuer().await;
    let w = world_for(&issuer).await;
    issuer.approve_next_device_login(json!({"sub": "dev-4", "preferred_username": "gus"}));
    w.run(&["login", "--oidc"]).await.ok();
    expire_stored_key(&w).await;

    let run = w.run(&["list"]).await;

    assert_eq!(run.code, 3, "{run:#?}");
    assert!(
        run.stderr.contains("gpu-dev login --oidc"),
        "{}",
        run.stderr
    );
    assert_eq!(
        issuer.token_polls().len(),
        2,
        "no second device flow was started"
    );
}

#[tokio::test]
async fn login_oidc_against_an_api_without_issuers_is_a_usage_error() {
    let w = World::new().await;
    let run = w.run(&["login", "--oidc"]).await;
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains("offers no OIDC login"),
        "{}",
        run.stderr
    );
}
