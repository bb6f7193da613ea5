//! Waiting for a reservation to become active: a spinner on a terminal (status, queue position,
//! estimated start), plain lines on standard error otherwise, and Ctrl-C to stop waiting.

use std::time::Duration;

use gpudev_client::{ClientError, JobDetail};
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use crate::context::Ctx;
use crate::error::{CliError, CliResult};
use crate::output;
use crate::session::Session;

/// Time between polls unless `GPU_DEV_POLL_SECONDS` says otherwise.
pub const DEFAULT_POLL: Duration = Duration::from_secs(2);

/// The poll interval: `GPU_DEV_POLL_SECONDS` (0.1–60) or [`DEFAULT_POLL`].
pub fn poll_interval() -> Duration {
    std::env::var("GPU_DEV_POLL_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| (0.1..=60.0).contains(s))
        .map_or(DEFAULT_POLL, Duration::from_secs_f64)
}

/// Where progress goes.
struct Progress {
    bar: Option<ProgressBar>,
    last: String,
}

impl Progress {
    fn new(ctx: &Ctx) -> Self {
        let bar = ctx.term.stderr_tty.then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            last: String::new(),
        }
    }

    fn show(&mut self, line: String) {
        if line == self.last {
            return;
        }
        match &self.bar {
            Some(bar) => bar.set_message(line.clone()),
            None => output::notice(&line),
        }
        self.last = line;
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What the line says about a job.
fn status_line(job: &JobDetail) -> String {
    let mut line = format!("{}: {}", job.short_id(), job.status);
    let mut facts = Vec::new();
    if let Some(p) = job.queue_position {
        facts.push(format!("position {p} in the queue"));
    }
    if let Some(t) = job.estimated_start_time {
        // An absolute time: the line changes only when the estimate does.
        facts.push(format!("estimated start {}", output::time(t)));
    }
    if let Some(d) = &job.detailed_status
        && job.status != "queued"
    {
        facts.push(d.clone());
    }
    if !facts.is_empty() {
        line.push_str(&format!(" ({})", facts.join(", ")));
    }
    line
}

/// Polls the job until it is active; a failed, cancelled or expired job is an error (exit 1)
/// with its failure reason. Ctrl-C stops waiting and says how to follow or cancel the job.
pub async fn until_active(ctx: &Ctx, session: &mut Session<'_>, id: Uuid) -> CliResult<JobDetail> {
    let progress = std::cell::RefCell::new(Progress::new(ctx));
    let short = id.simple().to_string()[..8].to_owned();
    let last_status = std::cell::RefCell::new(String::from("queued"));
    let poll = poll_interval();
    let waiting = async {
        let id = id.to_string();
        loop {
            match session.call(async |c| c.get_job(&id).await).await {
                Ok(job) => {
                    last_status.replace(job.status.clone());
                    progress.borrow_mut().show(status_line(&job));
                    if job.status == "active" {
                        return Ok(job);
                    }
                    if job.is_terminal() {
                        return Err(ended(ctx, &job));
                    }
                }
                Err(CliError::Api(e)) if transient(&e) => {
                    progress.borrow_mut().show(format!(
                        "{short}: the API is not answering ({e}); still trying"
                    ));
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(poll).await;
        }
    };
    let result = tokio::select! {
        r = waiting => r,
        _ = tokio::signal::ctrl_c() => {
            progress.borrow().finish();
            output::notice(&format!(
                "\nStopped waiting. Reservation {short} is still {} and will go on.\n  Follow it:  gpu-dev show {short}\n  Cancel it:  gpu-dev cancel {short}",
                last_status.borrow()
            ));
            return Err(CliError::Interrupted);
        }
    };
    progress.borrow().finish();
    result
}

fn transient(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Unreachable { .. } | ClientError::Timeout { .. }
    ) || matches!(e.status(), Some(429 | 502 | 503 | 504))
}

fn ended(ctx: &Ctx, job: &JobDetail) -> CliError {
    if ctx.json() {
        let _ = output::json(job);
    }
    let why = job
        .failure_reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    CliError::Failed(format!(
        "reservation {} is {}{why}",
        job.short_id(),
        job.status
    ))
}
