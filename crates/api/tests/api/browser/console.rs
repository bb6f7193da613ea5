//! The console in a real browser against the real API and PostgreSQL, with the real processor
//! admitting reservations onto the test kit's fake Kubernetes API server: sign in with a
//! one-time link, reserve, watch the status move without reloading, copy the SSH command,
//! extend, cancel, and the refusals (another user's page, a form without its CSRF token, a
//! session that ended). Each page is saved as a screenshot (see [`super::screenshot_dir`]).

use gpudev_processor::{Processor, ProcessorConfig};
use gpudev_store::users::Role;
use gpudev_testkit::{FakeConfig, TestCluster};
use reqwest::StatusCode;
use uuid::Uuid;

use super::{Browser, link, sign_in};
use crate::helpers::{TestApp, count, spawn_app};
use crate::jobs_common::{submit_ok, t4};

/// The dev box namespace on the fake cluster.
const NS: &str = "gpu-dev";

/// A leading processor over the app's database and a fake cluster with one 4-GPU T4 node.
async fn processor(app: &TestApp) -> (Processor, TestCluster) {
    let cluster = TestCluster::fake_with(NS, FakeConfig::default());
    cluster.seed_nodes("t4", 1, 4).await;
    let mut config = ProcessorConfig::for_database_with(&app.db.url(), &[]).unwrap();
    config.namespace = cluster.namespace().to_owned();
    config.gpu_type_label = cluster.gpu_type_label().to_owned();
    let p = Processor::build(config, cluster.client()).await.unwrap();
    assert!(p.try_become_leader().await.unwrap(), "could not lead");
    (p, cluster)
}

/// The status, extension and SSH command of reservation `id` as stored.
async fn stored(app: &TestApp, id: Uuid) -> (String, f64, Option<String>) {
    let row = app
        .db
        .connect()
        .await
        .query_one(
            "SELECT status::text, extended_hours, ssh_command FROM reservations \
             WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// The session cookie the browser holds, as a `Cookie` header.
async fn session_cookie(browser: &Browser) -> String {
    let c = browser
        .client
        .get_named_cookie("gpudev_session")
        .await
        .unwrap();
    format!("gpudev_session={}", c.value())
}

#[tokio::test]
async fn reserve_watch_it_start_without_reloading_copy_ssh_extend_and_cancel() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let (p, cluster) = processor(&app).await;
    let browser = Browser::start(&app).await;

    // The one-time link shows whose sign-in it is; its button signs in.
    browser.open(&link(&app, &key).await).await;
    browser.wait_for_text("h1", "Sign in to gpudev").await;
    browser.screenshots("signin").await;
    browser.click("form[action='/ui/signin'] button").await;
    browser.wait_for_text("h1", "Your reservations").await;
    assert!(
        browser
            .text()
            .await
            .contains("You have no reservations yet")
    );
    browser.screenshots("reservations-empty").await;

    // The reserve form offers only what may be asked for.
    browser.click("a.button.primary").await;
    assert_eq!(browser.path().await, "/ui/reserve");
    let offered: Vec<String> = {
        let mut v = Vec::new();
        for o in browser.find_all("#gpus option").await {
            v.push(o.attr("value").await.unwrap().unwrap());
        }
        v
    };
    assert!(offered.contains(&"t4:1".to_owned()), "{offered:?}");
    assert!(
        offered.contains(&"t4:4".to_owned()),
        "a whole node: {offered:?}"
    );
    assert!(
        !offered.contains(&"t4:5".to_owned()),
        "5 T4s fit neither a node nor whole nodes: {offered:?}"
    );
    let most_hours = browser
        .find("#hours option:last-child")
        .await
        .attr("value")
        .await
        .unwrap();
    assert_eq!(most_hours.as_deref(), Some("24"), "hours within the limit");
    browser.screenshots("reserve").await;
    browser.press("#gpus option[value='t4:2']").await;
    browser.press("#hours option[value='2']").await;
    browser.type_into("#name", "train-llama").await;
    browser.press("input[name=jupyter]").await;
    browser.click("form.reserve button[type=submit]").await;
    browser.wait_for_text("h1", "Your reservations").await;
    assert_eq!(browser.path().await, "/ui/");
    let id: Uuid = browser
        .find(".card")
        .await
        .attr("data-job")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(stored(&app, id).await.0, "queued");
    browser
        .wait_for_text(".card [data-field=status]", "queued")
        .await;
    // Anything on the page survives only if the page is never reloaded.
    browser.run("window.stayed = 'yes'; return null").await;

    // The processor admits it: preparing, then active once its pod runs.
    let outcome = p.process_once().await.unwrap();
    assert_eq!(outcome.pass.unwrap().admitted, vec![id]);
    browser
        .wait_for_text(".card [data-field=status]", "preparing")
        .await;
    cluster.step().await;
    assert_eq!(p.reconcile().await.unwrap().activated, vec![id]);
    browser
        .wait_for_text(".card [data-field=status]", "active")
        .await;
    let ssh = stored(&app, id)
        .await
        .2
        .expect("an active box has an SSH command");
    browser.wait_for_text(".card [data-field=ssh]", &ssh).await;
    // Jupyter was asked for: its link appears once it runs.
    let jupyter: String = app
        .db
        .connect()
        .await
        .query_one(
            "SELECT jupyter_url FROM reservations WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    browser
        .wait_for_text(".card [data-field=jupyter]", "Open Jupyter")
        .await;
    assert_eq!(
        browser
            .find(".card [data-field=jupyter]")
            .await
            .attr("href")
            .await
            .unwrap()
            .as_deref(),
        Some(jupyter.as_str())
    );
    assert_eq!(
        browser.run("return window.stayed").await,
        "yes",
        "the page changed without a reload"
    );

    // Copy the SSH command: the button says so once the clipboard has it.
    browser.press(".card button[data-copy]").await;
    browser
        .wait_for_text(".card button[data-copy]", "Copied")
        .await;
    browser.screenshots("reservations-active").await;

    // Extend by 2 hours, through the confirmation.
    let ends_before = browser
        .find(".card [data-field=ends]")
        .await
        .text()
        .await
        .unwrap();
    browser
        .press(".card form.extend select option[value='2']")
        .await;
    browser.click(".card form.extend button").await;
    browser
        .wait_for_text("h1", "Extend this reservation?")
        .await;
    assert_eq!(browser.path().await, format!("/ui/jobs/{id}/extend"));
    assert_eq!(
        stored(&app, id).await.1,
        0.0,
        "nothing changes before the confirmation"
    );
    browser.screenshots("confirm-extend").await;
    browser.click("button.primary").await;
    browser.wait_for_text("h1", "Your reservations").await;
    assert_eq!(browser.path().await, "/ui/");
    assert_eq!(stored(&app, id).await.1, 2.0);
    let ends_after = browser
        .find(".card [data-field=ends]")
        .await
        .text()
        .await
        .unwrap();
    assert_ne!(ends_before, ends_after, "the new end is shown");

    // Its own page: where it stands and its whole history.
    browser.click(".card a.job-name").await;
    browser.wait_for_text("#history h2", "History").await;
    assert_eq!(browser.path().await, format!("/ui/jobs/{id}"));
    let text = browser.text().await;
    assert!(text.contains("History"), "{text}");
    assert!(text.contains("queued → preparing"), "{text}");
    assert!(text.contains("preparing → active"), "{text}");
    assert!(text.contains("Extended by"), "{text}");
    browser.screenshots("detail").await;

    // Cancel, through the confirmation.
    browser.click(".card button.danger").await;
    browser
        .wait_for_text("h1", "Cancel this reservation?")
        .await;
    assert_eq!(stored(&app, id).await.0, "active");
    browser.screenshots("confirm-cancel").await;
    browser.click("button.primary").await;
    browser.wait_for_text("h1", "Your reservations").await;
    assert_eq!(stored(&app, id).await.0, "cancelled");
    browser
        .wait_for_text(".card [data-field=status]", "cancelled")
        .await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE auth_method = 'console' AND action IN \
             ('reservation.submit', 'reservation.extend', 'reservation.cancel')"
        )
        .await,
        3,
        "each change is audited as the console's"
    );
    browser.close().await;
}

#[tokio::test]
async fn another_users_reservation_is_404_and_typed_names_show_as_text() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let typed = "<script>document.title='owned'</script><b>bold</b>";
    let mut named = t4(1.0);
    named.name = Some(typed.into());
    let own = submit_ok(&app, &alice, named).await;
    let bobs = submit_ok(&app, &bob, t4(1.0)).await;
    let browser = Browser::start(&app).await;
    sign_in(&browser, &app, &alice).await;

    assert_eq!(
        browser.find(".card .job-name").await.text().await.unwrap(),
        typed,
        "the name is shown as the user typed it"
    );
    assert!(
        browser.find_all(".card b").await.is_empty(),
        "no markup from a name"
    );
    assert_eq!(
        browser.client.title().await.unwrap(),
        "Reservations · gpudev"
    );
    browser.open(&format!("/ui/jobs/{own}")).await;
    assert_eq!(browser.find("h1").await.text().await.unwrap(), typed);
    browser.screenshots("detail-queued").await;

    let csrf = browser
        .run("return document.querySelector('input[name=csrf]').value")
        .await;
    browser.open(&format!("/ui/jobs/{bobs}")).await;
    assert_eq!(
        browser.find("h1").await.text().await.unwrap(),
        "No such reservation"
    );
    assert!(!browser.text().await.contains("bob"));
    let res = reqwest::Client::new()
        .get(format!("{}/ui/jobs/{bobs}", app.base))
        .header("cookie", session_cookie(&browser).await)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Nor can she act on it.
    let res = reqwest::Client::new()
        .post(format!("{}/ui/jobs/{bobs}/cancel", app.base))
        .header("cookie", session_cookie(&browser).await)
        .form(&[("csrf", csrf.as_str().unwrap()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) FROM reservations WHERE reservation_id = '{bobs}' AND status = 'queued'")
        )
        .await,
        1
    );
    browser.close().await;
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let id = submit_ok(&app, &key, t4(1.0)).await;
    let browser = Browser::start(&app).await;
    sign_in(&browser, &app, &key).await;

    // The cancel confirmation, posted without its token.
    browser.click(".card button.danger").await;
    browser
        .wait_for_text("h1", "Cancel this reservation?")
        .await;
    browser
        .run("document.querySelector('main form input[name=csrf]').remove(); return null")
        .await;
    browser.click("button.primary").await;
    browser.wait_for_text("h1", "This form has expired").await;
    assert_eq!(stored(&app, id).await.0, "queued");

    // The reserve form, with a token that is not the session's.
    browser.open("/ui/reserve").await;
    browser
        .run("document.querySelector('main input[name=csrf]').value = 'forged'; return null")
        .await;
    browser.click("form.reserve button[type=submit]").await;
    browser.wait_for_text("h1", "This form has expired").await;
    assert_eq!(count(&app, "SELECT count(*) FROM reservations").await, 1);
    browser.close().await;
}

#[tokio::test]
async fn the_reserve_form_shows_the_apis_refusal_next_to_the_field() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let browser = Browser::start(&app).await;
    sign_in(&browser, &app, &key).await;
    browser.open("/ui/reserve").await;
    // What the form never offers, sent as if it had.
    browser
        .run("document.querySelector('#hours option').value = '500'; return null")
        .await;
    browser.press("#hours option").await;
    browser.type_into("#name", "kept-name").await;
    browser.click("form.reserve button[type=submit]").await;
    browser.wait_for_text("h1", "Reserve GPUs").await;
    let error = browser.find("#hours-error").await.text().await.unwrap();
    assert!(error.contains("at most 24 hours"), "{error}");
    assert_eq!(
        browser
            .find("#hours")
            .await
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    assert!(
        browser.find_all("#gpus-error").await.is_empty(),
        "only the field at fault"
    );
    assert_eq!(
        browser
            .find("#name")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("kept-name"),
        "what was typed stays"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM reservations").await, 0);
    browser.screenshots("reserve-error").await;
    browser.close().await;
}

#[tokio::test]
async fn the_session_ends_on_sign_out_and_when_the_user_is_disabled() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let (_, admin) = app.user_with_key("root", Role::Admin).await;
    submit_ok(&app, &key, t4(1.0)).await;
    let browser = Browser::start(&app).await;

    sign_in(&browser, &app, &key).await;
    let old = session_cookie(&browser).await;
    browser.click("form.signout button").await;
    browser.wait_for_text("h1", "Signed out").await;
    browser.open("/ui/").await;
    assert_eq!(
        browser.find("h1").await.text().await.unwrap(),
        "Sign in to gpudev"
    );
    let res = reqwest::Client::new()
        .get(format!("{}/ui/", app.base))
        .header("cookie", old)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the old session is over"
    );

    // Signed in again, the open page notices the user being disabled by itself.
    sign_in(&browser, &app, &key).await;
    browser.find(".card").await;
    // A reservation made elsewhere is offered, not pushed into the page.
    submit_ok(&app, &key, t4(1.0)).await;
    browser
        .wait_for_text("[data-row=new]", "New reservations: show them")
        .await;
    assert_eq!(browser.find_all(".card").await.len(), 1);
    browser.run("window.stayed = 'yes'; return null").await;
    let res = app
        .post(
            "/v1/admin/users/alice/disable",
            &admin,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    browser.wait_for_text("h1", "Sign in to gpudev").await;
    assert_eq!(
        browser.run("return window.stayed || null").await,
        serde_json::Value::Null,
        "the page reloaded into the sign-in page"
    );
    browser.screenshots("signed-out").await;
    browser.close().await;
}

/// Another valid public key than the one every test user starts with.
const SECOND_SSH_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETUbNlJBfWzOjE2V2VI7uME1ZcLQOGKhOdceh1N5BOe second@laptop";

#[tokio::test]
async fn disks_ssh_keys_and_api_keys_are_kept_from_the_console() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let (_, spare) = app.user_with_key("alice", Role::User).await;
    let browser = Browser::start(&app).await;
    sign_in(&browser, &app, &key).await;

    // SSH keys: a bad one is refused next to the field, a good one added, the first removed.
    browser.click("nav a[href='/ui/ssh-keys']").await;
    browser.wait_for_text("h1", "Your SSH keys").await;
    assert_eq!(browser.find_all("tbody tr").await.len(), 1);
    browser.type_into("#public_key", "ssh-rsa not-a-key").await;
    browser.click("main form.reserve button").await;
    browser.find("#public_key-error").await;
    assert_eq!(count(&app, "SELECT count(*) FROM user_ssh_keys").await, 1);
    browser.type_into("#public_key", SECOND_SSH_KEY).await;
    browser.click("main form.reserve button").await;
    browser
        .wait_for_text("tbody tr:nth-child(2) td:nth-child(3)", "second@laptop")
        .await;
    browser.screenshots("ssh-keys").await;
    browser.click("tbody tr:first-child button.danger").await;
    browser
        .confirm("Remove this SSH key?", "Your SSH keys")
        .await;
    assert_eq!(browser.find_all("tbody tr").await.len(), 1);
    assert_eq!(count(&app, "SELECT count(*) FROM user_ssh_keys").await, 1);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM user_ssh_keys WHERE comment = 'second@laptop'"
        )
        .await,
        1,
        "only the second key is left"
    );

    // Disks: create, a refused name next to its field, a taken name above the form, rename,
    // delete.
    browser.click("nav a[href='/ui/disks']").await;
    browser.wait_for_text("h1", "Your disks").await;
    browser.type_into("#disk_name", "home").await;
    browser.type_into("#size_gb", "20").await;
    browser.click("main form.reserve button").await;
    browser
        .wait_for_text("tbody tr td:first-child", "home")
        .await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM disks WHERE disk_name = 'home' AND size_gb = 20"
        )
        .await,
        1
    );
    browser.type_into("#disk_name", "Not A Name!").await;
    browser.click("main form.reserve button").await;
    browser.find("#disk_name-error").await;
    browser.type_into("#disk_name", "home").await;
    browser.click("main form.reserve button").await;
    let taken = browser.find("#disk_name-error").await.text().await.unwrap();
    assert!(taken.contains("already exists"), "{taken}");
    browser.screenshots("disks").await;
    browser
        .type_into("tbody tr input[name=new_name]", "work")
        .await;
    browser.click("tbody tr form.inline button").await;
    browser
        .wait_for_text("tbody tr td:first-child", "work")
        .await;
    browser.click("tbody tr button.danger").await;
    browser.confirm("Delete this disk?", "Your disks").await;
    assert!(browser.find_all("tbody tr").await.is_empty());
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM disks WHERE disk_name = 'work' AND is_deleted"
        )
        .await,
        1
    );

    // API keys: listed by prefix only, and one revoked.
    browser.click("nav a[href='/ui/keys']").await;
    browser.wait_for_text("h1", "Your API keys").await;
    assert_eq!(browser.find_all("tbody tr").await.len(), 2);
    let source = browser.source().await;
    assert!(
        !source.contains(&key) && !source.contains(&spare),
        "no API key on a page"
    );
    browser.screenshots("keys").await;
    // The newest first: the spare key.
    browser.click("tbody tr:first-child button.danger").await;
    browser
        .confirm("Revoke this API key?", "Your API keys")
        .await;
    browser
        .wait_for_text("tbody tr:first-child .status", "revoked")
        .await;
    assert_eq!(
        app.get("/v1/me", &spare).await.status(),
        403,
        "the revoked key no longer works"
    );
    assert_eq!(app.get("/v1/me", &key).await.status(), 200);
    browser.close().await;
}

#[tokio::test]
async fn the_capacity_page_follows_the_queue_without_reloading() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let client = app.db.connect().await;
    let written = gpudev_store::gpu_types::write_availability(
        &client,
        "h100",
        &gpudev_store::gpu_types::Availability {
            total_gpus: 16,
            available_gpus: 16,
            in_use_gpus: 0,
            queued_gpus: 0,
            full_nodes_available: 2,
            max_reservable: 8,
            running_nodes: 2,
        },
        "test",
    )
    .await
    .unwrap();
    assert!(written);
    let browser = Browser::start(&app).await;
    sign_in(&browser, &app, &key).await;
    browser.click("nav a[href='/ui/capacity']").await;
    browser
        .wait_for_text("tr[data-type=h100] [data-field=queued]", "0")
        .await;
    browser.run("window.stayed = 'yes'; return null").await;

    submit_ok(
        &app,
        &key,
        serde_json::json!({"gpu_type": "h100", "gpu_count": 4}),
    )
    .await;

    browser
        .wait_for_text("tr[data-type=h100] [data-field=queued]", "4")
        .await;
    assert_eq!(browser.run("return window.stayed").await, "yes");
    browser.screenshots("capacity").await;
    browser.close().await;
}

/// Through the test kit's OpenID Connect provider, in the browser: the signed-out page offers
/// the provider, the button goes there and back (authorization code with PKCE), and the browser
/// ends on its reservations with a session; the provider's admin group makes the user an admin,
/// who sees the usage charts drawn from what was used.
#[tokio::test]
async fn sign_in_through_the_oidc_provider_and_an_admin_sees_the_usage_chart() {
    let issuer = gpudev_testkit::oidc::oidc_issuer().await;
    issuer.sign_in_as(serde_json::json!({
        "sub": "s-browser", "preferred_username": "olga", "groups": ["gpu-admins"]
    }));
    let app = crate::console_oidc::app_for(&issuer, &[]).await;
    // Usage to chart: alice ran 4 × h100 for two hours today, bob 1 × t4 for one.
    let (alice, _) = app.user_with_key("alice", Role::User).await;
    let (bob, _) = app.user_with_key("bob", Role::User).await;
    let db = app.db.connect().await;
    for (user, gpu, count, hours) in [(alice.user_id, "h100", 4, 2), (bob.user_id, "t4", 1, 1)] {
        db.execute(
            "INSERT INTO reservations (reservation_id, user_id, status, gpu_type, gpu_count, \
               duration_hours, image, launched_at, ended_at) \
             VALUES (gen_random_uuid(), $1, 'expired', $2, $3, $4::int, 'ubuntu', \
               date_trunc('day', now()) + interval '1 minute', \
               date_trunc('day', now()) + interval '1 minute' + make_interval(hours => $4::int))",
            &[&user, &gpu, &count, &hours],
        )
        .await
        .unwrap();
    }

    let browser = Browser::start(&app).await;
    browser.open("/ui/").await;
    browser.wait_for_text("h1", "Sign in to gpudev").await;
    browser.screenshots("signin-oidc").await;
    browser.click("a[href='/ui/signin/oidc/0']").await;
    browser.find("h1").await;
    assert_eq!(
        browser.path().await,
        "/ui/",
        "back on the console, signed in"
    );
    assert!(
        browser.text().await.contains("olga"),
        "{}",
        browser.text().await
    );
    assert_eq!(issuer.authorizations().len(), 1);
    assert_eq!(issuer.code_exchanges().len(), 1);
    assert_eq!(
        count(&app, "SELECT count(*) FROM console_sessions").await,
        1,
        "one session"
    );

    browser.click("a[href='/ui/admin/users']").await;
    browser.open("/ui/admin/usage?days=3").await;
    browser.find("figure img").await;
    // Both charts were loaded and drawn by the browser (same origin, as the policy allows).
    let drawn = browser
        .run(
            "return Array.from(document.querySelectorAll('figure img')).map(i => \
             i.complete && i.naturalWidth > 0)",
        )
        .await;
    assert_eq!(drawn, serde_json::json!([true, true]), "charts not drawn");
    let svg = browser
        .run(
            "const r = new XMLHttpRequest(); \
             r.open('GET', document.querySelector('figure img').src, false); r.send(); \
             return r.responseText",
        )
        .await;
    let svg = svg.as_str().unwrap();
    assert!(svg.contains("alice") && svg.contains("bob"), "{svg}");
    assert!(browser.text().await.contains("h100"));
    browser.screenshots("admin-usage").await;
    browser.close().await;
}
