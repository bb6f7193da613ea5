//! `gpudev-availability`: one run, then exit (0 on success, 1 on failure, 2 on bad settings).

use std::process::ExitCode;

use gpudev_availability::{Config, run_once, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Several TLS stacks are linked in (the AWS SDK brings aws-lc-rs, reqwest and kube bring ring),
    // so rustls cannot choose a process-wide provider by itself and would panic on the first
    // client built without an explicit one: choose it before anything else runs.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gpudev-availability: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
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
    tracing::error!(error = message, "gpudev-availability failed");
    eprintln!("gpudev-availability: {message}");
    ExitCode::from(1)
}
