//! The machine's PostgreSQL binaries, and running them as the right user.
//!
//! `initdb` and `postgres` refuse to run as root. When the tests run as root (CI containers do),
//! every server command runs as the `postgres` OS user through `runuser`, and the directories
//! the server writes are handed to that user first.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::error::{Context, Error, Result};
use crate::watchdog::sh_quote;

/// The OS user that owns the server when the tests run as root.
const SERVER_OS_USER: &str = "postgres";

/// Where the server binaries are and whom they run as.
#[derive(Debug, Clone)]
pub(crate) struct PgBin {
    bindir: PathBuf,
    /// `Some((uid, gid))` of the `postgres` OS user when we are root and must switch to it.
    run_as: Option<(u32, u32)>,
}

impl PgBin {
    /// Finds the binaries with `pg_config --bindir`.
    pub(crate) async fn discover() -> Result<Self> {
        let out = Command::new("pg_config")
            .arg("--bindir")
            .stdin(Stdio::null())
            .output()
            .await
            .context("running `pg_config --bindir` (is PostgreSQL 15 installed? see scripts/install-pgmq)")?;
        if !out.status.success() {
            return Err(Error::msg(format!(
                "`pg_config --bindir` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let bindir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !bindir.join("initdb").is_file() {
            return Err(Error::msg(format!(
                "no initdb in {} (install the PostgreSQL 15 server: scripts/install-pgmq does)",
                bindir.display()
            )));
        }
        let run_as = if is_root()? {
            Some((id_of("-u").await?, id_of("-g").await?))
        } else {
            None
        };
        Ok(Self { bindir, run_as })
    }

    /// A command running the server tool `tool` (e.g. `pg_ctl`) as the server's OS user.
    pub(crate) fn command(&self, tool: &str) -> Command {
        let path = self.bindir.join(tool);
        let mut cmd = if self.run_as.is_some() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", SERVER_OS_USER, "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        };
        cmd.stdin(Stdio::null());
        cmd
    }

    /// The same as [`PgBin::command`], for places that cannot await (`Drop`).
    pub(crate) fn std_command(&self, tool: &str) -> std::process::Command {
        let path = self.bindir.join(tool);
        let mut cmd = if self.run_as.is_some() {
            let mut cmd = std::process::Command::new("runuser");
            cmd.args(["-u", SERVER_OS_USER, "--"]).arg(path);
            cmd
        } else {
            std::process::Command::new(path)
        };
        cmd.stdin(Stdio::null());
        cmd
    }

    /// The shell words that start `tool` as the server's OS user, for watchdog scripts.
    pub(crate) fn shell_prefix(&self, tool: &str) -> String {
        let path = sh_quote(&self.bindir.join(tool).to_string_lossy());
        if self.run_as.is_some() {
            format!("runuser -u {SERVER_OS_USER} -- {path}")
        } else {
            path
        }
    }

    /// Hands `path` to the server's OS user (a no-op unless we are root).
    pub(crate) fn give_to_server(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .context(format!("chown {} to {SERVER_OS_USER}", path.display()))?;
        }
        Ok(())
    }
}

/// Runs `cmd`, failing with its output when it exits unsuccessfully; returns its stdout.
pub(crate) async fn run(mut cmd: Command, what: &str) -> Result<String> {
    let out = cmd.output().await.context(format!("starting {what}"))?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether this process runs as root: `/proc/self` belongs to the effective user.
fn is_root() -> Result<bool> {
    Ok(std::fs::metadata("/proc/self")
        .context("reading /proc/self")?
        .uid()
        == 0)
}

/// `id <flag> postgres`, i.e. the uid or gid of the server's OS user.
async fn id_of(flag: &str) -> Result<u32> {
    let mut cmd = Command::new("id");
    cmd.args([flag, SERVER_OS_USER]).stdin(Stdio::null());
    let out = run(
        cmd,
        &format!(
            "`id {flag} {SERVER_OS_USER}` (running as root needs a `{SERVER_OS_USER}` OS user)"
        ),
    )
    .await?;
    out.trim().parse().context(format!(
        "parsing the output of `id {flag} {SERVER_OS_USER}`"
    ))
}
