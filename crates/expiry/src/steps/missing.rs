//! Active reservations whose Pod has disappeared (deleted by hand, evicted, node lost).
//!
//! "Missing for 10 minutes" is measured across runs with `reservations.pod_missing_since`: the
//! first run that finds no Pod sets it (and records a `pod missing` note), a run that finds
//! the Pod again clears it, and a run that finds it missing for longer than the limit ends the
//! reservation ("pod disappeared") the same way expiry does, snapshotting the disk. The Pod list
//! is read once for all reservations; a reservation that looks podless is re-checked with its
//! own list under its lock before anything is written.

use std::collections::HashSet;

use gpudev_cluster::{labels, ops};
use gpudev_store::expiry as store;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use uuid::Uuid;

use super::expire::LOCK;
use crate::k8s;
use crate::notify::PodNotifier;
use crate::run::{ACTOR, Expiry, StepError, Summary};

impl<N: PodNotifier> Expiry<N> {
    /// Marks, clears and acts on missing Pods of active reservations not yet due for expiry.
    pub(crate) async fn check_missing_pods(&self, s: &mut Summary) -> Result<(), StepError> {
        let api: Api<Pod> = Api::namespaced(self.kube.clone(), &self.cfg.namespace);
        let with_pods: HashSet<Uuid> = ops::list_selected(&api, &labels::managed_selector())
            .await?
            .iter()
            .filter_map(ops::reservation_of)
            .collect();
        let grace = self.cfg.grace.as_secs_f64();
        let active = {
            let db = self.pool.get().await?;
            store::active(&**db).await?
        };
        for r in active.into_iter().filter(|r| r.seconds_left >= -grace) {
            let id = r.reservation_id;
            if with_pods.contains(&id) {
                if r.pod_missing_since.is_some() {
                    let db = self.pool.get().await?;
                    if store::clear_pod_missing(&**db, id).await? {
                        s.pods_found_again += 1;
                    }
                }
                continue;
            }
            if let Err(e) = self.handle_missing(id, s).await {
                s.error(&format!("missing pod of reservation {id}"), e);
                if s.database_unavailable() {
                    break;
                }
            }
        }
        Ok(())
    }

    async fn handle_missing(&self, id: Uuid, s: &mut Summary) -> Result<(), StepError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        if !store::try_lock(&*tx, LOCK, id).await? {
            s.skipped_busy += 1;
            return Ok(());
        }
        let Some(r) = store::active_one(&*tx, id).await? else {
            return Ok(());
        };
        if !k8s::pods_of(&self.kube, &self.cfg.namespace, id)
            .await?
            .is_empty()
        {
            if store::clear_pod_missing(&*tx, id).await? {
                s.pods_found_again += 1;
            }
            tx.commit().await?;
            return Ok(());
        }
        let Some(missing_for) = store::mark_pod_missing(&*tx, id, ACTOR).await? else {
            return Ok(());
        };
        if r.pod_missing_since.is_none() {
            s.pods_missing += 1;
            tracing::warn!(reservation_id = %id, "active reservation has no pod");
        }
        if missing_for >= self.cfg.pod_missing_after.as_secs_f64() {
            let ended = self.end_reservation(&tx, &r, "pod disappeared").await?;
            ended.add_to(s);
            if ended.transitioned {
                s.pod_disappeared += 1;
                tracing::info!(reservation_id = %id, "expired: pod disappeared");
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
