//! `gpudev-api`: reads its configuration from the environment, serves until SIGTERM.

use std::process::ExitCode;

use gpudev_api::{ApiConfig, Application, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    // Several TLS stacks are linked in (the AWS SDK brings aws-lc-rs, reqwest and kube bring ring),
    // so rustls cannot choose a process-wide provider by itself and would panic on the first
    // client built without an explicit one: choose it before anything else runs.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match ApiConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gpudev-api: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "start-up failed");
            eprintln!("gpudev-api: {e:#}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(api = %app.api_addr(), metrics = %app.metrics_addr(), "gpudev-api listening");
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "server failed");
            ExitCode::from(1)
        }
    }
}
