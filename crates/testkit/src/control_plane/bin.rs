//! Where the control plane's binaries are: `GPUDEV_KUBE_BIN`, else the cache
//! `scripts/install-kube` builds into (asked with `--print`, which never builds).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// The five programs the control plane runs.
pub(crate) const PROGRAMS: [&str; 5] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
];

/// The script that builds the binaries, from this crate's place in the workspace.
fn install_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-kube")
}

/// The repository's `tools/kube` directory (kwok stages, CRDs).
pub(crate) fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/kube")
}

/// The directory holding the built binaries.
pub(crate) fn bin_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("GPUDEV_KUBE_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let out = Command::new(install_script())
                .arg("--print")
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .map_err(|e| Error::msg(format!("running scripts/install-kube --print: {e}")))?;
            if !out.status.success() {
                return Err(Error::msg(
                    "the Kubernetes control plane is not built: run scripts/install-kube",
                ));
            }
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    for program in PROGRAMS {
        if !dir.join(program).is_file() {
            return Err(Error::msg(format!(
                "{} has no {program}: run scripts/install-kube",
                dir.display()
            )));
        }
    }
    Ok(dir)
}

/// Whether the control plane's binaries are built, so a real cluster can start.
pub fn available() -> bool {
    bin_dir().is_ok()
}
