//! The shared state behind every handle, client and server of one fake cluster.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::faults::Fault;
use super::log::RequestRecord;
use super::simulate::SimState;
use super::store::Store;

/// How a fake cluster behaves.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The node label naming a node's GPU type (`gpudev.io/gpu-type`).
    pub gpu_type_label: String,
    /// How long a scheduled pod stays Pending before it runs (or fails as told). Zero: the
    /// step that schedules a pod also makes it Ready.
    pub ready_delay: Duration,
    /// How long a deleted pod stays terminating (with `deletionTimestamp`) before it goes.
    /// Zero: pods are removed at once, like any other object.
    pub pod_termination: Duration,
    /// How many changes the watch history keeps; a watch from an older version gets a 410.
    pub history_limit: usize,
    /// The namespace of clients from [`FakeCluster::client`](super::FakeCluster::client) and
    /// of written kubeconfigs.
    pub default_namespace: String,
    /// Namespaces that exist from the start besides Kubernetes' own (`default`, `kube-system`,
    /// `kube-public`, `kube-node-lease`) and [`Self::default_namespace`]: by default the
    /// chart's dev box namespace `gpu-dev`, as in a cluster where gpudev is installed. Objects
    /// can only be created in a namespace that exists.
    pub namespaces: Vec<String>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            gpu_type_label: "gpudev.io/gpu-type".to_owned(),
            ready_delay: Duration::ZERO,
            pod_termination: Duration::ZERO,
            history_limit: 10_000,
            default_namespace: "default".to_owned(),
            namespaces: vec!["gpu-dev".to_owned()],
        }
    }
}

/// Everything that changes, behind one lock (never held across an await).
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) faults: Vec<Fault>,
    pub(crate) log: Vec<RequestRecord>,
    pub(crate) sim: SimState,
}

/// The configuration and the locked state.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: FakeConfig,
    inner: Mutex<Inner>,
}

impl Shared {
    pub(crate) fn new(config: FakeConfig) -> Self {
        let mut store = Store::new(config.history_limit);
        store.pod_grace_seconds = if config.pod_termination.is_zero() {
            0
        } else {
            config.pod_termination.as_secs().max(1)
        };
        // The namespaces a new cluster has, and the clients' default.
        let own = ["default", "kube-system", "kube-public", "kube-node-lease"];
        let given = config.namespaces.iter().map(String::as_str);
        for name in own
            .into_iter()
            .chain([config.default_namespace.as_str()])
            .chain(given)
        {
            let namespace = serde_json::json!({ "metadata": { "name": name } });
            // A repeated name is the only possible error.
            let _ = store.create(&super::resources::NAMESPACES, None, namespace);
        }
        Self {
            config,
            inner: Mutex::new(Inner {
                store,
                faults: Vec::new(),
                log: Vec::new(),
                sim: SimState::default(),
            }),
        }
    }

    /// The state; a panic in another thread while holding it does not make it unusable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
