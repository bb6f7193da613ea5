//! gpudev-processor: turns queued reservations into running dev boxes.
//!
//! The database is the truth and queue messages are hints (see `docs/ARCHITECTURE.md`). One
//! processor at a time is the [`leader`]; it alone reads the queue, schedules and writes.
//! Its work is a few steps that tests drive one by one:
//!
//! - [`Processor::process_once`]: read a batch from the queue with a long poll, run a
//!   scheduling pass, handle each message idempotently by re-reading the database, archive
//!   (or hide for a growing delay before redelivery, [`backoff`], or dead-letter) — see
//!   [`consumer`];
//! - [`Processor::scheduler_pass`]: fetch (nodes and pods, live reservations) → decide
//!   ([`gpudev_domain::schedule`], via [`plan`]) → write positions, estimates, admissions and
//!   impossible requests → drive the admitted reservations' objects ([`driver`]);
//! - [`Processor::reconcile`]: level-triggered repair — objects of reservations that are not
//!   live are deleted, missing objects of preparing ones created, Pods settled ([`settle`]);
//! - [`view::ClusterView`]: kube-runtime reflectors of Nodes and Pods that feed the passes and
//!   settle reservations the moment their Pods turn Ready or fail.
//!
//! [`Processor::run_until_stopped`] wraps them in the long-running loop ([`run`]); `main.rs`
//! only parses the configuration, starts logging and calls [`Application`].

pub mod backoff;
pub mod config;
pub mod consumer;
pub mod driver;
pub mod error;
pub mod extensions;
pub mod hint;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod pass;
pub mod plan;
pub mod pods;
pub mod processor;
pub mod reconcile;
pub mod run;
pub mod settle;
pub mod view;

pub use backoff::Backoff;
pub use config::ProcessorConfig;
pub use consumer::Outcome;
pub use error::ProcessorError;
pub use hint::Hint;
pub use metrics::{Metrics, MetricsServer};
pub use pass::PassReport;
pub use processor::Processor;
pub use reconcile::ReconcileReport;
pub use run::{Application, kube_client, run_with_kubeconfig, shutdown_signal};
