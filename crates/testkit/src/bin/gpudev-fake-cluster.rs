//! `gpudev-fake-cluster`: the test kit's fake Kubernetes API server as a process, for the local
//! run (`scripts/dev-up`). It serves on loopback, writes a kubeconfig, seeds nodes for every GPU
//! type of the default catalog, and runs pods (Ready after a short delay) until stopped.
//!
//! Settings: `FAKE_CLUSTER_ADDR` (`127.0.0.1:55434`), `FAKE_CLUSTER_KUBECONFIG` (required: where
//! to write the kubeconfig), `FAKE_CLUSTER_NODES_PER_TYPE` (2), `FAKE_CLUSTER_READY_SECONDS` (3).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use gpudev_domain::GpuCatalog;
use gpudev_testkit::{FakeCluster, FakeConfig, NodeSpec};

fn setting<T: std::str::FromStr>(name: &str, default: &str) -> Result<T, String> {
    let raw = std::env::var(name).unwrap_or_else(|_| default.to_owned());
    raw.parse()
        .map_err(|_| format!("{name}: {raw:?} is not a valid value"))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpudev-fake-cluster: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run() -> Result<(), String> {
    let addr: SocketAddr = setting("FAKE_CLUSTER_ADDR", "127.0.0.1:55434")?;
    let kubeconfig: PathBuf = std::env::var("FAKE_CLUSTER_KUBECONFIG")
        .map(PathBuf::from)
        .map_err(|_| "FAKE_CLUSTER_KUBECONFIG: set it to the file to write".to_owned())?;
    let per_type: usize = setting("FAKE_CLUSTER_NODES_PER_TYPE", "2")?;
    let ready: u64 = setting("FAKE_CLUSTER_READY_SECONDS", "3")?;

    let fake = FakeCluster::with_config(FakeConfig {
        ready_delay: Duration::from_secs(ready),
        ..FakeConfig::default()
    });
    let mut nodes = 0;
    for spec in GpuCatalog::default().iter() {
        for i in 0..per_type {
            let name = format!("{}-node-{i}", spec.name.as_str());
            let node = if spec.gpus_per_node == 0 {
                NodeSpec::cpu_only(name, spec.cpus_per_node, spec.memory_gib_per_node)
            } else {
                NodeSpec::gpu(name, spec.name.as_str(), spec.gpus_per_node)
            };
            let mut node = node;
            node.cpu = spec.cpus_per_node;
            node.memory_gib = spec.memory_gib_per_node;
            node.labels.insert(
                fake.config().gpu_type_label.clone(),
                spec.name.as_str().to_owned(),
            );
            fake.add_node(node);
            nodes += 1;
        }
    }
    let served = fake
        .serve(addr)
        .await
        .map_err(|e| format!("FAKE_CLUSTER_ADDR: cannot listen on {addr}: {e}"))?;
    served.write_kubeconfig(&kubeconfig).map_err(|e| {
        format!(
            "FAKE_CLUSTER_KUBECONFIG: cannot write {}: {e}",
            kubeconfig.display()
        )
    })?;
    let _simulation = fake.start_simulation(Duration::from_millis(500));
    println!(
        "fake Kubernetes API at {} with {nodes} nodes; kubeconfig {}",
        served.url(),
        kubeconfig.display()
    );
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}
