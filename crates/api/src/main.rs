//! `gpudev-api`: reads its configuration from the environment, serves until SIGTERM.

use std::process::ExitCode;

use gpudev_api::{ApiConfig, Application};
use gpudev_runtime::exit;

const PROGRAM: &str = "gpudev-api";

#[tokio::main]
async fn main() -> ExitCode {
    let config = match gpudev_runtime::start(PROGRAM, ApiConfig::from_env, |c| c.log_format) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => return exit::fail(PROGRAM, &format!("{e:#}")),
    };
    tracing::info!(api = %app.api_addr(), metrics = %app.metrics_addr(), "gpudev-api listening");
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit::fail(PROGRAM, &format!("{e:#}")),
    }
}
