//! `gpu-dev` end to end: the real binary against the real API (in-process, over HTTP), a real
//! PostgreSQL with PGMQ, moto as STS in strict mode, and for the waiting parts the real processor
//! over the fake Kubernetes API server. Each test gets its own database, STS and home directory.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests fail by panicking with the error"
)]

mod helpers;

mod auth;
mod errors;
mod jobs;
mod journey;
mod load;
mod local;
mod oidc;
mod processor;
mod resources;
