//! `gpudev-processor`: reads its configuration from the environment, finds the cluster (in-cluster
//! service account, else `KUBECONFIG`), serves metrics and processes reservations until SIGTERM.

use std::process::ExitCode;

use gpudev_processor::{Application, ProcessorConfig, kube_client, shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    // Several TLS stacks are linked in (the AWS SDK brings aws-lc-rs, reqwest and kube bring ring),
    // so rustls cannot choose a process-wide provider by itself and would panic on the first
    // client built without an explicit one: choose it before anything else runs.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
