//! One module per command; each command's doc comment is its `--help`.

use std::io::{BufRead as _, Write as _};

use gpudev_client::JobDetail;

use crate::error::CliError;
use crate::output::Term;

pub mod avail;
pub mod cancel;
pub mod completions;
pub mod config;
pub mod connect;
pub mod console;
pub mod disks;
pub mod extend;
pub mod keep_alive;
pub mod keys;
pub mod list;
pub mod login;
pub mod reserve;
pub mod show;
pub mod ssh_keys;
pub mod status;

/// Asks a yes/no question on the terminal; anything but y/yes is no.
pub(crate) fn confirm(question: &str) -> Result<bool, CliError> {
    let mut err = std::io::stderr().lock();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// `4 × h100`, `cpu-x86`.
pub(crate) fn gpus(job: &JobDetail) -> String {
    if job.gpu_count == 0 {
        job.gpu_type.clone()
    } else {
        format!("{} × {}", job.gpu_count, job.gpu_type)
    }
}

/// The short id, the name when there is one, and the status, for sentences.
pub(crate) fn describe(job: &JobDetail, term: &Term) -> String {
    let name = job
        .name
        .as_deref()
        .map(|n| format!(" \"{n}\""))
        .unwrap_or_default();
    format!(
        "{}{name} ({}, {})",
        job.short_id(),
        gpus(job),
        term.status(&job.status)
    )
}

/// A running box's activity and idle countdown, in a few words (`None` before its agent exists
/// or once it has ended): `in use 3 min ago`, `idle 40 min, released 14:02 unless used`,
/// `agent silent since 13:55`.
pub(crate) fn activity(job: &JobDetail, now: chrono::DateTime<chrono::Utc>) -> Option<String> {
    if job.status != "active" {
        return None;
    }
    let a = job.activity.as_ref()?;
    let Some(last_report) = a.last_report_at else {
        return Some("agent not reporting yet".into());
    };
    if now - last_report
        > chrono::Duration::from_std(gpudev_client::types::agent::SILENT_AFTER).ok()?
    {
        return Some(format!(
            "agent silent since {} (idle detection paused)",
            crate::output::time(last_report)
        ));
    }
    match (a.idle_since, a.idle_ends_at) {
        (Some(since), Some(ends)) => Some(format!(
            "idle {} min, released {} unless used",
            (now - since).num_minutes().max(0),
            crate::output::time_rel(ends, now)
        )),
        (Some(since), None) => Some(format!(
            "idle {} min (never released for it)",
            (now - since).num_minutes().max(0)
        )),
        (None, _) => Some(match a.last_activity_at {
            Some(t) => format!("in use ({})", crate::output::time_rel(t, now)),
            None => "in use".into(),
        }),
    }
}
