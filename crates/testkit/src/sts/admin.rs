//! The Python side of the emulator: `py/moto_admin.py`, run with boto3 from moto's own
//! environment, so the testkit does not need an AWS SDK of its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::de::DeserializeOwned;
use tokio::process::Command;

use crate::error::{Context, Error, Result};

/// The helper script, embedded so it works wherever the test binary runs.
const SCRIPT: &str = include_str!("../../py/moto_admin.py");

/// Runs `moto_admin.py COMMAND ENDPOINT ARGS…` with `python` and decodes its JSON answer.
pub(crate) async fn call<T: DeserializeOwned>(
    python: &Path,
    command: &str,
    endpoint: &str,
    args: &[&str],
) -> Result<T> {
    let out = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(command)
        .arg(endpoint)
        .args(args)
        // Keep the caller's AWS settings out of it: the script names everything explicitly.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .output()
        .await
        .context(format!("running {} for moto_admin.py", python.display()))?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "moto_admin.py {command} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout).context(format!(
        "decoding the answer of moto_admin.py {command}: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    ))
}

/// The Python that has boto3: the one next to `moto_server` when there is one.
pub(crate) fn python_next_to(moto_server: &Path) -> PathBuf {
    if let Some(dir) = moto_server.parent() {
        for name in ["python3", "python"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from("python3")
}
