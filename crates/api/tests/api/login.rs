//! `POST /v1/auth/aws-login` and `POST /v1/auth/aws-iam` against a real STS emulator (moto in
//! strict mode).

use std::net::TcpListener;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use gpudev_store::users::{self, Role};
use gpudev_testkit::{Credentials, Moto};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with, status_json};

const ROLE: &str = "SSOCloudDevGpuReservation";
const STS_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn app_for(moto: &Moto, extra: &[(&str, &str)]) -> TestApp {
    let endpoint = moto.endpoint();
    let host = format!("127.0.0.1:{}", moto.port());
    let mut vars = vec![
        ("AWS_ENDPOINT_URL_STS", endpoint.as_str()),
        ("STS_ALLOWED_HOSTS", host.as_str()),
    ];
    vars.extend_from_slice(extra);
    spawn_app_with(&vars).await
}

fn login_body(c: &Credentials) -> Value {
    json!({
        "aws_access_key_id": c.access_key_id,
        "aws_secret_access_key": c.secret_access_key,
        "aws_session_token": c.session_token,
    })
}

async fn aws_login(app: &TestApp, body: Value) -> (u16, Value) {
    status_json(
        app.call(Method::POST, "/v1/auth/aws-login", None, Some(body))
            .await,
    )
    .await
}

async fn aws_iam(app: &TestApp, body: Value) -> (u16, Value) {
    status_json(
        app.call(Method::POST, "/v1/auth/aws-iam", None, Some(body))
            .await,
    )
    .await
}

/// What a client sends to `aws-iam`: a SigV4-signed STS GetCallerIdentity POST for `url`, for
/// the server id the test servers have (the default, `gpudev`).
fn presigned(c: &Credentials, url: &str, time: SystemTime) -> Value {
    let identity = aws_credential_types::Credentials::new(
        &c.access_key_id,
        &c.secret_access_key,
        Some(c.session_token.clone()),
        None,
        "test",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("sts")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let signable = SignableRequest::new(
        "POST",
        url,
        [
            ("content-type", content_type),
            ("x-gpudev-server-id", "gpudev"),
        ]
        .into_iter(),
        SignableBody::Bytes(STS_BODY.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut headers = serde_json::Map::new();
    headers.insert("Content-Type".into(), content_type.into());
    headers.insert("X-Gpudev-Server-Id".into(), "gpudev".into());
    for (name, value) in instructions.headers() {
        headers.insert(name.to_owned(), value.into());
    }
    json!({ "method": "POST", "url": url, "headers": headers, "body": STS_BODY })
}

async fn metric(app: &TestApp, needle: &str) -> bool {
    let text = app.metrics_text().await;
    text.lines().any(|l| l.starts_with(needle))
}

#[tokio::test]
async fn assumed_role_credentials_get_a_key_that_works_on_me() {
    let moto = gpudev_testkit::sts().await;
    let app = app_for(&moto, &[]).await;
    let creds = moto.mint(ROLE, "alice").await;

    let resp = app
        .call(
            Method::POST,
            "/v1/auth/aws-login",
            None,
            Some(login_body(&creds)),
        )
        .await;
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (status, body) = status_json(resp).await;

    assert_eq!(status, 200, "{body}");
    let key = body["api_key"].as_str().unwrap();
    assert_eq!(body["key_prefix"], key[..8]);
    assert_eq!(body["username"], "alice");
    assert_eq!(body["aws_arn"], creds.arn);
    assert_eq!(body["ttl_hours"], 2);
    assert_eq!(body["role"], "user");
    assert!(body["user_id"].as_i64().unwrap() > 0);
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    let (status, me) = status_json(app.get("/v1/me", key).await).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "alice");
    assert_eq!(me["aws_arn"], creds.arn);
    assert_eq!(me["current_key"]["auth_method"], "aws-login");

    let client = app.db.connect().await;
    let audit = client
        .query_one(
            "SELECT actor, auth_method, outcome, details::text FROM audit_log WHERE action = 'login'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(audit.get::<_, String>(0), "alice");
    assert_eq!(audit.get::<_, String>(1), "aws-login");
    assert_eq!(audit.get::<_, String>(2), "success");
    let details: String = audit.get(3);
    assert!(!details.contains(&creds.secret_access_key) && !details.contains(key));
    assert!(
        metric(
            &app,
            "gpudev_api_auth_attempts_total{method=\"aws-login\",outcome=\"success\"} 1"
        )
        .await
    );
    assert!(
        metric(
            &app,
            "gpudev_api_api_keys_issued_total{method=\"aws-login\"} 1"
        )
        .await
    );
}

#[tokio::test]
async fn wrong_roles_iam_users_and_bad_credentials_are_refused() {
    let moto = gpudev_testkit::sts().await;
    let app = app_for(&moto, &[]).await;

    let other_role = moto.mint("SomeOtherRole", "bob").await;
    let (status, body) = aws_login(&app, login_body(&other_role)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["detail"],
        "Access denied. Required role: SSOCloudDevGpuReservation, got: SomeOtherRole"
    );

    let iam_user = moto.iam_user_credentials("carol").await;
    let (status, body) = aws_login(
        &app,
        json!({
            "aws_access_key_id": iam_user.access_key_id,
            "aws_secret_access_key": iam_user.secret_access_key,
        }),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("IAM user carol"));

    let (status, body) = aws_login(
        &app,
        json!({
            "aws_access_key_id": "AKIAGARBAGEGARBAGE00",
            "aws_secret_access_key": "x".repeat(40),
        }),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["detail"], "Invalid AWS credentials");

    let mut wrong_secret = login_body(&moto.mint(ROLE, "dave").await);
    wrong_secret["aws_secret_access_key"] = json!("y".repeat(40));
    let (status, body) = aws_login(&app, wrong_secret).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["detail"], "AWS signature verification failed");

    let client = app.db.connect().await;
    let users: i64 = client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 0, "no refused login creates a user");
    let denied: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'login' AND outcome = 'denied'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(denied, 4);
}

/// STS down is an outage of logins only: holders of an API key keep working, since keyed
/// requests never call STS.
#[tokio::test]
async fn an_unreachable_sts_is_503_for_logins_while_keyed_endpoints_keep_working() {
    let closed = format!("127.0.0.1:{}", closed_port());
    let endpoint = format!("http://{closed}");
    let app = spawn_app_with(&[
        ("AWS_ENDPOINT_URL_STS", endpoint.as_str()),
        ("STS_ALLOWED_HOSTS", closed.as_str()),
        ("STS_TIMEOUT_SECONDS", "2"),
    ])
    .await;

    let (status, body) = aws_login(
        &app,
        json!({
            "aws_access_key_id": "ASIAEXAMPLEEXAMPLE00",
            "aws_secret_access_key": "x".repeat(40),
        }),
    )
    .await;
    assert_eq!(status, 503, "{body}");

    let creds = Credentials {
        access_key_id: "ASIAEXAMPLEEXAMPLE00".into(),
        secret_access_key: "x".repeat(40),
        session_token: "t".repeat(200),
        arn: String::new(),
    };
    let (status, body) = aws_iam(
        &app,
        presigned(&creds, &format!("{endpoint}/"), SystemTime::now()),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        metric(
            &app,
            "gpudev_api_auth_attempts_total{method=\"aws-iam\",outcome=\"error\"} 1"
        )
        .await
    );

    let (_, key) = app.user_with_key("alice", Role::User).await;
    let submitted = app
        .post(
            "/v1/jobs/submit",
            &key,
            json!({"gpu_type": "t4", "gpu_count": 1, "duration_hours": 1.0}),
        )
        .await;
    let (status, body) = status_json(submitted).await;
    assert_eq!(status, 200, "submit works without STS: {body}");
    let id = body["job_id"].as_str().unwrap().to_owned();
    let (status, body) = status_json(app.get("/v1/jobs", &key).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jobs"][0]["job_id"], id.as_str(), "{body}");
    let (status, body) = status_json(app.get("/v1/me", &key).await).await;
    assert_eq!(status, 200, "{body}");
    // And logins are still refused with 503 afterwards (no state was poisoned either way).
    let (status, body) = aws_login(
        &app,
        json!({
            "aws_access_key_id": "ASIAEXAMPLEEXAMPLE00",
            "aws_secret_access_key": "x".repeat(40),
        }),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "service_unavailable", "{body}");
}

#[tokio::test]
async fn fields_outside_their_limits_are_422_naming_the_field_and_logins_are_rate_limited() {
    // Three attempts reach the handler (a body missing a field is refused before it).
    let app = spawn_app_with(&[
        ("LOGIN_RATE_LIMIT_PER_MINUTE", "3"),
        ("LOGIN_ADDRESS_RATE_LIMIT_PER_MINUTE", "3"),
    ])
    .await;
    let secret = "s".repeat(40);

    for (body, field) in [
        (
            json!({"aws_access_key_id": "AKIASHORT", "aws_secret_access_key": secret}),
            "aws_access_key_id",
        ),
        (
            json!({"aws_access_key_id": "A".repeat(16), "aws_secret_access_key": "short"}),
            "aws_secret_access_key",
        ),
        (
            json!({"aws_access_key_id": "A".repeat(16), "aws_secret_access_key": secret,
                   "aws_session_token": "t".repeat(99)}),
            "aws_session_token",
        ),
        (
            json!({"aws_access_key_id": "A".repeat(16)}),
            "aws_secret_access_key",
        ),
    ] {
        let (status, resp) = aws_login(&app, body).await;
        assert_eq!(status, 422, "{resp}");
        assert!(
            resp["detail"].as_str().unwrap().contains(field),
            "{field}: {resp}"
        );
    }

    let resp = app
        .call(
            Method::POST,
            "/v1/auth/aws-login",
            None,
            Some(json!({"aws_access_key_id": "A".repeat(16), "aws_secret_access_key": secret})),
        )
        .await;
    assert!(resp.headers().contains_key("retry-after"));
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test]
async fn a_disabled_user_cannot_log_in_and_stays_disabled() {
    let moto = gpudev_testkit::sts().await;
    let app = app_for(&moto, &[]).await;
    let client = app.db.connect().await;
    let (_, _old_key) = app.user_with_key("erin", Role::User).await;
    users::set_active(&client, "erin", false).await.unwrap();
    let creds = moto.mint(ROLE, "erin").await;

    let (status, body) = aws_login(&app, login_body(&creds)).await;
    let (iam_status, iam_body) = aws_iam(
        &app,
        presigned(&creds, &format!("{}/", moto.endpoint()), SystemTime::now()),
    )
    .await;

    for (status, body) in [(status, body), (iam_status, iam_body)] {
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["detail"], "User account is disabled");
    }
    let erin = users::get_by_name(&client, "erin").await.unwrap();
    assert!(!erin.is_active);
    assert_eq!(
        erin.last_login_at, None,
        "a refused login leaves no trace on the user"
    );
    let live: i64 = client
        .query_one(
            "SELECT count(*) FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL",
            &[&erin.user_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0);
}

#[tokio::test]
async fn the_admin_role_logs_in_as_an_admin() {
    let moto = gpudev_testkit::sts().await;
    let app = app_for(&moto, &[("ADMIN_AWS_ROLE", "GpuDevAdmin")]).await;
    let creds = moto.mint("GpuDevAdmin", "frank").await;

    let (status, body) = aws_login(&app, login_body(&creds)).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "admin");
    let key = body["api_key"].as_str().unwrap();
    let (status, me) = status_json(app.get("/v1/me", key).await).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["role"], "admin");
    let (status, _) = status_json(app.get("/v1/admin/users", key).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_presigned_request_logs_in_without_sending_the_secret() {
    let moto = gpudev_testkit::sts().await;
    let app = app_for(&moto, &[]).await;
    let creds = moto.mint(ROLE, "grace").await;
    let request = presigned(&creds, &format!("{}/", moto.endpoint()), SystemTime::now());
    assert!(!request.to_string().contains(&creds.secret_access_key));

    let resp = app
        .call(Method::POST, "/v1/auth/aws-iam", None, Some(request))
        .await;
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (status, body) = status_json(resp).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "grace");
    assert_eq!(body["aws_arn"], creds.arn);
    let (status, me) =
        status_json(app.get("/v1/me", body["api_key"].as_str().unwrap()).await).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["current_key"]["auth_method"], "aws-iam");
}

#[tokio::test]
async fn a_presigned_request_logs_in_once_and_a_replay_is_401_on_any_replica() {
    let moto = gpudev_testkit::sts().await;
    let app = app_for(&moto, &[]).await;
    let host = format!("127.0.0.1:{}", moto.port());
    let endpoint = moto.endpoint();
    let second = crate::helpers::spawn_app_on(
        gpudev_testkit::TestDb::clone(&app.db),
        &[
            ("AWS_ENDPOINT_URL_STS", endpoint.as_str()),
            ("STS_ALLOWED_HOSTS", host.as_str()),
        ],
    )
    .await;
    let creds = moto.mint(ROLE, "ivan").await;
    let request = presigned(&creds, &format!("{}/", moto.endpoint()), SystemTime::now());

    let (first, body) = aws_iam(&app, request.clone()).await;
    // The same signature in a header spelled differently (which STS would accept) is the same
    // request.
    let mut respelled = request.clone();
    let header = respelled["headers"]["authorization"]
        .as_str()
        .unwrap()
        .replace(", ", ",  ");
    respelled["headers"]["authorization"] = json!(header);
    let (again, replay_here) = aws_iam(&app, respelled).await;
    let (elsewhere, replay_there) = aws_iam(&second, request).await;
    // SigV4 dates have whole seconds: a request signed a moment later is a new one.
    let (fresh, _) = aws_iam(
        &app,
        presigned(
            &creds,
            &format!("{}/", moto.endpoint()),
            SystemTime::now() + Duration::from_secs(2),
        ),
    )
    .await;

    assert_eq!(first, 200, "{body}");
    assert_eq!(
        (again, replay_here["code"].as_str()),
        (401, Some("signature_replayed")),
        "{replay_here}"
    );
    assert_eq!(
        (elsewhere, replay_there["code"].as_str()),
        (401, Some("signature_replayed")),
        "{replay_there}"
    );
    assert_eq!(fresh, 200, "a newly signed request logs in");
    let client = app.db.connect().await;
    let keys: i64 = client
        .query_one(
            "SELECT count(*) FROM api_keys k JOIN users u USING (user_id) WHERE u.username = 'ivan'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, 2, "one key per signed request");
    let refusals: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'login' AND outcome = 'denied' \
             AND details->>'reason' = 'signature_replayed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(refusals, 2);
}

#[tokio::test]
async fn a_presigned_request_for_a_host_not_allowed_is_400_and_nothing_is_sent_there() {
    let moto = gpudev_testkit::sts().await;
    let app = app_for(&moto, &[]).await;
    let creds = moto.mint(ROLE, "heidi").await;
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_url = format!("http://{}/", trap.local_addr().unwrap());

    let (status, body) = aws_iam(&app, presigned(&creds, &trap_url, SystemTime::now())).await;

    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "sts_host_not_allowed");
    let contacted = tokio::time::timeout(Duration::from_millis(300), trap.accept()).await;
    assert!(
        contacted.is_err(),
        "the server connected to a host not allowed"
    );

    let mut with_path = presigned(&creds, &format!("{}/", moto.endpoint()), SystemTime::now());
    with_path["url"] = json!(format!("{}/other?Action=AssumeRole", moto.endpoint()));
    let (status, body) = aws_iam(&app, with_path).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_tampered_or_stale_presigned_request_is_401() {
    let moto = gpudev_testkit::sts().await;
    let app = app_for(&moto, &[]).await;
    let creds = moto.mint(ROLE, "ivan").await;
    let url = format!("{}/", moto.endpoint());

    let mut tampered = presigned(&creds, &url, SystemTime::now());
    let auth = tampered["headers"]["authorization"].as_str().unwrap();
    let flipped = if auth.ends_with('0') { '1' } else { '0' };
    let tampered_auth = format!("{}{flipped}", &auth[..auth.len() - 1]);
    tampered["headers"]["authorization"] = json!(tampered_auth);
    let (status, body) = aws_iam(&app, tampered).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["detail"], "AWS signature verification failed");

    let mut spoofed_host = presigned(&creds, &url, SystemTime::now());
    spoofed_host["headers"]["Host"] = json!("sts.amazonaws.com");
    let (status, body) = aws_iam(&app, spoofed_host).await;
    assert_eq!(
        status, 200,
        "a client Host header is dropped, not forwarded: {body}"
    );

    // moto does not check the age of a signature; the server does, before sending anything.
    let stale = presigned(
        &creds,
        &url,
        SystemTime::now() - Duration::from_secs(20 * 60),
    );
    let (status, body) = aws_iam(&app, stale).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "signature_expired");
    let future = presigned(
        &creds,
        &url,
        SystemTime::now() + Duration::from_secs(10 * 60),
    );
    let (status, body) = aws_iam(&app, future).await;
    assert_eq!(status, 401, "{body}");
}

/// A login attempt with well-formed but unknown credentials (STS refuses them: 401), sent as if
/// through a proxy.
async fn login_via(app: &TestApp, forwarded_for: &str) -> u16 {
    app.http
        .post(format!("{}/v1/auth/aws-login", app.base))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"aws_access_key_id": "AKIA".repeat(4), "aws_secret_access_key": "s".repeat(40)}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_login_limits_count_each_forwarded_client_apart() {
    let moto = gpudev_testkit::sts().await;
    let app = app_for(
        &moto,
        &[
            ("LOGIN_RATE_LIMIT_PER_MINUTE", "2"),
            ("TRUSTED_PROXIES", "127.0.0.0/8"),
        ],
    )
    .await;
    // The client forged the first entry; the proxy (the test, on loopback) appended the second.
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(login_via(&app, "198.51.100.1, 203.0.113.1").await);
    }
    assert_eq!(
        first,
        [401, 401, 429],
        "203.0.113.1 has used its two attempts"
    );
    assert_eq!(
        login_via(&app, "198.51.100.1, 203.0.113.2").await,
        401,
        "another client behind the same proxy has its own limit"
    );
    let client = app.db.connect().await;
    let addrs: Vec<String> = client
        .query(
            "SELECT client_addr FROM audit_log WHERE action = 'login' ORDER BY audit_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        addrs,
        ["203.0.113.1", "203.0.113.1", "203.0.113.2"],
        "refusals are recorded under the client's address, never the forged one"
    );
}

#[tokio::test]
async fn without_trusted_proxies_a_forwarded_for_header_cannot_dodge_the_login_limit() {
    let moto = gpudev_testkit::sts().await;
    let app = app_for(&moto, &[("LOGIN_RATE_LIMIT_PER_MINUTE", "2")]).await;
    let mut statuses = Vec::new();
    for n in 1..=3 {
        statuses.push(login_via(&app, &format!("203.0.113.{n}")).await);
    }
    assert_eq!(statuses, [401, 401, 429]);
}

#[tokio::test]
async fn an_unreadable_forwarded_for_value_leaves_only_the_proxy_address() {
    let moto = gpudev_testkit::sts().await;
    let app = app_for(&moto, &[("TRUSTED_PROXIES", "127.0.0.0/8")]).await;
    // The client's own entry, then a value the proxy appended to that is not readable text:
    // skipping it would make the client's entry look like the proxy's.
    let status = app
        .http
        .post(format!("{}/v1/auth/aws-login", app.base))
        .header("x-forwarded-for", "198.51.100.9")
        .header(
            "x-forwarded-for",
            reqwest::header::HeaderValue::from_bytes(b"\xff, 203.0.113.5").unwrap(),
        )
        .json(&json!({"aws_access_key_id": "AKIA".repeat(4), "aws_secret_access_key": "s".repeat(40)}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    let client = app.db.connect().await;
    let addr: String = client
        .query_one(
            "SELECT client_addr FROM audit_log WHERE action = 'login'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(addr, "127.0.0.1");
}

#[tokio::test]
async fn someone_failing_from_one_address_is_throttled_while_another_user_there_logs_in() {
    let moto = gpudev_testkit::sts().await;
    let app = app_for(
        &moto,
        &[
            ("LOGIN_RATE_LIMIT_PER_MINUTE", "3"),
            ("LOGIN_ADDRESS_RATE_LIMIT_PER_MINUTE", "8"),
        ],
    )
    .await;
    let guess =
        |id: &str| json!({"aws_access_key_id": id, "aws_secret_access_key": "x".repeat(40)});

    let mut attacker = Vec::new();
    for _ in 0..4 {
        attacker.push(aws_login(&app, guess("AKIAATTACKER00000000")).await);
    }
    let alice = aws_login(&app, login_body(&moto.mint(ROLE, "alice").await)).await;

    let statuses: Vec<u16> = attacker.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [401, 401, 401, 429], "{attacker:?}");
    assert_eq!(attacker[3].1["code"], "rate_limited");
    assert!(attacker[3].1["detail"].is_string());
    assert_eq!(
        alice.0, 200,
        "the same address, another identity: {}",
        alice.1
    );
    // A new identity on every attempt still meets the address's own limit: four attempts were
    // counted so far (the refused one was not), so four more pass and the next is refused.
    let mut cycling = Vec::new();
    for n in 0..5 {
        cycling.push(
            aws_login(&app, guess(&format!("AKIAROTATING0000000{n}")))
                .await
                .0,
        );
    }
    assert_eq!(cycling, [401, 401, 401, 401, 429]);
}

#[tokio::test]
async fn the_server_id_is_published_and_a_login_signed_for_another_is_refused_before_sts() {
    // Nothing listens on the allowed STS address: a refusal here comes before any call to it.
    let app = spawn_app_with(&[
        ("AWS_LOGIN_SERVER_ID", "gpudev.example.com"),
        ("STS_ALLOWED_HOSTS", "127.0.0.1:9"),
    ])
    .await;
    let (status, info) = status_json(app.call(Method::GET, "/v1/auth/aws", None, None).await).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(
        info,
        json!({"server_id_header": "x-gpudev-server-id", "server_id": "gpudev.example.com"})
    );

    let creds = Credentials {
        access_key_id: "ASIAEXAMPLEEXAMPLE00".into(),
        secret_access_key: "secret".into(),
        session_token: "token".into(),
        arn: String::new(),
    };
    // `presigned` signs for the default id, `gpudev`.
    let (status, body) = status_json(
        app.call(
            Method::POST,
            "/v1/auth/aws-iam",
            None,
            Some(presigned(&creds, "http://127.0.0.1:9/", SystemTime::now())),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (401, &json!("wrong_server_id")),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("gpudev.example.com"),
        "{body}"
    );
}

#[tokio::test]
async fn a_burst_of_logins_makes_at_most_the_limit_of_sts_calls_at_once() {
    // An STS that accepts connections and never answers: every call stays in flight until the
    // timeout, so the connections it has accepted are the calls made at once.
    let sts = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", sts.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = sts.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    let app = spawn_app_with(&[
        ("AWS_ENDPOINT_URL_STS", endpoint.as_str()),
        ("STS_TIMEOUT_SECONDS", "3"),
        // One identity logging in many times at once: the per-identity limit would refuse most.
        ("LOGIN_RATE_LIMIT_PER_MINUTE", "1000"),
    ])
    .await;
    let limit = gpudev_api::routes::auth::sts::MAX_CONCURRENT_CALLS;
    let body = json!({
        "aws_access_key_id": "ASIAEXAMPLEEXAMPLE01",
        "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_session_token": "FwoGZXIvYXdzEXAMPLETOKEN".repeat(6),
    });

    let logins = futures::future::join_all((0..limit + 8).map(|_| aws_login(&app, body.clone())));
    let watch = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        accepted.load(std::sync::atomic::Ordering::SeqCst)
    };
    let (answers, at_once) = tokio::join!(logins, watch);

    assert_eq!(at_once, limit, "calls in flight before any ended");
    for (status, body) in &answers {
        assert_eq!(*status, 503, "{body}");
    }
    holder.abort();
}
