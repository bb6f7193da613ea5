//! Dev box objects with no live reservation: Pods, Services and Secrets labelled
//! `app.kubernetes.io/managed-by=gpudev` whose reservation is not `queued`, `preparing` or
//! `active` (ended, or unknown to the database).
//!
//! The objects are listed *before* the live reservations are read: an object created for a
//! reservation that becomes live in between is then either not in the list or found live, never
//! deleted by mistake. Objects without a reservation label are left alone (not ours to judge),
//! and so are disk claims and snapshots, which outlive reservations by design. Pods go first so
//! that what they own goes with them; a delete that finds nothing (another run, or the
//! cascade, was first) is not counted.

use gpudev_cluster::{labels, ops};
use gpudev_store::expiry as store;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::{Api, ResourceExt};

use crate::notify::PodNotifier;
use crate::run::{Expiry, StepError, Summary};

impl<N: PodNotifier> Expiry<N> {
    /// Deletes every managed Pod, Service and Secret whose reservation is not live.
    pub(crate) async fn delete_orphans(&self, s: &mut Summary) -> Result<(), StepError> {
        let ns = &self.cfg.namespace;
        let objects = ops::list_managed(&self.kube, ns, &labels::managed_selector()).await?;
        let live = {
            let db = self.pool.get().await?;
            store::live_ids(&**db).await?
        };
        let orphan = |id: Option<uuid::Uuid>| id.is_some_and(|id| !live.contains(&id));

        let pods: Api<Pod> = Api::namespaced(self.kube.clone(), ns);
        for pod in objects
            .pods
            .iter()
            .filter(|o| orphan(ops::reservation_of(*o)))
        {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match ops::delete_if_present(&pods, &pod.name_any()).await {
                Ok(true) => {
                    tracing::info!(pod = %pod.name_any(), "deleted orphaned pod");
                    s.orphan_pods_deleted += 1;
                }
                Ok(false) => {}
                Err(e) => s.error("deleting an orphaned pod", e),
            }
        }
        let services: Api<Service> = Api::namespaced(self.kube.clone(), ns);
        for service in objects
            .services
            .iter()
            .filter(|o| orphan(ops::reservation_of(*o)))
        {
            match ops::delete_if_present(&services, &service.name_any()).await {
                Ok(true) => {
                    tracing::info!(service = %service.name_any(), "deleted orphaned service");
                    s.orphan_services_deleted += 1;
                }
                Ok(false) => {}
                Err(e) => s.error("deleting an orphaned service", e),
            }
        }
        let secrets: Api<Secret> = Api::namespaced(self.kube.clone(), ns);
        for secret in objects
            .secrets
            .iter()
            .filter(|o| orphan(ops::reservation_of(*o)))
        {
            match ops::delete_if_present(&secrets, &secret.name_any()).await {
                Ok(true) => {
                    tracing::info!(secret = %secret.name_any(), "deleted orphaned secret");
                    s.orphan_secrets_deleted += 1;
                }
                Ok(false) => {}
                Err(e) => s.error("deleting an orphaned secret", e),
            }
        }
        Ok(())
    }
}
