//! `gpu-dev show`

use chrono::Utc;
use gpudev_client::JobDetail;

use crate::context::Ctx;
use crate::error::CliResult;
use crate::output::{self, Table};
use crate::session::Session;

/// Show one reservation in full: status, connection, failure reason, warnings and its history.
///
/// ID is the reservation id or a unique prefix of at least 8 characters (as `list` shows it).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reservation id or unique prefix (8+ characters).
    pub id: String,
}

/// Runs `show`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    let job = session.call(async |c| c.get_job(&args.id).await).await?;
    if ctx.json() {
        return output::json(&job);
    }
    output::print(&render(ctx, &job));
    Ok(())
}

fn render(ctx: &Ctx, job: &JobDetail) -> String {
    let now = Utc::now();
    let term = &ctx.term;
    let mut fields: Vec<(&str, String)> = vec![("Reservation", job.job_id.to_string())];
    if let Some(n) = &job.name {
        fields.push(("Name", n.clone()));
    }
    let mut status = term.status(&job.status);
    if let Some(d) = &job.detailed_status
        && d != &job.status
    {
        status.push_str(&format!(" ({d})"));
    }
    fields.push(("Status", status));
    fields.push(("Owner", job.user_id.clone()));
    let mut gpus = super::gpus(job);
    if job.node_count > 1 {
        gpus.push_str(&format!(" on {} nodes", job.node_count));
    }
    if let Some(t) = &job.instance_type {
        gpus.push_str(&format!(" ({t})"));
    }
    fields.push(("GPUs", gpus));
    let mut hours = output::hours(job.duration_hours);
    if job.extended_hours > 0.0 {
        hours.push_str(&format!(
            " + {} extended",
            output::hours(job.extended_hours)
        ));
    }
    fields.push(("Hours", hours));
    fields.push(("Image", job.image.clone()));
    fields.push(("Created", output::time_rel(job.created_at, now)));
    if let Some(t) = job.start_at {
        fields.push(("Booked for", output::time_rel(t, now)));
    }
    if job.status == "queued" {
        let mut q = Vec::new();
        if let Some(p) = job.queue_position {
            q.push(format!("position {p}"));
        }
        if let Some(t) = job.estimated_start_time {
            let what = if job.start_promised {
                "promised start"
            } else {
                "estimated start"
            };
            q.push(format!("{what} {}", output::time_rel(t, now)));
        }
        if let Some(ready) = job.estimated_ready_time {
            q.push(format!("ready about {}", output::time_rel(ready, now)));
        }
        if let Some(first) = job.first_estimated_start_time
            && Some(first) != job.estimated_start_time
        {
            q.push(format!("first estimate {}", output::time_rel(first, now)));
        }
        if !q.is_empty() {
            fields.push(("Queue", q.join(", ")));
        }
        if let Some(note) = &job.estimate_note {
            fields.push(("Estimate", note.clone()));
        }
    }
    if let Some(t) = job.launched_at {
        fields.push(("Started", output::time_rel(t, now)));
    }
    if let Some(t) = job.expires_at {
        let label = if job.is_terminal() {
            "Was to end"
        } else {
            "Expires"
        };
        fields.push((label, output::time_rel(t, now)));
    }
    if let Some(t) = job.ended_at {
        fields.push(("Ended", output::time_rel(t, now)));
    }
    if let Some(activity) = super::activity(job, now) {
        let keep = job
            .activity
            .as_ref()
            .is_some_and(|a| a.idle_ends_at.is_some());
        fields.push((
            "Activity",
            if keep {
                format!("{activity} (gpu-dev keep-alive {})", job.short_id())
            } else {
                activity
            },
        ));
    }
    if let Some(r) = &job.failure_reason {
        fields.push(("Reason", r.clone()));
    }
    if let Some(s) = &job.ssh_command {
        fields.push(("SSH", term.bold(s)));
    }
    if job.jupyter_enabled {
        fields.push((
            "Jupyter",
            job.jupyter_url
                .clone()
                .unwrap_or_else(|| "requested".into()),
        ));
    }
    if let Some(d) = &job.disk_name {
        fields.push(("Disk", d.clone()));
    }
    if let Some(g) = &job.github_user {
        fields.push(("GitHub user", g.clone()));
    }
    if !job.secondary_users.is_empty() {
        fields.push(("Shared with", job.secondary_users.join(", ")));
    }
    if !job.env_names.is_empty() {
        fields.push(("Environment", job.env_names.join(", ")));
    }
    if job.priority != 0 {
        fields.push(("Priority", job.priority.to_string()));
    }
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out: Vec<String> = fields
        .into_iter()
        .map(|(k, v)| format!("{k:<width$}  {v}"))
        .collect();
    if !job.warnings.is_empty() {
        out.push(String::new());
        out.push(term.bold("Warnings"));
        for w in &job.warnings {
            out.push(format!("  {}  {}", output::time(w.created_at), w.message));
        }
    }
    if !job.events.is_empty() {
        out.push(String::new());
        out.push(term.bold("History"));
        let mut table = Table::new(&["  TIME", "EVENT", "BY", "DETAIL"]);
        for e in &job.events {
            let what = match (&e.from_status, &e.to_status) {
                (Some(f), Some(t)) => format!("{f} → {t}"),
                (None, Some(t)) => format!("→ {t}"),
                _ => e.kind.clone(),
            };
            table.row(vec![
                format!(
                    "  {}",
                    e.created_at
                        .with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S")
                ),
                what,
                e.actor.clone(),
                e.reason.clone().unwrap_or_default(),
            ]);
        }
        out.push(table.render(&ctx.term));
    }
    out.join("\n")
}
