//! Bookings (`start_at` on a submit): accepted only when the scheduler's own pass over its
//! published state would promise exactly that start, refused otherwise with the earliest start
//! that would be; the limits on how far ahead and how many GPU-hours; a cancelled booking frees
//! its time for the next submit at once.

use chrono::{DateTime, Utc};
use gpudev_store::users::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, count, spawn_app, spawn_app_with, status_json};
use crate::jobs_common::publish_state;

/// A booking of `gpus` t4 GPUs for `hours` from `start` (unix seconds).
fn booking(gpus: u32, hours: f64, start: i64) -> Value {
    json!({
        "gpu_type": "t4",
        "gpu_count": gpus,
        "duration_hours": hours,
        "start_at": rfc3339(start),
    })
}

fn rfc3339(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn unix(v: &Value) -> i64 {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .timestamp()
}

async fn book(app: &TestApp, key: &str, body: Value) -> (u16, Value) {
    status_json(app.post("/v1/jobs/submit", key, body).await).await
}

#[tokio::test]
async fn a_booking_that_can_be_honoured_is_stored_with_its_start_and_answered_with_it() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    // The node's four GPUs free in half an hour.
    let now = publish_state(&app, 1800, 0, false).await;
    let start = now + 2 * 3600;

    let (status, body) = book(&app, &key, booking(4, 2.0, start)).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(unix(&body["estimated_start_time"]), start, "{body}");
    let id: Uuid = body["job_id"].as_str().unwrap().parse().unwrap();
    let db = app.db.connect().await;
    let row = db
        .query_one(
            "SELECT status, start_at FROM reservations WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "queued");
    assert_eq!(row.get::<_, DateTime<Utc>>(1).timestamp(), start);
}

#[tokio::test]
async fn a_booking_that_cannot_be_honoured_is_refused_with_the_earliest_start_and_nothing_is_stored()
 {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    // Held for three more hours.
    let now = publish_state(&app, 3 * 3600, 0, false).await;

    let (status, body) = book(&app, &key, booking(4, 1.0, now + 3600)).await;

    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "booking_unavailable");
    assert_eq!(unix(&body["earliest_start"]), now + 3 * 3600, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("earliest start"), "{detail}");
    assert_eq!(count(&app, "SELECT count(*) FROM reservations").await, 0);
    // The start offered is accepted.
    let (status, body) = book(&app, &key, booking(4, 1.0, now + 3 * 3600)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_cancelled_booking_frees_its_time_for_the_next_submit_at_once() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let now = publish_state(&app, 1800, 0, false).await;
    let start = now + 2 * 3600;

    let (status, first) = book(&app, &alice, booking(4, 1.0, start)).await;
    assert_eq!(status, 200, "{first}");
    // No scheduler pass has run since: the refusal comes from the booking as stored.
    let (status, refused) = book(&app, &bob, booking(2, 1.0, start + 1800)).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(unix(&refused["earliest_start"]), start + 3600, "{refused}");

    let id = first["job_id"].as_str().unwrap();
    let resp = app
        .post(&format!("/v1/jobs/{id}/cancel"), &alice, json!({}))
        .await;
    assert_eq!(resp.status(), 200);
    let (status, body) = book(&app, &bob, booking(2, 1.0, start + 1800)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(unix(&body["estimated_start_time"]), start + 1800);
}

#[tokio::test]
async fn a_malformed_past_or_too_distant_start_is_422_naming_start_at() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let now = publish_state(&app, 0, 0, false).await;
    let cases = [
        (json!("tomorrow at nine"), "RFC 3339"),
        (json!(rfc3339(now - 60)), "not in the future"),
        (json!(rfc3339(now + 15 * 86_400)), "more than 14 days ahead"),
        (json!(9), "invalid request body"),
    ];
    for (start_at, says) in cases {
        let body = json!({"gpu_type": "t4", "gpu_count": 1, "start_at": start_at});
        let (status, answer) = book(&app, &key, body).await;
        assert_eq!(status, 422, "{start_at}: {answer}");
        assert_eq!(answer["code"], "validation_error");
        let detail = answer["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{start_at}: {detail}");
    }
    assert_eq!(count(&app, "SELECT count(*) FROM reservations").await, 0);
}

#[tokio::test]
async fn a_server_without_bookings_refuses_start_at_and_still_takes_other_submits() {
    let app = spawn_app_with(&[("MAX_BOOKING_DAYS", "0")]).await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let now = publish_state(&app, 0, 0, false).await;

    let (status, body) = book(&app, &key, booking(1, 1.0, now + 3600)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("MAX_BOOKING_DAYS")
    );
    let (status, body) = book(&app, &key, json!({"gpu_type": "t4", "gpu_count": 1})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn bookings_beyond_the_users_booked_gpu_hours_are_refused() {
    let app = spawn_app_with(&[("MAX_BOOKED_GPU_HOURS_PER_USER", "6")]).await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let now = publish_state(&app, 0, 0, false).await;

    let (status, body) = book(&app, &alice, booking(2, 2.0, now + 3600)).await;
    assert_eq!(status, 200, "{body}");
    // 4 booked + 3 more is beyond 6.
    let (status, body) = book(&app, &alice, booking(1, 3.0, now + 4 * 3600)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "quota_exceeded");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("MAX_BOOKED_GPU_HOURS_PER_USER"),
        "{body}"
    );
    // Within the cap, another user's booking and alice's plain submit are taken.
    let (status, body) = book(&app, &alice, booking(1, 2.0, now + 4 * 3600)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = book(&app, &bob, booking(1, 3.0, now + 4 * 3600)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = book(&app, &alice, json!({"gpu_type": "t4", "gpu_count": 4})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM reservations WHERE start_at IS NOT NULL"
        )
        .await,
        3
    );
}

#[tokio::test]
async fn before_the_schedulers_first_pass_a_booking_cannot_be_promised_and_is_503() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let start = Utc::now().timestamp() + 3600;

    let resp = app
        .post("/v1/jobs/submit", &key, booking(1, 1.0, start))
        .await;
    assert_eq!(resp.headers()["retry-after"], "5");
    let (status, body) = status_json(resp).await;

    assert_eq!(status, 503, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("first pass"));
    assert_eq!(count(&app, "SELECT count(*) FROM reservations").await, 0);
}

/// `GET /v1/gpu/availability?at=…` as the t4 figures, with the time it is for.
async fn t4_bookable_at(app: &TestApp, key: &str, query: &str) -> (u16, Value) {
    let (status, body) =
        status_json(app.get(&format!("/v1/gpu/availability?{query}"), key).await).await;
    if status != 200 {
        return (status, body);
    }
    (status, body["availability"]["t4"]["bookable"].clone())
}

#[tokio::test]
async fn availability_at_a_time_says_what_a_booking_then_would_be_promised() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    // The node's four GPUs are held for three hours.
    let now = publish_state(&app, 3 * 3600, 0, false).await;
    let at = |t: i64| format!("at={}", rfc3339(t).replace('+', "%2B"));

    let (status, before) = t4_bookable_at(&app, &alice, &at(now + 3600)).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["max_on_one_node"], 0, "{before}");
    let (_, after) = t4_bookable_at(&app, &alice, &at(now + 3 * 3600)).await;
    assert_eq!(after["max_on_one_node"], 4, "{after}");
    assert_eq!(after["whole_nodes"], 0, "t4 does not span nodes");

    // Alice books three of them for two hours: one is left then, and all four after.
    let (status, body) = book(&app, &alice, booking(3, 2.0, now + 3 * 3600)).await;
    assert_eq!(status, 200, "{body}");
    let (_, left) = t4_bookable_at(&app, &bob, &at(now + 3 * 3600)).await;
    assert_eq!(left["max_on_one_node"], 1, "{left}");
    let (_, long) = t4_bookable_at(&app, &bob, &format!("{}&hours=2", at(now + 4 * 3600))).await;
    assert_eq!(
        long["max_on_one_node"], 1,
        "two hours from 4 h overlap the booking"
    );
    let (_, later) = t4_bookable_at(&app, &bob, &at(now + 5 * 3600)).await;
    assert_eq!(later["max_on_one_node"], 4, "{later}");
    // What it says can be booked, can.
    let (status, body) = book(&app, &bob, booking(1, 1.0, now + 3 * 3600)).await;
    assert_eq!(status, 200, "{body}");
    let (_, none) = t4_bookable_at(&app, &bob, &at(now + 3 * 3600)).await;
    assert_eq!(none["max_on_one_node"], 0, "{none}");
}

#[tokio::test]
async fn availability_without_at_is_unchanged_and_hours_alone_is_refused() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    publish_state(&app, 3600, 0, false).await;

    let (status, body) = status_json(app.get("/v1/gpu/availability", &key).await).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("at").is_none(), "{body}");
    assert!(
        body["availability"]["t4"].get("bookable").is_none(),
        "{body}"
    );
    for (query, says) in [
        ("hours=2", "give `at` too"),
        ("at=soon", "RFC 3339"),
        ("at=2099-01-01T00:00:00Z", "MAX_BOOKING_DAYS"),
    ] {
        let (status, body) = t4_bookable_at(&app, &key, query).await;
        assert_eq!(status, 422, "{query}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{query}: {detail}");
    }
}

async fn expires_at(db: &tokio_postgres::Client, id: Uuid) -> Option<DateTime<Utc>> {
    db.query_one(
        "SELECT expires_at FROM reservations WHERE reservation_id = $1",
        &[&id],
    )
    .await
    .unwrap()
    .get(0)
}

async fn extend_by_an_hour(app: &TestApp, key: &str, id: Uuid) -> (u16, Value) {
    let body = json!({"extension_hours": 1});
    status_json(app.post(&format!("/v1/jobs/{id}/extend"), key, body).await).await
}

#[tokio::test]
async fn an_extension_into_a_booking_of_the_same_gpus_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    // "someone" holds the whole t4 node in the published state, for another hour.
    let (_, holder) = app.user_with_key("someone", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let now = publish_state(&app, 3600, 0, false).await;
    let running =
        crate::jobs_common::submit_ok(&app, &holder, json!({"gpu_type": "t4", "gpu_count": 4}))
            .await;
    crate::jobs_common::activate(&app, running).await;
    let db = app.db.connect().await;
    db.execute(
        "UPDATE reservations SET node_names = '{t4-node}' WHERE reservation_id = $1",
        &[&running],
    )
    .await
    .unwrap();
    let (status, booked) = book(&app, &bob, booking(2, 1.0, now + 3600)).await;
    assert_eq!(status, 200, "{booked}");
    let expires_before = expires_at(&db, running).await;

    let (status, body) = extend_by_an_hour(&app, &holder, running).await;

    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "conflicts_with_booking");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&rfc3339(now + 3600)),
        "{body}"
    );
    let expires_after = expires_at(&db, running).await;
    assert_eq!(
        expires_after, expires_before,
        "nothing of the extension is kept"
    );
    // Once the booking is cancelled, the same extension is taken.
    let id = booked["job_id"].as_str().unwrap();
    let resp = app
        .post(&format!("/v1/jobs/{id}/cancel"), &bob, json!({}))
        .await;
    assert_eq!(resp.status(), 200);
    let (status, body) = extend_by_an_hour(&app, &holder, running).await;
    assert_eq!(status, 200, "{body}");
}
