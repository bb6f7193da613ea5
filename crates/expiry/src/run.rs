//! One run of the job: every step in order, a summary, and the run record.

use std::time::Instant;

use gpudev_cluster::ops::OpsError;
use gpudev_store::cronjob_runs::{self, Outcome};
use gpudev_store::{Pool, StoreError};
use serde::Serialize;

use crate::Config;
use crate::k8s::WaitError;
use crate::notify::PodNotifier;
use crate::webhook::{Webhook, WebhookError};

/// The job name in `cronjob_runs`.
pub const JOB: &str = "expiry";
/// The actor recorded in reservation events.
pub const ACTOR: &str = "expiry";

/// Counts per action of one run, and the errors it met.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// `queued` too long → `cancelled`.
    pub queued_cancelled: u64,
    /// `preparing` too long → `failed`.
    pub preparing_failed: u64,
    /// Groups of the original client's nodes that did not all arrive in time → `failed`.
    pub groups_failed: u64,
    /// Past `expires_at` + grace → `expired`.
    pub expired: u64,
    /// Pod missing too long → `expired` ("pod disappeared").
    pub pod_disappeared: u64,
    /// Active reservations newly found without their Pod.
    pub pods_missing: u64,
    /// Missing Pods seen again.
    pub pods_found_again: u64,
    /// Dev box objects deleted while ending reservations: the Pods of expired ones (their
    /// Services and Secrets go with them), and every object of failed ones.
    pub objects_deleted: u64,
    /// VolumeSnapshots taken of disks.
    pub snapshots_created: u64,
    /// Disks released from ended reservations.
    pub disks_released: u64,
    /// Warnings sent (one per reservation and level).
    pub warnings: u64,
    /// Idle warnings sent (one per idle stretch).
    pub idle_warnings: u64,
    /// Idle dev boxes released → `expired` ("idle").
    pub idle_released: u64,
    /// Active reservations whose agent is silent now.
    pub agents_silent: u64,
    /// Of those, newly noted (an event each).
    pub agents_silent_noted: u64,
    /// Agent reports older than the history kept, deleted.
    pub activity_reports_purged: u64,
    /// Notices delivered into Pods.
    pub notices_delivered: u64,
    /// Notices that could not be delivered into a Pod.
    pub notice_failures: u64,
    /// Warnings posted to the webhook.
    pub webhooks_posted: u64,
    /// Webhook posts that failed.
    pub webhook_failures: u64,
    /// Pods with no live reservation deleted.
    pub orphan_pods_deleted: u64,
    /// Services with no live reservation deleted.
    pub orphan_services_deleted: u64,
    /// Secrets with no live reservation deleted.
    pub orphan_secrets_deleted: u64,
    /// Pending snapshots found ready.
    pub snapshots_ready: u64,
    /// Pending snapshots found failed or gone.
    pub snapshots_failed: u64,
    /// Snapshots beyond the newest N per disk (or failed) deleted.
    pub old_snapshots_deleted: u64,
    /// Soft-deleted disks removed for good.
    pub disks_purged: u64,
    /// Items another run was handling at the same time (left to it).
    pub skipped_busy: u64,
    /// What went wrong (the run carried on with the next item, unless the database stopped
    /// answering).
    pub errors: Vec<String>,
    /// Set once an error said the database does not answer.
    #[serde(skip)]
    database_unavailable: bool,
}

impl Summary {
    /// `queued_cancelled=0 preparing_failed=1 …` — one line for the log.
    pub fn line(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut parts = Vec::new();
        if let Some(map) = value.as_object() {
            for (k, v) in map {
                if let Some(n) = v.as_u64() {
                    parts.push(format!("{k}={n}"));
                }
            }
        }
        parts.push(format!("errors={}", self.errors.len()));
        parts.join(" ")
    }

    pub(crate) fn error(&mut self, what: &str, e: impl Failure) {
        tracing::warn!(error = %e, "{what} failed");
        self.errors.push(format!("{what}: {e}"));
        self.database_unavailable |= e.is_database_outage();
    }

    /// True once an error said the database does not answer (down, or silent past the
    /// statement bound). The run then stops: every further item and step would wait out the
    /// same bound again, for nothing.
    pub fn database_unavailable(&self) -> bool {
        self.database_unavailable
    }
}

/// An error a run records: whether it means the database does not answer.
pub(crate) trait Failure: std::fmt::Display {
    /// True when the database could not be reached or stopped answering.
    fn is_database_outage(&self) -> bool {
        false
    }
}

impl Failure for StepError {
    fn is_database_outage(&self) -> bool {
        matches!(self, StepError::Db(e) if e.is_unavailable())
    }
}

impl Failure for OpsError {}

/// A failure of one step or item.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] StoreError),
    /// The Kubernetes API failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] OpsError),
    /// Deleted Pods did not go in time.
    #[error("{0}")]
    Wait(#[from] WaitError),
    /// A stored value does not parse.
    #[error("{0}")]
    Corrupt(String),
}

impl From<tokio_postgres::Error> for StepError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(StoreError::from(e))
    }
}

impl From<deadpool_postgres::PoolError> for StepError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Db(StoreError::from(e))
    }
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The run's id in `cronjob_runs`.
    pub run_id: i64,
    /// What it did.
    pub summary: Summary,
}

impl Report {
    /// True when every step and item succeeded.
    pub fn succeeded(&self) -> bool {
        self.summary.errors.is_empty()
    }
}

/// The job: its settings, database, cluster and ways to reach users.
pub struct Expiry<N> {
    pub(crate) pool: Pool,
    pub(crate) kube: kube::Client,
    pub(crate) cfg: Config,
    pub(crate) notifier: N,
    pub(crate) webhook: Option<Webhook>,
}

impl<N: PodNotifier> Expiry<N> {
    /// Builds the job. Fails only when the webhook client cannot be built.
    pub fn new(
        pool: Pool,
        kube: kube::Client,
        cfg: Config,
        notifier: N,
    ) -> Result<Self, WebhookError> {
        let webhook = match &cfg.webhook_url {
            Some(url) => Some(Webhook::new(url.clone(), cfg.webhook_timeout)?),
            None => None,
        };
        Ok(Self {
            pool,
            kube,
            cfg,
            notifier,
            webhook,
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Runs every step once, in order: stale queued and preparing reservations, expiry, missing
    /// Pods, warnings, orphans, snapshot bookkeeping and disk purges. A failing step or item is
    /// recorded in the summary and the run goes on; the run's record says `failure` when
    /// anything failed. When the database stops answering the run stops at once instead (each
    /// further item and step would wait out the statement bound again), so a run against a hung
    /// database ends after about two bounds: one for the statement that found it, one for the
    /// attempt to record the run. `Err` only when the run could not be started or recorded.
    #[tracing::instrument(skip_all, fields(job = JOB))]
    pub async fn run_once(&self) -> Result<Report, StoreError> {
        let started = Instant::now();
        let run_id = {
            let db = self.pool.get().await?;
            cronjob_runs::start(&**db, JOB, &self.cfg.host).await?
        };
        let mut s = Summary::default();
        // Each step runs unless the database stopped answering in an earlier one.
        if !s.database_unavailable()
            && let Err(e) = self.cancel_stale_queued(&mut s).await
        {
            s.error("stale queued reservations", e);
        }
        if !s.database_unavailable()
            && let Err(e) = self.fail_incomplete_groups(&mut s).await
        {
            s.error("incomplete groups", e);
        }
        if !s.database_unavailable()
            && let Err(e) = self.fail_stale_preparing(&mut s).await
        {
            s.error("stale preparing reservations", e);
        }
        if !s.database_unavailable()
            && let Err(e) = self.expire_due(&mut s).await
        {
            s.error("expiry", e);
        }
        if !s.database_unavailable()
            && let Err(e) = self.check_missing_pods(&mut s).await
        {
            s.error("missing pods", e);
        }
        if !s.database_unavailable()
            && let Err(e) = self.send_warnings(&mut s).await
        {
            s.error("warnings", e);
        }
        if !s.database_unavailable()
            && let Err(e) = self.handle_idle(&mut s).await
        {
            s.error("idle dev boxes", e);
        }
        if !s.database_unavailable()
            && let Err(e) = self.delete_orphans(&mut s).await
        {
            s.error("orphans", e);
        }
        if !s.database_unavailable()
            && let Err(e) = self.sync_snapshots(&mut s).await
        {
            s.error("snapshot status", e);
        }
        if !s.database_unavailable()
            && let Err(e) = self.delete_surplus_snapshots(&mut s).await
        {
            s.error("old snapshots", e);
        }
        if !s.database_unavailable()
            && let Err(e) = self.purge_deleted_disks(&mut s).await
        {
            s.error("disk purge", e);
        }
        if s.database_unavailable() {
            s.errors.push(
                "the run stopped early: the database does not answer; the next run does the rest"
                    .to_owned(),
            );
        }
        let outcome = if s.errors.is_empty() {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        let mut record = serde_json::to_value(&s).unwrap_or_default();
        record["elapsed_ms"] =
            serde_json::json!(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        let error = (!s.errors.is_empty()).then(|| s.errors.join("; "));
        let recorded = async {
            let db = self.pool.get().await?;
            cronjob_runs::finish(&**db, run_id, outcome, &record, error.as_deref()).await
        };
        if let Err(e) = recorded.await {
            tracing::warn!(run_id, summary = %s.line(), errors = ?s.errors, "expiry run finished but could not be recorded");
            return Err(e);
        }
        tracing::info!(run_id, summary = %s.line(), "expiry run finished");
        Ok(Report { run_id, summary: s })
    }
}
