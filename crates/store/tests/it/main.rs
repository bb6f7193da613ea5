//! Store integration tests against a real PostgreSQL with real PGMQ (one binary, one module per
//! concern).

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking with the error"
)]

mod bookings;
mod common;
mod hung;
mod job_changes;
mod keys_and_users;
mod migrations;
mod other_tables;
mod pooled;
mod queue;
mod rate_limits;
mod reservation_changes;
mod sealed_secrets;
mod submit;
mod tls;
mod transitions;
mod usage;
