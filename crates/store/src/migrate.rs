//! Schema migrations, embedded from the repository's `migrations/` folder at build time.
//!
//! Applying them is idempotent, safe when several processes do it at once (a PostgreSQL advisory
//! lock serialises them), and refuses a database that carries migrations this build does not know,
//! which is what a database already upgraded by a newer release looks like.

use tokio_postgres::Client;

use crate::StoreError;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// Advisory lock key held while migrating ("gpudevmg" as an integer).
const MIGRATION_LOCK: i64 = 0x6770_7564_6576_6d67;

/// Applies every pending migration and returns the names of those applied by this call
/// (empty when the schema was already current).
pub async fn run(client: &mut Client) -> Result<Vec<String>, StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply(client).await;
    // The lock is released even when the migration failed; if the connection died, PostgreSQL
    // released it already.
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let applied = result?;
    unlock?;
    Ok(applied)
}

async fn apply(client: &mut Client) -> Result<Vec<String>, StoreError> {
    let report = embedded::migrations::runner()
        .set_grouped(true)
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .run_async(client)
        .await
        .map_err(|e| StoreError::Migration(migration_message(&e)))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

fn migration_message(e: &refinery::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// The migrations this build knows, as `V<version>__<name>`, oldest first.
pub fn known() -> Vec<String> {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect()
}
