//! Snapshot bookkeeping and the removal of soft-deleted disks.

use gpudev_cluster::{DiskMount, VolumeSnapshot, disk_snapshot};
use gpudev_domain::{DiskName, ReservationStatus};
use gpudev_store::disks;
use kube::Api;
use kube::api::PostParams;
use uuid::Uuid;

use crate::common::{Env, Made, env};

/// A snapshot of `disk` in the cluster and the database, `hours_ago` old, ready or pending.
async fn snapshot(env: &Env, made: &Made, disk_id: Uuid, hours_ago: i32, ready: bool) -> String {
    let of = env
        .reservation(made.user.as_str(), ReservationStatus::Cancelled)
        .await;
    let home = DiskMount {
        name: DiskName::parse("home").unwrap(),
        claim_name: env.claim_of(disk_id).await,
    };
    let vs = disk_snapshot(env.ns(), &made.user, &home, of.id, None);
    let api: Api<VolumeSnapshot> = Api::namespaced(env.cluster.client(), env.ns());
    api.create(&PostParams::default(), &vs).await.unwrap();
    let name = vs.metadata.name.unwrap();
    let id = disks::add_snapshot(&env.client, disk_id, &name, Some(of.id))
        .await
        .unwrap();
    if ready {
        assert!(
            disks::snapshot_ready(&env.client, id, Some(1 << 30))
                .await
                .unwrap()
        );
    }
    env.client
        .execute(
            "UPDATE disk_snapshots SET created_at = now() - make_interval(hours => $2) WHERE snapshot_id = $1",
            &[&id, &hours_ago],
        )
        .await
        .unwrap();
    name
}

#[tokio::test]
async fn snapshots_beyond_the_newest_three_ready_ones_of_a_disk_are_deleted() {
    let env = env().await;
    let owner = env.reservation("alice", ReservationStatus::Cancelled).await;
    let disk_id = env.disk(&owner, "home").await;
    let mut names = Vec::new();
    for hours_ago in [50, 40, 30, 20, 10] {
        names.push(snapshot(&env, &owner, disk_id, hours_ago, true).await);
    }
    let pending = snapshot(&env, &owner, disk_id, 1, false).await;

    let report = env.run().await;
    let again = env.run().await;

    assert_eq!(report.summary.old_snapshots_deleted, 2);
    assert_eq!(again.summary.old_snapshots_deleted, 0);
    assert!(env.gone("volumesnapshots", &names[0]).await);
    assert!(env.gone("volumesnapshots", &names[1]).await);
    for kept in &names[2..] {
        assert!(env.exists("volumesnapshots", kept).await, "{kept}");
    }
    assert!(
        env.exists("volumesnapshots", &pending).await,
        "a pending snapshot is never deleted"
    );
    let deleted = env
        .count("SELECT count(*) FROM disk_snapshots WHERE status = 'deleted' AND deleted_at IS NOT NULL")
        .await;
    assert_eq!(deleted, 2);
}

#[tokio::test]
async fn a_snapshot_taken_at_expiry_is_recorded_ready_once_the_cluster_says_so() {
    let env = env().await;
    let made = env.active_ending_in("bob", -5.0).await;
    env.devbox(&made).await;
    env.attached_disk(&made, "home").await;
    env.cluster.step().await; // binds the claim
    env.run().await;
    assert_eq!(
        env.count("SELECT count(*) FROM disk_snapshots WHERE status = 'pending'")
            .await,
        1
    );

    env.cluster.step().await; // the snapshot controller finishes
    let report = env.run().await;

    assert_eq!(report.summary.snapshots_ready, 1);
    let size: Option<i64> = env
        .client
        .query_one(
            "SELECT size_bytes FROM disk_snapshots WHERE status = 'ready'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(size, Some(100 << 30), "the claim's 100Gi");
}

#[tokio::test]
async fn a_soft_deleted_disk_past_its_date_loses_its_claim_and_snapshots_and_is_purged_once() {
    let env = env().await;
    let owner = env.reservation("carol", ReservationStatus::Cancelled).await;
    let due = env.disk(&owner, "home").await;
    let snaps = [
        snapshot(&env, &owner, due, 30, true).await,
        snapshot(&env, &owner, due, 20, true).await,
    ];
    disks::soft_delete(
        &env.client,
        owner.user_id,
        "home",
        chrono::Duration::days(30),
        Uuid::new_v4(),
    )
    .await
    .unwrap();
    env.sql(&format!(
        "UPDATE disks SET delete_after = now() - interval '1 minute' WHERE disk_id = '{due}'"
    ))
    .await;
    let later = env.disk(&owner, "scratch").await;
    disks::soft_delete(
        &env.client,
        owner.user_id,
        "scratch",
        chrono::Duration::days(30),
        Uuid::new_v4(),
    )
    .await
    .unwrap();

    let report = env.run().await;
    let again = env.run().await;

    assert_eq!(report.summary.disks_purged, 1);
    assert_eq!(again.summary.disks_purged, 0);
    let home = env.claim_of(due).await;
    let scratch = env.claim_of(later).await;
    assert!(env.gone("persistentvolumeclaims", &home).await);
    for s in &snaps {
        assert!(env.gone("volumesnapshots", s).await, "{s}");
    }
    assert!(
        env.exists("persistentvolumeclaims", &scratch).await,
        "not due yet"
    );
    let row = env
        .client
        .query_one(
            "SELECT status, purged_at IS NOT NULL FROM disks WHERE disk_id = $1",
            &[&due],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "deleted");
    assert!(row.get::<_, bool>(1));
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM disk_snapshots WHERE disk_id = '{due}' AND status <> 'deleted'"
        ))
        .await,
        0
    );
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM disks WHERE disk_id = '{later}' AND purged_at IS NULL"
        ))
        .await,
        1
    );
}
