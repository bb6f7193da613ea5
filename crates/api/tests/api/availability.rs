//! `GET /v1/gpu/availability` and `GET /v1/cluster/status`: the original shapes, from the
//! availability rows and the reservations.

use chrono::DateTime;
use gpudev_store::gpu_types::{self, Availability};
use gpudev_store::users::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, status_json};
use crate::jobs_common::{activate, submit_ok};

async fn report(app: &TestApp, gpu_type: &str, total: i32, nodes: i32) {
    let client = app.db.connect().await;
    let written = gpu_types::write_availability(
        &client,
        gpu_type,
        &Availability {
            total_gpus: total,
            available_gpus: total,
            in_use_gpus: 0,
            queued_gpus: 0,
            full_nodes_available: nodes,
            max_reservable: total / nodes.max(1),
            running_nodes: nodes,
        },
        "test",
    )
    .await
    .unwrap();
    assert!(written);
}

fn assert_utc(v: &Value) {
    let t = DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(t.offset().local_minus_utc(), 0);
}

#[tokio::test]
async fn availability_counts_held_and_queued_gpus_per_type() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    report(&app, "h100", 16, 2).await;
    let running = submit_ok(&app, &alice, json!({"gpu_type": "h100", "gpu_count": 8})).await;
    activate(&app, running).await;
    submit_ok(&app, &bob, json!({"gpu_type": "h100", "gpu_count": 4})).await;
    submit_ok(&app, &bob, json!({"gpu_type": "t4"})).await;

    let (status, body) = status_json(app.get("/v1/gpu/availability", &alice).await).await;

    assert_eq!(status, 200, "{body}");
    assert_utc(&body["timestamp"]);
    let h100 = &body["availability"]["h100"];
    assert_eq!(h100["gpu_type"], "h100");
    assert_eq!(h100["total"], 16);
    assert_eq!(h100["in_use"], 8);
    assert_eq!(h100["queued"], 4);
    assert_eq!(h100["available"], 8);
    assert_eq!(h100["max_per_node"], 8);
    assert_eq!(h100["full_nodes_available"], 1);
    assert_eq!(h100["running_instances"], 2);
    assert_eq!(h100["queued_reservations"], 1);
    assert_eq!(
        h100["estimated_wait_minutes"], 0,
        "4 queued + 1 fit in 8 free"
    );
    assert_utc(&h100["last_updated"]);
    let t4 = &body["availability"]["t4"];
    assert_eq!(
        (
            t4["total"].as_i64(),
            t4["available"].as_i64(),
            t4["queued"].as_i64()
        ),
        (Some(0), Some(0), Some(1))
    );
    assert!(
        t4["estimated_wait_minutes"].is_null(),
        "no t4 nodes reported"
    );
    assert!(t4["last_updated"].is_null());
    for field in [
        "gpu_type",
        "total",
        "available",
        "in_use",
        "queued",
        "max_per_node",
    ] {
        assert!(body["availability"]["a100"].get(field).is_some(), "{field}");
    }
}

#[tokio::test]
async fn a_full_type_estimates_the_wait_from_when_its_reservations_end() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    report(&app, "a100", 8, 1).await;
    let id = submit_ok(
        &app,
        &alice,
        json!({"gpu_type": "a100", "gpu_count": 8, "duration_hours": 2}),
    )
    .await;
    activate(&app, id).await;

    let (_, body) = status_json(app.get("/v1/gpu/availability", &alice).await).await;

    let a100 = &body["availability"]["a100"];
    assert_eq!(a100["available"], 0);
    let wait = a100["estimated_wait_minutes"].as_i64().unwrap();
    assert!((119..=121).contains(&wait), "about two hours: {wait}");
}

#[tokio::test]
async fn cluster_status_sums_every_type_and_counts_reservations_by_status() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    report(&app, "h100", 16, 2).await;
    report(&app, "t4", 8, 2).await;
    let running = submit_ok(&app, &alice, json!({"gpu_type": "h100", "gpu_count": 8})).await;
    activate(&app, running).await;
    submit_ok(&app, &alice, json!({"gpu_type": "t4", "gpu_count": 2})).await;

    let (status, body) = status_json(app.get("/v1/cluster/status", &alice).await).await;
    let (_, availability) = status_json(app.get("/v1/gpu/availability", &alice).await).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_gpus"], 24);
    assert_eq!(body["in_use_gpus"], 8);
    assert_eq!(body["available_gpus"], 16);
    assert_eq!(body["queued_gpus"], 2);
    assert_eq!(body["active_reservations"], 1);
    assert_eq!(body["preparing_reservations"], 0);
    assert_eq!(body["queued_reservations"], 1);
    assert_eq!(body["pending_reservations"], 0);
    assert_utc(&body["timestamp"]);
    let keys: Vec<&String> = body["by_gpu_type"].as_object().unwrap().keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let mut by_type = body["by_gpu_type"].clone();
    let mut avail = availability["availability"].clone();
    for v in [&mut by_type, &mut avail] {
        for entry in v.as_object_mut().unwrap().values_mut() {
            entry
                .as_object_mut()
                .unwrap()
                .remove("estimated_wait_minutes");
        }
    }
    assert_eq!(by_type, avail, "the same objects as /v1/gpu/availability");
}

#[tokio::test]
async fn capacity_routes_need_a_key() {
    let app = spawn_app().await;

    for path in ["/v1/gpu/availability", "/v1/cluster/status"] {
        let (status, _) = status_json(app.call(Method::GET, path, None, None).await).await;
        assert_eq!(status, 401, "{path}");
    }
}
