//! `gpudev-processor`: reads its configuration from the environment, finds the cluster (in-cluster
//! service account, else `KUBECONFIG`), serves metrics and processes reservations until SIGTERM.

use std::process::ExitCode;

use gpudev_processor::{Application, ProcessorConfig, kube_client, shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match ProcessorConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gpudev-processor: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    let started = async {
        let kube = kube_client(None).await?;
        Application::build(config, kube).await
    };
    let app = match started.await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "start-up failed");
            eprintln!("gpudev-processor: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(metrics = %app.metrics_addr(), "gpudev-processor started");
    match app.run_until_stopped(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "processor failed");
            ExitCode::from(1)
        }
    }
}
