//! Integration tests of the processor on real PostgreSQL + PGMQ and the fake Kubernetes API
//! server, driving its steps directly (and, where the point is the loop, running it).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests fail by panicking with the error"
)]

mod agent;
mod bench;
mod chart_rbac;
mod common;
mod dead_letters;
mod extensions;
mod faults;
mod hung;
mod leadership;
mod lifecycle;
mod manifests;
mod operations;
mod pod_failures;
mod retries;
mod robustness;
mod scheduling;
mod sealed_secrets;
mod ssh_keys;
mod watch;
