//! Records of CronJob runs, for alerting on "last success too long ago".

use crate::{Db, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything it tried worked.
    Success,
    /// It stopped on an error.
    Failure,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct Run {
    pub run_id: i64,
    /// Which job (`availability`, `expiry`).
    pub job: String,
    pub started_at: DateTime<Utc>,
    /// End, when finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `success` or `failure`.
    pub outcome: String,
    /// Counts per action.
    pub summary: Value,
    /// Error message of a failed run.
    pub error: Option<String>,
}

/// A run of a job still `running` this long after it started never recorded its end (its process
/// was killed, or lost the database at the end): the next run of the job records it as a failure.
/// Longer than any run's own bounds.
pub const ABANDONED_AFTER_SECS: f64 = 3600.0;

/// Records the start of a run and returns its id. Earlier runs of the job that have been
/// `running` for [`ABANDONED_AFTER_SECS`] are closed as failures ("abandoned") in the same
/// statement, so the history shows how they ended.
pub async fn start(db: &impl Db, job: &str, host: &str) -> Result<i64, StoreError> {
    let row = db
        .query_one(
            "WITH abandoned AS ( \
               UPDATE cronjob_runs SET finished_at = now(), outcome = 'failure', \
                 error = 'abandoned: the run never recorded its end (its process stopped, or \
                          could not reach the database to record it)' \
               WHERE job = $1 AND outcome = 'running' \
                 AND started_at < now() - make_interval(secs => $3)) \
             INSERT INTO cronjob_runs (job, host) VALUES ($1, $2) RETURNING run_id",
            &[&job, &host, &ABANDONED_AFTER_SECS],
        )
        .await?;
    Ok(row.get(0))
}

/// Records the end of a run. Finishing a run twice changes nothing the second time.
pub async fn finish(
    db: &impl Db,
    run_id: i64,
    outcome: Outcome,
    summary: &Value,
    error: Option<&str>,
) -> Result<bool, StoreError> {
    let outcome = match outcome {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
    };
    let n = db
        .execute(
            "UPDATE cronjob_runs SET finished_at = now(), outcome = $2, summary = $3, error = $4 \
             WHERE run_id = $1 AND outcome = 'running'",
            &[&run_id, &outcome, summary, &error],
        )
        .await?;
    Ok(n == 1)
}

/// The latest successful run of a job.
pub async fn last_success(db: &impl Db, job: &str) -> Result<Option<Run>, StoreError> {
    let row = db
        .query_opt(
            "SELECT run_id, job, started_at, finished_at, outcome, summary, error FROM cronjob_runs \
             WHERE job = $1 AND outcome = 'success' ORDER BY finished_at DESC LIMIT 1",
            &[&job],
        )
        .await?;
    Ok(row.map(|r| Run {
        run_id: r.get(0),
        job: r.get(1),
        started_at: r.get(2),
        finished_at: r.get(3),
        outcome: r.get(4),
        summary: r.get(5),
        error: r.get(6),
    }))
}
