//! The queue as the scheduler's last pass left it (published by the processor's leader), kept
//! in memory: the submit answer runs the scheduler's own code over it (ADR 5).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gpudev_domain::{Pending, Prediction, QueueState, ReservationKey, Username};
use gpudev_store::reservations::Reservation;
use gpudev_store::{Db, StoreError, scheduling};
use uuid::Uuid;

/// How long a loaded state is used before its generation is checked again.
const RECHECK: Duration = Duration::from_secs(1);

/// How long the capacity figures computed from one state are reused.
const WAITS_REUSE: Duration = Duration::from_secs(30);

/// The published state, reloaded when the processor publishes a new generation, and the
/// capacity figures last computed from it.
#[derive(Debug, Default)]
pub struct PublishedQueue {
    cached: Mutex<Option<Cached>>,
    waits: Mutex<Option<Waits>>,
}

/// Capacity figures, the state they came from and when.
type Waits = (
    Arc<QueueState<ReservationKey>>,
    Instant,
    BTreeMap<String, i64>,
);

#[derive(Debug, Clone)]
struct Cached {
    generation: i64,
    state: Arc<QueueState<ReservationKey>>,
    checked_at: Instant,
}

impl PublishedQueue {
    /// The latest published state (none before the scheduler's first pass, or when the one
    /// published cannot be read by this version).
    pub async fn current(
        &self,
        db: &impl Db,
    ) -> Result<Option<Arc<QueueState<ReservationKey>>>, StoreError> {
        let cached = self.lock().clone();
        if let Some(c) = &cached
            && c.checked_at.elapsed() < RECHECK
        {
            return Ok(Some(c.state.clone()));
        }
        let Some(generation) = scheduling::state_generation(db).await? else {
            return Ok(None);
        };
        if let Some(c) = cached
            && c.generation == generation
        {
            self.store(Cached {
                checked_at: Instant::now(),
                ..c.clone()
            });
            return Ok(Some(c.state));
        }
        let Some((generation, value)) = scheduling::published_state(db).await? else {
            return Ok(None);
        };
        match serde_json::from_value::<QueueState<ReservationKey>>(value) {
            Ok(state) => {
                let state = Arc::new(state);
                self.store(Cached {
                    generation,
                    state: state.clone(),
                    checked_at: Instant::now(),
                });
                Ok(Some(state))
            }
            Err(e) => {
                tracing::warn!(error = %e, "the published queue state cannot be read; submit answers carry no estimate");
                Ok(None)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        self.cached.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn store(&self, c: Cached) {
        *self.lock() = Some(c);
    }
}

/// What the scheduler's next pass would do with `r`, a reservation it has not seen yet.
pub async fn predict(state: Arc<QueueState<ReservationKey>>, r: &Reservation) -> Prediction {
    let hours = r.duration_hours + r.extended_hours;
    let new = Pending {
        reservation_id: ReservationKey {
            submitted_micros: r.created_at.timestamp_micros(),
            id: r.reservation_id,
        },
        user: r.username.clone(),
        gpu_type: r.gpu_type.clone(),
        gpu_count: u32::try_from(r.gpu_count).unwrap_or(0),
        nodes: u32::try_from(r.node_count).unwrap_or(1),
        priority: r.priority,
        submitted_at: r.created_at.timestamp(),
        duration_secs: (hours * 3600.0).round() as i64,
        tag: None,
        promise: None,
    };
    let now = chrono::Utc::now().timestamp();
    // A pass over a long queue takes milliseconds of CPU: off the request threads.
    tokio::task::spawn_blocking(move || state.predict(new, now))
        .await
        .unwrap_or_else(|e| Prediction::Impossible(format!("the prediction failed: {e}")))
}

/// For each GPU type of the catalog, the minutes until a new one-hour request for one GPU (one
/// reservation slot on a CPU-only type) from a user with nothing running would start, by the
/// scheduler's own pass over its published state. Types it could never fit are absent, and so
/// is everything before the scheduler's first pass. Figures from the same state are reused for
/// half a minute: each costs a pass over the queue.
pub async fn estimated_waits(
    app: &crate::state::AppState,
    db: &impl Db,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<BTreeMap<String, i64>, StoreError> {
    let Some(state) = app.queue.current(db).await? else {
        return Ok(BTreeMap::new());
    };
    let reused = app
        .queue
        .waits
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .filter(|(from, at, _)| Arc::ptr_eq(from, &state) && at.elapsed() < WAITS_REUSE)
        .map(|(_, _, waits)| waits.clone());
    if let Some(waits) = reused {
        return Ok(waits);
    }
    let waits = compute_waits(app, state.clone(), now).await;
    *app.queue
        .waits
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some((state, Instant::now(), waits.clone()));
    Ok(waits)
}

async fn compute_waits(
    app: &crate::state::AppState,
    state: Arc<QueueState<ReservationKey>>,
    now: chrono::DateTime<chrono::Utc>,
) -> BTreeMap<String, i64> {
    let Some(user) = newcomer(&state) else {
        return BTreeMap::new();
    };
    let requests: Vec<(String, Pending<ReservationKey>)> = app
        .config
        .catalog
        .iter()
        .map(|spec| {
            let pending = Pending {
                reservation_id: ReservationKey {
                    submitted_micros: now.timestamp_micros(),
                    id: Uuid::nil(),
                },
                user: user.clone(),
                gpu_type: spec.name.clone(),
                gpu_count: u32::from(!spec.is_cpu_only()),
                nodes: 1,
                priority: 0,
                submitted_at: now.timestamp(),
                duration_secs: 3600,
                tag: None,
                promise: None,
            };
            (spec.name.to_string(), pending)
        })
        .collect();
    let at = now.timestamp();
    tokio::task::spawn_blocking(move || {
        requests
            .into_iter()
            .filter_map(|(name, p)| {
                let start = match state.predict(p, at) {
                    Prediction::StartsNow => at,
                    Prediction::Waits {
                        estimated_start: Some(t),
                        ..
                    } => t,
                    _ => return None,
                };
                Some((
                    name,
                    crate::routes::jobs::detail::wait_minutes_between(at, start),
                ))
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// A user the state knows nothing of (no live work, no recent use), for the hypothetical request
/// behind the capacity figures.
fn newcomer(state: &QueueState<ReservationKey>) -> Option<Username> {
    let known = |u: &Username| {
        state.usage.contains_key(u)
            || state.running.iter().any(|r| &r.user == u)
            || state.queue.iter().any(|p| &p.user == u)
    };
    (0..1000)
        .filter_map(|n| Username::parse(&format!("capacity-probe-{n}")).ok())
        .find(|u| !known(u))
}
