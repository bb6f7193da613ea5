//! `POST /v1/agent/report` and `POST /v1/jobs/{id}/keep-alive` (ADR 18): the agent's token and
//! nothing else authenticates a report, reports move the idle countdown, and bad reports are
//! refused without a trace.

use gpudev_api_types::agent::{AgentReport, AgentReportAnswer, GpuSample};
use gpudev_api_types::jobs::JobDetail;
use gpudev_domain::AgentToken;
use gpudev_store::users::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, count, spawn_app, spawn_app_with, status_as, status_json};
use crate::jobs_common::{activate, submit_ok, t4};

/// An active reservation of a new user's with an agent token, as the processor leaves it.
async fn active_box(app: &TestApp, name: &str) -> (Uuid, String, AgentToken) {
    let (_, key) = app.user_with_key(name, Role::User).await;
    let id = submit_ok(app, &key, t4(2.0)).await;
    activate(app, id).await;
    let token = AgentToken::generate().unwrap();
    let db = app.db.connect().await;
    assert!(
        gpudev_store::activity::set_agent_token(&db, id, &token.hash())
            .await
            .unwrap()
    );
    (id, key, token)
}

fn idle_report() -> AgentReport {
    AgentReport {
        ssh_sessions: 0,
        jupyter_connections: None,
        gpus: Some(vec![GpuSample {
            index: 0,
            utilization_percent: 1,
            memory_used_mib: 300,
            memory_total_mib: 15_360,
        }]),
        uptime_seconds: 600,
    }
}

async fn report(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.call(Method::POST, "/v1/agent/report", Some(token), Some(body))
        .await
}

async fn job(app: &TestApp, key: &str, id: Uuid) -> JobDetail {
    let (status, job): (_, JobDetail) =
        status_as(app.get(&format!("/v1/jobs/{id}"), key).await).await;
    assert_eq!(status, 200);
    job
}

#[tokio::test]
async fn reports_start_and_stop_the_idle_countdown_and_show_in_the_job() {
    let app = spawn_app().await;
    let (id, key, token) = active_box(&app, "alice").await;

    let (status, first): (_, AgentReportAnswer) =
        status_as(report(&app, token.expose(), json!(idle_report())).await).await;
    assert_eq!(status, 200);
    assert!(!first.active);
    let since = first.idle_since.expect("an idle report starts a stretch");
    assert_eq!(
        first.idle_ends_at,
        Some(since + chrono::Duration::minutes(60)),
        "the platform's default limit"
    );
    assert_eq!(first.next_report_seconds, 60);

    // A second idle report keeps the stretch's start.
    let (_, second): (_, AgentReportAnswer) =
        status_as(report(&app, token.expose(), json!(idle_report())).await).await;
    assert_eq!(second.idle_since, Some(since));
    let shown = job(&app, &key, id).await.activity.expect("activity shown");
    assert_eq!(shown.idle_since, Some(since));
    assert_eq!(shown.idle_minutes, Some(60));
    assert!(shown.last_report_at.is_some());
    assert_eq!(shown.last_activity_at, None);

    // A busy GPU is activity: the stretch ends.
    let mut busy = idle_report();
    busy.gpus.as_mut().unwrap()[0].utilization_percent = 80;
    let (_, third): (_, AgentReportAnswer) =
        status_as(report(&app, token.expose(), json!(busy)).await).await;
    assert!(third.active);
    assert_eq!(third.idle_since, None);
    let shown = job(&app, &key, id).await.activity.unwrap();
    assert_eq!(shown.idle_since, None);
    assert!(shown.last_activity_at.is_some());
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) FROM activity_reports WHERE reservation_id = '{id}'")
        )
        .await,
        3,
        "each report is kept in the history"
    );
}

#[tokio::test]
async fn an_ssh_session_after_a_warning_stops_the_countdown_with_an_event() {
    let app = spawn_app().await;
    let (id, key, token) = active_box(&app, "bob").await;
    report(&app, token.expose(), json!(idle_report())).await;
    let db = app.db.connect().await;
    let since: chrono::DateTime<chrono::Utc> = db
        .query_one(
            "SELECT idle_since FROM reservation_activity WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        gpudev_store::activity::claim_idle_warning(&db, id, since, 900.0, "expiry")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        job(&app, &key, id)
            .await
            .activity
            .unwrap()
            .idle_warned_at
            .is_some()
    );
    let with_session = AgentReport {
        ssh_sessions: 1,
        ..idle_report()
    };
    let (_, answer): (_, AgentReportAnswer) =
        status_as(report(&app, token.expose(), json!(with_session)).await).await;
    assert!(answer.active);
    let j = job(&app, &key, id).await;
    let activity = j.activity.unwrap();
    assert_eq!(activity.idle_warned_at, None);
    assert!(
        j.events
            .iter()
            .any(|e| e.reason.as_deref() == Some("in use again: the idle countdown stopped")),
        "{:?}",
        j.events
    );
}

#[tokio::test]
async fn only_the_token_of_an_active_reservation_is_accepted() {
    let app = spawn_app().await;
    let (id, key, token) = active_box(&app, "carol").await;
    let before = count(&app, "SELECT count(*) FROM activity_reports").await;

    // No header, an API key, a malformed token, an unknown token.
    let none = app
        .http
        .post(format!("{}/v1/agent/report", app.base))
        .json(&idle_report())
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    for bad in [
        key.as_str(),
        "not-a-token",
        AgentToken::generate().unwrap().expose(),
    ] {
        let (status, body) = status_json(report(&app, bad, json!(idle_report())).await).await;
        assert_eq!(status, 401, "{bad}: {body}");
        assert_eq!(body["code"], "invalid_token");
        assert!(body["detail"].as_str().unwrap().len() > 10);
    }
    // Another reservation's token reports for that reservation only.
    let (other, other_key, other_token) = active_box(&app, "dave").await;
    assert_eq!(
        report(&app, other_token.expose(), json!(idle_report()))
            .await
            .status(),
        200
    );
    assert!(
        job(&app, &key, id)
            .await
            .activity
            .unwrap()
            .last_report_at
            .is_none()
    );
    assert!(
        job(&app, &other_key, other)
            .await
            .activity
            .unwrap()
            .last_report_at
            .is_some()
    );

    // Once the reservation has ended its token is refused.
    app.post(&format!("/v1/jobs/{id}/cancel"), &key, json!({}))
        .await;
    let (status, _) = status_json(report(&app, token.expose(), json!(idle_report())).await).await;
    assert_eq!(status, 401);
    assert_eq!(
        count(&app, "SELECT count(*) FROM activity_reports").await,
        before + 1,
        "only the accepted report was stored"
    );
}

#[tokio::test]
async fn malformed_reports_are_refused_with_the_field_named_and_nothing_stored() {
    let app = spawn_app().await;
    let (_, _, token) = active_box(&app, "erin").await;
    let mut dup = idle_report();
    let g = dup.gpus.as_ref().unwrap()[0].clone();
    dup.gpus.as_mut().unwrap().push(g);
    for (body, says) in [
        (
            json!({"ssh_sessions": -1, "uptime_seconds": 1}),
            "expected u32",
        ),
        (json!({"ssh_sessions": 0}), "uptime_seconds"),
        (
            json!({"ssh_sessions": 0, "uptime_seconds": 1, "idle": true}),
            "idle",
        ),
        (
            json!({"ssh_sessions": 0, "uptime_seconds": 1,
                   "gpus": [{"index": 0, "utilization_percent": 150, "memory_used_mib": 0, "memory_total_mib": 1}]}),
            "utilization_percent",
        ),
        (json!(dup), "appears twice"),
        (json!([1, 2]), "body"),
    ] {
        let (status, err) = status_json(report(&app, token.expose(), body.clone()).await).await;
        assert_eq!(status, 422, "{body}: {err}");
        assert!(
            err["detail"].as_str().unwrap().contains(says),
            "{body}: {err}"
        );
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM activity_reports").await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM reservation_activity WHERE last_report_at IS NOT NULL"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_flood_of_reports_is_rate_limited_per_token() {
    let app = spawn_app().await;
    let (_, _, token) = active_box(&app, "frank").await;
    let mut statuses = Vec::new();
    for _ in 0..14 {
        statuses.push(
            report(&app, token.expose(), json!(idle_report()))
                .await
                .status()
                .as_u16(),
        );
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(ok, 10, "6 a minute plus a burst of 4: {statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    // Another box is not held back by it.
    let (_, _, other) = active_box(&app, "grace").await;
    assert_eq!(
        report(&app, other.expose(), json!(idle_report()))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn keep_alive_restarts_the_countdown_and_sets_a_longer_limit_within_the_cap() {
    let app = spawn_app_with(&[("IDLE_MAX_MINUTES", "240")]).await;
    let (id, key, token) = active_box(&app, "heidi").await;
    report(&app, token.expose(), json!(idle_report())).await;
    let before = job(&app, &key, id)
        .await
        .activity
        .unwrap()
        .idle_since
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let resp = app
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/keep-alive"),
            Some(&key),
            None,
        )
        .await;
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["action"], "keep_alive");
    let after = job(&app, &key, id).await.activity.unwrap();
    assert!(
        after.idle_since.unwrap() > before,
        "the stretch starts again"
    );

    for (asked, says) in [(30, "at least 60"), (241, "at most 240")] {
        let (status, err) = status_json(
            app.post(
                &format!("/v1/jobs/{id}/keep-alive"),
                &key,
                json!({"idle_minutes": asked}),
            )
            .await,
        )
        .await;
        assert_eq!(status, 422, "{err}");
        assert!(err["detail"].as_str().unwrap().contains(says), "{err}");
    }
    let (status, _) = status_json(
        app.post(
            &format!("/v1/jobs/{id}/keep-alive"),
            &key,
            json!({"idle_minutes": 180}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        job(&app, &key, id).await.activity.unwrap().idle_minutes,
        Some(180)
    );

    // An admin may ask for never.
    let (_, admin) = app.user_with_key("root", Role::Admin).await;
    let (admin_box, _, _) = {
        let id = submit_ok(&app, &admin, t4(1.0)).await;
        activate(&app, id).await;
        let t = AgentToken::generate().unwrap();
        let db = app.db.connect().await;
        gpudev_store::activity::set_agent_token(&db, id, &t.hash())
            .await
            .unwrap();
        (id, (), t)
    };
    let (status, _) = status_json(
        app.post(
            &format!("/v1/jobs/{admin_box}/keep-alive"),
            &admin,
            json!({"idle_minutes": 0}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        job(&app, &admin, admin_box)
            .await
            .activity
            .unwrap()
            .idle_minutes,
        None
    );

    // Someone else's job is not found; a queued job cannot be kept alive.
    let (_, mallory) = app.user_with_key("mallory", Role::User).await;
    let resp = app
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/keep-alive"),
            Some(&mallory),
            None,
        )
        .await;
    assert_eq!(resp.status(), 404);
    let queued = submit_ok(&app, &mallory, t4(1.0)).await;
    let resp = app
        .call(
            Method::POST,
            &format!("/v1/jobs/{queued}/keep-alive"),
            Some(&mallory),
            None,
        )
        .await;
    assert_eq!(resp.status(), 409);
}
