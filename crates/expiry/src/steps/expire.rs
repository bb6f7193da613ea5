//! Active reservations past their end plus the grace period.
//!
//! Each is handled in one database transaction that holds the reservation's advisory lock from
//! the re-check to the commit, so a second run skips it while the first works and finds it
//! `expired` afterwards. The order is the one the original job got wrong: the Pods go first
//! (and we wait until they are gone, so the disk is no longer written), then the disk is
//! snapshotted, then — in the same transaction — the snapshot is recorded, the disk released,
//! the reservation marked `expired` and its environment values forgotten. Should anything fail,
//! the transaction rolls back and the next run does it all again: deleting a deleted Pod and
//! creating a snapshot of the same (deterministic) name change nothing.

use std::collections::HashMap;

use futures::StreamExt;
use gpudev_cluster::{DiskMount, disk_snapshot, names};
use gpudev_domain::ReservationStatus;
use gpudev_store::expiry::{self as store, ActiveReservation};
use gpudev_store::reservations::{self, Transition};
use gpudev_store::{StoreError, disks};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use tokio_postgres::Transaction;
use uuid::Uuid;

use crate::k8s;
use crate::notify::{PodNotifier, bounded_listing};
use crate::run::{ACTOR, Expiry, StepError, Summary};

/// How much longer than its Kubernetes waits an ending reservation's transaction may sit idle.
const WAIT_MARGIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Lock scope of work on one reservation.
pub(crate) const LOCK: &str = "expiry.reservation";

/// What ending one reservation did.
#[derive(Debug, Default)]
pub(crate) struct Ended {
    pub(crate) transitioned: bool,
    pub(crate) pods_deleted: u64,
    pub(crate) snapshots_created: u64,
    pub(crate) disks_released: u64,
}

impl Ended {
    pub(crate) fn add_to(&self, s: &mut Summary) {
        s.objects_deleted += self.pods_deleted;
        s.snapshots_created += self.snapshots_created;
        s.disks_released += self.disks_released;
    }
}

enum Outcome {
    Ended(Ended),
    Busy,
    NotDue,
}

impl<N: PodNotifier> Expiry<N> {
    /// Expires every active reservation past `expires_at` + grace, a few at a time.
    pub(crate) async fn expire_due(&self, s: &mut Summary) -> Result<(), StepError> {
        let grace = self.cfg.grace.as_secs_f64();
        let due: Vec<Uuid> = {
            let db = self.pool.get().await?;
            store::active(&**db)
                .await?
                .into_iter()
                .filter(|r| r.seconds_left < -grace)
                .map(|r| r.reservation_id)
                .collect()
        };
        let mut results = futures::stream::iter(due)
            .map(|id| async move { (id, self.expire_one(id).await) })
            .buffer_unordered(self.cfg.parallelism);
        while let Some((id, result)) = results.next().await {
            match result {
                Ok(Outcome::Ended(ended)) => {
                    ended.add_to(s);
                    if ended.transitioned {
                        s.expired += 1;
                    }
                }
                Ok(Outcome::Busy) => s.skipped_busy += 1,
                Ok(Outcome::NotDue) => {}
                Err(e) => {
                    s.error(&format!("expiring reservation {id}"), e);
                    if s.database_unavailable() {
                        // The others in flight are dropped: their transactions roll back, and
                        // the next run does them again.
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    async fn expire_one(&self, id: Uuid) -> Result<Outcome, StepError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        if !store::try_lock(&*tx, LOCK, id).await? {
            return Ok(Outcome::Busy);
        }
        let Some(r) = store::active_one(&*tx, id).await? else {
            return Ok(Outcome::NotDue);
        };
        if r.seconds_left >= -self.cfg.grace.as_secs_f64() {
            return Ok(Outcome::NotDue); // extended meanwhile
        }
        let ended = self.end_reservation(&tx, &r, "expired").await?;
        tx.commit().await?;
        tracing::info!(reservation_id = %id, user = %r.username, "expired");
        Ok(Outcome::Ended(ended))
    }

    /// Ends an active reservation the caller holds the lock of, inside the caller's
    /// transaction: Pods deleted and gone, disks snapshotted, snapshots recorded, disks
    /// released, status `expired` with `reason`, environment values forgotten. The caller
    /// commits.
    pub(crate) async fn end_reservation(
        &self,
        tx: &Transaction<'_>,
        r: &ActiveReservation,
        reason: &str,
    ) -> Result<Ended, StepError> {
        let id = r.reservation_id;
        let ns = &self.cfg.namespace;
        // This transaction waits for Kubernetes (the disks' listing, the Pods going) while it
        // holds the reservation's lock; the server must not end it as idle meanwhile.
        let wait = self.cfg.exec_timeout + self.cfg.pod_delete_timeout + WAIT_MARGIN;
        tx.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', $1, true)",
            &[&wait.as_millis().to_string()],
        )
        .await?;
        let attached = store::attached_disks(tx, id).await?;
        let listings = self.list_disks(id, &attached).await;
        let mut ended = Ended {
            pods_deleted: u64::try_from(
                k8s::delete_pods_and_wait(
                    &self.kube,
                    ns,
                    id,
                    self.cfg.poll_interval,
                    self.cfg.pod_delete_timeout,
                )
                .await?,
            )
            .unwrap_or(0),
            ..Ended::default()
        };
        for disk in attached {
            let mount = DiskMount {
                name: disk.disk_name.clone(),
                claim_name: disk.kube_name.clone(),
            };
            let snapshot = disk_snapshot(
                ns,
                &disk.username,
                &mount,
                id,
                self.cfg.snapshot_class.as_deref(),
            );
            let snapshot_name = names::snapshot_name(&disk.kube_name, id);
            if k8s::create_snapshot(&self.kube, ns, &snapshot).await? {
                ended.snapshots_created += 1;
            }
            let snapshot_id =
                disks::add_snapshot(tx, disk.disk_id, &snapshot_name, Some(id)).await?;
            if let Some(listing) = listings.get(&disk.kube_name) {
                disks::set_snapshot_listing(tx, snapshot_id, listing).await?;
            }
            if disks::release(tx, disk.disk_id, id).await? {
                ended.disks_released += 1;
            }
        }
        let t = Transition {
            to: ReservationStatus::Expired,
            reason: Some(reason),
            actor: ACTOR,
        };
        match reservations::transition(tx, id, t).await {
            Ok(_) => ended.transitioned = true,
            // Ended some other way meanwhile (a cancel): the cleanup above still stands.
            Err(StoreError::Transition(e)) => {
                tracing::info!(reservation_id = %id, error = %e, "already ended");
            }
            Err(e) => return Err(e.into()),
        }
        reservations::delete_secret_env(tx, id).await?;
        Ok(ended)
    }

    /// What each attached disk holds, listed in the Pod that mounts it before the Pods go
    /// (by claim name). A disk whose Pod is gone or does not answer gets no listing: the
    /// snapshot matters more than its table of contents.
    async fn list_disks(
        &self,
        id: Uuid,
        attached: &[store::AttachedDisk],
    ) -> HashMap<String, String> {
        let mut listings = HashMap::new();
        if attached.is_empty() {
            return listings;
        }
        let pods = match k8s::pods_of(&self.kube, &self.cfg.namespace, id).await {
            Ok(pods) => pods,
            Err(e) => {
                tracing::warn!(reservation_id = %id, error = %e, "cannot list the disks' files");
                return listings;
            }
        };
        for disk in attached {
            let Some(pod) = pods.iter().find(|p| {
                p.metadata.deletion_timestamp.is_none() && mounts_claim(p, &disk.kube_name)
            }) else {
                continue;
            };
            match self
                .notifier
                .list_home(&self.cfg.namespace, &pod.name_any())
                .await
            {
                Ok(text) => {
                    listings.insert(disk.kube_name.clone(), bounded_listing(&text));
                }
                Err(e) => {
                    tracing::warn!(reservation_id = %id, disk = %disk.disk_name, error = %e,
                        "cannot list the disk's files before its snapshot");
                }
            }
        }
        listings
    }
}

/// True when the Pod mounts the claim `claim`.
fn mounts_claim(pod: &Pod, claim: &str) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        spec.volumes.iter().flatten().any(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name == claim)
        })
    })
}
