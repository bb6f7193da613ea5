//! Level-triggered behaviour: cancel from any state leaves nothing, a redelivered message
//! creates nothing twice, and a processor killed mid-pass leaves nothing its successor cannot
//! finish.

use std::time::Duration;

use gpudev_domain::ReservationStatus;
use gpudev_testkit::kube::{Fault, FaultKind, Verb};

use crate::common::{Ask, env, fake_env, until_status};

#[tokio::test]
async fn cancel_during_preparing_leaves_no_object_behind() {
    let env = env().await;
    env.cluster.seed_nodes("h100", 1, 8).await;
    let alice = env.user("slow-alice").await;
    let id = env.submit(&alice, Ask::gpus("h100", 8)).await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    assert_eq!(env.status(id).await, ReservationStatus::Preparing);
    assert_eq!(env.objects_of(id).await, 3);

    env.cancel(id).await;
    let outcome = p.process_once().await.unwrap();
    assert_eq!(outcome.archived, 1);
    env.assert_gone(id).await;
    assert_eq!(env.status(id).await, ReservationStatus::Cancelled);
    // The freed GPUs go to the next reservation.
    let next = env.submit(&alice, Ask::gpus("h100", 8)).await;
    p.process_once().await.unwrap();
    assert_eq!(env.status(next).await, ReservationStatus::Preparing);
}

#[tokio::test]
async fn cancel_works_from_queued_and_active_too() {
    let env = env().await;
    env.cluster.seed_nodes("h100", 1, 8).await;
    let alice = env.user("alice").await;
    let active = env.submit(&alice, Ask::gpus("h100", 8)).await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    until_status(&env, &p, active, ReservationStatus::Active).await;
    let queued = env.submit(&alice, Ask::gpus("h100", 8)).await;
    p.process_once().await.unwrap();
    assert_eq!(env.status(queued).await, ReservationStatus::Queued);

    env.cancel(queued).await;
    env.cancel(active).await;
    let outcome = p.process_once().await.unwrap();
    assert_eq!(outcome.archived, 2);
    env.assert_gone(active).await;
    env.assert_gone(queued).await;
}

#[tokio::test]
async fn objects_of_a_reservation_cancelled_without_a_message_are_removed_by_reconciliation() {
    let env = env().await;
    env.cluster.seed_nodes("t4", 1, 4).await;
    let alice = env.user("alice").await;
    let id = env.submit(&alice, Ask::gpus("t4", 1)).await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    env.cancel(id).await;
    // The hint is lost.
    let db = env.db.connect().await;
    db.execute(&format!("DELETE FROM pgmq.q_{}", env.queue().name()), &[])
        .await
        .unwrap();
    let report = p.reconcile().await.unwrap();
    assert_eq!(report.cleaned, vec![id]);
    env.assert_gone(id).await;
}

#[tokio::test]
async fn a_redelivered_message_creates_nothing_twice() {
    let Some(env) = fake_env("injects faults or counts requests").await else {
        return;
    };
    env.cluster.seed_nodes("h100", 1, 8).await;
    let alice = env.user("alice").await;
    let id = env.submit(&alice, Ask::gpus("h100", 2)).await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    let before = (
        env.creates("pods"),
        env.creates("services"),
        env.creates("secrets"),
    );
    assert_eq!(before, (1, 1, 1));

    // The same hint again (a duplicate send, or a redelivery after a lost archive).
    let hint = serde_json::json!({
        "action": "create", "reservation_id": id, "username": "alice",
        "requested_at": chrono::Utc::now(),
    });
    env.send_raw(hint.clone()).await;
    env.send_raw(hint).await;
    let outcome = p.process_once().await.unwrap();
    assert_eq!(outcome.archived, 2);
    p.reconcile().await.unwrap();
    assert_eq!(
        (
            env.creates("pods"),
            env.creates("services"),
            env.creates("secrets")
        ),
        before,
        "no second create was even attempted"
    );
    assert_eq!(env.fake().count(Verb::Create, "pods"), 1);
    assert_eq!(env.objects_of(id).await, 3);
}

#[tokio::test]
async fn objects_deleted_behind_the_processors_back_are_created_again() {
    let env = env().await;
    env.cluster.seed_nodes("h100", 1, 8).await;
    // Slow to start on the real control plane, so it is still preparing when the Service goes.
    let alice = env.user("slow-alice").await;
    let id = env.submit(&alice, Ask::gpus("h100", 2)).await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    let services: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(env.cluster.client(), env.ns());
    let name = env.objects("services").await[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    services.delete(&name, &Default::default()).await.unwrap();
    let report = p.reconcile().await.unwrap();
    assert_eq!(report.driven, vec![id]);
    assert_eq!(env.objects_of(id).await, 3);
    if !env.cluster.is_real() {
        assert_eq!(env.creates("pods"), 1, "the pod was not touched");
    }
}

#[tokio::test]
async fn a_processor_killed_between_admission_and_object_creation_is_finished_by_its_successor() {
    let Some(env) = fake_env("injects faults or counts requests").await else {
        return;
    };
    env.cluster.seed_nodes("h100", 1, 8).await;
    let alice = env.user("alice").await;
    let id = env.submit(&alice, Ask::gpus("h100", 4)).await;
    // The first object create hangs: the admission is committed, nothing exists yet.
    env.fake().inject(
        Fault::new(FaultKind::Delay(Duration::from_secs(30)))
            .verb(Verb::Create)
            .resource("secrets"),
    );
    let first = env.leader().await;
    let pass = {
        let first = first.clone();
        tokio::spawn(async move { first.scheduler_pass().await })
    };
    crate::common::wait_status(
        &env,
        id,
        ReservationStatus::Preparing,
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    pass.abort();
    let _ = pass.await;
    first.step_down();
    drop(first);
    env.assert_gone(id).await;
    env.fake().clear_faults();

    let second = env.leader().await;
    // The hint of the submission is still in the queue (it was never archived): either it or
    // the reconciliation finishes the job; run both.
    second.reconcile().await.unwrap();
    second.process_once().await.unwrap();
    until_status(&env, &second, id, ReservationStatus::Active).await;
    assert_eq!(env.objects_of(id).await, 3);
    assert_eq!(env.objects("pods").await.len(), 1);
    // Nothing else was admitted or lost.
    assert_eq!(env.get(id).await.node_names.len(), 1);
}

#[tokio::test]
async fn a_processor_killed_mid_pass_before_its_writes_commit_leaves_reservations_queued() {
    let Some(env) = fake_env("injects faults or counts requests").await else {
        return;
    };
    env.cluster.seed_nodes("t4", 4, 4).await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    let mut ids = Vec::new();
    for user in [&alice, &bob] {
        for _ in 0..3 {
            ids.push(env.submit(user, Ask::gpus("t4", 4)).await);
        }
    }
    // Listing nodes hangs, so the pass is killed before deciding anything.
    env.fake().inject(
        Fault::new(FaultKind::Delay(Duration::from_secs(30)))
            .verb(Verb::List)
            .resource("nodes"),
    );
    let first = env.leader().await;
    let pass = {
        let first = first.clone();
        tokio::spawn(async move { first.process_once().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    pass.abort();
    let _ = pass.await;
    drop(first);
    env.fake().clear_faults();
    for id in &ids {
        assert_eq!(env.status(*id).await, ReservationStatus::Queued);
    }

    let second = env.leader().await;
    env.expire_visibility().await;
    let outcome = second.process_once().await.unwrap();
    assert_eq!(outcome.pass.unwrap().admitted.len(), 4);
    for id in &ids {
        let status = env.status(*id).await;
        assert!(
            matches!(
                status,
                ReservationStatus::Preparing | ReservationStatus::Queued
            ),
            "{status}"
        );
    }
    assert_eq!(env.objects("pods").await.len(), 4);
}

#[tokio::test]
async fn reconciliation_from_the_watch_cache_repairs_and_cleans_up_like_listing() {
    let env = env().await;
    env.cluster.seed_nodes("h100", 1, 8).await;
    let alice = env.user("alice").await;
    let p = env.leader().await;
    let view = p.start_cluster_view();
    view.wait_until_ready().await;
    let kept = env.submit(&alice, Ask::gpus("h100", 2)).await;
    let cancelled = env.submit(&alice, Ask::gpus("h100", 2)).await;
    p.process_once().await.unwrap();
    while view.snapshot().1.len() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // One loses its SSH Service; the other is cancelled and its hint lost.
    let services: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(env.cluster.client(), env.ns());
    let short = &kept.simple().to_string()[..12];
    services
        .delete(&format!("gpudev-{short}-ssh"), &Default::default())
        .await
        .unwrap();
    env.cancel(cancelled).await;
    let db = env.db.connect().await;
    db.execute(&format!("DELETE FROM pgmq.q_{}", env.queue().name()), &[])
        .await
        .unwrap();

    let report = p.reconcile().await.unwrap();
    assert_eq!(report.driven, vec![kept]);
    assert_eq!(report.cleaned, vec![cancelled]);
    assert_eq!(env.objects_of(kept).await, 3);
    env.assert_gone(cancelled).await;
    if !env.cluster.is_real() {
        assert_eq!(env.creates("pods"), 2, "no pod was created twice");
    }
}
