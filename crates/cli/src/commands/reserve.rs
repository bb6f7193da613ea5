//! `gpu-dev reserve`

use std::collections::BTreeMap;

use chrono::Utc;
use gpudev_client::{JobDetail, JobSubmission, JobSubmitResponse};
use uuid::Uuid;

use crate::context::Ctx;
use crate::error::{CliError, CliResult};
use crate::output;
use crate::session::Session;
use crate::wait;

/// Reserve a GPU dev box.
///
/// Submits the reservation and waits, with a live line showing its status, queue position and
/// estimated start, until the dev box is ready; then prints the SSH command. Ctrl-C stops waiting
/// but not the reservation (`gpu-dev cancel ID` cancels it). With --no-wait it prints the
/// reservation id and returns at once.
///
/// With --start-at it books the reservation for that time instead: it starts then, not before,
/// and the command returns once the booking is accepted. A booking the cluster cannot honour is
/// refused with the earliest start that could be booked (`gpu-dev avail --at TIME` shows what
/// could be booked then).
///
/// Example: gpu-dev reserve --gpu-type h100 --gpus 4 --hours 2.5 --env WANDB_MODE=offline
/// Example: gpu-dev reserve --gpu-type h100 --gpus 8 --hours 3 --start-at "2026-12-08 09:00"
#[derive(Debug, clap::Args)]
pub struct Args {
    /// GPU type: h100, h200, b200, a100, a10g, l4, t4, t4-small, cpu-x86, cpu-arm, … (`gpu-dev
    /// avail` lists them; the original names cpu-small and cpu-large ask for cpu-x86).
    #[arg(long, short = 't', value_name = "TYPE")]
    pub gpu_type: String,
    /// Number of GPUs. More than one node holds needs --distributed.
    #[arg(long, short = 'g', default_value_t = 1, value_name = "N")]
    pub gpus: u32,
    /// How long, in hours; fractions allowed (0.5 is 30 minutes).
    #[arg(long, short = 'H', default_value = "1", value_parser = parse_hours, value_name = "H")]
    pub hours: f64,
    /// Container image (default: the server's).
    #[arg(long, short = 'i', value_name = "IMAGE")]
    pub image: Option<String>,
    /// Persistent disk to mount as your home directory (`none`: no disk).
    #[arg(long, value_name = "NAME")]
    pub disk: Option<String>,
    /// Environment variable for the dev box, as K=V; repeat for more. Values are sent once and
    /// never shown again.
    #[arg(long = "env", short = 'e', value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// A name for the reservation.
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// Start Jupyter Lab in the dev box.
    #[arg(long)]
    pub jupyter: bool,
    /// GitHub login whose public SSH keys are installed (default: the `github_user` setting).
    #[arg(long, value_name = "LOGIN")]
    pub github_user: Option<String>,
    /// Allow the reservation to span several whole nodes (needed when it asks for more GPUs than
    /// one node has).
    #[arg(long, short = 'd')]
    pub distributed: bool,
    /// Book it to start at this time: local time as "2026-12-08 09:00", or RFC 3339
    /// (2026-12-08T09:00:00+01:00). Implies --no-wait.
    #[arg(long, value_name = "TIME", value_parser = crate::when::parse_time)]
    pub start_at: Option<chrono::DateTime<Utc>>,
    /// Do not wait: print the reservation id and return.
    #[arg(long)]
    pub no_wait: bool,
}

fn parse_hours(raw: &str) -> Result<f64, String> {
    let h: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a number of hours"))?;
    if !h.is_finite() || h <= 0.0 {
        return Err("hours must be more than 0".into());
    }
    Ok(h)
}

fn parse_env(raw: &str) -> Result<(String, String), String> {
    let (k, v) = raw
        .split_once('=')
        .ok_or_else(|| format!("{raw:?} is not K=V"))?;
    let k = k.trim();
    let valid = !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "{k:?} is not a variable name (letters, digits and _, not starting with a digit)"
        ));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Runs `reserve`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    if args.gpus > 1 && !args.distributed {
        check_fits_one_node(&mut session, &args).await?;
    }
    let mut env = BTreeMap::new();
    for (k, v) in &args.env {
        env.insert(k.clone(), v.clone());
    }
    let job = JobSubmission {
        gpu_type: Some(args.gpu_type.trim().to_ascii_lowercase()),
        gpu_count: Some(args.gpus),
        duration_hours: Some(args.hours),
        image: args.image.clone(),
        disk_name: args.disk.clone().filter(|d| d != "none"),
        env_vars: env,
        name: args.name.clone(),
        github_user: args
            .github_user
            .clone()
            .or_else(|| ctx.config.github_user.clone()),
        jupyter_enabled: args.jupyter.then_some(true),
        start_at: args
            .start_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ..JobSubmission::default()
    };
    // One key per invocation: if the call is retried after a re-login, the server returns the
    // same reservation instead of making a second one.
    let idempotency_key = Uuid::new_v4().to_string();
    let submitted = session
        .call(async |c| c.submit_job(&job, Some(&idempotency_key)).await)
        .await
        .map_err(|e| booking_refused(e, &args))?;
    if let Some(at) = args.start_at {
        return print_booked(ctx, &submitted, at);
    }
    if args.no_wait {
        return print_submitted(ctx, &submitted);
    }
    if !ctx.json() {
        output::notice(&format!(
            "Reservation {} submitted; waiting for it to start (Ctrl-C stops waiting, not the reservation).",
            submitted.job_id
        ));
    }
    let job = wait::until_active(ctx, &mut session, submitted.job_id).await?;
    print_active(ctx, &job)
}

/// Refuses (exit 2) a request that needs several nodes without --distributed, when the server
/// says how many GPUs one node of the type has.
async fn check_fits_one_node(session: &mut Session<'_>, args: &Args) -> CliResult {
    let avail = session.call(async |c| c.availability().await).await?;
    let gpu_type = args.gpu_type.trim().to_ascii_lowercase();
    if let Some(a) = avail.availability.get(&gpu_type)
        && a.max_per_node > 0
        && i64::from(args.gpus) > a.max_per_node
    {
        let nodes = (i64::from(args.gpus) + a.max_per_node - 1) / a.max_per_node;
        return Err(CliError::Usage(format!(
            "{} {gpu_type} GPUs is more than one node has ({}); add --distributed to span {nodes} nodes",
            args.gpus, a.max_per_node
        )));
    }
    Ok(())
}

fn print_submitted(ctx: &Ctx, s: &JobSubmitResponse) -> CliResult {
    if ctx.json() {
        return output::json(s);
    }
    let mut line = format!("Reservation {} is {}", s.job_id, ctx.term.status(&s.status));
    if let Some(p) = s.queue_position {
        line.push_str(&format!(", position {p} in the queue"));
    }
    if let Some(t) = s.estimated_start_time {
        line.push_str(&format!(
            ", estimated start {}",
            output::time_rel(t, Utc::now())
        ));
    }
    line.push('.');
    output::print(&line);
    let short = &s.job_id.simple().to_string()[..8];
    output::print(&format!(
        "Follow it with `gpu-dev show {short}`; cancel it with `gpu-dev cancel {short}`."
    ));
    Ok(())
}

/// A refused booking with the start the server offers, in the local zone, and the command that
/// books it.
fn booking_refused(e: CliError, args: &Args) -> CliError {
    match e {
        CliError::Api(gpudev_client::ClientError::Api {
            code: gpudev_client::ErrorCode::BookingUnavailable,
            detail,
            earliest_start,
            ..
        }) if args.start_at.is_some() => {
            let offer = match earliest_start {
                Some(t) => format!(
                    "; the earliest start you can book is {}: gpu-dev reserve --gpu-type {} \
                     --gpus {} --hours {} --start-at \"{}\"",
                    output::time_rel(t, Utc::now()),
                    args.gpu_type,
                    args.gpus,
                    output::hours(args.hours),
                    output::time(t)
                ),
                None => String::new(),
            };
            CliError::Failed(format!("{detail}{offer}"))
        }
        other => other,
    }
}

fn print_booked(ctx: &Ctx, s: &JobSubmitResponse, at: chrono::DateTime<Utc>) -> CliResult {
    if ctx.json() {
        return output::json(s);
    }
    output::print(&format!(
        "Reservation {} is booked to start {}.",
        s.job_id,
        output::time_rel(at, Utc::now())
    ));
    let short = &s.job_id.simple().to_string()[..8];
    output::print(&format!(
        "It starts then, not before; follow it with `gpu-dev show {short}`; cancel it (freeing \
         its time at once) with `gpu-dev cancel {short}`."
    ));
    Ok(())
}

fn print_active(ctx: &Ctx, job: &JobDetail) -> CliResult {
    if ctx.json() {
        return output::json(job);
    }
    let until = job
        .expires_at
        .map(|t| format!(" until {}", output::time_rel(t, Utc::now())))
        .unwrap_or_default();
    output::print(&format!(
        "Reservation {} is {}: {}{until}.",
        job.short_id(),
        ctx.term.status(&job.status),
        super::gpus(job)
    ));
    if let Some(ssh) = &job.ssh_command {
        output::print(&format!("Connect:  {}", ctx.term.bold(ssh)));
        output::print(&format!("      or  gpu-dev connect {}", job.short_id()));
    }
    if let Some(url) = &job.jupyter_url {
        output::print(&format!("Jupyter:  {url}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_pairs_and_hours_are_checked() {
        assert_eq!(
            parse_env("A_1=x=y").unwrap(),
            ("A_1".to_owned(), "x=y".to_owned())
        );
        assert_eq!(parse_env("EMPTY=").unwrap().1, "");
        assert!(parse_env("novalue").is_err());
        assert!(parse_env("1A=x").is_err());
        assert!(parse_env("A-B=x").is_err());
        assert_eq!(parse_hours("1.5").unwrap(), 1.5);
        assert!(parse_hours("0").is_err());
        assert!(parse_hours("-1").is_err());
        assert!(parse_hours("NaN").is_err());
        assert!(parse_hours("two").is_err());
    }
}
