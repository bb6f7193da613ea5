//! Reading the cluster's capacity: the Nodes and the unfinished Pods of every namespace.

use gpudev_domain::{GpuCatalog, NodeCapacity};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::{Api, Client};

use super::error::OpsError;
use crate::capacity::node_capacities;

/// Every Node, and every Pod in any namespace that is not `Succeeded` or `Failed` (two list
/// requests, made together).
pub async fn nodes_and_pods(client: &Client) -> Result<(Vec<Node>, Vec<Pod>), OpsError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let unfinished = ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let (nodes, pods) = futures::try_join!(
        async {
            nodes
                .list(&ListParams::default())
                .await
                .map_err(|e| OpsError::kube("list", "Node", "", e))
        },
        async {
            pods.list(&unfinished)
                .await
                .map_err(|e| OpsError::kube("list", "Pod", "all namespaces", e))
        },
    )?;
    Ok((nodes.items, pods.items))
}

/// The capacity of every node carrying `gpu_type_label` (see [`crate::capacity`]), fetched now.
pub async fn fetch_capacities(
    client: &Client,
    gpu_type_label: &str,
    catalog: &GpuCatalog,
) -> Result<Vec<NodeCapacity>, OpsError> {
    let (nodes, pods) = nodes_and_pods(client).await?;
    Ok(node_capacities(&nodes, &pods, gpu_type_label, catalog))
}
