//! The agent in a gpudev dev box (ADR 18): what it reads and how it reports.
//!
//! Every minute it reads, without privileges, what goes on in the box — open SSH connections
//! (established TCP connections to the SSH port, from `/proc/net/tcp{,6}`), browser connections
//! to Jupyter's kernels (Jupyter's own API, with the box's Jupyter token), each GPU's
//! utilisation and memory (`nvidia-smi --query-gpu`), and the box's uptime — and posts it to
//! `POST /v1/agent/report` with the reservation's agent token. Whatever cannot be read is
//! reported as unknown (absent), never as idle.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gpudev_api_types::agent::{AgentReport, AgentReportAnswer, GpuSample};

/// Where the agent reads from and reports to.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The API's base URL (`GPUDEV_AGENT_URL`).
    pub api_url: String,
    /// The file holding the agent token (`GPUDEV_AGENT_TOKEN_FILE`); read before every report,
    /// so a rewritten Secret takes effect.
    pub token_file: PathBuf,
    /// Seconds between reports (`GPUDEV_AGENT_INTERVAL_SECONDS`, 60).
    pub interval: Duration,
    /// The `nvidia-smi` to run (`GPUDEV_AGENT_NVIDIA_SMI`, found on `PATH`).
    pub nvidia_smi: PathBuf,
    /// The proc file system (`GPUDEV_AGENT_PROC`, `/proc`).
    pub proc_root: PathBuf,
    /// The SSH server's port in the box (`GPUDEV_AGENT_SSH_PORT`, 22).
    pub ssh_port: u16,
    /// Jupyter's address in the box (`GPUDEV_AGENT_JUPYTER_URL`, `http://127.0.0.1:8888`).
    pub jupyter_url: String,
    /// The file holding the Jupyter token, empty while Jupyter is off
    /// (`GPUDEV_AGENT_JUPYTER_TOKEN_FILE`).
    pub jupyter_token_file: Option<PathBuf>,
}

impl Settings {
    /// The settings from the environment; the error names the variable.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let required = |var: &str| {
            get(var)
                .filter(|v| !v.is_empty())
                .ok_or(format!("{var} is not set"))
        };
        let interval = match get("GPUDEV_AGENT_INTERVAL_SECONDS") {
            None => 60,
            Some(raw) => raw
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=3600).contains(s))
                .ok_or("GPUDEV_AGENT_INTERVAL_SECONDS must be 1-3600")?,
        };
        let ssh_port = match get("GPUDEV_AGENT_SSH_PORT") {
            None => 22,
            Some(raw) => raw
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or("GPUDEV_AGENT_SSH_PORT must be a port number")?,
        };
        Ok(Self {
            api_url: required("GPUDEV_AGENT_URL")?
                .trim_end_matches('/')
                .to_owned(),
            token_file: PathBuf::from(required("GPUDEV_AGENT_TOKEN_FILE")?),
            interval: Duration::from_secs(interval),
            nvidia_smi: PathBuf::from(
                get("GPUDEV_AGENT_NVIDIA_SMI").unwrap_or_else(|| "nvidia-smi".to_owned()),
            ),
            proc_root: PathBuf::from(
                get("GPUDEV_AGENT_PROC").unwrap_or_else(|| "/proc".to_owned()),
            ),
            ssh_port,
            jupyter_url: get("GPUDEV_AGENT_JUPYTER_URL")
                .unwrap_or_else(|| "http://127.0.0.1:8888".to_owned())
                .trim_end_matches('/')
                .to_owned(),
            jupyter_token_file: get("GPUDEV_AGENT_JUPYTER_TOKEN_FILE").map(PathBuf::from),
        })
    }
}

/// How long one reading (`nvidia-smi`, Jupyter) may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Established TCP connections whose local port is `port`, from `/proc/net/tcp` and `tcp6`
/// under `proc_root` (state `01`). A file that cannot be read counts none.
pub fn ssh_sessions(proc_root: &Path, port: u16) -> u32 {
    let local = format!(":{port:04X}");
    ["net/tcp", "net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(proc_root.join(f)).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter(|line| {
                    let mut fields = line.split_whitespace();
                    let local_addr = fields.nth(1).unwrap_or_default();
                    let state = fields.nth(1).unwrap_or_default();
                    state == "01" && local_addr.ends_with(&local)
                })
                .map(|_| 1u32)
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Seconds since the box started (`/proc/uptime`), 0 when unreadable.
pub fn uptime_seconds(proc_root: &Path) -> u64 {
    std::fs::read_to_string(proc_root.join("uptime"))
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0, |s| s.max(0.0) as u64)
}

/// Parses `nvidia-smi --query-gpu=index,utilization.gpu,memory.used,memory.total
/// --format=csv,noheader,nounits`; `None` if any line is not four numbers (a figure of
/// `[N/A]` reads as 0).
pub fn parse_nvidia_smi(text: &str) -> Option<Vec<GpuSample>> {
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.starts_with('[') {
            Some(0)
        } else {
            s.parse().ok()
        }
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let [index, util, used, total] = f.as_slice() else {
                return None;
            };
            Some(GpuSample {
                index: u32::try_from(number(index)?).ok()?,
                utilization_percent: u8::try_from(number(util)?.min(100)).ok()?,
                memory_used_mib: number(used)?,
                memory_total_mib: number(total)?,
            })
        })
        .collect()
}

/// Each GPU's use from `nvidia-smi`; `None` when it is missing, fails or prints what we cannot
/// read.
pub async fn gpus(nvidia_smi: &Path) -> Option<Vec<GpuSample>> {
    let run = tokio::process::Command::new(nvidia_smi)
        .args([
            "--query-gpu=index,utilization.gpu,memory.used,memory.total",
            "--format=csv,noheader,nounits",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(READ_TIMEOUT, run).await.ok()?.ok()?;
    if !out.status.success() {
        return None;
    }
    parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout))
}

/// Browser connections to Jupyter's kernels (the sum of each kernel's `connections`); `None`
/// while Jupyter is off (no token) or does not answer.
pub async fn jupyter_connections(http: &reqwest::Client, settings: &Settings) -> Option<u32> {
    let file = settings.jupyter_token_file.as_ref()?;
    let token = std::fs::read_to_string(file).ok()?;
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    let kernels: serde_json::Value = http
        .get(format!("{}/api/kernels", settings.jupyter_url))
        .header("Authorization", format!("token {token}"))
        .timeout(READ_TIMEOUT)
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .json()
        .await
        .ok()?;
    let total: u64 = kernels
        .as_array()?
        .iter()
        .map(|k| k["connections"].as_u64().unwrap_or(0))
        .sum();
    Some(u32::try_from(total).unwrap_or(u32::MAX))
}

/// One report of what goes on in the box now.
pub async fn collect(http: &reqwest::Client, settings: &Settings) -> AgentReport {
    let (gpus, jupyter) = tokio::join!(
        gpus(&settings.nvidia_smi),
        jupyter_connections(http, settings)
    );
    AgentReport {
        ssh_sessions: ssh_sessions(&settings.proc_root, settings.ssh_port),
        jupyter_connections: jupyter,
        gpus,
        uptime_seconds: uptime_seconds(&settings.proc_root),
    }
}

/// Why a report was not accepted.
#[derive(Debug)]
pub enum ReportError {
    /// The token file could not be read.
    Token(String),
    /// The request failed or the API refused it (status and detail).
    Refused(String),
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(e) => write!(f, "agent token: {e}"),
            Self::Refused(e) => write!(f, "report: {e}"),
        }
    }
}

/// Posts `report` with the token in the token file.
pub async fn send(
    http: &reqwest::Client,
    settings: &Settings,
    report: &AgentReport,
) -> Result<AgentReportAnswer, ReportError> {
    let token = std::fs::read_to_string(&settings.token_file)
        .map_err(|e| ReportError::Token(format!("{}: {e}", settings.token_file.display())))?;
    let resp = http
        .post(format!("{}/v1/agent/report", settings.api_url))
        .bearer_auth(token.trim())
        .json(report)
        .timeout(READ_TIMEOUT)
        .send()
        .await
        .map_err(|e| ReportError::Refused(e.to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        return Err(ReportError::Refused(format!(
            "{status}: {}",
            body["detail"].as_str().unwrap_or("no detail")
        )));
    }
    resp.json()
        .await
        .map_err(|e| ReportError::Refused(format!("unreadable answer: {e}")))
}

/// The HTTP client the agent uses (no redirects: the token goes to the configured API only).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("gpudev-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_smi_lines_read_as_samples_and_anything_else_as_unknown() {
        let gpus = parse_nvidia_smi("0, 87, 40000, 81559\n1, [N/A], 3, 81559\n").unwrap();
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].utilization_percent, 87);
        assert_eq!(gpus[0].memory_used_mib, 40000);
        assert_eq!(gpus[1].utilization_percent, 0);
        assert_eq!(parse_nvidia_smi("No devices were found\n"), None);
        assert_eq!(parse_nvidia_smi(""), Some(Vec::new()));
    }

    #[test]
    fn only_established_connections_to_the_ssh_port_are_sessions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
        std::fs::write(
            dir.path().join("net/tcp"),
            format!(
                "{header}   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n   1: 0A00000B:0016 0A000001:D431 01 00000000:00000000 00:00000000 00000000     0        0 2\n   2: 0A00000B:22B8 0A000001:D432 01 00000000:00000000 00:00000000 00000000     0        0 3\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("net/tcp6"),
            format!(
                "{header}   0: 00000000000000000000000001000000:0016 00000000000000000000000001000000:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("uptime"), "12345.67 999.0\n").unwrap();
        assert_eq!(
            ssh_sessions(dir.path(), 22),
            2,
            "the listener and port 8888 do not count"
        );
        assert_eq!(ssh_sessions(dir.path(), 8888), 1);
        assert_eq!(uptime_seconds(dir.path()), 12345);
        assert_eq!(ssh_sessions(&dir.path().join("missing"), 22), 0);
    }
}
