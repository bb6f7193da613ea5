//! `gpu-dev extend`

use chrono::Utc;
use uuid::Uuid;

use crate::context::Ctx;
use crate::error::CliResult;
use crate::output;
use crate::session::Session;

/// Extend a reservation.
///
/// Adds hours (fractions allowed): an active reservation's end moves at once and expiry warnings
/// are sent again before the new end; a queued or preparing one runs that much longer once it
/// starts. The server caps a reservation's whole lifetime.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reservation id or unique prefix (8+ characters).
    pub id: String,
    /// Hours to add, e.g. 1.5.
    #[arg(long, short = 'H', value_name = "H", value_parser = parse_hours)]
    pub hours: f64,
}

fn parse_hours(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(h) if h.is_finite() && h > 0.0 => Ok(h),
        Ok(_) => Err("hours must be more than 0".into()),
        Err(_) => Err(format!("{raw:?} is not a number of hours")),
    }
}

/// Runs `extend`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let mut session = Session::new(ctx)?;
    // One key per invocation: a retry of the call (after a re-login, say) extends once.
    let idempotency_key = Uuid::new_v4().to_string();
    let answer = session
        .call(async |c| {
            c.extend_job(&args.id, args.hours, Some(&idempotency_key))
                .await
        })
        .await?;
    if ctx.json() {
        return output::json(&answer);
    }
    let short = &answer.job_id.simple().to_string()[..8];
    match answer.expires_at {
        Some(t) => output::print(&format!(
            "Extended {short} by {} h; it now ends {}.",
            output::hours(args.hours),
            output::time_rel(t, Utc::now())
        )),
        None => output::print(&answer.message),
    }
    Ok(())
}
