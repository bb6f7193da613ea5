//! `gpudev-admin` end to end: the real binary against a real PostgreSQL with PGMQ.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking with the error"
)]

mod commands;
mod errors;
mod migrate;

use std::process::Output;

/// Runs the binary with `DATABASE_URL` set to `url` (and no other database settings).
pub async fn admin(url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_gpudev-admin"))
        .args(args)
        .env_remove("POSTGRES_HOST")
        .env_remove("QUEUE_NAME")
        .env("DATABASE_URL", url)
        .output()
        .await
        .unwrap()
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
