//! Prometheus metrics, served on their own port.

use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Every metric the API exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The registry they live in.
    pub registry: Registry,
    /// Requests by route pattern, method and status.
    pub requests: IntCounterVec,
    /// Latency by route pattern.
    pub latency: HistogramVec,
    /// Authentication attempts by method and outcome.
    pub auth_attempts: IntCounterVec,
    /// API keys issued by how.
    pub keys_issued: IntCounterVec,
    /// Reservations submitted by GPU type.
    pub reservations_submitted: IntCounterVec,
    /// Requests refused by a rate limit, by limit.
    pub rate_limited: IntCounterVec,
    /// Requests let through unchecked, by limit, because the shared buckets could not be reached.
    pub rate_limit_unchecked: IntCounterVec,
    /// Database pool connections by state.
    pub pool: IntGaugeVec,
    /// Requests that ended in a 5xx.
    pub server_errors: IntCounter,
    /// Job reads answered from the replica's cache (`hit`) or the database (`miss`).
    pub job_cache: IntCounterVec,
    /// Submits written per transaction.
    pub submit_batch_size: Histogram,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("gpudev_api".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route"],
        )?;
        let auth_attempts = IntCounterVec::new(
            Opts::new(
                "auth_attempts_total",
                "Authentication attempts by method and outcome",
            ),
            &["method", "outcome"],
        )?;
        let keys_issued = IntCounterVec::new(
            Opts::new("api_keys_issued_total", "API keys issued, by how"),
            &["method"],
        )?;
        let reservations_submitted = IntCounterVec::new(
            Opts::new(
                "reservations_submitted_total",
                "Reservations accepted, by GPU type",
            ),
            &["gpu_type"],
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new("rate_limited_total", "Requests refused by a rate limit"),
            &["limit"],
        )?;
        let rate_limit_unchecked = IntCounterVec::new(
            Opts::new(
                "rate_limit_unchecked_total",
                "Requests let through without a rate-limit check: the database holding the limits could not be reached",
            ),
            &["limit"],
        )?;
        let pool = IntGaugeVec::new(
            Opts::new("db_pool_connections", "Database pool connections by state"),
            &["state"],
        )?;
        let server_errors =
            IntCounter::new("http_server_errors_total", "Responses with a 5xx status")?;
        let job_cache = IntCounterVec::new(
            Opts::new(
                "job_cache_reads_total",
                "Job pages and details answered from the replica's cache (hit) or the database (miss)",
            ),
            &["outcome"],
        )?;
        let submit_batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "submit_batch_size",
                "Submits written together in one transaction",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(auth_attempts.clone()))?;
        registry.register(Box::new(keys_issued.clone()))?;
        registry.register(Box::new(reservations_submitted.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(rate_limit_unchecked.clone()))?;
        registry.register(Box::new(pool.clone()))?;
        registry.register(Box::new(server_errors.clone()))?;
        registry.register(Box::new(job_cache.clone()))?;
        registry.register(Box::new(submit_batch_size.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            auth_attempts,
            keys_issued,
            reservations_submitted,
            rate_limited,
            rate_limit_unchecked,
            pool,
            server_errors,
            job_cache,
            submit_batch_size,
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
