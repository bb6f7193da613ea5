//! `gpudev-kube-cluster`: the real Kubernetes control plane of the test kit (etcd,
//! kube-apiserver, controller manager, scheduler and kwok GPU nodes, built by
//! `scripts/install-kube`) as a process, for the local run (`scripts/dev-up`). It creates the
//! dev box namespace, adds nodes for every GPU type of the default catalog, writes an admin
//! kubeconfig, gives dev box disk claims a volume and completes snapshots (the cluster has no
//! storage driver), and stops everything when stopped.
//!
//! Settings: `KUBE_CLUSTER_DIR` (required: where its data and logs go; emptied at start),
//! `KUBE_CLUSTER_KUBECONFIG` (required: where to write the kubeconfig), `KUBE_CLUSTER_NAMESPACE`
//! (`gpu-dev`), `KUBE_CLUSTER_NODES_PER_TYPE` (2).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use gpudev_domain::GpuCatalog;
use gpudev_testkit::NodeSpec;
use gpudev_testkit::control_plane::standalone_control_plane;

/// The node label production nodes carry their GPU type in (the programs' default).
const GPU_TYPE_LABEL: &str = "gpudev.io/gpu-type";

fn setting(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name}: required"))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpudev-kube-cluster: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run() -> Result<(), String> {
    let dir = PathBuf::from(setting("KUBE_CLUSTER_DIR")?);
    let kubeconfig = PathBuf::from(setting("KUBE_CLUSTER_KUBECONFIG")?);
    let namespace = std::env::var("KUBE_CLUSTER_NAMESPACE").unwrap_or_else(|_| "gpu-dev".into());
    let per_type: usize = std::env::var("KUBE_CLUSTER_NODES_PER_TYPE")
        .unwrap_or_else(|_| "2".into())
        .parse()
        .map_err(|_| "KUBE_CLUSTER_NODES_PER_TYPE: not a number".to_owned())?;

    let plane = standalone_control_plane(&dir).await?;
    plane.namespace_named(&namespace).await;
    let mut nodes = 0;
    for spec in GpuCatalog::default().iter() {
        for i in 0..per_type {
            let name = format!("{}-node-{i}", spec.name.as_str());
            let mut node = if spec.gpus_per_node == 0 {
                NodeSpec::cpu_only(name, spec.cpus_per_node, spec.memory_gib_per_node)
            } else {
                NodeSpec::gpu(name, spec.name.as_str(), spec.gpus_per_node)
            };
            node.gpu_type = Some(spec.name.as_str().to_owned());
            node.cpu = spec.cpus_per_node;
            node.memory_gib = spec.memory_gib_per_node;
            nodes += 1;
            let ip = format!("127.20.{}.{}", nodes / 250, nodes % 250 + 1);
            plane.add_node(&node, GPU_TYPE_LABEL, &ip).await;
        }
    }
    let text = plane.admin_kubeconfig_text(&namespace);
    std::fs::write(&kubeconfig, text).map_err(|e| {
        format!(
            "KUBE_CLUSTER_KUBECONFIG: cannot write {}: {e}",
            kubeconfig.display()
        )
    })?;
    println!(
        "Kubernetes control plane at {} with {nodes} kwok nodes; kubeconfig {}",
        plane.url(),
        kubeconfig.display()
    );
    let mut stop = std::pin::pin!(shutdown());
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                plane.provision(&namespace).await;
                plane.ready_snapshots(&namespace).await;
            }
        }
    }
    drop(plane);
    Ok(())
}

/// Ctrl-C or SIGTERM (what `scripts/dev-down` sends).
async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
