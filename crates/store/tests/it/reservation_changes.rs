//! Changes the API makes to reservations besides status transitions: submitting inside the
//! caller's transaction, extending, Jupyter and extra users, and the reads quotas and availability
//! use.

use crate::common::{count, reservation_for, user};
use gpudev_domain::GithubUser;
use gpudev_domain::ReservationStatus::{Active, Cancelled, Preparing, Queued};
use gpudev_store::reservations::{self, Change, Submitted, Transition};
use gpudev_store::{Queue, StoreError};
use tokio_postgres::Client;
use uuid::Uuid;

fn queue() -> Queue {
    Queue::new("gpu_reservations").unwrap()
}

async fn submitted(client: &mut Client, name: &str) -> Uuid {
    let owner = user(client, name).await;
    let new = reservation_for(&owner);
    reservations::submit(client, &queue(), &new).await.unwrap();
    new.reservation_id
}

async fn make_active(client: &Client, id: Uuid) {
    for to in [Preparing, Active] {
        reservations::transition(
            client,
            id,
            Transition {
                to,
                reason: None,
                actor: "processor",
            },
        )
        .await
        .unwrap();
    }
}

fn applied(c: Change) -> reservations::Reservation {
    match c {
        Change::Applied(r) => *r,
        Change::Refused(r) => panic!("expected the change to apply, it was refused: {r:?}"),
    }
}

fn refused(c: Change) -> reservations::Reservation {
    match c {
        Change::Refused(r) => *r,
        Change::Applied(r) => panic!("expected the change to be refused, it applied: {r:?}"),
    }
}

#[tokio::test]
async fn submit_in_writes_nothing_until_the_caller_commits() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let mut new = reservation_for(&alice);
    new.request_hash = Some("ab".repeat(32));
    new.disk_size_gb = Some(200);

    let tx = client.transaction().await.unwrap();
    let out = reservations::submit_in(&tx, &queue(), &new).await.unwrap();
    assert!(matches!(out, Submitted::Created { .. }));
    tx.rollback().await.unwrap();
    assert_eq!(count(&client, "SELECT count(*) FROM reservations").await, 0);
    assert!(queue().read(&client, 0, 10).await.unwrap().is_empty());

    let tx = client.transaction().await.unwrap();
    let Submitted::Created { reservation, .. } =
        reservations::submit_in(&tx, &queue(), &new).await.unwrap()
    else {
        panic!("a first submit must create");
    };
    tx.commit().await.unwrap();
    assert_eq!(reservation.request_hash, new.request_hash);
    assert_eq!(reservation.command, None, "a command is kept sealed only");
    assert_eq!(reservation.disk_size_gb, Some(200));
    assert_eq!(reservation.jupyter_token, None);
    assert_eq!(queue().read(&client, 0, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_taken_id_is_a_conflict_that_writes_nothing_and_a_reused_key_is_found_by_owner() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let bob = user(&client, "bob").await;
    let mut first = reservation_for(&alice);
    first.idempotency_key = Some("k-1".into());
    reservations::submit(&mut client, &queue(), &first)
        .await
        .unwrap();

    let mut bobs = reservation_for(&bob);
    bobs.reservation_id = first.reservation_id;
    let err = reservations::submit(&mut client, &queue(), &bobs)
        .await
        .unwrap_err();
    assert!(
        matches!(err, gpudev_store::StoreError::Conflict(_)),
        "{err:?}"
    );
    let bobs_rows: i64 = client
        .query_one(
            "SELECT count(*) FROM reservations WHERE user_id = $1",
            &[&bob.user_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bobs_rows, 0, "the refused submit wrote nothing");

    let found = reservations::find_by_idempotency_key(&client, alice.user_id, "k-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.reservation_id, first.reservation_id);
    assert!(
        reservations::find_by_idempotency_key(&client, bob.user_id, "k-1")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn extend_moves_expiry_resets_warnings_and_records_an_event() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let id = submitted(&mut client, "alice").await;
    make_active(&client, id).await;
    client
        .execute(
            "UPDATE reservations SET warnings_sent = '{30m,15m}' WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let before = reservations::get(&client, id).await.unwrap();

    let after = applied(
        reservations::extend(&client, id, 0.5, 72.0, "alice")
            .await
            .unwrap(),
    );

    let moved = after.expires_at.unwrap() - before.expires_at.unwrap();
    assert_eq!(moved.num_seconds(), 1800);
    assert_eq!(after.extended_hours, 0.5);
    assert!(after.warnings_sent.is_empty(), "warnings are sent again");
    let events = reservations::events(&client, id).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.kind, "extend");
    assert_eq!(last.actor, "alice");
    assert_eq!(last.details["extension_hours"], 0.5);
}

#[tokio::test]
async fn extend_is_refused_past_the_lifetime_cap_and_once_ended() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let id = submitted(&mut client, "alice").await;
    let events_before = count(&client, "SELECT count(*) FROM reservation_events").await;

    // Queued: it runs longer once it starts; no end yet.
    let queued = applied(
        reservations::extend(&client, id, 0.25, 72.0, "alice")
            .await
            .unwrap(),
    );
    assert_eq!((queued.status, queued.extended_hours), (Queued, 0.25));
    assert_eq!(queued.expires_at, None);

    make_active(&client, id).await;
    let active = reservations::get(&client, id).await.unwrap();
    let ran = active.expires_at.unwrap() - active.launched_at.unwrap();
    assert_eq!(
        ran.num_seconds(),
        6300,
        "1.5 h booked + 0.25 h counted from the start"
    );
    // Booked 1.75 h: 0.25 more reaches a 2 h cap exactly, anything more passes it.
    let over = refused(
        reservations::extend(&client, id, 0.35, 2.0, "alice")
            .await
            .unwrap(),
    );
    assert_eq!(over.extended_hours, 0.25);
    let exact = applied(
        reservations::extend(&client, id, 0.25, 2.0, "alice")
            .await
            .unwrap(),
    );
    assert_eq!(exact.extended_hours, 0.5);
    refused(
        reservations::extend(&client, id, 0.1, 2.0, "alice")
            .await
            .unwrap(),
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM reservation_events WHERE kind = 'extend'"
        )
        .await,
        2
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM reservation_events").await,
        events_before + 4,
        "two transitions and two extensions"
    );
    reservations::transition(
        &client,
        id,
        Transition {
            to: Cancelled,
            reason: None,
            actor: "alice",
        },
    )
    .await
    .unwrap();
    refused(
        reservations::extend(&client, id, 0.1, 72.0, "alice")
            .await
            .unwrap(),
    );

    let missing = reservations::extend(&client, Uuid::new_v4(), 1.0, 72.0, "x").await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

#[tokio::test]
async fn racing_extensions_never_pass_the_cap_together() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let id = submitted(&mut client, "alice").await;
    make_active(&client, id).await;
    let (a, b) = (db.connect().await, db.connect().await);

    // 1.5 h booked, cap 3 h: each 1 h extension fits alone, not both.
    let (x, y) = tokio::join!(
        reservations::extend(&a, id, 1.0, 3.0, "alice"),
        reservations::extend(&b, id, 1.0, 3.0, "alice"),
    );

    let applied_count = [x.unwrap(), y.unwrap()]
        .iter()
        .filter(|c| matches!(c, Change::Applied(_)))
        .count();
    assert_eq!(applied_count, 1);
    assert_eq!(
        reservations::get(&client, id).await.unwrap().extended_hours,
        1.0
    );
}

#[tokio::test]
async fn jupyter_and_extra_users_change_live_reservations_only() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let id = submitted(&mut client, "alice").await;

    let r = applied(
        reservations::set_jupyter(&client, id, true, "alice")
            .await
            .unwrap(),
    );
    assert!(r.jupyter_enabled);
    let r = applied(
        reservations::add_secondary_user(&client, id, &github("octocat"), "alice")
            .await
            .unwrap(),
    );
    let r2 = applied(
        reservations::add_secondary_user(&client, id, &github("octocat"), "alice")
            .await
            .unwrap(),
    );
    assert_eq!(r.secondary_users, vec![github("octocat")]);
    assert_eq!(r2.secondary_users, r.secondary_users, "added once");

    reservations::transition(
        &client,
        id,
        Transition {
            to: Preparing,
            reason: None,
            actor: "processor",
        },
    )
    .await
    .unwrap();
    // Preparing: recorded, and the processor brings the dev box up to date.
    let r = applied(
        reservations::set_jupyter(&client, id, false, "alice")
            .await
            .unwrap(),
    );
    assert!(!r.jupyter_enabled);
    let r = applied(
        reservations::add_secondary_user(&client, id, &github("hubot"), "alice")
            .await
            .unwrap(),
    );
    assert_eq!(r.secondary_users, vec![github("octocat"), github("hubot")]);

    reservations::transition(
        &client,
        id,
        Transition {
            to: Active,
            reason: None,
            actor: "processor",
        },
    )
    .await
    .unwrap();
    let r = applied(
        reservations::set_jupyter(&client, id, true, "alice")
            .await
            .unwrap(),
    );
    assert!(r.jupyter_enabled);
    reservations::transition(
        &client,
        id,
        Transition {
            to: Cancelled,
            reason: None,
            actor: "alice",
        },
    )
    .await
    .unwrap();
    let r = refused(
        reservations::set_jupyter(&client, id, false, "alice")
            .await
            .unwrap(),
    );
    assert!(r.jupyter_enabled, "nothing changes once it has ended");
    refused(
        reservations::add_secondary_user(&client, id, &github("x"), "alice")
            .await
            .unwrap(),
    );
    let notes = count(
        &client,
        "SELECT count(*) FROM reservation_events WHERE kind = 'note'",
    )
    .await;
    assert_eq!(notes, 6, "one note per applied change");
}

#[tokio::test]
async fn user_load_and_live_reservations_count_only_what_is_live() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let new = reservation_for(&alice);
        reservations::submit(&mut client, &queue(), &new)
            .await
            .unwrap();
        ids.push(new.reservation_id);
    }
    make_active(&client, ids[1]).await;
    reservations::transition(
        &client,
        ids[2],
        Transition {
            to: Cancelled,
            reason: None,
            actor: "alice",
        },
    )
    .await
    .unwrap();

    let load = reservations::user_load(&client, alice.user_id)
        .await
        .unwrap();
    let live = reservations::live_counts(&client).await.unwrap();

    assert_eq!((load.reservations, load.gpus), (2, 8));
    let of = |status| {
        live.iter()
            .find(|c| c.status == status)
            .map(|c| (c.gpu_type.as_str(), c.reservations, c.gpus))
    };
    assert_eq!(live.len(), 2, "{live:?}");
    assert_eq!(of(Queued), Some(("h100", 1, 4)));
    assert_eq!(of(Active), Some(("h100", 1, 4)));
    let histories = reservations::events_of_many(&client, &ids).await.unwrap();
    assert_eq!(histories[&ids[0]].len(), 1);
    assert_eq!(histories[&ids[1]].len(), 3);
}

#[tokio::test]
async fn concurrent_holders_of_the_submit_lock_take_turns() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let alice = user(&client, "alice").await;
    let mut a = db.connect().await;
    let mut b = db.connect().await;

    let ta = a.transaction().await.unwrap();
    reservations::lock_user_submissions(&ta, alice.user_id)
        .await
        .unwrap();
    let tb = b.transaction().await.unwrap();
    let waiting = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        reservations::lock_user_submissions(&tb, alice.user_id),
    )
    .await;
    assert!(waiting.is_err(), "the second holder waits");
    ta.commit().await.unwrap();
    // The timed-out attempt left tb's statement running; a fresh connection gets the lock now.
    drop(tb);
    let mut c = db.connect().await;
    let tc = c.transaction().await.unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reservations::lock_user_submissions(&tc, alice.user_id),
    )
    .await
    .unwrap_or_else(|_| panic!("the lock is free once the first transaction ends"))
    .unwrap();
}

fn github(login: &str) -> GithubUser {
    GithubUser::parse(login).unwrap()
}
