//! The queue as the scheduler's last pass left it (published by the processor's leader), kept
//! in memory: the submit answer runs the scheduler's own code over it (ADR 5).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use gpudev_domain::{Bookable, Pending, Prediction, QueueState, ReservationKey, Username};
use gpudev_store::reservations::NewReservation;
use gpudev_store::{Pool, StoreError, scheduling};
use uuid::Uuid;

/// How long a loaded state is used before its generation is checked again.
const RECHECK: Duration = Duration::from_secs(1);

/// How long a submit prediction is reused for the same user and request from the same state.
/// Within it, later submits are answered as the first was (none of them is in the state yet).
pub const PREDICTION_REUSE: Duration = Duration::from_secs(1);

/// How long the capacity figures computed from one state are reused.
const WAITS_REUSE: Duration = Duration::from_secs(30);

/// The published state, reloaded when the processor publishes a new generation, and what was
/// computed from it: the capacity figures and recent submit predictions.
#[derive(Debug)]
pub struct PublishedQueue {
    cached: Mutex<Option<Cached>>,
    waits: Mutex<Option<Waits>>,
    predictions: Mutex<Predictions>,
    /// Held while a submit prediction is computed: one at a time per process.
    computing: Arc<Semaphore>,
}

impl Default for PublishedQueue {
    fn default() -> Self {
        Self {
            cached: Mutex::default(),
            waits: Mutex::default(),
            predictions: Mutex::default(),
            computing: Arc::new(Semaphore::new(1)),
        }
    }
}

/// Capacity figures, the state they came from and when.
type Waits = (
    Arc<QueueState<ReservationKey>>,
    Instant,
    BTreeMap<String, i64>,
);

/// What the state says (none before the scheduler's first pass, or when the one published
/// cannot be read by this version), its generation, and when that was last checked.
#[derive(Debug, Clone)]
struct Cached {
    generation: Option<i64>,
    state: Option<Arc<QueueState<ReservationKey>>>,
    checked_at: Instant,
}

/// What a request of one shape from one user was predicted to do, from one state.
#[derive(Debug, Default)]
struct Predictions {
    from: Option<Arc<QueueState<ReservationKey>>>,
    by_shape: HashMap<Shape, (Instant, Prediction)>,
}

impl Predictions {
    /// The predictions made from `state` within [`PREDICTION_REUSE`]; those from another state,
    /// or older, are dropped.
    fn made_from(
        &mut self,
        state: &Arc<QueueState<ReservationKey>>,
    ) -> &mut HashMap<Shape, (Instant, Prediction)> {
        if !self.from.as_ref().is_some_and(|f| Arc::ptr_eq(f, state)) {
            *self = Predictions {
                from: Some(state.clone()),
                by_shape: HashMap::new(),
            };
        }
        self.by_shape
            .retain(|_, (at, _)| at.elapsed() < PREDICTION_REUSE);
        &mut self.by_shape
    }
}

/// Everything of a new reservation a prediction depends on, apart from the moment it was
/// submitted (which orders it after equal ones submitted earlier).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shape {
    user: Username,
    gpu_type: String,
    gpu_count: u32,
    nodes: u32,
    priority: i32,
    duration_secs: i64,
}

impl PublishedQueue {
    /// The latest published state (none before the scheduler's first pass, or when the one
    /// published cannot be read by this version). A connection is taken from `pool` only when
    /// the generation is due to be checked again.
    pub async fn current(
        &self,
        pool: &Pool,
    ) -> Result<Option<Arc<QueueState<ReservationKey>>>, StoreError> {
        let cached = self.lock().clone();
        if let Some(c) = &cached
            && c.checked_at.elapsed() < RECHECK
        {
            return Ok(c.state.clone());
        }
        let db = pool.get().await?;
        let generation = scheduling::state_generation(&*db).await?;
        if let Some(c) = cached
            && c.generation == generation
        {
            self.store(Cached {
                checked_at: Instant::now(),
                ..c.clone()
            });
            return Ok(c.state);
        }
        let loaded = match generation {
            None => None,
            Some(_) => scheduling::published_state(&*db).await?,
        };
        let (generation, state) = match loaded {
            None => (None, None),
            Some((generation, value)) => {
                match serde_json::from_value::<QueueState<ReservationKey>>(value) {
                    Ok(state) => (Some(generation), Some(Arc::new(state))),
                    Err(e) => {
                        tracing::warn!(error = %e, generation, "the published queue state cannot be read; submit answers carry no estimate until the next generation");
                        (Some(generation), None)
                    }
                }
            }
        };
        self.store(Cached {
            generation,
            state: state.clone(),
            checked_at: Instant::now(),
        });
        Ok(state)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        self.cached.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn store(&self, c: Cached) {
        *self.lock() = Some(c);
    }

    /// What the scheduler's next pass would do with `new`, a reservation about to be stored as
    /// submitted at `submitted_at`. A prediction costs up to a pass over the queue (a tenth of a
    /// second at ten thousand queued), so one for the same user and request from the same state
    /// is reused for [`PREDICTION_REUSE`], and one is computed at a time: a submit that arrives
    /// while another is being computed gets none (`None`; the reservation is then stored with
    /// its place by arrival, and its own figures follow from the scheduler's next pass), so that
    /// a burst of submits cannot queue up seconds of CPU.
    pub async fn predict(
        &self,
        state: Arc<QueueState<ReservationKey>>,
        new: &NewReservation,
        submitted_at: chrono::DateTime<chrono::Utc>,
    ) -> Option<Prediction> {
        self.predict_new(state, pending_of(new, submitted_at)).await
    }

    /// What the scheduler's next pass would do with booking `new`, over `state` with its
    /// bookings replaced by `bookings` (those waiting now: one cancelled since the last pass no
    /// longer holds its time, one submitted since holds it already). Unlike [`Self::predict`]
    /// it waits for its turn rather than go without: a booking is accepted only on an answer.
    pub async fn predict_booking(
        &self,
        state: Arc<QueueState<ReservationKey>>,
        bookings: Vec<Pending<ReservationKey>>,
        new: &NewReservation,
        submitted_at: chrono::DateTime<chrono::Utc>,
    ) -> Prediction {
        let new = pending_of(new, submitted_at);
        let Ok(permit) = self.computing.clone().acquire_owned().await else {
            return Prediction::Impossible("the server is stopping".to_owned());
        };
        let now = chrono::Utc::now().timestamp();
        tokio::task::spawn_blocking(move || {
            let _computing = permit;
            with_bookings(&state, bookings).predict(new, now)
        })
        .await
        .unwrap_or_else(|e| Prediction::Impossible(format!("the prediction failed: {e}")))
    }

    /// The bookings `change` would delay ([`QueueState::bookings_delayed_by`]), over `state`
    /// with its bookings replaced by `bookings`, with the start each has now.
    pub async fn bookings_delayed(
        &self,
        state: Arc<QueueState<ReservationKey>>,
        bookings: Vec<Pending<ReservationKey>>,
        change: impl FnOnce(&mut QueueState<ReservationKey>) -> bool + Send + 'static,
    ) -> Option<Vec<(ReservationKey, i64)>> {
        let permit = self.computing.clone().acquire_owned().await.ok()?;
        let now = chrono::Utc::now().timestamp();
        tokio::task::spawn_blocking(move || {
            let _computing = permit;
            with_bookings(&state, bookings).bookings_delayed_by(change, now)
        })
        .await
        .ok()
    }

    /// What `user` could book of each `(type, GPUs per node, most nodes together)` from `at`
    /// for `duration_secs` ([`QueueState::bookable`]), over `state` with its bookings replaced
    /// by `bookings` as for [`Self::predict_booking`]. `None` when the server is stopping.
    pub async fn bookable(
        &self,
        state: Arc<QueueState<ReservationKey>>,
        bookings: Vec<Pending<ReservationKey>>,
        user: Username,
        types: Vec<(gpudev_domain::GpuType, u32, u32)>,
        at: i64,
        duration_secs: i64,
    ) -> Option<BTreeMap<gpudev_domain::GpuType, Bookable>> {
        let permit = self.computing.clone().acquire_owned().await.ok()?;
        let now = chrono::Utc::now().timestamp();
        tokio::task::spawn_blocking(move || {
            let _computing = permit;
            let state = with_bookings(&state, bookings);
            // After every booking already submitted, as a booking submitted now would be.
            let probe = ReservationKey {
                submitted_micros: chrono::Utc::now().timestamp_micros(),
                id: Uuid::max(),
            };
            types
                .into_iter()
                .map(|(gpu_type, slots, nodes)| {
                    let b = state.bookable(
                        &probe,
                        &user,
                        &gpu_type,
                        slots,
                        nodes,
                        at,
                        duration_secs,
                        now,
                    );
                    (gpu_type, b)
                })
                .collect()
        })
        .await
        .ok()
    }

    /// [`Self::predict`] for a reservation described as the scheduler sees it.
    async fn predict_new(
        &self,
        state: Arc<QueueState<ReservationKey>>,
        new: Pending<ReservationKey>,
    ) -> Option<Prediction> {
        let shape = Shape {
            user: new.user.clone(),
            gpu_type: new.gpu_type.to_string(),
            gpu_count: new.gpu_count,
            nodes: new.nodes,
            priority: new.priority,
            duration_secs: new.duration_secs,
        };
        if let Some(known) = self.reused(&state, &shape) {
            return Some(known);
        }
        let permit = self.computing.clone().try_acquire_owned().ok()?;
        let now = chrono::Utc::now().timestamp();
        // Off the request threads.
        let from = state.clone();
        let prediction = tokio::task::spawn_blocking(move || {
            let _computing = permit;
            from.predict(new, now)
        })
        .await
        .unwrap_or_else(|e| Prediction::Impossible(format!("the prediction failed: {e}")));
        self.predictions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .made_from(&state)
            .insert(shape, (Instant::now(), prediction.clone()));
        Some(prediction)
    }

    fn reused(&self, state: &Arc<QueueState<ReservationKey>>, shape: &Shape) -> Option<Prediction> {
        self.predictions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .made_from(state)
            .get(shape)
            .map(|(_, p)| p.clone())
    }
}

/// `state` with its bookings replaced by `bookings`.
fn with_bookings(
    state: &QueueState<ReservationKey>,
    bookings: Vec<Pending<ReservationKey>>,
) -> QueueState<ReservationKey> {
    let mut state = state.clone();
    state.queue.retain(|p| p.start_at.is_none());
    state.queue.extend(bookings);
    state
}

/// `new`, about to be stored as submitted at `submitted_at`, as the scheduler will see it.
fn pending_of(
    new: &NewReservation,
    submitted_at: chrono::DateTime<chrono::Utc>,
) -> Pending<ReservationKey> {
    Pending {
        reservation_id: ReservationKey {
            submitted_micros: submitted_at.timestamp_micros(),
            id: new.reservation_id,
        },
        user: new.username.clone(),
        gpu_type: new.gpu_type.clone(),
        gpu_count: u32::try_from(new.gpu_count).unwrap_or(0),
        nodes: u32::try_from(new.node_count).unwrap_or(1),
        priority: new.priority,
        submitted_at: submitted_at.timestamp(),
        duration_secs: (new.duration_hours * 3600.0).round() as i64,
        tag: None,
        promise: None,
        start_at: new.start_at.map(|t| t.timestamp()),
    }
}

/// For each GPU type of the catalog, the minutes until a new one-hour request for one GPU (one
/// reservation slot on a CPU-only type) from a user with nothing running would start, by the
/// scheduler's own pass over its published state. Types it could never fit are absent, and so
/// is everything before the scheduler's first pass. Figures from the same state are reused for
/// half a minute: each costs a pass over the queue.
pub async fn estimated_waits(
    app: &crate::state::AppState,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<BTreeMap<String, i64>, StoreError> {
    let Some(state) = app.queue.current(&app.pool).await? else {
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
                start_at: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use gpudev_domain::{GpuType, NodeCapacity, QueuePolicy, Quotas};

    fn state() -> Arc<QueueState<ReservationKey>> {
        let now = chrono::Utc::now().timestamp();
        Arc::new(QueueState {
            taken_at: now,
            nodes: vec![NodeCapacity {
                name: "t4-node".into(),
                gpu_type: GpuType::parse("t4").unwrap(),
                slots_total: 4,
                slots_free: 4,
                schedulable: true,
            }],
            running: Vec::new(),
            queue: Vec::new(),
            usage: BTreeMap::new(),
            quotas: Quotas::default(),
            clocks: BTreeMap::new(),
            policy: QueuePolicy {
                promise_horizon_secs: 7200,
                aging: 1.0,
                release_delay_secs: 0,
            },
        })
    }

    fn request(user: &str, gpus: u32) -> Pending<ReservationKey> {
        let now = chrono::Utc::now();
        Pending {
            reservation_id: ReservationKey {
                submitted_micros: now.timestamp_micros(),
                id: Uuid::new_v4(),
            },
            user: Username::parse(user).unwrap(),
            gpu_type: GpuType::parse("t4").unwrap(),
            gpu_count: gpus,
            nodes: 1,
            priority: 0,
            submitted_at: now.timestamp(),
            duration_secs: 3600,
            tag: None,
            promise: None,
            start_at: None,
        }
    }

    #[tokio::test]
    async fn one_prediction_is_computed_at_a_time_and_a_known_one_is_reused() {
        let queue = PublishedQueue::default();
        let state = state();
        assert_eq!(
            queue.predict_new(state.clone(), request("alice", 1)).await,
            Some(Prediction::StartsNow)
        );

        // While another is being computed, a new request gets none, but one already known
        // from this state is answered.
        let busy = queue.computing.clone().try_acquire_owned().unwrap();
        assert_eq!(
            queue.predict_new(state.clone(), request("bob", 1)).await,
            None
        );
        assert_eq!(
            queue.predict_new(state.clone(), request("alice", 1)).await,
            Some(Prediction::StartsNow)
        );
        drop(busy);
        assert_eq!(
            queue.predict_new(state, request("bob", 1)).await,
            Some(Prediction::StartsNow)
        );
    }
}
