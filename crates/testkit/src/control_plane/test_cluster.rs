//! [`TestCluster`]: one test's Kubernetes, on the back end `GPUDEV_TEST_KUBE` chooses.
//!
//! - `fake` (the default): a fresh in-process [`FakeCluster`]: fast and deterministic; time
//!   moves only when the test calls [`TestCluster::step`].
//! - `real`: the run's shared [`ControlPlane`](super::ControlPlane). The test gets a namespace
//!   of its own, its nodes are named after that namespace, and its GPU type label is a key of
//!   its own, so the nodes of tests running alongside are not GPU nodes to it.
//!   [`TestCluster::step`] waits for the real scheduler and kwok to settle instead of driving
//!   them.
//!
//! Suites written against this type run unchanged on both; tests that need what only the fake
//! has (fault injection, request counts, a frozen clock) take [`TestCluster::fake`] and are
//! skipped on the real back end.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use serde_json::Value;

use super::{ControlPlane, control_plane};
use crate::kube::{FakeCluster, FakeConfig, NodeSpec, Simulation};

/// The setting that chooses the back end.
pub const BACKEND_VAR: &str = "GPUDEV_TEST_KUBE";

/// Which Kubernetes the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The in-process fake API server.
    Fake,
    /// The run's real control plane.
    Real,
}

/// The back end `GPUDEV_TEST_KUBE` names (`fake` when unset).
///
/// # Panics
/// On any other value than `fake` or `real`.
#[expect(
    clippy::panic,
    reason = "test helper: a typo must not silently pick a back end"
)]
pub fn backend() -> Backend {
    match std::env::var(BACKEND_VAR).as_deref() {
        Err(_) | Ok("" | "fake") => Backend::Fake,
        Ok("real") => Backend::Real,
        Ok(other) => panic!("{BACKEND_VAR}={other:?}: expected `fake` or `real`"),
    }
}

/// Whether a test that needs the fake must be skipped: true (after printing why) when the
/// suite runs on the real control plane.
pub fn skip_on_real(why: &str) -> bool {
    let skip = backend() == Backend::Real;
    if skip {
        eprintln!("skipped on the real control plane: {why}");
    }
    skip
}

/// Whether a test that needs the real control plane must be skipped: true (after printing why)
/// when the suite runs on the fake.
pub fn skip_on_fake(why: &str) -> bool {
    let skip = backend() == Backend::Fake;
    if skip {
        eprintln!("skipped on the fake (run with {BACKEND_VAR}=real): {why}");
    }
    skip
}

/// One test's cluster.
#[derive(Debug, Clone)]
pub struct TestCluster {
    inner: Inner,
    namespace: String,
    gpu_type_label: String,
}

#[derive(Clone)]
enum Inner {
    Fake(FakeCluster),
    Real {
        plane: Box<ControlPlane>,
        client: kube::Client,
    },
}

impl TestCluster {
    /// A cluster on the chosen back end whose dev box namespace exists. On the fake it is
    /// `fake_namespace`; on the real control plane a new one named after it.
    pub async fn new(fake_namespace: &str) -> Self {
        Self::with_fake_config(fake_namespace, FakeConfig::default()).await
    }

    /// [`Self::new`], with the fake configured as given (ignored on the real back end, except
    /// that the fake's GPU type label default matches production's).
    pub async fn with_fake_config(fake_namespace: &str, config: FakeConfig) -> Self {
        match backend() {
            Backend::Fake => Self::fake_with(fake_namespace, config),
            Backend::Real => Self::real(fake_namespace).await,
        }
    }

    /// A fake cluster, whatever the setting says (for tests of what only the fake can do).
    pub fn fake_with(namespace: &str, config: FakeConfig) -> Self {
        let gpu_type_label = config.gpu_type_label.clone();
        let fake = FakeCluster::with_config(config);
        fake.create_namespace(namespace);
        Self {
            inner: Inner::Fake(fake),
            namespace: namespace.to_owned(),
            gpu_type_label,
        }
    }

    /// A namespace of its own on the run's real control plane.
    pub async fn real(prefix: &str) -> Self {
        Self::real_on(control_plane().await, prefix).await
    }

    /// A namespace of its own on `plane` (for example a private control plane a test may
    /// restart).
    pub async fn real_on(plane: &ControlPlane, prefix: &str) -> Self {
        let namespace = plane.namespace(prefix).await;
        let client = plane.client_in(&namespace).await;
        Self {
            gpu_type_label: format!("{namespace}.test.gpudev.io/gpu-type"),
            inner: Inner::Real {
                plane: Box::new(plane.clone()),
                client,
            },
            namespace,
        }
    }

    /// Whether this is the real control plane.
    pub fn is_real(&self) -> bool {
        matches!(self.inner, Inner::Real { .. })
    }

    /// The fake, when this is one.
    pub fn fake(&self) -> Option<&FakeCluster> {
        match &self.inner {
            Inner::Fake(fake) => Some(fake),
            Inner::Real { .. } => None,
        }
    }

    /// The fake, for a test that made sure it runs on one.
    ///
    /// # Panics
    /// On the real control plane.
    #[expect(
        clippy::panic,
        reason = "test helper: a fake-only test ran on the real back end"
    )]
    pub fn expect_fake(&self) -> &FakeCluster {
        match &self.inner {
            Inner::Fake(fake) => fake,
            Inner::Real { .. } => panic!("this test needs the fake cluster (see skip_on_real)"),
        }
    }

    /// The real control plane, when this is one.
    pub fn control_plane(&self) -> Option<&ControlPlane> {
        match &self.inner {
            Inner::Fake(_) => None,
            Inner::Real { plane, .. } => Some(plane),
        }
    }

    /// A client with full rights whose default namespace is [`Self::namespace`].
    pub fn client(&self) -> kube::Client {
        match &self.inner {
            Inner::Fake(fake) => fake.client_in(&self.namespace),
            Inner::Real { client, .. } => client.clone(),
        }
    }

    /// The namespace dev boxes go to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The node label holding the GPU type (set `GPU_TYPE_LABEL` of the programs under test to
    /// it).
    pub fn gpu_type_label(&self) -> &str {
        &self.gpu_type_label
    }

    /// Adds `count` Ready nodes of one GPU type with `gpus_per_node` GPUs each; returns their
    /// names (`<gpu-type>-node-<n>` on the fake, prefixed with the namespace on the real one).
    pub async fn seed_nodes(
        &self,
        gpu_type: &str,
        count: usize,
        gpus_per_node: u32,
    ) -> Vec<String> {
        match &self.inner {
            Inner::Fake(fake) => fake.seed_nodes(gpu_type, count, gpus_per_node),
            Inner::Real { plane, .. } => {
                let base: String = gpu_type
                    .to_ascii_lowercase()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect();
                let existing = self.node_names().await;
                let mut names = Vec::with_capacity(count);
                let mut n = 0;
                while names.len() < count {
                    let name = format!("{}-{base}-node-{n}", self.namespace);
                    n += 1;
                    if existing.contains(&name) {
                        continue;
                    }
                    let spec = NodeSpec::gpu(name.clone(), gpu_type, gpus_per_node);
                    plane
                        .add_node(&spec, &self.gpu_type_label, &node_ip(n))
                        .await;
                    names.push(name);
                }
                names
            }
        }
    }

    /// The namespace that stands for `name` in this test, created if need be: on the fake `name`
    /// itself; on the real control plane the test's namespace for the fake's dev box namespace,
    /// and otherwise a namespace of this test's named `<namespace>-<name>`.
    ///
    /// # Panics
    /// When the namespace cannot be created.
    #[expect(clippy::panic, reason = "test helper")]
    pub async fn namespace_like(&self, name: &str) -> String {
        match &self.inner {
            Inner::Fake(fake) => {
                fake.create_namespace(name);
                name.to_owned()
            }
            Inner::Real { plane, .. } => {
                if self.namespace.starts_with(&format!("{name}-")) {
                    return self.namespace.clone();
                }
                let own = format!("{}-{name}", self.namespace);
                plane
                    .create_namespace(&own)
                    .await
                    .unwrap_or_else(|e| panic!("gpudev-testkit: namespace {own}: {e}"));
                own
            }
        }
    }

    /// Adds one node as `spec` describes; returns its name.
    pub async fn add_node(&self, spec: NodeSpec) -> String {
        match &self.inner {
            Inner::Fake(fake) => fake.add_node(spec),
            Inner::Real { plane, .. } => {
                let serial = self.node_names().await.len() + 1;
                plane
                    .add_node(&spec, &self.gpu_type_label, &node_ip(serial))
                    .await;
                spec.name
            }
        }
    }

    /// Lets the cluster move on: on the fake one pass of its scheduler and kubelet; on the real
    /// control plane, gives pending claims a volume, completes snapshots, and waits (up to
    /// 20 s) until every Pod of the namespace is Ready, reported unschedulable or failed, and
    /// every deleted Pod is gone.
    pub async fn step(&self) {
        match &self.inner {
            Inner::Fake(fake) => {
                fake.step();
            }
            Inner::Real { plane, client } => {
                let pods: Api<Pod> = Api::namespaced(client.clone(), &self.namespace);
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    plane.provision(&self.namespace).await;
                    plane.ready_snapshots(&self.namespace).await;
                    let settled = match pods.list(&ListParams::default()).await {
                        Ok(list) => list.items.iter().all(pod_settled),
                        Err(_) => false,
                    };
                    if settled || Instant::now() >= deadline {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// A kubeconfig file for a program under test, with full rights and this namespace as its
    /// default: the fake served over HTTP on loopback, or the real control plane's admin. The
    /// file (and the fake's server) lives as long as the returned value.
    ///
    /// # Panics
    /// When the fake cannot be served or the file cannot be written.
    #[expect(clippy::panic, reason = "test helper")]
    pub async fn kubeconfig(&self) -> KubeconfigFile {
        match &self.inner {
            Inner::Fake(fake) => {
                let served = fake
                    .serve(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
                    .await
                    .unwrap_or_else(|e| panic!("gpudev-testkit: serving the fake: {e}"));
                KubeconfigFile {
                    path: served.kubeconfig_path().to_owned(),
                    _keep: Keep::Served(served),
                }
            }
            Inner::Real { plane, .. } => {
                let dir =
                    tempfile::tempdir().unwrap_or_else(|e| panic!("gpudev-testkit: temp dir: {e}"));
                let path = dir.path().join("kubeconfig");
                std::fs::write(&path, plane.kubeconfig_text(&self.namespace, &plane.token))
                    .unwrap_or_else(|e| panic!("gpudev-testkit: writing a kubeconfig: {e}"));
                KubeconfigFile {
                    path,
                    _keep: Keep::Dir(dir),
                }
            }
        }
    }

    /// Keeps the cluster moving in the background until the returned guard is dropped: on the
    /// fake its simulation steps every `every`; on the real control plane (where the scheduler
    /// and kwok run anyway) pending claims get volumes and snapshots complete every `every`.
    pub fn start_background(&self, every: Duration) -> Background {
        match &self.inner {
            Inner::Fake(fake) => Background::Fake(fake.start_simulation(every)),
            Inner::Real { plane, .. } => {
                let plane = ControlPlane::clone(plane);
                let namespace = self.namespace.clone();
                Background::Real(tokio::spawn(async move {
                    loop {
                        plane.provision(&namespace).await;
                        plane.ready_snapshots(&namespace).await;
                        tokio::time::sleep(every).await;
                    }
                }))
            }
        }
    }

    /// The objects of one kind (plural, e.g. `pods`) in the namespace, as JSON.
    ///
    /// # Panics
    /// When the list fails.
    #[expect(clippy::panic, reason = "test helper")]
    pub async fn objects(&self, plural: &str) -> Vec<Value> {
        match &self.inner {
            Inner::Fake(fake) => fake.objects(plural, Some(&self.namespace)),
            Inner::Real { client, .. } => {
                let resource = api_resource(plural);
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), &self.namespace, &resource);
                let list = api
                    .list(&ListParams::default())
                    .await
                    .unwrap_or_else(|e| panic!("gpudev-testkit: listing {plural}: {e}"));
                let mut items: Vec<Value> = list
                    .items
                    .into_iter()
                    .filter_map(|o| serde_json::to_value(o).ok())
                    .collect();
                // The fake lists in creation order; so does this.
                items.sort_by(|a, b| {
                    let key = |o: &Value| {
                        (
                            o["metadata"]["creationTimestamp"]
                                .as_str()
                                .unwrap_or("")
                                .to_owned(),
                            o["metadata"]["resourceVersion"]
                                .as_str()
                                .and_then(|v| v.parse::<u64>().ok())
                                .unwrap_or(0),
                        )
                    };
                    key(a).cmp(&key(b))
                });
                items
            }
        }
    }

    /// Node names of this test (on the fake: every node).
    async fn node_names(&self) -> Vec<String> {
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.client());
        let prefix = format!("{}-", self.namespace);
        nodes
            .list(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|n| n.metadata.name)
                    .filter(|n| !self.is_real() || n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fake(fake) => f.debug_tuple("Fake").field(fake).finish(),
            Self::Real { plane, .. } => f.debug_tuple("Real").field(&plane.url).finish(),
        }
    }
}

/// A kubeconfig file from [`TestCluster::kubeconfig`].
#[derive(Debug)]
pub struct KubeconfigFile {
    path: std::path::PathBuf,
    _keep: Keep,
}

impl KubeconfigFile {
    /// Where the file is (for `KUBECONFIG`).
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// What the file needs kept alive; only ever dropped.
#[derive(Debug)]
enum Keep {
    Served(#[expect(dead_code, reason = "held until dropped")] crate::kube::Served),
    Dir(#[expect(dead_code, reason = "held until dropped")] tempfile::TempDir),
}

/// What [`TestCluster::start_background`] keeps running; dropping it stops it.
#[derive(Debug)]
pub enum Background {
    /// The fake's simulation.
    Fake(Simulation),
    /// The real control plane's provisioning loop.
    Real(tokio::task::JoinHandle<()>),
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Self::Real(task) = self {
            task.abort();
        }
    }
}

/// Whether a Pod needs nothing more from the scheduler or the (simulated) kubelet for now.
fn pod_settled(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let Some(status) = &pod.status else {
        return false;
    };
    if matches!(status.phase.as_deref(), Some("Failed" | "Succeeded")) {
        return true;
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let has = |kind: &str, value: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == kind && c.status == value)
    };
    // A container the kubelet has given up on for now (ImagePullBackOff, CrashLoopBackOff…).
    let stuck = status
        .container_statuses
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
        .any(|reason| !matches!(reason, "ContainerCreating" | "PodInitializing"));
    has("Ready", "True") || has("PodScheduled", "False") || stuck
}

/// The internal IP of a test's `n`-th node (kwok reports it as the Pods' host IP). A loopback
/// address: the API server dials a node's kubelet for exec and logs, and test traffic must stay
/// on this machine (no kubelet listens there, so such a request fails at once).
fn node_ip(n: usize) -> String {
    format!("127.10.{}.{}", (n / 250) % 250, n % 250 + 1)
}

/// The API resource of a plural name the tests use.
fn api_resource(plural: &str) -> ApiResource {
    let (group, version, kind) = match plural {
        "pods" => ("", "v1", "Pod"),
        "services" => ("", "v1", "Service"),
        "secrets" => ("", "v1", "Secret"),
        "configmaps" => ("", "v1", "ConfigMap"),
        "persistentvolumeclaims" => ("", "v1", "PersistentVolumeClaim"),
        "events" => ("", "v1", "Event"),
        "leases" => ("coordination.k8s.io", "v1", "Lease"),
        "volumesnapshots" => ("snapshot.storage.k8s.io", "v1", "VolumeSnapshot"),
        other => ("", "v1", other),
    };
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}
