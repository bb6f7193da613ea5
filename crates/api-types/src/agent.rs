//! `/v1/agent/report`: what the agent in a dev box reports every minute (ADR 18), and the answer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use gpudev_domain::idle::{REPORT_INTERVAL, SILENT_AFTER};

/// Most GPUs one report may describe.
pub const MAX_GPUS: usize = 64;
/// Most sessions or connections one report may count.
pub const MAX_SESSIONS: u32 = 100_000;
/// Largest uptime a report may claim (ten years, in seconds).
pub const MAX_UPTIME_SECONDS: u64 = 10 * 366 * 24 * 3600;
/// Largest GPU memory figure a report may give, in MiB (16 TiB).
pub const MAX_GPU_MEMORY_MIB: u64 = 16 * 1024 * 1024;

/// One report of the agent in a dev box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentReport {
    /// Open SSH connections to the box.
    pub ssh_sessions: u32,
    /// Browser connections to the box's Jupyter kernels; absent when Jupyter is off or did not
    /// answer.
    #[serde(default)]
    pub jupyter_connections: Option<u32>,
    /// Each GPU's use; absent when the box has no way to read them (no `nvidia-smi`).
    #[serde(default)]
    pub gpus: Option<Vec<GpuSample>>,
    /// Seconds since the box started.
    pub uptime_seconds: u64,
}

/// One GPU's use at the time of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GpuSample {
    /// The GPU's index in the box.
    pub index: u32,
    /// Utilisation, percent (0–100).
    pub utilization_percent: u8,
    /// Memory in use, MiB.
    pub memory_used_mib: u64,
    /// Memory in all, MiB.
    pub memory_total_mib: u64,
}

impl AgentReport {
    /// Checks the figures are ones a box could report; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        if self.ssh_sessions > MAX_SESSIONS {
            return Err(format!("ssh_sessions must be at most {MAX_SESSIONS}"));
        }
        if self.jupyter_connections.is_some_and(|c| c > MAX_SESSIONS) {
            return Err(format!(
                "jupyter_connections must be at most {MAX_SESSIONS}"
            ));
        }
        if self.uptime_seconds > MAX_UPTIME_SECONDS {
            return Err(format!(
                "uptime_seconds must be at most {MAX_UPTIME_SECONDS}"
            ));
        }
        let Some(gpus) = &self.gpus else {
            return Ok(());
        };
        if gpus.len() > MAX_GPUS {
            return Err(format!("gpus must list at most {MAX_GPUS} GPUs"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, g) in gpus.iter().enumerate() {
            if !seen.insert(g.index) {
                return Err(format!("gpus[{i}].index {} appears twice", g.index));
            }
            if g.utilization_percent > 100 {
                return Err(format!("gpus[{i}].utilization_percent must be 0-100"));
            }
            if g.memory_total_mib > MAX_GPU_MEMORY_MIB || g.memory_used_mib > g.memory_total_mib {
                return Err(format!(
                    "gpus[{i}]: memory_used_mib must be at most memory_total_mib, \
                     which must be at most {MAX_GPU_MEMORY_MIB}"
                ));
            }
        }
        Ok(())
    }

    /// Whether the box was in use: a session or connection open, or a GPU at or above
    /// `gpu_percent` utilisation.
    pub fn is_active(&self, gpu_percent: u32) -> bool {
        self.ssh_sessions > 0
            || self.jupyter_connections.unwrap_or(0) > 0
            || self
                .gpus
                .iter()
                .flatten()
                .any(|g| u32::from(g.utilization_percent) >= gpu_percent)
    }
}

/// The answer to a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentReportAnswer {
    /// Whether this report counted as activity.
    pub active: bool,
    /// Since when the box has been idle; absent while it is in use.
    pub idle_since: Option<DateTime<Utc>>,
    /// When the box will be released as idle if nothing happens; absent when it will not.
    pub idle_ends_at: Option<DateTime<Utc>>,
    /// Seconds until the next report is expected.
    pub next_report_seconds: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> AgentReport {
        AgentReport {
            ssh_sessions: 0,
            jupyter_connections: None,
            gpus: Some(vec![GpuSample {
                index: 0,
                utilization_percent: 3,
                memory_used_mib: 10,
                memory_total_mib: 81_559,
            }]),
            uptime_seconds: 60,
        }
    }

    #[test]
    fn activity_is_a_session_or_a_busy_gpu() {
        let r = report();
        assert!(!r.is_active(5));
        assert!(r.is_active(3));
        assert!(
            AgentReport {
                ssh_sessions: 1,
                ..report()
            }
            .is_active(5)
        );
        assert!(
            AgentReport {
                jupyter_connections: Some(2),
                ..report()
            }
            .is_active(5)
        );
        assert!(
            !AgentReport {
                gpus: None,
                ..report()
            }
            .is_active(5)
        );
    }

    #[test]
    fn impossible_figures_are_named() {
        let mut r = report();
        r.gpus.as_mut().unwrap()[0].utilization_percent = 101;
        assert_eq!(
            r.check().unwrap_err(),
            "gpus[0].utilization_percent must be 0-100"
        );
        let mut r = report();
        r.gpus.as_mut().unwrap()[0].memory_used_mib = 90_000;
        assert!(
            r.check()
                .unwrap_err()
                .starts_with("gpus[0]: memory_used_mib")
        );
        let mut r = report();
        let g = r.gpus.as_ref().unwrap()[0].clone();
        r.gpus.as_mut().unwrap().push(g);
        assert_eq!(r.check().unwrap_err(), "gpus[1].index 0 appears twice");
        let r = AgentReport {
            gpus: Some(
                (0..65)
                    .map(|index| GpuSample {
                        index,
                        utilization_percent: 0,
                        memory_used_mib: 0,
                        memory_total_mib: 1,
                    })
                    .collect(),
            ),
            ..report()
        };
        assert_eq!(r.check().unwrap_err(), "gpus must list at most 64 GPUs");
        assert!(report().check().is_ok());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<AgentReport>(
            r#"{"ssh_sessions":0,"uptime_seconds":1,"idle":true}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `idle`"), "{err}");
    }
}
