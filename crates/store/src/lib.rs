//! gpudev storage: the PostgreSQL pool, migrations, one repository module per table, and the PGMQ
//! reservation queue.
//!
//! Repository functions take any [`Db`]: a pooled connection or its transaction (whose prepared
//! statements are cached per connection), or a plain tokio-postgres client or transaction, so the
//! same function runs on a pooled connection or inside a caller's transaction. Every status change of a reservation is a
//! guarded update that also writes a row to `reservation_events`; see [`reservations`].

pub mod activity;
pub mod api_keys;
pub mod audit;
pub mod availability;
mod columns;
pub mod config;
pub mod connect;
pub mod console;
pub mod console_oidc;
pub mod cronjob_runs;
mod db;
pub mod disks;
mod error;
pub mod expiry;
pub mod gpu_types;
pub mod hints;
pub mod job_changes;
pub mod leader;
pub mod login_signatures;
pub mod migrate;
pub mod pool;
pub mod queue;
pub mod rate_limits;
pub mod reservations;
pub mod scheduling;
pub mod sealing;
pub mod ssh_keys;
pub mod tls;
pub mod usage;
pub mod users;

pub use config::{ConfigError, DbConfig};
pub use db::{Db, query_committing};
pub use error::StoreError;
pub use hints::{Action, QueueMessage};
pub use pool::{Pool, connect_pool};
pub use queue::Queue;
pub use sealing::{ReservationSecrets, SealError, SealedSecrets, SealingKeys};

/// The live statuses ([`gpudev_domain::ReservationStatus::LIVE`]) as an SQL list,
/// `('queued', 'preparing', 'active')`, for `WHERE status IN` inside `concat!`. A literal rather
/// than a bound parameter, so the partial indexes on live reservations (whose predicate is this
/// same list) serve the queries; a test checks it against `LIVE` and the migrations.
#[macro_export]
macro_rules! live_statuses {
    () => {
        "('queued', 'preparing', 'active')"
    };
}

/// The queue the API writes reservation messages to and the processor reads.
pub const DEFAULT_QUEUE: &str = "gpu_reservations";

#[cfg(test)]
mod tests {
    use gpudev_domain::ReservationStatus;

    #[test]
    fn the_live_status_list_is_the_domains_and_the_partial_indexes() {
        let from_domain: Vec<String> = ReservationStatus::LIVE
            .iter()
            .map(|s| format!("'{s}'"))
            .collect();
        assert_eq!(live_statuses!(), format!("({})", from_domain.join(", ")));
        let indexes = include_str!("../../../migrations/V202611240060__submit_indexes.sql");
        assert!(
            indexes.contains(concat!("WHERE status IN ", live_statuses!())),
            "the partial indexes no longer match the live statuses"
        );
    }
}
