//! Throwaway PostgreSQL with PGMQ and the project's migrations.

mod bin;
pub(crate) mod cluster;
pub(crate) mod freeze;
pub(crate) mod private;
mod server;
pub(crate) mod shared;
mod template;
pub(crate) mod test_db;
pub(crate) mod tls;

use test_db::TestDb;

/// A fresh database with the migrated schema and the `gpu_reservations` queue, on the test
/// run's shared cluster (a copy of the template: a few tens of milliseconds).
///
/// # Panics
///
/// When the shared cluster cannot be created or the database cannot be copied.
pub async fn test_db() -> TestDb {
    shared::cluster().await.test_db().await
}

/// A fresh, empty database on the shared cluster (no migrations, no PGMQ), for tests of the
/// migrations themselves.
///
/// # Panics
///
/// When the shared cluster cannot be created or the database cannot be created.
pub async fn empty_db() -> TestDb {
    shared::cluster().await.empty_db().await
}
