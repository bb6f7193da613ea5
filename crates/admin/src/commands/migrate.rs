//! `gpudev-admin migrate`

use std::io::Write;

use anyhow::Context as _;
use gpudev_store::DbConfig;

use super::Ctx;
use crate::{Format, output};

pub(crate) async fn run(cfg: &DbConfig, ctx: &Ctx, out: &mut impl Write) -> anyhow::Result<()> {
    // A migration may run long, or wait for another one: no statement bound (see
    // `DbConfig::without_statement_timeout`).
    let cfg = &cfg.clone().without_statement_timeout();
    let (mut client, conn) = gpudev_store::connect::connect(cfg).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to PostgreSQL at {cfg} (from {}): {}",
            cfg.source,
            gpudev_store::pool::describe(&e)
        )
    })?;
    let conn = tokio::spawn(conn);
    let applied = gpudev_store::migrate::run(&mut client)
        .await
        .context("migrating the database")?;
    // The reservation queue named by QUEUE_NAME may differ from the one the migrations create.
    ctx.queue
        .ensure(&client)
        .await
        .context("creating the queue")?;
    drop(client);
    let _ = conn.await;
    let known = gpudev_store::migrate::known();
    match ctx.format {
        Format::Json => output::json(
            out,
            &serde_json::json!({ "applied": applied, "known": known, "queue": ctx.queue.name() }),
        )?,
        Format::Table if applied.is_empty() => writeln!(
            out,
            "schema is current ({} migrations); queue {} ready",
            known.len(),
            ctx.queue.name()
        )?,
        Format::Table => {
            for m in &applied {
                writeln!(out, "applied {m}")?;
            }
            writeln!(
                out,
                "applied {} migration(s); queue {} ready",
                applied.len(),
                ctx.queue.name()
            )?;
        }
    }
    Ok(())
}
