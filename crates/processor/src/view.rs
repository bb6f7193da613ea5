//! The leader's live view of the cluster: kube-runtime reflectors of every Node and every Pod,
//! kept current by watches, so a scheduling pass reads capacity from memory instead of listing
//! the whole cluster every few seconds (a list of a few thousand Pods costs the API server and
//! the processor far more than the pass itself).
//!
//! The same Pod watch is the *pod watcher*: when a dev box Pod in `GPU_DEV_NAMESPACE` turns Ready
//! or fails, its reservation is settled at once instead of at the next reconciliation. The watch
//! starts with a full list, so after a restart every Pod is looked at once.
//!
//! Only what scheduling and settling read is kept: commands, environment, volumes, probes,
//! annotations and managed fields of Pods, and the image lists of Nodes, are dropped before
//! they are stored.
//!
//! A cache can lag the cluster by a moment. The pass tolerates that: an admitted reservation's
//! slots are subtracted until its Pod is *seen* bound to its node, and the scheduler is only ever
//! told less is free than is, not more — except for Pods outside gpudev created in that moment,
//! which the Kubernetes scheduler then refuses, and the ready timeout requeues.

use std::sync::Arc;

use futures::{FutureExt as _, StreamExt as _};
use gpudev_cluster::capacity::is_devbox;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::task::JoinHandle;

use crate::pods::{PodState, judge};
use crate::processor::Processor;

/// Reflected Nodes and Pods; the watches stop when this is dropped.
#[derive(Debug)]
pub struct ClusterView {
    nodes: Store<Node>,
    pods: Store<Pod>,
    tasks: Vec<JoinHandle<()>>,
}

impl ClusterView {
    /// Starts the watches. Dev box Pod changes are settled through `processor`.
    pub fn start(processor: &Processor) -> Self {
        let client = processor.inner.kube.clone();
        let (nodes, node_writer) = reflector::store::<Node>();
        let (pods, pod_writer) = reflector::store::<Pod>();
        let node_task = tokio::spawn(async move {
            let stream = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
                .default_backoff()
                .modify(strip_node)
                .reflect(node_writer);
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Err(e) = event {
                    tracing::warn!(error = %e, "node watch error");
                }
            }
        });
        let this = processor.clone();
        let pod_task = tokio::spawn(async move {
            let client = this.inner.kube.clone();
            let stream = watcher(Api::<Pod>::all(client), watcher::Config::default())
                .default_backoff()
                .modify(strip_pod)
                .reflect(pod_writer)
                .applied_objects();
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(pod) => {
                        if let Err(e) = this.on_pod(&pod).await {
                            if e.is_leadership() {
                                return;
                            }
                            this.inner.metrics.step_failed("pod_event");
                            tracing::warn!(pod = ?pod.metadata.name, error = %e, "settling from a pod event failed (reconciliation retries)");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "pod watch error"),
                }
            }
        });
        Self {
            nodes,
            pods,
            tasks: vec![node_task, pod_task],
        }
    }

    /// True once both watches have listed everything.
    pub fn is_ready(&self) -> bool {
        let ready = |ready: Option<Result<(), reflector::store::WriterDropped>>| {
            ready.is_some_and(|r| r.is_ok())
        };
        ready(self.nodes.wait_until_ready().now_or_never())
            && ready(self.pods.wait_until_ready().now_or_never())
    }

    /// Waits until both watches have listed everything.
    pub async fn wait_until_ready(&self) {
        let _ = self.nodes.wait_until_ready().await;
        let _ = self.pods.wait_until_ready().await;
    }

    /// Every Node and Pod as last seen.
    pub fn snapshot(&self) -> (Vec<Arc<Node>>, Vec<Arc<Pod>>) {
        (self.nodes.state(), self.pods.state())
    }
}

impl Drop for ClusterView {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Processor {
    /// Settles the reservation of a dev box Pod that turned Ready or failed.
    async fn on_pod(&self, pod: &Pod) -> crate::error::Result<()> {
        if pod.metadata.namespace.as_deref() != Some(self.inner.config.namespace.as_str())
            || !is_devbox(pod)
            || !matches!(judge(pod), PodState::Ready | PodState::Failed(_))
        {
            return Ok(());
        }
        let Some(id) = gpudev_cluster::ops::reservation_of(pod) else {
            return Ok(());
        };
        let r = {
            let db = self.db().await?;
            gpudev_store::reservations::find(&**db, id).await?
        };
        let Some(r) = r else { return Ok(()) };
        let _guard = self.inner.objects_lock.lock().await;
        self.settle(&r, None, false).await?;
        Ok(())
    }
}

fn strip_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    if let Some(spec) = pod.spec.as_mut() {
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            c.command = None;
            c.args = None;
            c.env = None;
            c.env_from = None;
            c.volume_mounts = None;
            c.readiness_probe = None;
            c.liveness_probe = None;
            c.startup_probe = None;
            c.security_context = None;
            c.ports = None;
        }
        spec.volumes = None;
        spec.affinity = None;
        spec.tolerations = None;
    }
}

fn strip_node(node: &mut Node) {
    node.metadata.managed_fields = None;
    node.metadata.annotations = None;
    if let Some(status) = node.status.as_mut() {
        status.images = None;
    }
}
