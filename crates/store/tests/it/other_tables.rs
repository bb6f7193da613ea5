//! Disks, SSH keys, GPU type availability, the audit log and CronJob runs.

use std::time::Duration as StdDuration;

use chrono::Duration;
use gpudev_domain::{DiskName, SshPublicKey};
use gpudev_store::cronjob_runs::{self, Outcome};
use gpudev_store::gpu_types::{self, Availability};
use gpudev_store::{StoreError, audit, disks, ssh_keys};
use serde_json::json;
use uuid::Uuid;

use crate::common::{reservation_for, user};

/// A disk record with a fresh id.
async fn create_disk(
    db: &impl gpudev_store::Db,
    user_id: i64,
    disk_name: &str,
    kube_name: &str,
    size_gb: i32,
    operation_id: Option<Uuid>,
) -> Result<disks::Disk, StoreError> {
    let name = DiskName::parse(disk_name).unwrap();
    let new = disks::NewDisk {
        disk_id: Uuid::new_v4(),
        user_id,
        disk_name: &name,
        kube_name,
        size_gb,
        operation_id,
    };
    disks::create(db, &new).await
}

#[tokio::test]
async fn a_disk_name_the_domain_refuses_is_refused_by_the_database_too() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let alice = user(&client, "alice").await;
    create_disk(&client, alice.user_id, "home", "disk-alice-home", 100, None)
        .await
        .unwrap();
    for bad in ["not a name!", "", &"x".repeat(64)] {
        assert!(DiskName::parse(bad).is_err(), "{bad:?}");
        let written = client
            .execute("UPDATE disks SET disk_name = $1", &[&bad])
            .await;
        assert!(written.is_err(), "{bad:?} was stored");
    }
    let read = disks::list(&client, alice.user_id, false).await.unwrap();
    assert_eq!(read[0].disk_name.as_str(), "home");
}

#[tokio::test]
async fn disk_names_are_unique_per_owner_until_deleted_and_in_use_disks_are_protected() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let bob = user(&client, "bob").await;
    let disk = create_disk(&client, alice.user_id, "home", "disk-alice-home", 100, None)
        .await
        .unwrap();

    let dup = create_disk(
        &client,
        alice.user_id,
        "home",
        "disk-alice-home-2",
        100,
        None,
    )
    .await;
    let bobs = create_disk(&client, bob.user_id, "home", "disk-bob-home", 100, None).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert!(bobs.is_ok(), "names are per owner");

    let new = reservation_for(&alice);
    let queue = gpudev_store::Queue::new("gpu_reservations").unwrap();
    gpudev_store::reservations::submit(&mut client, &queue, &new)
        .await
        .unwrap();
    assert!(
        disks::attach(&client, disk.disk_id, new.reservation_id)
            .await
            .unwrap()
    );
    assert!(
        !disks::attach(&client, disk.disk_id, Uuid::new_v4())
            .await
            .unwrap(),
        "a disk serves one reservation at a time"
    );
    let busy = disks::soft_delete(
        &client,
        alice.user_id,
        "home",
        Duration::days(30),
        Uuid::new_v4(),
    )
    .await;
    assert!(
        matches!(busy, Err(StoreError::Conflict(ref m)) if m.contains("in use")),
        "{busy:?}"
    );
    let rename_busy = disks::rename(&client, alice.user_id, "home", "work").await;
    assert!(
        matches!(rename_busy, Ok(disks::Renamed::InUse(r)) if r == new.reservation_id),
        "{rename_busy:?}"
    );

    assert!(
        disks::release(&client, disk.disk_id, new.reservation_id)
            .await
            .unwrap()
    );
    let renamed = disks::rename(&client, alice.user_id, "home", "work")
        .await
        .unwrap();
    let disks::Renamed::Done(renamed) = renamed else {
        panic!("not renamed: {renamed:?}");
    };
    assert_eq!(renamed.disk_name.as_str(), "work");
    let deleted = disks::soft_delete(
        &client,
        alice.user_id,
        "work",
        Duration::days(30),
        Uuid::new_v4(),
    )
    .await
    .unwrap();
    assert!(deleted.is_deleted);
    let days = (deleted.delete_after.unwrap() - chrono::Utc::now()).num_days();
    assert!((29..=30).contains(&days), "{days}");
    assert!(
        disks::list(&client, alice.user_id, false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        disks::get(&client, alice.user_id, "work").await,
        Err(StoreError::NotFound(_))
    ));
    // The name is free again once the old disk is soft-deleted.
    assert!(
        create_disk(
            &client,
            alice.user_id,
            "work",
            "disk-alice-work-2",
            50,
            None
        )
        .await
        .is_ok()
    );
}

#[tokio::test]
async fn snapshots_are_counted_once_ready() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let alice = user(&client, "alice").await;
    let disk = create_disk(&client, alice.user_id, "home", "disk-alice-home", 100, None)
        .await
        .unwrap();

    let snap = disks::add_snapshot(&client, disk.disk_id, "snap-1", None)
        .await
        .unwrap();
    let pending = disks::get(&client, alice.user_id, "home")
        .await
        .unwrap()
        .snapshot_count;
    assert!(
        disks::snapshot_ready(&client, snap, Some(1 << 30))
            .await
            .unwrap()
    );
    assert!(
        !disks::snapshot_ready(&client, snap, None).await.unwrap(),
        "only once"
    );

    assert_eq!(pending, 0);
    assert_eq!(
        disks::get(&client, alice.user_id, "home")
            .await
            .unwrap()
            .snapshot_count,
        1
    );
}

#[tokio::test]
async fn registering_ssh_keys_replaces_the_previous_set_and_collapses_duplicates() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    let key = SshPublicKey::parse(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETUbNlJBfWzOjE2V2VI7uME1ZcLQOGKhOdceh1N5BOe test@gpudev",
    )
    .unwrap();

    ssh_keys::replace(&mut client, alice.user_id, std::slice::from_ref(&key))
        .await
        .unwrap();
    let stored = ssh_keys::replace(&mut client, alice.user_id, &[key.clone(), key.clone()])
        .await
        .unwrap();

    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].fingerprint,
        "SHA256:e9NHLWGRrb2UbsEWaYl1bVaYfM+/+Wwvn3E/dbo+6TA"
    );
    assert_eq!(stored[0].key_type, "ssh-ed25519");
    assert_eq!(stored[0].public_key, key.to_line());
    assert!(
        ssh_keys::replace(&mut client, alice.user_id, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn one_ssh_key_is_added_or_removed_by_one_guarded_statement() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let alice = user(&client, "alice").await;
    let key = SshPublicKey::parse(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETUbNlJBfWzOjE2V2VI7uME1ZcLQOGKhOdceh1N5BOe test@gpudev",
    )
    .unwrap();

    assert!(ssh_keys::add(&client, alice.user_id, &key).await.unwrap());
    assert!(
        !ssh_keys::add(&client, alice.user_id, &key).await.unwrap(),
        "registered already"
    );
    assert_eq!(
        ssh_keys::list(&client, alice.user_id).await.unwrap().len(),
        1
    );
    assert!(
        ssh_keys::remove(&client, alice.user_id, key.fingerprint())
            .await
            .unwrap()
    );
    assert!(
        !ssh_keys::remove(&client, alice.user_id, key.fingerprint())
            .await
            .unwrap(),
        "gone already"
    );

    // A user holding the most keys gets no more.
    let most = i64::try_from(ssh_keys::MAX_KEYS_PER_USER).unwrap();
    client
        .execute(
            "INSERT INTO user_ssh_keys (user_id, public_key, fingerprint) \
             SELECT $1, 'ssh-ed25519 AAAA' || i, 'SHA256:filler' || i FROM generate_series(1, $2::bigint) i",
            &[&alice.user_id, &most],
        )
        .await
        .unwrap();
    assert!(!ssh_keys::add(&client, alice.user_id, &key).await.unwrap());
    assert_eq!(
        ssh_keys::list(&client, alice.user_id).await.unwrap().len(),
        ssh_keys::MAX_KEYS_PER_USER
    );
}

#[tokio::test]
async fn availability_is_written_per_gpu_type_with_its_writer() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let a = Availability {
        total_gpus: 16,
        available_gpus: 6,
        in_use_gpus: 10,
        queued_gpus: 4,
        full_nodes_available: 0,
        max_reservable: 6,
        running_nodes: 2,
    };

    assert!(
        gpu_types::write_availability(&client, "h100", &a, "availability-job")
            .await
            .unwrap()
    );
    assert!(
        !gpu_types::write_availability(&client, "nope", &a, "availability-job")
            .await
            .unwrap()
    );

    let rows = gpu_types::list_active(&client).await.unwrap();
    let h100 = rows.iter().find(|r| r.gpu_type == "h100").unwrap();
    assert_eq!(
        (h100.total_gpus, h100.available_gpus, h100.max_reservable),
        (16, 6, 6)
    );
    assert_eq!(h100.gpus_per_node, 8);
    assert_eq!(
        h100.last_availability_updated_by.as_deref(),
        Some("availability-job")
    );
    assert!(
        rows.iter()
            .find(|r| r.gpu_type == "t4")
            .unwrap()
            .last_availability_update
            .is_none()
    );
}

#[tokio::test]
async fn audit_entries_are_kept_newest_first_and_filterable_by_actor() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    for (actor, action) in [
        ("alice", "login"),
        ("bob", "login"),
        ("alice", "reservation.submit"),
    ] {
        audit::record(
            &client,
            &audit::AuditEntry {
                actor,
                action,
                outcome: "success",
                auth_method: Some("aws-iam"),
                details: Some(json!({"gpu_type": "h100"})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }

    let alices = audit::recent(&client, Some("alice"), 10).await.unwrap();

    let actions: Vec<&str> = alices.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["reservation.submit", "login"]);
    assert_eq!(audit::recent(&client, None, 10).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_run_left_running_for_an_hour_is_closed_as_abandoned_by_the_next_run_of_its_job() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let lost = cronjob_runs::start(&client, "expiry", "host-a")
        .await
        .unwrap();
    let recent = cronjob_runs::start(&client, "expiry", "host-b")
        .await
        .unwrap();
    let other_job = cronjob_runs::start(&client, "availability", "host-a")
        .await
        .unwrap();
    client
        .execute(
            "UPDATE cronjob_runs SET started_at = now() - interval '61 minutes' \
             WHERE run_id = ANY($1)",
            &[&vec![lost, other_job]],
        )
        .await
        .unwrap();

    cronjob_runs::start(&client, "expiry", "host-a")
        .await
        .unwrap();

    let outcome = |id: i64| {
        let client = &client;
        async move {
            let row = client
                .query_one(
                    "SELECT outcome, coalesce(error, '') FROM cronjob_runs WHERE run_id = $1",
                    &[&id],
                )
                .await
                .unwrap();
            (row.get::<_, String>(0), row.get::<_, String>(1))
        }
    };
    let (lost_outcome, lost_error) = outcome(lost).await;
    assert_eq!(lost_outcome, "failure");
    assert!(lost_error.starts_with("abandoned"), "{lost_error}");
    assert_eq!(
        outcome(recent).await.0,
        "running",
        "it may still be working"
    );
    assert_eq!(
        outcome(other_job).await.0,
        "running",
        "another job's runs are its own"
    );
    assert!(
        !cronjob_runs::finish(&client, lost, Outcome::Success, &json!({}), None)
            .await
            .unwrap(),
        "a run closed as abandoned stays so"
    );
}

#[tokio::test]
async fn a_cronjob_run_is_recorded_from_start_to_finish_once() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let first = cronjob_runs::start(&client, "expiry", "host-a")
        .await
        .unwrap();
    cronjob_runs::finish(
        &client,
        first,
        Outcome::Success,
        &json!({"expired": 2}),
        None,
    )
    .await
    .unwrap();
    tokio::time::sleep(StdDuration::from_millis(5)).await;
    let second = cronjob_runs::start(&client, "expiry", "host-a")
        .await
        .unwrap();

    let finished_twice =
        cronjob_runs::finish(&client, first, Outcome::Failure, &json!({}), Some("late"))
            .await
            .unwrap();
    cronjob_runs::finish(
        &client,
        second,
        Outcome::Failure,
        &json!({}),
        Some("db went away"),
    )
    .await
    .unwrap();

    assert!(!finished_twice);
    let last = cronjob_runs::last_success(&client, "expiry")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.run_id, first);
    assert_eq!(last.summary["expired"], 2);
    assert!(
        cronjob_runs::last_success(&client, "availability")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_disk_operation_is_pending_until_the_processor_finishes_it_once() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let alice = user(&client, "alice").await;
    let op = Uuid::new_v4();
    let disk = create_disk(
        &client,
        alice.user_id,
        "home",
        "disk-alice-home",
        100,
        Some(op),
    )
    .await
    .unwrap();
    assert_eq!(disk.operation_status.as_deref(), Some("pending"));

    assert!(
        disks::finish_operation(&client, disk.disk_id, op, None)
            .await
            .unwrap()
    );
    assert!(
        !disks::finish_operation(&client, disk.disk_id, op, Some("late"))
            .await
            .unwrap()
    );

    let found = disks::find_operation(&client, alice.user_id, "home", op)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.operation_status.as_deref(), Some("completed"));
    assert_eq!(found.status, "ready");
    assert!(
        disks::find_operation(&client, alice.user_id, "home", Uuid::new_v4())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_taken_disk_name_is_refused_without_a_database_error() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = user(&client, "alice").await;
    create_disk(&client, alice.user_id, "home", "disk-alice-home", 100, None)
        .await
        .unwrap();
    create_disk(&client, alice.user_id, "work", "disk-alice-work", 100, None)
        .await
        .unwrap();

    // A statement that fails (a unique violation) aborts its transaction and writes an ERROR
    // line to the server's log; a refusal found by the statement itself does neither.
    let tx = client.transaction().await.unwrap();
    let dup = create_disk(&tx, alice.user_id, "home", "disk-alice-home-2", 100, None).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let onto = disks::rename(&tx, alice.user_id, "work", "home").await;
    assert!(matches!(onto, Ok(disks::Renamed::NameTaken)), "{onto:?}");
    let alive: i32 = tx.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(alive, 1, "the transaction was not aborted by an error");
    tx.commit().await.unwrap();
    let names: Vec<String> = disks::list(&client, alice.user_id, false)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.disk_name.to_string())
        .collect();
    assert_eq!(names, ["home", "work"]);
}
