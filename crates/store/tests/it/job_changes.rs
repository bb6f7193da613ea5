//! The record of whose jobs changed: every committed write to reservations or their events is
//! reported to each reader once, whatever order the transactions committed in.

use gpudev_domain::ReservationStatus::Preparing;
use gpudev_store::job_changes;
use gpudev_store::reservations::{self, Transition};
use gpudev_store::{Queue, users::User};
use tokio_postgres::Client;

use crate::common::{count, pool, reservation_for, user};

async fn submit(client: &mut Client, owner: &User) -> uuid::Uuid {
    let new = reservation_for(owner);
    reservations::submit(client, &Queue::new("gpu_reservations").unwrap(), &new)
        .await
        .unwrap();
    new.reservation_id
}

#[tokio::test]
async fn a_committed_change_is_reported_once_with_its_owner() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let bob = user(&client, "bob").await;
    let start = job_changes::mark(&client).await.unwrap();

    let id = submit(&mut client, &alice).await;
    let (changed, next) = job_changes::since(&client, &start).await.unwrap();
    let (again, next) = job_changes::since(&client, &next).await.unwrap();
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
    submit(&mut client, &bob).await;
    let (both, _) = job_changes::since(&client, &next).await.unwrap();

    assert_eq!(
        changed,
        vec![alice.user_id],
        "deduplicated: the row and its event"
    );
    assert!(again.is_empty(), "{again:?}");
    let mut both = both;
    both.sort_unstable();
    assert_eq!(both, vec![alice.user_id, bob.user_id]);
}

#[tokio::test]
async fn a_transaction_that_commits_after_a_later_one_is_still_reported() {
    let db = gpudev_testkit::test_db().await;
    let mut setup = db.connect().await;
    let alice = user(&setup, "alice").await;
    let bob = user(&setup, "bob").await;
    let alice_job = submit(&mut setup, &alice).await;
    let bob_job = submit(&mut setup, &bob).await;
    let reader = db.connect().await;
    let start = job_changes::mark(&reader).await.unwrap();

    // The older transaction (alice's) writes first and commits last.
    let first = db.connect().await;
    first.batch_execute("BEGIN").await.unwrap();
    first
        .execute(
            "UPDATE reservations SET name = 'a' WHERE reservation_id = $1",
            &[&alice_job],
        )
        .await
        .unwrap();
    setup
        .execute(
            "UPDATE reservations SET name = 'b' WHERE reservation_id = $1",
            &[&bob_job],
        )
        .await
        .unwrap();
    let (seen_first, next) = job_changes::since(&reader, &start).await.unwrap();
    first.batch_execute("COMMIT").await.unwrap();
    let (seen_later, _) = job_changes::since(&reader, &next).await.unwrap();

    assert_eq!(seen_first, vec![bob.user_id]);
    assert_eq!(seen_later, vec![alice.user_id]);
}

#[tokio::test]
async fn one_statement_over_many_users_and_an_event_alone_are_recorded() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let mut owners = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let owner = user(&client, name).await;
        submit(&mut client, &owner).await;
        owners.push(owner.user_id);
    }
    let start = job_changes::mark(&client).await.unwrap();

    client
        .execute("UPDATE reservations SET queue_position = 1", &[])
        .await
        .unwrap();
    let (mut all, next) = job_changes::since(&client, &start).await.unwrap();
    client
        .execute(
            "INSERT INTO reservation_events (reservation_id, kind, reason, actor) \
             SELECT reservation_id, 'note', 'hello', 'expiry' FROM reservations r \
             JOIN users u USING (user_id) WHERE u.username = 'bob'",
            &[],
        )
        .await
        .unwrap();
    let (bob, _) = job_changes::since(&client, &next).await.unwrap();

    all.sort_unstable();
    assert_eq!(all, owners);
    assert_eq!(bob, vec![owners[1]]);
}

#[tokio::test]
async fn purging_keeps_what_a_reader_has_not_seen() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    submit(&mut client, &alice).await;
    let seen = job_changes::mark(&client).await.unwrap();
    submit(&mut client, &alice).await;
    let before = count(&client, "SELECT count(*) FROM job_changes").await;

    let purged = job_changes::purge_before(&client, &seen).await.unwrap();
    let (after_purge, _) = job_changes::since(&client, &seen).await.unwrap();

    // Transaction ids are cluster-wide: a transaction of another test running when `seen` was
    // taken holds its xmin back, so the first submit's rows may stay; the later ones always do.
    assert!(
        purged <= 2,
        "only the first submit's row and event; {before} in all"
    );
    assert_eq!(
        after_purge,
        vec![alice.user_id],
        "the later submit is still reported"
    );
    // Once every transaction that was running has ended, a fresh mark lets all of them go.
    let mut left = before;
    for _ in 0..100 {
        let now = job_changes::mark(&client).await.unwrap();
        job_changes::purge_before(&client, &now).await.unwrap();
        left = count(&client, "SELECT count(*) FROM job_changes").await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0);
}

/// A batch of submits begun with `begin_submits` records its owners once, in its own statement
/// (the insert triggers stand aside); written otherwise, the triggers record them. Either way a
/// reader is told of every owner.
#[tokio::test]
async fn a_batch_of_submits_records_each_owner_once_and_other_writers_through_the_triggers() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let bob = user(&client, "bob").await;
    let pool = pool(&db, 1).await;
    let conn = pool.get().await.unwrap();
    let queue = Queue::new("gpu_reservations").unwrap();
    let start = job_changes::mark(&client).await.unwrap();

    let news = [
        reservation_for(&alice),
        reservation_for(&alice),
        reservation_for(&bob),
    ];
    let submits: Vec<_> = news
        .iter()
        .map(|n| (n, reservations::Checks::default(), None))
        .collect();
    conn.batch_execute(reservations::begin_submits())
        .await
        .unwrap();
    let outcomes = reservations::submit_audited_committing(&conn, &queue, &submits, || {})
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 3);
    let batch_rows = count(&client, "SELECT count(*) FROM job_changes").await;
    let (told, next) = job_changes::since(&client, &start).await.unwrap();

    // One row per owner: not one per trigger (reservations, events) on top of the statement's.
    assert_eq!(batch_rows, 2);
    let mut told = told;
    told.sort_unstable();
    assert_eq!(told, vec![alice.user_id, bob.user_id]);
    let setting: Option<String> = client
        .query_one(
            "SELECT current_setting($1, true)",
            &[&job_changes::RECORDED_BY_STATEMENT],
        )
        .await
        .unwrap()
        .get(0);
    assert_ne!(
        setting.as_deref(),
        Some("on"),
        "only the batch's transaction"
    );

    // A submit written without it: the triggers record it (the row and its event).
    submit(&mut client, &bob).await;
    assert_eq!(
        count(&client, "SELECT count(*) FROM job_changes").await,
        batch_rows + 2
    );
    let (told, _) = job_changes::since(&client, &next).await.unwrap();
    assert_eq!(told, vec![bob.user_id]);
}
