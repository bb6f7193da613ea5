//! Shared arrangements: a fresh database, a cluster (the fake, or the real control plane when
//! `GPUDEV_TEST_KUBE=real`), users with SSH keys, submissions, and processors driven step by
//! step.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gpudev_domain::{DiskName, GpuType, ImageRef, ReservationStatus, SshPublicKey, Username};
use gpudev_processor::{Processor, ProcessorConfig};
use gpudev_store::reservations::{self, NewReservation, Reservation, Transition};
use gpudev_store::{Queue, ReservationSecrets, SealingKeys, ssh_keys, users};
use gpudev_testkit::kube::{Fault, FaultKind, Verb};
use gpudev_testkit::{FakeCluster, FakeConfig, TestCluster, TestDb};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use uuid::Uuid;

/// The dev box namespace on the fake (the real control plane gives each test its own).
pub const NS: &str = "gpu-dev";
pub const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETUbNlJBfWzOjE2V2VI7uME1ZcLQOGKhOdceh1N5BOe test@gpudev";

pub struct Env {
    pub db: TestDb,
    pub cluster: TestCluster,
    pub config: ProcessorConfig,
    /// What submits are sealed with (the API's current key); the processor is given the same.
    pub keys: SealingKeys,
}

/// A user and their id.
pub struct User {
    pub id: i64,
    pub name: String,
}

/// What to submit.
#[derive(Clone)]
pub struct Ask {
    pub gpu_type: &'static str,
    pub gpu_count: i32,
    pub nodes: i32,
    pub hours: f64,
    pub priority: i32,
    pub disk: Option<&'static str>,
    pub jupyter: bool,
    pub image: &'static str,
    pub env: BTreeMap<String, String>,
    pub command: Option<String>,
}

impl Ask {
    pub fn gpus(gpu_type: &'static str, gpu_count: i32) -> Self {
        Self {
            gpu_type,
            gpu_count,
            nodes: 1,
            hours: 2.0,
            priority: 0,
            disk: None,
            jupyter: false,
            image: "pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel",
            env: BTreeMap::new(),
            command: None,
        }
    }
}

/// An environment on the back end `GPUDEV_TEST_KUBE` chooses.
pub async fn env() -> Env {
    let cluster = TestCluster::new(NS).await;
    env_on(cluster).await
}

/// An environment on the fake, for tests of what only the fake can do (injected faults,
/// request counts, pods that fail on demand); `None`, and the test skipped, when the suite runs
/// against the real control plane.
pub async fn fake_env(why: &str) -> Option<Env> {
    if gpudev_testkit::skip_on_real(why) {
        return None;
    }
    Some(env_on(TestCluster::fake_with(NS, FakeConfig::default())).await)
}

pub async fn env_on(cluster: TestCluster) -> Env {
    env_with_db(cluster, gpudev_testkit::test_db().await, &[])
}

/// An environment on the fake whose database lives on `pg`, a PostgreSQL cluster the test owns
/// (so it may freeze or stop it; the shared one never is), with the processor's settings read
/// from `vars` first (a short `DB_STATEMENT_TIMEOUT_SECONDS`, say). `None`, and the test
/// skipped, on the real control plane (see [`fake_env`]).
pub async fn private_env(
    pg: &gpudev_testkit::PrivateCluster,
    vars: &[(&str, &str)],
    why: &str,
) -> Option<Env> {
    if gpudev_testkit::skip_on_real(why) {
        return None;
    }
    let cluster = TestCluster::fake_with(NS, FakeConfig::default());
    Some(env_with_db(cluster, pg.test_db().await, vars))
}

/// [`fake_env`] with the processor's settings read from `vars` first.
pub async fn fake_env_with(vars: &[(&str, &str)], why: &str) -> Option<Env> {
    if gpudev_testkit::skip_on_real(why) {
        return None;
    }
    let cluster = TestCluster::fake_with(NS, FakeConfig::default());
    Some(env_with_db(cluster, gpudev_testkit::test_db().await, vars))
}

/// An environment over `db` whose processor settings read `vars` first.
pub fn env_with_db(cluster: TestCluster, db: TestDb, vars: &[(&str, &str)]) -> Env {
    let mut config = ProcessorConfig::for_database_with(&db.url(), vars).unwrap();
    config.namespace = cluster.namespace().to_owned();
    config.gpu_type_label = cluster.gpu_type_label().to_owned();
    let keys = SealingKeys::generate("test-1").unwrap();
    config.secret_keys = Some(keys.clone());
    Env {
        db,
        cluster,
        config,
        keys,
    }
}

impl Env {
    /// The fake cluster (only in environments from [`fake_env`]).
    pub fn fake(&self) -> &FakeCluster {
        self.cluster.expect_fake()
    }

    /// The dev box namespace.
    pub fn ns(&self) -> &str {
        self.cluster.namespace()
    }

    /// A processor over this environment (not yet the leader).
    pub async fn processor(&self) -> Processor {
        self.processor_with(self.config.clone()).await
    }

    pub async fn processor_with(&self, config: ProcessorConfig) -> Processor {
        Processor::build(config, self.cluster.client())
            .await
            .unwrap()
    }

    /// A processor that already leads.
    pub async fn leader(&self) -> Processor {
        let p = self.processor().await;
        assert!(p.try_become_leader().await.unwrap(), "could not lead");
        p
    }

    /// A user with an SSH key. On the real control plane the dev boxes of a user whose name
    /// starts with `slow-` take 3 s to run instead of 200 ms (`tools/kube/kwok-stages.yaml`):
    /// tests that look at a dev box while it is preparing use such a user.
    pub async fn user(&self, name: &str) -> User {
        let mut db = self.db.connect().await;
        let user = users::create(&db, &Username::parse(name).unwrap(), users::Role::User)
            .await
            .unwrap();
        ssh_keys::replace(&mut db, user.user_id, &[SshPublicKey::parse(KEY).unwrap()])
            .await
            .unwrap();
        User {
            id: user.user_id,
            name: name.to_owned(),
        }
    }

    pub async fn submit(&self, user: &User, ask: Ask) -> Uuid {
        let mut db = self.db.connect().await;
        self.submit_on(&mut db, user, ask).await
    }

    /// [`Self::submit`] on a connection the caller keeps (for bursts).
    pub async fn submit_on(&self, db: &mut tokio_postgres::Client, user: &User, ask: Ask) -> Uuid {
        let id = Uuid::new_v4();
        let secrets = ReservationSecrets {
            env: ask.env,
            command: ask.command,
        };
        let new = NewReservation {
            reservation_id: id,
            user_id: user.id,
            username: Username::parse(&user.name).unwrap(),
            name: None,
            gpu_type: GpuType::parse(ask.gpu_type).unwrap(),
            gpu_count: ask.gpu_count,
            node_count: ask.nodes,
            duration_hours: ask.hours,
            image: ImageRef::parse(ask.image).unwrap(),
            env_names: secrets.env.keys().cloned().collect(),
            disk_name: ask.disk.map(|d| DiskName::parse(d).unwrap()),
            jupyter_enabled: ask.jupyter,
            github_user: None,
            priority: ask.priority,
            idempotency_key: None,
            cli_version: None,
            request_hash: None,
            secrets: (!secrets.is_empty()).then(|| self.keys.seal(id, &secrets).unwrap()),
            disk_size_gb: None,
            queue_position: None,
            estimated_start_at: None,
            start_at: None,
        };
        reservations::submit(db, &self.queue(), &new).await.unwrap();
        id
    }

    pub fn queue(&self) -> Queue {
        self.config.queue.clone()
    }

    pub async fn get(&self, id: Uuid) -> Reservation {
        let db = self.db.connect().await;
        reservations::get(&db, id).await.unwrap()
    }

    pub async fn status(&self, id: Uuid) -> ReservationStatus {
        self.get(id).await.status
    }

    /// Cancels as the API does: the guarded transition and a `cancel` hint in one transaction.
    pub async fn cancel(&self, id: Uuid) {
        let mut db = self.db.connect().await;
        let tx = db.transaction().await.unwrap();
        let r = reservations::transition(
            &tx,
            id,
            Transition {
                to: ReservationStatus::Cancelled,
                reason: Some("cancelled by its owner"),
                actor: "test",
            },
        )
        .await
        .unwrap();
        reservations::send_hint(
            &tx,
            &self.queue(),
            &r,
            gpudev_store::QueueMessage::Cancel,
            json!({}),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    /// Sends a raw message body.
    pub async fn send_raw(&self, body: Value) -> i64 {
        let db = self.db.connect().await;
        self.queue().send(&db, &body).await.unwrap()
    }

    /// Makes every hidden message visible again, as if its visibility timeout had passed.
    pub async fn expire_visibility(&self) {
        let db = self.db.connect().await;
        db.execute(
            &format!("UPDATE pgmq.q_{} SET vt = now()", self.queue().name()),
            &[],
        )
        .await
        .unwrap();
    }

    /// Messages still in the queue (visible or not).
    pub async fn queued_messages(&self) -> i64 {
        let db = self.db.connect().await;
        db.query_one(
            &format!("SELECT count(*) FROM pgmq.q_{}", self.queue().name()),
            &[],
        )
        .await
        .unwrap()
        .get(0)
    }

    /// The dead-letter queue's messages, newest first.
    pub async fn dead_letters(&self) -> Vec<Value> {
        let db = self.db.connect().await;
        self.queue()
            .dead_letters(&db, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.body)
            .collect()
    }

    /// Alice's reservation of one H100 on a one-node cluster where every Pod create fails.
    pub async fn submit_with_failing_pod_creates(&self) -> Uuid {
        self.cluster.seed_nodes("h100", 1, 8).await;
        let alice = self.user("alice").await;
        let id = self.submit(&alice, Ask::gpus("h100", 1)).await;
        self.fake().inject(
            Fault::new(FaultKind::Status500)
                .verb(Verb::Create)
                .resource("pods")
                .times(1000),
        );
        id
    }

    /// Handles the only message's `delivery`-th delivery, which fails: checks that the message is hidden
    /// for a delay within this delivery's backoff and stays hidden, then makes it visible again (as
    /// if the delay had passed). Returns the delay in seconds. The message must fail.
    pub async fn fail_delivery(&self, p: &Processor, delivery: i32) -> f64 {
        let outcome = p.process_once().await.unwrap();
        assert_eq!(outcome.retried, 1, "delivery {delivery}: {outcome:?}");
        let db = self.db.connect().await;
        let row = db
            .query_one(
                &format!(
                    "SELECT read_ct, extract(epoch FROM vt - clock_timestamp())::float8 FROM pgmq.q_{}",
                    self.queue().name()
                ),
                &[],
            )
            .await
            .unwrap();
        let (read_ct, hidden): (i32, f64) = (row.get(0), row.get(1));
        assert_eq!(read_ct, delivery);
        let ceiling = self.config.retry_backoff.ceiling(delivery).as_secs_f64();
        // Half the ceiling to the ceiling, less the moments since the delay was set.
        assert!(
            hidden > ceiling / 2.0 - 1.0 && hidden <= ceiling,
            "delivery {delivery}: hidden for {hidden:.2} s, expected {:.1}..={ceiling:.1} s",
            ceiling / 2.0
        );
        assert_eq!(
            p.process_once().await.unwrap().received,
            0,
            "delivery {delivery}: the message came back before its delay"
        );
        self.expire_visibility().await;
        hidden
    }

    /// Objects of one kind in the dev box namespace.
    pub async fn objects(&self, plural: &str) -> Vec<Value> {
        self.cluster.objects(plural).await
    }

    /// Objects of one reservation (pods, services, secrets) in the namespace, counting those
    /// being deleted.
    pub async fn objects_of(&self, id: Uuid) -> usize {
        let label = id.hyphenated().to_string();
        let mut count = 0;
        for kind in ["pods", "services", "secrets"] {
            count += self
                .objects(kind)
                .await
                .iter()
                .filter(|o| o["metadata"]["labels"]["gpudev.io/reservation-id"] == label.as_str())
                .count();
        }
        count
    }

    /// Asserts that nothing of `id` is left: at once on the fake; on the real control plane
    /// once graceful deletion and the garbage collector are done (within 30 s).
    pub async fn assert_gone(&self, id: Uuid) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = self.objects_of(id).await;
            if left == 0 {
                return;
            }
            assert!(
                self.cluster.is_real() && Instant::now() < deadline,
                "{left} objects of {id} are left"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn creates(&self, plural: &str) -> usize {
        self.fake().count_ok(Verb::Create, plural)
    }

    /// A running pod outside gpudev holding `gpus` GPUs of `node`.
    pub async fn occupy(&self, node: &str, gpus: u32) {
        let name = format!("job-{}", &Uuid::new_v4().simple().to_string()[..10]);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": {
                "nodeName": node,
                "containers": [{
                    "name": "train", "image": "busybox",
                    "resources": { "limits": { "nvidia.com/gpu": gpus.to_string() } },
                }],
            },
        }))
        .unwrap();
        let namespace = self.cluster.namespace_like("research").await;
        let api: Api<Pod> = Api::namespaced(self.cluster.client(), &namespace);
        api.create(&PostParams::default(), &pod).await.unwrap();
    }
}

/// A processor running its own loop (`run_until_stopped`) in the background.
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), gpudev_processor::ProcessorError>>,
}

/// Starts `p`'s loop in the background.
pub fn run(p: &Processor) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let p = p.clone();
    let task = tokio::spawn(async move {
        p.run_until_stopped(async move {
            let _ = stopped.await;
        })
        .await
    });
    Running { stop, task }
}

impl Running {
    /// Asks the loop to stop; it must within 10 s and without an error.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("stops on shutdown")
            .unwrap()
            .unwrap();
    }
}

/// Drives the processor until `id` has `status`, stepping the fake cluster in between.
pub async fn until_status(env: &Env, p: &Processor, id: Uuid, status: ReservationStatus) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if env.status(id).await == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never became {status}: {:?}",
            env.get(id).await
        );
        env.cluster.step().await;
        p.reconcile().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (without driving anything) until `id` has `status`.
pub async fn wait_status(env: &Env, id: Uuid, status: ReservationStatus, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if env.status(id).await == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} did not become {status} within {within:?}: {:?}",
            env.get(id).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
