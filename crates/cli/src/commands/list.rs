//! `gpu-dev list`

use chrono::Utc;
use gpudev_client::{AdminJobQuery, ClientError, JobDetail, JobList, ListQuery};

use crate::context::Ctx;
use crate::error::{CliError, CliResult};
use crate::output::{self, Table};
use crate::session::Session;

/// Statuses shown unless --status says otherwise.
pub const LIVE: &str = "queued,preparing,active";

/// List your reservations, newest first.
///
/// Shows live reservations (queued, preparing, active) unless --status names others; `--status
/// all` shows every one. Admins can list every user's with --all.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Statuses to show, comma-separated (queued, preparing, active, expired, cancelled, failed),
    /// or `all`.
    #[arg(long, short = 's', default_value = LIVE, value_name = "S")]
    pub status: String,
    /// Every user's reservations (admins only).
    #[arg(long, short = 'a')]
    pub all: bool,
    /// Only this user's reservations (with --all).
    #[arg(long, short = 'u', requires = "all", value_name = "USER")]
    pub user: Option<String>,
    /// How many to show (1–500).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=500))]
    pub limit: i64,
}

/// Runs `list`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let status = match args.status.trim() {
        "" | "all" => None,
        s => Some(s.to_owned()),
    };
    let mut session = Session::new(ctx)?;
    let list = if args.all {
        let query = AdminJobQuery {
            user: args.user.clone(),
            status,
            limit: Some(args.limit),
            offset: None,
        };
        session
            .call(async |c| c.admin_list_jobs(&query).await)
            .await
            .map_err(|e| match e {
                CliError::Api(ClientError::Api { status: 404, .. }) => CliError::Failed(
                    "this server cannot list every user's reservations (it has no GET /v1/admin/jobs); `gpu-dev list` without --all shows yours".into(),
                ),
                other => other,
            })?
    } else {
        let query = ListQuery {
            status,
            limit: Some(args.limit),
            offset: None,
        };
        session.call(async |c| c.list_jobs(&query).await).await?
    };
    if ctx.json() {
        return output::json(&list);
    }
    print_table(ctx, &list, args.all);
    Ok(())
}

fn print_table(ctx: &Ctx, list: &JobList, all: bool) {
    if list.jobs.is_empty() {
        output::print("No reservations.");
        return;
    }
    let mut headers = vec!["ID", "NAME", "GPUS", "STATUS", "CREATED", "WHEN"];
    if all {
        headers.insert(1, "USER");
    }
    let mut table = Table::new(&headers);
    for job in &list.jobs {
        let mut row = vec![
            plain(job.short_id()),
            plain(output::or_dash(job.name.as_deref())),
            plain(super::gpus(job)),
            (job.status.clone(), ctx.term.status(&job.status)),
            plain(output::time(job.created_at)),
            plain(when(job)),
        ];
        if all {
            row.insert(1, plain(job.user_id.clone()));
        }
        table.painted_row(row);
    }
    output::print(&table.render(&ctx.term));
    if list.total > list.jobs.len() as i64 {
        output::print(&format!(
            "({} of {}; --limit shows more)",
            list.jobs.len(),
            list.total
        ));
    }
}

fn plain(s: String) -> (String, String) {
    (s.clone(), s)
}

/// What matters about the job's time now: the queue, the end, or when it ended.
fn when(job: &JobDetail) -> String {
    let now = Utc::now();
    match job.status.as_str() {
        "queued" => {
            let mut parts = Vec::new();
            if let Some(p) = job.queue_position {
                parts.push(format!("queue #{p}"));
            }
            if let Some(t) = job.estimated_start_time {
                parts.push(format!("starts ~{}", output::time(t)));
            }
            if parts.is_empty() {
                "waiting".into()
            } else {
                parts.join(", ")
            }
        }
        "active" => {
            let end = job.expires_at.map_or_else(
                || "-".into(),
                |t| format!("ends {}", output::time_rel(t, now)),
            );
            match super::activity(job, now) {
                Some(a) => format!("{end}; {a}"),
                None => end,
            }
        }
        "preparing" => job
            .detailed_status
            .clone()
            .unwrap_or_else(|| "starting".into()),
        _ => job
            .ended_at
            .map_or_else(|| "-".into(), |t| format!("ended {}", output::time(t))),
    }
}
