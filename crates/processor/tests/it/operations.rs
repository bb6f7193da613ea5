//! Disk operations sent by the API, and the metrics listener.

use gpudev_domain::{DiskName, Username};
use gpudev_processor::Application;
use gpudev_store::disks;
use uuid::Uuid;

use crate::common::env;

#[tokio::test]
async fn a_disk_create_hint_makes_the_claim_and_completes_the_operation() {
    let mut env = env().await;
    env.config.storage_class = Some("gp3".into());
    let alice = env.user("alice").await;
    let db = env.db.connect().await;
    let op = Uuid::new_v4();
    let owner = Username::parse("alice").unwrap();
    let name = DiskName::parse("data").unwrap();
    let disk_id = Uuid::new_v4();
    let claim = name.kube_name(&owner, disk_id);
    let new = disks::NewDisk {
        disk_id,
        user_id: alice.id,
        disk_name: &name,
        kube_name: &claim,
        size_gb: 50,
        operation_id: Some(op),
    };
    let disk = disks::create(&db, &new).await.unwrap();
    env.send_raw(serde_json::json!({
        "action": "disk_create", "operation_id": op, "disk_id": disk.disk_id,
        "disk_name": "data", "username": "alice", "size_gb": 50,
        "requested_at": chrono::Utc::now(),
    }))
    .await;
    let p = env.leader().await;
    let outcome = p.process_once().await.unwrap();
    assert_eq!(outcome.archived, 1);
    let claims = env.objects("persistentvolumeclaims").await;
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0]["metadata"]["name"], claim.as_str());
    assert_eq!(
        claims[0]["spec"]["resources"]["requests"]["storage"],
        "50Gi"
    );
    let disk = disks::get(&db, alice.id, "data").await.unwrap();
    assert_eq!(disk.operation_status.as_deref(), Some("completed"));
    assert_eq!(disk.status, "ready");

    // Deleting completes its operation too (the claim goes after the grace period).
    let op = Uuid::new_v4();
    let deleted = disks::soft_delete(&db, alice.id, "data", chrono::Duration::days(30), op)
        .await
        .unwrap();
    env.send_raw(serde_json::json!({
        "action": "disk_delete", "operation_id": op, "disk_id": deleted.disk_id,
        "disk_name": "data", "username": "alice", "requested_at": chrono::Utc::now(),
    }))
    .await;
    assert_eq!(p.process_once().await.unwrap().archived, 1);
    let rows = disks::list(&db, alice.id, true).await.unwrap();
    assert_eq!(rows[0].operation_status.as_deref(), Some("completed"));
    assert_eq!(rows[0].status, "deleted");
}

#[tokio::test]
async fn metrics_are_served_on_their_own_port() {
    let env = env().await;
    let app = Application::build(env.config.clone(), env.cluster.client())
        .await
        .unwrap();
    assert!(app.processor().try_become_leader().await.unwrap());
    let url = format!("http://{}/metrics", app.metrics_addr());
    let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(body.contains("gpudev_processor_leader 1"), "{body}");
    let health = reqwest::get(format!("http://{}/healthz", app.metrics_addr()))
        .await
        .unwrap();
    assert!(health.status().is_success());
}
