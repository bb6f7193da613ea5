//! Status changes are guarded updates that record an event, or change nothing at all.

use crate::common::{count, reservation_for, user};
use gpudev_domain::ReservationStatus::{
    self, Active, Cancelled, Expired, Failed, Preparing, Queued,
};
use gpudev_store::reservations::{self, Transition};
use gpudev_store::{Queue, StoreError};
use tokio_postgres::Client;
use uuid::Uuid;

async fn queued_reservation(client: &mut Client) -> Uuid {
    let alice = user(client, "alice").await;
    let queue = Queue::new("gpu_reservations").unwrap();
    let new = reservation_for(&alice);
    reservations::submit(client, &queue, &new).await.unwrap();
    new.reservation_id
}

fn to(status: ReservationStatus) -> Transition<'static> {
    Transition {
        to: status,
        reason: Some("test"),
        actor: "processor",
    }
}

#[tokio::test]
async fn the_happy_path_sets_times_and_records_each_step() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let id = queued_reservation(&mut client).await;

    let preparing = reservations::transition(&client, id, to(Preparing))
        .await
        .unwrap();
    let active = reservations::transition(&client, id, to(Active))
        .await
        .unwrap();
    let expired = reservations::transition(&client, id, to(Expired))
        .await
        .unwrap();

    assert_eq!(preparing.status, Preparing);
    assert!(preparing.admitted_at.is_some());
    assert_eq!(active.status, Active);
    let (launched, expires) = (active.launched_at.unwrap(), active.expires_at.unwrap());
    assert_eq!(
        (expires - launched).num_seconds(),
        5400,
        "1.5 h from activation"
    );
    assert_eq!(expired.status, Expired);
    assert!(expired.ended_at.is_some());
    let steps: Vec<(Option<String>, Option<String>)> = reservations::events(&client, id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.from_status, e.to_status))
        .collect();
    let s = |x: &str| Some(x.to_owned());
    assert_eq!(
        steps,
        vec![
            (None, s("queued")),
            (s("queued"), s("preparing")),
            (s("preparing"), s("active")),
            (s("active"), s("expired")),
        ]
    );
}

#[tokio::test]
async fn an_illegal_transition_is_refused_and_leaves_no_trace() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let id = queued_reservation(&mut client).await;
    let events_before = count(&client, "SELECT count(*) FROM reservation_events").await;

    for target in [Active, Expired, Queued] {
        let err = reservations::transition(&client, id, to(target))
            .await
            .unwrap_err();
        match err {
            StoreError::Transition(t) => {
                assert_eq!(t.from, Queued);
                assert_eq!(t.to, target);
            }
            other => panic!("expected a refused transition, got {other:?}"),
        }
    }

    let r = reservations::get(&client, id).await.unwrap();
    assert_eq!(r.status, Queued);
    assert!(r.launched_at.is_none() && r.ended_at.is_none());
    assert_eq!(
        count(&client, "SELECT count(*) FROM reservation_events").await,
        events_before
    );
}

#[tokio::test]
async fn terminal_states_never_change() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let id = queued_reservation(&mut client).await;
    let failed = reservations::transition(
        &client,
        id,
        Transition {
            to: Failed,
            reason: Some("image pull failed"),
            actor: "processor",
        },
    )
    .await
    .unwrap();
    assert_eq!(failed.failure_reason.as_deref(), Some("image pull failed"));

    for target in ReservationStatus::ALL {
        assert!(
            reservations::transition(&client, id, to(target))
                .await
                .is_err(),
            "failed -> {target} must be refused"
        );
    }
    assert_eq!(reservations::get(&client, id).await.unwrap().status, Failed);
}

#[tokio::test]
async fn racing_transitions_apply_in_some_order_and_record_exactly_what_applied() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let owner = user(&client, "racer").await;
    let queue = Queue::new("gpu_reservations").unwrap();
    let (a, b) = (db.connect().await, db.connect().await);

    for _ in 0..10 {
        let new = reservation_for(&owner);
        reservations::submit(&mut client, &queue, &new)
            .await
            .unwrap();
        let id = new.reservation_id;

        let (admit, cancel) = tokio::join!(
            reservations::transition(&a, id, to(Preparing)),
            reservations::transition(&b, id, to(Cancelled)),
        );

        // Either order is legal (queued -> preparing -> cancelled, or queued -> cancelled with the
        // admission refused), but what is stored must match what was acknowledged.
        assert!(
            cancel.is_ok(),
            "cancel is legal from queued and from preparing"
        );
        let status = reservations::get(&client, id).await.unwrap().status;
        assert_eq!(status, Cancelled);
        let applied = reservations::events(&client, id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.from_status.is_some())
            .count();
        assert_eq!(applied, 1 + usize::from(admit.is_ok()));
    }
}

#[tokio::test]
async fn a_reservation_sent_back_to_the_queue_loses_its_placement() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let id = queued_reservation(&mut client).await;
    reservations::transition(&client, id, to(Preparing))
        .await
        .unwrap();

    let back = reservations::transition(&client, id, to(Queued))
        .await
        .unwrap();

    assert_eq!(back.status, Queued);
    assert!(back.admitted_at.is_none());
    assert!(back.node_names.is_empty());
}

#[tokio::test]
async fn an_unknown_reservation_is_not_found() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;

    let err = reservations::transition(&client, Uuid::new_v4(), to(Preparing))
        .await
        .unwrap_err();

    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}
