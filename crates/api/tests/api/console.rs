//! The web console's sign-in and pages over real HTTP (the browser tests are in `browser/`):
//! one-time links, the session cookie, CSRF, escaping, the policy headers, sessions ending with
//! their user or key, the event stream, and a reserve form posted twice.

use gpudev_domain::ReservationStatus;
use gpudev_store::reservations::{self, Transition};
use gpudev_store::users::Role;
use reqwest::redirect::Policy;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, count, spawn_app, status_json};
use crate::jobs_common::{submit_ok, t4};

/// A client that keeps no cookies and follows no redirects: each test handles the cookie itself.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

pub(crate) async fn link(app: &TestApp, key: &str) -> Value {
    let (status, body) = status_json(app.post("/v1/console/links", key, json!({})).await).await;
    assert_eq!(status, 200, "{body}");
    body
}

pub(crate) fn token_of(link: &Value) -> String {
    link["path"]
        .as_str()
        .unwrap()
        .strip_prefix("/ui/signin/")
        .unwrap()
        .to_owned()
}

/// Signs in with `token`; the session cookie's `name=value` and its whole header.
pub(crate) async fn sign_in(app: &TestApp, token: &str) -> (String, String) {
    let res = browser()
        .post(format!("{}/ui/signin", app.base))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        res.text().await
    );
    assert_eq!(res.headers()["location"], "/ui/");
    let header = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    let pair = header.split(';').next().unwrap().to_owned();
    (pair, header)
}

pub(crate) async fn page(
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
) -> (StatusCode, String, Response) {
    let mut req = browser().get(format!("{}{path}", app.base));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let head = browser().get(format!("{}{path}", app.base));
    let head = match cookie {
        Some(c) => head.header("cookie", c),
        None => head,
    };
    let again = head.send().await.unwrap();
    (status, res.text().await.unwrap(), again)
}

/// The CSRF token in a page's sign-out form.
pub(crate) fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_one_time_link_signs_in_once_and_the_page_shows_only_the_users_reservations() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let mut named = t4(1.0);
    named.name = Some("<script>alert(1)</script>".into());
    submit_ok(&app, &key, named).await;
    let mut bobs = t4(1.0);
    bobs.name = Some("bobs-secret-run".into());
    submit_ok(&app, &bob, bobs).await;

    let l = link(&app, &key).await;
    let token = token_of(&l);
    // Opening the link only shows whose sign-in it is: previews cannot use it.
    let (status, shown, _) = page(&app, l["path"].as_str().unwrap(), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(shown.contains("Sign in as alice"), "{shown}");
    let (cookie, header) = sign_in(&app, &token).await;
    assert!(header.contains("HttpOnly"), "{header}");
    assert!(header.contains("SameSite=Lax"), "{header}");
    assert!(header.contains("Path=/ui"), "{header}");
    assert!(!header.contains("Secure"), "plain HTTP here: {header}");

    let (status, html, res) = page(&app, "/ui/", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "nothing typed by a user runs");
    assert!(
        !html.contains("bobs-secret-run"),
        "another user's reservation"
    );
    assert!(!html.contains(&key), "no API key on a page");
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );

    // The link worked once.
    let res = browser()
        .post(format!("{}/ui/signin", app.base))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("set-cookie").is_none());
    let (status, _, _) = page(&app, l["path"].as_str().unwrap(), None).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a used link shows nothing of its user"
    );

    let audited: i64 = app
        .db
        .connect()
        .await
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action IN ('console.link', 'console.signin')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 2);
}

#[tokio::test]
async fn pages_need_a_live_session_and_links_expire() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let (status, html, _) = page(&app, "/ui/", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains("gpu-dev console"), "{html}");
    let (status, _, _) = page(&app, "/ui/capacity", Some("gpudev_session=forged")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let l = link(&app, &key).await;
    app.db
        .connect()
        .await
        .execute(
            "UPDATE console_links SET expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    let res = browser()
        .post(format!("{}/ui/signin", app.base))
        .form(&[("token", token_of(&l).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sign_out_needs_the_forms_token_and_ends_the_session() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let (cookie, _) = sign_in(&app, &token_of(&link(&app, &key).await)).await;
    let (_, html, _) = page(&app, "/ui/capacity", Some(&cookie)).await;
    let csrf = csrf_of(&html);

    let forged = browser()
        .post(format!("{}/ui/signout", app.base))
        .header("cookie", &cookie)
        .form(&[("csrf", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        page(&app, "/ui/", Some(&cookie)).await.0,
        StatusCode::OK,
        "still signed in"
    );

    let out = browser()
        .post(format!("{}/ui/signout", app.base))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        page(&app, "/ui/", Some(&cookie)).await.0,
        StatusCode::UNAUTHORIZED,
        "the old cookie no longer works"
    );
}

#[tokio::test]
async fn disabling_the_user_or_revoking_the_links_key_ends_the_session() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let (alices, _) = sign_in(&app, &token_of(&link(&app, &alice).await)).await;
    let (bobs, _) = sign_in(&app, &token_of(&link(&app, &bob).await)).await;
    let db = app.db.connect().await;

    db.execute(
        "UPDATE users SET is_active = false WHERE username = 'alice'",
        &[],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE api_keys SET revoked_at = now() \
         WHERE user_id = (SELECT user_id FROM users WHERE username = 'bob')",
        &[],
    )
    .await
    .unwrap();

    assert_eq!(
        page(&app, "/ui/", Some(&alices)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        page(&app, "/ui/", Some(&bobs)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_capacity_page_shows_every_type_of_the_catalog() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let (cookie, _) = sign_in(&app, &token_of(&link(&app, &key).await)).await;
    let (status, html, _) = page(&app, "/ui/capacity", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, api) = status_json(app.get("/v1/gpu/availability", &key).await).await;
    for name in api["availability"].as_object().unwrap().keys() {
        assert!(
            html.contains(&format!("<td>{name}</td>")),
            "{name} missing: {html}"
        );
    }
    assert!(html.contains("aria-current=\"page\""));
}

/// The event stream of the session `cookie` names.
async fn events(app: &TestApp, cookie: &str) -> Response {
    browser()
        .get(format!("{}/ui/events", app.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// Reads the event stream until `want` has been seen (within 10 s); everything read so far.
async fn read_until(res: &mut Response, seen: &mut String, want: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains(want) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let chunk = tokio::time::timeout(left, res.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {want:?} in {seen:?}"))
            .unwrap();
        let Some(chunk) = chunk else {
            panic!("the stream ended without {want:?}: {seen:?}");
        };
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn the_event_stream_sends_the_users_jobs_and_ends_with_the_session() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let mine = submit_ok(&app, &key, t4(1.0)).await;
    let bobs = submit_ok(&app, &bob, t4(1.0)).await;
    let (cookie, _) = sign_in(&app, &token_of(&link(&app, &key).await)).await;

    let (status, _, _) = page(&app, "/ui/events", None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "no stream without a session"
    );
    let mut res = events(&app, &cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let mut seen = String::new();
    read_until(&mut res, &mut seen, "event: jobs\ndata: ").await;
    read_until(&mut res, &mut seen, "\n\n").await;
    assert!(seen.starts_with("retry: 3000\n\n"), "{seen}");
    assert!(seen.contains(&mine.to_string()), "{seen}");
    assert!(
        !seen.contains(&bobs.to_string()),
        "another user's job: {seen}"
    );

    // The key that asked for the session's link is revoked: the stream says so and ends.
    app.db
        .connect()
        .await
        .execute("UPDATE api_keys SET revoked_at = now()", &[])
        .await
        .unwrap();
    read_until(&mut res, &mut seen, "event: signedout\n").await;
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), res.chunk())
        .await
        .unwrap()
        .unwrap();
    assert!(end.is_none(), "the stream ends: {end:?}");
}

/// The value of the hidden field `name` in a page.
fn hidden(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\" value=\"")).unwrap() + name.len() + 15;
    html[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_reserve_form_posted_twice_reserves_once() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let (cookie, _) = sign_in(&app, &token_of(&link(&app, &key).await)).await;
    let (_, html, _) = page(&app, "/ui/reserve", Some(&cookie)).await;
    let csrf = csrf_of(&html);
    let request = hidden(&html, "request");
    assert!(uuid::Uuid::parse_str(&request).is_ok(), "{request}");

    for _ in 0..2 {
        let res = browser()
            .post(format!("{}/ui/reserve", app.base))
            .header("cookie", &cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("request", request.as_str()),
                ("gpus", "t4:1"),
                ("hours", "2"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }
    assert_eq!(count(&app, "SELECT count(*) FROM reservations").await, 1);

    // Another form (a new id) is another reservation.
    let (_, html, _) = page(&app, "/ui/reserve", Some(&cookie)).await;
    assert_ne!(hidden(&html, "request"), request);
}

#[tokio::test]
async fn an_extension_confirmed_twice_extends_once() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let id = submit_ok(&app, &key, t4(1.0)).await;
    let (cookie, _) = sign_in(&app, &token_of(&link(&app, &key).await)).await;
    let (_, html, _) = page(&app, "/ui/", Some(&cookie)).await;
    let csrf = csrf_of(&html);
    let post = |form: Vec<(&'static str, String)>| {
        browser()
            .post(format!("{}/ui/jobs/{id}/extend", app.base))
            .header("cookie", &cookie)
            .form(&form)
            .send()
    };

    let shown = post(vec![("csrf", csrf.clone()), ("hours", "2".into())])
        .await
        .unwrap();
    assert_eq!(shown.status(), StatusCode::OK);
    let confirmation = shown.text().await.unwrap();
    assert!(
        confirmation.contains("Extend this reservation?"),
        "{confirmation}"
    );
    let request = hidden(&confirmation, "request");
    for _ in 0..2 {
        let res = post(vec![
            ("csrf", csrf.clone()),
            ("hours", "2".into()),
            ("confirm", "yes".into()),
            ("request", request.clone()),
        ])
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT extended_hours::bigint FROM reservations WHERE reservation_id = '{id}'"
            )
        )
        .await,
        2
    );
}

#[tokio::test]
async fn a_failed_reservations_page_says_why_in_plain_words_with_its_history() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let id = submit_ok(&app, &key, t4(1.0)).await;
    let client = app.db.connect().await;
    for (to, reason) in [
        (ReservationStatus::Preparing, "admitted"),
        (
            ReservationStatus::Failed,
            "pod gpudev-1: ImagePullBackOff: pulling image \"ubuntu:nope\"",
        ),
    ] {
        reservations::transition(
            &client,
            id,
            Transition {
                to,
                reason: Some(reason),
                actor: "processor",
            },
        )
        .await
        .unwrap();
    }
    let (cookie, _) = sign_in(&app, &token_of(&link(&app, &key).await)).await;

    let (status, html, _) = page(&app, &format!("/ui/jobs/{id}"), Some(&cookie)).await;

    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Why it failed"), "{html}");
    assert!(
        html.contains("The container image could not be downloaded"),
        "{html}"
    );
    assert!(html.contains("queued → preparing"), "{html}");
    assert!(html.contains("preparing → failed"), "{html}");
    assert!(
        !html.contains("/extend\""),
        "an ended reservation offers no extension"
    );
}

#[tokio::test]
async fn a_draining_replica_ends_its_event_streams() {
    let app = crate::helpers::spawn_app_with(&[("SHUTDOWN_DRAIN_SECONDS", "8")]).await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let (cookie, _) = sign_in(&app, &token_of(&link(&app, &key).await)).await;
    let mut res = events(&app, &cookie).await;
    let mut seen = String::new();
    read_until(&mut res, &mut seen, "event: jobs\n").await;

    let started = std::time::Instant::now();
    let shutdown = app.shutdown.clone();
    tokio::spawn(async move { shutdown.shutdown().await });
    while let Some(chunk) = tokio::time::timeout(std::time::Duration::from_secs(6), res.chunk())
        .await
        .expect("the stream outlived the drain")
        .unwrap()
    {
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "ended by the drain, not by the server stopping: {seen:?}"
    );
}

#[tokio::test]
async fn cards_say_when_a_booking_starts_and_when_an_idle_box_is_released() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    // The node's four GPUs are free in half an hour; alice books them two hours from now.
    let now = crate::jobs_common::publish_state(&app, 1800, 0, false).await;
    let start = chrono::DateTime::from_timestamp(now + 2 * 3600, 0).unwrap();
    submit_ok(
        &app,
        &key,
        json!({"gpu_type": "t4", "gpu_count": 4, "duration_hours": 2.0,
               "start_at": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}),
    )
    .await;
    // A running box whose agent has seen it idle for ten minutes.
    let running = submit_ok(&app, &key, t4(1.0)).await;
    crate::jobs_common::activate(&app, running).await;
    let idle_since = chrono::Utc::now() - chrono::Duration::minutes(10);
    app.db
        .connect()
        .await
        .execute(
            "INSERT INTO reservation_activity (reservation_id, agent_token_hash, last_report_at, \
             idle_since) VALUES ($1, repeat('a', 64), now(), $2)",
            &[&running, &idle_since],
        )
        .await
        .unwrap();
    let (_, job) = status_json(app.get(&format!("/v1/jobs/{running}"), &key).await).await;
    let ends: chrono::DateTime<chrono::Utc> = job["activity"]["idle_ends_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no idle end: {job}"))
        .parse()
        .unwrap();
    let (cookie, _) = sign_in(&app, &token_of(&link(&app, &key).await)).await;

    let (status, html, _) = page(&app, "/ui/", Some(&cookie)).await;

    assert_eq!(status, StatusCode::OK);
    let booked = format!("booked to start {}", start.format("%Y-%m-%d %H:%M UTC"));
    assert!(html.contains(&booked), "{booked} in {html}");
    let idle = format!(
        "since {}; released at {} unless used",
        idle_since.format("%H:%M UTC"),
        ends.format("%H:%M UTC")
    );
    assert!(html.contains(&idle), "{idle} in {html}");
}
