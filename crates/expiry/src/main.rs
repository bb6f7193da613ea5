//! `gpudev-expiry`: one run, then exit (0 when every step succeeded, 1 otherwise, 2 on bad
//! settings).

use std::process::ExitCode;

use gpudev_expiry::{Config, ExecNotifier, Expiry, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    // Several TLS stacks are linked in (the AWS SDK brings aws-lc-rs, reqwest and kube bring ring),
    // so rustls cannot choose a process-wide provider by itself and would panic on the first
    // client built without an explicit one: choose it before anything else runs.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gpudev-expiry: configuration error: {e}");
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
    let notifier = ExecNotifier::new(kube.clone(), config.exec_timeout);
    let job = match Expiry::new(pool, kube, config, notifier) {
        Ok(job) => job,
        Err(e) => return fail(&format!("cannot set up the webhook: {e}")),
    };
    match job.run_once().await {
        Ok(report) if report.succeeded() => ExitCode::SUCCESS,
        Ok(report) => fail(&format!(
            "run {} finished with errors: {}",
            report.run_id,
            report.summary.errors.join("; ")
        )),
        Err(e) => fail(&format!("run could not be recorded: {e}")),
    }
}

fn fail(message: &str) -> ExitCode {
    tracing::error!(error = message, "gpudev-expiry failed");
    eprintln!("gpudev-expiry: {message}");
    ExitCode::from(1)
}
