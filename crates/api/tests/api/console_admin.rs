//! The console's admin pages over real HTTP: admins only (404 for anyone else), user changes
//! behind a confirmation and the session's CSRF token, the queue, the audit log (escaped,
//! filtered) and the usage charts drawn from recorded usage.

use gpudev_store::users::{self, Role, User};
use reqwest::StatusCode;
use serde_json::json;

use crate::console::{browser, csrf_of, link, page, sign_in, token_of};
use crate::helpers::{TestApp, count, spawn_app};
use crate::jobs_common::{submit_ok, t4};

/// A user with a key and a console session: the user, the key and the session's cookie.
async fn signed_in(app: &TestApp, name: &str, role: Role) -> (User, String, String) {
    let (user, key) = app.user_with_key(name, role).await;
    let (cookie, _) = sign_in(app, &token_of(&link(app, &key).await)).await;
    (user, key, cookie)
}

/// The user `name` as stored now.
async fn stored(app: &TestApp, name: &str) -> User {
    let db = app.db.connect().await;
    users::find_by_name(&db, name).await.unwrap().unwrap()
}

/// POSTs the form `fields` to `path` with `cookie`.
async fn post(
    app: &TestApp,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    browser()
        .post(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .form(fields)
        .send()
        .await
        .unwrap()
}

/// The admin pages and forms, as a non-admin would try them.
fn admin_paths(target: i64) -> Vec<(&'static str, String)> {
    vec![
        ("GET", "/ui/admin".into()),
        ("GET", "/ui/admin/users".into()),
        ("GET", format!("/ui/admin/users/{target}/disable")),
        ("POST", format!("/ui/admin/users/{target}/disable")),
        ("POST", format!("/ui/admin/users/{target}/grant-admin")),
        ("GET", "/ui/admin/queue".into()),
        ("GET", "/ui/admin/audit".into()),
        ("GET", "/ui/admin/usage".into()),
        ("GET", "/ui/admin/usage/users.svg".into()),
        ("GET", "/ui/admin/usage/gpu-types.svg".into()),
    ]
}

#[tokio::test]
async fn admin_pages_answer_anyone_else_as_if_they_did_not_exist() {
    let app = spawn_app().await;
    let (alice, _, alices) = signed_in(&app, "alice", Role::User).await;
    let (_, _, roots) = signed_in(&app, "root", Role::Admin).await;
    let csrf = csrf_of(&page(&app, "/ui/", Some(&alices)).await.1);
    let nowhere = browser()
        .get(format!("{}/ui/no-such-page", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
    let nowhere = nowhere.text().await.unwrap();

    for cookie in [Some(alices.as_str()), None] {
        for (method, path) in admin_paths(alice.user_id) {
            let mut req = match method {
                "GET" => browser().get(format!("{}{path}", app.base)),
                _ => browser()
                    .post(format!("{}{path}", app.base))
                    .form(&[("csrf", csrf.as_str())]),
            };
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(res.text().await.unwrap(), nowhere, "{method} {path}");
        }
    }
    let alice_now = stored(&app, "alice").await;
    assert!(
        alice_now.is_active && alice_now.role == Role::User,
        "nothing changed"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action LIKE 'admin.%'"
        )
        .await,
        0
    );

    let (_, own, _) = page(&app, "/ui/", Some(&alices)).await;
    assert!(!own.contains("/ui/admin/"), "no admin link for a user");
    let (_, admins, _) = page(&app, "/ui/", Some(&roots)).await;
    assert!(admins.contains("href=\"/ui/admin/users\""), "{admins}");
}

#[tokio::test]
async fn disabling_a_user_needs_a_confirmed_form_and_ends_their_session() {
    let app = spawn_app().await;
    let (bob, _, bobs) = signed_in(&app, "bob", Role::User).await;
    let (_, _, roots) = signed_in(&app, "root", Role::Admin).await;

    let (status, users_html, _) = page(&app, "/ui/admin/users", Some(&roots)).await;
    assert_eq!(status, StatusCode::OK, "{users_html}");
    let disable = format!("/ui/admin/users/{}/disable", bob.user_id);
    assert!(
        users_html.contains(&format!("href=\"{disable}\"")),
        "{users_html}"
    );
    let (status, confirm, _) = page(&app, &disable, Some(&roots)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm.contains("Disable bob?"), "{confirm}");
    assert!(
        confirm.contains(&format!("action=\"{disable}\"")),
        "{confirm}"
    );
    assert_eq!(
        page(&app, "/ui/", Some(&bobs)).await.0,
        StatusCode::OK,
        "the confirmation page changes nothing"
    );

    let res = post(&app, &disable, &roots, &[("csrf", &csrf_of(&confirm))]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/ui/admin/users");
    assert_eq!(
        page(&app, "/ui/", Some(&bobs)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let db = app.db.connect().await;
    assert!(!stored(&app, "bob").await.is_active);
    let row = db
        .query_one(
            "SELECT actor, auth_method, target_id, actor_user_id IS NOT NULL FROM audit_log \
             WHERE action = 'admin.user.disable'",
            &[],
        )
        .await
        .unwrap();
    let audited: (String, String, String, bool) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        audited,
        ("root".into(), "console_session".into(), "bob".into(), true)
    );

    // Enabling bob again does not bring the ended session back.
    let enable = format!("/ui/admin/users/{}/enable", bob.user_id);
    let res = post(&app, &enable, &roots, &[("csrf", &csrf_of(&confirm))]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(stored(&app, "bob").await.is_active);
    assert_eq!(
        page(&app, "/ui/", Some(&bobs)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (bob, _, bobs) = signed_in(&app, "bob", Role::User).await;
    let (_, _, roots) = signed_in(&app, "root", Role::Admin).await;
    let bobs_token = csrf_of(&page(&app, "/ui/", Some(&bobs)).await.1);
    for action in ["disable", "grant-admin"] {
        let path = format!("/ui/admin/users/{}/{action}", bob.user_id);
        for fields in [
            vec![],
            vec![("csrf", "forged")],
            vec![("csrf", bobs_token.as_str())],
        ] {
            let res = post(&app, &path, &roots, &fields).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{action} {fields:?}");
        }
    }
    let bob_now = stored(&app, "bob").await;
    assert!(bob_now.is_active && bob_now.role == Role::User);
    assert_eq!(page(&app, "/ui/", Some(&bobs)).await.0, StatusCode::OK);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action LIKE 'admin.%'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn admins_grant_and_take_the_role_but_not_their_own() {
    let app = spawn_app().await;
    let (bob, _, _) = signed_in(&app, "bob", Role::User).await;
    let (root, _, roots) = signed_in(&app, "root", Role::Admin).await;
    let (_, html, _) = page(&app, "/ui/admin/users", Some(&roots)).await;
    let csrf = csrf_of(&html);
    for (own, why) in [
        ("disable", "themselves"),
        ("revoke-admin", "own admin role"),
    ] {
        let path = format!("/ui/admin/users/{}/{own}", root.user_id);
        assert!(
            !html.contains(&format!("href=\"{path}\"")),
            "not offered: {own}"
        );
        let res = post(&app, &path, &roots, &[("csrf", &csrf)]).await;
        assert_eq!(res.status(), StatusCode::CONFLICT, "{own}");
        let text = res.text().await.unwrap();
        assert!(text.contains(why), "{text}");
    }
    let db = app.db.connect().await;
    let root_now = stored(&app, "root").await;
    assert!(root_now.is_active && root_now.role == Role::Admin);

    let grant = format!("/ui/admin/users/{}/grant-admin", bob.user_id);
    let res = post(&app, &grant, &roots, &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(stored(&app, "bob").await.role, Role::Admin);
    let revoke = format!("/ui/admin/users/{}/revoke-admin", bob.user_id);
    let res = post(&app, &revoke, &roots, &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(stored(&app, "bob").await.role, Role::User);
    let roles: Vec<serde_json::Value> = db
        .query(
            "SELECT details FROM audit_log WHERE action = 'admin.user.role' ORDER BY audit_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        roles,
        vec![json!({"role": "admin"}), json!({"role": "user"})]
    );

    let res = post(
        &app,
        "/ui/admin/users/999999/disable",
        &roots,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "an unknown user");
}

#[tokio::test]
async fn the_queue_shows_every_users_reservations_and_filters_them() {
    let app = spawn_app().await;
    let (_, alice_key, _) = signed_in(&app, "alice", Role::User).await;
    let (_, bob_key, _) = signed_in(&app, "bob", Role::User).await;
    let (_, _, roots) = signed_in(&app, "root", Role::Admin).await;
    let mut named = t4(1.0);
    named.name = Some("alices-run".into());
    submit_ok(&app, &alice_key, named).await;
    let mut named = t4(1.0);
    named.name = Some("bobs-run".into());
    submit_ok(&app, &bob_key, named).await;

    let (status, html, _) = page(&app, "/ui/admin/queue", Some(&roots)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("alices-run") && html.contains("bobs-run"),
        "{html}"
    );
    assert!(html.contains("2 reservations"), "{html}");
    let (_, only_bob, _) = page(&app, "/ui/admin/queue?user=bob&status=queued", Some(&roots)).await;
    assert!(
        only_bob.contains("bobs-run") && !only_bob.contains("alices-run"),
        "{only_bob}"
    );
    let (_, over, _) = page(&app, "/ui/admin/queue?status=expired", Some(&roots)).await;
    assert!(over.contains("0 reservations"), "{over}");

    let (status, bad, _) = page(&app, "/ui/admin/queue?status=sleeping", Some(&roots)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.contains("sleeping"),
        "the page names the problem: {bad}"
    );
    let (status, _, _) = page(&app, "/ui/admin/queue?user=nobody", Some(&roots)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_audit_log_escapes_what_users_typed_and_filters_by_user_action_and_time() {
    let app = spawn_app().await;
    let (_, _, roots) = signed_in(&app, "root", Role::Admin).await;
    // No API path lets a user put markup into an audit row today (names are validated), so the
    // row is written through the store as any route would write it.
    let db = app.db.connect().await;
    gpudev_store::audit::record(
        &db,
        &gpudev_store::audit::AuditEntry {
            actor_user_id: None,
            actor: "<b>mallory</b>",
            auth_method: None,
            auth_issuer: None,
            action: "test.markup",
            target_type: Some("reservation"),
            target_id: Some("<i>x</i>"),
            outcome: "denied",
            request_id: None,
            client_addr: None,
            details: Some(json!({"name": "<script>alert(1)</script>"})),
        },
    )
    .await
    .unwrap();

    let (status, html, _) = page(&app, "/ui/admin/audit", Some(&roots)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        !html.contains("<script>alert") && !html.contains("<b>mallory"),
        "{html}"
    );
    assert!(html.contains("&#60;b&#62;mallory&#60;/b&#62;"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );
    assert!(
        html.contains("console.signin"),
        "the sign-ins are there too"
    );

    let (_, signins, _) = page(
        &app,
        "/ui/admin/audit?action=console.&user=root",
        Some(&roots),
    )
    .await;
    assert!(
        signins.contains("console.signin") && !signins.contains("test.markup"),
        "{signins}"
    );
    let (_, echoed, _) = page(&app, "/ui/admin/audit?action=%3Cscript%3E", Some(&roots)).await;
    assert!(
        echoed.contains("value=\"&#60;script&#62;\"") && echoed.contains("No entries"),
        "{echoed}"
    );
    let (_, future, _) = page(
        &app,
        "/ui/admin/audit?from=2999-01-01T00%3A00",
        Some(&roots),
    )
    .await;
    assert!(
        future.contains("No entries"),
        "a datetime-local value is read as UTC: {future}"
    );
    let (status, bad, _) = page(&app, "/ui/admin/audit?to=tomorrow", Some(&roots)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.contains("RFC 3339"), "{bad}");
}

#[tokio::test]
async fn an_admin_sees_usage_charts_drawn_from_recorded_usage() {
    let app = spawn_app().await;
    let (alice, _, _) = signed_in(&app, "alice", Role::User).await;
    let (bob, _, _) = signed_in(&app, "bob", Role::User).await;
    let (_, _, roots) = signed_in(&app, "root", Role::Admin).await;
    let db = app.db.connect().await;
    // Yesterday: alice 2 x h100 for 3 hours, bob 1 x t4 for 1 hour.
    for (owner, gpu, gpus, start, hours) in [(&alice, "h100", 2, 10, 3), (&bob, "t4", 1, 12, 1)] {
        db.execute(
            "INSERT INTO reservations (reservation_id, user_id, status, gpu_type, gpu_count, \
               duration_hours, image, launched_at, ended_at) \
             SELECT gen_random_uuid(), $1, 'expired', $2, $3, 4, 'ubuntu', d + make_interval(hours => $4), \
               d + make_interval(hours => $4 + $5) \
             FROM (SELECT date_trunc('day', now(), 'UTC') - interval '1 day' AS d) AS yesterday",
            &[&owner.user_id, &gpu, &gpus, &start, &hours],
        )
        .await
        .unwrap();
    }

    let (status, html, _) = page(&app, "/ui/admin/usage", Some(&roots)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("src=\"/ui/admin/usage/users.svg?days=14\""),
        "{html}"
    );
    assert!(
        html.contains("src=\"/ui/admin/usage/gpu-types.svg?days=14\""),
        "{html}"
    );
    assert!(
        html.contains("<td>alice</td><td>h100</td><td>1</td><td>6.0</td>"),
        "{html}"
    );

    let res = browser()
        .get(format!("{}/ui/admin/usage/users.svg?days=14", app.base))
        .header("cookie", &roots)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    assert!(res.headers().contains_key("content-security-policy"));
    let svg = res.text().await.unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(
        svg.contains("alice: 6.0 GPU-hours; bob: 1.0 GPU-hours."),
        "{svg}"
    );
    assert!(
        svg.contains("\nalice\n</text>") && svg.contains("\nbob\n</text>"),
        "the legend"
    );
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Duration::days(1))
        .format("%m-%d")
        .to_string();
    assert!(
        svg.contains(&format!("\n{yesterday}\n</text>")),
        "day labels: {svg}"
    );

    let by_type = browser()
        .get(format!("{}/ui/admin/usage/gpu-types.svg?days=3", app.base))
        .header("cookie", &roots)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        by_type.contains("h100: 6.0 GPU-hours; t4: 1.0 GPU-hours."),
        "{by_type}"
    );

    for bad in ["0", "91", "many"] {
        let (status, text, _) =
            page(&app, &format!("/ui/admin/usage?days={bad}"), Some(&roots)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(text.contains("days must be"), "{text}");
    }
}
