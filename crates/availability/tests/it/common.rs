//! Shared arrangements: a database and a cluster (the fake, or the real control plane when
//! `GPUDEV_TEST_KUBE=real`).

use gpudev_availability::Config;
use gpudev_domain::{GpuType, ImageRef, Username};
use gpudev_store::gpu_types::GpuTypeRow;
use gpudev_store::reservations::{self, NewReservation};
use gpudev_store::{Pool, Queue, users};
use gpudev_testkit::{FakeCluster, FakeConfig, PrivateCluster, TestCluster, TestDb};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use uuid::Uuid;

pub struct Env {
    pub db: TestDb,
    pub pool: Pool,
    pub cluster: TestCluster,
    pub config: Config,
}

/// The dev box namespace on the fake (the real control plane gives each test its own).
pub const NS: &str = "gpu-dev";

/// An environment on the back end `GPUDEV_TEST_KUBE` chooses.
pub async fn env() -> Env {
    env_on(TestCluster::new(NS).await).await
}

/// An environment on the fake, for tests of what only the fake can do; `None`, and the test
/// skipped, when the suite runs against the real control plane.
pub async fn fake_env(why: &str) -> Option<Env> {
    if gpudev_testkit::skip_on_real(why) {
        return None;
    }
    Some(env_on(TestCluster::fake_with(NS, FakeConfig::default())).await)
}

/// An environment on the fake whose database lives on `pg`, a PostgreSQL cluster the test owns
/// (so it may freeze it; the shared one never is), with the job's settings read from `vars`
/// first. `None`, and the test skipped, on the real control plane.
pub async fn private_env(pg: &PrivateCluster, vars: &[(&str, &str)], why: &str) -> Option<Env> {
    if gpudev_testkit::skip_on_real(why) {
        return None;
    }
    let cluster = TestCluster::fake_with(NS, FakeConfig::default());
    Some(env_on_db(cluster, pg.test_db().await, vars).await)
}

async fn env_on(cluster: TestCluster) -> Env {
    env_on_db(cluster, gpudev_testkit::test_db().await, &[]).await
}

/// An environment over `db`; the pool is made from the job's own settings (`vars` included).
async fn env_on_db(cluster: TestCluster, db: TestDb, vars: &[(&str, &str)]) -> Env {
    let url = db.url();
    let label = cluster.gpu_type_label().to_owned();
    let config = Config::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| match k {
                "DATABASE_URL" => Some(url.clone()),
                "HOSTNAME" => Some("availability-test".to_owned()),
                "GPU_TYPE_LABEL" => Some(label.clone()),
                _ => None,
            })
    })
    .unwrap();
    let pool = gpudev_store::connect_pool(&config.db).await.unwrap();
    Env {
        db,
        pool,
        cluster,
        config,
    }
}

impl Env {
    /// The fake cluster (only in environments from [`fake_env`]).
    pub fn fake(&self) -> &FakeCluster {
        self.cluster.expect_fake()
    }

    pub async fn run(&self) -> gpudev_availability::Report {
        gpudev_availability::run_once(&self.pool, &self.cluster.client(), &self.config)
            .await
            .unwrap()
    }

    pub async fn row(&self, gpu_type: &str) -> GpuTypeRow {
        let db = self.db.connect().await;
        gpudev_store::gpu_types::list_active(&db)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.gpu_type == gpu_type)
            .unwrap()
    }

    /// A running pod bound to `node` requesting `gpus` GPUs, in `namespace` (on the real control
    /// plane, a namespace of this test's named after it).
    pub async fn pod_on(&self, namespace: &str, node: &str, gpus: u32, devbox: bool) -> String {
        let namespace = &self.cluster.namespace_like(namespace).await;
        let name = format!("p-{}", &Uuid::new_v4().simple().to_string()[..10]);
        let labels = if devbox {
            json!({"app.kubernetes.io/managed-by": "gpudev", "app.kubernetes.io/name": "gpudev-devbox"})
        } else {
            json!({"team": "research"})
        };
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "nodeName": node,
                "containers": [{
                    "name": "main",
                    "image": "busybox",
                    "resources": {"limits": {"nvidia.com/gpu": gpus.to_string()}}
                }]
            }
        }))
        .unwrap();
        let api: Api<Pod> = Api::namespaced(self.cluster.client(), namespace);
        api.create(&PostParams::default(), &pod).await.unwrap();
        name
    }

    pub async fn queue(&self, gpu_type: &str, gpu_count: i32, how_many: usize) {
        let mut db = self.db.connect().await;
        let name = format!("user{}", &Uuid::new_v4().simple().to_string()[..8]);
        let user = users::create(&db, &Username::parse(&name).unwrap(), users::Role::User)
            .await
            .unwrap();
        let queue = Queue::new(gpudev_store::DEFAULT_QUEUE).unwrap();
        for _ in 0..how_many {
            let new = NewReservation {
                reservation_id: Uuid::new_v4(),
                user_id: user.user_id,
                username: user.username.clone(),
                name: None,
                gpu_type: GpuType::parse(gpu_type).unwrap(),
                gpu_count,
                node_count: 1,
                duration_hours: 2.0,
                image: ImageRef::parse("pytorch/pytorch:latest").unwrap(),
                env_names: Vec::new(),
                disk_name: None,
                jupyter_enabled: false,
                github_user: None,
                priority: 0,
                idempotency_key: None,
                cli_version: None,
                request_hash: None,
                secrets: None,
                disk_size_gb: None,
                queue_position: None,
                estimated_start_at: None,
                start_at: None,
            };
            reservations::submit(&mut db, &queue, &new).await.unwrap();
        }
    }
}
