//! Deferred extensions (ADR 15): the leader's tick moves the end once they are due.

use std::time::Duration;

use gpudev_domain::ReservationStatus;
use gpudev_store::reservations;

use crate::common::{Ask, env};

#[tokio::test]
async fn the_tick_applies_a_deferred_extension_once_it_is_due() {
    let env = env().await;
    env.cluster.seed_nodes("t4", 1, 4).await;
    let alice = env.user("alice").await;
    let id = env.submit(&alice, Ask::gpus("t4", 1)).await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    crate::common::until_status(&env, &p, id, ReservationStatus::Active).await;
    let before = env.get(id).await.expires_at.unwrap();
    let mut db = env.db.connect().await;
    let tx = db.transaction().await.unwrap();
    let asked = reservations::extend_request(
        &tx,
        &reservations::ExtendCall {
            reservation_id: id,
            user_id: Some(alice.id),
            hours: 1.0,
            max_lifetime_hours: 72.0,
            actor: "alice",
            idempotency_key: None,
            request_hash: None,
            defer: Some(Duration::from_millis(300)),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(matches!(asked, reservations::Extension::Applied { .. }));

    p.tick().await.unwrap();
    let early = env.get(id).await.expires_at.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    p.tick().await.unwrap();
    p.tick().await.unwrap();
    let after = env.get(id).await.expires_at.unwrap();

    assert_eq!(early, before, "not before it is due");
    assert_eq!(
        (after - before).num_seconds(),
        3600,
        "moved once by its hours"
    );
}
