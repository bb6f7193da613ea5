//! Bookings in the store: read as they stand for the submit's check, and stale for the queued
//! timeout only from their booked start.

use chrono::{Duration, Utc};
use gpudev_domain::{GpuCatalog, ReservationStatus};
use gpudev_store::reservations::{self, Submitted};
use gpudev_store::{Queue, expiry, scheduling};

use crate::common::{reservation_for, user};

#[tokio::test]
async fn queued_bookings_are_read_with_their_start_and_a_booking_is_stale_only_from_it() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let queue = Queue::new("gpu_reservations").unwrap();
    let mut booked = reservation_for(&alice);
    booked.start_at = Some(Utc::now() + Duration::hours(30));
    let plain = reservation_for(&alice);
    for new in [&booked, &plain] {
        let Submitted::Created { .. } = reservations::submit(&mut client, &queue, new)
            .await
            .unwrap()
        else {
            panic!("a first submit must create");
        };
    }
    // Both were submitted 50 hours ago.
    client
        .execute(
            "UPDATE reservations SET created_at = now() - interval '50 hours'",
            &[],
        )
        .await
        .unwrap();

    let rows = scheduling::queued_bookings(&client).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].reservation_id, booked.reservation_id);
    let pending = rows[0].pending(&GpuCatalog::default()).unwrap();
    assert_eq!(
        pending.start_at,
        booked.start_at.map(|t| t.timestamp()),
        "the scheduler sees the booked start"
    );

    let stale = expiry::stale(&client, ReservationStatus::Queued, 48.0 * 3600.0)
        .await
        .unwrap();
    assert_eq!(stale, vec![plain.reservation_id]);
    assert!(
        !expiry::lock_if_stale(
            &client,
            booked.reservation_id,
            ReservationStatus::Queued,
            48.0 * 3600.0
        )
        .await
        .unwrap()
    );
}
