//! `gpudev-availability`: one run, then exit (0 on success, 1 on failure, 2 on bad settings).

use std::process::ExitCode;

use gpudev_availability::{Config, run_once};
use gpudev_runtime::exit;

const PROGRAM: &str = "gpudev-availability";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = match gpudev_runtime::start(PROGRAM, Config::from_env, |c| c.log_format) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let pool = match gpudev_store::connect_pool(&config.db).await {
        Ok(pool) => pool,
        Err(e) => return fail(&format!("cannot reach the database: {e}")),
    };
    let kube = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(e) => return fail(&format!("cannot build a Kubernetes client: {e}")),
    };
    match run_once(&pool, &kube, &config).await {
        Ok(report) => {
            tracing::info!(
                run_id = report.run_id,
                summary = %report.summary(),
                "availability written"
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("run failed: {e}")),
    }
}

fn fail(message: &str) -> ExitCode {
    exit::fail(PROGRAM, message)
}
