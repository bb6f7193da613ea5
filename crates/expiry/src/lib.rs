//! `gpudev-expiry`: the CronJob that ends reservations on time and cleans up after them.
//!
//! One run ([`Expiry::run_once`]) does, in order:
//! 1. `queued` reservations older than `QUEUED_TIMEOUT_HOURS` → `cancelled` with the reason;
//! 2. `preparing` longer than `PREPARING_TIMEOUT_MINUTES` → `failed`, Pods deleted, disk released;
//! 3. `active` past `expires_at` + `GRACE_PERIOD_SECONDS` → Pods deleted *and gone*, then the
//!    disk snapshotted (`VolumeSnapshot`, class `SNAPSHOT_CLASS`) and released, `expired`;
//! 4. `active` whose Pod has been missing for `POD_MISSING_MINUTES` → `expired`, "pod
//!    disappeared" (measured across runs with a first-seen-missing marker);
//! 5. warnings at `WARNING_MINUTES` before the end, once per reservation and level: a
//!    `warning` event, a notice in the Pod ([`notify`]) and optionally a webhook ([`webhook`]);
//! 6. Pods, Services and Secrets labelled as ours with no live reservation → deleted;
//! 7. snapshot bookkeeping: pending → ready, beyond the newest `KEEP_SNAPSHOTS` → deleted;
//! 8. soft-deleted disks past their delete date → claim and snapshots deleted, disk purged.
//!
//! Every change is guarded (see [`gpudev_store::expiry`]), so two overlapping runs do each
//! thing once. The run ends with a summary line of counts per action and a `cronjob_runs`
//! record (start, end, outcome, counts) for alerting on the last success. A failing item or
//! step does not stop the run, except a database that does not answer: the run then stops
//! after that statement's bound and exits non-zero, and the next run does the rest.

pub mod config;
pub mod k8s;
pub mod notify;
pub mod run;
mod steps;
pub mod webhook;

pub use config::{Config, WebhookUrl};
pub use notify::{ExecNotifier, Notice, NotifyError, PodNotifier};
pub use run::{ACTOR, Expiry, JOB, Report, StepError, Summary};
