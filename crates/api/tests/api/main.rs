//! gpudev-api over real HTTP, against a real PostgreSQL with PGMQ (one binary, one module per
//! area).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test by panicking with the error"
)]

mod admin;
mod auth_middleware;
mod disks;
mod docs;
mod health;
pub mod helpers;
mod keys;
mod login;
mod me;
