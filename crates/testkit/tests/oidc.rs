//! The test OIDC issuer over real HTTP: its documents, its keys (checked with jsonwebtoken), key
//! rotation, the outage switch and the device authorization grant.

use std::time::Duration;

use gpudev_testkit::oidc::{CLIENT_ID, OidcIssuer, WEB_CLIENT_ID, oidc_issuer, tamper};
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

/// Follows the authorization endpoint for `client_id` with the S256 challenge of `verifier`;
/// returns the query of the redirect back.
async fn authorize(issuer: &OidcIssuer, client_id: &str, verifier: &str) -> Vec<(String, String)> {
    use base64::Engine as _;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()),
    );
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .get(format!("{}/authorize", issuer.url()))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("scope", "openid profile"),
            ("state", "st-1"),
            ("nonce", "n-1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /authorize: {e}"));
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    let query = location
        .strip_prefix("http://127.0.0.1:9/cb?")
        .unwrap_or_else(|| panic!("redirected elsewhere: {location}"));
    serde_urlencoded::from_str(query).unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> &'a str {
    q.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

#[tokio::test]
async fn the_code_grant_checks_the_verifier_and_redirect_and_spends_each_code_once() {
    let issuer = oidc_issuer().await;
    issuer.sign_in_as(json!({"sub": "u-7", "preferred_username": "zoe"}));
    let verifier = "v".repeat(43);
    let q = authorize(&issuer, CLIENT_ID, &verifier).await;
    assert_eq!(param(&q, "state"), "st-1");
    let code = param(&q, "code").to_owned();
    let token_url = format!("{}/token", issuer.url());
    let exchange = |code: String, verifier: String, redirect: &'static str| {
        let url = token_url.clone();
        async move {
            post_form(
                &url,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", redirect),
                    ("client_id", CLIENT_ID),
                    ("code_verifier", &verifier),
                ],
            )
            .await
        }
    };
    let (status, body) = exchange(code.clone(), verifier.clone(), "http://127.0.0.1:9/cb").await;
    assert_eq!(status, 200, "{body}");
    let claims = verify(
        &jwks(&issuer).await,
        &issuer,
        body["id_token"].as_str().unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claims["sub"], "u-7");
    assert_eq!(claims["nonce"], "n-1");
    let (status, body) = exchange(code, verifier.clone(), "http://127.0.0.1:9/cb").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "replayed"
    );

    let code = param(&authorize(&issuer, CLIENT_ID, &verifier).await, "code").to_owned();
    let (status, body) = exchange(code, "w".repeat(43), "http://127.0.0.1:9/cb").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "wrong verifier"
    );
    let code = param(&authorize(&issuer, CLIENT_ID, &verifier).await, "code").to_owned();
    let (status, _) = exchange(code, verifier.clone(), "http://127.0.0.1:9/other").await;
    assert_eq!(status, 400, "another redirect URI");
    let answers: Vec<String> = issuer
        .code_exchanges()
        .into_iter()
        .map(|e| e.answer)
        .collect();
    assert_eq!(
        answers,
        [
            "id_token",
            "invalid_grant",
            "invalid_grant",
            "invalid_grant"
        ]
    );
}

#[tokio::test]
async fn a_confidential_client_must_send_its_secret() {
    use base64::Engine as _;
    let issuer = oidc_issuer().await;
    issuer.require_client_secret(WEB_CLIENT_ID, "s3cret");
    let verifier = "x".repeat(43);
    let form = |code: &str| {
        vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".to_owned(), code.to_owned()),
            (
                "redirect_uri".to_owned(),
                "http://127.0.0.1:9/cb".to_owned(),
            ),
            ("code_verifier".to_owned(), verifier.clone()),
        ]
    };
    let client = reqwest::Client::new();
    let url = format!("{}/token", issuer.url());
    let code = param(&authorize(&issuer, WEB_CLIENT_ID, &verifier).await, "code").to_owned();
    let mut without = form(&code);
    without.push(("client_id".into(), WEB_CLIENT_ID.into()));
    let resp = client
        .post(&url)
        .form(&without)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 401);
    let code = param(&authorize(&issuer, WEB_CLIENT_ID, &verifier).await, "code").to_owned();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{WEB_CLIENT_ID}:s3cret"));
    let resp = client
        .post(&url)
        .header("authorization", format!("Basic {basic}"))
        .form(&form(&code))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    let exchanges = issuer.code_exchanges();
    assert!(
        !exchanges[0].with_secret && exchanges[1].with_secret,
        "{exchanges:?}"
    );
}
