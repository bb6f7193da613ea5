//! `gpudev-expiry`: one run, then exit (0 when every step succeeded, 1 otherwise, 2 on bad
//! settings).

use std::process::ExitCode;

use gpudev_expiry::{Config, ExecNotifier, Expiry};
use gpudev_runtime::exit;

const PROGRAM: &str = "gpudev-expiry";

#[tokio::main]
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
    exit::fail(PROGRAM, message)
}
