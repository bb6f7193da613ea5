//! Integration tests of the expiry job: real PostgreSQL + PGMQ, the fake Kubernetes API server
//! and the real binary.
//!
//! In the job's tests, in-pod delivery of warnings is mocked ([`common::Recorder`]): the fake
//! API server cannot serve the exec API, which is a websocket upgrade. Everything else — the
//! claim, the event, the webhook, which Pods are notified — runs for real. The production
//! notifier is tested on its own in `exec.rs`, against a minimal websocket stand-in that speaks
//! the exec protocol.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests panic with a message on a broken environment"
)]

mod common;
mod concurrency;
mod exec;
mod expire;
mod hung;
mod idle;
mod missing;
mod orphans;
mod runs;
mod stale;
mod storage;
mod warnings;
