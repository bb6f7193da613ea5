//! `gpudev-admin queue stats|dead-letters`

use std::io::Write;

use gpudev_store::DbConfig;

use super::{Ctx, connect};
use crate::{Format, QueueCommand, output};

pub(crate) async fn run(
    cfg: &DbConfig,
    ctx: &Ctx,
    cmd: QueueCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let pool = connect(cfg).await?;
    let db = pool.get().await?;
    match cmd {
        QueueCommand::Stats => {
            let main = ctx.queue.metrics(&**db).await?;
            let dlq = ctx.queue.dead_letter_queue().metrics(&**db).await?;
            match ctx.format {
                Format::Json => output::json(out, &[main, dlq])?,
                Format::Table => {
                    let age =
                        |s: Option<i32>| s.map(|s| format!("{s}s")).unwrap_or_else(|| "-".into());
                    let rows: Vec<Vec<String>> = [main, dlq]
                        .iter()
                        .map(|m| {
                            vec![
                                m.queue_name.clone(),
                                m.queue_length.to_string(),
                                age(m.oldest_msg_age_sec),
                                age(m.newest_msg_age_sec),
                                m.total_messages.to_string(),
                            ]
                        })
                        .collect();
                    output::table(
                        out,
                        &["QUEUE", "DEPTH", "OLDEST", "NEWEST", "TOTAL SENT"],
                        &rows,
                    )?;
                }
            }
        }
        QueueCommand::DeadLetters { limit } => {
            let letters = ctx.queue.dead_letters(&**db, limit).await?;
            match ctx.format {
                Format::Json => output::json(out, &letters)?,
                Format::Table => {
                    let rows: Vec<Vec<String>> = letters
                        .iter()
                        .map(|m| {
                            let field = |k: &str| {
                                m.body.get(k).map(|v| match v {
                                    serde_json::Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                })
                            };
                            let inner = m.body.get("message");
                            let get_inner = |k: &str| {
                                inner
                                    .and_then(|i| i.get(k))
                                    .and_then(|v| v.as_str())
                                    .unwrap_or("-")
                                    .to_owned()
                            };
                            vec![
                                field("original_msg_id").unwrap_or_else(|| "-".into()),
                                get_inner("action"),
                                get_inner("reservation_id"),
                                field("read_ct").unwrap_or_else(|| "-".into()),
                                output::time(Some(m.enqueued_at)),
                                field("reason").unwrap_or_default(),
                            ]
                        })
                        .collect();
                    output::table(
                        out,
                        &[
                            "MSG",
                            "ACTION",
                            "RESERVATION",
                            "READS",
                            "DEAD-LETTERED",
                            "REASON",
                        ],
                        &rows,
                    )?;
                }
            }
        }
    }
    Ok(())
}
