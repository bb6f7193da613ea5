//! The long-running loop: stand by until the leader lock is won, then lead — watch the cluster
//! ([`crate::view`]), reconcile and schedule every `SCHEDULER_INTERVAL_SECONDS`, consume the queue in between —
//! until leadership is lost (back to standing by) or a shutdown is asked for.
//!
//! Shutdown (SIGTERM) stops reading the queue: the step in progress (at most one long poll and
//! its batch) finishes, then the lock is released so a standby takes over at once.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::ProcessorConfig;
use crate::error::{ProcessorError, Result};
use crate::metrics::MetricsServer;
use crate::processor::Processor;

/// Pause after a failed step before the next one.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

impl Processor {
    /// Runs until `shutdown` completes (see the module docs).
    pub async fn run_until_stopped(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let (stop_tx, mut stop) = watch::channel(false);
        let signal = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let retry = self.inner.config.leader_retry;
        while !*stop.borrow() {
            match self.try_become_leader().await {
                Ok(true) => self.lead(&stop).await,
                Ok(false) => {}
                Err(e) => {
                    self.inner.metrics.step_failed("leadership");
                    tracing::warn!(error = %e, "could not try for leadership");
                }
            }
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = stop.changed() => {}
            }
        }
        self.step_down();
        signal.abort();
        tracing::info!("processor stopped");
        Ok(())
    }

    /// One term as leader.
    async fn lead(&self, stop: &watch::Receiver<bool>) {
        self.start_cluster_view();
        let interval = self.inner.config.scheduler_interval;
        let mut next_tick = Instant::now();
        while !*stop.borrow() && self.is_leader() {
            if Instant::now() >= next_tick {
                if let Err(e) = self.tick().await {
                    if e.is_leadership() {
                        break;
                    }
                    self.inner.metrics.step_failed("periodic");
                    tracing::warn!(error = %e, "periodic reconciliation or pass failed");
                }
                next_tick = Instant::now() + interval;
            }
            match self.process_once().await {
                Ok(outcome) if outcome.received == 0 && self.inner.config.poll.as_secs() == 0 => {
                    // No long poll below a second: wait here instead, without spinning.
                    let pause = self.inner.config.poll.max(Duration::from_millis(100));
                    let mut stop = stop.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.changed() => {}
                    }
                }
                Ok(_) => {}
                Err(e) if e.is_leadership() => break,
                Err(e) => {
                    self.inner.metrics.step_failed("queue");
                    tracing::warn!(error = %e, "queue step failed");
                    let mut stop = stop.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(ERROR_BACKOFF) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
        self.step_down();
    }

    /// The periodic work: reconcile, schedule, apply the extensions that are due, and refresh
    /// the queue gauges.
    pub async fn tick(&self) -> Result<()> {
        let started = Instant::now();
        let reconciled = self.reconcile().await;
        let reconcile_time = started.elapsed();
        let passed = self.scheduler_pass().await;
        let extended = self.apply_due_extensions().await;
        tracing::debug!(
            reconcile_ms = reconcile_time.as_millis() as u64,
            pass_ms = (started.elapsed() - reconcile_time).as_millis() as u64,
            "periodic work done"
        );
        if let Ok(db) = self.db().await
            && let Ok(m) = self.inner.config.queue.metrics(&**db).await
        {
            self.inner.metrics.queue_depth.set(m.queue_length);
            self.inner
                .metrics
                .queue_oldest_age
                .set(i64::from(m.oldest_msg_age_sec.unwrap_or(0)));
        }
        if let Ok(db) = self.db().await
            && let Ok(silent) = gpudev_store::activity::count_silent(
                &**db,
                gpudev_domain::idle::SILENT_AFTER.as_secs_f64(),
            )
            .await
        {
            self.inner.metrics.agents_silent.set(silent);
        }
        reconciled?;
        passed?;
        extended?;
        Ok(())
    }
}

/// A Kubernetes client: from the kubeconfig at `path` when given, else as
/// `kube::Client::try_default` finds one (in-cluster service account, or `KUBECONFIG`).
pub async fn kube_client(path: Option<&Path>) -> Result<kube::Client> {
    // With several rustls backends linked in, a client built without a process-wide provider
    // panics; the binary installs one at start, and so does this library entry point.
    gpudev_runtime::install_crypto_provider();
    let infer = |e: kube::Error| ProcessorError::Permanent(format!("Kubernetes client: {e}"));
    match path {
        None => kube::Client::try_default().await.map_err(infer),
        Some(path) => {
            let config = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                ProcessorError::Permanent(format!("kubeconfig {}: {e}", path.display()))
            })?;
            let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
                .await
                .map_err(|e| {
                    ProcessorError::Permanent(format!("kubeconfig {}: {e}", path.display()))
                })?;
            kube::Client::try_from(config).map_err(infer)
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A processor with its metrics listener, ready to run: what the binary (and a local run) starts.
#[derive(Debug)]
pub struct Application {
    processor: Processor,
    metrics: MetricsServer,
}

impl Application {
    /// Connects to the database and binds the metrics listener (port 0 picks a free port).
    pub async fn build(config: ProcessorConfig, kube: kube::Client) -> Result<Self> {
        let metrics_addr = config.metrics_addr;
        let processor = Processor::build(config, kube).await?;
        let metrics = MetricsServer::start(metrics_addr, processor.metrics().clone())
            .await
            .map_err(|e| ProcessorError::Permanent(format!("METRICS_ADDR {metrics_addr}: {e}")))?;
        Ok(Self { processor, metrics })
    }

    /// The processor.
    pub fn processor(&self) -> &Processor {
        &self.processor
    }

    /// Where metrics are served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics.addr()
    }

    /// Runs until `shutdown` completes.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        self.processor.run_until_stopped(shutdown).await
    }
}

/// Runs a processor against the cluster described by the kubeconfig at `kubeconfig` (for
/// example the fake cluster of a local run, `FakeCluster::serve`) until `shutdown` completes.
pub async fn run_with_kubeconfig(
    config: ProcessorConfig,
    kubeconfig: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let kube = kube_client(Some(kubeconfig)).await?;
    let app = Application::build(config, kube).await?;
    tracing::info!(metrics = %app.metrics_addr(), "gpudev-processor running");
    app.run_until_stopped(shutdown).await
}
