//! Starting a component as a detached process that outlives the test process that started it
//! (the other test processes of the run use it too), with its output in a log file.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::error::{Context, Error, Result};

/// A started component.
#[derive(Debug)]
pub(crate) struct Component {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl Component {
    /// Starts `program` from `bin` with `args`; its output goes to `<dir>/<name>.log` and its
    /// pid is appended to `<dir>/pids` (the watchdog stops every pid listed there).
    pub(crate) fn spawn(
        name: &'static str,
        bin: &Path,
        program: &str,
        args: &[String],
        dir: &Path,
    ) -> Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .context(format!("opening {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log handle")?;
        let child = Command::new(bin.join(program))
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Not in the test's process group: a Ctrl-C to the run leaves it to the watchdog,
            // which stops it after every test process is gone.
            .process_group(0)
            .spawn()
            .context(format!("starting {program}"))?;
        let mut pids = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("pids"))
            .context("opening the pid list")?;
        writeln!(pids, "{}", child.id()).context("recording the pid")?;
        Ok(Self { name, child, log })
    }

    /// An error if the process has exited, with the end of its log.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::msg(format!(
                "{} exited ({status}); its log ends with:\n{}",
                self.name,
                log_tail(&self.log)
            ))),
            Err(e) => Err(e).context(format!("checking on {}", self.name)),
        }
    }
}

/// The last 30 lines of a log file.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
