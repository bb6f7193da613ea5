//! A running throwaway cluster and the databases tests get from it.

use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::error::{Context, Result};
use crate::postgres::server::SUPERUSER;
use crate::postgres::template::{TEMPLATE_DB, connect};
use crate::postgres::test_db::TestDb;

/// How often to retry `CREATE DATABASE … TEMPLATE` while the template is briefly busy.
const CREATE_ATTEMPTS: u32 = 20;

/// A running PostgreSQL server with PGMQ and a migrated template database.
///
/// The shared cluster ([`crate::cluster`]) cannot be stopped from a test, because other test
/// processes use it; a [`crate::PrivateCluster`] can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    port: u16,
}

impl Cluster {
    pub(crate) fn new(port: u16) -> Self {
        Self { port }
    }

    /// The host the server listens on (always `127.0.0.1`).
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The server's TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser role tests connect as (authentication is `trust`).
    pub fn user(&self) -> &str {
        SUPERUSER
    }

    /// The URL of the server's `postgres` database.
    pub fn admin_url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates a fresh database holding the migrated schema and the `gpu_reservations` queue.
    ///
    /// # Panics
    ///
    /// When the server refuses to create the database.
    #[expect(
        clippy::panic,
        reason = "test helper: a broken test database fails the test"
    )]
    pub async fn test_db(&self) -> TestDb {
        self.create_db(true)
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: {e}"))
    }

    /// Creates a fresh, empty database: no migrations, no PGMQ (for testing migrations).
    ///
    /// # Panics
    ///
    /// When the server refuses to create the database.
    #[expect(
        clippy::panic,
        reason = "test helper: a broken test database fails the test"
    )]
    pub async fn empty_db(&self) -> TestDb {
        self.create_db(false)
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: {e}"))
    }

    async fn create_db(&self, from_template: bool) -> Result<TestDb> {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        // template0 is never connected to, unlike template1, so copying it never waits.
        let template = if from_template {
            TEMPLATE_DB
        } else {
            "template0"
        };
        // FILE_COPY copies the files without writing them to the WAL: about twice as fast as
        // PostgreSQL 15's default (WAL_LOG) here, and the WAL stays small over a long run.
        let sql = format!("CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY");
        let admin = connect(self.port, "postgres").await?;
        let mut attempt = 1;
        loop {
            match admin.batch_execute(&sql).await {
                Ok(()) => break,
                // "source database is being accessed by other users": the session that
                // migrated the template may still be exiting.
                Err(e)
                    if e.code() == Some(&SqlState::OBJECT_IN_USE) && attempt < CREATE_ATTEMPTS =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e).context(format!("creating test database {name}")),
            }
        }
        Ok(TestDb::new(
            name,
            self.host().to_owned(),
            self.port,
            SUPERUSER.to_owned(),
        ))
    }
}
