//! Exit codes shared by the server programs and the CronJobs, and the start-up sequence that
//! leads to them.

use std::process::ExitCode;

use crate::settings::ConfigError;
use crate::telemetry::{self, LogFormat};

/// The run failed (start-up, the work itself, or the server stopped with an error).
pub const FAILURE: u8 = 1;
/// A setting is unusable; the message names the variable.
pub const BAD_SETTINGS: u8 = 2;

/// Starts a server program or CronJob: installs the TLS provider, reads its settings with
/// `settings` and starts logging in the format they name. A bad setting is printed as
/// `<program>: configuration error: VARIABLE: problem` and answered with the exit code
/// [`BAD_SETTINGS`] for `main` to return.
pub fn start<C>(
    program: &str,
    settings: impl FnOnce() -> Result<C, ConfigError>,
    log_format: impl FnOnce(&C) -> LogFormat,
) -> Result<C, ExitCode> {
    crate::install_crypto_provider();
    let config = settings().map_err(|e| {
        eprintln!("{program}: configuration error: {e}");
        ExitCode::from(BAD_SETTINGS)
    })?;
    telemetry::init(log_format(&config));
    Ok(config)
}

/// Logs and prints why `program` stops, and gives the exit code [`FAILURE`].
pub fn fail(program: &str, message: &str) -> ExitCode {
    tracing::error!(error = message, "{program} failed");
    eprintln!("{program}: {message}");
    ExitCode::from(FAILURE)
}
