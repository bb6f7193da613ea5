//! A moto server emulating AWS STS (and the IAM it needs), in strict authentication mode.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::process::{Child, Command};

use crate::error::{Context, Error, Result};
use crate::port::free_port;
use crate::sts::admin::{call, python_next_to};
use crate::sts::credentials::{AccessKey, Credentials, StsRejection};

/// The account moto puts every resource in.
pub const ACCOUNT_ID: &str = "123456789012";

/// The region the emulator is addressed with.
pub const REGION: &str = "us-east-1";

/// How long moto may take to start listening.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How many ports to try when another process takes ours first.
const START_ATTEMPTS: usize = 3;

/// A running moto server answering STS and IAM on 127.0.0.1, in strict authentication mode:
/// unknown keys get 403 `InvalidClientTokenId`, wrong secrets 403 `SignatureDoesNotMatch`.
///
/// It holds an admin IAM user (inline policy allowing `*`) that creates roles and assumes them
/// for [`Moto::mint`]. The server is killed when this value is dropped.
///
/// Note that moto does **not** check the clock skew of signed requests (`x-amz-date`): a
/// server that accepts presigned STS requests must reject stale ones itself, and tests of that
/// check cannot rely on moto.
#[derive(Debug)]
pub struct Moto {
    /// Killed on drop.
    _child: Child,
    port: u16,
    python: PathBuf,
    admin: AccessKey,
    /// moto's request log (it logs every request; a pipe nobody reads would block it).
    log: tempfile::NamedTempFile,
}

/// Starts a moto server on a free port and switches it to strict authentication (≈ 1 s).
///
/// `moto_server` is looked up in `GPUDEV_MOTO_SERVER`, then `<workspace>/.tools/venv/bin/`
/// (where `scripts/install-python-tools` puts it), then `PATH`.
///
/// # Panics
///
/// When moto is not installed or does not start; the message says how to install it.
#[expect(
    clippy::panic,
    reason = "test helper: without the emulator the test cannot run"
)]
pub async fn sts() -> Moto {
    start()
        .await
        .unwrap_or_else(|e| panic!("gpudev-testkit: STS emulator (moto): {e}"))
}

async fn start() -> Result<Moto> {
    let moto_server = find_moto_server()?;
    let python = python_next_to(&moto_server);
    let mut last_error = Error::msg("no start attempted");
    for _ in 0..START_ATTEMPTS {
        match start_on_free_port(&moto_server).await {
            Ok((child, port, log)) => {
                let endpoint = endpoint(port);
                let admin: AccessKey = call(&python, "setup", &endpoint, &[]).await?;
                return Ok(Moto {
                    _child: child,
                    port,
                    python,
                    admin,
                    log,
                });
            }
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

async fn start_on_free_port(moto_server: &Path) -> Result<(Child, u16, tempfile::NamedTempFile)> {
    let port = free_port()?;
    let log = tempfile::Builder::new()
        .prefix("gpudev-moto-")
        .suffix(".log")
        .tempfile()
        .context("creating moto's log file")?;
    let stderr = log.reopen().context("opening moto's log file")?;
    let stdout = log.reopen().context("opening moto's log file")?;
    let mut child = Command::new(moto_server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .context(format!("starting {}", moto_server.display()))?;

    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("checking on moto_server")? {
            let output = std::fs::read_to_string(log.path()).unwrap_or_default();
            return Err(Error::msg(format!(
                "moto_server exited ({status}) before listening on port {port}:\n{output}"
            )));
        }
        // Werkzeug binds only once moto is loaded, so a connection means it will answer.
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok((child, port, log));
        }
        if Instant::now() > deadline {
            return Err(Error::msg(format!(
                "moto_server did not listen on port {port} within {STARTUP_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn find_moto_server() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("GPUDEV_MOTO_SERVER") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::msg(format!(
                "GPUDEV_MOTO_SERVER={} does not exist",
                path.display()
            )))
        };
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/moto_server");
    if venv.is_file() {
        return Ok(venv);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            Error::msg(
                "moto_server not found (GPUDEV_MOTO_SERVER, .tools/venv/bin, PATH); \
                 run scripts/install-python-tools",
            )
        })
}

fn endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The JSON `moto_admin.py caller-identity` prints.
#[derive(Deserialize)]
struct CallerIdentityAnswer {
    status: u16,
    #[serde(default)]
    arn: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

impl Moto {
    /// `http://127.0.0.1:<port>`: the value for `AWS_ENDPOINT_URL_STS`.
    pub fn endpoint(&self) -> String {
        endpoint(self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The region to address the emulator with ([`REGION`]).
    pub fn region(&self) -> &'static str {
        REGION
    }

    /// The admin IAM user's key, allowed to do anything.
    pub fn admin(&self) -> &AccessKey {
        &self.admin
    }

    /// The path of moto's request log, for debugging a failing test.
    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// Temporary credentials for `role` (created on first use, trusting the admin user) with
    /// session name `session`, as `aws sts assume-role` would give them.
    ///
    /// # Panics
    ///
    /// When moto refuses (e.g. an invalid role or session name).
    #[expect(
        clippy::panic,
        reason = "test helper: failing to mint credentials fails the test"
    )]
    pub async fn mint(&self, role: &str, session: &str) -> Credentials {
        call(
            &self.python,
            "mint",
            &self.endpoint(),
            &[
                &self.admin.access_key_id,
                &self.admin.secret_access_key,
                &self.admin.arn,
                role,
                session,
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("gpudev-testkit: minting credentials for {role}/{session}: {e}"))
    }

    /// A new long-lived access key for the IAM user `name` (created on first use, without any
    /// policy or role), for tests that IAM users are refused where a role is required.
    ///
    /// # Panics
    ///
    /// When moto refuses (e.g. an invalid user name).
    #[expect(
        clippy::panic,
        reason = "test helper: failing to create a key fails the test"
    )]
    pub async fn iam_user_credentials(&self, name: &str) -> AccessKey {
        call(
            &self.python,
            "iam-user",
            &self.endpoint(),
            &[
                &self.admin.access_key_id,
                &self.admin.secret_access_key,
                name,
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("gpudev-testkit: creating IAM user key for {name}: {e}"))
    }

    /// Calls `sts:GetCallerIdentity` signed with the given credentials (through boto3) and
    /// returns the caller's ARN, or how STS rejected the call.
    ///
    /// # Panics
    ///
    /// When the helper cannot run or moto answers something other than an AWS error.
    #[expect(
        clippy::panic,
        reason = "test helper: a broken emulator fails the test"
    )]
    pub async fn caller_identity(
        &self,
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
    ) -> std::result::Result<String, StsRejection> {
        let mut args = vec![access_key_id, secret_access_key];
        args.extend(session_token);
        let answer: CallerIdentityAnswer =
            call(&self.python, "caller-identity", &self.endpoint(), &args)
                .await
                .unwrap_or_else(|e| panic!("gpudev-testkit: GetCallerIdentity: {e}"));
        match (answer.status, answer.arn) {
            (200, Some(arn)) => Ok(arn),
            (status, _) => Err(StsRejection {
                status,
                code: answer.code.unwrap_or_default(),
            }),
        }
    }
}
