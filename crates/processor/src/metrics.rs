//! Prometheus metrics, and the small HTTP listener that serves them (`/metrics`) with a liveness
//! answer (`/healthz`) on `METRICS_ADDR`.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Every metric the processor exports (prefix `gpudev_processor_`).
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The registry they live in.
    pub registry: Registry,
    /// Queue messages handled, by action and outcome (`archived`, `retry`, `dead_letter`).
    pub messages: IntCounterVec,
    /// Duration of scheduling passes.
    pub pass_duration: Histogram,
    /// Reservations admitted, by GPU type.
    pub admissions: IntCounterVec,
    /// Reservations failed by the processor, by cause.
    pub failures: IntCounterVec,
    /// Messages waiting or in flight.
    pub queue_depth: IntGauge,
    /// Age of the oldest message, in seconds.
    pub queue_oldest_age: IntGauge,
    /// Active reservations whose dev box agent stopped reporting (ADR 18).
    pub agents_silent: IntGauge,
    /// Seconds from submission to active.
    pub queue_wait: HistogramVec,
    /// Seconds from admission to the Pod being Ready.
    pub pod_ready: Histogram,
    /// 1 while this instance is the leader.
    pub leader: IntGauge,
    /// Steps of the run loop given up on an error and retried later, by step (`queue`,
    /// `periodic`, `leadership`, `pod_event`): a database or Kubernetes outage shows here
    /// first.
    pub step_failures: IntCounterVec,
}

/// The steps [`Metrics::step_failures`] counts.
pub const STEPS: [&str; 4] = ["queue", "periodic", "leadership", "pod_event"];

fn wait_buckets() -> Vec<f64> {
    vec![
        1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14_400.0,
        43_200.0, 86_400.0,
    ]
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("gpudev_processor".into()), None)?;
        let messages = IntCounterVec::new(
            Opts::new(
                "messages_total",
                "Queue messages handled, by action and outcome",
            ),
            &["action", "outcome"],
        )?;
        let pass_duration = Histogram::with_opts(
            HistogramOpts::new(
                "scheduler_pass_duration_seconds",
                "Duration of a scheduling pass (fetch, decide, write, drive)",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        let admissions = IntCounterVec::new(
            Opts::new("admissions_total", "Reservations admitted, by GPU type"),
            &["gpu_type"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "reservation_failures_total",
                "Reservations failed by the processor, by cause",
            ),
            &["cause"],
        )?;
        let queue_depth = IntGauge::new("queue_depth", "Messages waiting or in flight")?;
        let queue_oldest_age = IntGauge::new(
            "queue_oldest_message_age_seconds",
            "Age of the oldest message in the queue",
        )?;
        let agents_silent = IntGauge::new(
            "dev_box_agents_silent",
            "Active reservations whose dev box agent has not reported for five minutes",
        )?;
        let queue_wait = HistogramVec::new(
            HistogramOpts::new(
                "queued_to_active_seconds",
                "Time from submission to active, by GPU type",
            )
            .buckets(wait_buckets()),
            &["gpu_type"],
        )?;
        let pod_ready = Histogram::with_opts(
            HistogramOpts::new(
                "pod_ready_seconds",
                "Time from admission to the dev box being Ready",
            )
            .buckets(wait_buckets()),
        )?;
        let leader = IntGauge::new("leader", "1 while this instance is the leader")?;
        let step_failures = IntCounterVec::new(
            Opts::new(
                "step_failures_total",
                "Steps of the run loop given up on an error and retried later, by step",
            ),
            &["step"],
        )?;
        for step in STEPS {
            // Every series exists from the start, so a rate over it is never missing.
            step_failures.with_label_values(&[step]);
        }
        registry.register(Box::new(messages.clone()))?;
        registry.register(Box::new(pass_duration.clone()))?;
        registry.register(Box::new(admissions.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(queue_oldest_age.clone()))?;
        registry.register(Box::new(agents_silent.clone()))?;
        registry.register(Box::new(queue_wait.clone()))?;
        registry.register(Box::new(pod_ready.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(step_failures.clone()))?;
        Ok(Self {
            registry,
            messages,
            pass_duration,
            admissions,
            failures,
            queue_depth,
            queue_oldest_age,
            agents_silent,
            queue_wait,
            pod_ready,
            leader,
            step_failures,
        })
    }

    /// Counts a step given up (`step` is one of [`STEPS`]).
    pub fn step_failed(&self, step: &str) {
        self.step_failures.with_label_values(&[step]).inc();
    }

    /// Steps given up so far, all steps together.
    pub fn step_failures_total(&self) -> u64 {
        STEPS
            .iter()
            .map(|step| self.step_failures.with_label_values(&[step]).get())
            .sum()
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The metrics listener; stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port) and serves `metrics`.
    pub async fn start(addr: SocketAddr, metrics: Metrics) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let metrics = metrics.clone();
                let service = hyper::service::service_fn(move |request: Request<_>| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(answer(&request, &metrics)) }
                });
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer<B>(request: &Request<B>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.render(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
