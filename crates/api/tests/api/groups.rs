//! The original client's multi-node reservations (ADR 16): `reserve -g 16 --distributed` sends
//! one submit per whole node, named "<name> - Node i/N", each with its own `RESERVATION_ID`.
//! gpudev stores them as one reservation of N nodes that the scheduler sees only when all have
//! arrived.

use gpudev_store::scheduling;
use gpudev_store::users::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app_with, status_json};
use crate::jobs_common::{actions, hints_for};

/// The body the original client sends for node `i` of `n` of an H100 reservation named `name`.
fn node(name: &str, i: u32, n: u32, id: Uuid) -> Value {
    json!({
        "instance_type": "p5.48xlarge",
        "duration_hours": 2,
        "env_vars": {
            "GPU_TYPE": "h100", "GPU_COUNT": "8", "GITHUB_USER": "octocat",
            "RESERVATION_ID": id.to_string(), "POD_NAME": format!("{name} - Node {i}/{n}"),
            "USER_ID": "alice", "JUPYTER_ENABLED": if i == 1 { "true" } else { "false" },
        },
    })
}

async fn submit(app: &TestApp, key: &str, body: Value) -> (u16, Value) {
    status_json(app.post("/v1/jobs/submit", key, body).await).await
}

async fn schedulable(app: &TestApp) -> Vec<Uuid> {
    let client = app.db.connect().await;
    scheduling::live_rows(&client)
        .await
        .unwrap()
        .iter()
        .map(|r| r.reservation_id)
        .collect()
}

#[tokio::test]
async fn the_nodes_of_a_distributed_reserve_become_one_reservation_once_all_arrive() {
    let app = spawn_app_with(&[]).await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());

    let (s1, a1) = submit(&app, &key, node("train", 1, 2, first)).await;
    assert_eq!(s1, 200, "{a1}");
    assert_eq!(a1["job_id"], first.to_string());
    assert_eq!(a1["status"], "queued");
    assert!(
        a1["message"]
            .as_str()
            .unwrap()
            .contains("waiting for the other 1"),
        "{a1}"
    );
    assert!(
        schedulable(&app).await.is_empty(),
        "not schedulable while incomplete"
    );

    let (s2, a2) = submit(&app, &key, node("train", 2, 2, second)).await;
    assert_eq!(s2, 200, "{a2}");
    assert_eq!(
        a2["job_id"],
        second.to_string(),
        "each node keeps the id the client polls"
    );
    assert_eq!(
        schedulable(&app).await,
        [first],
        "complete: one reservation to schedule"
    );

    // Both ids answer for the one reservation of two whole nodes.
    for id in [first, second] {
        let (status, job) = status_json(app.get(&format!("/v1/jobs/{id}"), &key).await).await;
        assert_eq!(status, 200, "{job}");
        assert_eq!(job["reservation_id"], first.to_string());
        assert_eq!(
            (job["gpu_count"].as_i64(), job["node_count"].as_i64()),
            (Some(16), Some(2))
        );
        assert_eq!(job["name"], "train");
        assert_eq!(job["jupyter_enabled"], true, "node 1's settings");
    }
    let (_, list) = status_json(app.get("/v1/jobs", &key).await).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(
        actions(&hints_for(&app, first).await),
        ["create", "create"],
        "stored, then complete"
    );

    // A retry of a node is answered again; a second node 2 under another id is refused.
    let (s3, again) = submit(&app, &key, node("train", 2, 2, second)).await;
    assert_eq!(s3, 200, "{again}");
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("already received")
    );

    // Cancelling any node cancels the whole reservation.
    let (s4, cancelled) = status_json(
        app.post(&format!("/v1/jobs/{second}/cancel"), &key, json!({}))
            .await,
    )
    .await;
    assert_eq!(s4, 200, "{cancelled}");
    let (_, job) = status_json(app.get(&format!("/v1/jobs/{first}"), &key).await).await;
    assert_eq!(job["status"], "cancelled");
}

#[tokio::test]
async fn the_quota_is_checked_for_the_whole_group_and_nothing_is_held_when_refused() {
    let app = spawn_app_with(&[("MAX_GPUS_PER_USER", "8")]).await;
    let (_, key) = app.user_with_key("alice", Role::User).await;

    let (s1, a1) = submit(&app, &key, node("big", 1, 2, Uuid::new_v4())).await;
    let (s2, a2) = submit(&app, &key, node("big", 2, 2, Uuid::new_v4())).await;

    for (status, answer) in [(s1, &a1), (s2, &a2)] {
        assert_eq!(status, 409, "{answer}");
        assert_eq!(answer["code"], "quota_exceeded");
        assert!(
            answer["detail"].as_str().unwrap().contains("16 GPUs"),
            "{answer}"
        );
    }
    let (_, list) = status_json(app.get("/v1/jobs", &key).await).await;
    assert_eq!(list["total"], 0, "nothing stored, no GPUs held: {list}");
}

#[tokio::test]
async fn members_that_do_not_fit_one_group_are_refused_naming_why() {
    let app = spawn_app_with(&[]).await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let first = Uuid::new_v4();
    assert_eq!(submit(&app, &key, node("run", 1, 2, first)).await.0, 200);

    // Node 1 again under another id.
    let (status, answer) = submit(&app, &key, node("run", 1, 2, Uuid::new_v4())).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("node 1 of 2"),
        "{answer}"
    );
    // Another user's job id.
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let (status, answer) = submit(&app, &bob, node("run", 2, 2, first)).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["code"], "job_id_taken");
    // More nodes than a reservation may span (MAX_NODES is 4).
    let (status, answer) = submit(&app, &key, node("huge", 1, 6, Uuid::new_v4())).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("node 1 of 6"),
        "{answer}"
    );
    // Bob's own group of the same name is his, not Alice's.
    let (status, answer) = submit(&app, &bob, node("run", 2, 2, Uuid::new_v4())).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("waiting for the other 1")
    );
}
