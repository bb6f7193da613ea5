//! Arrangements shared by the job and availability tests.

use gpudev_api_types::jobs::{JobSubmission, JobSubmitResponse};
use gpudev_domain::ReservationStatus;
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
