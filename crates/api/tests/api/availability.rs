//! `GET /v1/gpu/availability` and `GET /v1/cluster/status`: the original shapes, from the
//! availability rows and the reservations.

use chrono::DateTime;
use gpudev_store::gpu_types::{self, Availability};
use gpudev_store::users::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, status_json};
use crate::jobs_common::{activate, publish_state, submit_ok};

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
    assert!(
        h100["estimated_wait_minutes"].is_null(),
        "no estimate before the scheduler's first pass"
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
async fn the_wait_is_the_schedulers_own_for_a_new_one_gpu_hour() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    report(&app, "t4", 4, 1).await;
    // The scheduler's last pass: the one t4 node full for 50 more minutes, and 500 one-hour
    // requests from 500 users queued before anyone asks.
    publish_state(&app, 3000, 500, false).await;

    let (_, body) = status_json(app.get("/v1/gpu/availability", &alice).await).await;

    // A newcomer goes after the 500 (level in fair share, submitted later): 125 hours of
    // four at a time after the node frees.
    let t4 = &body["availability"]["t4"];
    let wait = t4["estimated_wait_minutes"].as_i64().unwrap();
    assert!((50 + 125 * 60..=51 + 125 * 60).contains(&wait), "{wait}");
    // No h100 nodes in the scheduler's state: it could not start, so no estimate.
    assert!(body["availability"]["h100"]["estimated_wait_minutes"].is_null());
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
            // Two requests, possibly a second apart.
            entry.as_object_mut().unwrap().remove("figures_age_seconds");
        }
    }
    assert_eq!(by_type, avail, "the same objects as /v1/gpu/availability");
}

#[tokio::test]
async fn before_the_availability_job_runs_the_schedulers_last_pass_is_answered_with_its_age() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    // The scheduler's last pass saw one full t4 node of 4 GPUs; the job has never run.
    publish_state(&app, 3000, 0, false).await;

    let (status, body) = status_json(app.get("/v1/gpu/availability", &alice).await).await;
    let (_, cluster) = status_json(app.get("/v1/cluster/status", &alice).await).await;

    assert_eq!(status, 200, "{body}");
    let t4 = &body["availability"]["t4"];
    assert_eq!(
        (t4["total"].as_i64(), t4["running_instances"].as_i64()),
        (Some(4), Some(1))
    );
    assert_eq!(t4["available"], 0, "all four held");
    assert_eq!(t4["figures_source"], "scheduler");
    assert!(
        t4["figures_age_seconds"]
            .as_i64()
            .is_some_and(|a| (0..=5).contains(&a)),
        "{t4}"
    );
    assert_utc(&t4["last_updated"]);
    assert_eq!(cluster["total_gpus"], 4);
    assert!(
        cluster["figures_age_seconds"].as_i64().is_some(),
        "{cluster}"
    );

    // Once the job reports, its newer figures are shown instead.
    report(&app, "t4", 8, 2).await;
    let (_, body) = status_json(app.get("/v1/gpu/availability", &alice).await).await;
    let t4 = &body["availability"]["t4"];
    assert_eq!(
        (t4["total"].as_i64(), t4["figures_source"].as_str()),
        (Some(8), Some("availability_job"))
    );
}

#[tokio::test]
async fn cpu_types_are_counted_in_cpu_slots_apart_from_gpus() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    report(&app, "h100", 16, 2).await;
    // Two cpu-x86 nodes of four reservation slots each.
    report(&app, "cpu-x86", 8, 2).await;
    let running = submit_ok(&app, &alice, json!({"gpu_type": "cpu-x86"})).await;
    activate(&app, running).await;
    submit_ok(&app, &alice, json!({"gpu_type": "cpu-x86"})).await;

    let (_, body) = status_json(app.get("/v1/cluster/status", &alice).await).await;

    assert_eq!(body["total_gpus"], 16, "CPU nodes are not GPUs: {body}");
    assert_eq!(body["available_gpus"], 16);
    assert_eq!(
        (
            body["total_cpu_slots"].as_i64(),
            body["available_cpu_slots"].as_i64(),
            body["in_use_cpu_slots"].as_i64(),
            body["queued_cpu_slots"].as_i64()
        ),
        (Some(8), Some(7), Some(1), Some(1)),
        "{body}"
    );
    let cpu = &body["by_gpu_type"]["cpu-x86"];
    assert_eq!(cpu["unit"], "cpu_slots");
    assert_eq!(
        (cpu["in_use"].as_i64(), cpu["queued"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(body["by_gpu_type"]["h100"]["unit"], "gpus");
    assert_eq!(
        body["by_gpu_type"]["h100"]["figures_source"],
        "availability_job"
    );
}

#[tokio::test]
async fn capacity_routes_need_a_key() {
    let app = spawn_app().await;

    for path in ["/v1/gpu/availability", "/v1/cluster/status"] {
        let (status, _) = status_json(app.call(Method::GET, path, None, None).await).await;
        assert_eq!(status, 401, "{path}");
    }
}

#[tokio::test]
async fn a_users_own_submit_and_cancel_show_in_the_counts_at_once() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    let queued = |body: &Value| body["availability"]["t4"]["queued"].as_i64();
    // The counts are read once a second at most; the first look reads them.
    let (_, before) = status_json(app.get("/v1/gpu/availability", &alice).await).await;
    assert_eq!(queued(&before), Some(0), "{before}");

    // Within that second, a submit through this API shows in the next answer,
    let id = submit_ok(&app, &alice, json!({"gpu_type": "t4", "gpu_count": 2})).await;
    let (_, after) = status_json(app.get("/v1/gpu/availability", &alice).await).await;
    assert_eq!(queued(&after), Some(2), "{after}");

    // and so does its cancellation.
    let res = app
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/cancel"),
            Some(&alice),
            Some(json!({})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let (_, status) = status_json(app.get("/v1/cluster/status", &alice).await).await;
    assert_eq!(status["queued_gpus"], 0, "{status}");
}
