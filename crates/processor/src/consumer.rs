//! The queue consumer: one step reads a batch with a long poll, runs a scheduling pass, handles
//! each message as a hint (re-reading the database), and archives what was handled.
//!
//! - A message whose handling fails transiently stays in the queue, hidden for a delay that
//!   grows with its deliveries ([`crate::backoff`]); its error is remembered.
//! - A message that cannot be a hint (not JSON of the expected shape, an unknown action) can
//!   never succeed: it goes to the dead-letter queue at once, with the reason.
//! - A message that keeps failing is dead-lettered once it has been read `MAX_READS` times, with
//!   its last error; a `create` hint's reservation is then marked failed with that error, since
//!   it could not be started. (Other hints concern reservations that may be running fine: they
//!   get a note in their history instead.)

use gpudev_cluster::DiskMount;
use gpudev_cluster::labels;
use gpudev_cluster::ops;
use gpudev_domain::ReservationStatus;
use gpudev_store::StoreError;
use gpudev_store::disks;
use gpudev_store::queue::Message;
use gpudev_store::reservations::{self, Transition};
use gpudev_store::users;
use uuid::Uuid;

use crate::error::Result;
use crate::hint::{DiskHint, Hint, action_label};
use crate::pass::PassReport;
use crate::processor::{ACTOR, Fenced, Processor};

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Messages read.
    pub received: usize,
    /// Messages handled and archived.
    pub archived: usize,
    /// Messages left in the queue to be retried.
    pub retried: usize,
    /// Messages moved to the dead-letter queue.
    pub dead_lettered: usize,
    /// The scheduling pass run for the batch (none when nothing was read, or it failed).
    pub pass: Option<PassReport>,
}

impl Processor {
    /// Reads one batch (waiting up to `POLL_SECONDS` for it), runs a scheduling pass when
    /// anything arrived, handles every message and archives the handled ones. Only the leader
    /// may.
    #[tracing::instrument(skip_all)]
    pub async fn process_once(&self) -> Result<Outcome> {
        self.leader()?;
        let config = &self.inner.config;
        let messages = {
            let db = self.db().await?;
            let vt = i32::try_from(config.visibility_timeout.as_secs()).unwrap_or(i32::MAX);
            let batch = i32::try_from(config.batch_size).unwrap_or(16);
            // PGMQ polls in whole seconds; below one second, read without waiting.
            match i32::try_from(config.poll.as_secs()).unwrap_or(5) {
                0 => config.queue.read(&**db, vt, batch).await?,
                poll => config.queue.read_with_poll(&**db, vt, batch, poll).await?,
            }
        };
        let mut outcome = Outcome {
            received: messages.len(),
            ..Outcome::default()
        };
        if messages.is_empty() {
            return Ok(outcome);
        }
        match self.scheduler_pass().await {
            Ok(report) => outcome.pass = Some(report),
            Err(e) if e.is_leadership() => return Err(e),
            Err(e) => tracing::warn!(error = %e, "scheduling pass failed"),
        }
        for message in &messages {
            let fate = self.consume(message).await?;
            let label = match fate {
                Fate::Archived => {
                    outcome.archived += 1;
                    "archived"
                }
                Fate::Retry => {
                    outcome.retried += 1;
                    "retry"
                }
                Fate::DeadLettered => {
                    outcome.dead_lettered += 1;
                    "dead_letter"
                }
            };
            self.inner
                .metrics
                .messages
                .with_label_values(&[action_label(&message.body), label])
                .inc();
        }
        Ok(outcome)
    }

    async fn consume(&self, message: &Message) -> Result<Fate> {
        let max_reads = i32::try_from(self.inner.config.max_reads).unwrap_or(i32::MAX);
        let hint = match Hint::parse(&message.body) {
            Ok(hint) => hint,
            Err(e) => {
                tracing::warn!(msg_id = message.msg_id, error = %e, "dead-lettering a message that is not a hint");
                self.dead_letter(message, &e.to_string(), None).await?;
                return Ok(Fate::DeadLettered);
            }
        };
        if message.read_ct > max_reads {
            // Read again after a crash or a hang: give up without another attempt.
            let last = self.take_error(message.msg_id).unwrap_or_else(|| {
                "no attempt finished (the processor may have stopped while handling it)".to_owned()
            });
            self.dead_letter(message, &give_up(message.read_ct, &last), Some(&hint))
                .await?;
            return Ok(Fate::DeadLettered);
        }
        match self.handle(&hint).await {
            Ok(()) => {
                self.take_error(message.msg_id);
                let db = self.db().await?;
                self.inner
                    .config
                    .queue
                    .archive(&**db, message.msg_id)
                    .await?;
                Ok(Fate::Archived)
            }
            Err(e) if e.is_leadership() => Err(e),
            Err(e) => {
                let error = e.to_string();
                tracing::warn!(
                    msg_id = message.msg_id,
                    action = hint.action(),
                    read_ct = message.read_ct,
                    error,
                    "handling a message failed"
                );
                if message.read_ct >= max_reads {
                    self.take_error(message.msg_id);
                    self.dead_letter(message, &give_up(message.read_ct, &error), Some(&hint))
                        .await?;
                    Ok(Fate::DeadLettered)
                } else {
                    self.remember_error(message.msg_id, &error);
                    let config = &self.inner.config;
                    let delay = config.retry_backoff.delay(message.read_ct);
                    let db = self.db().await?;
                    config.queue.set_vt(&**db, message.msg_id, delay).await?;
                    tracing::info!(
                        msg_id = message.msg_id,
                        read_ct = message.read_ct,
                        delay_ms = delay.as_millis() as u64,
                        "message hidden until its retry"
                    );
                    Ok(Fate::Retry)
                }
            }
        }
    }

    /// Moves a message to the dead-letter queue with `reason` and, for a `create` hint, fails
    /// its reservation with that reason — in one transaction on the leader session.
    async fn dead_letter(
        &self,
        message: &Message,
        reason: &str,
        hint: Option<&Hint>,
    ) -> Result<()> {
        let leader = self.leader()?;
        let failed = {
            let mut client = leader.lock().await?;
            let tx = client.transaction().await.fenced(&leader)?;
            self.inner
                .config
                .queue
                .dead_letter(&tx, message, reason)
                .await
                .fenced(&leader)?;
            let mut failed = None;
            match hint {
                Some(Hint::Create(id)) => {
                    let why = format!("could not be started: {reason}");
                    match reservations::transition(
                        &tx,
                        *id,
                        Transition {
                            to: ReservationStatus::Failed,
                            reason: Some(&why),
                            actor: ACTOR,
                        },
                    )
                    .await
                    {
                        Ok(_) => failed = Some(*id),
                        Err(StoreError::Transition(_) | StoreError::NotFound(_)) => {}
                        Err(e) => return Err(leader.classify(e.into())),
                    }
                }
                Some(other) => {
                    if let Some(id) = other.reservation_id()
                        && reservations::find(&tx, id).await.fenced(&leader)?.is_some()
                    {
                        let note = format!("{} request dead-lettered: {reason}", other.action());
                        reservations::record_event(
                            &tx,
                            id,
                            "note",
                            &note,
                            ACTOR,
                            serde_json::json!({ "msg_id": message.msg_id }),
                        )
                        .await
                        .fenced(&leader)?;
                    }
                }
                None => {}
            }
            tx.commit().await.fenced(&leader)?;
            failed
        };
        tracing::warn!(msg_id = message.msg_id, reason, "message dead-lettered");
        if let Some(id) = failed {
            self.inner
                .metrics
                .failures
                .with_label_values(&["dead_letter"])
                .inc();
            let _guard = self.inner.objects_lock.lock().await;
            if let Err(e) = self.clean_up(id, ReservationStatus::Failed, None).await {
                tracing::warn!(reservation_id = %id, error = %e, "cleanup after dead letter failed; reconciliation will retry");
            }
        }
        Ok(())
    }

    /// Handles one hint by looking at the database. Permanent problems with a reservation are
    /// recorded on it (it fails); only transient errors are returned.
    async fn handle(&self, hint: &Hint) -> Result<()> {
        match hint {
            Hint::Create(id) | Hint::Cancel(id) | Hint::Extend(id) => self.sync(*id).await,
            Hint::Jupyter { reservation_id, .. } => {
                // A preparing dev box is brought up to date as soon as its objects exist (the
                // sync makes them), so the change is live when it becomes active.
                self.sync(*reservation_id).await?;
                let Some(r) = self.find(*reservation_id).await? else {
                    return Ok(());
                };
                if matches!(
                    r.status,
                    ReservationStatus::Preparing | ReservationStatus::Active
                ) {
                    // The row, not the message, says what is wanted now (a later switch may
                    // have overtaken this message).
                    let _guard = self.inner.objects_lock.lock().await;
                    self.apply_jupyter(&r, r.jupyter_enabled).await?;
                }
                Ok(())
            }
            Hint::AddUser(id) => {
                self.sync(*id).await?;
                let Some(r) = self.find(*id).await? else {
                    return Ok(());
                };
                if matches!(
                    r.status,
                    ReservationStatus::Preparing | ReservationStatus::Active
                ) {
                    self.refresh_keys(&r).await?;
                }
                Ok(())
            }
            Hint::DiskCreate(disk) => self.disk_operation(disk, true).await,
            Hint::DiskDelete(disk) => self.disk_operation(disk, false).await,
            Hint::DiskRename => Ok(()),
        }
    }

    async fn find(&self, id: Uuid) -> Result<Option<reservations::Reservation>> {
        let db = self.db().await?;
        Ok(reservations::find(&**db, id).await?)
    }

    /// Makes one reservation's objects match its status: created while `preparing` (and
    /// settled if its Pods already say so), deleted once it is not live. Queued and active
    /// reservations need nothing here (the pass admits; the expiry job ends).
    pub(crate) async fn sync(&self, id: Uuid) -> Result<()> {
        let Some(r) = self.find(id).await? else {
            return Ok(());
        };
        let config = &self.inner.config;
        let _guard = self.inner.objects_lock.lock().await;
        match r.status {
            ReservationStatus::Queued | ReservationStatus::Active => Ok(()),
            ReservationStatus::Preparing => {
                let existing = ops::list_managed(
                    &self.inner.kube,
                    &config.namespace,
                    &labels::selector_for(id),
                )
                .await?;
                self.drive_or_fail(&r, &existing).await?;
                let Some(r) = self.find(id).await? else {
                    return Ok(());
                };
                self.settle(&r, None, false).await?;
                Ok(())
            }
            status => {
                self.clean_up(id, status, None).await?;
                Ok(())
            }
        }
    }

    /// Completes a disk operation: a new disk gets its claim; a deleted disk only needs its
    /// operation closed (its claim is removed by the expiry job once the grace period is over).
    async fn disk_operation(&self, hint: &DiskHint, create: bool) -> Result<()> {
        let (user, disk) = {
            let db = self.db().await?;
            let Some(user) = users::find_by_name(&**db, &hint.username).await? else {
                return Ok(());
            };
            let disk =
                disks::find_operation(&**db, user.user_id, &hint.disk_name, hint.operation_id)
                    .await?;
            (user, disk)
        };
        let Some(disk) = disk else {
            // Superseded by a later operation, or the disk is gone: nothing to complete.
            return Ok(());
        };
        if disk.operation_status.as_deref() != Some("pending") {
            return Ok(());
        }
        let error = if create {
            let mount = DiskMount {
                name: disk.disk_name.clone(),
                claim_name: disk.kube_name.clone(),
            };
            match self
                .ensure_claim(&user.username, &mount, disk.size_gb)
                .await
            {
                Ok(()) => None,
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => Some(e.to_string()),
            }
        } else {
            None
        };
        let leader = self.leader()?;
        let client = leader.lock().await?;
        disks::finish_operation(&*client, disk.disk_id, hint.operation_id, error.as_deref())
            .await
            .fenced(&leader)?;
        Ok(())
    }
}

/// What became of a message.
enum Fate {
    Archived,
    Retry,
    DeadLettered,
}

fn give_up(read_ct: i32, last_error: &str) -> String {
    format!("gave up after {read_ct} deliveries; last error: {last_error}")
}
