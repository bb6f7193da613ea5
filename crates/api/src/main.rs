//! `gpudev-api`: reads its configuration from the environment, serves until SIGTERM.

use std::process::ExitCode;

use gpudev_api::{ApiConfig, Application, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
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
