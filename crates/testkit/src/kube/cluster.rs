//! [`FakeCluster`]: the handle tests hold.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;

use super::faults::Fault;
use super::log::{RequestRecord, Verb};
use super::nodes::{self, NodeSpec};
use super::resources::{self, ResourceType};
use super::service::{self, Served};
use super::simulate::{self, PodFailure, PodMatch};
use super::state::{FakeConfig, Shared};
use super::store::Key;

/// An in-memory Kubernetes API server. Clones share the same cluster.
///
/// ```
/// # async fn example() {
/// use gpudev_testkit::kube::FakeCluster;
/// use k8s_openapi::api::core::v1::Node;
///
/// let fake = FakeCluster::new();
/// fake.seed_nodes("h100", 2, 8);
/// let nodes: kube::Api<Node> = kube::Api::all(fake.client());
/// assert_eq!(nodes.list(&Default::default()).await.unwrap().items.len(), 2);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FakeCluster {
    shared: Arc<Shared>,
}

impl Default for FakeCluster {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeCluster {
    /// An empty cluster with the default configuration.
    pub fn new() -> Self {
        Self::with_config(FakeConfig::default())
    }

    /// An empty cluster configured as given.
    pub fn with_config(config: FakeConfig) -> Self {
        Self {
            shared: Arc::new(Shared::new(config)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FakeConfig {
        &self.shared.config
    }

    /// A client talking to this cluster in-process, with the configured default namespace.
    pub fn client(&self) -> ::kube::Client {
        service::client(
            Arc::clone(&self.shared),
            &self.shared.config.default_namespace,
        )
    }

    /// A client whose default namespace is `namespace`.
    pub fn client_in(&self, namespace: &str) -> ::kube::Client {
        service::client(Arc::clone(&self.shared), namespace)
    }

    /// Serves the cluster over HTTP at `addr` (use port 0 for a free port) and writes a
    /// kubeconfig for it; see [`Served`].
    ///
    /// # Errors
    /// When the address cannot be bound or the kubeconfig cannot be written.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<Served> {
        service::serve(Arc::clone(&self.shared), addr).await
    }

    /// The text of a kubeconfig naming a server at `url` (for a [`serve`](Self::serve)d
    /// cluster whose kubeconfig must live somewhere else).
    pub fn kubeconfig_for(&self, url: &str) -> String {
        service::kubeconfig_text(url, &self.shared.config.default_namespace)
    }

    /// Creates the namespace `name` unless it exists (objects can only be created in a namespace
    /// that exists, as on Kubernetes).
    ///
    /// # Panics
    /// If `name` is not a valid namespace name.
    pub fn create_namespace(&self, name: &str) {
        let mut inner = self.shared.lock();
        let namespace = serde_json::json!({ "metadata": { "name": name } });
        if let Err(error) = inner.store.create(&resources::NAMESPACES, None, namespace)
            && error.code != 409
        {
            panic!("creating namespace {name}: {}", error.message);
        }
    }

    /// Adds a node and returns its name.
    ///
    /// # Panics
    /// If a node of that name exists.
    pub fn add_node(&self, spec: NodeSpec) -> String {
        let mut inner = self.shared.lock();
        inner.store.serial += 1;
        let serial = inner.store.serial;
        let ip = format!("10.0.{}.{}", (serial / 250) % 250, serial % 250 + 1);
        let object = spec.to_object(&self.shared.config.gpu_type_label, &ip);
        if let Err(error) = inner.store.create(&resources::NODES, None, object) {
            panic!("adding node {}: {}", spec.name, error.message);
        }
        spec.name
    }

    /// Adds `count` Ready nodes of one GPU type with `gpus_per_node` GPUs each, named
    /// `<gpu-type>-node-<n>` (numbering continues across calls); returns their names.
    pub fn seed_nodes(&self, gpu_type: &str, count: usize, gpus_per_node: u32) -> Vec<String> {
        let base: String = gpu_type
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let mut names = Vec::with_capacity(count);
        let mut n = 0;
        while names.len() < count {
            let name = format!("{base}-node-{n}");
            n += 1;
            if self.object("nodes", None, &name).is_none() {
                names.push(self.add_node(NodeSpec::gpu(name, gpu_type, gpus_per_node)));
            }
        }
        names
    }

    /// Sets a node's `Ready` condition.
    ///
    /// # Panics
    /// If there is no such node.
    pub fn set_node_ready(&self, name: &str, ready: bool) {
        self.edit(&resources::NODES, None, name, |node| {
            node["status"]["conditions"] = Value::Array(vec![nodes::ready_condition(ready)]);
        });
    }

    /// Cordons (`true`) or uncordons a node.
    ///
    /// # Panics
    /// If there is no such node.
    pub fn set_node_unschedulable(&self, name: &str, unschedulable: bool) {
        self.edit(&resources::NODES, None, name, |node| {
            node["spec"]["unschedulable"] = Value::Bool(unschedulable);
        });
    }

    /// Changes an object directly, as a controller outside the test's components would
    /// (status included), recording a MODIFIED event.
    ///
    /// # Panics
    /// If there is no such object or resource.
    pub fn modify(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) {
        let Some(rt) = resources::by_plural(resource) else {
            panic!("the fake cluster has no resource {resource:?}");
        };
        self.edit(rt, namespace, name, change);
    }

    fn edit(
        &self,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) {
        let mut inner = self.shared.lock();
        let mut object = match inner.store.get(rt, namespace, name) {
            Ok(object) => object,
            Err(error) => panic!("{}", error.message),
        };
        change(&mut object);
        inner
            .store
            .write(rt, &Key::new(rt, namespace, name), object);
    }

    /// Makes pods matching `matcher` fail as `failure` says instead of becoming Ready. The
    /// first matching rule wins.
    pub fn fail_pods(&self, matcher: PodMatch, failure: PodFailure) {
        self.shared.lock().sim.add_rule(matcher, failure);
    }

    /// One pass of the pretend scheduler and kubelet (see the module docs); returns how many
    /// objects it changed.
    pub fn step(&self) -> usize {
        let mut inner = self.shared.lock();
        simulate::step(&mut inner, &self.shared.config)
    }

    /// Runs [`step`](Self::step) every `every` in the background until the returned handle
    /// is dropped (or every handle of the cluster is).
    pub fn start_simulation(&self, every: Duration) -> Simulation {
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(shared) = weak.upgrade() else { return };
                let mut inner = shared.lock();
                simulate::step(&mut inner, &shared.config);
            }
        });
        Simulation { task }
    }

    /// Makes the next matching requests fail (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// Drops every fault not yet used up.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// How many requests with this verb for this resource plural were answered (any outcome).
    pub fn count(&self, verb: Verb, resource: &str) -> usize {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|r| r.verb == verb && r.resource == resource)
            .count()
    }

    /// How many such requests succeeded.
    pub fn count_ok(&self, verb: Verb, resource: &str) -> usize {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|r| r.verb == verb && r.resource == resource && r.succeeded())
            .count()
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().log.clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.lock().log.clear();
    }

    /// Forgets the watch history, as etcd compaction does: watches resuming from an older
    /// resourceVersion get a 410 `ERROR` event and must relist.
    pub fn compact(&self) {
        self.shared.lock().store.compact();
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().store.version()
    }

    /// One object as JSON, without going through a client or the request log. `resource` is
    /// a plural such as `pods`; `namespace` is ignored for cluster-scoped kinds.
    pub fn object(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let rt = resources::by_plural(resource)?;
        self.shared.lock().store.get(rt, namespace, name).ok()
    }

    /// Every object of a resource (in one namespace, or all) as JSON, ordered by namespace and name.
    pub fn objects(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(rt) = resources::by_plural(resource) else {
            return Vec::new();
        };
        self.shared
            .lock()
            .store
            .all(rt)
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, o)| o.clone())
            .collect()
    }
}

/// The background simulation started by [`FakeCluster::start_simulation`]; stops when dropped.
#[derive(Debug)]
pub struct Simulation {
    task: JoinHandle<()>,
}

impl Drop for Simulation {
    fn drop(&mut self) {
        self.task.abort();
    }
}
