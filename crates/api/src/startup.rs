//! Building and running the HTTP servers.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;

use crate::auth::{AuthFailures, KeyCache, UsageRecorder, spawn_usage_flusher};
use crate::changes::{Caches, spawn_change_listener};
use crate::config::ApiConfig;
use crate::job_cache::JobCache;
use crate::limits::RateLimits;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::{extract, middleware, routes};

/// A built, bound, not yet running API.
pub struct Application {
    api: Server,
    metrics: Server,
    api_addr: SocketAddr,
    metrics_addr: SocketAddr,
    state: AppState,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Stops a running [`Application`] the way SIGTERM does: readiness fails, then in-flight requests
/// finish and the servers stop.
#[derive(Clone)]
pub struct ShutdownHandle {
    draining: Arc<AtomicBool>,
    drain: Duration,
    api: ServerHandle,
    metrics: ServerHandle,
}

impl ShutdownHandle {
    /// Drains and stops.
    pub async fn shutdown(&self) {
        self.draining.store(true, Ordering::Release);
        tokio::time::sleep(self.drain).await;
        self.api.stop(true).await;
        self.metrics.stop(true).await;
    }
}

impl Application {
    /// Connects to the database, checks the queue, binds both listeners (port 0 picks a free
    /// port) and prepares the servers.
    pub async fn build(config: ApiConfig) -> anyhow::Result<Self> {
        // Generic plans: every statement the API runs is planned once per connection (see
        // `DbConfig::with_generic_plans` for what that asks of the statements).
        let db_cfg = config
            .db
            .clone()
            .with_application_name("gpudev-api")
            .with_generic_plans();
        let pool = gpudev_store::connect_pool(&db_cfg).await?;
        warm(&pool).await;
        {
            let db = pool.get().await?;
            let exists = config
                .queue
                .exists(&*db)
                .await
                .context("checking the queue (is PGMQ installed? run gpudev-admin migrate)")?;
            if !exists {
                anyhow::bail!(
                    "QUEUE_NAME: queue {:?} does not exist; run `gpudev-admin migrate`",
                    config.queue.name()
                );
            }
        }
        let metrics = Arc::new(Metrics::new().context("registering metrics")?);
        let keys = Arc::new(KeyCache::new(config.key_cache_ttl));
        let jobs = Arc::new(JobCache::new(
            config.job_cache_ttl,
            config.job_cache_max_bytes,
        ));
        let usage = Arc::new(UsageRecorder::default());
        let limits = Arc::new(RateLimits::new(pool.clone(), &config));
        let auth_failures = Arc::new(AuthFailures::new(
            config.auth_failure_limit,
            config.auth_failure_window,
        ));
        let sts = Arc::new(
            routes::auth::sts::Sts::new(&config)
                .await
                .context("building the STS client")?,
        );
        let oidc = Arc::new(
            crate::oidc::OidcProvider::new(
                config.oidc_issuers.clone(),
                config.oidc_timeout,
                config.oidc_jwks_min_refresh,
            )
            .context("building the OIDC client")?,
        );
        let submits = Arc::new(crate::submit_writer::SubmitWriter::new(
            pool.clone(),
            config.queue.clone(),
            metrics.clone(),
            crate::submit_writer::WRITERS,
        ));
        let state = AppState {
            submits,
            config: Arc::new(config),
            pool: pool.clone(),
            keys: keys.clone(),
            jobs: jobs.clone(),
            usage: usage.clone(),
            limits: limits.clone(),
            auth_failures,
            metrics: metrics.clone(),
            sts,
            oidc,
            draining: Arc::new(AtomicBool::new(false)),
            queue: Arc::default(),
            live_counts: Arc::default(),
        };
        let mut tasks = vec![
            spawn_change_listener(db_cfg, Caches { keys, jobs }, state.config.job_cache_poll),
            spawn_usage_flusher(usage, pool.clone(), Duration::from_secs(15)),
        ];
        tasks.push(tokio::spawn(async move {
            // Unused tokens go back every second; full buckets are deleted every minute.
            let mut tick = tokio::time::interval(crate::limits::RETURN_AFTER);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for n in 1u64.. {
                tick.tick().await;
                limits.tick(n % 60 == 0).await;
            }
        }));
        // Addresses that stopped failing are summarised soon after their window is over.
        tasks.push(tokio::spawn({
            let state = state.clone();
            async move {
                let mut tick = tokio::time::interval(state.auth_failures.window() / 4);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    for summary in state.auth_failures.sweep() {
                        crate::auth::audit_summary(&state, &summary).await;
                    }
                }
            }
        }));

        let listener = TcpListener::bind(state.config.bind_addr)
            .with_context(|| format!("BIND_ADDR: cannot listen on {}", state.config.bind_addr))?;
        let api_addr = listener.local_addr()?;
        let app_state = web::Data::new(state.clone());
        let api = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(extract::json_config())
                .app_data(extract::query_config())
                .app_data(extract::path_config())
                .app_data(web::PayloadConfig::new(extract::MAX_BODY))
                .wrap(crate::cors::cors(&app_state.config.cors_allowed_origins))
                .wrap(from_fn(middleware::observe))
                .configure(routes::configure)
        })
        .disable_signals()
        .shutdown_timeout(30)
        .listen(listener)?
        .run();

        let metrics_listener = TcpListener::bind(state.config.metrics_addr).with_context(|| {
            format!(
                "METRICS_ADDR: cannot listen on {}",
                state.config.metrics_addr
            )
        })?;
        let metrics_addr = metrics_listener.local_addr()?;
        let metrics_state = web::Data::new(state.clone());
        let metrics = HttpServer::new(move || {
            App::new()
                .app_data(metrics_state.clone())
                .route("/metrics", web::get().to(render_metrics))
        })
        .workers(1)
        .disable_signals()
        .listen(metrics_listener)?
        .run();

        Ok(Self {
            api,
            metrics,
            api_addr,
            metrics_addr,
            state,
            tasks,
        })
    }

    /// The address the API listens on.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The address `/metrics` is served on.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The shared state (tests use its pool and metrics).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A handle that drains and stops the servers.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            draining: self.state.draining.clone(),
            drain: self.state.config.shutdown_drain,
            api: self.api.handle(),
            metrics: self.metrics.handle(),
        }
    }

    /// Serves until SIGTERM or SIGINT (or a [`ShutdownHandle`]), then drains: readiness fails for
    /// `SHUTDOWN_DRAIN_SECONDS`, in-flight requests finish, pending key use is written.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.shutdown_handle();
        let signals = tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received; draining");
            handle.shutdown().await;
        });
        let (api, metrics) = tokio::join!(self.api, self.metrics);
        signals.abort();
        self.state.usage.flush(&self.state.pool).await;
        for t in self.tasks {
            t.abort();
        }
        api.context("API server")?;
        metrics.context("metrics server")?;
        Ok(())
    }
}

/// Opens the pool's connections before serving, so the first requests do not each wait for a new
/// PostgreSQL backend to start (under load, opening a whole pool at once took long enough for
/// clients to time out). Best effort: a server that allows fewer connections still gets a working
/// API, which opens more on demand as before.
async fn warm(pool: &gpudev_store::Pool) {
    let size = pool.status().max_size;
    let opened = futures::future::join_all((0..size).map(|_| pool.get())).await;
    let failed = opened.iter().filter(|c| c.is_err()).count();
    if let Some(Err(e)) = opened.iter().find(|c| c.is_err()) {
        tracing::warn!(error = %e, failed, size, "could not open every pooled database connection at start-up");
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn render_metrics(state: web::Data<AppState>) -> HttpResponse {
    let status = state.pool.status();
    let m = &state.metrics;
    m.pool.with_label_values(&["size"]).set(status.size as i64);
    m.pool
        .with_label_values(&["available"])
        .set(status.available as i64);
    m.pool
        .with_label_values(&["waiting"])
        .set(status.waiting as i64);
    m.pool
        .with_label_values(&["max"])
        .set(status.max_size as i64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(m.render())
}
