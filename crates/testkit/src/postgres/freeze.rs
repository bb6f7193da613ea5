//! Freezing a private cluster's server (SIGSTOP), the stand-in for a hung database or a network
//! partition: connections stay open and the kernel still accepts new ones, but nothing answers.

use std::path::Path;

use crate::error::{Context, Error, Result};

/// The server's processes are stopped while this lives; dropping it resumes them (SIGCONT), so
/// a failing test never leaves a stopped server behind.
#[derive(Debug)]
#[must_use = "the server resumes when the guard is dropped"]
pub struct Frozen {
    pids: Vec<u32>,
}

impl Frozen {
    /// Stops the postmaster of the cluster in `data_dir` and every process it started.
    pub(crate) fn freeze(data_dir: &Path) -> Result<Self> {
        let pids = server_pids(data_dir)?;
        // The postmaster first, so it starts no new backend while its children are stopped; a
        // child may exit meanwhile, so only the postmaster's signal must succeed.
        signal("STOP", &pids[..1])?;
        let _ = signal("STOP", &pids[1..]);
        Ok(Self { pids })
    }

    /// The process ids that were stopped (the postmaster first).
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // Best effort: the cluster's own drop and watchdog resume the server too.
        let _ = signal("CONT", &self.pids);
    }
}

/// Resumes whatever processes of the cluster in `data_dir` are stopped (nothing if none).
pub(crate) fn thaw(data_dir: &Path) {
    if let Ok(pids) = server_pids(data_dir) {
        let _ = signal("CONT", &pids);
    }
}

/// The postmaster (from `postmaster.pid`) and its children (from `/proc`).
fn server_pids(data_dir: &Path) -> Result<Vec<u32>> {
    let pid_file = data_dir.join("postmaster.pid");
    let text =
        std::fs::read_to_string(&pid_file).context(format!("reading {}", pid_file.display()))?;
    let postmaster: u32 = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| Error::msg(format!("{} names no process", pid_file.display())))?;
    let mut pids = vec![postmaster];
    for entry in std::fs::read_dir("/proc")
        .context("listing /proc")?
        .flatten()
    {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses, so read after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(postmaster) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

fn signal(name: &str, pids: &[u32]) -> Result<()> {
    if pids.is_empty() {
        return Ok(());
    }
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .context(format!("running kill -{name}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::msg(format!(
            "kill -{name} {pids:?} failed ({status})"
        )))
    }
}
