//! [`Processor`]: the handle that owns the connections, the metrics and the leader lock, and on
//! which the steps (`process_once`, `scheduler_pass`, `reconcile`) and the run loop are defined.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use gpudev_store::{Pool, StoreError};

use crate::config::ProcessorConfig;
use crate::error::{ProcessorError, Result};
use crate::keys::KeySource;
use crate::leader::LeaderSession;
use crate::metrics::Metrics;
use crate::view::ClusterView;

/// Who the processor is in events it records (`reservation_events.actor`).
pub const ACTOR: &str = "processor";

/// The processor. Cheap to clone; clones share everything, the leader lock included.
#[derive(Debug, Clone)]
pub struct Processor {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ProcessorConfig,
    pub(crate) pool: Pool,
    pub(crate) kube: kube::Client,
    pub(crate) metrics: Metrics,
    pub(crate) keys: KeySource,
    leader: Mutex<Option<Arc<LeaderSession>>>,
    /// The reflected cluster, while leading.
    view: Mutex<Option<Arc<ClusterView>>>,
    /// The last error of each message still in the queue, for its dead letter.
    pub(crate) last_errors: Mutex<HashMap<i64, String>>,
    /// Serialises changes to Kubernetes objects (creating and deleting), so the run loop and the
    /// pod watcher never work on the same reservation's objects at once.
    pub(crate) objects_lock: tokio::sync::Mutex<()>,
    /// Reservations whose objects the reconciliation failed to create: failures so far and the
    /// earliest next attempt.
    pub(crate) redrive: Mutex<HashMap<uuid::Uuid, (i32, std::time::Instant)>>,
    /// The queue state this leader published last (time aside), so an unchanged one is not
    /// written again.
    pub(crate) published: Mutex<Option<serde_json::Value>>,
    /// Each GPU type's recent median start-up time in seconds, and when it was read.
    pub(crate) startup: Mutex<Option<(std::time::Instant, HashMap<String, i64>)>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor")
            .field("config", &self.config)
            .field("leader", &self.leader)
            .finish_non_exhaustive()
    }
}

impl Processor {
    /// Connects to the database (the queue and its dead-letter queue are created if missing)
    /// and prepares a processor that is not yet the leader.
    pub async fn build(config: ProcessorConfig, kube: kube::Client) -> Result<Self> {
        let db_config = config.db.clone().with_application_name("gpudev-processor");
        let pool = gpudev_store::connect_pool(&db_config).await?;
        {
            // Migrations create the default queue; a custom QUEUE_NAME is created here (which
            // needs the right to create tables in the pgmq schema).
            let db = pool.get().await.map_err(StoreError::from)?;
            let dlq = config.queue.dead_letter_queue();
            if !config.queue.exists(&**db).await? || !dlq.exists(&**db).await? {
                config.queue.ensure(&**db).await?;
            }
        }
        let metrics = Metrics::new()
            .map_err(|e| ProcessorError::Permanent(format!("metrics registry: {e}")))?;
        Ok(Self::new(config, pool, kube, metrics))
    }

    /// A processor over existing connections.
    pub fn new(config: ProcessorConfig, pool: Pool, kube: kube::Client, metrics: Metrics) -> Self {
        let keys = KeySource::new(config.github_keys_url.clone());
        Self {
            inner: Arc::new(Inner {
                config,
                pool,
                kube,
                metrics,
                keys,
                leader: Mutex::new(None),
                view: Mutex::new(None),
                last_errors: Mutex::new(HashMap::new()),
                objects_lock: tokio::sync::Mutex::new(()),
                published: Mutex::new(None),
                startup: Mutex::new(None),
                redrive: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ProcessorConfig {
        &self.inner.config
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The database pool (reads; fenced writes go through the leader session).
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Tries to take the leader lock; true when this processor is (now) the leader.
    pub async fn try_become_leader(&self) -> Result<bool> {
        if self.is_leader() {
            return Ok(true);
        }
        let config = &self.inner.config;
        let session =
            LeaderSession::try_acquire(&config.db, config.queue.name(), config.leader_lease)
                .await?;
        let Some(session) = session else {
            return Ok(false);
        };
        tracing::info!(pid = session.backend_pid(), "became the leader");
        self.set_leader(Some(Arc::new(session)));
        self.inner.metrics.leader.set(1);
        Ok(true)
    }

    /// True while this processor holds a live leader session.
    pub fn is_leader(&self) -> bool {
        self.current_leader().is_some_and(|s| !s.is_lost())
    }

    /// Gives up leadership (ends the session, which releases the lock) and stops watching the
    /// cluster.
    pub fn step_down(&self) {
        if self.current_leader().is_some() {
            tracing::info!("stepping down as leader");
        }
        self.set_leader(None);
        self.stop_cluster_view();
        self.inner.metrics.leader.set(0);
    }

    /// Starts watching Nodes and Pods (see [`ClusterView`]); passes then read capacity from
    /// memory once the watches have listed everything. Returns the running view.
    pub fn start_cluster_view(&self) -> Arc<ClusterView> {
        let mut slot = self
            .inner
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(view) = slot.as_ref() {
            return Arc::clone(view);
        }
        let view = Arc::new(ClusterView::start(self));
        *slot = Some(Arc::clone(&view));
        view
    }

    /// Stops watching the cluster; passes list Nodes and Pods again.
    pub fn stop_cluster_view(&self) {
        self.inner
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// The cluster view, when it runs and has listed everything.
    pub(crate) fn ready_view(&self) -> Option<Arc<ClusterView>> {
        self.inner
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(|v| v.is_ready())
    }

    /// The backend pid of the leader session, while this processor leads.
    pub fn leader_backend_pid(&self) -> Option<i32> {
        self.current_leader().map(|s| s.backend_pid())
    }

    fn current_leader(&self) -> Option<Arc<LeaderSession>> {
        self.inner
            .leader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_leader(&self, session: Option<Arc<LeaderSession>>) {
        *self
            .inner
            .leader
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = session;
    }

    /// The leader session, or why there is none.
    pub(crate) fn leader(&self) -> Result<Arc<LeaderSession>> {
        match self.current_leader() {
            None => Err(ProcessorError::NotLeader),
            Some(s) if s.is_lost() => Err(ProcessorError::LostLeadership(
                "the leader lock's session has ended".into(),
            )),
            Some(s) => Ok(s),
        }
    }

    /// A pooled connection for reads.
    pub(crate) async fn db(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.inner.pool.get().await.map_err(StoreError::from)?)
    }

    pub(crate) fn remember_error(&self, msg_id: i64, error: &str) {
        self.inner
            .last_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(msg_id, error.to_owned());
    }

    pub(crate) fn take_error(&self, msg_id: i64) -> Option<String> {
        self.inner
            .last_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&msg_id)
    }
}

/// Maps errors of writes made through the leader session, so a dead session reads as lost
/// leadership.
pub(crate) trait Fenced<T> {
    fn fenced(self, leader: &LeaderSession) -> Result<T>;
}

impl<T, E: Into<ProcessorError>> Fenced<T> for std::result::Result<T, E> {
    fn fenced(self, leader: &LeaderSession) -> Result<T> {
        self.map_err(|e| leader.classify(e.into()))
    }
}
