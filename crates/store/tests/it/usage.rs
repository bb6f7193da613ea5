//! Usage per window and per day: one rule, so the days of a window add up to the window.

use chrono::{DateTime, NaiveDate, Utc};
use gpudev_store::usage;

use crate::common::user;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn usage_per_day_splits_reservations_at_midnight_and_adds_up_to_the_window() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let alice = user(&client, "alice").await;
    let bob = user(&client, "bob").await;
    // alice: 2 x h100 from 22:00 to 03:00 the next day; bob: 1 x t4 for an hour; and a
    // reservation that never ran.
    for (owner, gpu, count, start, end) in [
        (
            &alice,
            "h100",
            2,
            Some("2026-03-01T22:00:00Z"),
            "2026-03-02T03:00:00Z",
        ),
        (
            &bob,
            "t4",
            1,
            Some("2026-03-02T10:00:00Z"),
            "2026-03-02T11:00:00Z",
        ),
        (&bob, "t4", 8, None, "2026-03-02T11:00:00Z"),
    ] {
        client
            .execute(
                "INSERT INTO reservations (reservation_id, user_id, status, gpu_type, gpu_count, \
                   duration_hours, image, launched_at, ended_at) \
                 VALUES (gen_random_uuid(), $1, 'expired', $2, $3, 2, 'ubuntu', \
                   $4::text::timestamptz, $5::text::timestamptz)",
                &[&owner.user_id, &gpu, &count, &start, &end],
            )
            .await
            .unwrap();
    }
    let (from, to) = (at("2026-03-01T23:00:00Z"), at("2026-03-03T00:00:00Z"));

    let days = usage::gpu_hours_by_day(&client, from, to).await.unwrap();

    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
    let got: Vec<(NaiveDate, &str, &str, f64)> = days
        .iter()
        .map(|d| (d.day, d.username.as_str(), d.gpu_type.as_str(), d.gpu_hours))
        .collect();
    // The window starts at 23:00, so 1 March holds one of alice's hours (x 2 GPUs).
    assert_eq!(
        got,
        vec![
            (day(1), "alice", "h100", 2.0),
            (day(2), "alice", "h100", 6.0),
            (day(2), "bob", "t4", 1.0),
        ]
    );
    let window = usage::gpu_hours(&client, from, to).await.unwrap();
    let total: f64 = window.iter().map(|r| r.gpu_hours).sum();
    let daily: f64 = days.iter().map(|d| d.gpu_hours).sum();
    assert!((total - daily).abs() < 1e-9, "{total} vs {daily}");
}
