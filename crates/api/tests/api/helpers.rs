//! `spawn_app` and a small client: the API on a free port over its own fresh database.

use std::collections::HashMap;

use gpudev_api::{ApiConfig, Application, ShutdownHandle};
use gpudev_domain::{ApiKey, SshPublicKey, Username};
use gpudev_store::api_keys::{self, NewKey};
use gpudev_store::ssh_keys;
use gpudev_store::users::{self, Role, User};
use gpudev_testkit::TestDb;
use reqwest::{Method, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A running API and the database behind it.
pub struct TestApp {
    /// Base URL, `http://127.0.0.1:PORT`.
    pub base: String,
    /// Metrics URL.
    pub metrics: String,
    /// The database.
    pub db: TestDb,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Stops the app.
    pub shutdown: ShutdownHandle,
}

/// The key-encryption key test apps seal environment values and commands with (made up for the
/// tests; a real one comes from `openssl rand -base64 32`).
pub const TEST_SECRETS_KEYS: &str = "api-test:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

/// The User-Agent of the test client: gpudev's client library.
pub const GPUDEV_CLIENT_AGENT: &str = "gpudev-client/test";

/// The SSH public key every user made by [`TestApp::user_with_key`] starts with.
pub const TEST_SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@laptop";

/// Settings for a test app: a fresh database, free ports, no drain delay. `extra` overrides.
pub fn test_config(db: &TestDb, extra: &[(&str, &str)]) -> ApiConfig {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), db.url()),
        ("BIND_ADDR".into(), "127.0.0.1:0".into()),
        ("METRICS_ADDR".into(), "127.0.0.1:0".into()),
        ("SHUTDOWN_DRAIN_SECONDS".into(), "0".into()),
        ("LOG_FORMAT".into(), "pretty".into()),
        ("DB_POOL_SIZE".into(), "4".into()),
        ("DB_CONNECT_TIMEOUT_SECONDS".into(), "2".into()),
        ("SECRETS_ENCRYPTION_KEYS".into(), TEST_SECRETS_KEYS.into()),
    ]);
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    ApiConfig::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

/// Starts the API on a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the API on a fresh database with extra settings.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let db = gpudev_testkit::test_db().await;
    spawn_app_on(db, extra).await
}

/// Starts the API on an existing database (a second replica, say).
pub async fn spawn_app_on(db: TestDb, extra: &[(&str, &str)]) -> TestApp {
    let app = Application::build(test_config(&db, extra)).await.unwrap();
    let base = format!("http://{}", app.api_addr());
    let metrics = format!("http://{}/metrics", app.metrics_addr());
    let shutdown = app.shutdown_handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        metrics,
        db,
        // Speaks as gpudev's client library does (an extension applies at once, ADR 15); the
        // tests of the original client set that client's own User-Agent.
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(GPUDEV_CLIENT_AGENT)
            .build()
            .unwrap(),
        shutdown,
    }
}

impl TestApp {
    /// Creates a user directly in the database and a key for them; returns the user and the key.
    /// A new user has an SSH public key registered ([`TEST_SSH_KEY`]), as anyone who reserves
    /// dev boxes does (a submit without one is refused).
    pub async fn user_with_key(&self, name: &str, role: Role) -> (User, String) {
        let mut client = self.db.connect().await;
        let user = match users::find_by_name(&client, name).await.unwrap() {
            Some(u) => u,
            None => {
                let user = users::create(&client, &Username::parse(name).unwrap(), role)
                    .await
                    .unwrap();
                ssh_keys::replace(
                    &mut client,
                    user.user_id,
                    &[SshPublicKey::parse(TEST_SSH_KEY).unwrap()],
                )
                .await
                .unwrap();
                user
            }
        };
        let key = ApiKey::generate().unwrap();
        api_keys::insert(
            &client,
            user.user_id,
            &key,
            &NewKey {
                ttl: chrono::Duration::hours(2),
                description: Some("test"),
                auth_method: "admin",
                auth_issuer: None,
                rate_limit_per_minute: None,
            },
        )
        .await
        .unwrap();
        (user, key.expose_secret().to_owned())
    }

    /// Sends a request with an optional key and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// GET with a key.
    pub async fn get(&self, path: &str, key: &str) -> Response {
        self.call(Method::GET, path, Some(key), None).await
    }

    /// Whether `/openapi.json` lists `status` among the answers of `method` (lower case) on the
    /// templated `path`.
    pub async fn documents(&self, method: &str, path: &str, status: u16) -> bool {
        let doc: Value = self
            .http
            .get(format!("{}/openapi.json", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        doc["paths"][path][method]["responses"][status.to_string()].is_object()
    }

    /// POST JSON with a key: a request type of `gpudev-api-types`, or raw JSON for the tests
    /// that send what no client would.
    pub async fn post(&self, path: &str, key: &str, body: impl Serialize) -> Response {
        let body = serde_json::to_value(body).unwrap();
        self.call(Method::POST, path, Some(key), Some(body)).await
    }
}

impl TestApp {
    /// The text of the API's `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(&self.metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The single number a SQL query counts.
pub async fn count(app: &TestApp, sql: &str) -> i64 {
    app.db
        .connect()
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

/// A queued one-T4 reservation of `user`'s asking for disk `home`, written straight to the
/// database (disks are attached to it as the processor would).
pub async fn queued_reservation(app: &TestApp, user: &User) -> uuid::Uuid {
    let mut client = app.db.connect().await;
    let new = gpudev_store::reservations::NewReservation {
        reservation_id: uuid::Uuid::new_v4(),
        user_id: user.user_id,
        username: user.username.clone(),
        name: None,
        gpu_type: gpudev_domain::GpuType::parse("t4").unwrap(),
        gpu_count: 1,
        node_count: 1,
        duration_hours: 1.0,
        image: gpudev_domain::ImageRef::parse("ubuntu").unwrap(),
        env_names: Vec::new(),
        disk_name: Some(gpudev_domain::DiskName::parse("home").unwrap()),
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
    let queue = gpudev_store::Queue::new("gpu_reservations").unwrap();
    gpudev_store::reservations::submit(&mut client, &queue, &new)
        .await
        .unwrap();
    new.reservation_id
}

/// Status and body of a response read as the answer type the client reads, so an answer that
/// drifts from its type fails here.
pub async fn status_as<T: DeserializeOwned>(resp: Response) -> (u16, T) {
    let (status, body) = status_json(resp).await;
    let typed = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("not the expected answer ({status}, {e}): {body}"));
    (status, typed)
}

/// Status and JSON body of a response.
pub async fn status_json(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, body)
}
