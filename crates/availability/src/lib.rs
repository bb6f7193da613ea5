//! `gpudev-availability`: the CronJob that tells the API how much of each GPU type is free.
//!
//! One run ([`run_once`]) lists the Nodes and the unfinished Pods of every namespace, computes
//! per active GPU type the figures [`compute`] describes (the same per-node capacity the
//! processor's scheduler uses, [`gpudev_cluster::capacity`]), adds the GPUs queued reservations
//! ask for, writes every type's row in one transaction with the time and the writer, and
//! records the run in `cronjob_runs`. It only overwrites figures, so running it twice, or two
//! runs overlapping, leaves the same rows.

pub mod compute;
pub mod config;
pub mod run;

pub use config::Config;
pub use run::{JOB, Report, RunError, run_once};
