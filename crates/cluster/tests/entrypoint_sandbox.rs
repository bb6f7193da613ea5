//! The dev box entrypoint run for real: sshd comes up, `dev` logs in with its key and sees the
//! container's environment (the user's variables included) and has sudo; the reservation's start
//! command runs once, as `dev`, with that environment; Jupyter starts and stops as the Secret's
//! switch says on the running box; root and passwordless logins are refused. See `sandbox/entrypoint-smoke.sh` for how the host is kept untouched.
//!
//! Ignored by default because it needs root, overlayfs, namespaces and apt-get access to Debian's
//! packages: `cargo test -p gpudev-cluster -- --ignored`.

use std::path::Path;
use std::process::Command;

use gpudev_cluster::pod::ENTRYPOINT;

#[test]
#[ignore = "needs root, overlayfs and apt-get; run with --ignored"]
fn entrypoint_lets_dev_log_in_and_refuses_root() {
    let dir = tempfile::tempdir().unwrap();
    let entrypoint = dir.path().join("entrypoint.sh");
    std::fs::write(&entrypoint, ENTRYPOINT).unwrap();
    let sandbox = dir.path().join("sandbox");
    std::fs::create_dir(&sandbox).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sandbox/entrypoint-smoke.sh");
    let output = Command::new("unshare")
        .args(["--mount", "--fork"])
        .arg(&script)
        .arg(&entrypoint)
        .arg(&sandbox)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("entrypoint smoke test passed"), "{text}");
}
