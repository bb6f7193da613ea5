//! The one cluster of a test run, shared by every test process of that run.
//!
//! cargo-nextest runs each test in its own process and `cargo test` runs each test binary as one,
//! so "once per run" cannot live in a static alone. The run is identified by the parent process
//! (the nextest runner or cargo) plus `NEXTEST_RUN_ID`, and its cluster lives in a run directory
//! under the base directory (see [`base_dir`]):
//!
//! ```text
//! <base>/run-<parent pid>[-<first 8 characters of the nextest run id>]/
//!     lock        exclusive while a process creates or checks the cluster
//!     info.json   the cluster's port, written once it is fully ready
//!     main/       the shared server (data/, s/, log)
//!     seed/       a stopped copy of main's data with the migrated template, for private clusters
//!     p-*/        private clusters of this run's tests
//! ```
//!
//! The first process to take the lock creates the cluster; the others wait for the lock and read
//! `info.json`. A watchdog stops the servers and deletes the directory when the parent exits.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::error::{Context, Result};
use crate::postgres::bin::PgBin;
use crate::postgres::cluster::Cluster;
use crate::postgres::server::{Server, StopMode};
use crate::postgres::template::{self, TEMPLATE_DB};
use crate::watchdog::{self, sh_quote};

static SHARED: OnceCell<Cluster> = OnceCell::const_new();
static BIN: OnceCell<PgBin> = OnceCell::const_new();

/// What `info.json` records about the shared server.
#[derive(Debug, Serialize, Deserialize)]
struct Info {
    port: u16,
}

/// The test run's shared cluster, created by the first test process of the run that asks.
///
/// # Panics
///
/// When PostgreSQL or PGMQ is missing or the cluster cannot be created; the message says what
/// to install.
#[expect(
    clippy::panic,
    reason = "test helper: without a database the test cannot run"
)]
pub async fn cluster() -> &'static Cluster {
    SHARED
        .get_or_init(|| async {
            open_or_create()
                .await
                .unwrap_or_else(|e| panic!("gpudev-testkit: shared PostgreSQL cluster: {e}"))
        })
        .await
}

/// The server binaries, looked up once per process.
pub(crate) async fn bin() -> Result<&'static PgBin> {
    BIN.get_or_try_init(PgBin::discover).await
}

/// This run's directory (it exists once [`cluster`] has returned).
pub(crate) fn run_dir() -> PathBuf {
    base_dir().join(run_name())
}

/// The stopped copy of the shared cluster that private clusters start from.
pub(crate) fn seed_dir() -> PathBuf {
    run_dir().join("seed")
}

/// `GPUDEV_TESTKIT_DIR` if set, else `/dev/shm/gpudev-testkit` (memory: creating a database is
/// file-heavy, ~15 ms there against ~300 ms on this machine's disk), else the temp dir.
fn base_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GPUDEV_TESTKIT_DIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    let root = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    root.join("gpudev-testkit")
}

/// Short, because the server's Unix socket path inside it must stay under 108 bytes.
fn run_name() -> String {
    let parent = std::os::unix::process::parent_id();
    match std::env::var("NEXTEST_RUN_ID") {
        Ok(id) if !id.is_empty() => {
            let short: String = id
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(8)
                .collect();
            format!("run-{parent}-{short}")
        }
        _ => format!("run-{parent}"),
    }
}

async fn open_or_create() -> Result<Cluster> {
    let bin = bin().await?;
    ensure_base_dir()?;
    let run = run_dir();
    std::fs::create_dir_all(&run).context(format!("creating {}", run.display()))?;
    let _lock = lock(&run.join("lock")).await?;

    if let Some(info) = read_info(&run) {
        if answers(info.port).await {
            return Ok(Cluster::new(info.port));
        }
        eprintln!(
            "gpudev-testkit: the cluster in {} does not answer; recreating it",
            run.display()
        );
    }
    remove_dead_runs(bin, &run);
    create(bin, &run).await
}

/// Creates the shared server, its template and the seed copy; writes `info.json` last.
async fn create(bin: &PgBin, run: &Path) -> Result<Cluster> {
    let started = std::time::Instant::now();
    // Leftovers of a failed or dead attempt with the same name.
    discard(bin, run)?;
    watchdog::spawn(std::os::unix::process::parent_id(), &run_cleanup(bin, run))?;

    let main = run.join("main");
    Server::prepare_dir(bin, &main)?;
    Server::initdb(bin, &main).await?;
    let server = Server::start_new(bin, &main).await?;
    template::prepare(server.port()).await?;
    // The seed must be a cleanly stopped cluster.
    server.stop(StopMode::Fast).await?;
    Server::copy_data(&server.data_dir(), &run.join("seed")).await?;
    server.start().await?;

    write_info(
        run,
        &Info {
            port: server.port(),
        },
    )?;
    if std::env::var_os("GPUDEV_TESTKIT_VERBOSE").is_some() {
        eprintln!(
            "gpudev-testkit: cluster on 127.0.0.1:{} ready in {:?}",
            server.port(),
            started.elapsed()
        );
    }
    Ok(Cluster::new(server.port()))
}

/// Stops and deletes what a previous attempt left in `run`, except the lock.
fn discard(bin: &PgBin, run: &Path) -> Result<()> {
    remove_if_exists(&run.join("info.json"))?;
    let main = run.join("main");
    if main.exists() {
        Server::kill_blocking(bin, &main);
        remove_if_exists(&main)?;
    }
    remove_if_exists(&run.join("seed"))
}

/// The watchdog's shell snippet: stop every server of the run, then delete the run directory.
fn run_cleanup(bin: &PgBin, run: &Path) -> String {
    let run_q = sh_quote(&run.to_string_lossy());
    format!(
        "for d in {run_q}/main {run_q}/p-*; do [ -d \"$d/data\" ] && {} stop -D \"$d/data\" -m immediate -w -s >/dev/null 2>&1; done; rm -rf {run_q}",
        bin.shell_prefix("pg_ctl")
    )
}

/// Deletes the run directories of earlier runs whose parent process is gone (a killed run whose
/// watchdog died with it, or a machine that was not rebooted since).
fn remove_dead_runs(bin: &PgBin, current: &Path) {
    let Ok(entries) = std::fs::read_dir(base_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == current {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("run-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let servers = std::fs::read_dir(&path).into_iter().flatten().flatten();
        for server in servers {
            if server.path().join("data").is_dir() {
                Server::kill_blocking(bin, &server.path());
            }
        }
        crate::control_plane::stop_dead_run(&path);
        // Best effort: another run may be deleting it at the same time.
        let _ = std::fs::remove_dir_all(&path);
    }
}

/// Creates the base directory, open to every user like /tmp itself (tests may run as root and
/// as an ordinary user on the same machine).
pub(crate) fn ensure_base_dir() -> Result<()> {
    let base = base_dir();
    match std::fs::create_dir(&base) {
        Ok(()) => {
            // Best effort: a stricter directory still works for the user who created it.
            let _ = std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o1777));
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).context(format!("creating {}", base.display())),
    }
}

/// Takes the run's exclusive lock, waiting as long as another process holds it.
pub(crate) async fn lock(path: &Path) -> Result<std::fs::File> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .context(format!("opening {}", path.display()))?;
        file.lock().context(format!("locking {}", path.display()))?;
        Ok(file)
    })
    .await
    .context("waiting for the run lock")?
}

fn read_info(run: &Path) -> Option<Info> {
    let text = std::fs::read_to_string(run.join("info.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_info(run: &Path, info: &Info) -> Result<()> {
    let tmp = run.join("info.json.tmp");
    let text = serde_json::to_string(info).context("encoding info.json")?;
    std::fs::write(&tmp, text).context(format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, run.join("info.json")).context("renaming info.json into place")
}

/// Whether a server answers on `port` and holds the template database.
async fn answers(port: u16) -> bool {
    let Ok(client) = template::connect(port, "postgres").await else {
        return false;
    };
    matches!(
        client
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[&TEMPLATE_DB]
            )
            .await,
        Ok(Some(_))
    )
}

fn remove_if_exists(path: &Path) -> Result<()> {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).context(format!("removing {}", path.display())),
    }
}
