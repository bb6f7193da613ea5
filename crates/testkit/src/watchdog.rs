//! Detached clean-up that runs when a process we do not control exits.
//!
//! Neither cargo-nextest nor `cargo test` tells a test process that the run is over, and a test
//! process may be killed, so nothing inside it can reliably stop a server at the end. Instead a
//! tiny shell loop polls the process it watches and runs the clean-up once that process is gone.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::error::{Context, Result};

/// Spawns `sh -c` that waits for `pid` to exit and then runs `cleanup` (a shell snippet).
///
/// The watchdog gets its own process group, so a Ctrl-C sent to the test's group does not kill
/// it, and no inherited stdio, so test runners that wait for their children's pipes to close do
/// not wait for it.
pub(crate) fn spawn(pid: u32, cleanup: &str) -> Result<()> {
    // Not `kill -0`: it fails with EPERM when the watched process belongs to another user
    // (e.g. tests run as an ordinary user under `runuser`, which stays root).
    let script = format!("while [ -d /proc/{pid} ]; do sleep 1; done; {cleanup}");
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("spawning the clean-up watchdog (sh)")?;
    Ok(())
}

/// Quotes `s` for a POSIX shell.
pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::sh_quote;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(sh_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
