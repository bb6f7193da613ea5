//! Shared application state, one per process, handed to handlers as `web::Data<AppState>`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gpudev_store::Pool;

use crate::auth::{AuthFailures, KeyCache, UsageRecorder};
use crate::config::ApiConfig;
use crate::limits::RateLimits;
use crate::metrics::Metrics;

/// What every handler may use.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Settings.
    pub config: Arc<ApiConfig>,
    /// Database pool.
    pub pool: Pool,
    /// Verified-key cache.
    pub keys: Arc<KeyCache>,
    /// Recent job pages and details, per user.
    pub jobs: Arc<crate::job_cache::JobCache>,
    /// Batched `last_used_at` writes.
    pub usage: Arc<UsageRecorder>,
    /// Rate limiters.
    pub limits: Arc<RateLimits>,
    /// Failed authentications per client address.
    pub auth_failures: Arc<AuthFailures>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// STS clients for the AWS logins, built once at start-up.
    pub sts: Arc<crate::routes::auth::sts::Sts>,
    /// The trusted OIDC issuers and their cached keys.
    pub oidc: Arc<crate::oidc::OidcProvider>,
    /// Set on shutdown: readiness fails while in-flight requests finish.
    pub draining: Arc<AtomicBool>,
    /// The queue as the scheduler's last pass left it, for submit answers.
    pub queue: Arc<crate::queue_state::PublishedQueue>,
    /// The live reservations counted per type and status, for the capacity routes and pages.
    pub live_counts: Arc<crate::routes::cluster::LiveCounts>,
    /// Writes submits, several to a transaction.
    pub submits: Arc<crate::submit_writer::SubmitWriter>,
}

impl AppState {
    /// True once shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// A pooled connection, or 503 when the database cannot be reached.
    pub async fn db(&self) -> Result<deadpool_postgres::Object, crate::error::ApiError> {
        self.pool
            .get()
            .await
            .map_err(|e| gpudev_store::StoreError::from(e).into())
    }
}
