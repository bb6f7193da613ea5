//! Level-triggered reconciliation: compare the objects in the namespace with the database and
//! make them agree, whatever messages were lost, duplicated or late.
//!
//! - objects of a reservation that is not `preparing` or `active` are deleted (cancel from any
//!   state, failures, requeues; expiry is the expiry job's, but what it left is removed too);
//! - a `preparing` reservation missing any of its objects gets them (again); after a failed
//!   attempt the next waits a backoff that doubles with each failure in a row (`RETRY_BACKOFF_*`),
//!   so a long Kubernetes outage is not met with every stuck reservation on every tick;
//! - a `preparing` reservation's Pods are read: Ready → `active`, failing → `failed`, and past
//!   the ready timeout → requeued once or failed ([`crate::settle`]);
//! - disks still attached to cancelled or failed reservations are released.
//!
//! Objects labelled with a reservation the database does not know are left to the expiry job's
//! orphan sweep: they may belong to another installation sharing the namespace.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use gpudev_cluster::ops::{self, ManagedObjects, OpsError};
use gpudev_cluster::{labels, names};
use gpudev_domain::ReservationStatus;
use gpudev_store::reservations::{self, ListFilter, Reservation};
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::ResourceExt;
use kube::api::ListParams;
use uuid::Uuid;

use crate::error::Result;
use crate::processor::Processor;
use crate::settle::Settled;
use gpudev_store::scheduling as db;

/// What a reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct ReconcileReport {
    /// Reservations whose leftover objects were deleted.
    pub cleaned: Vec<Uuid>,
    /// Preparing reservations whose missing objects were (re)created.
    pub driven: Vec<Uuid>,
    /// Reservations that became active.
    pub activated: Vec<Uuid>,
    /// Reservations failed (pod errors, timeouts).
    pub failed: Vec<Uuid>,
    /// Reservations sent back to the queue.
    pub requeued: Vec<Uuid>,
    pub disks_released: usize,
}

/// Most live reservations looked at in one reconciliation.
const MAX_LIVE: i64 = 100_000;

impl Processor {
    /// Makes the cluster match the database once (see the module docs). Only the leader may.
    #[tracing::instrument(skip_all)]
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        self.leader()?;
        let _guard = self.inner.objects_lock.lock().await;
        let objects = self.managed_objects().await?;
        let live: Vec<Reservation> = {
            let db = self.db().await?;
            reservations::list(
                &**db,
                &ListFilter {
                    user_id: None,
                    statuses: vec![ReservationStatus::Preparing, ReservationStatus::Active],
                    limit: MAX_LIVE,
                    offset: 0,
                },
            )
            .await?
            .0
        };
        let live_ids: HashSet<Uuid> = live.iter().map(|r| r.reservation_id).collect();
        if let Ok(mut redrive) = self.inner.redrive.lock() {
            redrive.retain(|id, _| live_ids.contains(id));
        }
        let mut report = ReconcileReport::default();

        let others: Vec<Uuid> = objects
            .reservations()
            .into_iter()
            .filter(|id| !live_ids.contains(id))
            .collect();
        let statuses = {
            let db = self.db().await?;
            db::statuses(&**db, &others).await?
        };
        for id in others {
            let Some(status) = statuses.get(&id).copied() else {
                continue;
            };
            let mine = objects.of(id);
            match self.clean_up(id, status, Some(&mine)).await {
                Ok(_) => report.cleaned.push(id),
                Err(e) if e.is_leadership() => return Err(e),
                Err(e) => tracing::warn!(reservation_id = %id, error = %e, "cleanup failed"),
            }
        }

        for r in live
            .iter()
            .filter(|r| r.status == ReservationStatus::Preparing)
        {
            let mine = objects.of(r.reservation_id);
            let mut pods = Some(mine.pods.clone());
            let mut current = r.clone();
            if is_incomplete(r, &mine) && self.may_redrive(r.reservation_id) {
                match self.drive_or_fail(r, &mine).await {
                    Ok(_) => {
                        self.redriven(r.reservation_id, true, None);
                        report.driven.push(r.reservation_id);
                        pods = None;
                    }
                    Err(e) if e.is_leadership() => return Err(e),
                    Err(e) => {
                        let wait = self.redriven(r.reservation_id, false, e.retry_within());
                        tracing::warn!(reservation_id = %r.reservation_id, error = %e, retry_in = ?wait, "creating the dev box failed; will retry");
                    }
                }
                // The driver may have failed it.
                let db = self.db().await?;
                match reservations::find(&**db, r.reservation_id).await? {
                    Some(now) => current = now,
                    None => continue,
                }
            }
            match self.settle(&current, pods, true).await {
                Ok(Settled::Activated) => report.activated.push(r.reservation_id),
                Ok(Settled::Failed) => report.failed.push(r.reservation_id),
                Ok(Settled::Requeued) => report.requeued.push(r.reservation_id),
                Ok(Settled::Unchanged) => {
                    if current.status == ReservationStatus::Failed {
                        report.failed.push(r.reservation_id);
                    }
                }
                Err(e) if e.is_leadership() => return Err(e),
                Err(e) => {
                    tracing::warn!(reservation_id = %r.reservation_id, error = %e, "settling failed")
                }
            }
        }

        let attached = {
            let db = self.db().await?;
            db::disks_of_ended(&**db).await?
        };
        let with_pods: HashSet<Uuid> = objects
            .pods
            .iter()
            .filter_map(ops::reservation_of)
            .collect();
        for (_, reservation_id) in attached {
            if !with_pods.contains(&reservation_id) {
                self.release_disk_of(reservation_id).await?;
                report.disks_released += 1;
            }
        }
        Ok(report)
    }
}

impl Processor {
    /// Whether the reconciliation may try again to create a reservation's objects: not before
    /// the backoff after its last failure (`RETRY_BACKOFF_*`, as failed messages) has passed.
    fn may_redrive(&self, id: Uuid) -> bool {
        self.inner.redrive.lock().map_or(true, |redrive| {
            redrive
                .get(&id)
                .is_none_or(|(_, next)| Instant::now() >= *next)
        })
    }

    /// Records an attempt to create a reservation's objects; after a failure, returns how long
    /// the next one waits (doubling with each failure in a row, with jitter; at most `cap`).
    fn redriven(&self, id: Uuid, succeeded: bool, cap: Option<Duration>) -> Option<Duration> {
        let mut redrive = self.inner.redrive.lock().ok()?;
        if succeeded {
            redrive.remove(&id);
            return None;
        }
        let failures = redrive.get(&id).map_or(1, |(n, _)| n.saturating_add(1));
        let wait = self.inner.config.retry_backoff.delay(failures);
        let wait = cap.map_or(wait, |cap| wait.min(cap));
        redrive.insert(id, (failures, Instant::now() + wait));
        Some(wait)
    }
}

impl Processor {
    /// gpudev's Pods, Services and Secrets in the namespace. Pods come from the cluster view
    /// when it runs (a list of every dev box Pod is the heaviest request the processor would
    /// make); of Services and Secrets only the metadata is listed (all reconciliation reads).
    async fn managed_objects(&self) -> Result<ManagedObjects> {
        let config = &self.inner.config;
        let selector = labels::managed_selector();
        let Some(view) = self.ready_view() else {
            return Ok(ops::list_managed(&self.inner.kube, &config.namespace, &selector).await?);
        };
        let (_, pods) = view.snapshot();
        let pods = pods
            .iter()
            .filter(|p| {
                p.metadata.namespace.as_deref() == Some(config.namespace.as_str())
                    && p.metadata.labels.as_ref().is_some_and(|l| {
                        l.get(labels::MANAGED_BY).map(String::as_str)
                            == Some(labels::MANAGED_BY_VALUE)
                    })
            })
            .map(|p| (**p).clone())
            .collect();
        // Names, labels and owners are all reconciliation reads of Services and Secrets: list
        // their metadata only (no Secret data crosses the wire).
        let lp = ListParams::default().labels(&selector);
        let (services_api, secrets_api) = (self.services_api(), self.secrets_api());
        let (services, secrets) = futures::try_join!(
            async {
                services_api
                    .list_metadata(&lp)
                    .await
                    .map_err(|e| OpsError::kube("list", "Service", &selector, e))
            },
            async {
                secrets_api
                    .list_metadata(&lp)
                    .await
                    .map_err(|e| OpsError::kube("list", "Secret", &selector, e))
            },
        )?;
        let services = services
            .items
            .into_iter()
            .map(|m| Service {
                metadata: m.metadata,
                ..Service::default()
            })
            .collect();
        let secrets = secrets
            .items
            .into_iter()
            .map(|m| Secret {
                metadata: m.metadata,
                ..Secret::default()
            })
            .collect();
        Ok(ManagedObjects {
            pods,
            services,
            secrets,
        })
    }
}

/// True when any object a `preparing` reservation needs is missing.
fn is_incomplete(r: &Reservation, objects: &ManagedObjects) -> bool {
    let total = u32::try_from(r.node_count.max(1)).unwrap_or(1);
    let has_secret = |name: &str| objects.secrets.iter().any(|s| s.name_any() == name);
    let has_service = |name: &str| objects.services.iter().any(|s| s.name_any() == name);
    let pod_missing = (0..total).any(|index| {
        let pod = names::pod_name(r.reservation_id, index, total);
        let pod_ok = objects
            .pods
            .iter()
            .any(|p| p.name_any() == pod && p.metadata.deletion_timestamp.is_none());
        !pod_ok
            || !has_secret(&names::secret_name(&pod))
            || !has_service(&names::ssh_service_name(&pod))
    });
    pod_missing || (total > 1 && !has_service(&names::headless_service_name(r.reservation_id)))
}
