//! Shared arrangements for the store tests.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use gpudev_domain::{DisplayName, GpuType, ImageRef, Username};
use gpudev_store::reservations::{self, NewReservation, StoredSecrets};
use gpudev_store::users::{self, Role, User};
use gpudev_store::{DbConfig, Pool, ReservationSecrets, SealingKeys};
use gpudev_testkit::TestDb;
use tokio_postgres::Client;
use uuid::Uuid;

pub async fn user(db: &Client, name: &str) -> User {
    users::create(db, &Username::parse(name).unwrap(), Role::User)
        .await
        .unwrap()
}

/// The key the tests' submits are sealed with.
pub static KEYS: LazyLock<SealingKeys> = LazyLock::new(|| SealingKeys::generate("test-1").unwrap());

/// The plain value of the secret every [`reservation_for`] carries.
pub const SECRET_VALUE: &str = "s3cr3t-value";

pub fn reservation_for(owner: &User) -> NewReservation {
    let reservation_id = Uuid::new_v4();
    let secrets = ReservationSecrets {
        env: BTreeMap::from([("WANDB_API_KEY".to_owned(), SECRET_VALUE.to_owned())]),
        command: None,
    };
    NewReservation {
        reservation_id,
        user_id: owner.user_id,
        username: owner.username.clone(),
        name: Some(DisplayName::parse("training run").unwrap()),
        gpu_type: GpuType::parse("h100").unwrap(),
        gpu_count: 4,
        node_count: 1,
        duration_hours: 1.5,
        image: ImageRef::parse("pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel").unwrap(),
        env_names: vec!["WANDB_API_KEY".to_owned()],
        disk_name: None,
        jupyter_enabled: false,
        github_user: None,
        priority: 0,
        idempotency_key: None,
        cli_version: Some("0.1.0".into()),
        request_hash: None,
        secrets: Some(KEYS.seal(reservation_id, &secrets).unwrap()),
        disk_size_gb: None,
        queue_position: None,
        estimated_start_at: None,
        start_at: None,
    }
}

/// A pool of `size` connections to `db`, as the programs build theirs.
pub async fn pool(db: &TestDb, size: usize) -> Pool {
    let mut cfg = DbConfig::from_url(&db.url()).unwrap();
    cfg.pool_size = size;
    cfg.connect_timeout = Duration::from_secs(10);
    gpudev_store::connect_pool(&cfg).await.unwrap()
}

pub async fn count(db: &Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.unwrap().get(0)
}

/// The secrets stored for reservation `id`, opened with [`KEYS`].
pub async fn opened_secrets(db: &Client, id: Uuid) -> ReservationSecrets {
    match reservations::stored_secrets(db, id).await.unwrap() {
        Some(StoredSecrets::Sealed(sealed)) => KEYS.open(id, &sealed).unwrap(),
        other => panic!("expected sealed secrets, found {other:?}"),
    }
}
