//! The PGMQ queue, through PGMQ's own SQL functions (`pgmq.send`, `pgmq.read_with_poll`, …); the
//! submit statement alone inserts its messages into the queue's table ([`Queue::table`]).
//!
//! Messages are hints: the reservation row is the truth. A message is archived once handled, hidden
//! again for a while when handling failed ([`Queue::set_vt`]), and its `read_ct` counts deliveries
//! so a consumer can dead-letter a message that keeps failing.

use std::time::Duration;

use crate::error::NotFound;
use crate::{Db, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// Longest queue name: PGMQ allows 47 characters and the dead-letter queue adds [`DLQ_SUFFIX`].
pub const MAX_QUEUE_NAME: usize = 43;
/// Suffix of a queue's dead-letter queue.
pub const DLQ_SUFFIX: &str = "_dlq";

/// A named PGMQ queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    name: String,
}

/// A message read from a queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// PGMQ's id for the message.
    pub msg_id: i64,
    /// How many times it has been read (1 on first delivery).
    pub read_ct: i32,
    /// When it was first sent.
    pub enqueued_at: DateTime<Utc>,
    /// When it becomes visible again unless archived or deleted.
    pub vt: DateTime<Utc>,
    /// The JSON body.
    pub body: Value,
}

/// Queue depth and age, from `pgmq.metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueMetrics {
    /// The queue's name.
    pub queue_name: String,
    /// Messages waiting or in flight.
    pub queue_length: i64,
    /// Age of the newest message, in seconds.
    pub newest_msg_age_sec: Option<i32>,
    /// Age of the oldest message, in seconds.
    pub oldest_msg_age_sec: Option<i32>,
    /// Messages ever sent.
    pub total_messages: i64,
}

/// Why a queue name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue name must be 1-43 characters of [A-Za-z0-9_], got {0:?}")]
pub struct BadQueueName(pub String);

impl Queue {
    /// A queue name as PGMQ accepts it: letters, digits and `_`, short enough for its table names.
    pub fn new(name: &str) -> Result<Self, BadQueueName> {
        let ok = !name.is_empty()
            && name.len() <= MAX_QUEUE_NAME
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(Self {
                name: name.to_owned(),
            })
        } else {
            Err(BadQueueName(name.to_owned()))
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The table PGMQ keeps the queue's messages in, `pgmq.q_<name>`, for a statement that sends
    /// messages as one of its parts: an `INSERT INTO` it of `(vt, message)` is what `pgmq.send`
    /// runs, without the per-call dynamic SQL of PGMQ's functions. Safe to put into SQL text (the
    /// name was checked in [`Queue::new`]).
    pub fn table(&self) -> String {
        format!("pgmq.q_{}", self.name)
    }

    /// Creates the queue and its dead-letter queue if they do not exist (PGMQ's `create` is
    /// idempotent).
    pub async fn ensure(&self, db: &impl Db) -> Result<(), StoreError> {
        db.execute("SELECT pgmq.create($1)", &[&self.name]).await?;
        db.execute("SELECT pgmq.create($1)", &[&self.dead_letter_queue().name])
            .await?;
        Ok(())
    }

    /// True when the queue exists.
    pub async fn exists(&self, db: &impl Db) -> Result<bool, StoreError> {
        let row = db
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pgmq.list_queues() WHERE queue_name = $1)",
                &[&self.name],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Sends a message; inside a caller's transaction it becomes visible only on commit.
    pub async fn send<T: Serialize>(&self, db: &impl Db, body: &T) -> Result<i64, StoreError> {
        let json = serde_json::to_value(body)
            .map_err(|e| StoreError::Corrupt(format!("message does not serialise: {e}")))?;
        let row = db
            .query_one("SELECT pgmq.send($1, $2::jsonb)", &[&self.name, &json])
            .await?;
        Ok(row.get(0))
    }

    /// Reads up to `limit` messages, hiding them for `vt_seconds`; returns at once.
    pub async fn read(
        &self,
        db: &impl Db,
        vt_seconds: i32,
        limit: i32,
    ) -> Result<Vec<Message>, StoreError> {
        let rows = db
            .query(
                "SELECT msg_id, read_ct, enqueued_at, vt, message FROM pgmq.read($1, $2, $3)",
                &[&self.name, &vt_seconds, &limit],
            )
            .await?;
        Ok(rows.iter().map(message_from_row).collect())
    }

    /// Long poll: waits up to `poll_seconds` for at least one message.
    pub async fn read_with_poll(
        &self,
        db: &impl Db,
        vt_seconds: i32,
        limit: i32,
        poll_seconds: i32,
    ) -> Result<Vec<Message>, StoreError> {
        let rows = db
            .query(
                "SELECT msg_id, read_ct, enqueued_at, vt, message \
                 FROM pgmq.read_with_poll($1, $2, $3, $4, 100)",
                &[&self.name, &vt_seconds, &limit, &poll_seconds],
            )
            .await?;
        Ok(rows.iter().map(message_from_row).collect())
    }

    /// Moves a message to the archive; false when it was not in the queue any more.
    pub async fn archive(&self, db: &impl Db, msg_id: i64) -> Result<bool, StoreError> {
        let row = db
            .query_one(
                "SELECT pgmq.archive($1, $2::bigint)",
                &[&self.name, &msg_id],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Hides a message until `delay` from now (PGMQ's `set_vt`, to the millisecond), whether it
    /// is visible or not. Returns when it will be visible again, or `None` when it is no longer
    /// in the queue.
    pub async fn set_vt(
        &self,
        db: &impl Db,
        msg_id: i64,
        delay: Duration,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = db
            .query_opt(
                "SELECT vt FROM pgmq.set_vt($1, $2::bigint, \
                 clock_timestamp() + make_interval(secs => $3::float8))",
                &[&self.name, &msg_id, &delay.as_secs_f64()],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Deletes a message outright; false when it was not in the queue any more.
    pub async fn delete(&self, db: &impl Db, msg_id: i64) -> Result<bool, StoreError> {
        let row = db
            .query_one("SELECT pgmq.delete($1, $2::bigint)", &[&self.name, &msg_id])
            .await?;
        Ok(row.get(0))
    }

    /// Depth and age of the queue.
    pub async fn metrics(&self, db: &impl Db) -> Result<QueueMetrics, StoreError> {
        if !self.exists(db).await? {
            return Err(StoreError::NotFound(NotFound::Queue(self.name.clone())));
        }
        let row = db
            .query_one(
                "SELECT queue_name, queue_length, newest_msg_age_sec, oldest_msg_age_sec, total_messages \
                 FROM pgmq.metrics($1)",
                &[&self.name],
            )
            .await?;
        Ok(QueueMetrics {
            queue_name: row.get(0),
            queue_length: row.get(1),
            newest_msg_age_sec: row.get(2),
            oldest_msg_age_sec: row.get(3),
            total_messages: row.get(4),
        })
    }

    /// The dead-letter queue paired with this queue (`<name>_dlq`).
    pub fn dead_letter_queue(&self) -> Queue {
        Queue {
            name: format!("{}{DLQ_SUFFIX}", self.name),
        }
    }

    /// Gives up on a message: sends it, with the reason and its delivery count, to the dead-letter
    /// queue and deletes it here. Run it inside a transaction so the move is all-or-nothing.
    pub async fn dead_letter(
        &self,
        db: &impl Db,
        msg: &Message,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let letter = serde_json::json!({
            "queue": self.name,
            "original_msg_id": msg.msg_id,
            "read_ct": msg.read_ct,
            "enqueued_at": msg.enqueued_at,
            "reason": reason,
            "message": msg.body,
        });
        self.dead_letter_queue().send(db, &letter).await?;
        self.delete(db, msg.msg_id).await
    }

    /// The messages in the dead-letter queue, newest first, without consuming them.
    pub async fn dead_letters(&self, db: &impl Db, limit: i64) -> Result<Vec<Message>, StoreError> {
        let dlq = self.dead_letter_queue();
        if !dlq.exists(db).await? {
            return Err(StoreError::NotFound(NotFound::Queue(dlq.name)));
        }
        // Browsing the queue's table leaves the messages untouched, where `pgmq.read` would
        // count a delivery.
        let sql = format!(
            "SELECT msg_id, read_ct, enqueued_at, vt, message FROM {} \
             ORDER BY msg_id DESC LIMIT $1",
            dlq.table()
        );
        let rows = db.query(&sql, &[&limit]).await?;
        Ok(rows.iter().map(message_from_row).collect())
    }
}

fn message_from_row(r: &tokio_postgres::Row) -> Message {
    Message {
        msg_id: r.get(0),
        read_ct: r.get(1),
        enqueued_at: r.get(2),
        vt: r.get(3),
        body: r.get(4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_follow_pgmq_rules() {
        assert!(Queue::new("gpu_reservations").is_ok());
        assert!(Queue::new("").is_err());
        assert!(Queue::new("bad-name").is_err());
        assert!(Queue::new("x; DROP TABLE users").is_err());
        assert!(Queue::new(&"q".repeat(43)).is_ok());
        assert!(Queue::new(&"q".repeat(44)).is_err());
    }
}
