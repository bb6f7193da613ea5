//! Shared arrangements: a database, a cluster (the fake, or the real control plane when
//! `GPUDEV_TEST_KUBE=real`), reservations in any state with their dev box objects and disks,
//! and a recording notifier.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gpudev_cluster::{DiskClaimSpec, DiskMount, disk_claim, labels};
use gpudev_domain::{DiskName, DisplayName, GpuType, ImageRef, ReservationStatus, Username};
use gpudev_expiry::{Config, Expiry, Notice, NotifyError, PodNotifier, Report};
use gpudev_store::reservations::{self, NewReservation, Transition};
use gpudev_store::{Pool, Queue, ReservationSecrets, SealingKeys, disks, users};
use gpudev_testkit::kube::RequestRecord;
use gpudev_testkit::{FakeCluster, FakeConfig, PrivateCluster, TestCluster, TestDb};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use tokio_postgres::Client;
use uuid::Uuid;

/// The dev box namespace on the fake (the real control plane gives each test its own).
pub const NS: &str = "gpu-dev";

/// Records deliveries instead of exec'ing into Pods (the fake API server cannot do the exec
/// websocket), and answers home listings with [`HOME_LISTING`]. Can be told to fail.
#[derive(Clone, Default)]
pub struct Recorder {
    pub seen: Arc<Mutex<Vec<(String, Notice)>>>,
    /// Pods whose home was listed.
    pub listed: Arc<Mutex<Vec<String>>>,
    pub fail: bool,
}

/// What a listed home holds, as the listing script prints it.
pub const HOME_LISTING: &str = "data\ndata/train.csv\nproject\nproject/train.py\n";

impl Recorder {
    pub fn notices(&self) -> Vec<(String, Notice)> {
        self.seen.lock().unwrap().clone()
    }
}

impl PodNotifier for Recorder {
    async fn list_home(&self, _ns: &str, pod: &str) -> Result<String, NotifyError> {
        self.listed.lock().unwrap().push(pod.to_owned());
        if self.fail {
            Err(NotifyError::Script {
                pod: pod.to_owned(),
                message: "sh: not found".into(),
            })
        } else {
            Ok(HOME_LISTING.to_owned())
        }
    }

    async fn deliver(&self, _ns: &str, pod: &str, notice: &Notice) -> Result<(), NotifyError> {
        self.seen
            .lock()
            .unwrap()
            .push((pod.to_owned(), notice.clone()));
        if self.fail {
            Err(NotifyError::Script {
                pod: pod.to_owned(),
                message: "sh: not found".into(),
            })
        } else {
            Ok(())
        }
    }
}

pub struct Env {
    pub db: TestDb,
    pub client: Client,
    pub pool: Pool,
    pub cluster: TestCluster,
    pub config: Config,
    pub recorder: Recorder,
}

pub async fn env() -> Env {
    env_with(FakeConfig::default(), &[]).await
}

/// An environment whose fake cluster keeps deleted pods terminating for a second (removed by a
/// background simulation), as a kubelet does.
pub async fn env_with_slow_pods() -> Env {
    let config = FakeConfig {
        pod_termination: Duration::from_secs(1),
        ..FakeConfig::default()
    };
    env_with(config, &[]).await
}

/// An environment on the fake, for tests of what only the fake can do; `None`, and the test
/// skipped, when the suite runs against the real control plane.
pub async fn fake_env(why: &str) -> Option<Env> {
    if gpudev_testkit::skip_on_real(why) {
        return None;
    }
    Some(env_with(FakeConfig::default(), &[]).await)
}

/// [`env_with_slow_pods`] on the fake only (see [`fake_env`]).
pub async fn fake_env_with_slow_pods(why: &str) -> Option<Env> {
    if gpudev_testkit::skip_on_real(why) {
        return None;
    }
    Some(env_with_slow_pods().await)
}

pub async fn env_with(fake: FakeConfig, vars: &[(&str, &str)]) -> Env {
    env_on_db(fake, gpudev_testkit::test_db().await, vars).await
}

/// An environment on the fake whose database lives on `pg`, a PostgreSQL cluster the test owns
/// (so it may freeze it; the shared one never is), with the job's settings read from `vars`
/// first. `None`, and the test skipped, on the real control plane.
pub async fn private_env(pg: &PrivateCluster, vars: &[(&str, &str)], why: &str) -> Option<Env> {
    if gpudev_testkit::skip_on_real(why) {
        return None;
    }
    Some(env_on_db(FakeConfig::default(), pg.test_db().await, vars).await)
}

/// An environment over `db`; the pool is made from the job's own settings (`vars` included).
async fn env_on_db(fake: FakeConfig, db: TestDb, vars: &[(&str, &str)]) -> Env {
    let cluster = TestCluster::with_fake_config(NS, fake).await;
    let url = db.url();
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([
            ("DATABASE_URL".to_owned(), url.clone()),
            ("SNAPSHOT_CLASS".to_owned(), "ebs-snapshots".to_owned()),
            ("HOSTNAME".to_owned(), "expiry-test".to_owned()),
            (
                "GPU_DEV_NAMESPACE".to_owned(),
                cluster.namespace().to_owned(),
            ),
        ])
        .collect();
    let mut config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    config.poll_interval = Duration::from_millis(20);
    let pool = gpudev_store::connect_pool(&config.db).await.unwrap();
    let client = db.connect().await;
    Env {
        db,
        client,
        pool,
        cluster,
        config,
        recorder: Recorder::default(),
    }
}

/// A reservation made by the tests.
#[derive(Clone, Debug)]
pub struct Made {
    pub id: Uuid,
    pub user: Username,
    pub user_id: i64,
}

impl Env {
    /// The fake cluster (only in environments on the fake).
    pub fn fake(&self) -> &FakeCluster {
        self.cluster.expect_fake()
    }

    /// The dev box namespace.
    pub fn ns(&self) -> &str {
        self.cluster.namespace()
    }

    pub fn job(&self) -> Expiry<Recorder> {
        self.job_with(self.recorder.clone())
    }

    pub fn job_with(&self, recorder: Recorder) -> Expiry<Recorder> {
        Expiry::new(
            self.pool.clone(),
            self.cluster.client(),
            self.config.clone(),
            recorder,
        )
        .unwrap()
    }

    pub async fn run(&self) -> Report {
        self.job().run_once().await.unwrap()
    }

    pub async fn sql(&self, sql: &str) {
        self.client.batch_execute(sql).await.unwrap();
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.client.query_one(sql, &[]).await.unwrap().get(0)
    }

    /// A reservation of `user` brought to `status` (through the real transitions).
    pub async fn reservation(&self, user: &str, status: ReservationStatus) -> Made {
        let username = Username::parse(user).unwrap();
        let owner = match users::find_by_name(&self.client, user).await.unwrap() {
            Some(u) => u,
            None => users::create(&self.client, &username, users::Role::User)
                .await
                .unwrap(),
        };
        let reservation_id = Uuid::new_v4();
        let secrets = ReservationSecrets {
            env: BTreeMap::from([("HF_TOKEN".to_owned(), "hf_s3cr3t_value".to_owned())]),
            command: Some("python train.py".to_owned()),
        };
        let new = NewReservation {
            reservation_id,
            user_id: owner.user_id,
            username: username.clone(),
            name: Some(DisplayName::parse("experiment").unwrap()),
            gpu_type: GpuType::parse("h100").unwrap(),
            gpu_count: 8,
            node_count: 1,
            duration_hours: 2.0,
            image: ImageRef::parse("pytorch/pytorch:latest").unwrap(),
            env_names: vec!["HF_TOKEN".to_owned()],
            disk_name: None,
            jupyter_enabled: false,
            github_user: None,
            priority: 0,
            idempotency_key: None,
            cli_version: None,
            request_hash: None,
            secrets: Some(
                SealingKeys::generate("expiry-test")
                    .unwrap()
                    .seal(reservation_id, &secrets)
                    .unwrap(),
            ),
            disk_size_gb: None,
            queue_position: None,
            estimated_start_at: None,
            start_at: None,
        };
        let mut db = self.db.connect().await;
        let queue = Queue::new(gpudev_store::DEFAULT_QUEUE).unwrap();
        reservations::submit(&mut db, &queue, &new).await.unwrap();
        let path: &[ReservationStatus] = match status {
            ReservationStatus::Queued => &[],
            ReservationStatus::Preparing => &[ReservationStatus::Preparing],
            ReservationStatus::Active => &[ReservationStatus::Preparing, ReservationStatus::Active],
            other => &[other],
        };
        for to in path {
            let t = Transition {
                to: *to,
                reason: None,
                actor: "test",
            };
            reservations::transition(&db, new.reservation_id, t)
                .await
                .unwrap();
        }
        Made {
            id: new.reservation_id,
            user: username,
            user_id: owner.user_id,
        }
    }

    /// An active reservation ending `minutes` from now (negative: in the past).
    pub async fn active_ending_in(&self, user: &str, minutes: f64) -> Made {
        let made = self.reservation(user, ReservationStatus::Active).await;
        self.ends_in(&made, minutes).await;
        made
    }

    pub async fn ends_in(&self, made: &Made, minutes: f64) {
        self.client
            .execute(
                "UPDATE reservations SET expires_at = now() + make_interval(secs => $2::float8 * 60) \
                 WHERE reservation_id = $1",
                &[&made.id, &minutes],
            )
            .await
            .unwrap();
    }

    pub async fn status(&self, made: &Made) -> String {
        self.client
            .query_one(
                "SELECT status FROM reservations WHERE reservation_id = $1",
                &[&made.id],
            )
            .await
            .unwrap()
            .get(0)
    }

    pub async fn events(&self, made: &Made) -> Vec<reservations::Event> {
        reservations::events(&self.client, made.id).await.unwrap()
    }

    /// The dev box of a reservation: a Pod, and a Secret and a Service owned by it.
    pub async fn devbox(&self, made: &Made) -> String {
        self.devbox_mounting(made, None).await
    }

    /// [`Env::devbox`] whose Pod mounts the claim `claim` as its home, as a dev box with a disk
    /// does.
    pub async fn devbox_mounting(&self, made: &Made, claim: Option<&str>) -> String {
        let pod_name = gpudev_cluster::names::pod_name(made.id, 0, 1);
        let labels = labels::reservation_labels(made.id, &made.user);
        let volumes = match claim {
            Some(claim) => json!([{"name": "home", "persistentVolumeClaim": {"claimName": claim}}]),
            None => json!([]),
        };
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": self.ns(), "labels": labels},
            "spec": {"containers": [{"name": "dev", "image": "pytorch/pytorch:latest"}],
                     "volumes": volumes}
        }))
        .unwrap();
        let pods: Api<Pod> = Api::namespaced(self.cluster.client(), self.ns());
        let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
        let owner = json!([{
            "apiVersion": "v1", "kind": "Pod", "name": pod_name,
            "uid": pod.metadata.uid.clone().unwrap(), "controller": true
        }]);
        self.create_secret(&format!("{pod_name}-env"), &labels, Some(owner.clone()))
            .await;
        self.create_service(&format!("{pod_name}-ssh"), &labels, Some(owner))
            .await;
        pod_name
    }

    pub async fn create_secret(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        owners: Option<Value>,
    ) {
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": self.ns(), "labels": labels, "ownerReferences": owners},
            "stringData": {"HF_TOKEN": "hf_s3cr3t_value"}
        }))
        .unwrap();
        let api: Api<Secret> = Api::namespaced(self.cluster.client(), self.ns());
        api.create(&PostParams::default(), &secret).await.unwrap();
    }

    pub async fn create_service(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        owners: Option<Value>,
    ) {
        let service: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": self.ns(), "labels": labels, "ownerReferences": owners},
            "spec": {"type": "NodePort", "ports": [{"name": "ssh", "port": 22, "targetPort": 22}]}
        }))
        .unwrap();
        let api: Api<Service> = Api::namespaced(self.cluster.client(), self.ns());
        api.create(&PostParams::default(), &service).await.unwrap();
    }

    /// A disk of the reservation's owner, with its claim in the cluster, attached to it.
    pub async fn attached_disk(&self, made: &Made, name: &str) -> Uuid {
        let disk_id = self.disk(made, name).await;
        assert!(disks::attach(&self.client, disk_id, made.id).await.unwrap());
        disk_id
    }

    /// A disk of the reservation's owner, with its claim in the cluster.
    pub async fn disk(&self, made: &Made, name: &str) -> Uuid {
        let disk_name = DiskName::parse(name).unwrap();
        let disk_id = Uuid::new_v4();
        let kube_name = disk_name.kube_name(&made.user, disk_id);
        let new = disks::NewDisk {
            disk_id,
            user_id: made.user_id,
            disk_name: &disk_name,
            kube_name: &kube_name,
            size_gb: 100,
            operation_id: None,
        };
        let disk = disks::create(&self.client, &new).await.unwrap();
        let claim = disk_claim(
            self.ns(),
            &made.user,
            &DiskMount {
                name: disk_name,
                claim_name: kube_name,
            },
            &DiskClaimSpec {
                storage_class: Some("gp3".into()),
                size_gib: NonZeroU32::new(100).unwrap(),
                restore_from: None,
            },
        );
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.cluster.client(), self.ns());
        api.create(&PostParams::default(), &claim).await.unwrap();
        disk.disk_id
    }

    /// The claim name the database records for a disk.
    pub async fn claim_of(&self, disk_id: Uuid) -> String {
        self.client
            .query_one(
                "SELECT kube_name FROM disks WHERE disk_id = $1",
                &[&disk_id],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// Whether an object of `resource` (plural) named `name` exists in the namespace (being
    /// deleted or not).
    pub async fn exists(&self, resource: &str, name: &str) -> bool {
        self.cluster
            .objects(resource)
            .await
            .iter()
            .any(|o| o["metadata"]["name"] == name)
    }

    /// Sets a pod's finalizers (as a controller outside gpudev would, to hold it).
    pub async fn set_finalizers(&self, pod: &str, finalizers: &[&str]) {
        let pods: Api<Pod> = Api::namespaced(self.cluster.client(), self.ns());
        let patch = json!({ "metadata": { "finalizers": finalizers } });
        pods.patch(
            pod,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    }

    /// Whether the object is gone: now on the fake; on the real control plane, once graceful
    /// deletion and the garbage collector are done (waiting up to 30 s).
    pub async fn gone(&self, resource: &str, name: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if !self.exists(resource, name).await {
                return true;
            }
            if !self.cluster.is_real() || std::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.fake().requests()
    }
}
