//! `GET /v1/gpu/availability` and `GET /v1/cluster/status`: capacity per GPU type, from the last
//! known node figures (the availability CronJob's rows or the scheduler's last pass, whichever is
//! newer) and the live reservations counted per type and status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use chrono::{DateTime, Utc};
use gpudev_domain::{
    GpuCatalog, GpuSpec, NodeFigures, QueueState, ReservationKey, ReservationStatus, node_figures,
};
use gpudev_store::gpu_types::GpuTypeRow;
use gpudev_store::reservations::{self, LiveCount};

pub use gpudev_api_types::cluster::{CapacityUnit, FiguresSource, GpuAvailability};

pub mod availability;
pub mod status;

/// Registers the capacity routes (inside the authenticated scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(availability::gpu_availability)
        .service(status::cluster_status);
}

/// Reservations by status, over every GPU type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Active reservations.
    pub active: i64,
    /// Preparing reservations.
    pub preparing: i64,
    /// Queued reservations.
    pub queued: i64,
}

/// What the capacity routes read: the catalog (which types exist), the availability rows (what
/// the availability job last saw of the nodes), the scheduler's last published state (what its
/// last pass saw of them), the live reservations counted per type and status (what is held and
/// wanted), and the scheduler's
/// estimated waits ([`crate::queue_state::estimated_waits`]).
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The GPU catalog.
    pub catalog: &'a GpuCatalog,
    /// The availability job's rows.
    pub rows: &'a [GpuTypeRow],
    /// The scheduler's last published state, if any.
    pub published: Option<&'a QueueState<ReservationKey>>,
    /// Live reservations, counted per type and status.
    pub live: &'a [LiveCount],
    /// Estimated minutes until a new reservation of each type could start.
    pub waits: &'a BTreeMap<String, i64>,
    /// Most nodes one reservation may span.
    pub max_nodes: u32,
    /// Now.
    pub now: DateTime<Utc>,
}

/// How long one reading of the live counts answers the capacity routes and pages before it is
/// read again.
pub const LIVE_COUNTS_REUSE: Duration = Duration::from_secs(1);

/// The oldest reading the capacity routes and pages answer from while a newer one is being
/// made; an older one is waited for.
pub const LIVE_COUNTS_MAX_AGE: Duration = Duration::from_secs(5);

/// The live reservations counted per type and status, read at most once per
/// [`LIVE_COUNTS_REUSE`] by this process however many ask: a long queue costs one aggregate a
/// second, not one per capacity page. Once a reading is due, the first to ask starts the next in
/// the background and everyone is answered from the last one, as long as it is younger than
/// [`LIVE_COUNTS_MAX_AGE`] and this process has stored or cancelled no reservation since it
/// began (so a user sees their own submit at once); otherwise the next reading is waited for,
/// one for all who wait.
#[derive(Debug, Default)]
pub struct LiveCounts {
    last: std::sync::Mutex<Reading>,
    /// Held by whoever makes a reading that others wait for.
    waited: tokio::sync::Mutex<()>,
    /// Reservations this process has stored or cancelled.
    changes: std::sync::atomic::AtomicU64,
}

/// The last reading: when it began, the changes counted then, and the counts; and whether a
/// reading is being made in the background.
#[derive(Debug, Default)]
struct Reading {
    counts: Option<(Instant, u64, Arc<[LiveCount]>)>,
    refreshing: bool,
}

impl Reading {
    /// Keeps a reading that began at `began`, unless a later one is already kept.
    fn keep(&mut self, began: Instant, seen: u64, counts: Arc<[LiveCount]>) {
        if self.counts.as_ref().is_none_or(|(at, _, _)| *at <= began) {
            self.counts = Some((began, seen, counts));
        }
    }
}

impl LiveCounts {
    /// The counts (see [`LiveCounts`]).
    pub async fn get(
        &self,
        state: &crate::state::AppState,
    ) -> crate::error::ApiResult<Arc<[LiveCount]>> {
        if let Some(counts) = self.usable(state) {
            return Ok(counts);
        }
        let _waited = self.waited.lock().await;
        if let Some(counts) = self.usable(state) {
            return Ok(counts);
        }
        let (began, seen) = (Instant::now(), self.seen());
        let counts = read_counts(state).await?;
        self.lock().keep(began, seen, counts.clone());
        Ok(counts)
    }

    /// Tells the counts that this process stored or cancelled a reservation: the next answer
    /// comes from a reading made after it.
    pub fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn seen(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The last reading if it may answer, after starting the next in the background when it is
    /// due and nobody is making one.
    fn usable(&self, state: &crate::state::AppState) -> Option<Arc<[LiveCount]>> {
        let mut last = self.lock();
        let (began, seen, counts) = last.counts.clone()?;
        let age = began.elapsed();
        if seen != self.seen() || age >= LIVE_COUNTS_MAX_AGE {
            return None;
        }
        if age >= LIVE_COUNTS_REUSE && !last.refreshing {
            last.refreshing = true;
            let state = state.clone();
            actix_web::rt::spawn(async move {
                let live = &state.live_counts;
                let (began, seen) = (Instant::now(), live.seen());
                let read = read_counts(&state).await;
                let mut last = live.lock();
                last.refreshing = false;
                match read {
                    Ok(counts) => last.keep(began, seen, counts),
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the live reservation counts failed");
                    }
                }
            });
        }
        Some(counts)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reading> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn read_counts(state: &crate::state::AppState) -> crate::error::ApiResult<Arc<[LiveCount]>> {
    let db = state.db().await?;
    Ok(reservations::live_counts(&*db).await?.into())
}

/// The node figures of one type and when they were taken.
struct Known {
    figures: NodeFigures,
    at: DateTime<Utc>,
    source: FiguresSource,
}

/// Combines the [`Inputs`] into one entry per type, keyed and sorted by name.
///
/// The node figures are the last known ones: the availability job's run or the scheduler's last
/// pass, whichever is newer (before the job's first run, the scheduler's), with their age;
/// zeros with no source only when neither has seen the type's nodes yet. `in_use` and `queued`
/// come from the reservations, as in the original; for a CPU-only type they count reservations
/// (one slot each), like its node figures. `available` is what was seen free, capped by the
/// total less what reservations hold now (reservations admitted since are already counted).
pub fn summarise(input: Inputs<'_>) -> (BTreeMap<String, GpuAvailability>, Counts) {
    let mut counts = Counts::default();
    for c in input.live {
        match c.status {
            ReservationStatus::Active => counts.active += c.reservations,
            ReservationStatus::Preparing => counts.preparing += c.reservations,
            ReservationStatus::Queued => counts.queued += c.reservations,
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for spec in input.catalog {
        let name = spec.name.as_str();
        let cpu_only = spec.is_cpu_only();
        let of_type = || input.live.iter().filter(|c| c.gpu_type == name);
        // A CPU reservation takes one slot; a GPU reservation its GPUs.
        let slots = |c: &LiveCount| if cpu_only { c.reservations } else { c.gpus };
        let in_use: i64 = of_type()
            .filter(|c| c.status != ReservationStatus::Queued)
            .map(slots)
            .sum();
        let queued: i64 = of_type()
            .filter(|c| c.status == ReservationStatus::Queued)
            .map(slots)
            .sum();
        let queued_reservations: i64 = of_type()
            .filter(|c| c.status == ReservationStatus::Queued)
            .map(|c| c.reservations)
            .sum();
        let known = last_known(spec, &input);
        let figures = known.as_ref().map(|k| k.figures).unwrap_or_default();
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let total = n(figures.total_slots);
        let available = n(figures.free_slots).min(total - in_use).max(0);
        let per_node = i64::from(spec.gpus_per_node);
        let full_nodes = if per_node > 0 {
            n(figures.full_nodes).min(available / per_node)
        } else {
            0
        };
        out.insert(
            name.to_owned(),
            GpuAvailability {
                gpu_type: name.to_owned(),
                total,
                available,
                in_use,
                queued,
                max_per_node: per_node,
                full_nodes_available: full_nodes,
                max_reservable: n(figures.max_reservable).min(available),
                running_instances: n(figures.running_nodes),
                multinode: spec.multinode,
                queued_reservations,
                estimated_wait_minutes: input.waits.get(name).copied(),
                last_updated: known.as_ref().map(|k| k.at),
                unit: if cpu_only {
                    CapacityUnit::CpuSlots
                } else {
                    CapacityUnit::Gpus
                },
                figures_source: known.as_ref().map(|k| k.source),
                figures_age_seconds: known
                    .as_ref()
                    .map(|k| (input.now - k.at).num_seconds().max(0)),
                bookable: None,
            },
        );
    }
    (out, counts)
}

/// The newer of the availability job's figures for `spec` and the scheduler's.
fn last_known(spec: &GpuSpec, input: &Inputs<'_>) -> Option<Known> {
    let from_job = input
        .rows
        .iter()
        .find(|r| r.gpu_type == spec.name.as_str())
        .and_then(|r| {
            let at = r.last_availability_update?;
            let n = |v: i32| u64::try_from(v).unwrap_or(0);
            Some(Known {
                figures: NodeFigures {
                    running_nodes: n(r.running_nodes),
                    total_slots: n(r.total_gpus),
                    in_use_slots: n(r.in_use_gpus),
                    free_slots: n(r.available_gpus),
                    full_nodes: n(r.full_nodes_available),
                    max_reservable: n(r.max_reservable),
                },
                at,
                source: FiguresSource::AvailabilityJob,
            })
        });
    let from_scheduler = input.published.and_then(|state| {
        let at = DateTime::from_timestamp(state.taken_at, 0)?;
        // The published state tells schedulable nodes, not Ready ones: those it can plan on.
        let figures = node_figures(
            spec.gpus_per_node,
            spec.multinode,
            state.nodes.iter().filter(|n| n.gpu_type == spec.name),
            |n| n.schedulable,
            input.max_nodes,
        );
        Some(Known {
            figures,
            at,
            source: FiguresSource::Scheduler,
        })
    });
    match (from_job, from_scheduler) {
        (Some(job), Some(pass)) if pass.at > job.at => Some(pass),
        (Some(job), _) => Some(job),
        (None, pass) => pass,
    }
}

/// The totals of `GET /v1/cluster/status`: GPUs over the types with GPUs, CPU slots over the
/// CPU-only ones, and the age of the oldest figures behind them.
pub fn totals(by_type: &BTreeMap<String, GpuAvailability>) -> Totals {
    let mut t = Totals::default();
    for a in by_type.values() {
        let (total, available, in_use, queued) = match a.unit {
            CapacityUnit::Gpus => (&mut t.gpus.0, &mut t.gpus.1, &mut t.gpus.2, &mut t.gpus.3),
            CapacityUnit::CpuSlots => (
                &mut t.cpu_slots.0,
                &mut t.cpu_slots.1,
                &mut t.cpu_slots.2,
                &mut t.cpu_slots.3,
            ),
        };
        *total += a.total;
        *available += a.available;
        *in_use += a.in_use;
        *queued += a.queued;
        t.oldest_age_seconds = t.oldest_age_seconds.max(a.figures_age_seconds);
    }
    t
}

/// Sums over types, as (total, available, in use, queued).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Over the types with GPUs, in GPUs.
    pub gpus: (i64, i64, i64, i64),
    /// Over the CPU-only types, in reservation slots.
    pub cpu_slots: (i64, i64, i64, i64),
    /// The age of the oldest figures (none when no type has any).
    pub oldest_age_seconds: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};

    fn row(name: &str, total: i32, free: i32, full: i32) -> GpuTypeRow {
        GpuTypeRow {
            gpu_type: name.into(),
            instance_type: "x".into(),
            gpus_per_node: 8,
            cpus_per_node: 1,
            memory_gib_per_node: 1,
            multinode: true,
            is_active: true,
            total_gpus: total,
            available_gpus: free,
            in_use_gpus: total - free,
            queued_gpus: 0,
            full_nodes_available: full,
            max_reservable: free,
            running_nodes: total / 8,
            last_availability_update: Some(Utc::now()),
            last_availability_updated_by: Some("test".into()),
        }
    }

    fn live(gpu_type: &str, status: ReservationStatus, gpus: i64, reservations: i64) -> LiveCount {
        LiveCount {
            gpu_type: gpu_type.into(),
            status,
            reservations,
            gpus,
        }
    }

    fn inputs<'a>(
        catalog: &'a GpuCatalog,
        rows: &'a [GpuTypeRow],
        published: Option<&'a QueueState<ReservationKey>>,
        live: &'a [LiveCount],
        waits: &'a BTreeMap<String, i64>,
    ) -> Inputs<'a> {
        Inputs {
            catalog,
            rows,
            published,
            live,
            waits,
            max_nodes: 4,
            now: Utc::now(),
        }
    }

    /// A published state `age_secs` old with these nodes: (name, type, slots, free).
    fn published(age_secs: i64, nodes: &[(&str, &str, u32, u32)]) -> QueueState<ReservationKey> {
        QueueState {
            taken_at: Utc::now().timestamp() - age_secs,
            nodes: nodes
                .iter()
                .map(|&(name, t, total, free)| gpudev_domain::NodeCapacity {
                    name: name.into(),
                    gpu_type: gpudev_domain::GpuType::parse(t).unwrap(),
                    slots_total: total,
                    slots_free: free,
                    schedulable: true,
                })
                .collect(),
            running: Vec::new(),
            queue: Vec::new(),
            usage: BTreeMap::new(),
            quotas: gpudev_domain::Quotas::default(),
            clocks: BTreeMap::new(),
            policy: gpudev_domain::QueuePolicy {
                promise_horizon_secs: 7200,
                aging: 1.0,
                release_delay_secs: 0,
            },
        }
    }

    #[test]
    fn before_the_jobs_first_run_the_schedulers_last_pass_gives_the_figures_and_their_age() {
        let catalog = GpuCatalog::default();
        let state = published(30, &[("h0", "h100", 8, 8), ("h1", "h100", 8, 2)]);
        let waits = BTreeMap::new();

        let (by_type, _) = summarise(inputs(&catalog, &[], Some(&state), &[], &waits));

        let h = &by_type["h100"];
        assert_eq!((h.total, h.available, h.running_instances), (16, 10, 2));
        assert_eq!((h.full_nodes_available, h.max_reservable), (1, 8));
        assert_eq!(h.figures_source, Some(FiguresSource::Scheduler));
        assert!((30..=31).contains(&h.figures_age_seconds.unwrap()), "{h:?}");
        // The scheduler saw no t4 nodes: zero is known, not unknown.
        assert_eq!(by_type["t4"].total, 0);
        assert_eq!(by_type["t4"].figures_source, Some(FiguresSource::Scheduler));
        // With neither source, nothing is known.
        let (nothing, _) = summarise(inputs(&catalog, &[], None, &[], &waits));
        let h = &nothing["h100"];
        assert_eq!(
            (h.total, h.figures_source, h.figures_age_seconds),
            (0, None, None)
        );
        assert_eq!(h.last_updated, None);
    }

    #[test]
    fn the_newer_of_the_jobs_run_and_the_schedulers_pass_is_shown() {
        let catalog = GpuCatalog::default();
        let mut old_row = row("h100", 16, 16, 2);
        old_row.last_availability_update = Some(Utc::now() - Duration::minutes(4));
        let state = published(5, &[("h0", "h100", 8, 8)]);
        let waits = BTreeMap::new();

        let (newer_pass, _) = summarise(inputs(
            &catalog,
            &[old_row.clone()],
            Some(&state),
            &[],
            &waits,
        ));
        let stale = published(600, &[("h0", "h100", 8, 8)]);
        let (newer_run, _) = summarise(inputs(&catalog, &[old_row], Some(&stale), &[], &waits));

        assert_eq!(newer_pass["h100"].total, 8);
        assert_eq!(
            newer_pass["h100"].figures_source,
            Some(FiguresSource::Scheduler)
        );
        assert_eq!(newer_run["h100"].total, 16);
        assert_eq!(
            newer_run["h100"].figures_source,
            Some(FiguresSource::AvailabilityJob)
        );
        assert!((240..=241).contains(&newer_run["h100"].figures_age_seconds.unwrap()));
    }

    #[test]
    fn cpu_types_count_reservation_slots_apart_from_gpus() {
        use ReservationStatus::{Active, Queued};
        let catalog = GpuCatalog::default();
        let state = published(1, &[("c0", "cpu-x86", 4, 2), ("h0", "h100", 8, 8)]);
        let live = [live("cpu-x86", Active, 0, 2), live("cpu-x86", Queued, 0, 1)];
        let waits = BTreeMap::new();

        let (by_type, _) = summarise(inputs(&catalog, &[], Some(&state), &live, &waits));
        let t = totals(&by_type);

        let cpu = &by_type["cpu-x86"];
        assert_eq!(cpu.unit, CapacityUnit::CpuSlots);
        assert_eq!(
            (cpu.total, cpu.available, cpu.in_use, cpu.queued),
            (4, 2, 2, 1)
        );
        assert_eq!(by_type["h100"].unit, CapacityUnit::Gpus);
        assert_eq!(t.gpus, (8, 8, 0, 0), "CPU slots are not GPUs");
        assert_eq!(t.cpu_slots, (4, 2, 2, 1));
        assert!(t.oldest_age_seconds.is_some_and(|a| a <= 2));
    }

    #[test]
    fn reservations_give_in_use_and_queued_and_cap_what_is_free() {
        use ReservationStatus::{Active, Preparing, Queued};
        let waits = BTreeMap::from([("h100".to_owned(), 120)]);
        let catalog = GpuCatalog::default();
        let rows = [row("h100", 16, 12, 1)];
        let live = [
            live("h100", Active, 8, 1),
            live("h100", Preparing, 4, 1),
            live("h100", Queued, 8, 1),
            live("t4", Queued, 1, 1),
        ];
        let (by_type, counts) = summarise(inputs(&catalog, &rows, None, &live, &waits));
        let h = &by_type["h100"];
        assert_eq!((h.total, h.in_use, h.queued), (16, 12, 8));
        assert_eq!(
            h.available, 4,
            "the job saw 12 free, reservations since hold 12 of 16"
        );
        assert_eq!(h.full_nodes_available, 0);
        assert_eq!(h.max_reservable, 4);
        assert_eq!(h.max_per_node, 8);
        assert_eq!(h.queued_reservations, 1);
        assert_eq!(
            h.estimated_wait_minutes,
            Some(120),
            "the scheduler's figure"
        );
        let t4 = &by_type["t4"];
        assert_eq!((t4.total, t4.available, t4.queued), (0, 0, 1));
        assert_eq!(t4.estimated_wait_minutes, None, "no figure for t4");
        assert_eq!(
            counts,
            Counts {
                active: 1,
                preparing: 1,
                queued: 2
            }
        );
        assert_eq!(
            by_type.keys().next().map(String::as_str),
            Some("a100"),
            "sorted by name"
        );
    }
}
