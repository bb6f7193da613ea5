//! Sustained load: fixed-rate mixed traffic (submit, list, get, cancel) from several users
//! through the typed client against the real API, with the real processor driving the fake
//! Kubernetes API server, and zero errors allowed.
//!
//! It runs for 60 s at 20 requests/s (in CI too, beside the other tests);
//! `GPUDEV_LOAD_SECONDS` and `GPUDEV_LOAD_RPS` change the length and the rate:
//!
//! ```text
//! GPUDEV_LOAD_SECONDS=300 cargo nextest run -p gpudev-cli -E 'test(sustained)' --no-capture
//! ```
//!
//! Real: PostgreSQL + PGMQ, the API over HTTP on loopback, the processor's loop, the client.
//! Simulated: the Kubernetes API server (the testkit's fake, with its pretend scheduler and
//! kubelet).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gpudev_api::{ApiConfig, Application};
use gpudev_client::{Client, JobSubmission, ListQuery};
use gpudev_domain::{ApiKey, SshPublicKey, Username};
use gpudev_processor::{Processor, ProcessorConfig};
use gpudev_store::api_keys::{self, NewKey};
use gpudev_store::ssh_keys;
use gpudev_store::users::{self, Role};
use gpudev_testkit::FakeCluster;
use uuid::Uuid;

use crate::helpers::SSH_KEY;

fn env_number(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Jobs each user has submitted and not yet cancelled, and every one ever accepted.
#[derive(Default)]
struct Book {
    live: HashMap<usize, Vec<Uuid>>,
    accepted: Vec<Uuid>,
    cancelled: Vec<Uuid>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_mixed_load_has_no_errors_and_every_accepted_reservation_is_processed() {
    let seconds = env_number("GPUDEV_LOAD_SECONDS", 60);
    let rps = env_number("GPUDEV_LOAD_RPS", 20).max(1);
    let db = gpudev_testkit::test_db().await;

    // Enough GPUs for every submission (4 in 10 requests, one GPU each).
    let fake = FakeCluster::new();
    let submits = seconds * rps * 4 / 10 + 8;
    fake.seed_nodes("t4", usize::try_from(submits / 8 + 1).unwrap(), 8);
    let _simulation = fake.start_simulation(Duration::from_millis(100));
    let mut config = ProcessorConfig::for_database(&db.url()).unwrap();
    // No per-user limits on either side: this measures throughput, not quotas.
    config.quotas = gpudev_domain::Quotas::default();
    let processor = Processor::build(config, fake.client()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        processor
            .run_until_stopped(async move {
                let _ = stopped.await;
            })
            .await
    });

    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url()),
        ("BIND_ADDR", "127.0.0.1:0".into()),
        ("METRICS_ADDR", "127.0.0.1:0".into()),
        ("SHUTDOWN_DRAIN_SECONDS", "0".into()),
        ("LOG_FORMAT", "pretty".into()),
        ("RATE_LIMIT_PER_MINUTE", "1000000".into()),
        ("MAX_QUEUED_RESERVATIONS_PER_USER", "0".into()),
        ("MAX_GPUS_PER_USER", "1000000".into()),
    ]);
    let app = Application::build(ApiConfig::from_lookup(|k| vars.get(k).cloned()).unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", app.api_addr());
    tokio::spawn(app.run_until_stopped());

    let mut clients = Vec::new();
    {
        let mut sql = db.connect().await;
        for i in 0..5 {
            let name = format!("loaduser{i}");
            let user = users::create(&sql, &Username::parse(&name).unwrap(), Role::User)
                .await
                .unwrap();
            ssh_keys::replace(
                &mut sql,
                user.user_id,
                &[SshPublicKey::parse(SSH_KEY).unwrap()],
            )
            .await
            .unwrap();
            let key = ApiKey::generate().unwrap();
            api_keys::insert(
                &sql,
                user.user_id,
                &key,
                &NewKey {
                    ttl: chrono::Duration::hours(2),
                    description: Some("load"),
                    auth_method: "admin",
                    auth_issuer: None,
                    rate_limit_per_minute: None,
                },
            )
            .await
            .unwrap();
            clients.push(
                Client::builder(&base)
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap()
                    .with_api_key(key.expose_secret()),
            );
        }
    }

    // Open loop at a fixed rate: a request starts every 1/rps s whether or not the earlier ones
    // have finished, so a slow server shows up as latency and errors, not as a slower test.
    let book = Arc::new(Mutex::new(Book::default()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / u32::try_from(rps).unwrap());
    let total = seconds * rps;
    let started = Instant::now();
    let mut requests = Vec::new();
    for n in 0..total {
        ticker.tick().await;
        let n = usize::try_from(n).unwrap();
        // Each block of ten requests comes from one user, round robin.
        let who = (n / 10) % clients.len();
        let client = clients[who].clone();
        let (book, errors, latencies) = (
            Arc::clone(&book),
            Arc::clone(&errors),
            Arc::clone(&latencies),
        );
        requests.push(tokio::spawn(async move {
            let t = Instant::now();
            // 4 in 10 submit, 3 list, 2 get, 1 cancels one of the user's live jobs.
            let result: Result<(), String> = match n % 10 {
                0 | 3 | 5 | 8 => match client
                    .submit_job(&JobSubmission::new("t4", 1, 1.0), None)
                    .await
                {
                    Ok(r) => {
                        let mut b = book.lock().unwrap();
                        b.accepted.push(r.job_id);
                        b.live.entry(who).or_default().push(r.job_id);
                        Ok(())
                    }
                    Err(e) => Err(format!("submit: {e}")),
                },
                1 | 4 | 7 => client
                    .list_jobs(&ListQuery::default())
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("list: {e}")),
                2 | 6 => {
                    let id = book
                        .lock()
                        .unwrap()
                        .live
                        .get(&who)
                        .and_then(|l| l.last().copied());
                    match id {
                        Some(id) => client
                            .get_job(&id.to_string())
                            .await
                            .map(|_| ())
                            .map_err(|e| format!("get: {e}")),
                        None => Ok(()),
                    }
                }
                _ => {
                    let id = book
                        .lock()
                        .unwrap()
                        .live
                        .get_mut(&who)
                        .and_then(|l| (!l.is_empty()).then(|| l.remove(0)));
                    match id {
                        Some(id) => match client.cancel_job(&id.to_string()).await {
                            Ok(_) => {
                                book.lock().unwrap().cancelled.push(id);
                                Ok(())
                            }
                            Err(e) => Err(format!("cancel: {e}")),
                        },
                        None => Ok(()),
                    }
                }
            };
            latencies.lock().unwrap().push(t.elapsed());
            if let Err(e) = result {
                errors.lock().unwrap().push(e);
            }
        }));
    }
    for r in requests {
        r.await.unwrap();
    }
    let load_time = started.elapsed();
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort_unstable();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    eprintln!(
        "{total} requests in {load_time:?} ({rps}/s target): p50 {:?}, p99 {:?}, max {:?}",
        pct(50),
        pct(99),
        latencies.last().unwrap()
    );
    let errors = errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "{} errors: {errors:?}", errors.len());
    assert!(
        load_time < Duration::from_secs(seconds) + Duration::from_secs(10),
        "the load fell far behind its rate: {load_time:?}"
    );

    // Every accepted reservation is processed: the cancelled ones end cancelled with nothing
    // left in the cluster, every other one becomes active with its pod.
    let (accepted, cancelled) = {
        let b = book.lock().unwrap();
        (b.accepted.clone(), b.cancelled.clone())
    };
    eprintln!(
        "{} submits accepted, {} of them cancelled",
        accepted.len(),
        cancelled.len()
    );
    let submitted = (0..total)
        .filter(|n| matches!(n % 10, 0 | 3 | 5 | 8))
        .count();
    assert_eq!(accepted.len(), submitted, "every submit was accepted");
    assert!(!cancelled.is_empty(), "the mix cancelled nothing");
    let sql = db.connect().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = sql
            .query(
                "SELECT status::text, count(*) FROM reservations \
                 WHERE reservation_id = ANY($1) GROUP BY 1",
                &[&accepted],
            )
            .await
            .unwrap();
        let counts: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let active = counts.get("active").copied().unwrap_or(0);
        let gone = counts.get("cancelled").copied().unwrap_or(0);
        let pods = fake.objects("pods", Some("gpu-dev")).len();
        let expected_active = i64::try_from(accepted.len() - cancelled.len()).unwrap();
        if active == expected_active
            && gone == i64::try_from(cancelled.len()).unwrap()
            && pods == usize::try_from(active).unwrap()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all processed 30 s after the load: {counts:?}, {pods} pods, expected \
             {expected_active} active and {} cancelled",
            cancelled.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop.send(());
}
