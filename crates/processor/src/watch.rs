//! The pod watcher: a kube-runtime watcher on dev box Pods that settles a reservation as soon
//! as one of its Pods turns Ready or fails, instead of waiting for the next reconciliation. It
//! starts with a full list, so after a restart every Pod is looked at once.

use futures::StreamExt as _;
use gpudev_cluster::labels;
use gpudev_cluster::ops::reservation_of;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::watch;

use crate::pods::{PodState, judge};
use crate::processor::Processor;

impl Processor {
    /// Watches dev box Pods until the stream ends, leadership is lost or `stop` is set.
    pub async fn watch_pods(&self, mut stop: watch::Receiver<bool>) {
        let selector = format!(
            "{}={},{}={}",
            labels::MANAGED_BY,
            labels::MANAGED_BY_VALUE,
            labels::APP_NAME,
            labels::APP_DEVBOX
        );
        let stream = watcher(
            self.pods_api(),
            watcher::Config::default().labels(&selector),
        )
        .default_backoff()
        .applied_objects();
        let mut stream = std::pin::pin!(stream);
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = stop.changed() => return,
            };
            let Some(item) = item else { return };
            match item {
                Ok(pod) => {
                    if let Err(e) = self.on_pod(&pod).await {
                        if e.is_leadership() {
                            return;
                        }
                        tracing::warn!(pod = ?pod.metadata.name, error = %e, "settling from a pod event failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "pod watch error"),
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    async fn on_pod(&self, pod: &Pod) -> crate::error::Result<()> {
        if !matches!(judge(pod), PodState::Ready | PodState::Failed(_)) {
            return Ok(());
        }
        let Some(id) = reservation_of(pod) else {
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
