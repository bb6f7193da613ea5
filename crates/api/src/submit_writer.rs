//! The writer of submits: concurrent submits share a transaction, and so one WAL flush.
//!
//! A submit's handler hands its checked request here and waits for the answer. Up to
//! [`WRITERS`] transactions write at once; requests that arrive while they are busy wait, and
//! the next free writer takes all of them (up to [`MAX_BATCH`]) into one transaction, sent to
//! the server in one round trip: BEGIN, the per-user submit locks of everyone in it, one
//! statement for all the submits (quotas, rows, events, secrets, queue messages and the audit
//! records of those stored: [`reservations::submit_audited_committing`]), COMMIT. Nothing waits
//! for a batch to fill: under light load each submit is a batch of one, as soon as it arrives. A
//! submit is answered only after the commit that made it durable; a refused one only after its
//! audit record, written once the batch is committed, is.
//!
//! A transaction takes the submit lock only of users whose submits count what they have waiting
//! (a queued cap, a cap on booked hours: [`Checks::need_user_lock`]), and holds it until its
//! commit. Such submits of one user are never in two of this process's transactions at once: a
//! writer leaves them waiting while the user's lock is held by another of its transactions, and
//! takes them into the next one. Two transactions of one process therefore never wait for each
//! other's locks, and one user submitting in parallel (a CI account) fills one transaction
//! instead of several that take turns. Submits that need no lock go into any transaction.
//!
//! A refusal (over the quota, a reused key or id) is an answer, not an error, and leaves the
//! transaction usable. Should a statement fail all the same, the batch is rolled back and each of
//! its submits written again on its own, so one bad submit never fails the others.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use gpudev_store::reservations::{self, Checked, Checks, NewReservation, Quota};
use gpudev_store::{Pool, Queue, StoreError};
use tokio::sync::oneshot;

use crate::audit::{self, Actor, Audit, RequestCtx};
use crate::auth::Caller;
use crate::metrics::Metrics;

/// Transactions writing submits at once in one API process.
pub const WRITERS: usize = 2;

/// Most submits in one transaction.
pub const MAX_BATCH: usize = 64;

/// Fewest submits for which a transaction starts while another is being written. Most of a
/// transaction's cost to the database does not depend on how many submits it holds (measured
/// with `scripts/bench-api`: about 0.5 ms of PostgreSQL CPU per submit at 4 to a transaction,
/// 0.2 ms at 30), so under moderate load two small transactions at once only halve the batches;
/// one waits for the other until this many could share it.
pub const MIN_SECOND_BATCH: usize = 8;

/// One submit, checked and ready to write.
#[derive(Debug)]
pub struct SubmitRequest {
    /// The reservation to store.
    pub new: NewReservation,
    /// What the statement checks before writing: the caller's queued cap, if any, and whether
    /// the dev box could get an SSH key.
    pub checks: Checks,
    /// Who submits, for the lock and the audit record.
    pub caller: Caller,
    /// The request, for the audit record.
    pub ctx: RequestCtx,
}

type Reply = oneshot::Sender<Result<Checked, StoreError>>;

/// Submits to write in one transaction, and the users whose locks it takes.
type Batch = (Vec<(SubmitRequest, Reply)>, Vec<i64>);

/// What waits to be written and what is being written.
#[derive(Debug, Default)]
struct Desk {
    /// Submits not yet taken, in arrival order.
    waiting: VecDeque<(SubmitRequest, Reply)>,
    /// Users whose submit locks are held by a transaction being written.
    locked: HashSet<i64>,
    /// Transactions being written.
    writing: usize,
}

impl Desk {
    /// The next batch, in arrival order: up to [`MAX_BATCH`] waiting submits, leaving those
    /// that need their user's lock while it is held; none unless at least `least` can go. The
    /// users it locks are then locked.
    fn take_batch(&mut self, least: usize) -> Option<Batch> {
        let ready = self
            .waiting
            .iter()
            .filter(|(r, _)| !(r.needs_lock() && self.locked.contains(&r.caller.user_id)))
            .take(least)
            .count();
        if ready < least {
            return None;
        }
        let mut batch = Vec::new();
        let mut left = VecDeque::with_capacity(self.waiting.len());
        for (request, reply) in self.waiting.drain(..) {
            let held = request.needs_lock() && self.locked.contains(&request.caller.user_id);
            if batch.len() < MAX_BATCH && !held {
                batch.push((request, reply));
            } else {
                left.push_back((request, reply));
            }
        }
        self.waiting = left;
        let mut locks: Vec<i64> = batch
            .iter()
            .filter(|(r, _)| r.needs_lock())
            .map(|(r, _)| r.caller.user_id)
            .collect();
        locks.sort_unstable();
        locks.dedup();
        self.locked.extend(&locks);
        Some((batch, locks))
    }
}

impl SubmitRequest {
    fn needs_lock(&self) -> bool {
        self.checks.need_user_lock(&self.new)
    }
}

/// Groups concurrent submits into shared transactions (see the module's documentation).
#[derive(Debug)]
pub struct SubmitWriter {
    pool: Pool,
    queue: Queue,
    metrics: Arc<Metrics>,
    desk: Mutex<Desk>,
    writers: usize,
}

/// A batch's turn. Its statement done, the next batch may start while this one's commit is
/// flushed; at its end, even if its writing panicked, the users it locked may
/// be locked again.
struct Turn {
    writer: Arc<SubmitWriter>,
    locks: Vec<i64>,
    /// Whether it still counts as a transaction being written (until its statement is done).
    writing: std::cell::Cell<bool>,
}

impl Turn {
    /// The batch's statement has answered: the next batch may start (on another connection)
    /// while this one commits. The users it locked stay locked until it has.
    fn statement_done(&self) {
        if self.writing.replace(false) {
            self.writer.desk().writing -= 1;
            self.writer.dispatch();
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        {
            let mut desk = self.writer.desk();
            if self.writing.get() {
                desk.writing -= 1;
            }
            for user in &self.locks {
                desk.locked.remove(user);
            }
        }
        self.writer.dispatch();
    }
}

impl SubmitWriter {
    /// A writer over `pool` that sends the queue messages to `queue`, with up to `writers`
    /// transactions at once ([`WRITERS`] in the API).
    pub fn new(pool: Pool, queue: Queue, metrics: Arc<Metrics>, writers: usize) -> Self {
        Self {
            pool,
            queue,
            metrics,
            desk: Mutex::default(),
            writers: writers.max(1),
        }
    }

    /// Writes `request` (see [`reservations::submit_within`] for the outcomes) once it is
    /// committed, with its audit record: `reservation.submit` with outcome `success` for a
    /// stored reservation, `denied` for one over the quota or without an SSH key; none for a
    /// replay or a taken id.
    pub async fn write(self: &Arc<Self>, request: SubmitRequest) -> Result<Checked, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.desk().waiting.push_back((request, reply));
        self.dispatch();
        answer.await.unwrap_or_else(|_| Err(lost()))
    }

    /// Starts transactions for what waits, while writers are free and some waiting submit can
    /// be written (needs no lock, or its user's is free).
    fn dispatch(self: &Arc<Self>) {
        loop {
            let batch = {
                let mut desk = self.desk();
                if desk.writing >= self.writers || desk.waiting.is_empty() {
                    return;
                }
                let least = if desk.writing == 0 {
                    1
                } else {
                    MIN_SECOND_BATCH
                };
                let Some((batch, locks)) = desk.take_batch(least) else {
                    return;
                };
                desk.writing += 1;
                (
                    batch,
                    Turn {
                        writer: self.clone(),
                        locks,
                        writing: std::cell::Cell::new(true),
                    },
                )
            };
            let (batch, turn) = batch;
            // Written apart from any request's task, so that a client going away in the middle
            // cannot cut short the others' transaction.
            actix_web::rt::spawn(async move {
                turn.writer.write_batch(batch, &turn).await;
                drop(turn);
            });
        }
    }

    fn desk(&self) -> std::sync::MutexGuard<'_, Desk> {
        self.desk.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn write_batch(&self, batch: Vec<(SubmitRequest, Reply)>, turn: &Turn) {
        self.metrics.submit_batch_size.observe(batch.len() as f64);
        let mut db = match self.pool.get().await {
            Ok(db) => db,
            Err(e) => {
                let e = StoreError::from(e).to_string();
                for (_, reply) in batch {
                    let _ = reply.send(Err(StoreError::Unavailable(e.clone())));
                }
                return;
            }
        };
        let (requests, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let together = if requests.len() > 1 {
            match self.write_together(&mut db, &requests, turn).await {
                Ok(outcomes) => Some(outcomes.into_iter().map(Ok).collect()),
                Err(e) if e.is_unavailable() => {
                    let e = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(StoreError::Unavailable(e.clone())));
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, submits = requests.len(),
                        "a batch of submits failed; writing each on its own");
                    None
                }
            }
        } else {
            None
        };
        let mut outcomes: Vec<Result<Checked, StoreError>> = match together {
            Some(outcomes) => outcomes,
            None => {
                let mut outcomes = Vec::with_capacity(requests.len());
                for request in &requests {
                    outcomes.push(
                        self.write_together(&mut db, std::slice::from_ref(request), turn)
                            .await
                            .map(|mut one| one.remove(0)),
                    );
                }
                outcomes
            }
        };
        record_refusals(&db, &requests, &mut outcomes).await;
        for (outcome, reply) in outcomes.into_iter().zip(replies) {
            let _ = reply.send(outcome);
        }
    }

    /// `requests` in one transaction: every outcome, or the first error (and nothing written).
    async fn write_together(
        &self,
        db: &mut deadpool_postgres::Object,
        requests: &[SubmitRequest],
        turn: &Turn,
    ) -> Result<Vec<Checked>, StoreError> {
        let written = self.try_write_together(db, requests, turn).await;
        if written.is_err() {
            // Whatever went wrong, the connection goes back to the pool outside a transaction
            // (a failed statement already ended it on the server; then this is a no-op).
            let _ = db.batch_execute("ROLLBACK").await;
        }
        written
    }

    /// One round trip: BEGIN, the locks, the submits (with the audit records of those stored)
    /// and COMMIT go out together and the server runs them in order. Once the submit statement
    /// has answered, the next batch may start on another connection while this one's commit is
    /// flushed. Had any of them failed, the COMMIT rolls back, and the error is returned.
    async fn try_write_together(
        &self,
        db: &deadpool_postgres::Object,
        requests: &[SubmitRequest],
        turn: &Turn,
    ) -> Result<Vec<Checked>, StoreError> {
        let locks: Vec<i64> = requests
            .iter()
            .filter(|r| r.needs_lock())
            .map(|r| r.caller.user_id)
            .collect();
        let records: Vec<_> = requests.iter().map(created).collect();
        let entries: Vec<_> = requests
            .iter()
            .zip(&records)
            .map(|(r, a)| audit::entry(&Actor::from(&r.caller), &r.ctx, a))
            .collect();
        let submits: Vec<_> = requests
            .iter()
            .zip(&entries)
            .map(|(r, entry)| (&r.new, r.checks, Some(entry)))
            .collect();
        // `join3` polls its futures in order, so the three are sent in this order even when a
        // statement is first prepared on this connection (tokio's `join!` would rotate).
        let (begun, locked, outcomes) = futures::future::join3(
            db.batch_execute(reservations::begin_submits()),
            async {
                if locks.is_empty() {
                    Ok(())
                } else {
                    reservations::lock_users_submissions(&**db, &locks).await
                }
            },
            reservations::submit_audited_committing(db, &self.queue, &submits, || {
                turn.statement_done();
            }),
        )
        .await;
        begun?;
        locked?;
        outcomes
    }
}

/// Writes the audit records of the refused submits among `outcomes`, after their batch's commit
/// (a refusal writes nothing else, so its record needs no transaction of its own), before any is
/// answered. A refusal whose record could not be written is answered with the error instead.
async fn record_refusals(
    db: &deadpool_postgres::Object,
    requests: &[SubmitRequest],
    outcomes: &mut [Result<Checked, StoreError>],
) {
    let refused: Vec<(usize, Audit<'static>)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| Some((i, refused(&requests[i], o.as_ref().ok()?)?)))
        .collect();
    if refused.is_empty() {
        return;
    }
    let records: Vec<_> = refused
        .iter()
        .map(|(i, a)| (&requests[*i].caller, &requests[*i].ctx, a.clone()))
        .collect();
    if let Err(e) = audit::record_many(&**db, &records).await {
        let e = format!("the refusal could not be recorded: {e}");
        for (i, _) in &refused {
            outcomes[*i] = Err(StoreError::Unavailable(e.clone()));
        }
    }
}

/// The error for a submit whose writer went away before answering (the process is stopping).
fn lost() -> StoreError {
    StoreError::Unavailable("the submit writer stopped before answering".into())
}

/// The audit record of a submit, should it be stored: written by the statement that stores it,
/// which adds the queue message's id (`msg_id`) to its details.
fn created(r: &SubmitRequest) -> Audit<'static> {
    let new = &r.new;
    Audit {
        action: "reservation.submit",
        target_type: Some("reservation"),
        target_id: Some(new.reservation_id.to_string()),
        outcome: "success",
        details: Some(serde_json::json!({
            "gpu_type": new.gpu_type,
            "gpu_count": new.gpu_count,
            "duration_hours": new.duration_hours,
            "env_names": new.env_names,
            "idempotency_key": new.idempotency_key.is_some(),
        })),
    }
}

/// The audit record of a refused submit, if `outcome` is a refusal (a stored submit's record was
/// written with it; a replay or a taken id gets none).
fn refused(r: &SubmitRequest, outcome: &Checked) -> Option<Audit<'static>> {
    let new = &r.new;
    match outcome {
        Checked::OverQuota(quota) => Some(denied(
            new,
            serde_json::json!({"reason": "quota_exceeded", "detail": refusal(*quota)}),
        )),
        Checked::NoSshAccess => Some(denied(new, serde_json::json!({"reason": "no_ssh_key"}))),
        Checked::OverBookedHours { limit, booked } => Some(denied(
            new,
            serde_json::json!({
                "reason": "quota_exceeded",
                "detail": booked_hours_refusal(*limit, *booked),
                "start_at": new.start_at,
            }),
        )),
        Checked::Submitted(_) | Checked::IdTaken(_) => None,
    }
}

/// The audit record of a refused submit: `why` with the request's GPU type and count.
fn denied(new: &NewReservation, mut why: serde_json::Value) -> Audit<'static> {
    if let Some(details) = why.as_object_mut() {
        details.insert("gpu_type".into(), serde_json::json!(new.gpu_type));
        details.insert("gpu_count".into(), serde_json::json!(new.gpu_count));
    }
    Audit {
        action: "reservation.submit",
        target_type: Some("reservation"),
        target_id: Some(new.reservation_id.to_string()),
        outcome: "denied",
        details: Some(why),
    }
}

/// Why a booking beyond the user's booked GPU-hours is refused.
pub fn booked_hours_refusal(limit: u32, booked: f64) -> String {
    format!(
        "you already have {booked:.1} GPU-hours booked and waiting, and this booking would take \
         you beyond the limit of {limit} (MAX_BOOKED_GPU_HOURS_PER_USER); cancel a booking or \
         book less"
    )
}

/// Why a submit whose dev box could get no SSH key is refused, and how to fix it.
pub const NO_SSH_KEY: &str = "no SSH key for the dev box: you have no SSH public key registered \
     and the request names no GitHub user whose keys could be installed, so nobody could log in \
     to it. Register a key with `gpu-dev ssh-keys add` (or PUT /v1/me/ssh-keys), or name a GitHub \
     user (`gpu-dev reserve --github-user LOGIN`, `github_user` in the request, or GITHUB_USER \
     as the original client sends it)";

/// Why a user at the queued cap of `quota` may not queue another.
pub fn refusal(quota: Quota) -> String {
    format!(
        "you already have {0} reservations waiting in the queue (the limit is {0}); cancel one \
         or wait for one to start",
        quota.max_queued
    )
}
