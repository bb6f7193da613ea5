//! Integration tests of the availability job: real PostgreSQL + PGMQ, the fake Kubernetes API
//! server, and the real binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests panic with a message on a broken environment"
)]

mod common;
mod figures;
mod hung;
mod runs;
mod scale;
