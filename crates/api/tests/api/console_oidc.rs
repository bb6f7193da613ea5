//! Signing in to the console with OpenID Connect (the authorization code grant with PKCE) over
//! real HTTP, against the test kit's issuer on loopback: the browser's part is played by a
//! client that follows no redirects and carries its cookies by hand.

use gpudev_store::users;
use gpudev_testkit::oidc::{OidcIssuer, WEB_CLIENT_ID, oidc_issuer};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::console::browser;
use crate::helpers::{TestApp, count, spawn_app_with};

/// An app whose console signs in with `issuer` (as client `gpudev-web`, named "Test SSO").
pub(crate) async fn app_for(issuer: &OidcIssuer, vars: &[(&str, &str)]) -> TestApp {
    let issuers = json!([{
        "issuer": issuer.url(),
        "client_id": issuer.client_id(),
        "console_client_id": WEB_CLIENT_ID,
        "display_name": "Test SSO",
        "admin_groups": ["gpu-admins"],
    }])
    .to_string();
    let mut all = vec![
        ("OIDC_ISSUERS_JSON", issuers.as_str()),
        ("OIDC_TIMEOUT_SECONDS", "2"),
        ("OIDC_JWKS_MIN_REFRESH_SECONDS", "0"),
        ("LOGIN_RATE_LIMIT_PER_MINUTE", "1000"),
    ];
    all.extend_from_slice(vars);
    spawn_app_with(&all).await
}

/// The `name=value` of the cookie `name` a response sets, and its whole header.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<(String, String)> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|h| h.starts_with(&format!("{name}=")))
        .map(|h| (h.split(';').next().unwrap().to_owned(), h.to_owned()))
}

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// A sign-in started and taken through the provider, up to the browser's return.
struct Started {
    /// The provider's redirect back to the console (with `code` and `state`).
    callback: String,
    /// The flow cookie's `name=value`.
    cookie: String,
}

/// Starts a sign-in with provider 0 and lets the provider sign the browser in.
async fn start(app: &TestApp) -> Started {
    let res = browser()
        .get(format!("{}/ui/signin/oidc/0", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        res.text().await
    );
    let (cookie, header) = set_cookie(&res, "gpudev_oidc").expect("the flow cookie");
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Lax"),
        "{header}"
    );
    assert!(header.contains("Path=/ui/signin/oidc"), "{header}");
    let to_provider = location(&res);
    let at_provider = browser().get(&to_provider).send().await.unwrap();
    assert_eq!(at_provider.status(), StatusCode::FOUND, "{to_provider}");
    let callback = location(&at_provider);
    assert!(
        callback.starts_with(&format!("{}/ui/signin/oidc/callback?", app.base)),
        "{callback}"
    );
    Started { callback, cookie }
}

/// Follows the provider's redirect back with `cookie`.
async fn finish(callback: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = browser().get(callback);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

fn param(url: &str, name: &str) -> String {
    let query = url.split_once('?').unwrap().1;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    pairs.into_iter().find(|(k, _)| k == name).unwrap().1
}

/// `callback` with its `name` parameter replaced by `value`.
fn with_param(callback: &str, name: &str, value: &str) -> String {
    let (base, query) = callback.split_once('?').unwrap();
    let mut pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    for (k, v) in &mut pairs {
        if k == name {
            *v = value.to_owned();
        }
    }
    format!("{base}?{}", serde_urlencoded::to_string(pairs).unwrap())
}

/// `/ui/` without a session: 401 and the ways to sign in.
async fn signed_out_page(app: &TestApp) -> String {
    let res = browser()
        .get(format!("{}/ui/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    res.text().await.unwrap()
}

/// Asserts that `res` answers `status` and starts no session.
#[track_caller]
fn refused(res: reqwest::Response, status: StatusCode) -> reqwest::Response {
    assert_eq!(res.status(), status);
    assert!(set_cookie(&res, "gpudev_session").is_none());
    res
}

async fn sessions(app: &TestApp) -> i64 {
    count(app, "SELECT count(*) FROM console_sessions").await
}

async fn page(app: &TestApp, session: &str) -> (StatusCode, String) {
    let res = browser()
        .get(format!("{}/ui/", app.base))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    (res.status(), res.text().await.unwrap())
}

/// The console sign-ins audited with `outcome`, as `(actor, reason or method)`.
async fn signins(app: &TestApp, outcome: &str) -> Vec<(String, Value)> {
    let db = app.db.connect().await;
    db.query(
        "SELECT actor, details FROM audit_log \
         WHERE action = 'console.signin' AND outcome = $1 ORDER BY audit_id",
        &[&outcome],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test]
async fn the_code_flow_with_pkce_ends_in_a_session_and_is_audited() {
    let issuer = oidc_issuer().await;
    issuer
        .sign_in_as(json!({"sub": "s-9", "preferred_username": "olga", "groups": ["gpu-admins"]}));
    let app = app_for(&issuer, &[]).await;

    let offer = signed_out_page(&app).await;
    assert!(
        offer.contains("href=\"/ui/signin/oidc/0\"") && offer.contains("Sign in with Test SSO"),
        "{offer}"
    );

    let started = start(&app).await;
    let asked = issuer.authorizations();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].client_id, WEB_CLIENT_ID);
    assert_eq!(asked[0].code_challenge_method, "S256");
    assert_eq!(asked[0].scope, "openid profile email");
    assert_eq!(
        asked[0].redirect_uri,
        format!("{}/ui/signin/oidc/callback", app.base)
    );
    let stored = count(&app, "SELECT count(*) FROM console_oidc_signins").await;
    assert_eq!(stored, 1);
    let raw_state = param(&started.callback, "state");
    let kept_in_clear = count(
        &app,
        &format!("SELECT count(*) FROM console_oidc_signins WHERE state_hash = '{raw_state}'"),
    )
    .await;
    assert_eq!(kept_in_clear, 0, "the state is stored only as its hash");

    let res = finish(&started.callback, Some(&started.cookie)).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        res.text().await
    );
    assert_eq!(location(&res), "/ui/");
    let (session, header) = set_cookie(&res, "gpudev_session").expect("a session");
    assert!(
        header.contains("HttpOnly") && header.contains("Path=/ui"),
        "{header}"
    );
    let (_, flow_gone) = set_cookie(&res, "gpudev_oidc").expect("the flow cookie is removed");
    assert!(flow_gone.contains("Max-Age=0"), "{flow_gone}");

    let (status, html) = page(&app, &session).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("olga"), "{html}");
    let db = app.db.connect().await;
    let olga = users::find_by_name(&db, "olga").await.unwrap().unwrap();
    assert_eq!(olga.oidc_subject.as_deref(), Some("s-9"));
    assert_eq!(
        olga.role,
        users::Role::Admin,
        "admin groups promote as the API's login does"
    );
    let keys = count(&app, "SELECT count(*) FROM api_keys").await;
    assert_eq!(keys, 0, "a console sign-in makes no API key");

    let audited = signins(&app, "success").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].0, "olga");
    assert_eq!(audited[0].1["method"], "oidc");
    assert_eq!(audited[0].1["oidc_subject"], "s-9");
    let method: String = db
        .query_one(
            "SELECT auth_method || ' ' || auth_issuer FROM audit_log WHERE action = 'console.signin'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(method, format!("oidc {}", issuer.url()));
}

#[tokio::test]
async fn a_replayed_wrong_or_foreign_state_signs_no_one_in() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, &[]).await;
    let started = start(&app).await;

    let forged = with_param(
        &started.callback,
        "state",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    refused(
        finish(&forged, Some(&started.cookie)).await,
        StatusCode::BAD_REQUEST,
    );

    // The callback URL alone, in a browser that did not start the sign-in (login CSRF).
    let res = finish(&started.callback, None).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let other = start(&app).await;
    let res = finish(&started.callback, Some(&other.cookie)).await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "another browser's verifier"
    );
    assert!(
        issuer.code_exchanges().is_empty(),
        "no code reached the provider"
    );

    let res = finish(&started.callback, Some(&started.cookie)).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "the right browser still can"
    );
    refused(
        finish(&started.callback, Some(&started.cookie)).await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(issuer.code_exchanges().len(), 1);
    assert_eq!(sessions(&app).await, 1);
}

#[tokio::test]
async fn a_replayed_code_or_a_code_of_another_sign_in_is_refused_by_the_provider() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, &[]).await;
    let first = start(&app).await;
    assert_eq!(
        finish(&first.callback, Some(&first.cookie)).await.status(),
        StatusCode::SEE_OTHER
    );

    // The spent code with a fresh sign-in's state: our record is fine, the provider is not.
    let second = start(&app).await;
    let replay = with_param(&second.callback, "code", &param(&first.callback, "code"));
    refused(
        finish(&replay, Some(&second.cookie)).await,
        StatusCode::BAD_REQUEST,
    );

    // A code issued for someone else's sign-in (its challenge), injected into ours: the PKCE
    // verifier we send does not match, and the provider refuses.
    let victims = start(&app).await;
    let attackers = start(&app).await;
    let injected = with_param(
        &attackers.callback,
        "code",
        &param(&victims.callback, "code"),
    );
    refused(
        finish(&injected, Some(&attackers.cookie)).await,
        StatusCode::BAD_REQUEST,
    );

    let answers: Vec<String> = issuer
        .code_exchanges()
        .into_iter()
        .map(|e| e.answer)
        .collect();
    assert_eq!(answers, ["id_token", "invalid_grant", "invalid_grant"]);
    let denied = signins(&app, "denied").await;
    assert_eq!(denied.len(), 2);
    assert!(
        denied
            .iter()
            .all(|(_, d)| d["reason"] == "code_refused: invalid_grant"),
        "{denied:?}"
    );
    assert_eq!(sessions(&app).await, 1);
}

#[tokio::test]
async fn an_id_token_with_another_nonce_is_refused() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, &[]).await;
    issuer.set_code_nonce(Some("not-the-nonce-we-sent"));
    let started = start(&app).await;
    refused(
        finish(&started.callback, Some(&started.cookie)).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(
        issuer.code_exchanges()[0].answer,
        "id_token",
        "the token itself was fine"
    );
    let denied = signins(&app, "denied").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].1["reason"], "nonce_mismatch");
    assert_eq!(sessions(&app).await, 0);
    assert_eq!(
        count(&app, "SELECT count(*) FROM users").await,
        0,
        "no user was made"
    );
}

#[tokio::test]
async fn a_disabled_user_is_refused_and_an_error_from_the_provider_is_not_echoed() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, &[]).await;
    let started = start(&app).await;
    assert_eq!(
        finish(&started.callback, Some(&started.cookie))
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let db = app.db.connect().await;
    users::set_active(&db, "alice", false).await.unwrap();

    let again = start(&app).await;
    let res = refused(
        finish(&again.callback, Some(&again.cookie)).await,
        StatusCode::FORBIDDEN,
    );
    assert!(res.text().await.unwrap().contains("disabled"));
    let denied = signins(&app, "denied").await;
    assert_eq!(
        denied,
        vec![(
            "alice".to_owned(),
            json!({"method": "oidc", "reason": "user_disabled"})
        )]
    );
    let disabled: bool = db
        .query_one("SELECT is_active FROM users WHERE username = 'alice'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!disabled, "a sign-in never enables anyone");

    let res = finish(
        &format!(
            "{}/ui/signin/oidc/callback?error=access_denied&error_description=%3Cb%3Ehi%3C%2Fb%3E",
            app.base
        ),
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let text = res.text().await.unwrap();
    assert!(
        !text.contains("<b>hi") && !text.contains("&#60;b&#62;hi"),
        "{text}"
    );
}

#[tokio::test]
async fn a_confidential_client_sends_its_secret_and_no_provider_means_no_offer() {
    let issuer = oidc_issuer().await;
    issuer.require_client_secret(WEB_CLIENT_ID, "s3cret/+=");
    let secrets = json!({ issuer.url(): "s3cret/+=" }).to_string();
    let app = app_for(
        &issuer,
        &[("OIDC_CONSOLE_CLIENT_SECRETS_JSON", secrets.as_str())],
    )
    .await;
    let started = start(&app).await;
    let res = finish(&started.callback, Some(&started.cookie)).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        res.text().await
    );
    let exchanges = issuer.code_exchanges();
    assert!(
        exchanges[0].with_secret && exchanges[0].client_id == WEB_CLIENT_ID,
        "{exchanges:?}"
    );

    let plain = crate::helpers::spawn_app().await;
    let html = signed_out_page(&plain).await;
    assert!(
        !html.contains("Sign in with") && html.contains("gpu-dev console"),
        "{html}"
    );
    let res = browser()
        .get(format!("{}/ui/signin/oidc/0", plain.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_redirect_uri_comes_from_the_public_url_and_the_flow_cookie_is_secure_behind_tls() {
    let issuer = oidc_issuer().await;
    let app = app_for(
        &issuer,
        &[("CONSOLE_PUBLIC_URL", "https://gpudev.example.com")],
    )
    .await;
    let res = browser()
        .get(format!("{}/ui/signin/oidc/0", app.base))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, cookie) = set_cookie(&res, "gpudev_oidc").unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
    let to_provider = location(&res);
    assert!(
        to_provider.starts_with(&format!("{}/authorize?", issuer.url())),
        "{to_provider}"
    );
    assert_eq!(
        param(&to_provider, "redirect_uri"),
        "https://gpudev.example.com/ui/signin/oidc/callback"
    );
    assert_eq!(param(&to_provider, "code_challenge_method"), "S256");
    assert_eq!(param(&to_provider, "client_id"), WEB_CLIENT_ID);
    assert_ne!(param(&to_provider, "state"), param(&to_provider, "nonce"));
}

#[tokio::test]
async fn a_provider_that_is_down_answers_503_and_records_nothing() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, &[]).await;
    issuer.set_down(true);
    let res = browser()
        .get(format!("{}/ui/signin/oidc/0", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(set_cookie(&res, "gpudev_oidc").is_none());
    assert_eq!(
        count(&app, "SELECT count(*) FROM console_oidc_signins").await,
        0
    );

    issuer.set_down(false);
    let started = start(&app).await;
    issuer.set_down(true);
    refused(
        finish(&started.callback, Some(&started.cookie)).await,
        StatusCode::SERVICE_UNAVAILABLE,
    );
    issuer.set_down(false);
    let metrics = app.metrics_text().await;
    assert!(
        !metrics.contains("method=\"console-oidc\",outcome=\"success\""),
        "{metrics}"
    );
    let again = start(&app).await;
    let res = finish(&again.callback, Some(&again.cookie)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("auth_attempts_total{method=\"console-oidc\",outcome=\"success\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_username_held_by_another_identity_is_refused_as_the_api_login_refuses_it() {
    let issuer = oidc_issuer().await;
    let app = app_for(&issuer, &[]).await;
    // An existing user named alice who is not this issuer's user-1.
    app.user_with_key("alice", users::Role::User).await;
    let started = start(&app).await;
    let res = refused(
        finish(&started.callback, Some(&started.cookie)).await,
        StatusCode::CONFLICT,
    );
    assert!(res.text().await.unwrap().contains("another account"));
    let denied = signins(&app, "denied").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].1["reason"], "username_taken");
    let db = app.db.connect().await;
    let alice = users::find_by_name(&db, "alice").await.unwrap().unwrap();
    assert_eq!(alice.oidc_subject, None, "the account was not taken over");
}
