//! The few Kubernetes operations the expiry job needs beyond [`gpudev_cluster::ops`].

use std::time::{Duration, Instant};

use gpudev_cluster::ops::{self, OpsError};
use gpudev_cluster::{VolumeSnapshot, labels};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};
use uuid::Uuid;

/// The dev box Pods of a reservation.
pub async fn pods_of(client: &Client, namespace: &str, id: Uuid) -> Result<Vec<Pod>, OpsError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    ops::list_selected(&api, &labels::selector_for(id)).await
}

/// Deletes every Pod of a reservation (their Services and Secrets are owned by them and go with
/// them) and waits until they are gone, looking every `poll`. Returns how many this call deleted.
/// Gives up after `timeout` with [`WaitError::StillThere`]; the next run carries on.
pub async fn delete_pods_and_wait(
    client: &Client,
    namespace: &str,
    id: Uuid,
    poll: Duration,
    timeout: Duration,
) -> Result<usize, WaitError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = pods_of(client, namespace, id).await?;
    let mut deleted = 0;
    for pod in &pods {
        if pod.metadata.deletion_timestamp.is_none()
            && ops::delete_if_present(&api, &pod.name_any()).await?
        {
            deleted += 1;
        }
    }
    let started = Instant::now();
    for pod in &pods {
        let name = pod.name_any();
        loop {
            match ops::get_opt(&api, &name).await? {
                // A Pod of the same name with another uid is a new one: the old one is gone.
                Some(now) if now.metadata.uid == pod.metadata.uid => {}
                _ => break,
            }
            if started.elapsed() >= timeout {
                return Err(WaitError::StillThere { pod: name, timeout });
            }
            tokio::time::sleep(poll).await;
        }
    }
    Ok(deleted)
}

/// Why waiting for Pods failed.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The API server failed.
    #[error(transparent)]
    Ops(#[from] OpsError),
    /// A Pod was still there when the time was up.
    #[error("pod {pod} still exists {timeout:?} after it was deleted")]
    StillThere {
        /// The Pod.
        pod: String,
        /// How long we waited.
        timeout: Duration,
    },
}

/// Creates a snapshot unless one of that name exists; true when this call created it.
pub async fn create_snapshot(
    client: &Client,
    namespace: &str,
    snapshot: &VolumeSnapshot,
) -> Result<bool, OpsError> {
    let api: Api<VolumeSnapshot> = Api::namespaced(client.clone(), namespace);
    let name = snapshot.name_any();
    match api.create(&PostParams::default(), snapshot).await {
        Ok(_) => Ok(true),
        Err(e) if ops::is_already_exists(&e) => Ok(false),
        Err(e) => Err(OpsError::kube("create", "VolumeSnapshot", &name, e)),
    }
}
