use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gpudev_store::Pool;

/// Keys used since the last flush; `last_used_at` is written for all of them in one statement.
#[derive(Debug, Default)]
pub struct UsageRecorder {
    pending: Mutex<HashSet<i64>>,
}

impl UsageRecorder {
    /// Notes that a key authenticated a request.
    pub fn record(&self, key_id: i64) {
        if let Ok(mut p) = self.pending.lock() {
            p.insert(key_id);
        }
    }

    /// Writes `last_used_at = now()` for every key noted since the last flush.
    pub async fn flush(&self, pool: &Pool) {
        let ids: Vec<i64> = match self.pending.lock() {
            Ok(mut p) => p.drain().collect(),
            Err(_) => return,
        };
        if ids.is_empty() {
            return;
        }
        let res = async {
            let db = pool.get().await?;
            gpudev_store::api_keys::touch_many(&*db, &ids).await
        }
        .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, keys = ids.len(), "could not record key use; will retry");
            if let Ok(mut p) = self.pending.lock() {
                p.extend(ids);
            }
        }
    }
}

/// Flushes key use every `every` until the process ends.
pub fn spawn_usage_flusher(
    recorder: Arc<UsageRecorder>,
    pool: Pool,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            recorder.flush(&pool).await;
        }
    })
}
