//! The test OIDC issuer over real HTTP: its documents, its keys (checked with jsonwebtoken), key
//! rotation, the outage switch and the device authorization grant.

use std::time::Duration;

use gpudev_testkit::oidc::{CLIENT_ID, OidcIssuer, oidc_issuer, tamper};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Map, Value, json};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn get(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post_form(url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .form(form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn jwks(issuer: &OidcIssuer) -> JwkSet {
    let (_, doc) = get(&format!(
        "{}/.well-known/openid-configuration",
        issuer.url()
    ))
    .await;
    let (status, set) = get(doc["jwks_uri"].as_str().unwrap_or_default()).await;
    assert_eq!(status, 200);
    serde_json::from_value(set).unwrap_or_else(|e| panic!("JWKS: {e}"))
}

/// Verifies `token` the way a relying party does, with the key its header names.
fn verify(set: &JwkSet, issuer: &OidcIssuer, token: &str) -> Result<Map<String, Value>, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("unknown kid")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer.url()]);
    validation.set_audience(&[CLIENT_ID]);
    jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn discovery_names_the_issuer_and_its_endpoints() {
    let issuer = oidc_issuer().await;
    let (status, doc) = get(&format!(
        "{}/.well-known/openid-configuration",
        issuer.url()
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(doc["issuer"], issuer.url());
    for field in [
        "jwks_uri",
        "token_endpoint",
        "device_authorization_endpoint",
    ] {
        assert!(
            doc[field]
                .as_str()
                .is_some_and(|u| u.starts_with(issuer.url())),
            "{field}"
        );
    }
    assert!(issuer.addr().ip().is_loopback());
    assert_eq!(issuer.discovery_fetches(), 1);
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_with_the_published_keys_and_forgeries_do_not() {
    let issuer = oidc_issuer().await;
    let set = jwks(&issuer).await;
    let kinds: Vec<String> = set
        .keys
        .iter()
        .map(|k| format!("{:?}", k.algorithm))
        .collect();
    assert_eq!(set.keys.len(), 2, "{kinds:?}");
    let claims = verify(&set, &issuer, &issuer.token().subject("s-1").sign()).unwrap();
    assert_eq!(claims["sub"], "s-1");
    assert_eq!(claims["aud"], CLIENT_ID);
    verify(&set, &issuer, &issuer.token().es256().sign()).unwrap();
    assert!(verify(&set, &issuer, &tamper(&issuer.token().sign())).is_err());
    assert!(verify(&set, &issuer, &issuer.token().unsigned()).is_err());
    assert!(verify(&set, &issuer, &issuer.token().hs256_with_public_key()).is_err());
    assert!(verify(&set, &issuer, &issuer.token().expires_in(-600).sign()).is_err());
    assert_eq!(issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn rotation_replaces_or_adds_the_signing_key() {
    let issuer = oidc_issuer().await;
    let old = issuer.token().sign();
    let kept = issuer.rotate(true);
    let set = jwks(&issuer).await;
    assert!(set.find(&kept).is_some() && set.find("rsa-1").is_some());
    verify(&set, &issuer, &old).unwrap();
    let withdrawn = issuer.rotate(false);
    let set = jwks(&issuer).await;
    assert!(set.find(&withdrawn).is_some());
    assert!(set.find(&kept).is_none(), "the previous key was withdrawn");
    assert!(
        set.find("rsa-1").is_some(),
        "keys retired earlier stay published"
    );
    let new = issuer.token().sign();
    assert_eq!(
        jsonwebtoken::decode_header(&new).unwrap().kid.as_deref(),
        Some(withdrawn.as_str())
    );
    verify(&set, &issuer, &new).unwrap();
}

#[tokio::test]
async fn an_issuer_that_is_down_answers_503() {
    let issuer = oidc_issuer().await;
    issuer.set_down(true);
    let (status, _) = get(&format!("{}/jwks", issuer.url())).await;
    assert_eq!(status, 503);
    issuer.set_down(false);
    assert_eq!(get(&format!("{}/jwks", issuer.url())).await.0, 200);
}

#[tokio::test]
async fn the_device_grant_answers_pending_slow_down_then_the_token_once() {
    let issuer = oidc_issuer().await;
    issuer.device_settings(Duration::from_secs(1), Duration::from_secs(30));
    let (status, auth) = post_form(
        &format!("{}/device/authorize", issuer.url()),
        &[("client_id", CLIENT_ID)],
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    let device_code = auth["device_code"].as_str().unwrap().to_owned();
    let user_code = auth["user_code"].as_str().unwrap().to_owned();
    assert_eq!(auth["interval"], 1);
    assert_eq!(issuer.pending_user_codes(), vec![user_code.clone()]);
    let token_url = format!("{}/token", issuer.url());
    let poll = [
        ("grant_type", DEVICE_GRANT),
        ("device_code", &device_code),
        ("client_id", CLIENT_ID),
    ];

    assert_eq!(
        post_form(&token_url, &poll).await.1,
        json!({"error": "authorization_pending"})
    );
    // Polling again at once is too fast.
    assert_eq!(
        post_form(&token_url, &poll).await.1,
        json!({"error": "slow_down"})
    );
    assert!(issuer.approve(
        &user_code,
        json!({"sub": "dev-9", "preferred_username": "ivy"})
    ));
    tokio::time::sleep(Duration::from_millis(6100)).await;
    let (status, tokens) = post_form(&token_url, &poll).await;
    assert_eq!(status, 200, "{tokens}");
    let set = jwks(&issuer).await;
    let claims = verify(&set, &issuer, tokens["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(
        (
            claims["sub"].as_str(),
            claims["preferred_username"].as_str()
        ),
        (Some("dev-9"), Some("ivy"))
    );
    // A code is redeemed once.
    assert_eq!(
        post_form(&token_url, &poll).await.1,
        json!({"error": "invalid_grant"})
    );
    let answers: Vec<String> = issuer.token_polls().into_iter().map(|p| p.answer).collect();
    assert_eq!(
        answers,
        [
            "authorization_pending",
            "slow_down",
            "id_token",
            "invalid_grant"
        ]
    );
}

#[tokio::test]
async fn denied_unknown_and_foreign_codes_are_refused() {
    let issuer = oidc_issuer().await;
    let authorize = format!("{}/device/authorize", issuer.url());
    let (status, _) = post_form(&authorize, &[("client_id", "someone-else")]).await;
    assert_eq!(status, 400);
    let (_, auth) = post_form(&authorize, &[("client_id", CLIENT_ID)]).await;
    let device_code = auth["device_code"].as_str().unwrap();
    assert!(issuer.deny(auth["user_code"].as_str().unwrap()));
    assert!(!issuer.deny("NO-SUCH-CODE"));
    let token_url = format!("{}/token", issuer.url());
    let (status, body) = post_form(
        &token_url,
        &[
            ("grant_type", DEVICE_GRANT),
            ("device_code", device_code),
            ("client_id", CLIENT_ID),
        ],
    )
    .await;
    assert_eq!((status, body), (400, json!({"error": "access_denied"})));
    let (_, body) = post_form(
        &token_url,
        &[
            ("grant_type", DEVICE_GRANT),
            ("device_code", "made-up"),
            ("client_id", CLIENT_ID),
        ],
    )
    .await;
    assert_eq!(body, json!({"error": "invalid_grant"}));
    let (_, body) = post_form(&token_url, &[("grant_type", "password")]).await;
    assert_eq!(body, json!({"error": "unsupported_grant_type"}));
}
