use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use gpudev_store::DbConfig;
use tokio_postgres::{AsyncMessage, NoTls};

use super::KeyCache;

/// The channel the database triggers notify on (payload: the user id).
pub const CHANNEL: &str = "gpudev_auth_changed";

/// Keeps a `LISTEN` connection open and invalidates cached keys on every notification. While the
/// connection is down the cache is not trusted, so revocation is never missed.
pub fn spawn_change_listener(cfg: DbConfig, cache: Arc<KeyCache>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            match listen(&cfg, &cache).await {
                Ok(()) => backoff = Duration::from_millis(200),
                Err(e) => {
                    tracing::warn!(error = %e, "auth change listener disconnected; key cache off");
                }
            }
            cache.set_live(false);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    })
}

async fn listen(cfg: &DbConfig, cache: &KeyCache) -> Result<(), tokio_postgres::Error> {
    let (client, mut conn) = cfg.pg().connect(NoTls).await?;
    let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(msg) = messages.next().await {
            match msg {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(Some(n.payload().to_owned())).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "auth change listener connection error");
                    break;
                }
            }
        }
        let _ = tx.send(None);
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // Anything cached before we were listening may be stale.
    cache.clear();
    cache.set_live(true);
    while let Some(Some(payload)) = rx.recv().await {
        match payload.parse::<i64>() {
            Ok(user_id) => cache.invalidate_user(user_id),
            Err(_) => cache.clear(),
        }
    }
    driver.abort();
    drop(client);
    Ok(())
}
