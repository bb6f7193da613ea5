//! Expiry of active reservations past their end.

use gpudev_cluster::VolumeSnapshot;
use gpudev_testkit::kube::{RequestRecord, Verb};
use kube::Api;

use crate::common::{HOME_LISTING, env, env_with, env_with_slow_pods};

fn position(log: &[RequestRecord], what: impl Fn(&RequestRecord) -> bool) -> Option<usize> {
    log.iter().position(what)
}

/// From the fake's request log: the pod was deleted, the job saw it terminating and then gone,
/// and only then created the snapshot.
fn pod_gone_before_snapshot(log: &[RequestRecord], pod: &str) {
    let is_pod = |r: &RequestRecord, verb: Verb| {
        r.resource == "pods" && r.name.as_deref() == Some(pod) && r.verb == verb
    };
    let deleted = position(log, |r| is_pod(r, Verb::Delete)).expect("pod deleted");
    let gone = position(log, |r| is_pod(r, Verb::Get) && r.status == 404).expect("pod seen gone");
    let snapshot = position(log, |r| {
        r.resource == "volumesnapshots" && r.verb == Verb::Create
    })
    .expect("snapshot created");
    assert!(
        deleted < gone && gone < snapshot,
        "delete {deleted}, gone {gone}, snapshot {snapshot}"
    );
    let waited = log[deleted..gone]
        .iter()
        .filter(|r| is_pod(r, Verb::Get) && r.status == 200)
        .count();
    assert!(
        waited > 0,
        "the pod was terminating for a while and the job waited"
    );
}

#[tokio::test]
async fn an_expired_reservation_loses_its_pod_before_its_disk_is_snapshotted() {
    let env = env_with_slow_pods().await;
    let _simulation = env
        .cluster
        .start_background(std::time::Duration::from_millis(50));
    let made = env.active_ending_in("alice", -3.0).await;
    let pod = env.devbox(&made).await;
    let disk_id = env.attached_disk(&made, "home").await;
    if let Some(fake) = env.cluster.fake() {
        fake.clear_requests();
    }

    let report = env.run().await;

    assert_eq!(report.summary.expired, 1, "{:?}", report.summary);
    if env.cluster.is_real() {
        // The job returns after taking the snapshot, so the pod must be gone by now.
        assert!(
            !env.exists("pods", &pod).await,
            "the snapshot was taken while the pod still existed"
        );
    } else {
        pod_gone_before_snapshot(&env.requests(), &pod);
    }

    let snapshots: Api<VolumeSnapshot> = Api::namespaced(env.cluster.client(), env.ns());
    let taken = snapshots.list(&Default::default()).await.unwrap().items;
    assert_eq!(taken.len(), 1);
    let claim = env.claim_of(disk_id).await;
    assert_eq!(
        taken[0].spec.source.persistent_volume_claim_name.as_deref(),
        Some(claim.as_str())
    );
    assert_eq!(
        taken[0].spec.volume_snapshot_class_name.as_deref(),
        Some("ebs-snapshots")
    );

    assert_eq!(env.status(&made).await, "expired");
    let row = env
        .client
        .query_one(
            "SELECT ended_at IS NOT NULL, (SELECT count(*) FROM reservation_secrets s WHERE s.reservation_id = r.reservation_id) \
             FROM reservations r WHERE reservation_id = $1",
            &[&made.id],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "ended_at set");
    assert_eq!(row.get::<_, i64>(1), 0, "environment values forgotten");
    let disk = env
        .client
        .query_one(
            "SELECT reservation_id, status FROM disks WHERE disk_id = $1",
            &[&disk_id],
        )
        .await
        .unwrap();
    assert_eq!(disk.get::<_, Option<uuid::Uuid>>(0), None, "disk released");
    assert_eq!(disk.get::<_, String>(1), "ready");
    let recorded = env
        .count(&format!(
            // Pending, or already ready when the fake's storage controller got to it within the
            // same run.
            "SELECT count(*) FROM disk_snapshots WHERE disk_id = '{disk_id}' AND reservation_id = '{}' AND status IN ('pending', 'ready')",
            made.id
        ))
        .await;
    assert_eq!(recorded, 1);
    let expired_event = env
        .events(&made)
        .await
        .into_iter()
        .find(|e| e.to_status.as_deref() == Some("expired"))
        .unwrap();
    assert_eq!(expired_event.reason.as_deref(), Some("expired"));
    assert_eq!(expired_event.actor, "expiry");
}

#[tokio::test]
async fn a_disks_files_are_listed_in_its_dev_box_before_the_snapshot_and_kept_with_it() {
    let env = env().await;
    let made = env.active_ending_in("alice", -3.0).await;
    let disk_id = env.disk(&made, "home").await;
    let claim = env.claim_of(disk_id).await;
    assert!(
        gpudev_store::disks::attach(&env.client, disk_id, made.id)
            .await
            .unwrap()
    );
    let pod = env.devbox_mounting(&made, Some(&claim)).await;
    // Another reservation's box without a disk is not listed.
    let plain = env.active_ending_in("bob", -3.0).await;
    env.devbox(&plain).await;

    let report = env.run().await;

    assert_eq!(report.summary.expired, 2, "{:?}", report.summary);
    assert_eq!(
        *env.recorder.listed.lock().unwrap(),
        [pod],
        "only the box with a disk"
    );
    let row = env
        .client
        .query_one(
            "SELECT content_listing, listed_at <= created_at + interval '1 minute' \
             FROM disk_snapshots WHERE disk_id = $1",
            &[&disk_id],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some(HOME_LISTING)
    );
    assert!(row.get::<_, bool>(1));
}

#[tokio::test]
async fn a_box_that_cannot_be_listed_is_still_snapshotted_without_a_listing() {
    let mut env = env().await;
    env.recorder.fail = true;
    let made = env.active_ending_in("alice", -3.0).await;
    let disk_id = env.disk(&made, "home").await;
    let claim = env.claim_of(disk_id).await;
    assert!(
        gpudev_store::disks::attach(&env.client, disk_id, made.id)
            .await
            .unwrap()
    );
    env.devbox_mounting(&made, Some(&claim)).await;

    let report = env.run().await;

    assert_eq!(report.summary.expired, 1, "{:?}", report.summary);
    assert_eq!(report.summary.snapshots_created, 1);
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM disk_snapshots WHERE disk_id = '{disk_id}' AND content_listing IS NULL"
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn a_pod_slower_to_go_than_the_idle_transaction_bound_is_still_expired_in_one_run() {
    // The server ends a session idle in a transaction after 1 s; the Pod takes 3 s to go while
    // the expiry's transaction holds the reservation's lock.
    let fake = gpudev_testkit::FakeConfig {
        pod_termination: std::time::Duration::from_secs(3),
        ..gpudev_testkit::FakeConfig::default()
    };
    let env = env_with(fake, &[("DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", "1")]).await;
    let _simulation = env
        .cluster
        .start_background(std::time::Duration::from_millis(50));
    let made = env.active_ending_in("alice", -3.0).await;
    env.devbox(&made).await;

    let report = env.run().await;

    assert!(
        report.summary.errors.is_empty(),
        "{:?}",
        report.summary.errors
    );
    assert_eq!(report.summary.expired, 1, "{:?}", report.summary);
    assert_eq!(env.status(&made).await, "expired");
}

#[tokio::test]
async fn the_services_and_secrets_owned_by_the_pod_go_with_it() {
    let env = env().await;
    let made = env.active_ending_in("bob", -5.0).await;
    let pod = env.devbox(&made).await;

    env.run().await;

    assert!(env.gone("pods", &pod).await);
    assert!(
        env.gone("services", &format!("{pod}-ssh")).await,
        "no leaked service"
    );
    assert!(
        env.gone("secrets", &format!("{pod}-env")).await,
        "no leaked secret"
    );
}

#[tokio::test]
async fn a_reservation_within_its_grace_period_is_not_expired_yet() {
    let env = env().await;
    let made = env.active_ending_in("carol", -1.0).await; // grace is 2 minutes
    let pod = env.devbox(&made).await;

    let report = env.run().await;

    assert_eq!(report.summary.expired, 0);
    assert_eq!(env.status(&made).await, "active");
    assert!(env.exists("pods", &pod).await);
}

#[tokio::test]
async fn a_pod_that_will_not_go_leaves_the_reservation_active_and_unsnapshotted_until_a_later_run()
{
    let mut env = env().await;
    env.config.pod_delete_timeout = std::time::Duration::from_millis(300);
    let made = env.active_ending_in("dave", -10.0).await;
    let pod = env.devbox(&made).await;
    env.attached_disk(&made, "home").await;
    env.set_finalizers(&pod, &["example.com/hold"]).await;

    let stuck = env.run().await;

    assert_eq!(stuck.summary.expired, 0);
    assert!(!stuck.succeeded());
    assert!(
        stuck.summary.errors[0].contains("still exists"),
        "{:?}",
        stuck.summary.errors
    );
    assert_eq!(env.status(&made).await, "active");
    assert!(
        env.cluster.objects("volumesnapshots").await.is_empty(),
        "no snapshot of a disk in use"
    );
    assert_eq!(env.count("SELECT count(*) FROM disk_snapshots").await, 0);

    env.set_finalizers(&pod, &[]).await;
    env.cluster.step().await;
    let next = env.run().await;

    assert_eq!(next.summary.expired, 1, "{:?}", next.summary);
    assert_eq!(env.status(&made).await, "expired");
    assert_eq!(env.count("SELECT count(*) FROM disk_snapshots").await, 1);
}
