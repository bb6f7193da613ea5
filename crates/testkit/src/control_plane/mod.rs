//! A real Kubernetes control plane for the tests and the local run: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok, built from Go modules by
//! `scripts/install-kube` and started on loopback ports.
//!
//! Like the throwaway PostgreSQL, one control plane serves the whole test run: the first test
//! process that asks starts it under the run directory, the others read where it listens, and
//! a watchdog stops it when the run ends. Tests share it safely by each taking a namespace of
//! their own ([`ControlPlane::namespace`]) and naming their nodes after it.
//!
//! - **API server**: RBAC authorization, a static token for an admin (group
//!   `system:masters`), ServiceAccount tokens signed with a key generated at start, and a
//!   serving certificate it generates itself (the kubeconfig trusts its CA).
//! - **Controller manager**: garbage collection, namespaces, ServiceAccounts, PersistentVolume
//!   binding, node lifecycle and the rest of its default controllers.
//! - **Scheduler**: binds pods to nodes as in production.
//! - **kwok**: plays every node annotated `kwok.x-k8s.io/node: fake` (Ready, renewing its
//!   Lease) and the Pods bound to them (Running and Ready, removed once deleted), with the stages
//!   in `tools/kube/kwok-stages.yaml`.
//! - The VolumeSnapshot definitions of `tools/kube/crds/` are installed.
//!
//! What a cluster would do beyond that, the test kit does on request: [`ControlPlane::provision`]
//! gives pending claims a volume, [`ControlPlane::ready_snapshots`] completes snapshots.

mod bin;
mod chart;
mod process;
mod start;
pub mod test_cluster;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, ServiceAccount,
};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::error::{Context, Error, Result};
use crate::kube::NodeSpec;

pub use bin::available;
pub use chart::ChartAccounts;
pub(crate) use start::stop_dead_run;
pub use start::{PrivateControlPlane, private_control_plane, standalone_control_plane};

static SHARED: OnceCell<ControlPlane> = OnceCell::const_new();

/// Where the run's control plane listens and how to reach it as the admin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlPlane {
    /// `https://127.0.0.1:PORT` of the API server.
    url: String,
    /// The admin's bearer token.
    token: String,
    /// The PEM of the CA that signed the API server's serving certificate.
    ca_pem: String,
    /// `http://127.0.0.1:PORT` of etcd's client endpoint.
    etcd_url: String,
    /// The control plane's directory (kubeconfig, logs, etcd data).
    dir: PathBuf,
}

/// The test run's control plane, started by the first test process of the run that asks.
///
/// # Panics
///
/// When the binaries are not built (the message names `scripts/install-kube`) or the control
/// plane does not start (the message ends with the tail of the failing component's log).
#[expect(
    clippy::panic,
    reason = "test helper: without the control plane the test cannot run"
)]
pub async fn control_plane() -> &'static ControlPlane {
    SHARED
        .get_or_init(|| async {
            start::open_or_create()
                .await
                .unwrap_or_else(|e| panic!("gpudev-testkit: Kubernetes control plane: {e}"))
        })
        .await
}

impl ControlPlane {
    /// The API server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// etcd's client URL (for tests that compact its history).
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The directory holding the admin kubeconfig and the components' logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig file.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    /// A kubeconfig authenticating with `token`, whose default namespace is `namespace`.
    pub fn kubeconfig_text(&self, namespace: &str, token: &str) -> String {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gpudev-test\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: user\n  user:\n    token: {token}\ncontexts:\n- name: gpudev-test\n  context:\n    cluster: gpudev-test\n    user: user\n    namespace: {namespace}\ncurrent-context: gpudev-test\n",
            url = self.url,
        )
    }

    /// A client acting as the admin, whose default namespace is `namespace`.
    ///
    /// # Panics
    /// When the client cannot be built from the kubeconfig.
    #[expect(clippy::panic, reason = "test helper")]
    pub async fn client_in(&self, namespace: &str) -> kube::Client {
        self.client_with_token(namespace, &self.token)
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: admin client: {e}"))
    }

    /// A client acting as the admin in the `default` namespace.
    pub async fn client(&self) -> kube::Client {
        self.client_in("default").await
    }

    /// A client authenticating with `token` (for example a ServiceAccount's).
    ///
    /// # Errors
    /// When the kubeconfig does not parse or the client cannot be built.
    pub async fn client_with_token(
        &self,
        namespace: &str,
        token: &str,
    ) -> std::result::Result<kube::Client, kube::Error> {
        let text = self.kubeconfig_text(namespace, token);
        client_from_kubeconfig(&text).await
    }

    /// A new namespace `<prefix>-<8 random hex digits>`, once its `default` ServiceAccount
    /// exists (until then the API server refuses Pods in it).
    ///
    /// # Panics
    /// When the namespace cannot be created or its ServiceAccount does not appear in 30 s.
    #[expect(clippy::panic, reason = "test helper")]
    pub async fn namespace(&self, prefix: &str) -> String {
        let name = format!(
            "{prefix}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        self.create_namespace(&name)
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: namespace {name}: {e}"));
        name
    }

    /// The namespace `name`, created if absent, once its `default` ServiceAccount exists.
    ///
    /// # Panics
    /// When it cannot be created.
    #[expect(clippy::panic, reason = "test helper")]
    pub async fn namespace_named(&self, name: &str) {
        self.create_namespace(name)
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: namespace {name}: {e}"));
    }

    /// The admin's kubeconfig with `namespace` as its default.
    pub fn admin_kubeconfig_text(&self, namespace: &str) -> String {
        self.kubeconfig_text(namespace, &self.token)
    }

    /// Creates `name` (if absent) and waits for its `default` ServiceAccount.
    pub(crate) async fn create_namespace(&self, name: &str) -> Result<()> {
        let client = self.client().await;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } }))
            .context("building the namespace")?;
        match namespaces.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e).context(format!("creating namespace {name}")),
        }
        let accounts: Api<ServiceAccount> = Api::namespaced(client, name);
        wait_for(
            Duration::from_secs(30),
            "the default ServiceAccount",
            || async { Ok(accounts.get_opt("default").await.ok().flatten().is_some()) },
        )
        .await
    }

    /// Adds the node `spec` describes (the fake's [`NodeSpec`], so both back ends build the same
    /// Node), with its GPU type under `gpu_type_label` and the internal IP `ip`. A Ready node is
    /// annotated for kwok, which keeps it Ready and runs the Pods bound to it; a node that is
    /// not Ready is left alone, so the node lifecycle controller treats it as down.
    ///
    /// # Panics
    /// When the node cannot be created.
    #[expect(clippy::panic, reason = "test helper")]
    pub async fn add_node(&self, spec: &NodeSpec, gpu_type_label: &str, ip: &str) {
        let mut object = spec.to_object(gpu_type_label, ip);
        if spec.ready {
            object["metadata"]["annotations"] = json!({ "kwok.x-k8s.io/node": "fake" });
        }
        let node: Node = serde_json::from_value(object)
            .unwrap_or_else(|e| panic!("gpudev-testkit: node {}: {e}", spec.name));
        let nodes: Api<Node> = Api::all(self.client().await);
        nodes
            .create(&PostParams::default(), &node)
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: creating node {}: {e}", spec.name));
        if spec.ready {
            // The API server taints a new node not-ready until the node lifecycle controller
            // has seen it Ready; wait for that, as tests expect a node to take pods at once.
            let expected = spec.taints.len();
            wait_for(
                Duration::from_secs(30),
                "the node's not-ready taint to go",
                || async {
                    let node = nodes.get(&spec.name).await.context("reading the node")?;
                    let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
                    Ok(taints.len() == expected)
                },
            )
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: node {}: {e}", spec.name));
        }
    }

    /// Gives every pending claim in `namespace` a volume of its size, bound to it up front, as
    /// a provisioner would (the volumes are `hostPath` ones nothing mounts). Returns how many
    /// volumes it made.
    ///
    /// # Panics
    /// When the claims cannot be listed or a volume cannot be created.
    #[expect(clippy::panic, reason = "test helper")]
    pub async fn provision(&self, namespace: &str) -> usize {
        let client = self.client().await;
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        let volumes: Api<PersistentVolume> = Api::all(client);
        let list = claims
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: listing claims: {e}"));
        let mut made = 0;
        for claim in list.items {
            let bound = claim
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .is_some_and(|v| !v.is_empty());
            if bound || claim.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let value = serde_json::to_value(&claim).unwrap_or(Value::Null);
            let name = value["metadata"]["name"].as_str().unwrap_or_default();
            let uid = value["metadata"]["uid"].as_str().unwrap_or_default();
            let volume_name = format!("pv-{uid}");
            let size = value["spec"]["resources"]["requests"]["storage"].clone();
            let modes = value["spec"]["accessModes"].clone();
            let class = value["spec"]["storageClassName"].as_str().unwrap_or("");
            let volume: PersistentVolume = serde_json::from_value(json!({
                "metadata": { "name": volume_name, "labels": { "gpudev.io/test-namespace": namespace } },
                "spec": {
                    "capacity": { "storage": size },
                    "accessModes": modes,
                    "storageClassName": class,
                    "persistentVolumeReclaimPolicy": "Delete",
                    "hostPath": { "path": format!("/var/lib/gpudev-test/{volume_name}") },
                    "claimRef": { "namespace": namespace, "name": name, "uid": uid },
                },
            }))
            .unwrap_or_else(|e| panic!("gpudev-testkit: volume for {name}: {e}"));
            match volumes.create(&PostParams::default(), &volume).await {
                Ok(_) => made += 1,
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => panic!("gpudev-testkit: creating volume for {name}: {e}"),
            }
        }
        made
    }

    /// Marks every VolumeSnapshot in `namespace` that is not ready yet as ready to use, with a
    /// restore size of its claim's request, as a CSI snapshotter would once the copy is taken.
    /// Returns how many it completed.
    ///
    /// # Panics
    /// When the snapshots cannot be listed or patched.
    #[expect(clippy::panic, reason = "test helper")]
    pub async fn ready_snapshots(&self, namespace: &str) -> usize {
        let client = self.client().await;
        let snapshots: Api<kube::api::DynamicObject> = Api::namespaced_with(
            client.clone(),
            namespace,
            &kube::api::ApiResource {
                group: "snapshot.storage.k8s.io".into(),
                version: "v1".into(),
                api_version: "snapshot.storage.k8s.io/v1".into(),
                kind: "VolumeSnapshot".into(),
                plural: "volumesnapshots".into(),
            },
        );
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client, namespace);
        let list = snapshots
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: listing snapshots: {e}"));
        let mut done = 0;
        for snapshot in list.items {
            if snapshot.data["status"]["readyToUse"] == json!(true) {
                continue;
            }
            let name = snapshot.metadata.name.clone().unwrap_or_default();
            let claim = snapshot.data["spec"]["source"]["persistentVolumeClaimName"]
                .as_str()
                .unwrap_or_default();
            let size = match claims.get_opt(claim).await {
                Ok(Some(c)) => serde_json::to_value(&c).unwrap_or(Value::Null)["spec"]["resources"]
                    ["requests"]["storage"]
                    .clone(),
                _ => json!("1Gi"),
            };
            let status = json!({ "status": {
                "readyToUse": true,
                "restoreSize": size,
                "creationTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "boundVolumeSnapshotContentName": format!("snapcontent-{}", snapshot.metadata.uid.clone().unwrap_or_default()),
            }});
            snapshots
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap_or_else(|e| panic!("gpudev-testkit: completing snapshot {name}: {e}"));
            done += 1;
        }
        done
    }
}

/// One request a ServiceAccount made, from the API server's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuditedRequest {
    /// `system:serviceaccount:<namespace>:<name>`.
    pub user: String,
    /// The Kubernetes verb (`get`, `list`, `watch`, `create`, `patch`, `delete`, …).
    pub verb: String,
    /// The API group (`""` for core).
    pub group: String,
    /// The resource, with its subresource after a slash (`pods/exec`).
    pub resource: String,
    /// The namespace (`""` for cluster-scoped requests).
    pub namespace: String,
    /// The HTTP status of the answer.
    pub code: u16,
}

impl ControlPlane {
    /// Every request made by a ServiceAccount of `namespace` so far (one entry per request).
    pub fn audited_requests(&self, namespace: &str) -> Vec<AuditedRequest> {
        let prefix = format!("system:serviceaccount:{namespace}:");
        let text = std::fs::read_to_string(self.dir.join("audit.log")).unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let user = event["user"]["username"].as_str().unwrap_or_default();
            // A watch is logged when its answer starts and again when it ends; a watch still
            // open has only the first.
            let stage = event["stage"].as_str().unwrap_or_default();
            if !user.starts_with(&prefix)
                || !matches!(stage, "ResponseStarted" | "ResponseComplete")
            {
                continue;
            }
            if !seen.insert(event["auditID"].as_str().unwrap_or_default().to_owned()) {
                continue;
            }
            let object = &event["objectRef"];
            let mut resource = object["resource"].as_str().unwrap_or_default().to_owned();
            if let Some(sub) = object["subresource"].as_str() {
                resource = format!("{resource}/{sub}");
            }
            out.push(AuditedRequest {
                user: user.to_owned(),
                verb: event["verb"].as_str().unwrap_or_default().to_owned(),
                group: object["apiGroup"].as_str().unwrap_or_default().to_owned(),
                resource,
                namespace: object["namespace"].as_str().unwrap_or_default().to_owned(),
                code: event["responseStatus"]["code"]
                    .as_u64()
                    .and_then(|c| u16::try_from(c).ok())
                    .unwrap_or(0),
            });
        }
        out
    }
}

/// A client built from kubeconfig text, with the TLS provider the project uses installed.
async fn client_from_kubeconfig(text: &str) -> std::result::Result<kube::Client, kube::Error> {
    // Best effort: another part of the process may have installed it already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = Kubeconfig::from_yaml(text).map_err(kube::Error::InferKubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(kube::Error::InferKubeconfig)?;
    kube::Client::try_from(config)
}

/// Polls `check` every 100 ms until it answers true; an error after `within` names `what`.
pub(crate) async fn wait_for<F, Fut>(within: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::msg(format!(
                "{what} did not appear within {within:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
