//! A cluster one test owns, for tests that stop and start PostgreSQL.

use std::ops::Deref;
use std::path::PathBuf;

use crate::error::Result;
use crate::postgres::bin::PgBin;
use crate::postgres::cluster::Cluster;
use crate::postgres::freeze::{self, Frozen};
use crate::postgres::server::{Server, StopMode};
use crate::postgres::shared;
use crate::watchdog::{self, sh_quote};

/// A cluster owned by one test: it may be stopped and started without disturbing other tests.
///
/// It starts from a copy of the shared cluster's data (migrated template included), so
/// [`Cluster::test_db`] works on it too, through `Deref`. Dropping it kills the server and
/// deletes its directory; a watchdog does the same if the test process dies first.
#[derive(Debug)]
pub struct PrivateCluster {
    cluster: Cluster,
    server: Server,
    bin: PgBin,
    dir: PathBuf,
}

/// Starts a private cluster (about 0.2 s: a copy of the shared cluster's stopped data).
///
/// # Panics
///
/// When the cluster cannot be created or started.
#[expect(
    clippy::panic,
    reason = "test helper: without a database the test cannot run"
)]
pub async fn private_cluster() -> PrivateCluster {
    create()
        .await
        .unwrap_or_else(|e| panic!("gpudev-testkit: private PostgreSQL cluster: {e}"))
}

async fn create() -> Result<PrivateCluster> {
    create_with(|_, _| Ok(())).await
}

/// Creates a private cluster, letting `setup` change its directory (`data/` holds the copied
/// cluster) before the server starts.
pub(crate) async fn create_with(
    setup: impl FnOnce(&PgBin, &std::path::Path) -> Result<()>,
) -> Result<PrivateCluster> {
    // The shared cluster's creation leaves the seed this one is copied from.
    shared::cluster().await;
    let bin = shared::bin().await?.clone();
    // Short: the Unix socket path inside must stay under 108 bytes.
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = shared::run_dir().join(format!("p-{}", &id[..12]));
    Server::prepare_dir(&bin, &dir)?;
    watchdog::spawn(
        std::process::id(),
        &format!(
            "{}; rm -rf {}",
            Server::kill_script(&bin, &dir),
            sh_quote(&dir.to_string_lossy())
        ),
    )?;
    Server::copy_data(&shared::seed_dir(), &dir.join("data")).await?;
    setup(&bin, &dir)?;
    let server = Server::start_new(&bin, &dir).await?;
    Ok(PrivateCluster {
        cluster: Cluster::new(server.port()),
        server,
        bin,
        dir,
    })
}

impl PrivateCluster {
    /// The cluster's connection details and database factory.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Shuts the server down cleanly (clients are disconnected) and waits until it is gone.
    ///
    /// # Panics
    ///
    /// When `pg_ctl stop` fails, e.g. because the server is not running.
    #[expect(
        clippy::panic,
        reason = "test helper: a failed fault injection fails the test"
    )]
    pub async fn stop(&self) {
        self.server
            .stop(StopMode::Fast)
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: stopping the private cluster: {e}"));
    }

    /// Kills the server as a crash would (`pg_ctl stop -m immediate`); [`Self::start`] then runs
    /// crash recovery.
    ///
    /// # Panics
    ///
    /// When `pg_ctl stop` fails, e.g. because the server is not running.
    #[expect(
        clippy::panic,
        reason = "test helper: a failed fault injection fails the test"
    )]
    pub async fn crash(&self) {
        self.server
            .stop(StopMode::Immediate)
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: crashing the private cluster: {e}"));
    }

    /// Freezes the server (SIGSTOP to the postmaster and its children) until the returned guard
    /// is dropped: the stand-in for a hung database or a network partition. Open connections
    /// stay open and new ones are accepted by the kernel, but nothing answers.
    ///
    /// # Panics
    ///
    /// When the server's processes cannot be found or signalled.
    #[expect(
        clippy::panic,
        reason = "test helper: a failed fault injection fails the test"
    )]
    pub fn freeze(&self) -> Frozen {
        Frozen::freeze(&self.server.data_dir())
            .unwrap_or_else(|e| panic!("gpudev-testkit: freezing the private cluster: {e}"))
    }

    /// Starts the server again on the same port and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// When the server does not start (the log tail is in the message).
    #[expect(clippy::panic, reason = "test helper: a failed restart fails the test")]
    pub async fn start(&self) {
        self.server
            .start()
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: starting the private cluster: {e}"));
    }
}

impl Deref for PrivateCluster {
    type Target = Cluster;

    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        // A frozen server would ignore the stop until resumed.
        freeze::thaw(&self.server.data_dir());
        Server::kill_blocking(&self.bin, &self.dir);
        // Best effort: the watchdog removes it at process exit otherwise.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
