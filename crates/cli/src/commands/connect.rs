//! `gpu-dev connect`

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;

use gpudev_client::JobDetail;

use crate::context::Ctx;
use crate::error::{CliError, CliResult};
use crate::files;
use crate::session::Session;

/// The user dev boxes accept when the job does not name one.
pub const DEFAULT_USER: &str = "dev";

/// Open an SSH session to an active reservation.
///
/// Runs `ssh -p PORT USER@HOST` with the reservation's user, host and port (the program in
/// GPU_DEV_SSH instead of `ssh`, when set). Each reservation gets its own known-hosts file under
/// ~/.gpu-dev/known_hosts/, so a new dev box on a reused address never trips a host-key
/// warning. Arguments after `--` go to ssh, e.g. `gpu-dev connect ID -- -L 8888:localhost:8888`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reservation id or unique prefix (8+ characters).
    pub id: String,
    /// Extra arguments for ssh (after `--`).
    #[arg(last = true, value_name = "SSH ARGS")]
    pub ssh_args: Vec<String>,
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Login user.
    pub user: String,
    /// Host or address.
    pub host: String,
    /// SSH port.
    pub port: u16,
}

/// The user, host and port of a job: from its `ssh_command` (`ssh -p 30022 dev@10.0.0.7`), else
/// from `node_ip` and `node_port` with the default user.
pub fn target(job: &JobDetail) -> Option<Target> {
    let mut user = None;
    let mut host = None;
    let mut port = None;
    if let Some(cmd) = &job.ssh_command {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            if w == "-p" {
                port = words.get(i + 1).and_then(|p| p.parse::<u16>().ok());
                i += 2;
                continue;
            }
            if let Some(p) = w.strip_prefix("-p") {
                port = p.parse().ok().or(port);
            } else if !w.starts_with('-') && i > 0 {
                match w.split_once('@') {
                    Some((u, h)) => {
                        user = Some(u.to_owned());
                        host = Some(h.to_owned());
                    }
                    None => host = Some(w.to_owned()),
                }
            }
            i += 1;
        }
    }
    let host = host.or_else(|| job.node_ip.clone())?;
    let port = port
        .or_else(|| job.node_port.and_then(|p| u16::try_from(p).ok()))
        .unwrap_or(22);
    Some(Target {
        user: user.unwrap_or_else(|| DEFAULT_USER.to_owned()),
        host,
        port,
    })
}

/// The argument list for ssh.
pub fn ssh_args(target: &Target, known_hosts: &std::path::Path, extra: &[String]) -> Vec<String> {
    let mut args = vec![
        "-p".to_owned(),
        target.port.to_string(),
        "-o".to_owned(),
        "StrictHostKeyChecking=accept-new".to_owned(),
        "-o".to_owned(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
        format!("{}@{}", target.user, target.host),
    ];
    args.extend(extra.iter().cloned());
    args
}

/// Runs `connect`: replaces this process with ssh, so ssh owns the terminal and its exit status
/// is the command's.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    let job = session.call(async |c| c.get_job(&args.id).await).await?;
    if job.status != "active" {
        let hint = match job.status.as_str() {
            "queued" | "preparing" => format!(
                "; wait with `gpu-dev show {}` until it is active",
                job.short_id()
            ),
            _ => String::new(),
        };
        return Err(CliError::Failed(format!(
            "reservation {} is {}, not active{hint}",
            job.short_id(),
            job.status
        )));
    }
    let target = target(&job).ok_or_else(|| {
        CliError::Failed(format!(
            "reservation {} is active but has no SSH address yet; try again in a moment",
            job.short_id()
        ))
    })?;
    let known_hosts = known_hosts_file(ctx, &job)?;
    let program = std::env::var("GPU_DEV_SSH")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "ssh".to_owned());
    let err = std::process::Command::new(&program)
        .args(ssh_args(&target, &known_hosts, &args.ssh_args))
        .exec();
    Err(CliError::Failed(format!("cannot run {program}: {err}")))
}

fn known_hosts_file(ctx: &Ctx, job: &JobDetail) -> Result<PathBuf, CliError> {
    let dir = ctx.paths.state_dir.join("known_hosts");
    let path = dir.join(job.job_id.to_string());
    if !path.exists() {
        files::write_atomic(&path, b"", 0o600)?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(ssh: Option<&str>, ip: Option<&str>, port: Option<i32>) -> JobDetail {
        serde_json::from_value(serde_json::json!({
            "job_id": "0b9f6c1e-5d1a-4c3e-9a53-2f6d1f7c8a90",
            "reservation_id": "0b9f6c1e-5d1a-4c3e-9a53-2f6d1f7c8a90",
            "user_id": "alice", "status": "active", "gpu_type": "t4", "gpu_count": 1,
            "node_count": 1, "duration_hours": 1.0, "extended_hours": 0.0,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "jupyter_enabled": false, "secondary_users": [], "image": "pytorch/pytorch",
            "env_names": [], "priority": 0, "warnings": [], "events": [],
            "ssh_command": ssh, "node_ip": ip, "node_port": port,
        }))
        .unwrap()
    }

    #[test]
    fn the_target_comes_from_the_ssh_command() {
        let t = target(&job(Some("ssh -p 30022 dev@10.0.0.7"), None, None)).unwrap();
        assert_eq!(
            t,
            Target {
                user: "dev".into(),
                host: "10.0.0.7".into(),
                port: 30022
            }
        );
        let t = target(&job(Some("ssh -p2222 root@box"), None, None)).unwrap();
        assert_eq!(
            (t.user.as_str(), t.host.as_str(), t.port),
            ("root", "box", 2222)
        );
    }

    #[test]
    fn without_a_command_the_node_address_is_used() {
        let t = target(&job(None, Some("10.0.0.9"), Some(31000))).unwrap();
        assert_eq!((t.user.as_str(), t.port), (DEFAULT_USER, 31000));
        assert!(target(&job(None, None, None)).is_none());
    }

    #[test]
    fn ssh_gets_the_port_a_private_known_hosts_file_and_the_extra_arguments() {
        let t = Target {
            user: "dev".into(),
            host: "10.0.0.7".into(),
            port: 30022,
        };
        let args = ssh_args(
            &t,
            std::path::Path::new("/h/kh"),
            &["-L".into(), "1:x:1".into()],
        );
        assert_eq!(
            args,
            [
                "-p",
                "30022",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-o",
                "UserKnownHostsFile=/h/kh",
                "dev@10.0.0.7",
                "-L",
                "1:x:1"
            ]
        );
    }
}
