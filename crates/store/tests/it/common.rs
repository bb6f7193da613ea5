//! Shared arrangements for the store tests.

use std::collections::BTreeMap;

use gpudev_domain::{DisplayName, GpuType, ImageRef, Username};
use gpudev_store::reservations::NewReservation;
use gpudev_store::users::{self, Role, User};
use tokio_postgres::Client;
use uuid::Uuid;

pub async fn user(db: &Client, name: &str) -> User {
    users::create(db, &Username::parse(name).unwrap(), Role::User)
        .await
        .unwrap()
}

pub fn reservation_for(owner: &User) -> NewReservation {
    NewReservation {
        reservation_id: Uuid::new_v4(),
        user_id: owner.user_id,
        username: owner.username.clone(),
        name: Some(DisplayName::parse("training run").unwrap()),
        gpu_type: GpuType::parse("h100").unwrap(),
        gpu_count: 4,
        node_count: 1,
        duration_hours: 1.5,
        image: ImageRef::parse("pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel").unwrap(),
        env: BTreeMap::from([("WANDB_API_KEY".to_owned(), "s3cr3t-value".to_owned())]),
        disk_name: None,
        jupyter_enabled: false,
        github_user: None,
        priority: 0,
        idempotency_key: None,
        cli_version: Some("0.1.0".into()),
        request_hash: None,
        command: None,
        disk_size_gb: None,
    }
}

pub async fn count(db: &Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.unwrap().get(0)
}
