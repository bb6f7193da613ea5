//! The migrated template database every test database is copied from.

use tokio_postgres::{Client, NoTls};

use crate::error::{Context, Error, Result};
use crate::postgres::server::SUPERUSER;

/// Name of the template database holding the migrated schema and the PGMQ extension.
pub(crate) const TEMPLATE_DB: &str = "gpudev_template";

/// Checks that PGMQ can be installed, creates [`TEMPLATE_DB`], runs the project's migrations on
/// it, and closes it to connections so copying it never finds it busy.
pub(crate) async fn prepare(port: u16) -> Result<()> {
    let admin = connect(port, "postgres").await?;
    let pgmq_available = admin
        .query_opt(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pgmq'",
            &[],
        )
        .await
        .context("checking pg_available_extensions")?
        .is_some();
    if !pgmq_available {
        return Err(Error::msg(
            "the pgmq extension is not installed in this PostgreSQL; run `sudo scripts/install-pgmq`",
        ));
    }
    admin
        .batch_execute(&format!("CREATE DATABASE {TEMPLATE_DB}"))
        .await
        .context("creating the template database")?;

    let mut client = connect(port, TEMPLATE_DB).await?;
    gpudev_store::migrate::run(&mut client)
        .await
        .context("running the migrations on the template database")?;
    drop(client);

    // Nobody may connect from now on, so CREATE DATABASE … TEMPLATE never finds a stray session;
    // it also guards the template against tests that would change it by mistake.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {TEMPLATE_DB} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
        ))
        .await
        .context("closing the template database")?;
    Ok(())
}

/// Connects as the superuser to `dbname` and drives the connection on the current runtime.
pub(crate) async fn connect(port: u16, dbname: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user(SUPERUSER)
        .dbname(dbname)
        .connect_timeout(std::time::Duration::from_secs(10))
        .connect(NoTls)
        .await
        .context(format!(
            "connecting to database {dbname} on 127.0.0.1:{port}"
        ))?;
    tokio::spawn(async move {
        // The connection ends with an error when the server goes away; the client reports it.
        let _ = connection.await;
    });
    Ok(client)
}
