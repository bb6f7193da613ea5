//! The world a test runs `gpu-dev` in: STS (moto), the API on a fresh database, a temporary
//! home, AWS credentials in the environment, and an optional recording proxy in front of the API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gpudev_api::{ApiConfig, Application};
use gpudev_testkit::{Credentials, Moto, TestDb};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

pub const ROLE: &str = "SSOCloudDevGpuReservation";
pub const ADMIN_ROLE: &str = "GpuDevAdmin";
pub const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETUbNlJBfWzOjE2V2VI7uME1ZcLQOGKhOdceh1N5BOe alice@laptop";
pub const SSH_KEY_2: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@desk";

/// The GitHub login reservations name for their SSH keys where the test registers none.
pub const GITHUB_USER: &str = "octocat";

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts exit 0 and returns the run.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "gpu-dev failed: {self:#?}");
        self
    }

    /// Standard output as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// Options of a world.
#[derive(Debug, Clone)]
pub struct Options {
    /// Session name of the minted credentials (the username).
    pub user: &'static str,
    /// The role the credentials are for.
    pub role: &'static str,
    /// Put a recording proxy between the CLI and the API.
    pub record: bool,
    /// More API settings (`OIDC_ISSUERS_JSON`, …).
    pub api_vars: Vec<(&'static str, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            user: "alice",
            role: ROLE,
            record: false,
            api_vars: Vec::new(),
        }
    }
}

pub struct World {
    pub moto: Moto,
    pub db: TestDb,
    /// What the CLI talks to (the API or the proxy).
    pub api_url: String,
    /// The minted AWS credentials in the CLI's environment.
    pub aws: Credentials,
    pub home: tempfile::TempDir,
    pub recorder: Option<Recorder>,
}

/// The API's settings for tests: fresh database, free ports, moto as STS, no key cache (a key
/// changed in the database counts at once), generous login limits.
/// The key-encryption key the test API seals environment values with and the test processor
/// opens them with (made up for the tests).
pub const TEST_SECRETS_KEYS: &str = "cli-test:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

/// `extra` adds settings or overrides these.
pub fn api_config_with(db: &TestDb, moto: &Moto, extra: &[(&'static str, String)]) -> ApiConfig {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url()),
        ("BIND_ADDR", "127.0.0.1:0".into()),
        ("METRICS_ADDR", "127.0.0.1:0".into()),
        ("SHUTDOWN_DRAIN_SECONDS", "0".into()),
        ("LOG_FORMAT", "pretty".into()),
        ("DB_POOL_SIZE", "4".into()),
        ("AWS_ENDPOINT_URL_STS", moto.endpoint()),
        ("STS_ALLOWED_HOSTS", format!("127.0.0.1:{}", moto.port())),
        ("ADMIN_AWS_ROLE", ADMIN_ROLE.into()),
        ("KEY_CACHE_SECONDS", "0".into()),
        ("LOGIN_RATE_LIMIT_PER_MINUTE", "1000".into()),
        ("RATE_LIMIT_PER_MINUTE", "100000".into()),
        ("SECRETS_ENCRYPTION_KEYS", TEST_SECRETS_KEYS.into()),
    ]);
    vars.extend(extra.iter().cloned());
    ApiConfig::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

impl World {
    pub async fn new() -> Self {
        Self::with(Options::default()).await
    }

    pub async fn with(opts: Options) -> Self {
        let (moto, db) = tokio::join!(gpudev_testkit::sts(), gpudev_testkit::test_db());
        let app = Application::build(api_config_with(&db, &moto, &opts.api_vars))
            .await
            .unwrap();
        let api_addr = app.api_addr();
        tokio::spawn(app.run_until_stopped());
        let aws = moto.mint(opts.role, opts.user).await;
        let recorder = if opts.record {
            Some(Recorder::start(api_addr).await)
        } else {
            None
        };
        let api_url = recorder
            .as_ref()
            .map_or_else(|| format!("http://{api_addr}"), |r| r.url.clone());
        Self {
            moto,
            db,
            api_url,
            aws,
            home: tempfile::tempdir().unwrap(),
            recorder,
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn config_dir(&self) -> PathBuf {
        self.home().join("xdg")
    }

    pub fn credentials_path(&self) -> PathBuf {
        self.home().join(".gpu-dev").join("credentials")
    }

    /// The stored credentials file as JSON.
    pub fn credentials(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.credentials_path()).unwrap()).unwrap()
    }

    /// The environment of every run: nothing inherited but PATH; HOME and XDG_CONFIG_HOME in the
    /// temporary home; the AWS credentials and STS endpoint; instance metadata off (no request
    /// may leave this machine); quick polls.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), self.home().display().to_string()),
            (
                "XDG_CONFIG_HOME".into(),
                self.config_dir().display().to_string(),
            ),
            ("GPU_DEV_API_URL".into(), self.api_url.clone()),
            ("GPU_DEV_POLL_SECONDS".into(), "0.2".into()),
            ("AWS_ACCESS_KEY_ID".into(), self.aws.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                self.aws.secret_access_key.clone(),
            ),
            ("AWS_SESSION_TOKEN".into(), self.aws.session_token.clone()),
            ("AWS_REGION".into(), self.moto.region().into()),
            ("AWS_ENDPOINT_URL_STS".into(), self.moto.endpoint()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    }

    /// A command for the binary with the world's environment, `set` added and `unset` removed.
    pub fn command(
        &self,
        args: &[&str],
        set: &[(&str, &str)],
        unset: &[&str],
    ) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gpu-dev"));
        cmd.args(args)
            .env_clear()
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in self.env() {
            if !unset.contains(&k.as_str()) {
                cmd.env(k, v);
            }
        }
        for (k, v) in set {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs the binary with extra and removed environment variables (at most 60 s).
    pub async fn run_env(&self, args: &[&str], set: &[(&str, &str)], unset: &[&str]) -> Run {
        let child = self.command(args, set, unset).output();
        let out = tokio::time::timeout(Duration::from_secs(60), child)
            .await
            .unwrap_or_else(|_| panic!("gpu-dev {args:?} did not finish within 60 s"))
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs the binary.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[], &[]).await
    }

    /// `gpu-dev login` (presigned STS), asserted to succeed.
    pub async fn login(&self) -> Run {
        self.run(&["login"]).await.ok()
    }

    /// `gpu-dev reserve --no-wait -o json` of `gpus` t4 GPUs, with a GitHub user for its SSH
    /// keys (the world's user has none registered); the job id.
    pub async fn reserve_no_wait(&self, extra: &[&str]) -> String {
        let mut args = vec![
            "reserve",
            "-t",
            "t4",
            "--no-wait",
            "-o",
            "json",
            "--github-user",
            GITHUB_USER,
        ];
        args.extend_from_slice(extra);
        let run = self.run(&args).await.ok();
        run.json()["job_id"].as_str().unwrap().to_owned()
    }

    pub async fn sql(&self) -> tokio_postgres::Client {
        self.db.connect().await
    }

    /// Moves a reservation as the processor would (queued → preparing → active) and gives it an
    /// SSH address, for tests that need an active job without running the processor.
    pub async fn activate(&self, job_id: &str) {
        use gpudev_domain::ReservationStatus;
        use gpudev_store::reservations::{self, Transition};
        let id: uuid::Uuid = job_id.parse().unwrap();
        let db = self.sql().await;
        for to in [ReservationStatus::Preparing, ReservationStatus::Active] {
            reservations::transition(
                &db,
                id,
                Transition {
                    to,
                    reason: Some("simulated processor"),
                    actor: "test",
                },
            )
            .await
            .unwrap();
        }
        db.execute(
            "UPDATE reservations SET node_ip = '10.0.0.7', node_port = 30022, \
             ssh_command = 'ssh -p 30022 dev@10.0.0.7' WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    }
}

/// A TCP proxy that records every byte the CLI sends to the API.
pub struct Recorder {
    pub url: String,
    seen: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut from_cli, mut to_cli) = inbound.into_split();
                    let (mut from_api, mut to_api) = outbound.into_split();
                    let up = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n) = from_cli.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            record.lock().unwrap().extend_from_slice(&buf[..n]);
                            if to_api.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = to_api.shutdown().await;
                    };
                    let down = async move {
                        let _ = tokio::io::copy(&mut from_api, &mut to_cli).await;
                        let _ = to_cli.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Self { url, seen, task }
    }

    /// Everything sent so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// How many requests started with `request_line` (`GET /v1/jobs`).
    pub fn count(&self, request_line: &str) -> usize {
        self.text().matches(request_line).count()
    }

    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

/// Writes a file (and its directories).
pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}
