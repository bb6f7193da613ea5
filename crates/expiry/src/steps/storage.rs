//! Snapshot bookkeeping and the removal of soft-deleted disks.
//!
//! - Pending snapshots are checked against their VolumeSnapshot: ready ones are recorded ready
//!   (with their size), vanished or errored ones failed.
//! - Ready snapshots beyond the newest `KEEP_SNAPSHOTS` of each disk, and failed ones, are
//!   deleted from the cluster, then marked deleted; only the run whose update changed the row
//!   counts it. Pending snapshots are never deleted, so the newest restorable copy stays until
//!   a newer one is ready.
//! - A soft-deleted disk past its delete date loses its claim and every snapshot (those the
//!   database knows and those the cluster lists for the claim) under a per-disk lock, then is
//!   marked purged (`status = 'deleted'`, `purged_at`).

use gpudev_cluster::{VolumeSnapshot, labels, ops};
use gpudev_store::{disks, expiry as store};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::{Api, ResourceExt};

use crate::notify::PodNotifier;
use crate::run::{Expiry, StepError, Summary};

const PURGE_LOCK: &str = "expiry.disk-purge";

impl<N: PodNotifier> Expiry<N> {
    /// Records pending snapshots that became ready (or failed).
    pub(crate) async fn sync_snapshots(&self, s: &mut Summary) -> Result<(), StepError> {
        let api: Api<VolumeSnapshot> = Api::namespaced(self.kube.clone(), &self.cfg.namespace);
        let db = self.pool.get().await?;
        for snap in store::pending_snapshots(&**db).await? {
            let found = match ops::get_opt(&api, &snap.kube_name).await {
                Ok(found) => found,
                Err(e) => {
                    s.error("reading a pending snapshot", e);
                    continue;
                }
            };
            match found {
                Some(vs) if vs.is_ready() => {
                    let size = vs
                        .status
                        .as_ref()
                        .and_then(|st| st.restore_size.as_deref())
                        .and_then(quantity_bytes);
                    if disks::snapshot_ready(&**db, snap.snapshot_id, size).await? {
                        s.snapshots_ready += 1;
                    }
                }
                Some(vs) if vs.status.as_ref().is_some_and(|st| st.error.is_some()) => {
                    if store::snapshot_failed(&**db, snap.snapshot_id).await? {
                        s.snapshots_failed += 1;
                    }
                }
                Some(_) => {}
                None => {
                    if store::snapshot_failed(&**db, snap.snapshot_id).await? {
                        s.snapshots_failed += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Deletes snapshots beyond the newest N ready ones per disk, and failed ones.
    pub(crate) async fn delete_surplus_snapshots(&self, s: &mut Summary) -> Result<(), StepError> {
        let api: Api<VolumeSnapshot> = Api::namespaced(self.kube.clone(), &self.cfg.namespace);
        let db = self.pool.get().await?;
        for snap in store::surplus_snapshots(&**db, i64::from(self.cfg.keep_snapshots)).await? {
            if let Err(e) = ops::delete_if_present(&api, &snap.kube_name).await {
                s.error("deleting an old snapshot", e);
                continue;
            }
            if store::snapshot_deleted(&**db, snap.snapshot_id).await? {
                tracing::info!(snapshot = %snap.kube_name, "deleted old snapshot");
                s.old_snapshots_deleted += 1;
            }
        }
        Ok(())
    }

    /// Removes soft-deleted disks past their delete date for good.
    pub(crate) async fn purge_deleted_disks(&self, s: &mut Summary) -> Result<(), StepError> {
        let ns = &self.cfg.namespace;
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.kube.clone(), ns);
        let snapshots: Api<VolumeSnapshot> = Api::namespaced(self.kube.clone(), ns);
        let due = {
            let db = self.pool.get().await?;
            store::disks_to_purge(&**db).await?
        };
        for disk in due {
            let id = disk.disk_id;
            match self.purge_one(disk, &claims, &snapshots).await {
                Ok(Purge::Done) => s.disks_purged += 1,
                Ok(Purge::Busy) => s.skipped_busy += 1,
                Ok(Purge::NotDue) => {}
                Err(e) => {
                    s.error(&format!("purging disk {id}"), e);
                    if s.database_unavailable() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    async fn purge_one(
        &self,
        disk: store::DiskToPurge,
        claims: &Api<PersistentVolumeClaim>,
        snapshots: &Api<VolumeSnapshot>,
    ) -> Result<Purge, StepError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        if !store::try_lock(&*tx, PURGE_LOCK, disk.disk_id).await? {
            return Ok(Purge::Busy);
        }
        if !store::purge_due(&*tx, disk.disk_id).await? {
            return Ok(Purge::NotDue);
        }
        let mut names = disk.snapshots.clone();
        let selector = labels::snapshots_of_selector(&disk.kube_name);
        names.extend(
            ops::list_selected(snapshots, &selector)
                .await?
                .iter()
                .map(|v| v.name_any()),
        );
        names.sort();
        names.dedup();
        for name in &names {
            ops::delete_if_present(snapshots, name).await?;
        }
        ops::delete_if_present(claims, &disk.kube_name).await?;
        let purged = store::mark_purged(&*tx, disk.disk_id).await?;
        tx.commit().await?;
        if purged {
            tracing::info!(claim = %disk.kube_name, snapshots = names.len(), "purged deleted disk");
            Ok(Purge::Done)
        } else {
            Ok(Purge::NotDue)
        }
    }
}

enum Purge {
    Done,
    Busy,
    NotDue,
}

/// Bytes of a Kubernetes quantity such as `100Gi`, `500M` or `1073741824` (`None` when it is
/// not one of those simple forms).
pub(crate) fn quantity_bytes(q: &str) -> Option<i64> {
    let q = q.trim();
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (digits, suffix) = q.split_at(split);
    let n: i64 = digits.parse().ok()?;
    let factor: i64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::quantity_bytes;

    #[test]
    fn quantities_become_bytes() {
        assert_eq!(quantity_bytes("100Gi"), Some(100 << 30));
        assert_eq!(quantity_bytes("500M"), Some(500_000_000));
        assert_eq!(quantity_bytes("42"), Some(42));
        assert_eq!(quantity_bytes("1.5Gi"), None);
        assert_eq!(quantity_bytes("lots"), None);
    }
}
