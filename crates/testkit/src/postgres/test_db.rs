//! A database a single test owns.

use tokio_postgres::{Client, Config};

/// A database on a throwaway cluster that belongs to one test.
///
/// It is never dropped: the whole cluster is deleted at the end of the test run, which is
/// cheaper than dropping databases one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDb {
    name: String,
    host: String,
    port: u16,
    user: String,
}

impl TestDb {
    pub(crate) fn new(name: String, host: String, port: u16, user: String) -> Self {
        Self {
            name,
            host,
            port,
            user,
        }
    }

    /// The database name (`t_<uuid>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's host (always `127.0.0.1`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The server's TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The role to connect as (a superuser; authentication is `trust`, no password).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// `postgres://user@host:port/name`, for code that takes a database URL.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, self.name
        )
    }

    /// The URL of the server's `postgres` database, for tests that create or drop databases.
    pub fn admin_url(&self) -> String {
        format!(
            "postgres://{}@{}:{}/postgres",
            self.user, self.host, self.port
        )
    }

    /// A `tokio_postgres` configuration for this database (e.g. to build a pool).
    pub fn config(&self) -> Config {
        let mut config = Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.name);
        config
    }

    /// Connects to this database; the connection is driven by a task on the current runtime.
    ///
    /// # Panics
    ///
    /// When the server does not accept the connection.
    #[expect(
        clippy::panic,
        reason = "test helper: an unreachable test database fails the test"
    )]
    pub async fn connect(&self) -> Client {
        crate::postgres::template::connect(self.port, &self.name)
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: {e}"))
    }
}
