//! `gpudev-processor`: reads its configuration from the environment, finds the cluster (in-cluster
//! service account, else `KUBECONFIG`), serves metrics and processes reservations until SIGTERM.

use std::process::ExitCode;

use gpudev_processor::{Application, ProcessorConfig, kube_client, shutdown_signal};
use gpudev_runtime::exit;

const PROGRAM: &str = "gpudev-processor";

#[tokio::main]
async fn main() -> ExitCode {
    let config = match gpudev_runtime::start(PROGRAM, ProcessorConfig::from_env, |c| c.log_format) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let started = async {
        let kube = kube_client(None).await?;
        Application::build(config, kube).await
    };
    let app = match started.await {
        Ok(app) => app,
        Err(e) => return exit::fail(PROGRAM, &e.to_string()),
    };
    tracing::info!(metrics = %app.metrics_addr(), "gpudev-processor started");
    match app.run_until_stopped(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit::fail(PROGRAM, &format!("processor failed: {e}")),
    }
}
