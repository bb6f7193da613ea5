//! Idle dev boxes (ADR 18): warned once per idle stretch, released like an expiry with the
//! reason "idle" once the warning time has passed, never for a silent agent, never when the
//! feature is off. The stretch is set as the API's report statement leaves it.

use gpudev_domain::AgentToken;
use gpudev_testkit::FakeConfig;

use crate::common::{Env, Made, env, env_with};

/// An active reservation far from its end whose agent reported 30 s ago, idle for `idle_min`
/// minutes (warned `warned_min` minutes ago, if given).
async fn idle_box(env: &Env, user: &str, idle_min: f64, warned_min: Option<f64>) -> Made {
    let made = env.active_ending_in(user, 600.0).await;
    env.devbox(&made).await;
    let token = AgentToken::generate().unwrap();
    gpudev_store::activity::set_agent_token(&env.client, made.id, &token.hash())
        .await
        .unwrap();
    set_idle(env, &made, Some(idle_min), warned_min, 0.5).await;
    made
}

async fn set_idle(
    env: &Env,
    made: &Made,
    idle_min: Option<f64>,
    warned_min: Option<f64>,
    reported_min_ago: f64,
) {
    env.client
        .execute(
            "UPDATE reservation_activity SET \
               last_report_at = now() - make_interval(secs => $4::float8 * 60), \
               idle_since = now() - make_interval(secs => $2::float8 * 60), \
               idle_warned_at = now() - make_interval(secs => $3::float8 * 60) \
             WHERE reservation_id = $1",
            &[&made.id, &idle_min, &warned_min, &reported_min_ago],
        )
        .await
        .unwrap();
}

fn idle_warnings(events: &[gpudev_store::reservations::Event]) -> usize {
    events
        .iter()
        .filter(|e| e.kind == "warning" && e.details["level"] == "idle")
        .count()
}

#[tokio::test]
async fn an_idle_box_is_warned_once_then_released_like_an_expiry() {
    let env = env().await;
    let made = idle_box(&env, "alice", 50.0, None).await;

    let first = env.run().await;
    let second = env.run().await;
    assert_eq!(first.summary.idle_warnings, 1, "{:?}", first.summary);
    assert_eq!(second.summary.idle_warnings, 0, "one warning per stretch");
    let events = env.events(&made).await;
    assert_eq!(idle_warnings(&events), 1);
    let warning = events
        .iter()
        .find(|e| e.details["level"] == "idle")
        .unwrap();
    assert_eq!(
        warning.reason.as_deref(),
        Some("idle: released in 15 minutes unless used")
    );
    assert_eq!(warning.details["delivery"]["pods_notified"], 1);
    let notices = env.recorder.notices();
    assert_eq!(notices.len(), 1);
    assert!(notices[0].1.idle);
    assert!(notices[0].1.text().contains("gpu-dev keep-alive"));
    assert_eq!(env.status(&made).await, "active", "not before its limit");

    // Past the limit and the warning time: released like an expiry.
    set_idle(&env, &made, Some(61.0), Some(16.0), 0.5).await;
    let third = env.run().await;
    assert_eq!(third.summary.idle_released, 1, "{:?}", third.summary);
    assert_eq!(env.status(&made).await, "expired");
    let ended = env.events(&made).await;
    let last = ended.iter().rev().find(|e| e.kind == "transition").unwrap();
    assert_eq!(last.to_status.as_deref(), Some("expired"));
    assert_eq!(last.reason.as_deref(), Some("idle"));
    assert!(third.summary.objects_deleted >= 1, "its Pod is deleted");
}

#[tokio::test]
async fn the_full_warning_time_is_given_even_when_the_limit_has_passed() {
    let env = env().await;
    // Idle for three hours (the job was not running), never warned: warned now, not released.
    let made = idle_box(&env, "bob", 180.0, None).await;
    let first = env.run().await;
    assert_eq!(first.summary.idle_warnings, 1);
    assert_eq!(first.summary.idle_released, 0);
    let warning = env
        .events(&made)
        .await
        .into_iter()
        .find(|e| e.details["level"] == "idle")
        .unwrap();
    assert_eq!(
        warning.reason.as_deref(),
        Some("idle: released in 15 minutes unless used")
    );
    // Warned five minutes ago: still not.
    set_idle(&env, &made, Some(185.0), Some(5.0), 0.5).await;
    assert_eq!(env.run().await.summary.idle_released, 0);
    assert_eq!(env.status(&made).await, "active");
}

#[tokio::test]
async fn activity_after_the_warning_cancels_the_release() {
    let env = env().await;
    let made = idle_box(&env, "carol", 61.0, Some(16.0)).await;
    // The API's report statement ends the stretch on activity.
    set_idle(&env, &made, None, None, 0.5).await;
    let report = env.run().await;
    assert_eq!(report.summary.idle_released, 0);
    assert_eq!(report.summary.idle_warnings, 0);
    assert_eq!(env.status(&made).await, "active");
}

#[tokio::test]
async fn a_silent_agent_is_noted_once_and_never_released_as_idle() {
    let env = env().await;
    // Idle for hours by its last reports, then the agent stopped reporting ten minutes ago.
    let made = idle_box(&env, "dave", 300.0, Some(60.0)).await;
    set_idle(&env, &made, Some(300.0), Some(60.0), 10.0).await;

    let first = env.run().await;
    let second = env.run().await;
    assert_eq!(first.summary.idle_released, 0);
    assert_eq!(first.summary.agents_silent, 1);
    assert_eq!(first.summary.agents_silent_noted, 1);
    assert_eq!(second.summary.agents_silent, 1);
    assert_eq!(
        second.summary.agents_silent_noted, 0,
        "noted once per silence"
    );
    assert_eq!(env.status(&made).await, "active");
    let notes: Vec<_> = env
        .events(&made)
        .await
        .into_iter()
        .filter(|e| e.details["agent"] == "silent")
        .collect();
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("stopped reporting")
    );
}

#[tokio::test]
async fn with_idle_minutes_zero_nothing_is_warned_or_released() {
    let env = env_with(FakeConfig::default(), &[("IDLE_MINUTES", "0")]).await;
    let made = idle_box(&env, "erin", 300.0, Some(60.0)).await;
    let report = env.run().await;
    assert_eq!(report.summary.idle_warnings, 0);
    assert_eq!(report.summary.idle_released, 0);
    assert_eq!(env.status(&made).await, "active");
}

#[tokio::test]
async fn a_reservation_that_asked_for_a_longer_limit_or_never_is_held_to_it() {
    let env = env().await;
    let longer = idle_box(&env, "frank", 100.0, None).await;
    env.sql(&format!(
        "UPDATE reservations SET idle_minutes = 240 WHERE reservation_id = '{}'",
        longer.id
    ))
    .await;
    let never = idle_box(&env, "grace", 1000.0, Some(500.0)).await;
    env.sql(&format!(
        "UPDATE reservations SET idle_minutes = 0 WHERE reservation_id = '{}'",
        never.id
    ))
    .await;
    let report = env.run().await;
    assert_eq!(report.summary.idle_warnings, 0, "{:?}", report.summary);
    assert_eq!(report.summary.idle_released, 0);
    set_idle(&env, &longer, Some(230.0), None, 0.5).await;
    assert_eq!(env.run().await.summary.idle_warnings, 1);
}

#[tokio::test]
async fn the_idle_warning_goes_to_the_webhook_as_its_own_event() {
    let (url, bodies) = crate::warnings::hook_server(200).await;
    let env = env_with(FakeConfig::default(), &[("EXPIRY_WEBHOOK_URL", &url)]).await;
    let made = idle_box(&env, "ivan", 50.0, None).await;

    let report = env.run().await;

    assert_eq!(report.summary.idle_warnings, 1);
    assert_eq!(report.summary.webhooks_posted, 1);
    let bodies = bodies.lock().unwrap().clone();
    let body: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(body["event"], "reservation.idle_warning");
    assert_eq!(body["reservation_id"], made.id.to_string());
    assert_eq!(body["level"], "idle");
    assert_eq!(body["minutes_left"], 15);
    assert!(body["message"].as_str().unwrap().contains("keep-alive"));
    let warning = env
        .events(&made)
        .await
        .into_iter()
        .find(|e| e.details["level"] == "idle")
        .unwrap();
    assert_eq!(warning.details["delivery"]["webhook"], "posted");
}
