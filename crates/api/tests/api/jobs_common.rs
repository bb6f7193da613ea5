//! Arrangements shared by the job and availability tests.

use gpudev_api_types::jobs::{JobSubmission, JobSubmitResponse};
use gpudev_domain::ReservationStatus;
use gpudev_domain::{
    GpuType, NodeCapacity, Pending, QueuePolicy, QueueState, ReservationKey, Running, Username,
};
use gpudev_store::Queue;
use gpudev_store::queue::Message;
use gpudev_store::reservations::{self, Transition};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{TestApp, status_as};

/// A small valid request.
pub fn t4(duration_hours: f64) -> JobSubmission {
    JobSubmission::new("t4", 1, duration_hours)
}

/// Submits `body`; asserts 200 and returns the job id.
pub async fn submit_ok(app: &TestApp, key: &str, body: impl Serialize) -> Uuid {
    let (status, resp): (_, JobSubmitResponse) =
        status_as(app.post("/v1/jobs/submit", key, body).await).await;
    assert_eq!(status, 200, "{resp:?}");
    resp.job_id
}

/// Moves a reservation along the state machine as the processor would.
pub async fn move_to(app: &TestApp, id: Uuid, path: &[ReservationStatus]) {
    let client = app.db.connect().await;
    for to in path {
        reservations::transition(
            &client,
            id,
            Transition {
                to: *to,
                reason: None,
                actor: "processor",
            },
        )
        .await
        .unwrap();
    }
}

/// Makes a queued reservation active with connection details, as the processor would.
pub async fn activate(app: &TestApp, id: Uuid) {
    move_to(
        app,
        id,
        &[ReservationStatus::Preparing, ReservationStatus::Active],
    )
    .await;
    let client = app.db.connect().await;
    client
        .execute(
            "UPDATE reservations SET pod_name = 'gpudev-' || left($1::text, 8), \
               node_ip = '10.0.0.7', node_port = 30022, instance_type = 'g4dn.12xlarge', \
               ssh_command = 'ssh -p 30022 dev@10.0.0.7', jupyter_token = 'tok-123' \
             WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap();
}

/// Every message in the reservation queue, left in place (read with a zero visibility timeout).
pub async fn queued_messages(app: &TestApp) -> Vec<Message> {
    let client = app.db.connect().await;
    Queue::new("gpu_reservations")
        .unwrap()
        .read(&client, 0, 100)
        .await
        .unwrap()
}

/// The `action` of each hint.
pub fn actions(hints: &[Value]) -> Vec<&str> {
    hints
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect()
}

/// The actions of the queued messages about one reservation, oldest first.
pub async fn hints_for(app: &TestApp, id: Uuid) -> Vec<Value> {
    queued_messages(app)
        .await
        .into_iter()
        .filter(|m| m.body["reservation_id"] == id.to_string())
        .map(|m| m.body)
        .collect()
}

/// Audit rows with this action, as `(actor, target_id, outcome)`.
pub async fn audit_rows(app: &TestApp, action: &str) -> Vec<(String, Option<String>, String)> {
    let client = app.db.connect().await;
    client
        .query(
            "SELECT actor, target_id, outcome FROM audit_log WHERE action = $1 ORDER BY audit_id",
            &[&action],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Publishes a queue state as the scheduler's leader does: one t4 node of 4 GPUs, all held by a
/// reservation that ends in `free_in` seconds, and `waiting` 1-GPU one-hour reservations queued
/// ten minutes ago — all by one user, or each by a user of its own.
pub async fn publish_state(app: &TestApp, free_in: i64, waiting: usize, one_user: bool) -> i64 {
    let now = chrono::Utc::now().timestamp();
    let t4 = GpuType::parse("t4").unwrap();
    let user = Username::parse("someone").unwrap();
    let state = QueueState::<ReservationKey> {
        taken_at: now,
        nodes: vec![NodeCapacity {
            name: "t4-node".into(),
            gpu_type: t4.clone(),
            slots_total: 4,
            slots_free: 0,
            schedulable: true,
        }],
        running: vec![Running {
            user: user.clone(),
            gpu_type: t4.clone(),
            tag: Some(0.0),
            booked_secs: 3600,
            gpus_per_node: 4,
            node_names: vec!["t4-node".into()],
            expires_at: now + free_in,
        }],
        queue: (0..waiting)
            .map(|i| Pending {
                reservation_id: ReservationKey {
                    submitted_micros: (now - 600) * 1_000_000 + i as i64,
                    id: Uuid::new_v4(),
                },
                user: if one_user {
                    user.clone()
                } else {
                    Username::parse(&format!("user{i}")).unwrap()
                },
                gpu_type: t4.clone(),
                gpu_count: 1,
                nodes: 1,
                priority: 0,
                submitted_at: now - 600,
                duration_secs: 3600,
                tag: Some(if one_user { i as f64 * 3600.0 } else { 0.0 }),
                promise: None,
                start_at: None,
            })
            .collect(),
        usage: Default::default(),
        quotas: Default::default(),
        clocks: Default::default(),
        policy: QueuePolicy {
            promise_horizon_secs: 7200,
            aging: 1.0,
            release_delay_secs: 0,
        },
    };
    let db = app.db.connect().await;
    gpudev_store::scheduling::publish_state(
        &db,
        chrono::Utc::now(),
        &serde_json::to_value(&state).unwrap(),
    )
    .await
    .unwrap();
    now
}
