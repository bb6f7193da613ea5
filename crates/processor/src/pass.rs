//! One scheduling pass: fetch (nodes and pods from the [cluster view](crate::view) when it
//! runs, else listed from Kubernetes; live reservations and recent usage from the database) → decide ([`crate::plan::plan_pass`], pure) → write (impossible
//! requests failed, admissions with their placement, positions and estimates — one transaction
//! on the leader session) → drive (create the admitted reservations' objects).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use gpudev_cluster::capacity::node_capacities;
use gpudev_cluster::names;
use gpudev_cluster::ops::{ManagedObjects, nodes_and_pods};
use gpudev_store::{StoreError, reservations};
use uuid::Uuid;

use crate::error::Result;
use crate::plan::{PassFacts, USAGE_HORIZON_HALF_LIVES, plan_pass};
use crate::processor::{ACTOR, Fenced, Processor};
use gpudev_domain::{QueueInfo, QueueState, ReservationKey};
use gpudev_store::scheduling::{self as db, AdmissionRow, LiveRow, PositionUpdate, PromiseEvent};

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassReport {
    /// Reservations admitted (now `preparing`), in scheduling order.
    pub admitted: Vec<Uuid>,
    /// Reservations failed because they can never run.
    pub failed: Vec<Uuid>,
    /// Reservations still waiting.
    pub waiting: usize,
    /// Nodes considered.
    pub nodes: usize,
    /// Time spent reading the cluster and the database.
    pub fetch_time: Duration,
    /// Time spent deciding (the pure part).
    pub decide_time: Duration,
    /// Time spent writing failures, admissions and positions (one transaction).
    pub write_time: Duration,
    /// Time spent creating the admitted reservations' objects.
    pub drive_time: Duration,
    /// Time spent in the whole pass.
    pub total_time: Duration,
}

impl Processor {
    /// Runs one scheduling pass (see the module docs). Only the leader may.
    #[tracing::instrument(skip_all)]
    pub async fn scheduler_pass(&self) -> Result<PassReport> {
        let started = Instant::now();
        let leader = self.leader()?;
        let config = &self.inner.config;
        let (nodes, pods) = match self.ready_view() {
            Some(view) => view.snapshot(),
            None => {
                let (nodes, pods) = nodes_and_pods(&self.inner.kube).await?;
                (
                    nodes.into_iter().map(Arc::new).collect(),
                    pods.into_iter().map(Arc::new).collect(),
                )
            }
        };
        let (rows, usage, clocks, startup) = {
            let db = self.db().await?;
            let horizon = config.fair_share_half_life.as_secs_f64() * USAGE_HORIZON_HALF_LIVES;
            let rows = db::live_rows(&**db).await?;
            let usage = db::usage_rows(&**db, horizon).await?;
            let clocks = db::clocks(&**db).await?;
            let startup = self.startup_times(&**db, &rows).await?;
            (rows, usage, clocks, startup)
        };
        let capacities = node_capacities(&nodes, &pods, &config.gpu_type_label, &config.catalog);
        let fetch_time = started.elapsed();
        let decide_started = Instant::now();
        let plan = plan_pass(&PassFacts {
            now: Utc::now(),
            rows: &rows,
            usage: &usage,
            capacities: &capacities,
            pods: &pods,
            namespace: &config.namespace,
            catalog: &config.catalog,
            quotas: config.quotas,
            half_life: config.fair_share_half_life,
            clocks: &clocks,
            policy: config.queue_policy,
            release_delay: config.release_delay,
        });
        let decide_time = decide_started.elapsed();

        let gpu_types: HashMap<Uuid, &str> = rows
            .iter()
            .map(|r| (r.reservation_id, r.gpu_type.as_str()))
            .collect();
        let node_counts: HashMap<Uuid, i32> = rows
            .iter()
            .map(|r| (r.reservation_id, r.node_count))
            .collect();
        let mut failures: Vec<(Uuid, String)> = plan.rejected.clone();
        failures.extend(plan.outcome.impossible.iter().map(|i| {
            (
                i.reservation_id,
                format!("cannot be scheduled: {}", i.reason),
            )
        }));
        let admissions: Vec<AdmissionRow> = plan
            .outcome
            .admissions
            .iter()
            .map(|a| {
                let total = node_counts
                    .get(&a.reservation_id)
                    .and_then(|n| u32::try_from(*n).ok())
                    .unwrap_or(1);
                AdmissionRow {
                    id: a.reservation_id,
                    nodes: a.node_names.clone(),
                    pod_name: names::pod_name(a.reservation_id, 0, total),
                    reason: format!(
                        "admitted on {}; starting the dev box",
                        a.node_names.join(", ")
                    ),
                    tag: a.tag,
                }
            })
            .collect();
        let positions: Vec<PositionUpdate> = plan
            .outcome
            .positions
            .iter()
            .map(|q| PositionUpdate {
                id: q.reservation_id,
                position: i32::try_from(q.position).unwrap_or(i32::MAX),
                eta: q.estimated_start.and_then(timestamp),
                detail: q.blocked_reason.clone().unwrap_or_else(|| {
                    let gpu_type = gpu_types
                        .get(&q.reservation_id)
                        .copied()
                        .unwrap_or("its GPU type");
                    let promised = if q.promise.is_some() {
                        "; start promised"
                    } else {
                        ""
                    };
                    format!(
                        "waiting in queue: position {} for {gpu_type}{promised}",
                        q.position
                    )
                }),
                tag: q.tag,
                ready: q.estimated_start.and_then(|t| {
                    let gpu_type = gpu_types.get(&q.reservation_id)?;
                    timestamp(t.saturating_add(*startup.get(*gpu_type)?))
                }),
                promised: q.promise.as_ref().and_then(|p| timestamp(p.start)),
                promised_nodes: q.promise.as_ref().map(|p| p.node_names.clone()),
            })
            .collect();
        let promise_events = promise_events(&rows, &plan.outcome.positions);
        let state = self.state_to_publish(&plan.state)?;
        let clocks: Vec<(String, f64)> = plan
            .outcome
            .clocks
            .iter()
            .map(|(t, v)| (t.to_string(), *v))
            .collect();

        let write_started = Instant::now();
        let (failed, admitted) = {
            let mut client = leader.lock().await?;
            let tx = client.transaction().await.fenced(&leader)?;
            let failed = db::fail_queued(&tx, &failures, ACTOR)
                .await
                .fenced(&leader)?;
            let admitted = db::admit(&tx, &admissions, &config.namespace, ACTOR)
                .await
                .fenced(&leader)?;
            db::write_positions(&tx, &positions).await.fenced(&leader)?;
            db::record_promises(&tx, &promise_events, ACTOR)
                .await
                .fenced(&leader)?;
            db::advance_clocks(&tx, &clocks).await.fenced(&leader)?;
            if let Some(state) = &state {
                let taken_at = timestamp(plan.state.taken_at).unwrap_or_else(Utc::now);
                db::publish_state(&tx, taken_at, state)
                    .await
                    .fenced(&leader)?;
            }
            tx.commit().await.fenced(&leader)?;
            if let Some(state) = state {
                self.remember_published(state);
            }
            (failed, admitted)
        };
        let write_time = write_started.elapsed();
        let metrics = &self.inner.metrics;
        for id in &admitted {
            let gpu_type = gpu_types.get(id).copied().unwrap_or("unknown");
            metrics.admissions.with_label_values(&[gpu_type]).inc();
        }
        if !failed.is_empty() {
            metrics
                .failures
                .with_label_values(&["impossible"])
                .inc_by(failed.len() as u64);
            for (id, reason) in failures.iter().filter(|(id, _)| failed.contains(id)) {
                tracing::warn!(reservation_id = %id, reason, "reservation can never be scheduled");
            }
        }
        if !admitted.is_empty() {
            tracing::info!(
                admitted = admitted.len(),
                waiting = positions.len(),
                "reservations admitted"
            );
        }
        let drive_started = Instant::now();
        self.drive_admitted(&admitted).await?;
        let drive_time = drive_started.elapsed();
        let total_time = started.elapsed();
        metrics.pass_duration.observe(total_time.as_secs_f64());
        Ok(PassReport {
            admitted,
            failed,
            waiting: positions.len(),
            nodes: plan.nodes,
            fetch_time,
            decide_time,
            write_time,
            drive_time,
            total_time,
        })
    }

    /// Each GPU type's recent median start-up time in seconds, read again every few minutes, or
    /// at once while a queued reservation's type has none yet.
    async fn startup_times(
        &self,
        db: &impl gpudev_store::Db,
        rows: &[LiveRow],
    ) -> Result<HashMap<String, i64>> {
        let cached = self
            .inner
            .startup
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some((at, times)) = cached
            && at.elapsed() < STARTUP_REFRESH
            && rows.iter().all(|r| {
                r.status != gpudev_domain::ReservationStatus::Queued
                    || times.contains_key(&r.gpu_type)
            })
        {
            return Ok(times);
        }
        let types: Vec<&str> = self.inner.config.catalog.names().collect();
        let times: HashMap<String, i64> = db::startup_medians(db, &types, STARTUP_SAMPLE)
            .await?
            .into_iter()
            .map(|(t, secs)| (t, secs.round() as i64))
            .collect();
        *self
            .inner
            .startup
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), times.clone()));
        Ok(times)
    }

    /// The state to publish, or `None` when it is what this leader published last, apart from
    /// the time of the pass and the users' decayed past use (which changes with every pass, and
    /// only ever shifts a new request's tag by less than one request).
    fn state_to_publish(
        &self,
        state: &QueueState<ReservationKey>,
    ) -> Result<Option<serde_json::Value>> {
        let value = serde_json::to_value(state)
            .map_err(|e| StoreError::Corrupt(format!("the queue state does not serialise: {e}")))?;
        let same = self
            .inner
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|last| essentials(last) == essentials(&value));
        Ok((!same).then_some(value))
    }

    fn remember_published(&self, state: serde_json::Value) {
        *self
            .inner
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(state);
    }

    /// Creates the objects of freshly admitted reservations, a few at a time. A failure leaves
    /// the reservation `preparing`; the reconciliation (or its message) tries again.
    async fn drive_admitted(&self, admitted: &[Uuid]) -> Result<()> {
        if admitted.is_empty() {
            return Ok(());
        }
        let _guard = self.inner.objects_lock.lock().await;
        let results: Vec<Result<()>> = futures::stream::iter(admitted.to_vec())
            .map(|id| self.drive_one(id))
            .buffer_unordered(DRIVE_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn drive_one(&self, id: Uuid) -> Result<()> {
        let r = {
            let db = self.db().await?;
            reservations::find(&**db, id).await?
        };
        let Some(r) = r else { return Ok(()) };
        match self.drive_or_fail(&r, &ManagedObjects::default()).await {
            Err(e) if !e.is_leadership() => {
                tracing::warn!(reservation_id = %id, error = %e, "creating the dev box failed; will retry");
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }
}

/// What of a published state decides whether it is worth writing again: all but the time of
/// its pass and the decayed past use.
fn essentials(state: &serde_json::Value) -> serde_json::Value {
    let mut state = state.clone();
    if let Some(map) = state.as_object_mut() {
        map.remove("taken_at");
        map.remove("usage");
    }
    state
}

fn timestamp(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(secs, 0)
}

/// The history entries of this pass's promises: newly made, or moved with the reason.
fn promise_events(rows: &[LiveRow], positions: &[QueueInfo<Uuid>]) -> Vec<PromiseEvent> {
    let before: HashMap<Uuid, Option<DateTime<Utc>>> = rows
        .iter()
        .map(|r| (r.reservation_id, r.promised_start_at))
        .collect();
    positions
        .iter()
        .filter_map(|q| {
            let start = q.promise.as_ref().and_then(|p| timestamp(p.start));
            let previous = before.get(&q.reservation_id).copied().flatten();
            let reason = match (&q.promise_moved, start, previous) {
                (Some(why), Some(start), _) => format!("promise moved to {start}: {why}"),
                (Some(why), None, _) => format!("promise withdrawn: {why}"),
                (None, Some(start), None) => format!("promised to start by {start}"),
                _ => return None,
            };
            Some(PromiseEvent {
                id: q.reservation_id,
                reason,
                start,
                previous,
            })
        })
        .collect()
}

/// How often the start-up times are read again.
const STARTUP_REFRESH: Duration = Duration::from_secs(300);
/// Recent launches per GPU type whose median start-up time estimates the next one's.
const STARTUP_SAMPLE: i64 = 50;

/// Admitted reservations whose objects are created at the same time.
const DRIVE_CONCURRENCY: usize = 8;
