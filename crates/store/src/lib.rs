//! gpudev storage: the PostgreSQL pool, migrations, one repository module per table, and the PGMQ
//! reservation queue.
//!
//! Repository functions take any [`Db`]: a pooled connection or its transaction (whose prepared
//! statements are cached per connection), or a plain tokio-postgres client or transaction, so the
//! same function runs on a pooled connection or inside a caller's transaction. Every status change of a reservation is a
//! guarded update that also writes a row to `reservation_events`; see [`reservations`].

pub mod api_keys;
pub mod audit;
pub mod availability;
pub mod config;
pub mod cronjob_runs;
mod db;
pub mod disks;
mod error;
pub mod expiry;
pub mod gpu_types;
pub mod hints;
pub mod job_changes;
pub mod login_signatures;
pub mod migrate;
pub mod pool;
pub mod queue;
pub mod reservations;
pub mod ssh_keys;
pub mod usage;
pub mod users;

pub use config::{ConfigError, DbConfig};
pub use db::Db;
pub use error::StoreError;
pub use hints::{Action, QueueMessage};
pub use pool::{Pool, connect_pool};
pub use queue::Queue;

/// The queue the API writes reservation messages to and the processor reads.
pub const DEFAULT_QUEUE: &str = "gpu_reservations";
