//! gpudev-api over real HTTP, against a real PostgreSQL with PGMQ (one binary, one module per
//! area).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test by panicking with the error"
)]

mod admin;
mod agent;
mod auth_failures;
mod auth_middleware;
mod availability;
mod bodies;
mod bookings;
pub mod browser;
mod console;
mod console_admin;
mod console_oidc;
mod contract;
mod disks;
mod docs;
mod groups;
mod health;
pub mod helpers;
mod hung;
mod job_cache;
mod jobs_actions;
mod jobs_common;
mod jobs_extend;
mod jobs_read;
mod jobs_ssh_access;
mod jobs_submit;
mod keys;
mod login;
mod me;
mod oidc_login;
mod original_client;
mod outage;
mod races;
mod shared_limits;
mod strict_contract;
mod submit_writer;
