//! gpudev-runtime: what every gpudev program does when it starts, written once.
//!
//! - [`settings`]: reading settings from the environment ([`Env`]), with a range and a default
//!   for each number and an error naming the variable ([`ConfigError`]).
//! - [`shared`]: the settings several programs read (GPU catalog, quotas, node and disk limits,
//!   the dev box image, the database pool), parsed in this one place so they have one range and
//!   one meaning everywhere; the Helm chart's schema is checked against them by a test.
//! - [`telemetry`]: log lines (JSON or readable) filtered by `RUST_LOG`.
//! - [`start`]: the TLS provider, the settings and logging in the order every server binary
//!   needs them, and the exit codes they share ([`exit`]).

pub mod exit;
pub mod settings;
pub mod shared;
pub mod telemetry;

pub use exit::start;
pub use settings::{ConfigError, Env, IntSetting};
pub use telemetry::LogFormat;

/// Chooses the process-wide TLS provider (ring). Several TLS stacks are linked in (the AWS SDK
/// brings aws-lc-rs, reqwest and kube bring ring), so rustls cannot choose one by itself and
/// would panic on the first client built without an explicit one: call this before anything
/// else runs. Calling it again does nothing.
pub fn install_crypto_provider() {
    // An error only says a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
