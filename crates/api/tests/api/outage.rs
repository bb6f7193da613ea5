//! PostgreSQL stopped under load: while the database is down every request that needs it is
//! answered 503 (never 500) and readiness fails; service comes back within seconds of the
//! database returning; and every submit that was answered 2xx is in the database.
//!
//! Real components: the API over sockets and a PostgreSQL cluster owned by this test (the
//! shared test cluster is never stopped). The load is a few concurrent clients in a loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gpudev_store::users::Role;
use serde_json::json;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app_on};

/// What one request got.
struct Answer {
    status: u16,
    submitted: Option<Uuid>,
    body: String,
}

/// One client: alternates submits and listings until `stop` is set.
async fn client(
    app: Arc<TestApp>,
    key: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
) {
    let mut submit = false;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        submit = !submit;
        let resp = if !submit {
            app.http
                .get(format!("{}/v1/jobs", app.base))
                .bearer_auth(&key)
                .timeout(Duration::from_secs(15))
                .send()
                .await
        } else {
            app.http
                .post(format!("{}/v1/jobs/submit", app.base))
                .bearer_auth(&key)
                .json(&json!({"gpu_type": "t4", "gpu_count": 1, "duration_hours": 1.0}))
                .timeout(Duration::from_secs(15))
                .send()
                .await
        };
        let resp = resp.expect("the API answers every request, outage or not");
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        let submitted = (submit && (200..300).contains(&status))
            .then(|| serde_json::from_str::<serde_json::Value>(&body).ok())
            .flatten()
            .and_then(|b| b["job_id"].as_str().and_then(|s| s.parse().ok()));
        answers.lock().await.push(Answer {
            status,
            submitted,
            body,
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status_of(app: &TestApp, path: &str) -> u16 {
    app.http
        .get(format!("{}{path}", app.base))
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_database_stopped_under_load_is_503_never_500_and_no_accepted_submit_is_lost() {
    let cluster = gpudev_testkit::private_cluster().await;
    let db = cluster.test_db().await;
    let app = Arc::new(
        spawn_app_on(
            db,
            &[
                ("RATE_LIMIT_PER_MINUTE", "1000000"),
                ("MAX_QUEUED_RESERVATIONS_PER_USER", "0"),
                ("MAX_GPUS_PER_USER", "100000"),
                ("DB_CONNECT_TIMEOUT_SECONDS", "1"),
            ],
        )
        .await,
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for i in 0..4 {
        let (_, key) = app.user_with_key(&format!("user{i}"), Role::User).await;
        clients.push(tokio::spawn(client(
            Arc::clone(&app),
            key,
            Arc::clone(&stop),
            Arc::clone(&answers),
        )));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_outage = answers.lock().await.len();
    cluster.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ready_during = status_of(&app, "/readyz").await;
    let health_during = status_of(&app, "/health").await;
    let live_during = status_of(&app, "/livez").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during_outage = answers.lock().await.len();
    cluster.start().await;
    let back = Instant::now();

    // Service resumes: a submit succeeds within 5 s of the database accepting connections.
    let (_, probe_key) = app.user_with_key("probe", Role::User).await;
    let recovered = loop {
        let resp = app
            .http
            .post(format!("{}/v1/jobs/submit", app.base))
            .bearer_auth(&probe_key)
            .json(&json!({"gpu_type": "t4", "gpu_count": 1, "duration_hours": 1.0}))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if resp.is_ok_and(|r| r.status().is_success()) {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "no successful submit within 5 s of the database's return"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ready_after = status_of(&app, "/readyz").await;
    // A little more load after the recovery.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let answers = answers.lock().await;
    eprintln!(
        "{} requests ({before_outage} before the outage, {} during it); recovered in {recovered:?}",
        answers.len(),
        during_outage - before_outage
    );

    assert_eq!(
        ready_during, 503,
        "readiness fails while the database is down"
    );
    assert_eq!(health_during, 503);
    assert_eq!(live_during, 200, "liveness does not depend on the database");
    assert_eq!(ready_after, 200);
    assert!(before_outage > 10, "the load ran before the outage");
    assert!(
        during_outage > before_outage,
        "requests were answered during the outage"
    );
    for a in answers.iter() {
        assert!(
            a.status == 200 || a.status == 503,
            "only 200 or 503 under an outage, got {}: {}",
            a.status,
            a.body
        );
        if a.status == 503 {
            let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
            assert_eq!(body["code"], "service_unavailable", "{body}");
        }
    }
    let unavailable = answers.iter().filter(|a| a.status == 503).count();
    assert!(unavailable > 0, "no request noticed the outage");
    assert!(
        answers.iter().rev().take(4).any(|a| a.status == 200),
        "the load recovered too"
    );
    let accepted: Vec<Uuid> = answers.iter().filter_map(|a| a.submitted).collect();
    assert!(!accepted.is_empty());
    let client = app.db.connect().await;
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM reservations WHERE reservation_id = ANY($1)",
            &[&accepted],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        usize::try_from(stored).unwrap(),
        accepted.len(),
        "every submit answered 2xx is in the database"
    );
    let hinted: i64 = client
        .query_one(
            "SELECT count(DISTINCT message->>'reservation_id') FROM pgmq.q_gpu_reservations \
             WHERE message->>'reservation_id' = ANY($1)",
            &[&accepted.iter().map(Uuid::to_string).collect::<Vec<_>>()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        usize::try_from(hinted).unwrap(),
        accepted.len(),
        "and has its queue message"
    );
}
