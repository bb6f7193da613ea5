//! Reservations stuck in `queued` or `preparing`.
//!
//! Each is changed in a short transaction that first locks the row and re-checks the status
//! and age it was listed with, because `cancelled` and `failed` may be reached from several
//! statuses: a reservation the processor admitted a moment ago must not be cancelled as
//! "stale in the queue".

use gpudev_cluster::ops;
use gpudev_domain::ReservationStatus;
use gpudev_store::disks;
use gpudev_store::expiry as store;
use gpudev_store::reservations::{self, Transition};
use uuid::Uuid;

use crate::notify::PodNotifier;
use crate::run::{ACTOR, Expiry, StepError, Summary};

impl<N: PodNotifier> Expiry<N> {
    /// `queued` longer than the limit → `cancelled`, with the reason.
    pub(crate) async fn cancel_stale_queued(&self, s: &mut Summary) -> Result<(), StepError> {
        let limit = self.cfg.queued_timeout.as_secs_f64();
        let hours = self.cfg.queued_timeout.as_secs() / 3600;
        let reason = format!(
            "not started within {hours} h of being queued: no capacity became free; submit again"
        );
        let ids = {
            let db = self.pool.get().await?;
            store::stale(&**db, ReservationStatus::Queued, limit).await?
        };
        for id in ids {
            match self.cancel_one(id, limit, &reason).await {
                Ok(true) => {
                    tracing::info!(reservation_id = %id, "cancelled: queued too long");
                    s.queued_cancelled += 1;
                }
                Ok(false) => {}
                Err(e) => {
                    s.error(&format!("cancelling stale reservation {id}"), e);
                    if s.database_unavailable() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    async fn cancel_one(&self, id: Uuid, limit: f64, reason: &str) -> Result<bool, StepError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        if !store::lock_if_stale(&*tx, id, ReservationStatus::Queued, limit).await? {
            return Ok(false);
        }
        let t = Transition {
            to: ReservationStatus::Cancelled,
            reason: Some(reason),
            actor: ACTOR,
        };
        reservations::transition(&*tx, id, t).await?;
        reservations::delete_secret_env(&*tx, id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Groups of the original client's nodes (ADR 16) whose members did not all arrive before
    /// their deadline → `failed`, naming how many arrived. They never held GPUs (the scheduler
    /// does not see a group until it is complete), so there is nothing to release but their
    /// sealed environment.
    pub(crate) async fn fail_incomplete_groups(&self, s: &mut Summary) -> Result<(), StepError> {
        let ids = {
            let db = self.pool.get().await?;
            reservations::groups::incomplete(&**db).await?
        };
        for id in ids {
            match self.fail_group(id).await {
                Ok(true) => {
                    tracing::info!(reservation_id = %id, "failed: group incomplete");
                    s.groups_failed += 1;
                }
                Ok(false) => {}
                Err(e) => {
                    s.error(&format!("failing incomplete group {id}"), e);
                    if s.database_unavailable() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    async fn fail_group(&self, id: Uuid) -> Result<bool, StepError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let Some((arrived, size)) = reservations::groups::lock_if_incomplete(&*tx, id).await?
        else {
            return Ok(false);
        };
        let reason = format!(
            "only {arrived} of the {size} nodes of this multi-node reservation were submitted              within {} s; gpudev starts the nodes of one reservation together or not at all, so              none was started. Submit the whole reservation again",
            gpudev_domain::GROUP_WINDOW.as_secs()
        );
        let t = Transition {
            to: ReservationStatus::Failed,
            reason: Some(&reason),
            actor: ACTOR,
        };
        reservations::transition(&*tx, id, t).await?;
        reservations::delete_secret_env(&*tx, id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// `preparing` longer than the limit → `failed`; its Pods (and owned objects) are deleted
    /// and its disk released.
    pub(crate) async fn fail_stale_preparing(&self, s: &mut Summary) -> Result<(), StepError> {
        let limit = self.cfg.preparing_timeout.as_secs_f64();
        let minutes = self.cfg.preparing_timeout.as_secs() / 60;
        let reason = format!("did not become ready within {minutes} min of being admitted");
        let ids = {
            let db = self.pool.get().await?;
            store::stale(&**db, ReservationStatus::Preparing, limit).await?
        };
        for id in ids {
            match self.fail_one(id, limit, &reason).await {
                Ok(Some(released)) => {
                    s.preparing_failed += 1;
                    s.disks_released += released;
                    tracing::info!(reservation_id = %id, "failed: preparing too long");
                }
                Ok(None) => continue,
                Err(e) => {
                    s.error(&format!("failing stale reservation {id}"), e);
                    if s.database_unavailable() {
                        break;
                    }
                    continue;
                }
            }
            // After the commit, so the processor sees `failed` and stops; a Pod left behind by
            // a failure here is an orphan the orphan step removes.
            match ops::delete_reservation_objects(&self.kube, &self.cfg.namespace, id).await {
                Ok(n) => s.objects_deleted += u64::try_from(n).unwrap_or(0),
                Err(e) => s.error(
                    &format!("deleting the objects of failed reservation {id}"),
                    e,
                ),
            }
        }
        Ok(())
    }

    /// Fails one stale preparing reservation; the number of disks released, or `None` when it
    /// was no longer stale.
    async fn fail_one(&self, id: Uuid, limit: f64, reason: &str) -> Result<Option<u64>, StepError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        if !store::lock_if_stale(&*tx, id, ReservationStatus::Preparing, limit).await? {
            return Ok(None);
        }
        let t = Transition {
            to: ReservationStatus::Failed,
            reason: Some(reason),
            actor: ACTOR,
        };
        reservations::transition(&*tx, id, t).await?;
        let mut released = 0;
        for disk in store::attached_disks(&*tx, id).await? {
            if disks::release(&*tx, disk.disk_id, id).await? {
                released += 1;
            }
        }
        reservations::delete_secret_env(&*tx, id).await?;
        tx.commit().await?;
        Ok(Some(released))
    }
}
